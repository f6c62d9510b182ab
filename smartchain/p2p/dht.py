"""Kademlia DHT: finds peers and storage-piece providers without any central index.

Why Kademlia: lookups take O(log N) round trips, every answer a peer gives also teaches
us about the network, and the XOR metric is symmetric, so the peers that ask us are the
peers we need to know. A peer's DHT node id is the BLAKE2b-256 hash of its peer id (its
Ed25519 public key): keys are uniformly spread, so no one places themselves next to a
key by choosing a lucky key pair cheaply, and the id can be checked by anyone.

Pieces:

* ``RoutingTable``: 256 k-buckets ordered least-recently-seen first. A full bucket keeps
  its old contacts while they answer a liveness ping (long-lived peers tend to stay up);
  newcomers wait in a per-bucket replacement cache and take the place of a contact that
  stops answering.
* ``DhtNode``: the RPCs (``dht/ping``, ``dht/find_node``, ``dht/add_provider``,
  ``dht/get_providers``, all canonical codec structs) and the iterative lookup, written
  against the ``RequestTransport`` protocol so the real P2P transport and the in-memory
  one of the simulation tests plug in alike.

Malformed requests raise ``DhtMessageError`` (the transport's ``BadRequest``, a
``ValueError``) so the transport penalises the sender. A peer that fails a request is
dropped from the routing table.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from smartchain.codec import U32, U64, Bool, CodecError, Fixed32, Str, Struct, list_of, optional
from smartchain.crypto.hashing import h256
from smartchain.p2p.peers import BadRequest

__all__ = [
    "ALPHA",
    "DEFAULT_PROVIDER_TTL",
    "ID_BITS",
    "KIND_ADD_PROVIDER",
    "KIND_FIND_NODE",
    "KIND_GET_PROVIDERS",
    "KIND_PING",
    "AddProviderRequest",
    "AddProviderResponse",
    "Contact",
    "ContactRecord",
    "DhtError",
    "DhtMessageError",
    "DhtNode",
    "FindNodeRequest",
    "FindNodeResponse",
    "GetProvidersRequest",
    "GetProvidersResponse",
    "K",
    "LookupResult",
    "PingRequest",
    "PingResponse",
    "ProviderStore",
    "RequestHandler",
    "RequestTransport",
    "RoutingTable",
    "bucket_index",
    "distance",
    "make_address",
    "node_id_of",
    "parse_address",
]

K = 20  # bucket size and lookup width: the paper's k
ALPHA = 3  # parallel queries per lookup round
ID_BITS = 256
ID_SIZE = ID_BITS // 8
PEER_ID_SIZE = 32

REQUEST_TIMEOUT = 5.0  # seconds, per RPC
PING_INTERVAL = 30.0  # a contact heard from this recently is not pinged again before eviction
FAIL_QUARANTINE = 60.0  # a failed peer is not re-learned from third parties for this long
DEFAULT_PROVIDER_TTL = 24 * 3600  # providers re-announce well within a day
MAX_PROVIDER_TTL = 48 * 3600
MAX_PROVIDERS_PER_KEY = 64
MAX_PROVIDER_KEYS = 65_536
MAX_ADDRESS_LEN = 300  # as the transport's own address parser
MAX_FAILED_REMEMBERED = 4096  # quarantine entries kept (oldest forgotten first)
MAX_CONNECTED_CACHE = 4096  # peers we assume the transport still has a connection to
MAX_CONTACTS_PER_RESPONSE = 64  # honest peers send at most their k (20); more is abuse

KIND_PING = "dht/ping"
KIND_FIND_NODE = "dht/find_node"
KIND_ADD_PROVIDER = "dht/add_provider"
KIND_GET_PROVIDERS = "dht/get_providers"


class DhtError(Exception):
    """A DHT operation could not be carried out (no reachable seed, no listen address)."""


class DhtMessageError(BadRequest):
    """A peer sent a malformed or inconsistent DHT message.

    A ``BadRequest`` (hence a ``ValueError``): raised from a request handler, it makes the
    transport answer with an error and cut the sender's score.
    """


RequestHandler = Callable[[bytes, bytes], Awaitable[bytes]]


class RequestTransport(Protocol):
    """What the DHT needs from the P2P layer: authenticated request/response between peers."""

    def register_request(self, kind: str, handler: RequestHandler) -> None:
        """Route inbound requests of ``kind`` to ``handler(peer_id, payload) -> response``."""
        ...

    async def request(self, peer_id: bytes, kind: str, payload: bytes,
                      timeout: float = 5.0) -> bytes:
        """Send a request and return the response; raise on failure or timeout."""
        ...

    async def connect(self, address: str) -> bytes:
        """Dial ``pubkeyhex@host:port`` and return the authenticated peer id."""
        ...


# --- ids, distance, addresses ----------------------------------------------------------


def node_id_of(peer_id: bytes) -> bytes:
    """DHT id of a peer: hashing spreads ids uniformly whatever keys peers pick."""
    return h256(peer_id)


def distance(a: bytes, b: bytes) -> int:
    """Kademlia's XOR metric as an integer (0 only for equal ids)."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def bucket_index(own_id: bytes, other_id: bytes) -> int:
    """Index of the bucket ``other_id`` belongs in: position of the highest differing bit.

    Bucket 255 holds the half of the id space farthest from us, bucket 0 the single id
    that differs only in the last bit.
    """
    d = distance(own_id, other_id)
    if d == 0:
        raise ValueError("a node is not in its own routing table")
    return d.bit_length() - 1


# key @ host : port, host a DNS name, IPv4 or bracketed IPv6 literal (no spaces, "@", "/")
_ADDRESS = re.compile(r"([0-9a-fA-F]{64})@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")


def parse_address(address: str) -> tuple[bytes, str, int]:
    """Split ``pubkeyhex@host:port`` into (peer id, host, port); ``DhtMessageError`` if bad.

    The address names the key it belongs to, so a contact cannot pair one peer's id with
    another peer's host.
    """
    if type(address) is not str or len(address) > MAX_ADDRESS_LEN:
        raise DhtMessageError("address missing or too long")
    m = _ADDRESS.fullmatch(address)
    if m is None or not 0 < int(m[3]) < 65536:
        raise DhtMessageError(f"address is not pubkeyhex@host:port: {address!r}")
    return bytes.fromhex(m[1]), m[2], int(m[3])


def make_address(peer_id: bytes, host: str, port: int) -> str:
    """The ``pubkeyhex@host:port`` form the transport dials (IPv6 hosts in brackets)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    address = f"{peer_id.hex()}@{host}:{port}"
    parse_address(address)
    return address


@dataclass(frozen=True, slots=True)
class Contact:
    """A peer we can reach: its id and dial address (checked to name the same key)."""

    peer_id: bytes
    address: str
    node_id: bytes = field(init=False, repr=False, compare=False)
    node_int: int = field(init=False, repr=False, compare=False)  # node id as int, for XOR
    _record: ContactRecord = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.peer_id) is not bytes or len(self.peer_id) != PEER_ID_SIZE:
            raise DhtMessageError("peer id must be 32 bytes")
        if parse_address(self.address)[0] != self.peer_id:
            raise DhtMessageError("address names a different peer id")
        node_id = node_id_of(self.peer_id)
        object.__setattr__(self, "node_id", node_id)
        object.__setattr__(self, "node_int", int.from_bytes(node_id, "big"))
        object.__setattr__(self, "_record", ContactRecord(self.peer_id, self.address))

    def record(self) -> ContactRecord:
        return self._record

    @classmethod
    def from_record(cls, record: ContactRecord) -> Contact:
        """Validated contact of a wire record; shared when the same record comes back."""
        return _contact_of(record.peer_id, record.address)


@functools.lru_cache(maxsize=8192)
def _contact_of(peer_id: bytes, address: str) -> Contact:
    # the same neighbours appear in answer after answer: parse and hash each once
    return Contact(peer_id, address)


# --- wire messages ----------------------------------------------------------------------
# Every request carries the sender's own listen address (None for peers that do not
# accept connections) so the receiver can add it to its routing table: the transport
# authenticates the peer id, the address must name that same id.


@dataclass(frozen=True, slots=True)
class ContactRecord(Struct):
    peer_id: Fixed32
    address: Str


@dataclass(frozen=True, slots=True)
class PingRequest(Struct):
    sender: optional[Str]
    nonce: U64


@dataclass(frozen=True, slots=True)
class PingResponse(Struct):
    nonce: U64


@dataclass(frozen=True, slots=True)
class FindNodeRequest(Struct):
    sender: optional[Str]
    target: Fixed32


@dataclass(frozen=True, slots=True)
class FindNodeResponse(Struct):
    contacts: list_of[ContactRecord]


@dataclass(frozen=True, slots=True)
class AddProviderRequest(Struct):
    """Announce the sender as a provider of ``key``; ``ttl_s == 0`` withdraws it."""

    sender: optional[Str]
    key: Fixed32
    ttl_s: U32


@dataclass(frozen=True, slots=True)
class AddProviderResponse(Struct):
    stored: Bool


@dataclass(frozen=True, slots=True)
class GetProvidersRequest(Struct):
    sender: optional[Str]
    key: Fixed32


@dataclass(frozen=True, slots=True)
class GetProvidersResponse(Struct):
    """Known providers plus closer nodes, so one RPC serves both steps of a lookup."""

    providers: list_of[ContactRecord]
    closer: list_of[ContactRecord]


# --- routing table ------------------------------------------------------------------------


class _Entry:
    __slots__ = ("contact", "seen")

    def __init__(self, contact: Contact, seen: float | None) -> None:
        self.contact = contact
        self.seen = seen  # clock time we last heard from it; None = only heard *about* it


class RoutingTable:
    """256 k-buckets of contacts, least-recently-seen first, each with a replacement cache.

    ``add`` never evicts on its own: when a bucket is full it parks the newcomer in the
    replacement cache and returns the bucket's oldest contact, which the caller pings;
    an answer keeps it (``add`` it again), silence removes it (``remove``), which promotes
    the most recently seen replacement. Contacts we only heard about from third parties
    (``verified=False``) fill free slots but rank as oldest and never trigger a ping.
    """

    def __init__(self, own_id: bytes, k: int = K,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if len(own_id) != ID_SIZE or k < 1:
            raise ValueError("own id must be 32 bytes and k positive")
        self.own_id = own_id
        self.k = k
        self._clock = clock
        self._own = int.from_bytes(own_id, "big")
        # created on demand: most of the 256 buckets of a node stay empty
        self._buckets: dict[int, OrderedDict[bytes, _Entry]] = {}
        self._spares: dict[int, OrderedDict[bytes, _Entry]] = {}
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def __contains__(self, node_id: object) -> bool:
        if not isinstance(node_id, bytes) or node_id == self.own_id:
            return False
        bucket = self._buckets.get(self.bucket_index(node_id))
        return bucket is not None and node_id in bucket

    def bucket_index(self, node_id: bytes) -> int:
        return bucket_index(self.own_id, node_id)

    def get(self, node_id: bytes) -> Contact | None:
        if node_id not in self:
            return None
        return self._buckets[self.bucket_index(node_id)][node_id].contact

    def last_seen(self, node_id: bytes) -> float | None:
        """When we last heard from this contact; None if never (or not in the table)."""
        if node_id not in self:
            return None
        return self._buckets[self.bucket_index(node_id)][node_id].seen

    def bucket(self, index: int) -> list[Contact]:
        """Contacts of one bucket, least recently seen first."""
        return [e.contact for e in self._buckets.get(index, {}).values()]

    def replacements(self, index: int) -> list[Contact]:
        """Replacement cache of one bucket, most recently seen last."""
        return [e.contact for e in self._spares.get(index, {}).values()]

    def contacts(self) -> list[Contact]:
        return [e.contact for i in sorted(self._buckets) for e in self._buckets[i].values()]

    def nonempty_buckets(self) -> list[int]:
        return sorted(i for i, b in self._buckets.items() if b)

    def add(self, contact: Contact, *, verified: bool = True) -> Contact | None:
        """Insert or refresh ``contact``; return the contact to ping if its bucket is full."""
        nid = contact.node_id
        if nid == self.own_id:
            return None
        i = self.bucket_index(nid)
        bucket = self._buckets.get(i)
        if bucket is None:
            bucket = self._buckets[i] = OrderedDict()
        entry = bucket.get(nid)
        if entry is not None:
            if verified:  # only the peer itself may move its address or its rank
                entry.contact = contact
                entry.seen = self._clock()
                bucket.move_to_end(nid)
            return None
        if len(bucket) < self.k:
            self._insert(bucket, _Entry(contact, self._clock() if verified else None))
            self._size += 1
            return None
        spares = self._spares.get(i)
        if spares is None:
            spares = self._spares[i] = OrderedDict()
        old = spares.get(nid)
        if old is None:
            self._insert(spares, _Entry(contact, self._clock() if verified else None))
            while len(spares) > self.k:
                spares.popitem(last=False)
        elif verified:
            old.contact, old.seen = contact, self._clock()
            spares.move_to_end(nid)
        if not verified:
            return None
        return next(iter(bucket.values())).contact

    @staticmethod
    def _insert(od: OrderedDict[bytes, _Entry], entry: _Entry) -> None:
        nid = entry.contact.node_id
        od[nid] = entry
        if entry.seen is None:  # hearsay ranks as least recently seen
            od.move_to_end(nid, last=False)

    def remove(self, node_id: bytes) -> bool:
        """Drop a contact (it failed); its slot goes to the freshest replacement."""
        if node_id == self.own_id or len(node_id) != ID_SIZE:
            return False
        i = self.bucket_index(node_id)
        bucket = self._buckets.get(i)
        spares = self._spares.get(i)
        if bucket is not None and node_id in bucket:
            del bucket[node_id]
            self._size -= 1
            if spares:
                verified = [nid for nid, e in spares.items() if e.seen is not None]
                pick = verified[-1] if verified else next(reversed(spares))
                self._insert(bucket, spares.pop(pick))
                self._size += 1
            return True
        if spares is not None and node_id in spares:
            del spares[node_id]
            return True
        return False

    def closest(self, target: bytes, n: int = K) -> list[Contact]:
        """The ``n`` contacts nearest ``target`` by XOR, nearest first.

        Node ids in a table are distinct, so distances are too and the order is total; the
        peer id is a second key only to make that explicit. Buckets are visited in distance
        order (target's bucket; all nearer-bit buckets; then farther ones upward), so only
        the buckets that can contribute get sorted.
        """
        t = int.from_bytes(target, "big")
        first = (t ^ self._own).bit_length() - 1  # -1 when target is our own id
        picked: list[Contact] = []
        if first >= 0:
            picked.extend(e.contact for e in self._buckets.get(first, {}).values())
            if len(picked) < n:
                for i, bucket in self._buckets.items():
                    if i < first:
                        picked.extend(e.contact for e in bucket.values())
        if len(picked) < n:
            for i in sorted(self._buckets):
                if i > first:
                    picked.extend(e.contact for e in self._buckets[i].values())
                    if len(picked) >= n:
                        break
        picked.sort(key=lambda c: (c.node_int ^ t, c.peer_id))
        return picked[:n]


# --- provider records ---------------------------------------------------------------------


class ProviderStore:
    """Provider records per 32-byte key, expiring by the injected clock (bounded in memory)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_PROVIDER_KEYS,
                 max_per_key: int = MAX_PROVIDERS_PER_KEY) -> None:
        self._clock = clock
        self.max_keys = max_keys
        self.max_per_key = max_per_key
        self._records: dict[bytes, dict[bytes, tuple[Contact, float]]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def add(self, key: bytes, provider: Contact, ttl: float) -> bool:
        """Record (or refresh) a provider; ``ttl <= 0`` withdraws it. False if no room."""
        if ttl <= 0:
            self.remove(key, provider.peer_id)
            return True
        now = self._clock()
        expiry = now + min(ttl, MAX_PROVIDER_TTL)
        records = self._records.get(key)
        if records is None:
            if len(self._records) >= self.max_keys and not self.expire():
                return False
            records = self._records[key] = {}
        records.pop(provider.peer_id, None)
        if len(records) >= self.max_per_key:
            soonest = min(records, key=lambda p: (records[p][1], p))
            if records[soonest][1] > expiry:
                return False
            del records[soonest]
        records[provider.peer_id] = (provider, expiry)
        return True

    def remove(self, key: bytes, peer_id: bytes) -> None:
        records = self._records.get(key)
        if records is not None:
            records.pop(peer_id, None)
            if not records:
                del self._records[key]

    def get(self, key: bytes, n: int = K) -> list[Contact]:
        """Live providers of ``key``, longest-lived first (ties by peer id)."""
        records = self._records.get(key)
        if not records:
            return []
        now = self._clock()
        for peer_id in [p for p, (_, exp) in records.items() if exp <= now]:
            del records[peer_id]
        if not records:
            del self._records[key]
            return []
        ranked = sorted(records.values(), key=lambda ce: (-ce[1], ce[0].peer_id))
        return [c for c, _ in ranked[:n]]

    def expire(self) -> int:
        """Drop every expired record; returns how many went. Call periodically."""
        now = self._clock()
        dropped = 0
        for key in list(self._records):
            records = self._records[key]
            for peer_id in [p for p, (_, exp) in records.items() if exp <= now]:
                del records[peer_id]
                dropped += 1
            if not records:
                del self._records[key]
        return dropped


# --- the service --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LookupResult:
    """Outcome of an iterative lookup.

    ``contacts``: up to k closest peers that answered, nearest first; ``learned_in[i]`` is
    the round in which ``contacts[i]`` was first heard of (0 = already in our table), i.e.
    the hops needed to reach it. ``rounds``: sequential rounds of parallel queries the
    whole lookup took (including the final sweep that confirms the k closest).
    """

    target: bytes
    contacts: list[Contact]
    learned_in: list[int]
    rounds: int
    queried: int
    failed: int
    providers: list[Contact] = field(default_factory=list)


_NEW, _ASKED, _ANSWERED, _FAILED = range(4)


class _Candidate:
    __slots__ = ("contact", "round", "state")

    def __init__(self, contact: Contact, learned_round: int) -> None:
        self.contact = contact
        self.round = learned_round
        self.state = _NEW


_Reply = tuple[list[Contact], list[Contact]]  # (closer contacts, providers)
_S = TypeVar("_S", bound=Struct)


class DhtNode:
    """One peer's Kademlia service: answers the four RPCs and runs iterative lookups.

    ``address`` is our own ``pubkeyhex@host:port`` as others should dial it; None for a
    peer that accepts no connections (it can look up but is never stored in tables and
    cannot provide). ``clock`` drives provider expiry and ping freshness, injectable so
    tests control time. Construction registers the request handlers on ``transport``.
    """

    def __init__(self, transport: RequestTransport, peer_id: bytes, address: str | None, *,
                 k: int = K, alpha: int = ALPHA, clock: Callable[[], float] = time.monotonic,
                 request_timeout: float = REQUEST_TIMEOUT, ping_interval: float = PING_INTERVAL,
                 rng: random.Random | None = None) -> None:
        if alpha < 1:
            raise ValueError("alpha must be positive")
        self.transport = transport
        self.peer_id = peer_id
        self.contact = Contact(peer_id, address) if address is not None else None
        self.address = address
        self.node_id = node_id_of(peer_id)
        self.k = k
        self.alpha = alpha
        self.request_timeout = request_timeout
        self.ping_interval = ping_interval
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self.table = RoutingTable(self.node_id, k, clock)
        self.providers = ProviderStore(clock)
        self._connected: set[bytes] = set()
        self._pinging: set[bytes] = set()
        self._failed_at: OrderedDict[bytes, float] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        transport.register_request(KIND_PING, self._on_ping)
        transport.register_request(KIND_FIND_NODE, self._on_find_node)
        transport.register_request(KIND_ADD_PROVIDER, self._on_add_provider)
        transport.register_request(KIND_GET_PROVIDERS, self._on_get_providers)

    # -- inbound ---------------------------------------------------------------------------

    @staticmethod
    def _decode(cls: type[_S], payload: bytes) -> _S:
        try:
            return cls.decode(payload)
        except CodecError as exc:
            raise DhtMessageError(f"malformed {cls.__name__}: {exc}") from exc

    def _heard_from(self, peer_id: bytes, sender: str | None) -> None:
        """A request proves the peer is alive: it goes into the table as freshly seen."""
        if len(self._connected) < MAX_CONNECTED_CACHE:
            self._connected.add(peer_id)
        if sender is not None:
            self._seen(_contact_of(peer_id, sender))

    def _closest_for(self, target: bytes, requester: bytes) -> tuple[ContactRecord, ...]:
        near = self.table.closest(target, self.k + 1)
        return tuple(c.record() for c in near if c.peer_id != requester)[: self.k]

    async def _on_ping(self, peer_id: bytes, payload: bytes) -> bytes:
        req = self._decode(PingRequest, payload)
        self._heard_from(peer_id, req.sender)
        return PingResponse(req.nonce).encode()

    async def _on_find_node(self, peer_id: bytes, payload: bytes) -> bytes:
        req = self._decode(FindNodeRequest, payload)
        self._heard_from(peer_id, req.sender)
        return FindNodeResponse(self._closest_for(req.target, peer_id)).encode()

    async def _on_add_provider(self, peer_id: bytes, payload: bytes) -> bytes:
        req = self._decode(AddProviderRequest, payload)
        if req.sender is None:
            raise DhtMessageError("add_provider without the provider's address")
        self._heard_from(peer_id, req.sender)
        stored = self.providers.add(req.key, _contact_of(peer_id, req.sender), req.ttl_s)
        return AddProviderResponse(stored).encode()

    async def _on_get_providers(self, peer_id: bytes, payload: bytes) -> bytes:
        req = self._decode(GetProvidersRequest, payload)
        self._heard_from(peer_id, req.sender)
        found = tuple(c.record() for c in self.providers.get(req.key, self.k))
        return GetProvidersResponse(found, self._closest_for(req.key, peer_id)).encode()

    # -- table upkeep ----------------------------------------------------------------------

    def _seen(self, contact: Contact) -> None:
        """We heard from ``contact`` itself; ping its bucket's oldest if the bucket is full."""
        self._failed_at.pop(contact.node_id, None)
        stale = self.table.add(contact)
        if stale is None or stale.node_id in self._pinging:
            return
        seen = self.table.last_seen(stale.node_id)
        if seen is not None and self._clock() - seen < self.ping_interval:
            return  # it was alive a moment ago: keep it, the newcomer waits as replacement
        self._pinging.add(stale.node_id)
        task = asyncio.get_running_loop().create_task(self._check(stale))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _check(self, stale: Contact) -> None:
        try:
            await self.ping(stale)  # answers refresh it, failure removes it and promotes
        finally:
            self._pinging.discard(stale.node_id)

    def _learn(self, contact: Contact) -> None:
        """A third party told us about ``contact``: fill a free slot, never evict for it."""
        if contact.node_id == self.node_id:
            return
        failed = self._failed_at.get(contact.node_id)
        if failed is not None and self._clock() - failed < FAIL_QUARANTINE:
            return
        self.table.add(contact, verified=False)

    def _failure(self, contact: Contact) -> None:
        self.table.remove(contact.node_id)
        self._connected.discard(contact.peer_id)
        self._failed_at[contact.node_id] = self._clock()
        self._failed_at.move_to_end(contact.node_id)
        while len(self._failed_at) > MAX_FAILED_REMEMBERED:
            self._failed_at.popitem(last=False)

    async def settle(self) -> None:
        """Wait for background liveness pings (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel background pings; the transport is the caller's to close."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- outbound --------------------------------------------------------------------------

    async def _call(self, contact: Contact, kind: str, payload: bytes) -> bytes:
        """One RPC; dials first unless connected. Raises on any failure (caller drops)."""
        if contact.peer_id in self._connected:
            try:
                return await self.transport.request(contact.peer_id, kind, payload,
                                                    self.request_timeout)
            except ConnectionError:  # the transport dropped the connection: redial once
                self._connected.discard(contact.peer_id)
        async with asyncio.timeout(self.request_timeout):
            got = await self.transport.connect(contact.address)
        if got != contact.peer_id:
            raise DhtMessageError("peer at that address has another key")
        if len(self._connected) >= MAX_CONNECTED_CACHE:
            self._connected.clear()  # only a dialling shortcut: forgetting it costs a re-dial
        self._connected.add(contact.peer_id)
        return await self.transport.request(contact.peer_id, kind, payload,
                                            self.request_timeout)

    async def ping(self, contact: Contact) -> bool:
        """Liveness check; updates the table either way."""
        nonce = self._rng.getrandbits(64)
        try:
            raw = await self._call(contact, KIND_PING, PingRequest(self.address, nonce).encode())
            if PingResponse.decode(raw).nonce != nonce:
                raise DhtMessageError("pong for another ping")
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failure(contact)
            return False
        self._seen(contact)
        return True

    def _contacts(self, records: tuple[ContactRecord, ...]) -> list[Contact]:
        if len(records) > MAX_CONTACTS_PER_RESPONSE:
            raise DhtMessageError("too many contacts in a response")
        return [Contact.from_record(r) for r in records]

    async def _query(self, contact: Contact, kind: str, payload: bytes) -> _Reply | None:
        """A lookup step: None when the peer failed (it is then dropped from the table)."""
        try:
            raw = await self._call(contact, kind, payload)
            if kind == KIND_FIND_NODE:
                reply: _Reply = (self._contacts(FindNodeResponse.decode(raw).contacts), [])
            else:
                resp = GetProvidersResponse.decode(raw)
                reply = (self._contacts(resp.closer), self._contacts(resp.providers))
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failure(contact)
            return None
        self._seen(contact)
        return reply

    async def _lookup(self, target: bytes, kind: str, payload: bytes,
                      providers: dict[bytes, Contact] | None = None,
                      want_providers: int = 0) -> LookupResult:
        """Iterative lookup, rounds of ``alpha`` parallel queries to the nearest unasked.

        A round that brings nothing nearer than the nearest known turns the next round into
        a sweep of every unasked peer among the k nearest (the paper's rule); the lookup
        ends when the k nearest live peers have all answered, or enough providers are found.
        """
        t = int.from_bytes(target, "big")
        cands: dict[bytes, _Candidate] = {}
        order: list[tuple[int, bytes]] = []  # (distance, node id) of candidates not failed

        def consider(contact: Contact, learned_round: int) -> None:
            if contact.node_id == self.node_id or contact.node_id in cands:
                return
            cands[contact.node_id] = _Candidate(contact, learned_round)
            bisect.insort(order, (contact.node_int ^ t, contact.node_id))

        for contact in self.table.closest(target, self.k):
            consider(contact, 0)
        found = providers if providers is not None else {}
        rounds = queried = failed = 0
        best = order[0][0] if order else None
        sweep = False
        while not (want_providers and len(found) >= want_providers):
            top = [cands[nid] for _, nid in order[: self.k]]
            pending = [c for c in top if c.state == _NEW]
            if not pending:
                break
            batch = pending if sweep else pending[: self.alpha]
            for cand in batch:
                cand.state = _ASKED
            rounds += 1
            replies = await asyncio.gather(*(self._query(c.contact, kind, payload)
                                             for c in batch))
            for cand, reply in zip(batch, replies, strict=True):
                queried += 1
                if reply is None:
                    failed += 1
                    cand.state = _FAILED
                    gone = (cand.contact.node_int ^ t, cand.contact.node_id)
                    del order[bisect.bisect_left(order, gone)]
                    continue
                cand.state = _ANSWERED
                closer, provs = reply
                for p in provs:
                    found.setdefault(p.peer_id, p)
                for contact in closer:
                    if contact.node_id not in cands:
                        self._learn(contact)
                    consider(contact, rounds)
            nearest = order[0][0] if order else None
            sweep = not (nearest is not None and (best is None or nearest < best))
            best = nearest
        done = [cands[nid] for _, nid in order[: self.k]]
        done = [c for c in done if c.state == _ANSWERED]
        return LookupResult(target, [c.contact for c in done], [c.round for c in done],
                            rounds, queried, failed, list(found.values()))

    # -- public operations -----------------------------------------------------------------

    async def lookup(self, target: bytes) -> LookupResult:
        """The k live peers nearest ``target`` (a 32-byte node id or key)."""
        if len(target) != ID_SIZE:
            raise ValueError("lookup target must be 32 bytes")
        return await self._lookup(target, KIND_FIND_NODE,
                                  FindNodeRequest(self.address, target).encode())

    async def find_peer(self, peer_id: bytes) -> Contact | None:
        """Dial address of ``peer_id``, from the table or else by a lookup of its node id."""
        nid = node_id_of(peer_id)
        known = self.table.get(nid)
        if known is not None:
            return known
        result = await self.lookup(nid)
        return next((c for c in result.contacts if c.peer_id == peer_id), None)

    async def bootstrap(self, seed_addresses: Iterable[str]) -> LookupResult:
        """Join the network: dial the seeds, then look up our own id to fill the table."""
        seeds: list[Contact] = []
        for address in seed_addresses:
            peer_id = parse_address(address)[0]
            if peer_id != self.peer_id:
                seeds.append(Contact(peer_id, address))
        alive = await asyncio.gather(*(self.ping(s) for s in seeds))
        if seeds and not any(alive):
            raise DhtError(f"none of {len(seeds)} seed(s) answered")
        return await self.lookup(self.node_id)

    async def refresh(self) -> int:
        """Look up a random id in every bucket from our nearest non-empty one outward.

        Keeps buckets populated where little traffic passes; call it every hour or so.
        """
        nonempty = self.table.nonempty_buckets()
        if not nonempty:
            return 0
        own = int.from_bytes(self.node_id, "big")
        count = 0
        for i in range(nonempty[0], ID_BITS):
            offset = (1 << i) | self._rng.getrandbits(i) if i else 1
            await self.lookup((own ^ offset).to_bytes(ID_SIZE, "big"))
            count += 1
        return count

    async def provide(self, key: bytes, ttl: int = DEFAULT_PROVIDER_TTL) -> int:
        """Announce ourselves as a provider of ``key`` to the k nodes nearest it.

        Returns how many stored the record; re-announce before ``ttl`` runs out.
        """
        if self.contact is None:
            raise DhtError("a peer without a listen address cannot provide")
        if len(key) != ID_SIZE or not 0 <= ttl <= MAX_PROVIDER_TTL:
            raise ValueError("key must be 32 bytes and ttl within bounds")
        self.providers.add(key, self.contact, ttl)
        result = await self.lookup(key)
        payload = AddProviderRequest(self.address, key, ttl).encode()
        acks = await asyncio.gather(*(self._store_at(c, payload) for c in result.contacts))
        return sum(acks)

    async def _store_at(self, contact: Contact, payload: bytes) -> bool:
        try:
            raw = await self._call(contact, KIND_ADD_PROVIDER, payload)
            stored = AddProviderResponse.decode(raw).stored
        except asyncio.CancelledError:
            raise
        except Exception:
            self._failure(contact)
            return False
        self._seen(contact)
        return stored

    async def find_providers(self, key: bytes, count: int = K) -> list[Contact]:
        """Up to ``count`` providers of ``key``: our own records first, then the network's."""
        if len(key) != ID_SIZE or count < 1:
            raise ValueError("key must be 32 bytes and count positive")
        found = {c.peer_id: c for c in self.providers.get(key, count)}
        if len(found) < count:
            await self._lookup(key, KIND_GET_PROVIDERS,
                               GetProvidersRequest(self.address, key).encode(), found, count)
        return list(found.values())[:count]
