"""The peer manager: ``P2P``, one per node, the transport's single public face.

``P2P`` keeps the constructor, attributes and methods callers use, and composes parts
that each own their state:

* ``connections.Connections``: listening, dialing, admitting, duplicate resolution,
  the per-peer reader and writer and their lanes;
* ``slots.Slots``: handshake and peer slots, per-IP limits, eviction (the "Slots");
* ``gossip.Gossip``: topics, publish/subscribe, de-duplication, merit, direct messages;
* ``requests.Requests``: request/response with concurrency budgets and timeouts;
* ``peerbook.PeerBook``: scores, penalties, bans (ids, addresses, IPs), eviction ranks
  and known addresses;
* ``discovery.Discovery``: seeds kept connected and peer-exchange addresses dialled.

``P2P`` itself routes what arrives to the part that handles it, and turns a penalty
that reaches ``ban_threshold`` into a ban and a disconnect. Nothing a peer sends can
raise out of the reader: the node never crashes on network input.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable

from smartchain.codec import MAX_LEN, CodecError
from smartchain.crypto.keys import PrivateKey
from smartchain.p2p.config import MiB, P2PConfig, Penalty
from smartchain.p2p.connections import Connection, Connections, PeerCallback
from smartchain.p2p.discovery import Discovery
from smartchain.p2p.errors import (
    BadRequest,
    DialError,
    PeerBanned,
    PeerNotConnected,
    Refused,
    RequestError,
    RequestTimeout,
)
from smartchain.p2p.gossip import Gossip, GossipHandler
from smartchain.p2p.messages import Envelope, Kind, format_address, parse_address
from smartchain.p2p.peerbook import PeerBook
from smartchain.p2p.requests import RequestHandler, Requests

__all__ = [
    "P2P",
    "BadRequest",
    "DialError",
    "GossipHandler",
    "P2PConfig",
    "PeerBanned",
    "PeerNotConnected",
    "Penalty",
    "Refused",
    "RequestError",
    "RequestHandler",
    "RequestTimeout",
]


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
        self.seeds = list(seeds)
        for seed in self.seeds:
            parse_address(seed)  # fail at construction on a malformed seed
        if not 4096 <= max_frame <= MAX_LEN:
            raise ValueError(f"max_frame must be between 4 KiB and {MAX_LEN} bytes")
        self.max_peers = max_peers
        self.max_frame = max_frame
        self.config = config or P2PConfig()
        self._seed_ids = frozenset(parse_address(s)[0] for s in self.seeds)
        self.protected = frozenset(protected) | self._seed_ids
        self.stats: Counter[str] = Counter()
        self.book = PeerBook(self.config, self.stats)
        self.connections = Connections(
            identity, network_id, host, port, max_peers, max_frame, self.config,
            self.protected, self.stats, self.book, penalize=self.penalize,
            dispatch=self._dispatch, on_closed=self._closed)
        self.gossip = Gossip(self.connections, self.book, self.stats, self.penalize)
        self.requests = Requests(self.connections, self.stats, self.penalize)
        self.discovery = Discovery(self.connections, self.book, self.seeds, self.stats,
                                   self.penalize)
        self.on_peer_connected: list[PeerCallback] = self.connections.on_peer_connected
        self.on_peer_disconnected: list[PeerCallback] = self.connections.on_peer_disconnected

    def protect(self, peer_ids: Iterable[bytes]) -> None:
        """Make ``peer_ids`` (and the seeds) the protected peers from now on: the signers
        change as the chain's signer sets do."""
        self.protected = frozenset(peer_ids) | self._seed_ids
        self.connections.protected = self.protected
        self.connections.slots.protected = self.protected

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        """The port we listen on (the one the OS chose, once started with port 0)."""
        return self.connections.port

    @property
    def address(self) -> str:
        """Our dialable address, ``pubkeyhex@host:port``."""
        return format_address(self.peer_id, self.config.advertise_host or self.host, self.port)

    async def start(self) -> None:
        """Listen, then dial the seeds (each kept connected with backoff)."""
        await self.connections.listen()
        self.discovery.start()

    async def stop(self) -> None:
        """Close every connection and task. Safe to call twice or before ``start``."""
        if self.connections.closing:
            return
        await self.connections.close()
        self.requests.fail_all()
        await self.connections.wait_closed()

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
        self.gossip.subscribe(topic, handler)

    def register_request(self, kind: str, handler: RequestHandler) -> None:
        """``handler(peer_id, payload) -> response``; one handler per kind (two
        subsystems answering the same kind would be a bug, so it raises)."""
        self.requests.register(kind, handler)

    async def publish(self, topic: str, payload: bytes, *, priority: bool = False) -> None:
        """Gossip to every connected peer (they relay onwards). Not delivered locally."""
        await self.gossip.publish(topic, payload, priority=priority)

    async def send(self, peer_id: bytes, topic: str, payload: bytes, *,
                   priority: bool = False) -> None:
        """A message for one peer's ``topic`` handlers; never relayed, never dropped
        (waits for queue space; raises ``PeerNotConnected`` if the peer goes away)."""
        await self.gossip.send(peer_id, topic, payload, priority=priority)

    async def request(self, peer_id: bytes, kind: str, payload: bytes,
                      timeout: float = 5.0) -> bytes:
        """Ask one peer; returns its response payload.

        Raises ``RequestTimeout`` (a ``TimeoutError``) after ``timeout`` seconds,
        ``RequestError`` when the peer answers with an error or disconnects, and
        ``PeerNotConnected`` when it is not connected.
        """
        return await self.requests.request(peer_id, kind, payload, timeout)

    async def connect(self, address: str) -> bytes:
        """Dial ``pubkeyhex@host:port``; returns the peer id once authenticated.

        The remote end must prove it holds the key in the address. Already connected:
        returns at once; a dial already in flight to that peer is joined, not repeated.
        """
        return await self.connections.connect(address)

    def connected_peers(self) -> list[bytes]:
        return list(self.connections.peers)

    def peer_addresses(self) -> list[str]:
        """Dialable addresses of the connected peers (those that listen)."""
        return [p.address for p in self.connections.peers.values() if p.address]

    def known_addresses(self) -> list[str]:
        """Every address learned from seeds and peer exchange (possibly stale)."""
        return list(self.book.known.values())

    def penalize(self, peer_id: bytes, points: int, reason: str) -> None:
        """Lower a peer's score; at ``ban_threshold`` disconnect and ban it."""
        now = time.monotonic()
        if self.book.penalize(peer_id, points, reason, now):
            conn = self.connections.peers.get(peer_id)
            self.book.ban(peer_id, reason, now, conn)
            if conn is not None:
                self.connections.disconnect(conn, f"banned: {reason}")

    def peer_score(self, peer_id: bytes) -> float:
        """Current score: 0 for a well-behaved peer, negative after penalties."""
        return self.book.peer_score(peer_id)

    def peer_rank(self, peer_id: bytes) -> float:
        """What eviction compares: merit earned by useful gossip plus the penalty score."""
        return self.book.peer_rank(peer_id)

    def is_banned(self, peer_id: bytes) -> bool:
        return self.book.is_banned(peer_id)

    # ------------------------------------------------------------------ routing

    async def _dispatch(self, peer: Connection, frame: bytes) -> None:
        """One frame from ``peer``'s reader, to the part that handles its kind."""
        try:
            env = Envelope.decode(frame)
        except CodecError as exc:
            self.penalize(peer.peer_id, Penalty.MALFORMED_MESSAGE, f"malformed envelope: {exc}")
            return
        kind = env.kind
        if kind == Kind.GOSSIP or kind == Kind.GOSSIP_PRIORITY:
            await self.gossip.on_gossip(peer, env, frame)
        elif kind == Kind.RESPONSE or kind == Kind.ERROR:
            self.requests.on_response(peer, env)
        elif kind == Kind.REQUEST:
            self.requests.on_request(peer, env)
        elif kind == Kind.DIRECT:
            await self.gossip.deliver(peer, env)
        elif kind == Kind.PEERS:
            self.discovery.on_peer_list(peer, env)
        elif kind == Kind.PING:
            pass
        else:
            self.penalize(peer.peer_id, Penalty.UNKNOWN_KIND, f"unknown message kind {kind}")

    def _closed(self, peer: Connection, reason: str) -> None:
        self.requests.fail_pending(peer, reason)
