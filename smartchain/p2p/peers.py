"""The peer manager: connections, gossip, direct messages, requests and peer exchange.

One ``P2P`` object per node. Every connection is a ``SecureChannel`` opened by the
handshake in ``handshake.py``; a peer is identified by its Ed25519 public key, never by
its address. Per connected peer there is one reader task (frames are handled in arrival
order, so a peer's consensus messages are seen in the order it sent them) and one writer
task fed by two bounded queues:

* the **priority** lane (consensus) is never dropped silently: when full, the sender
  waits for space, up to ``send_timeout``; a peer that does not drain in that time is
  disconnected (and the caller told), rather than quietly skipped;
* the **normal** lane carries transaction gossip (dropped when full and counted in
  ``stats["dropped_gossip"]``: a transaction is re-announced or fetched again, while
  buffering without bound would let one slow peer exhaust our memory), plus requests,
  responses and direct messages, which wait for space like priority ones.

The writer always empties the priority lane first.

Misbehaviour costs score (``penalize``): undecryptable, oversize or truncated frames,
malformed messages, handlers that raise, requests answered with ``BadRequest`` and
inbound floods beyond a per-peer token bucket. At ``ban_threshold`` the peer is
disconnected and banned (by id and by its dial address) for ``ban_seconds``. Nothing a
peer sends can raise out of the reader: the node never crashes on network input.

Duplicate connections to one peer (both sides dialling at once) are resolved the same way
on both ends: keep the connection initiated by the smaller public key; if the same side
initiated both, keep the newer one (it only re-dials when it believes the old one dead).

Slots, so that cheap connections and fresh identities cannot lock honest peers out:

* **Handshakes.** Each must finish within ``handshake_timeout``. At most
  ``max_inbound_per_ip`` inbound connections (handshaking or connected) come from one IP
  and ``max_inbound_per_subnet`` from one /24 (IPv4) or /48 (IPv6); loopback is exempt
  unless ``limit_loopback`` (a devnet runs every node on 127.0.0.1). Once
  ``ip_ban_after`` identities from one IP have been banned, the IP itself is (fresh
  identities are free, addresses are not). When all
  ``max_pending_handshakes`` are taken, a new connection evicts the oldest handshake of
  the subnet holding the most, rather than being refused.
* **Inbound and outbound.** Inbound peers take at most ``max_inbound`` of the
  ``max_peers`` slots, so our own dials always find room. Seeds and ``protected`` peers
  (the validators) are outside both limits and never evicted.
* **Eviction.** Peers earn merit (one point per gossip message they are first to deliver
  and our handlers accept, up to ``max_merit``); rank = merit + penalty score. With the
  inbound slots full, a newcomer ranked above the worst inbound peer (lowest rank, then
  most crowded subnet, then youngest) takes its slot, so a fresh identity (rank 0) can
  only replace a misbehaving one and never a proven peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ipaddress
import logging
import random
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from smartchain.codec import MAX_LEN, CodecError
from smartchain.crypto.keys import PrivateKey
from smartchain.p2p import handshake
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
    gossip_id,
    parse_address,
)

__all__ = [
    "P2P",
    "BadRequest",
    "DialError",
    "GossipHandler",
    "P2PConfig",
    "PeerBanned",
    "PeerNotConnected",
    "Penalty",
    "RequestError",
    "RequestHandler",
    "RequestTimeout",
]

log = logging.getLogger("smartchain.p2p")

GossipHandler = Callable[[bytes, bytes], Awaitable[bool | None]]
RequestHandler = Callable[[bytes, bytes], Awaitable[bytes]]
PeerCallback = Callable[[bytes], Any]

MiB = 1024 * 1024
_WRITE_HIGH_WATER = 1 * MiB  # socket buffer above which a write waits (bounded) for the peer
_STREAM_LIMIT = 256 * 1024
_MAX_ERROR_LEN = 1000


class BadRequest(ValueError):
    """Raised by a request handler when the request itself is invalid.

    The requester gets an error response *and* loses score, unlike any other handler
    exception, which only means we failed to serve it.
    """


class Refused(Exception):
    """Raised by a request handler that declines a valid request for an ordinary reason
    (full, busy): the requester gets "refused: …", loses no score, and nothing is logged as
    a failure (an honest client asking a full provider is not a bug on either side)."""




class PeerBanned(P2PError):
    """The peer id or address is banned for misbehaviour."""


class DialError(P2PError, ConnectionError):
    """The address could not be reached or refused us after the handshake."""


class RequestError(P2PError):
    """A request failed: the peer answered with an error or went away."""


class PeerNotConnected(RequestError, ConnectionError):
    """The peer is not (or no longer) connected. A ``RequestError`` so that callers of
    ``request`` handle every way a request can fail with one ``except``."""


class RequestTimeout(RequestError, TimeoutError):
    """No response within the request's timeout."""


class Penalty:
    """Score points per offence; the default ban threshold is -100."""

    CORRUPT_FRAME = 100  # failed authentication: a broken peer or tampering on the path
    OVERSIZE_FRAME = 100
    TRUNCATED_FRAME = 25
    STALLED_FRAME = 25
    MALFORMED_MESSAGE = 50
    UNKNOWN_KIND = 25
    HANDLER_ERROR = 10
    BAD_REQUEST = 20
    BAD_PEER_LIST = 20
    FLOOD = 100
    INVALID_TX = 25  # per gossiped transaction no honest relay would forward


@dataclass(frozen=True, slots=True)
class P2PConfig:
    """Tunables; the defaults suit a public network, tests shrink them."""

    handshake_timeout: float = 5.0
    frame_timeout: float = 30.0  # a frame whose body has started must finish within this
    idle_timeout: float = 90.0  # nothing received for this long => connection is dead
    keepalive_interval: float = 30.0  # send a PING when we have sent nothing for this long
    priority_queue_size: int = 1024
    normal_queue_size: int = 4096
    send_timeout: float = 10.0  # longest wait for queue/socket space before dropping a peer
    rate_frames: float = 5_000.0  # inbound token bucket per peer: frames per second...
    burst_frames: float = 10_000.0  # (an honest node sends tens to hundreds per second)
    rate_bytes: float = 256.0 * MiB  # ...and plaintext bytes per second
    burst_bytes: float = 512.0 * MiB
    ban_threshold: float = -100.0
    ban_seconds: float = 600.0
    score_recovery: float = 0.5  # points per second a negative score heals
    seen_cache: int = 100_000  # gossip ids remembered for de-duplication
    max_pending_handshakes: int = 64
    max_inbound: int = 40  # inbound peers; the rest of max_peers is kept for our own dials
    max_inbound_per_ip: int = 4  # inbound connections, handshaking or connected, per IP...
    max_inbound_per_subnet: int = 8  # ...and per /24 (IPv4) or /48 (IPv6)
    limit_loopback: bool = False  # apply the two above (and IP bans) to 127.0.0.0/8 and ::1
    ip_ban_after: int = 3  # identities from one IP banned within ban_seconds: ban the IP
    max_merit: float = 100.0  # cap on the points a peer earns by delivering gossip first
    max_inbound_requests: int = 64  # requests served concurrently per peer
    pex: bool = True  # peer exchange; False: send no addresses, dial none learned (seeds only)
    pex_interval: float = 30.0
    max_known: int = 1000
    seed_backoff_min: float = 0.1
    seed_backoff_max: float = 30.0
    write_batch_bytes: int = 256 * 1024
    advertise_host: str | None = None  # host put in our address when listening on 0.0.0.0


class _Lane:
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


class _Peer:
    """State of one live connection (a reconnect makes a new ``_Peer``)."""

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
        self.subnet = _subnet(self.host)
        self.prio = _Lane(cfg.priority_queue_size)
        self.norm = _Lane(cfg.normal_queue_size)
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


class P2P:
    """The node's network endpoint. See the module docstring for the guarantees."""

    def __init__(self, identity: PrivateKey, network_id: str, host: str = "127.0.0.1",
                 port: int = 0, seeds: Iterable[str] = (), max_peers: int = 50,
                 max_frame: int = 4 * MiB, *, config: P2PConfig | None = None,
                 protected: Iterable[bytes] = ()) -> None:
        """``protected``: peer ids (the validators) we always connect to and accept, in
        any slot situation, and never evict; the seeds are protected too."""
        self.identity = identity
        self.peer_id: bytes = identity.public_key
        self.network_id = network_id
        self.host = host
        self.port = port
        self.seeds = list(seeds)
        for seed in self.seeds:
            parse_address(seed)  # fail at construction on a malformed seed
        if not 4096 <= max_frame <= MAX_LEN:
            raise ValueError(f"max_frame must be between 4 KiB and {MAX_LEN} bytes")
        self.max_peers = max_peers
        self.max_frame = max_frame
        self.config = config or P2PConfig()
        self.protected = frozenset(protected) | {parse_address(s)[0] for s in self.seeds}
        self.stats: Counter[str] = Counter()
        self.on_peer_connected: list[PeerCallback] = []
        self.on_peer_disconnected: list[PeerCallback] = []
        self._topics: dict[str, list[GossipHandler]] = {}
        self._req_handlers: dict[str, RequestHandler] = {}
        self._peers: dict[bytes, _Peer] = {}
        self._known: dict[bytes, str] = {}
        self._scores: dict[bytes, tuple[float, float]] = {}
        self._merit: dict[bytes, float] = {}
        self._banned: dict[bytes, float] = {}
        self._banned_addrs: dict[str, float] = {}
        self._ip_bans: dict[str, list[float]] = {}  # host -> when its identities were banned
        self._banned_ips: dict[str, float] = {}
        self._seen: OrderedDict[bytes, None] = OrderedDict()
        self._pending: dict[int, tuple[_Peer, asyncio.Future[bytes]]] = {}
        self._next_req = 1
        self._dialing: dict[bytes, asyncio.Task[bytes]] = {}
        self._accepting: set[asyncio.Task[Any]] = set()
        # inbound connections not yet admitted: (host, subnet), oldest first
        self._handshaking: dict[asyncio.Task[Any], tuple[str, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._peer_tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self._started = False
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> str:
        """Our dialable address, ``pubkeyhex@host:port``."""
        return format_address(self.peer_id, self.config.advertise_host or self.host, self.port)

    async def start(self) -> None:
        """Listen, then dial the seeds (each kept connected with backoff)."""
        if self._started:
            raise P2PError("P2P already started")
        self._started = True
        self._server = await asyncio.start_server(self._on_accept, self.host, self.port,
                                                  limit=_STREAM_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        self._spawn(self._maintenance_loop(), "maintenance")
        for seed in self.seeds:
            key, _, _ = parse_address(seed)
            if key != self.peer_id:
                self._known.setdefault(key, seed)
                self._spawn(self._seed_loop(seed), f"seed {seed}")

    async def stop(self) -> None:
        """Close every connection and task. Safe to call twice or before ``start``."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for peer in list(self._peers.values()):
            self._disconnect(peer, "shutting down")
        tasks = [*self._tasks, *self._accepting, *self._dialing.values(), *self._peer_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RequestError("p2p stopped"))
        self._pending.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def __aenter__(self) -> P2P:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ public API

    def subscribe(self, topic: str, handler: GossipHandler) -> None:
        """``handler(peer_id, payload)`` for gossip and direct messages on ``topic``.

        Return ``False`` to stop a gossip message from being relayed (e.g. invalid or
        not useful to others); raising penalises the sender.
        """
        _check_topic(topic)
        self._topics.setdefault(topic, []).append(handler)

    def register_request(self, kind: str, handler: RequestHandler) -> None:
        """``handler(peer_id, payload) -> response``; one handler per kind (two
        subsystems answering the same kind would be a bug, so it raises)."""
        _check_topic(kind)
        if kind in self._req_handlers:
            raise ValueError(f"request kind {kind!r} already has a handler")
        self._req_handlers[kind] = handler

    async def publish(self, topic: str, payload: bytes, *, priority: bool = False) -> None:
        """Gossip to every connected peer (they relay onwards). Not delivered locally."""
        kind = Kind.GOSSIP_PRIORITY if priority else Kind.GOSSIP
        frame = self._message(kind, topic, 0, payload)
        self._mark_seen(gossip_id(topic, payload))
        self.stats["published"] += 1
        await self._broadcast(frame, None, priority)

    async def send(self, peer_id: bytes, topic: str, payload: bytes, *,
                   priority: bool = False) -> None:
        """A message for one peer's ``topic`` handlers; never relayed, never dropped
        (waits for queue space; raises ``PeerNotConnected`` if the peer goes away)."""
        peer = self._peer(peer_id)
        await self._enqueue(peer, self._message(Kind.DIRECT, topic, 0, payload),
                            priority=priority, droppable=False)

    async def request(self, peer_id: bytes, kind: str, payload: bytes,
                      timeout: float = 5.0) -> bytes:
        """Ask one peer; returns its response payload.

        Raises ``RequestTimeout`` (a ``TimeoutError``) after ``timeout`` seconds,
        ``RequestError`` when the peer answers with an error or disconnects, and
        ``PeerNotConnected`` when it is not connected.
        """
        peer = self._peer(peer_id)
        req_id = self._next_req
        self._next_req += 1
        frame = self._message(Kind.REQUEST, kind, req_id, payload)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (peer, fut)
        peer.pending.add(req_id)
        try:
            async with asyncio.timeout(timeout):
                await self._enqueue(peer, frame, priority=False, droppable=False)
                return await fut
        except TimeoutError:
            self.stats["request_timeouts"] += 1
            raise RequestTimeout(
                f"no response to {kind!r} from {peer_id.hex()[:16]}… within {timeout}s"
            ) from None
        finally:
            self._pending.pop(req_id, None)
            peer.pending.discard(req_id)

    def connected_peers(self) -> list[bytes]:
        return list(self._peers)

    def peer_addresses(self) -> list[str]:
        """Dialable addresses of the connected peers (those that listen)."""
        return [p.address for p in self._peers.values() if p.address]

    def known_addresses(self) -> list[str]:
        """Every address learned from seeds and peer exchange (possibly stale)."""
        return list(self._known.values())

    def penalize(self, peer_id: bytes, points: int, reason: str) -> None:
        """Lower a peer's score; at ``ban_threshold`` disconnect and ban it."""
        if points <= 0:
            return
        now = time.monotonic()
        score = self._score_at(peer_id, now) - points
        self._scores.pop(peer_id, None)
        self._scores[peer_id] = (score, now)
        if len(self._scores) > 10 * self.config.max_known:
            self._scores.pop(next(iter(self._scores)))  # oldest entry: bounded memory
        self.stats["penalties"] += 1
        log.info("peer %s penalised %d (%s); score %.0f",
                 peer_id.hex()[:16], points, reason, score)
        if score <= self.config.ban_threshold:
            self._ban(peer_id, reason, now)

    def peer_score(self, peer_id: bytes) -> float:
        """Current score: 0 for a well-behaved peer, negative after penalties."""
        return self._score_at(peer_id, time.monotonic())

    def peer_rank(self, peer_id: bytes) -> float:
        """What eviction compares: merit earned by useful gossip plus the penalty score."""
        return self._merit.get(peer_id, 0.0) + self.peer_score(peer_id)

    def is_banned(self, peer_id: bytes) -> bool:
        until = self._banned.get(peer_id)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._banned[peer_id]
            self._scores.pop(peer_id, None)
            return False
        return True

    async def connect(self, address: str) -> bytes:
        """Dial ``pubkeyhex@host:port``; returns the peer id once authenticated.

        The remote end must prove it holds the key in the address. Already connected:
        returns at once; a dial already in flight to that peer is joined, not repeated.
        """
        key, host, port = parse_address(address)
        if key == self.peer_id:
            raise P2PError("refusing to connect to ourselves")
        if not self._started or self._closing:
            raise P2PError("P2P is not running")
        if self.is_banned(key) or self._addr_banned(f"{host}:{port}"):
            raise PeerBanned(f"{address} is banned")
        if key in self._peers:
            return key
        task = self._dialing.get(key)
        if task is None:
            if key not in self.protected and self._slots_used() >= self.max_peers:
                raise DialError(f"max_peers ({self.max_peers}) reached")
            task = asyncio.get_running_loop().create_task(self._dial(key, host, port, address))
            self._dialing[key] = task
            task.add_done_callback(lambda t: self._dial_done(key, t))
        return await asyncio.shield(task)

    # ------------------------------------------------------------------ connections

    def _dial_done(self, key: bytes, task: asyncio.Task[bytes]) -> None:
        if self._dialing.get(key) is task:
            del self._dialing[key]
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

    async def _on_accept(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        """Inbound connection: handshake, then admit. Never raises."""
        task = asyncio.current_task()
        peername = writer.get_extra_info("peername")
        host = str(peername[0]) if isinstance(peername, tuple) and peername else ""
        if self._closing or task is None or not self._inbound_host_allowed(host):
            self.stats["refused_busy" if self._closing else "refused_ip_limit"] += 1
            writer.transport.close()
            return
        if self._handshaking and len(self._handshaking) >= self.config.max_pending_handshakes:
            self._evict_handshake()
        self._accepting.add(task)
        self._handshaking[task] = (host, _subnet(host))
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
            self._handshaking.pop(task, None)

    def _prefer_new(self, existing: _Peer, outbound: bool) -> bool:
        """Duplicate resolution; both ends reach the same verdict (module docstring)."""
        pid = existing.peer_id
        old_init = self.peer_id if existing.outbound else pid
        new_init = self.peer_id if outbound else pid
        if old_init == new_init:
            return True
        return new_init == min(self.peer_id, pid)

    def _admit(self, channel: SecureChannel, outbound: bool, address: str | None) -> _Peer | None:
        """Register an authenticated connection, or close it. Returns the live peer."""
        pid = channel.peer_id
        if self._closing:
            channel.close()
            return None
        if self.is_banned(pid):
            self.stats["refused_banned"] += 1
            channel.close()
            return None
        existing = self._peers.get(pid)
        if existing is not None:
            self.stats["duplicate_connections"] += 1
            if not self._prefer_new(existing, outbound):
                channel.close()
                return existing
        if address is None and channel.peer_listen_port:
            host = channel.remote_host()
            if host:
                address = format_address(pid, host, channel.peer_listen_port)
        if address is not None and self._addr_banned(_hostport(address)):
            self.stats["refused_banned"] += 1
            channel.close()
            return None
        if existing is None and not outbound and not self._inbound_room(pid):
            self.stats["refused_full"] += 1
            channel.close()
            return None
        peer = _Peer(channel, outbound, address, self.config)
        if existing is not None:
            existing.replaced = True
            self._disconnect(existing, "replaced by a duplicate connection")
        self._peers[pid] = peer
        if address:
            self._remember(pid, address)
        loop = asyncio.get_running_loop()
        peer.reader_task = loop.create_task(self._read_loop(peer))
        peer.writer_task = loop.create_task(self._write_loop(peer))
        for t in (peer.reader_task, peer.writer_task):
            self._peer_tasks.add(t)
            t.add_done_callback(self._peer_tasks.discard)
        if self.config.pex:
            peer.norm.offer(self._peer_list_frame(exclude=pid))
        peer.wake.set()
        self.stats["connections"] += 1
        log.debug("connected to %s (%s)", pid.hex()[:16], "out" if outbound else "in")
        if existing is None:
            self._fire(self.on_peer_connected, pid)
        return peer

    def _slots_used(self) -> int:
        """Connections and dials in flight that count against ``max_peers``."""
        protected = self.protected
        return (sum(1 for pid in self._peers if pid not in protected)
                + sum(1 for pid in self._dialing if pid not in protected))

    def _inbound_room(self, pid: bytes) -> bool:
        """Whether an authenticated inbound ``pid`` may stay, evicting a worse inbound
        peer if that is what it takes (module docstring, "Slots")."""
        if pid in self.protected:
            return True
        inbound = [p for p in self._peers.values()
                   if not p.outbound and p.peer_id not in self.protected]
        limit = min(self.config.max_inbound, self.max_peers)
        if len(inbound) < limit and self._slots_used() < self.max_peers:
            return True
        if not inbound:
            return False
        crowd = Counter(p.subnet for p in inbound)
        worst = min(inbound, key=lambda p: (self.peer_rank(p.peer_id), -crowd[p.subnet],
                                            -p.connected_at))
        if self.peer_rank(pid) <= self.peer_rank(worst.peer_id):
            return False
        self.stats["evictions"] += 1
        self._disconnect(worst, "evicted for a better-ranked peer")
        return True

    def _inbound_host_allowed(self, host: str) -> bool:
        """IP bans, and per-IP and per-subnet limits on inbound connections, checked
        before the handshake so that one address cannot hold every handshake slot."""
        cfg = self.config
        if not self._limited(host):
            return True
        until = self._banned_ips.get(host)
        if until is not None:
            if until > time.monotonic():
                return False
            del self._banned_ips[host]
        subnet = _subnet(host)
        places = [(p.host, p.subnet) for p in self._peers.values() if not p.outbound]
        places += self._handshaking.values()
        same_ip = sum(1 for h, _ in places if h == host)
        same_net = sum(1 for _, n in places if n == subnet)
        return same_ip < cfg.max_inbound_per_ip and same_net < cfg.max_inbound_per_subnet

    def _limited(self, host: str) -> bool:
        """Whether per-IP limits and IP bans apply to ``host`` (not to loopback, unless
        ``limit_loopback``; not to a non-IP socket)."""
        try:
            return not _ip(host).is_loopback or self.config.limit_loopback
        except ValueError:
            return False

    def _note_ip_ban(self, host: str, now: float) -> None:
        """A fresh identity costs an attacker nothing; its IP does. After ``ip_ban_after``
        banned identities from one IP within ``ban_seconds``, refuse that IP outright."""
        cfg = self.config
        recent = [t for t in self._ip_bans.pop(host, []) if t > now - cfg.ban_seconds]
        recent.append(now)
        self._ip_bans[host] = recent
        if len(self._ip_bans) > 10 * cfg.max_known:
            self._ip_bans.pop(next(iter(self._ip_bans)))
        if len(recent) >= cfg.ip_ban_after:
            self._banned_ips[host] = now + cfg.ban_seconds
            self.stats["ip_bans"] += 1
            log.warning("banned IP %s for %.0fs: %d of its identities banned", host,
                        cfg.ban_seconds, len(recent))

    def _evict_handshake(self) -> None:
        """All handshake slots taken: drop the oldest handshake of the most crowded
        subnet, so a flood of half-open connections makes room instead of blocking."""
        crowd = Counter(n for _, n in self._handshaking.values())
        top = max(crowd.values())
        victim = next(t for t, (_, n) in self._handshaking.items() if crowd[n] == top)
        del self._handshaking[victim]
        victim.cancel()
        self.stats["handshakes_evicted"] += 1

    def _disconnect(self, peer: _Peer, reason: str) -> None:
        """Tear one connection down; idempotent, callable from the peer's own tasks."""
        if peer.closed:
            return
        peer.closed = True
        log.debug("disconnecting %s: %s", peer.peer_id.hex()[:16], reason)
        if self._peers.get(peer.peer_id) is peer:
            del self._peers[peer.peer_id]
        peer.channel.close()
        current = asyncio.current_task()
        for task in (peer.reader_task, peer.writer_task, *peer.tasks):
            if task is not None and task is not current:
                task.cancel()
        peer.closed_fut.set_result(None)
        peer.prio.clear()  # free memory; blocked senders are woken by closed_fut
        peer.norm.clear()
        for req_id in list(peer.pending):
            entry = self._pending.pop(req_id, None)
            if entry is not None and not entry[1].done():
                entry[1].set_exception(RequestError(
                    f"peer {peer.peer_id.hex()[:16]}… disconnected ({reason})"))
        peer.pending.clear()
        self.stats["disconnections"] += 1
        if not peer.replaced:
            self._fire(self.on_peer_disconnected, peer.peer_id)

    def _peer(self, peer_id: bytes) -> _Peer:
        peer = self._peers.get(peer_id)
        if peer is None:
            raise PeerNotConnected(f"peer {peer_id.hex()[:16]}… is not connected")
        return peer

    # ------------------------------------------------------------------ reading

    async def _read_loop(self, peer: _Peer) -> None:
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
                await self._dispatch(peer, frame)
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
            self._disconnect(peer, reason)

    async def _dispatch(self, peer: _Peer, frame: bytes) -> None:
        try:
            env = Envelope.decode(frame)
        except CodecError as exc:
            self.penalize(peer.peer_id, Penalty.MALFORMED_MESSAGE, f"malformed envelope: {exc}")
            return
        kind = env.kind
        if kind == Kind.GOSSIP or kind == Kind.GOSSIP_PRIORITY:
            await self._on_gossip(peer, env, frame)
        elif kind == Kind.RESPONSE or kind == Kind.ERROR:
            self._on_response(peer, env)
        elif kind == Kind.REQUEST:
            self._on_request(peer, env)
        elif kind == Kind.DIRECT:
            await self._deliver(peer, env)
        elif kind == Kind.PEERS:
            self._on_peer_list(peer, env)
        elif kind == Kind.PING:
            pass
        else:
            self.penalize(peer.peer_id, Penalty.UNKNOWN_KIND, f"unknown message kind {kind}")

    async def _deliver(self, peer: _Peer, env: Envelope) -> bool:
        """Run the topic's handlers; True when the message may be relayed."""
        handlers = self._topics.get(env.topic)
        if not handlers:
            self.stats["unknown_topic"] += 1
            return False
        relay = True
        for handler in handlers:
            try:
                if await handler(peer.peer_id, env.payload) is False:
                    relay = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["handler_errors"] += 1
                self.penalize(peer.peer_id, Penalty.HANDLER_ERROR,
                              f"handler for {env.topic!r} rejected a message: {exc!r}")
                return False
        return relay

    async def _on_gossip(self, peer: _Peer, env: Envelope, frame: bytes) -> None:
        mid = gossip_id(env.topic, env.payload)
        seen = self._seen
        if mid in seen:
            self.stats["gossip_duplicates"] += 1
            return
        seen[mid] = None
        if len(seen) > self.config.seen_cache:
            seen.popitem(last=False)
        self.stats["gossip_received"] += 1
        if await self._deliver(peer, env):
            self._credit(peer.peer_id)
            await self._broadcast(frame, peer.peer_id, env.kind == Kind.GOSSIP_PRIORITY)

    def _on_request(self, peer: _Peer, env: Envelope) -> None:
        handler = self._req_handlers.get(env.topic)
        if handler is None:
            self._reply_nowait(peer, Envelope(Kind.ERROR, "", env.req_id,
                                              f"unknown request kind {env.topic!r}".encode()))
            return
        if peer.inflight >= self.config.max_inbound_requests:
            self.stats["requests_refused_busy"] += 1
            self._reply_nowait(peer, Envelope(Kind.ERROR, "", env.req_id,
                                              b"too many concurrent requests"))
            return
        peer.inflight += 1
        task = asyncio.get_running_loop().create_task(self._serve(peer, handler, env))
        peer.tasks.add(task)
        self._peer_tasks.add(task)
        task.add_done_callback(peer.tasks.discard)
        task.add_done_callback(self._peer_tasks.discard)

    async def _serve(self, peer: _Peer, handler: RequestHandler, env: Envelope) -> None:
        pid = peer.peer_id
        try:
            try:
                result = await handler(pid, env.payload)
                if not isinstance(result, bytes):
                    raise TypeError(f"request handler returned {type(result).__name__}, "
                                    "not bytes")
                reply = Envelope(Kind.RESPONSE, "", env.req_id, result)
                if len(result) > self.max_frame - 64:
                    reply = Envelope(Kind.ERROR, "", env.req_id, b"response too large")
            except BadRequest as exc:
                self.stats["bad_requests"] += 1
                self.penalize(pid, Penalty.BAD_REQUEST, f"bad {env.topic!r} request: {exc}")
                reply = Envelope(Kind.ERROR, "", env.req_id,
                                 _error_text(f"bad request: {exc}"))
            except asyncio.CancelledError:
                raise
            except LookupError as exc:  # "not here": an ordinary answer, not a fault
                reply = Envelope(Kind.ERROR, "", env.req_id, _error_text(f"not found: {exc}"))
            except Refused as exc:
                reply = Envelope(Kind.ERROR, "", env.req_id, _error_text(f"refused: {exc}"))
            except Exception as exc:
                log.warning("request handler %r failed", env.topic, exc_info=True)
                reply = Envelope(Kind.ERROR, "", env.req_id,
                                 _error_text(f"{env.topic} failed: {type(exc).__name__}: {exc}"))
            if not peer.closed:
                await self._enqueue(peer, reply.encode(), priority=False, droppable=False)
        except PeerNotConnected:
            pass
        finally:
            peer.inflight -= 1

    def _reply_nowait(self, peer: _Peer, env: Envelope) -> None:
        """Immediate error replies from the reader: dropped if the lane is full (the
        requester times out) rather than letting a flood of requests block the reader."""
        if peer.norm.offer(env.encode()):
            peer.wake.set()
        else:
            self.stats["dropped_replies"] += 1

    def _on_response(self, peer: _Peer, env: Envelope) -> None:
        entry = self._pending.get(env.req_id)
        if entry is None or entry[0] is not peer:
            self.stats["unmatched_responses"] += 1  # late (after a timeout) or bogus
            return
        fut = entry[1]
        if fut.done():
            return
        if env.kind == Kind.RESPONSE:
            fut.set_result(env.payload)
        else:
            text = env.payload[:_MAX_ERROR_LEN].decode("utf-8", "replace")
            fut.set_exception(RequestError(f"peer {peer.peer_id.hex()[:16]}… answered: {text}"))

    def _on_peer_list(self, peer: _Peer, env: Envelope) -> None:
        if not self.config.pex:
            return  # seeds only: learned addresses are neither kept nor dialled
        try:
            addresses = PeerList.decode(env.payload).addresses
            if len(addresses) > MAX_PEX_ADDRESSES:
                raise ValueError("too many addresses")
        except ValueError as exc:  # CodecError is a ValueError
            self.penalize(peer.peer_id, Penalty.BAD_PEER_LIST, f"bad peer list: {exc}")
            return
        fresh: list[str] = []
        for address in addresses:
            try:
                key, host, port = parse_address(address)
            except ValueError:
                self.stats["bad_peer_addresses"] += 1
                continue
            if (key == self.peer_id or key in self._peers or key in self._dialing
                    or key in self._known or self.is_banned(key)
                    or self._addr_banned(f"{host}:{port}")):
                continue
            self._remember(key, address)
            fresh.append(address)
        room = self.max_peers - self._slots_used()
        for address in fresh[:max(0, room)]:
            self._spawn(self._dial_discovered(address), f"dial {address}")

    async def _dial_discovered(self, address: str) -> None:
        key, _, _ = parse_address(address)
        try:
            await self.connect(address)
            self.stats["pex_dials"] += 1
        except (P2PError, OSError, ValueError) as exc:
            self.stats["pex_dial_failures"] += 1
            log.debug("could not dial discovered peer %s: %s", address, exc)
            if self._known.get(key) == address:  # unreachable or not who it claimed
                del self._known[key]

    # ------------------------------------------------------------------ writing

    def _message(self, kind: int, topic: str, req_id: int, payload: bytes) -> bytes:
        _check_topic(topic)
        if not isinstance(payload, bytes):
            raise TypeError("payload must be bytes")
        frame = Envelope(kind, topic, req_id, payload).encode()
        if len(frame) > self.max_frame:
            raise ValueError(f"message of {len(frame)} bytes exceeds max_frame {self.max_frame}")
        return frame

    async def _broadcast(self, frame: bytes, exclude: bytes | None, priority: bool) -> None:
        """Queue ``frame`` for every peer but ``exclude``; waits only on full priority
        lanes, and then for all such peers at once (one slow peer costs one bounded wait)."""
        waits: list[Awaitable[bool]] = []
        stats = self.stats
        for peer in self._peers.values():
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

    async def _enqueue_quiet(self, peer: _Peer, frame: bytes) -> bool:
        try:
            return await self._enqueue(peer, frame, priority=True, droppable=False)
        except PeerNotConnected:
            return False

    async def _enqueue(self, peer: _Peer, frame: bytes, *, priority: bool,
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

    async def _wait_put(self, peer: _Peer, lane: _Lane, frame: bytes) -> None:
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
            self._disconnect(peer, "send queue did not drain in time")
        raise PeerNotConnected(f"peer {peer.peer_id.hex()[:16]}… disconnected while we "
                               "waited to send")

    async def _write_loop(self, peer: _Peer) -> None:
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
                self._disconnect(peer, reason)

    # ------------------------------------------------------------------ housekeeping

    def _peer_list_frame(self, exclude: bytes) -> bytes:
        addresses = [p.address for p in self._peers.values()
                     if p.address and p.peer_id != exclude][:MAX_PEX_ADDRESSES]
        return Envelope(Kind.PEERS, "", 0, PeerList(tuple(addresses)).encode()).encode()

    def _remember(self, key: bytes, address: str) -> None:
        known = self._known
        if key not in known and len(known) >= self.config.max_known:
            for old in list(known):  # evict the oldest address we are not connected to
                if old not in self._peers:
                    del known[old]
                    break
            else:
                return
        known[key] = address

    def _mark_seen(self, mid: bytes) -> None:
        self._seen[mid] = None
        if len(self._seen) > self.config.seen_cache:
            self._seen.popitem(last=False)

    def _credit(self, peer_id: bytes) -> None:
        """One point of merit for a useful first delivery (bounded memory, like scores)."""
        merit = self._merit
        merit[peer_id] = min(self.config.max_merit, merit.pop(peer_id, 0.0) + 1.0)
        if len(merit) > 10 * self.config.max_known:
            merit.pop(next(iter(merit)))

    def _score_at(self, peer_id: bytes, now: float) -> float:
        entry = self._scores.get(peer_id)
        if entry is None:
            return 0.0
        score, at = entry
        return min(0.0, score + (now - at) * self.config.score_recovery)

    def _addr_banned(self, hostport: str) -> bool:
        until = self._banned_addrs.get(hostport)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._banned_addrs[hostport]
            return False
        return True

    def _ban(self, peer_id: bytes, reason: str, now: float) -> None:
        until = now + self.config.ban_seconds
        self._banned[peer_id] = until
        peer = self._peers.get(peer_id)
        self._known.pop(peer_id, None)
        if peer is not None and peer.outbound and peer.address:
            # Only an address we dialled and found this identity at: an inbound peer's
            # listen port is its own claim and could name somebody else's endpoint.
            self._banned_addrs[_hostport(peer.address)] = until
        if peer is not None and not peer.outbound and self._limited(peer.host):
            self._note_ip_ban(peer.host, now)
        self.stats["bans"] += 1
        log.warning("banned peer %s for %.0fs: %s", peer_id.hex()[:16],
                    self.config.ban_seconds, reason)
        if peer is not None:
            self._disconnect(peer, f"banned: {reason}")

    async def _seed_loop(self, seed: str) -> None:
        """Keep one seed connected: retry with exponential backoff (with jitter), and
        count a connection that dies within a second as a failure too."""
        cfg = self.config
        key, _, _ = parse_address(seed)
        backoff = cfg.seed_backoff_min
        while not self._closing:
            peer = self._peers.get(key)
            if peer is None:
                if self.is_banned(key):
                    await asyncio.sleep(max(cfg.seed_backoff_min,
                                            self._banned.get(key, 0.0) - time.monotonic()))
                    continue
                try:
                    await self.connect(seed)
                except asyncio.CancelledError:
                    raise
                except (P2PError, OSError, RuntimeError) as exc:  # RuntimeError: uvloop
                    log.debug("seed %s unreachable: %s", seed, exc)
                    await asyncio.sleep(backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, cfg.seed_backoff_max)
                    continue
                peer = self._peers.get(key)
                if peer is None:
                    continue
            await asyncio.shield(peer.closed_fut)
            if time.monotonic() - peer.connected_at < 1.0:
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, cfg.seed_backoff_max)
            else:
                backoff = cfg.seed_backoff_min

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
            for peer in list(self._peers.values()):
                since = peer.channel.body_since
                if since and now - since > cfg.frame_timeout:
                    self.penalize(peer.peer_id, Penalty.STALLED_FRAME, "frame stalled")
                    self._disconnect(peer, "frame stalled")
                elif now - peer.last_recv > cfg.idle_timeout:
                    self._disconnect(peer, "idle timeout")
                elif now - peer.last_send > cfg.keepalive_interval:
                    self._queue_nowait(peer, ping)
            if cfg.pex and now >= next_pex:
                next_pex = now + cfg.pex_interval
                for peer in list(self._peers.values()):
                    self._queue_nowait(peer, self._peer_list_frame(peer.peer_id))

    def _queue_nowait(self, peer: _Peer, frame: bytes) -> None:
        if peer.norm.offer(frame):
            peer.wake.set()
        # else: the lane is busy, so the peer is hearing from us anyway

    def _spawn(self, coro: Awaitable[Any], what: str) -> asyncio.Task[Any]:
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
                    self._spawn(result, "peer callback")
            except Exception:
                log.exception("peer callback %r failed", callback)


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic or len(topic.encode("utf-8")) > MAX_TOPIC_LEN:
        raise ValueError(f"topic must be a non-empty string of at most {MAX_TOPIC_LEN} bytes")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone index
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _subnet(host: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) a host is in: one operator's addresses, roughly."""
    try:
        ip = _ip(host)
    except ValueError:
        return host
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _hostport(address: str) -> str:
    """``host:port`` of an address, spelled as ``connect`` spells it for ban lookups."""
    _, host, port = parse_address(address)
    return f"{host}:{port}"


def _error_text(text: str) -> bytes:
    return text.encode("utf-8")[:_MAX_ERROR_LEN]
