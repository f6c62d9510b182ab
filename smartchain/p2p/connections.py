"""Connections: listening, dialing, handshake slots, per-IP limits, frames in and out.

Every connection is a ``SecureChannel`` opened by the handshake in ``handshake.py``; a
peer is identified by its Ed25519 public key, never by its address. Per connected peer
there is one reader task (frames are handled in arrival order, so a peer's consensus
messages are seen in the order it sent them) and one writer task fed by two bounded
queues:

* the **priority** lane (consensus) is never dropped silently: when full, the sender
  waits for space, up to ``send_timeout``; a peer that does not drain in that time is
  disconnected (and the caller told), rather than quietly skipped;
* the **normal** lane carries transaction gossip (dropped when full and counted in
  ``stats["dropped_gossip"]``: a transaction is re-announced or fetched again, while
  buffering without bound would let one slow peer exhaust our memory), plus requests,
  responses and direct messages, which wait for space like priority ones.

The writer always empties the priority lane first. The reader charges a per-peer token
bucket (frames and bytes) and penalises what the channel reports as broken; nothing a
peer sends can raise out of it: the node never crashes on network input.

Duplicate connections to one peer (both sides dialling at once) are resolved the same way
on both ends: keep the connection initiated by the smaller public key; if the same side
initiated both, keep the newer one (it only re-dials when it believes the old one dead).

Who may connect at all (handshake and peer slots, per-IP limits, eviction) is decided
by ``slots.Slots``; see "Slots" there.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from smartchain.crypto.keys import PrivateKey
from smartchain.p2p import handshake
from smartchain.p2p.config import MiB, P2PConfig, Penalty
from smartchain.p2p.errors import DialError, PeerBanned, PeerNotConnected
from smartchain.p2p.framing import (
    ConnectionClosed,
    FrameCorrupt,
    FrameError,
    FrameTooLarge,
    FrameTruncated,
    P2PError,
    SecureChannel,
)
from smartchain.p2p.handshake import HandshakeError
from smartchain.p2p.messages import (
    MAX_PEX_ADDRESSES,
    MAX_TOPIC_LEN,
    Envelope,
    Kind,
    PeerList,
    format_address,
    parse_address,
)
from smartchain.p2p.peerbook import PeerBook, hostport, subnet_of
from smartchain.p2p.slots import Slots

__all__ = ["Connection", "Connections", "Lane", "PeerCallback", "Penalize", "check_topic"]

log = logging.getLogger("smartchain.p2p")

PeerCallback = Callable[[bytes], Any]
Penalize = Callable[[bytes, int, str], None]

_WRITE_HIGH_WATER = 1 * MiB  # socket buffer above which a write waits (bounded) for the peer
_STREAM_LIMIT = 256 * 1024


class Lane:
    """A bounded FIFO of plaintext frames for one peer's writer.

    Unlike ``asyncio.Queue``, senders that had to wait keep their order: a frame offered
    while anyone is waiting queues behind them, and a freed slot goes to the oldest
    waiter. (With ``asyncio.Queue`` a new ``put_nowait`` can take the slot a woken putter
    was about to use, which would reorder consensus messages published from separate
    tasks.)
    """

    __slots__ = ("items", "maxsize", "waiters")

    def __init__(self, maxsize: int) -> None:
        self.items: deque[bytes] = deque()
        self.maxsize = maxsize
        self.waiters: deque[tuple[bytes, asyncio.Future[None]]] = deque()

    def offer(self, frame: bytes) -> bool:
        """Append without waiting; False when the frame would have to wait its turn."""
        if self.waiters or len(self.items) >= self.maxsize:
            return False
        self.items.append(frame)
        return True

    def park(self, frame: bytes) -> asyncio.Future[None]:
        """Wait in line; the future resolves once the frame is in ``items``."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append((frame, fut))
        return fut

    def pop(self) -> bytes:
        frame = self.items.popleft()
        waiters = self.waiters
        while waiters and len(self.items) < self.maxsize:
            waiting, fut = waiters.popleft()
            if not fut.done():  # a done future was abandoned (timeout or cancellation)
                self.items.append(waiting)
                fut.set_result(None)
        return frame

    def clear(self) -> None:
        self.items.clear()
        self.waiters.clear()  # their senders are woken by the peer's closed_fut


class Connection:
    """State of one live connection (a reconnect makes a new ``Connection``)."""

    __slots__ = (
        "address",
        "btokens",
        "channel",
        "closed",
        "closed_fut",
        "connected_at",
        "ftokens",
        "host",
        "inflight",
        "last_recv",
        "last_send",
        "norm",
        "outbound",
        "peer_id",
        "pending",
        "prio",
        "reader_task",
        "refill_at",
        "replaced",
        "subnet",
        "tasks",
        "wake",
        "writer_task",
    )

    def __init__(self, channel: SecureChannel, outbound: bool, address: str | None,
                 cfg: P2PConfig) -> None:
        now = time.monotonic()
        self.peer_id = channel.peer_id
        self.channel = channel
        self.outbound = outbound
        self.address = address
        self.host = channel.remote_host() or ""
        self.subnet = subnet_of(self.host)
        self.prio = Lane(cfg.priority_queue_size)
        self.norm = Lane(cfg.normal_queue_size)
        self.wake = asyncio.Event()
        self.closed = False
        self.closed_fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.replaced = False
        self.ftokens = cfg.burst_frames
        self.btokens = cfg.burst_bytes
        self.refill_at = now
        self.last_recv = now
        self.last_send = now
        self.connected_at = now
        self.inflight = 0
        self.pending: set[int] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.reader_task: asyncio.Task[None] | None = None
        self.writer_task: asyncio.Task[None] | None = None


class Connections:
    """Every live connection and every one being made, with the listening socket and the
    transport's background tasks. What arrives goes to ``dispatch``; a closed connection
    is reported to ``on_closed`` (its requests fail) before ``on_peer_disconnected``."""

    def __init__(self, identity: PrivateKey, network_id: str, host: str, port: int,
                 max_peers: int, max_frame: int, config: P2PConfig,
                 protected: frozenset[bytes], stats: Counter[str], book: PeerBook, *,
                 penalize: Penalize,
                 dispatch: Callable[[Connection, bytes], Awaitable[None]],
                 on_closed: Callable[[Connection, str], None]) -> None:
        self.identity = identity
        self.peer_id: bytes = identity.public_key
        self.network_id = network_id
        self.host = host
        self.port = port
        self.max_peers = max_peers
        self.max_frame = max_frame
        self.config = config
        self.protected = protected
        self.stats = stats
        self.book = book
        self.penalize = penalize
        self.dispatch = dispatch
        self.on_closed = on_closed
        self.on_peer_connected: list[PeerCallback] = []
        self.on_peer_disconnected: list[PeerCallback] = []
        self.peers: dict[bytes, Connection] = {}
        self.dialing: dict[bytes, asyncio.Task[bytes]] = {}
        self.peer_tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        self._accepting: set[asyncio.Task[Any]] = set()
        self.slots = Slots(config, max_peers, protected, stats, book, self.peers,
                           self.dialing, disconnect=self.disconnect)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._started = False

    # ------------------------------------------------------------------ lifecycle

    async def listen(self) -> None:
        """Open the listening socket (learning our port if it was 0) and start upkeep."""
        if self._started:
            raise P2PError("P2P already started")
        self._started = True
        self._server = await asyncio.start_server(self._on_accept, self.host, self.port,
                                                  limit=_STREAM_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        self.spawn(self._maintenance_loop(), "maintenance")

    async def close(self) -> None:
        """Stop listening, drop every connection and cancel every task (and wait)."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for peer in list(self.peers.values()):
            self.disconnect(peer, "shutting down")
        tasks = [*self._tasks, *self._accepting, *self.dialing.values(), *self.peer_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_closed(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def spawn(self, coro: Awaitable[Any], what: str) -> asyncio.Task[Any]:
        """A background task, cancelled by ``close``; its failure is logged."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("p2p task %s failed", what, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def _fire(self, callbacks: list[PeerCallback], peer_id: bytes) -> None:
        for callback in list(callbacks):
            try:
                result = callback(peer_id)
                if inspect.isawaitable(result):
                    self.spawn(result, "peer callback")
            except Exception:
                log.exception("peer callback %r failed", callback)

    # ------------------------------------------------------------------ dialing

    async def connect(self, address: str) -> bytes:
        """Dial ``pubkeyhex@host:port``; returns the peer id once authenticated.

        The remote end must prove it holds the key in the address. Already connected:
        returns at once; a dial already in flight to that peer is joined, not repeated.
        """
        key, host, port = parse_address(address)
        if key == self.peer_id:
            raise P2PError("refusing to connect to ourselves")
        if not self._started or self.closing:
            raise P2PError("P2P is not running")
        if self.book.is_banned(key) or self.book.addr_banned(f"{host}:{port}"):
            raise PeerBanned(f"{address} is banned")
        if key in self.peers:
            return key
        task = self.dialing.get(key)
        if task is None:
            if key not in self.protected and self.slots.used() >= self.max_peers:
                raise DialError(f"max_peers ({self.max_peers}) reached")
            task = asyncio.get_running_loop().create_task(self._dial(key, host, port, address))
            self.dialing[key] = task
            task.add_done_callback(lambda t: self._dial_done(key, t))
        return await asyncio.shield(task)

    def _dial_done(self, key: bytes, task: asyncio.Task[bytes]) -> None:
        if self.dialing.get(key) is task:
            del self.dialing[key]
        if not task.cancelled():
            task.exception()  # retrieved: a caller that gave up must not cause a warning

    async def _dial(self, key: bytes, host: str, port: int, address: str) -> bytes:
        cfg = self.config
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=_STREAM_LIMIT), cfg.handshake_timeout)
        except (OSError, TimeoutError) as exc:
            raise DialError(f"cannot reach {host}:{port}: {exc or 'timed out'}") from None
        try:
            channel = await handshake.initiate(
                reader, writer, self.identity, self.network_id, expected_peer=key,
                listen_port=self.port, max_frame=self.max_frame, timeout=cfg.handshake_timeout)
        except BaseException as exc:
            if isinstance(exc, HandshakeError):
                self.stats["handshake_failures"] += 1
            writer.transport.close()
            raise
        if self._admit(channel, True, address) is None:
            raise DialError(f"connection to {address} refused after the handshake")
        return key

    # ------------------------------------------------------------------ accepting

    async def _on_accept(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        """Inbound connection: handshake, then admit. Never raises."""
        task = asyncio.current_task()
        peername = writer.get_extra_info("peername")
        host = str(peername[0]) if isinstance(peername, tuple) and peername else ""
        if self.closing or task is None or not self.slots.host_allowed(host):
            self.stats["refused_busy" if self.closing else "refused_ip_limit"] += 1
            writer.transport.close()
            return
        self._accepting.add(task)
        self.slots.begin_handshake(task, host)
        try:
            channel = await handshake.respond(
                reader, writer, self.identity, self.network_id, listen_port=self.port,
                max_frame=self.max_frame, timeout=self.config.handshake_timeout)
            self._admit(channel, False, None)
        except HandshakeError as exc:
            self.stats["handshake_failures"] += 1
            log.debug("inbound handshake failed: %s", exc)
            writer.transport.close()
        except asyncio.CancelledError:
            writer.transport.close()
        except Exception:
            log.exception("unexpected error accepting a connection")
            writer.transport.close()
        finally:
            self._accepting.discard(task)
            self.slots.end_handshake(task)

    def _prefer_new(self, existing: Connection, outbound: bool) -> bool:
        """Duplicate resolution; both ends reach the same verdict (module docstring)."""
        pid = existing.peer_id
        old_init = self.peer_id if existing.outbound else pid
        new_init = self.peer_id if outbound else pid
        if old_init == new_init:
            return True
        return new_init == min(self.peer_id, pid)

    def _admit(self, channel: SecureChannel, outbound: bool,
               address: str | None) -> Connection | None:
        """Register an authenticated connection, or close it. Returns the live peer."""
        pid = channel.peer_id
        book = self.book
        if self.closing:
            channel.close()
            return None
        if book.is_banned(pid):
            self.stats["refused_banned"] += 1
            channel.close()
            return None
        existing = self.peers.get(pid)
        if existing is not None:
            self.stats["duplicate_connections"] += 1
            if not self._prefer_new(existing, outbound):
                channel.close()
                return existing
        if address is None and channel.peer_listen_port:
            host = channel.remote_host()
            if host:
                address = format_address(pid, host, channel.peer_listen_port)
        if address is not None and book.addr_banned(hostport(address)):
            self.stats["refused_banned"] += 1
            channel.close()
            return None
        if existing is None and not outbound and not self.slots.inbound_room(pid):
            self.stats["refused_full"] += 1
            channel.close()
            return None
        peer = Connection(channel, outbound, address, self.config)
        if existing is not None:
            existing.replaced = True
            self.disconnect(existing, "replaced by a duplicate connection")
        self.peers[pid] = peer
        if address:
            book.remember(pid, address, self.peers)
        loop = asyncio.get_running_loop()
        peer.reader_task = loop.create_task(self._read_loop(peer))
        peer.writer_task = loop.create_task(self._write_loop(peer))
        for t in (peer.reader_task, peer.writer_task):
            self.peer_tasks.add(t)
            t.add_done_callback(self.peer_tasks.discard)
        if self.config.pex:
            peer.norm.offer(self._peer_list_frame(exclude=pid))
        peer.wake.set()
        self.stats["connections"] += 1
        log.debug("connected to %s (%s)", pid.hex()[:16], "out" if outbound else "in")
        if existing is None:
            self._fire(self.on_peer_connected, pid)
        return peer

    # ------------------------------------------------------------------ teardown

    def disconnect(self, peer: Connection, reason: str) -> None:
        """Tear one connection down; idempotent, callable from the peer's own tasks."""
        if peer.closed:
            return
        peer.closed = True
        log.debug("disconnecting %s: %s", peer.peer_id.hex()[:16], reason)
        if self.peers.get(peer.peer_id) is peer:
            del self.peers[peer.peer_id]
        peer.channel.close()
        current = asyncio.current_task()
        for task in (peer.reader_task, peer.writer_task, *peer.tasks):
            if task is not None and task is not current:
                task.cancel()
        peer.closed_fut.set_result(None)
        peer.prio.clear()  # free memory; blocked senders are woken by closed_fut
        peer.norm.clear()
        self.on_closed(peer, reason)
        self.stats["disconnections"] += 1
        if not peer.replaced:
            self._fire(self.on_peer_disconnected, peer.peer_id)

    def peer(self, peer_id: bytes) -> Connection:
        peer = self.peers.get(peer_id)
        if peer is None:
            raise PeerNotConnected(f"peer {peer_id.hex()[:16]}… is not connected")
        return peer

    # ------------------------------------------------------------------ reading

    async def _read_loop(self, peer: Connection) -> None:
        cfg = self.config
        channel = peer.channel
        pid = peer.peer_id
        stats = self.stats
        reason = "connection closed"
        try:
            while True:
                frame = await channel.read_frame()
                now = time.monotonic()
                peer.last_recv = now
                elapsed = now - peer.refill_at
                peer.refill_at = now
                peer.ftokens = min(cfg.burst_frames, peer.ftokens + elapsed * cfg.rate_frames) - 1
                peer.btokens = min(cfg.burst_bytes,
                                   peer.btokens + elapsed * cfg.rate_bytes) - len(frame)
                stats["frames_in"] += 1
                if peer.ftokens < 0 or peer.btokens < 0:
                    stats["floods"] += 1
                    reason = "inbound rate limit exceeded"
                    self.penalize(pid, Penalty.FLOOD, reason)
                    return
                await self.dispatch(peer, frame)
                if peer.closed:
                    return
        except ConnectionClosed:
            pass
        except FrameTooLarge as exc:
            reason = str(exc)
            self.penalize(pid, Penalty.OVERSIZE_FRAME, reason)
        except FrameCorrupt as exc:
            reason = str(exc)
            self.penalize(pid, Penalty.CORRUPT_FRAME, reason)
        except FrameTruncated as exc:
            reason = str(exc)
            self.penalize(pid, Penalty.TRUNCATED_FRAME, reason)
        except FrameError as exc:
            reason = str(exc)
        except OSError as exc:
            reason = f"connection error: {exc}"
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in our own code: drop this peer, keep the node up
            log.exception("unexpected error reading from %s", pid.hex()[:16])
            reason = "internal error"
        finally:
            self.disconnect(peer, reason)

    # ------------------------------------------------------------------ writing

    def message(self, kind: int, topic: str, req_id: int, payload: bytes) -> bytes:
        """One encoded message, refused (``ValueError``) if no peer could receive it."""
        check_topic(topic)
        if not isinstance(payload, bytes):
            raise TypeError("payload must be bytes")
        frame = Envelope(kind, topic, req_id, payload).encode()
        if len(frame) > self.max_frame:
            raise ValueError(f"message of {len(frame)} bytes exceeds max_frame {self.max_frame}")
        return frame

    async def broadcast(self, frame: bytes, exclude: bytes | None, priority: bool) -> None:
        """Queue ``frame`` for every peer but ``exclude``; waits only on full priority
        lanes, and then for all such peers at once (one slow peer costs one bounded wait)."""
        waits: list[Awaitable[bool]] = []
        stats = self.stats
        for peer in self.peers.values():
            if peer.peer_id == exclude:
                continue
            if (peer.prio if priority else peer.norm).offer(frame):
                peer.wake.set()
            elif priority:
                waits.append(self._enqueue_quiet(peer, frame))
            else:
                stats["dropped_gossip"] += 1
        if waits:
            await asyncio.gather(*waits)

    async def _enqueue_quiet(self, peer: Connection, frame: bytes) -> bool:
        try:
            return await self.enqueue(peer, frame, priority=True, droppable=False)
        except PeerNotConnected:
            return False

    async def enqueue(self, peer: Connection, frame: bytes, *, priority: bool,
                      droppable: bool) -> bool:
        if peer.closed:
            raise PeerNotConnected(f"peer {peer.peer_id.hex()[:16]}… is not connected")
        lane = peer.prio if priority else peer.norm
        if not lane.offer(frame):
            if droppable:
                self.stats["dropped_gossip"] += 1
                return False
            await self._wait_put(peer, lane, frame)
        peer.wake.set()
        return True

    async def _wait_put(self, peer: Connection, lane: Lane, frame: bytes) -> None:
        """Bounded wait for queue space; a peer that cannot drain in time is dropped."""
        self.stats["send_waits"] += 1
        peer.wake.set()  # whatever is queued must be moving for our turn to come
        admitted = lane.park(frame)
        try:
            await asyncio.wait((admitted, peer.closed_fut), timeout=self.config.send_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not admitted.done():
                admitted.cancel()  # gives up our place in line
        if not admitted.cancelled() and not peer.closed:
            return
        if not peer.closed:
            self.stats["send_stalls"] += 1
            self.disconnect(peer, "send queue did not drain in time")
        raise PeerNotConnected(f"peer {peer.peer_id.hex()[:16]}… disconnected while we "
                               "waited to send")

    def queue_nowait(self, peer: Connection, frame: bytes) -> bool:
        """Queue on the normal lane if there is room; False (nothing queued) otherwise."""
        if peer.norm.offer(frame):
            peer.wake.set()
            return True
        return False

    async def _write_loop(self, peer: Connection) -> None:
        channel = peer.channel
        writer = channel.writer
        transport = writer.transport
        with contextlib.suppress(Exception):
            transport.set_write_buffer_limits(high=_WRITE_HIGH_WATER)
        prio, norm, wake = peer.prio, peer.norm, peer.wake
        seal = channel.seal
        batch_limit = self.config.write_batch_bytes
        stats = self.stats
        reason = "writer stopped"
        try:
            while True:
                if not prio.items and not norm.items:
                    wake.clear()
                    await wake.wait()
                    continue
                parts: list[bytes] = []
                size = 0
                while size < batch_limit:
                    if prio.items:
                        sealed = seal(prio.pop())
                    elif norm.items:
                        sealed = seal(norm.pop())
                    else:
                        break
                    parts.append(sealed)
                    size += len(sealed)
                writer.write(parts[0] if len(parts) == 1 else b"".join(parts))
                peer.last_send = time.monotonic()
                stats["frames_out"] += len(parts)
                if transport.get_write_buffer_size() >= _WRITE_HIGH_WATER:
                    async with asyncio.timeout(self.config.send_timeout):
                        await writer.drain()
                elif transport.is_closing():
                    reason = "transport closed"
                    return
        except TimeoutError:
            reason = "peer stopped reading"
            self.stats["send_stalls"] += 1
        except FrameError as exc:
            reason = str(exc)
        except (OSError, RuntimeError) as exc:  # uvloop: RuntimeError on a closed transport
            reason = f"connection error: {exc}"
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error writing to %s", peer.peer_id.hex()[:16])
            reason = "internal error"
        finally:
            if not peer.closed and asyncio.current_task() is peer.writer_task:
                self.disconnect(peer, reason)

    # ------------------------------------------------------------------ upkeep

    def _peer_list_frame(self, exclude: bytes) -> bytes:
        """Peer exchange: the addresses of our connected peers (``discovery`` takes in
        what others send)."""
        addresses = [p.address for p in self.peers.values()
                     if p.address and p.peer_id != exclude][:MAX_PEX_ADDRESSES]
        return Envelope(Kind.PEERS, "", 0, PeerList(tuple(addresses)).encode()).encode()

    async def _maintenance_loop(self) -> None:
        """Once per tick: stalled frames, dead connections, keepalives, peer exchange."""
        cfg = self.config
        tick = max(0.02, min(1.0, cfg.frame_timeout / 4, cfg.idle_timeout / 4,
                             cfg.keepalive_interval / 4))
        next_pex = time.monotonic() + cfg.pex_interval
        ping = Envelope(Kind.PING, "", 0, b"").encode()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for peer in list(self.peers.values()):
                since = peer.channel.body_since
                if since and now - since > cfg.frame_timeout:
                    self.penalize(peer.peer_id, Penalty.STALLED_FRAME, "frame stalled")
                    self.disconnect(peer, "frame stalled")
                elif now - peer.last_recv > cfg.idle_timeout:
                    self.disconnect(peer, "idle timeout")
                elif now - peer.last_send > cfg.keepalive_interval:
                    self.queue_nowait(peer, ping)  # a busy lane: it hears from us anyway
            if cfg.pex and now >= next_pex:
                next_pex = now + cfg.pex_interval
                for peer in list(self.peers.values()):
                    self.queue_nowait(peer, self._peer_list_frame(peer.peer_id))


def check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic or len(topic.encode("utf-8")) > MAX_TOPIC_LEN:
        raise ValueError(f"topic must be a non-empty string of at most {MAX_TOPIC_LEN} bytes")
