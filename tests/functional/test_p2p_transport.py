"""The p2p transport over real TCP on 127.0.0.1: handshake, framing, gossip, requests,
peer exchange, penalties and backpressure, plus throughput figures (shown with -s).

Each test runs its own event loop with ``asyncio.run`` and stops every node it started in
a ``finally`` block (``run`` below), whatever happens.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from smartchain.crypto.keys import PrivateKey
from smartchain.p2p import (
    P2P,
    BadRequest,
    HandshakeError,
    P2PConfig,
    P2PError,
    PeerBanned,
    PeerNotConnected,
    Refused,
    RequestError,
    RequestTimeout,
    format_address,
    handshake,
    parse_address,
)
from smartchain.p2p.framing import FrameCorrupt, SecureChannel
from smartchain.p2p.messages import Envelope, Kind, gossip_id

NET = "smart-test-p2p"
FAST = P2PConfig(handshake_timeout=2.0, seed_backoff_min=0.05, seed_backoff_max=0.5)


class Net:
    """Starts nodes and remembers them, so ``run`` can stop every one of them."""

    def __init__(self) -> None:
        self.nodes: list[P2P] = []
        self.cleanups: list[Callable[[], Awaitable[None]]] = []

    async def node(self, *, seeds: list[str] | None = None, config: P2PConfig = FAST,
                   identity: PrivateKey | None = None, port: int = 0, **kwargs: Any) -> P2P:
        p2p = P2P(identity or PrivateKey.generate(), NET, port=port, seeds=seeds or [],
                  config=config, **kwargs)
        self.nodes.append(p2p)
        await p2p.start()
        return p2p

    async def close(self) -> None:
        for cleanup in reversed(self.cleanups):
            await cleanup()
        for p2p in reversed(self.nodes):
            await p2p.stop()


def run(test: Callable[[Net], Awaitable[None]], timeout: float = 20.0,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None) -> None:
    async def main() -> None:
        net = Net()
        try:
            await asyncio.wait_for(test(net), timeout)
        finally:
            await net.close()

    if loop_factory is None:
        asyncio.run(main())
    else:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(main())


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.01)


async def connected(a: P2P, b: P2P) -> None:
    await wait_until(lambda: b.peer_id in a.connected_peers()
                     and a.peer_id in b.connected_peers(), what="connection")


class Inbox:
    """A gossip handler that records (sender, payload) pairs."""

    def __init__(self, result: bool | None = None) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        self.result = result

    async def __call__(self, peer_id: bytes, payload: bytes) -> bool | None:
        self.items.append((peer_id, payload))
        return self.result

    @property
    def payloads(self) -> list[bytes]:
        return [p for _, p in self.items]


async def raw_session(node: P2P, identity: PrivateKey | None = None,
                      source: str = "127.0.0.1") -> SecureChannel:
    """An authenticated connection driven by hand (to send what a real node never would)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port,
                                                   local_addr=(source, 0))
    channel = await handshake.initiate(reader, writer, identity or PrivateKey.generate(), NET,
                                       expected_peer=node.peer_id, timeout=2.0)
    return channel


async def closed_by_remote(reader: asyncio.StreamReader, timeout: float = 3.0) -> bool:
    """True when the remote end closes the connection within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
        return True
    except (TimeoutError, ConnectionError):
        return False


class Relay:
    """A man in the middle that relays TCP bytes between a dialer and a listener.

    It records the dialer's bytes and can flip one bit of the dialer's n-th frame
    (frames 0 and 1 are the handshake; 2 is the first encrypted frame).
    """

    def __init__(self, target_port: int, tamper_frame: int | None = None) -> None:
        self.target_port = target_port
        self.tamper_frame = tamper_frame
        self.upstream = bytearray()
        self.downstream = bytearray()
        self.server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for w in self.writers:
            w.close()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        loop = asyncio.get_running_loop()
        self.tasks += [loop.create_task(self._pipe(reader, up_writer, True)),
                       loop.create_task(self._pipe(up_reader, writer, False))]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    upstream: bool) -> None:
        buf = bytearray()
        index = 0
        try:
            while data := await reader.read(65536):
                if not upstream:
                    self.downstream += data
                    writer.write(data)
                    continue
                self.upstream += data
                buf += data
                while len(buf) >= 4 and len(buf) >= 4 + int.from_bytes(buf[:4], "big"):
                    size = 4 + int.from_bytes(buf[:4], "big")
                    frame = bytearray(buf[:size])
                    del buf[:size]
                    if index == self.tamper_frame:
                        frame[-1] ^= 0x01
                    index += 1
                    writer.write(bytes(frame))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


# --------------------------------------------------------------------------- basics


def test_addresses_parse_and_format() -> None:
    key = bytes(range(32))
    assert parse_address(format_address(key, "127.0.0.1", 9000)) == (key, "127.0.0.1", 9000)
    assert parse_address(format_address(key, "::1", 9000)) == (key, "::1", 9000)
    for bad in ["127.0.0.1:9000", "zz@127.0.0.1:9000", key.hex() + "@127.0.0.1",
                key.hex() + "@127.0.0.1:0", key.hex() + "@127.0.0.1:99999"]:
        with pytest.raises(ValueError):
            parse_address(bad)


def test_two_nodes_gossip_direct_and_requests() -> None:
    async def body(net: Net) -> None:
        a = await net.node()
        b = await net.node(seeds=[a.address])
        events: list[tuple[str, bytes]] = []
        a.on_peer_connected.append(lambda pid: events.append(("up", pid)))
        await connected(a, b)
        assert a.address.startswith(a.peer_id.hex() + "@127.0.0.1:")
        assert b.peer_addresses() == [a.address]

        inbox_b, direct_a = Inbox(), Inbox()
        b.subscribe("blocks", inbox_b)
        a.subscribe("note", direct_a)
        await a.publish("blocks", b"block-1")
        await a.publish("blocks", b"block-1")  # same id: de-duplicated by the receiver
        await a.publish("blocks", b"block-2", priority=True)
        await b.send(a.peer_id, "note", b"hi", priority=True)
        await wait_until(lambda: len(inbox_b.items) == 2 and direct_a.items)
        # the priority lane overtakes the normal one, so only the set is fixed
        assert sorted(inbox_b.items) == [(a.peer_id, b"block-1"), (a.peer_id, b"block-2")]
        assert direct_a.items == [(b.peer_id, b"hi")]

        async def echo(peer_id: bytes, payload: bytes) -> bytes:
            return peer_id + payload

        async def broken(peer_id: bytes, payload: bytes) -> bytes:
            raise RuntimeError("disk on fire")

        async def strict(peer_id: bytes, payload: bytes) -> bytes:
            raise BadRequest("payload must be 32 bytes")

        async def full(peer_id: bytes, payload: bytes) -> bytes:
            raise Refused("no room for 2 MiB")

        a.register_request("echo", echo)
        a.register_request("broken", broken)
        a.register_request("strict", strict)
        a.register_request("full", full)
        with pytest.raises(ValueError):
            a.register_request("echo", echo)
        assert await b.request(a.peer_id, "echo", b"ping") == b.peer_id + b"ping"
        results = await asyncio.gather(*(b.request(a.peer_id, "echo", bytes([i]))
                                         for i in range(50)))
        assert results == [b.peer_id + bytes([i]) for i in range(50)]
        with pytest.raises(RequestError, match="disk on fire"):
            await b.request(a.peer_id, "broken", b"")
        assert a.peer_score(b.peer_id) == 0  # our own failure costs the requester nothing
        with pytest.raises(RequestError, match="refused: no room for 2 MiB"):
            await b.request(a.peer_id, "full", b"")
        assert a.peer_score(b.peer_id) == 0  # nor does a polite refusal
        with pytest.raises(RequestError, match="unknown request kind"):
            await b.request(a.peer_id, "nope", b"")
        with pytest.raises(RequestError, match="32 bytes"):
            await b.request(a.peer_id, "strict", b"")
        assert a.peer_score(b.peer_id) < 0  # a BadRequest does cost score
        with pytest.raises(PeerNotConnected):
            await b.request(os.urandom(32), "echo", b"")
        with pytest.raises(ValueError):
            await a.publish("x" * 200, b"")
        assert events == [("up", b.peer_id)]

        await b.stop()
        await wait_until(lambda: not a.connected_peers(), what="a to notice b left")
        await b.stop()  # idempotent

    run(body)


def test_request_timeout_is_clean() -> None:
    async def body(net: Net) -> None:
        a = await net.node()
        b = await net.node()
        await b.connect(a.address)

        async def slow(peer_id: bytes, payload: bytes) -> bytes:
            await asyncio.sleep(0.5)
            return b"late"

        a.register_request("slow", slow)
        t0 = time.monotonic()
        with pytest.raises(RequestTimeout) as info:
            await b.request(a.peer_id, "slow", b"", timeout=0.2)
        assert isinstance(info.value, TimeoutError) and isinstance(info.value, RequestError)
        assert time.monotonic() - t0 < 0.45
        await wait_until(lambda: b.stats["unmatched_responses"] == 1)  # late answer ignored
        assert b.connected_peers() == [a.peer_id]  # and the connection is fine
        a.register_request("fast", _echo)
        assert await b.request(a.peer_id, "fast", b"ok") == b"ok"

    run(body)


async def _echo(peer_id: bytes, payload: bytes) -> bytes:
    return payload


def test_three_nodes_triangle_each_message_handled_once() -> None:
    async def body(net: Net) -> None:
        a = await net.node()
        b = await net.node(seeds=[a.address])
        await connected(a, b)
        c = await net.node(seeds=[a.address])  # learns b from a's peer list and dials it
        for x, y in [(a, c), (b, c)]:
            await connected(x, y)
        nodes = [a, b, c]
        inboxes = [Inbox() for _ in nodes]
        for node, inbox in zip(nodes, inboxes, strict=True):
            node.subscribe("tx", inbox)
        for i, node in enumerate(nodes):
            for j in range(5):
                await node.publish("tx", f"from{i}-{j}".encode(), priority=j % 2 == 0)
        await wait_until(lambda: all(len(box.items) == 10 for box in inboxes))
        await asyncio.sleep(0.1)  # relays of relays arrive too, and must be ignored
        for i, (node, box) in enumerate(zip(nodes, inboxes, strict=True)):
            expected = {f"from{k}-{j}".encode() for k in range(3) if k != i for j in range(5)}
            assert sorted(box.payloads) == sorted(expected), "each message exactly once"
            assert node.stats["gossip_duplicates"] > 0  # the triangle did deliver copies

    run(body)


def test_relay_stops_when_handler_says_so_and_handler_errors_penalise() -> None:
    async def body(net: Net) -> None:
        a = await net.node(max_peers=1)  # no peer exchange dials: the line stays a line
        b = await net.node()
        c = await net.node(max_peers=1)
        await a.connect(b.address)
        await c.connect(b.address)  # a - b - c: a line, so c hears a only through b
        await wait_until(lambda: len(b.connected_peers()) == 2)
        mid_b, end_c = Inbox(result=False), Inbox()
        b.subscribe("t", mid_b)
        c.subscribe("t", end_c)
        await a.publish("t", b"stop-here")
        await wait_until(lambda: mid_b.items)
        await asyncio.sleep(0.1)
        assert end_c.items == []
        mid_b.result = None
        await a.publish("t", b"pass-on")
        await wait_until(lambda: end_c.payloads == [b"pass-on"])

        async def picky(peer_id: bytes, payload: bytes) -> None:
            raise ValueError("invalid block")

        b.subscribe("bad", picky)
        c.subscribe("bad", end_c)
        await a.publish("bad", b"junk")
        await wait_until(lambda: b.peer_score(a.peer_id) < 0)
        await asyncio.sleep(0.1)
        assert b"junk" not in end_c.payloads  # rejected messages are not relayed
        assert a.peer_id in b.connected_peers()  # one bad message is not a ban

    run(body)


# --------------------------------------------------------------------------- identity


def test_handshake_keys_per_direction_and_counter_nonces() -> None:
    async def body(net: Net) -> None:
        server_key, client_key = PrivateKey.generate(), PrivateKey.generate()
        accepted: asyncio.Future[SecureChannel] = asyncio.get_running_loop().create_future()

        async def on_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.set_result(await handshake.respond(reader, writer, server_key, NET,
                                                        listen_port=7))

        server = await asyncio.start_server(on_accept, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", server.sockets[0].getsockname()[1])
            client = await handshake.initiate(reader, writer, client_key, NET,
                                              expected_peer=server_key.public_key,
                                              listen_port=9)
            srv = await accepted
            assert client.peer_id == server_key.public_key and client.peer_listen_port == 7
            assert srv.peer_id == client_key.public_key and srv.peer_listen_port == 9
            assert client.transcript == srv.transcript
            m1, m2, m3 = (client.seal(m)[4:] for m in (b"one", b"two", b"three"))
            assert srv.open(m1) == b"one"
            with pytest.raises(FrameCorrupt):
                srv.open(m1)  # replayed frame
            with pytest.raises(FrameCorrupt):
                srv.open(m3)  # reordered frame
            assert srv.open(m2) == b"two" and srv.open(m3) == b"three"
            with pytest.raises(FrameCorrupt):
                client.open(m1)  # same nonce (0), other direction's key: no reflection
            assert client.open(srv.seal(b"reply")[4:]) == b"reply"
            client.close()
            srv.close()
        finally:
            server.close()

    run(body)


def test_dialer_rejects_an_impersonator() -> None:
    async def body(net: Net) -> None:
        claimed = PrivateKey.generate()
        y = await net.node()  # listens with identity Y
        x = await net.node()
        fake = format_address(claimed.public_key, "127.0.0.1", y.port)
        with pytest.raises(HandshakeError, match="not the expected"):
            await x.connect(fake)
        await asyncio.sleep(0.05)
        assert x.connected_peers() == [] and y.connected_peers() == []
        assert y.stats["handshake_failures"] == 1  # y never learnt who x is

        with pytest.raises(P2PError, match="ourselves"):
            await x.connect(x.address)
        other_net = P2P(PrivateKey.generate(), "another-net", config=FAST)
        net.nodes.append(other_net)
        await other_net.start()
        with pytest.raises(HandshakeError, match="network"):
            await x.connect(other_net.address)

    run(body)


def test_mitm_relay_can_neither_read_nor_alter_frames() -> None:
    async def body(net: Net) -> None:
        a = await net.node()
        b = await net.node()
        inbox = Inbox()
        a.subscribe("secret", inbox)
        relay = Relay(a.port)
        await relay.start()
        net.cleanups.append(relay.close)
        assert await b.connect(format_address(a.peer_id, "127.0.0.1", relay.port)) == a.peer_id
        secret = b"the launch code is 0000-" + os.urandom(8).hex().encode()
        await b.publish("secret", secret)
        await wait_until(lambda: inbox.payloads == [secret])
        assert secret[:16] not in relay.upstream and secret[-16:] not in relay.upstream
        assert NET.encode() in relay.upstream  # only the Hello is in the clear
        await b.stop()
        await wait_until(lambda: not a.connected_peers())

        c = await net.node()
        tamper = Relay(a.port, tamper_frame=2)  # c's first encrypted frame
        await tamper.start()
        net.cleanups.append(tamper.close)
        await c.connect(format_address(a.peer_id, "127.0.0.1", tamper.port))
        await wait_until(lambda: a.is_banned(c.peer_id), what="a to penalise c")
        await wait_until(lambda: not c.connected_peers() and not a.connected_peers())
        assert a.peer_score(c.peer_id) < -90

    run(body)


def test_replayed_handshake_does_not_complete() -> None:
    async def body(net: Net) -> None:
        a = await net.node()
        b = await net.node()
        relay = Relay(a.port)
        await relay.start()
        net.cleanups.append(relay.close)
        await b.connect(format_address(a.peer_id, "127.0.0.1", relay.port))
        await connected(a, b)
        await b.publish("x", b"data")
        await asyncio.sleep(0.05)
        recorded = bytes(relay.upstream)  # hello, auth and some encrypted frames
        await b.stop()
        await wait_until(lambda: not a.connected_peers())
        failures = a.stats["handshake_failures"]

        reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
        writer.write(recorded)
        await writer.drain()
        assert await closed_by_remote(reader)
        writer.close()
        assert a.connected_peers() == []
        assert a.stats["handshake_failures"] == failures + 1

    run(body)


# --------------------------------------------------------------------------- hostile bytes


def test_garbage_truncated_and_oversize_frames_close_the_connection() -> None:
    async def body(net: Net) -> None:
        cfg = P2PConfig(handshake_timeout=0.3, frame_timeout=0.3, seed_backoff_min=0.05)
        a = await net.node(config=cfg)
        hello = handshake.Hello(handshake.PROTOCOL, NET, os.urandom(32)).encode()
        hello = len(hello).to_bytes(4, "big") + hello
        for junk in [os.urandom(64), b"\x00\x00\x00\x10" + os.urandom(16),
                     b"\xff\xff\xff\xff", b"", b"\x00\x00\x00\x40" + b"x" * 10,
                     hello + b"\x00\x00\x00\x03abc", hello + b"\x00\x00\x00\x70" + bytes(112)]:
            reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
            writer.write(junk)  # b"" and the short frame: silence => handshake timeout
            assert await closed_by_remote(reader), junk
            writer.close()
        assert a.stats["handshake_failures"] == 7

        async def session_then(send: bytes, eof: bool) -> tuple[PrivateKey, bool]:
            key = PrivateKey.generate()
            channel = await raw_session(a, key)
            await wait_until(lambda: key.public_key in a.connected_peers())
            channel.writer.write(send)
            if eof:
                channel.writer.write_eof()
            closed = await closed_by_remote(channel.reader)
            channel.close()
            return key, closed

        key, closed = await session_then(b"\xff\xff\xff\xf0", eof=False)  # oversize length
        assert closed and a.is_banned(key.public_key)
        key, closed = await session_then(b"\x00\x00\x01\x00" + b"z" * 40, eof=True)
        assert closed and -100 < a.peer_score(key.public_key) < 0  # truncated: penalised
        key, closed = await session_then(b"\x00\x00\x01\x00" + b"z" * 40, eof=False)
        assert closed and a.peer_score(key.public_key) < 0  # stalled mid-frame
        key, closed = await session_then(b"\x00\x00\x00\x20" + os.urandom(32), eof=False)
        assert closed and a.is_banned(key.public_key)  # fails authentication

        # a well-encrypted frame holding a malformed message: penalised, not fatal
        key = PrivateKey.generate()
        channel = await raw_session(a, key)
        channel.writer.write(channel.seal(b"\x01not an envelope"))
        await wait_until(lambda: a.peer_score(key.public_key) < 0)
        assert key.public_key in a.connected_peers()
        channel.close()

        good = await net.node(seeds=[a.address])
        await connected(a, good)
        inbox = Inbox()
        a.subscribe("t", inbox)
        await good.publish("t", b"still serving")
        await wait_until(lambda: inbox.payloads == [b"still serving"])

    run(body)


def test_flooding_peer_is_banned_while_others_are_served() -> None:
    async def body(net: Net) -> None:
        cfg = P2PConfig(rate_frames=300, burst_frames=600, seed_backoff_min=0.05)
        a = await net.node(config=cfg)
        good = await net.node(seeds=[a.address])
        flooder = await net.node()
        await flooder.connect(a.address)
        await connected(a, good)
        inbox = Inbox()
        a.subscribe("t", inbox)
        a.register_request("echo", _echo)

        async def flood() -> None:
            try:
                for i in range(5000):
                    await flooder.send(a.peer_id, "t", i.to_bytes(4, "big"))
            except PeerNotConnected:
                pass

        async def behave() -> None:
            for i in range(40):
                await good.publish("t", b"good-%d" % i)
                assert await good.request(a.peer_id, "echo", b"%d" % i) == b"%d" % i
                await asyncio.sleep(0.005)

        await asyncio.gather(flood(), behave())
        await wait_until(lambda: a.is_banned(flooder.peer_id))
        await wait_until(lambda: flooder.peer_id not in a.connected_peers()
                         and a.peer_id not in flooder.connected_peers())
        assert a.stats["floods"] == 1
        assert [p for p in inbox.payloads if p.startswith(b"good")] == \
            [b"good-%d" % i for i in range(40)]
        assert good.peer_id in a.connected_peers()

        # banned: refused on accept (after the handshake proves who it is) and on dial
        refused = a.stats["refused_banned"]
        await flooder.connect(a.address)
        await wait_until(lambda: a.stats["refused_banned"] == refused + 1)
        await wait_until(lambda: a.peer_id not in flooder.connected_peers())
        with pytest.raises(PeerBanned):
            await a.connect(flooder.address)

    run(body)


def test_penalties_ban_at_threshold() -> None:
    async def body(net: Net) -> None:
        a = await net.node()
        b = await net.node()
        await b.connect(a.address)
        await connected(a, b)
        a.penalize(b.peer_id, 60, "test")
        assert b.peer_id in a.connected_peers() and not a.is_banned(b.peer_id)
        a.penalize(b.peer_id, 60, "test again")
        assert a.is_banned(b.peer_id) and b.peer_id not in a.connected_peers()
        with pytest.raises(PeerBanned):
            await a.connect(b.address)

    run(body)


# --------------------------------------------------------------------------- topology


def test_duplicate_connections_resolve_to_one() -> None:
    async def body(net: Net) -> None:
        for _ in range(3):
            a = await net.node()
            b = await net.node()
            downs: list[bytes] = []
            a.on_peer_disconnected.append(downs.append)
            await asyncio.gather(a.connect(b.address), b.connect(a.address),
                                 return_exceptions=True)
            await connected(a, b)
            await asyncio.sleep(0.1)
            assert a.connected_peers() == [b.peer_id] and b.connected_peers() == [a.peer_id]
            # both ends kept the same TCP connection: one side's outbound is the other's inbound
            assert (a.connections.peers[b.peer_id].outbound
                    != b.connections.peers[a.peer_id].outbound)
            assert downs == []  # replacing a duplicate is not a disconnection
            inbox = Inbox()
            b.subscribe("t", inbox)
            await a.publish("t", b"x")
            await wait_until(lambda box=inbox: box.payloads == [b"x"])

    run(body)


def test_seed_reconnects_after_restart_and_max_peers() -> None:
    async def body(net: Net) -> None:
        key = PrivateKey.generate()
        a1 = await net.node(identity=key)
        port = a1.port
        b = await net.node(seeds=[a1.address])
        await connected(a1, b)
        await a1.stop()
        await wait_until(lambda: not b.connected_peers())
        a2 = await net.node(identity=key, port=port)
        await connected(a2, b)  # b's seed loop dialled again

        small = await net.node(max_peers=1)
        await b.connect(small.address)
        c = await net.node()
        await c.connect(small.address)  # completes the handshake, then is refused
        await wait_until(lambda: small.stats["refused_full"] == 1)
        await wait_until(lambda: small.peer_id not in c.connected_peers())
        assert small.connected_peers() == [b.peer_id]

    run(body)


# --------------------------------------------------------------------------- slots


async def half_open(net: Net, node: P2P, n: int, source: str = "127.0.0.1"
                    ) -> list[asyncio.StreamReader]:
    """``n`` TCP connections from ``source`` that never say a word (closed at the end)."""
    readers = []
    for _ in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port,
                                                       local_addr=(source, 0))
        readers.append(reader)

        async def close(w: asyncio.StreamWriter = writer) -> None:
            w.close()

        net.cleanups.append(close)
    return readers


def test_half_open_connections_cannot_block_a_real_handshake() -> None:
    """Finding 8: 64 silent connections used to take every handshake slot until each timed
    out. Now a new connection evicts the oldest handshake of the most crowded subnet."""
    async def body(net: Net) -> None:
        a = await net.node(config=replace(FAST, handshake_timeout=60.0))
        cap = a.config.max_pending_handshakes
        readers = await half_open(net, a, cap + 36)
        await wait_until(lambda: a.stats["handshakes_evicted"] == 36,
                         what="the last 36 connections to push out the first 36")
        assert await closed_by_remote(readers[0], 1.0)  # the oldest was dropped
        b = await net.node()
        assert await b.connect(a.address) == a.peer_id  # long before any deadline
        await connected(a, b)

    run(body)


def test_per_ip_and_per_subnet_limits_refuse_excess_inbound_before_the_handshake() -> None:
    async def body(net: Net) -> None:
        cfg = replace(FAST, limit_loopback=True, max_inbound_per_ip=2,
                      max_inbound_per_subnet=3)
        a = await net.node(config=cfg)
        first = await half_open(net, a, 5, "127.0.5.1")
        await wait_until(lambda: a.stats["refused_ip_limit"] == 3, what="per-IP limit")
        assert [await closed_by_remote(r, 0.3) for r in first] == [False] * 2 + [True] * 3
        await half_open(net, a, 2, "127.0.5.2")  # same /24: one more fits
        await wait_until(lambda: a.stats["refused_ip_limit"] == 4, what="per-subnet limit")
        # another subnet is unaffected, and a connected peer counts against its IP too
        b = await net.node()
        await b.connect(a.address)
        await connected(a, b)
        await half_open(net, a, 2)  # 127.0.0.1: b's connection plus one
        await wait_until(lambda: a.stats["refused_ip_limit"] == 5, what="b's IP limit")
        assert b.peer_id in a.connected_peers()

        # Loopback is exempt unless asked for (every devnet node shares 127.0.0.1).
        c = await net.node(config=replace(FAST, max_inbound_per_ip=1,
                                          max_inbound_per_subnet=1))
        await half_open(net, c, 5)
        await c.connect(b.address)
        await b.connect(c.address)
        assert c.stats["refused_ip_limit"] == 0

    run(body)


def test_full_inbound_slots_leave_room_for_seeds_signers_and_better_peers() -> None:
    """Finding 8: 60 fresh identities used to fill all 50 slots. Inbound now has its own
    cap, seeds and protected signers always connect, and only a better-ranked newcomer
    takes an inbound slot, from the worst inbound peer."""
    async def body(net: Net) -> None:
        seed = await net.node()
        signer = await net.node()
        a = await net.node(seeds=[seed.address], config=replace(FAST, max_inbound=4),
                           max_peers=6, protected=[signer.peer_id])
        await connected(a, seed)
        inbox = Inbox()
        a.subscribe("t", inbox)

        # A useful peer earns merit by being first to deliver accepted gossip, then leaves.
        good_key = PrivateKey.generate()
        good = await net.node(identity=good_key)
        await good.connect(a.address)
        for i in range(5):
            await good.publish("t", b"news %d" % i)
        await wait_until(lambda: len(inbox.items) == 5)
        assert a.peer_rank(good_key.public_key) == 5
        await good.stop()
        await wait_until(lambda: good_key.public_key not in a.connected_peers())

        # Fresh identities fill the inbound slots; one more is refused.
        sybils = [PrivateKey.generate() for _ in range(5)]
        channels = []
        for key in sybils:
            channels.append(await raw_session(a, key))
            net.cleanups.append(lambda ch=channels[-1]: _close(ch))
        await wait_until(lambda: a.stats["refused_full"] == 1)
        inbound = [p for p in sybils if p.public_key in a.connected_peers()]
        assert len(inbound) == 4 and sybils[4] not in inbound
        a.penalize(sybils[1].public_key, 10, "a little misbehaviour")

        # Our own dials still find room: max_peers 6 - 4 inbound = 2 (the seed is extra).
        other = await net.node()
        await a.connect(other.address)
        third = await net.node()
        await a.connect(third.address)
        with pytest.raises(P2PError, match="max_peers"):
            await a.connect((await net.node()).address)
        # ... and a protected signer or a seed connects with every slot taken.
        await a.connect(signer.address)
        port = seed.port
        await seed.stop()
        await wait_until(lambda: seed.peer_id not in a.connected_peers())
        seed2 = await net.node(identity=seed.identity, port=port)
        await connected(a, seed2)  # a's seed loop dialled again

        # The useful peer comes back: it takes the worst inbound slot (the penalised one).
        back = await net.node(identity=good_key)
        await back.connect(a.address)
        await connected(a, back)
        assert a.stats["evictions"] == 1
        assert sybils[1].public_key not in a.connected_peers()
        assert all(k.public_key in a.connected_peers() for k in (sybils[0], *sybils[2:4]))
        # A fresh identity still cannot take anybody's slot.
        refused = a.stats["refused_full"]
        late = await raw_session(a)
        net.cleanups.append(lambda: _close(late))
        await wait_until(lambda: a.stats["refused_full"] == refused + 1)

    run(body)


def test_an_ip_whose_identities_keep_getting_banned_is_banned_itself() -> None:
    async def body(net: Net) -> None:
        a = await net.node(config=replace(FAST, limit_loopback=True, ip_ban_after=2))
        for _ in range(2):  # two fresh identities from one IP, each banned
            key = PrivateKey.generate()
            channel = await raw_session(a, key, source="127.0.6.1")
            net.cleanups.append(lambda ch=channel: _close(ch))
            await wait_until(lambda k=key: k.public_key in a.connected_peers())
            a.penalize(key.public_key, 100, "misbehaved")
        assert a.stats["ip_bans"] == 1
        with pytest.raises(HandshakeError):  # a third one is not even answered
            await raw_session(a, source="127.0.6.1")
        assert a.stats["refused_ip_limit"] == 1
        b = await net.node()  # other addresses are unaffected
        await b.connect(a.address)
        await connected(a, b)

    run(body)


async def _close(channel: SecureChannel) -> None:
    channel.close()


# --------------------------------------------------------------------------- backpressure


def test_priority_messages_survive_a_slow_peer_in_order() -> None:
    async def body(net: Net) -> None:
        cfg = P2PConfig(priority_queue_size=4, normal_queue_size=16)
        sender = await net.node(config=cfg)
        slow = await net.node()
        await sender.connect(slow.address)
        await connected(sender, slow)
        got: list[int] = []
        txs: list[bytes] = []

        async def consensus(peer_id: bytes, payload: bytes) -> None:
            got.append(int.from_bytes(payload[:4], "big"))
            await asyncio.sleep(0.002)  # a slow consumer: its socket buffers fill up

        async def tx(peer_id: bytes, payload: bytes) -> None:
            txs.append(payload)

        slow.subscribe("consensus", consensus)
        slow.subscribe("tx", tx)
        pad = b"p" * 32 * 1024
        n = 200
        publishing: list[asyncio.Future[None]] = []
        for i in range(n):
            # the consensus service publishes from a task per message (node/bft.py); the
            # lane keeps their order even while they wait for space
            publishing.append(asyncio.ensure_future(
                sender.publish("consensus", i.to_bytes(4, "big") + pad, priority=True)))
            for j in range(10):  # transactions compete for the same connection
                await sender.publish("tx", b"%d-%d" % (i, j) + pad)
            if i % 8 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(*publishing)
        await wait_until(lambda: len(got) == n, timeout=10)
        assert got == list(range(n))  # all delivered, in order
        assert sender.stats["send_waits"] > 0  # the publisher was made to wait...
        assert sender.stats["dropped_gossip"] > 0  # ...while transactions were shed
        await wait_until(lambda: len(txs) + sender.stats["dropped_gossip"] == 10 * n)
        assert slow.peer_id in sender.connected_peers()

    run(body)


def test_stalled_peer_is_disconnected_not_skipped() -> None:
    async def body(net: Net) -> None:
        cfg = P2PConfig(priority_queue_size=2, send_timeout=0.3)
        sender = await net.node(config=cfg)
        channel = await raw_session(sender)  # authenticates, then never reads
        await wait_until(lambda: channel.peer_id == sender.peer_id
                         and len(sender.connected_peers()) == 1)
        t0 = time.monotonic()
        for _ in range(200):
            await sender.publish("consensus", b"v" * 256 * 1024, priority=True)
            if not sender.connected_peers():
                break
        assert sender.connected_peers() == []
        assert sender.stats["send_stalls"] >= 1
        assert time.monotonic() - t0 < 5  # bounded by send_timeout, not by the peer
        channel.close()

    run(body)


# --------------------------------------------------------------------------- throughput


def test_measure_round_trips_and_gossip_rate() -> None:
    # Throughput, not flood defence: lift the per-peer inbound limit for this measurement.
    unlimited = replace(FAST, rate_frames=1e9, burst_frames=1e9)

    async def body(net: Net) -> None:
        a = await net.node(config=unlimited)
        b = await net.node(config=unlimited)
        await b.connect(a.address)
        a.register_request("echo", _echo)
        for _ in range(100):
            await b.request(a.peer_id, "echo", b"warm")
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            await b.request(a.peer_id, "echo", b"x" * 64)
            n += 1
        sequential = n / (time.perf_counter() - t0)

        async def worker() -> None:
            for _ in range(250):
                await b.request(a.peer_id, "echo", b"x" * 64)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(32)))
        concurrent = 32 * 250 / (time.perf_counter() - t0)

        total = 20_000
        done = asyncio.Event()
        count = 0

        async def sink(peer_id: bytes, payload: bytes) -> None:
            nonlocal count
            count += 1
            if count == total:
                done.set()

        a.subscribe("tx", sink)
        t0 = time.perf_counter()
        for i in range(total):
            await b.publish("tx", i.to_bytes(4, "big") + b"t" * 200, priority=True)
        await done.wait()
        gossip = total / (time.perf_counter() - t0)
        print(f"\np2p round trips/s (1 connection, sequential): {sequential:,.0f}"
              f"\np2p round trips/s (1 connection, 32 in flight): {concurrent:,.0f}"
              f"\np2p gossip messages/s (2 nodes, 200 B, none lost): {gossip:,.0f}"
              "\n(py-libp2p managed 267-587 round trips/s)")
        assert count == total  # figures are printed, never asserted (DESIGN: benchmarks)

    run(body, timeout=30)


def test_under_uvloop() -> None:
    """The node serves on uvloop: the transport must behave the same there."""
    uvloop = pytest.importorskip("uvloop")

    async def body(net: Net) -> None:
        a = await net.node()
        b = await net.node(seeds=[a.address])
        await connected(a, b)
        inbox = Inbox()
        a.subscribe("t", inbox)
        a.register_request("echo", _echo)
        await b.publish("t", b"on uvloop", priority=True)
        await wait_until(lambda: inbox.payloads == [b"on uvloop"])
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.5:
            assert await b.request(a.peer_id, "echo", b"x" * 64) == b"x" * 64
            n += 1
        print(f"\np2p round trips/s on uvloop (sequential): {n / 0.5:,.0f}")

    run(body, loop_factory=uvloop.new_event_loop)


def test_envelope_and_gossip_id_are_canonical() -> None:
    env = Envelope(Kind.GOSSIP, "t", 0, b"abc")
    assert Envelope.decode(env.encode()) == env
    assert gossip_id("ab", b"c") != gossip_id("a", b"bc")
    assert len(gossip_id("t", b"")) == 32
