"""Kademlia DHT: routing-table rules, message codec, and whole-network simulations.

The simulations run a thousand ``DhtNode``s in one process over an in-memory transport
that implements the same ``RequestTransport`` protocol as the real P2P layer (direct
async calls, optional loss and latency, no sockets), so what is measured is the DHT's
own routing: success rate and hop counts of lookups, provider records, dead peers.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartchain.codec import CodecError
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.p2p import P2P, BadRequest, P2PConfig
from smartchain.p2p.dht import (
    KIND_ADD_PROVIDER,
    KIND_FIND_NODE,
    KIND_GET_PROVIDERS,
    KIND_PING,
    AddProviderRequest,
    AddProviderResponse,
    Contact,
    ContactRecord,
    DhtError,
    DhtMessageError,
    DhtNode,
    FindNodeRequest,
    FindNodeResponse,
    GetProvidersRequest,
    GetProvidersResponse,
    K,
    PingRequest,
    PingResponse,
    ProviderStore,
    RequestHandler,
    RoutingTable,
    bucket_index,
    distance,
    make_address,
    node_id_of,
    parse_address,
)

# --- in-memory network ------------------------------------------------------------------


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class MemNetwork:
    """Every peer's handlers, addressable by peer id; dead peers and lossy links fail."""

    def __init__(self, seed: int = 0, loss: float = 0.0,
                 latency: tuple[float, float] = (0.0, 0.0)) -> None:
        self.rng = random.Random(seed)
        self.loss = loss
        self.latency = latency
        self.handlers: dict[bytes, dict[str, RequestHandler]] = {}
        self.by_address: dict[str, bytes] = {}
        self.dead: set[bytes] = set()
        self.requests = 0


class MemTransport:
    """The transport protocol over direct calls into the other node's handlers."""

    def __init__(self, net: MemNetwork, peer_id: bytes, address: str) -> None:
        self.net = net
        self.peer_id = peer_id
        net.handlers[peer_id] = {}
        net.by_address[address] = peer_id

    def register_request(self, kind: str, handler: RequestHandler) -> None:
        self.net.handlers[self.peer_id][kind] = handler

    async def request(self, peer_id: bytes, kind: str, payload: bytes,
                      timeout: float = 5.0) -> bytes:
        net = self.net
        net.requests += 1
        if peer_id in net.dead or peer_id not in net.handlers:
            raise ConnectionError("peer unreachable")
        if net.loss and net.rng.random() < net.loss:
            raise TimeoutError("simulated loss")
        low, high = net.latency
        if high:
            await asyncio.sleep(net.rng.uniform(low, high))
        return await net.handlers[peer_id][kind](self.peer_id, payload)

    async def connect(self, address: str) -> bytes:
        peer_id = self.net.by_address.get(address)
        if peer_id is None or peer_id in self.net.dead:
            raise ConnectionError("connection refused")
        return peer_id


def make_peer(rng: random.Random, index: int) -> tuple[bytes, str]:
    peer_id = rng.randbytes(32)
    return peer_id, make_address(peer_id, f"10.{index // 65536}.{index // 256 % 256}.{index % 256}",
                                 30333)


def make_node(net: MemNetwork, rng: random.Random, index: int, clock: FakeClock,
              k: int = K) -> DhtNode:
    peer_id, address = make_peer(rng, index)
    return DhtNode(MemTransport(net, peer_id, address), peer_id, address, k=k, clock=clock,
                   rng=random.Random(index))


async def build_network(n: int, seed: int, net: MemNetwork | None = None,
                        seeds_per_node: int = 3) -> tuple[MemNetwork, list[DhtNode], FakeClock]:
    """Nodes join one by one, each bootstrapping from a few random earlier nodes."""
    rng = random.Random(seed)
    net = net or MemNetwork(seed)
    clock = FakeClock()
    nodes: list[DhtNode] = []
    for i in range(n):
        node = make_node(net, rng, i, clock)
        seeds = rng.sample(nodes, min(seeds_per_node, len(nodes)))
        await node.bootstrap([s.address for s in seeds if s.address])
        nodes.append(node)
    return net, nodes, clock


@dataclass
class LookupStats:
    lookups: int
    successes: int
    rounds: list[int]
    hops_to_target: list[int]

    @property
    def success_rate(self) -> float:
        return self.successes / self.lookups

    def report(self, label: str, n: int) -> str:
        return (f"{label}: N={n} lookups={self.lookups} success={self.success_rate:.2%} "
                f"rounds mean={statistics.mean(self.rounds):.2f} max={max(self.rounds)} "
                f"hops-to-target mean={statistics.mean(self.hops_to_target):.2f} "
                f"max={max(self.hops_to_target)} (log2 N = {math.log2(n):.2f})")


async def random_lookups(nodes: list[DhtNode], count: int, seed: int) -> LookupStats:
    rng = random.Random(seed)
    stats = LookupStats(0, 0, [], [])
    for _ in range(count):
        src, dst = rng.sample(nodes, 2)
        result = await src.lookup(dst.node_id)
        stats.lookups += 1
        stats.rounds.append(result.rounds)
        if result.contacts and result.contacts[0].peer_id == dst.peer_id:
            stats.successes += 1
            stats.hops_to_target.append(result.learned_in[0])
    return stats


# --- ids, distance, addresses -------------------------------------------------------------


def test_node_id_is_blake2b_of_peer_id() -> None:
    peer_id = bytes(range(32))
    assert node_id_of(peer_id) == h256(peer_id)


def test_xor_distance_and_bucket_index() -> None:
    a = bytes(32)
    top = bytes([0x80]) + bytes(31)
    last = bytes(31) + b"\x01"
    assert distance(a, a) == 0
    assert distance(a, top) == distance(top, a) == 1 << 255
    assert distance(top, last) == (1 << 255) | 1
    assert bucket_index(a, top) == 255
    assert bucket_index(a, last) == 0
    assert bucket_index(top, last) == 255
    assert bucket_index(a, bytes(31) + b"\x7f") == 6
    with pytest.raises(ValueError):
        bucket_index(a, a)


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32),
       st.binary(min_size=32, max_size=32))
@settings(max_examples=100, deadline=None)
def test_xor_is_a_metric(a: bytes, b: bytes, c: bytes) -> None:
    assert distance(a, b) == distance(b, a)
    assert (distance(a, b) == 0) == (a == b)
    assert distance(a, c) <= distance(a, b) + distance(b, c)
    if a != b:
        assert 2 ** bucket_index(a, b) <= distance(a, b) < 2 ** (bucket_index(a, b) + 1)


def test_addresses() -> None:
    pid = bytes(range(32))
    addr = make_address(pid, "127.0.0.1", 30333)
    assert addr == pid.hex() + "@127.0.0.1:30333"
    assert parse_address(addr) == (pid, "127.0.0.1", 30333)
    v6 = make_address(pid, "::1", 1)
    assert parse_address(v6) == (pid, "[::1]", 1)
    assert Contact(pid, addr).node_id == node_id_of(pid)
    for bad in ["", "nohost", pid.hex() + "@host", pid.hex() + "@:1", pid.hex() + "@h:0",
                pid.hex() + "@h:65536", pid.hex()[:-2] + "@h:1", "zz" * 32 + "@h:1",
                pid.hex() + "@h h:1", pid.hex() + "@h:+1", pid.hex() + "@h:" + "1" * 300]:
        with pytest.raises(DhtMessageError):
            parse_address(bad)
    with pytest.raises(DhtMessageError):  # address of one key cannot carry another
        Contact(bytes(32), addr)
    with pytest.raises(DhtMessageError):
        Contact(pid[:31], addr)


# --- routing table ------------------------------------------------------------------------


def contact_of(rng: random.Random) -> Contact:
    peer_id = rng.randbytes(32)
    return Contact(peer_id, make_address(peer_id, "10.0.0.1", 1))


def contacts_in_bucket(own: bytes, index: int, count: int, rng: random.Random) -> list[Contact]:
    found: list[Contact] = []
    while len(found) < count:
        c = contact_of(rng)
        if bucket_index(own, c.node_id) == index:
            found.append(c)
    return found


def test_closest_matches_brute_force_and_ignores_insertion_order() -> None:
    rng = random.Random(1)
    own = rng.randbytes(32)
    contacts = [contact_of(rng) for _ in range(400)]
    table = RoutingTable(own, k=8)
    for c in contacts:
        table.add(c)
    shuffled = RoutingTable(own, k=8)
    for c in reversed(contacts):
        shuffled.add(c)
    held = table.contacts()
    assert 0 < len(table) == len(held) < len(contacts)  # far buckets overflowed
    for _ in range(50):
        target = rng.randbytes(32)
        for n in (1, 8, 20, 500):
            expected = sorted(held, key=lambda c: distance(c.node_id, target))[:n]
            assert table.closest(target, n) == expected
    assert table.closest(own, 3) == sorted(held, key=lambda c: distance(c.node_id, own))[:3]
    # the same set of contacts gives the same answer whatever order they arrived in
    common = {c.node_id for c in held} & {c.node_id for c in shuffled.contacts()}
    target = rng.randbytes(32)
    a = [c for c in table.closest(target, 500) if c.node_id in common]
    b = [c for c in shuffled.closest(target, 500) if c.node_id in common]
    assert a == b


def test_own_id_never_enters_the_table() -> None:
    rng = random.Random(2)
    me = contact_of(rng)
    table = RoutingTable(me.node_id)
    assert table.add(me) is None
    assert len(table) == 0 and me.node_id not in table


def test_full_bucket_pings_oldest_and_keeps_it_when_alive() -> None:
    rng = random.Random(3)
    clock = FakeClock()
    own = rng.randbytes(32)
    table = RoutingTable(own, k=4, clock=clock)
    first = contacts_in_bucket(own, 255, 6, rng)
    for c in first[:4]:
        clock.advance(1)
        assert table.add(c) is None
    assert table.bucket(255) == first[:4]
    clock.advance(1)
    assert table.add(first[4]) == first[0]  # full: asks us to ping the least recently seen
    assert table.bucket(255) == first[:4]  # nothing evicted yet
    assert table.replacements(255) == [first[4]]
    # the oldest answers the ping: it moves to the most-recently-seen end and stays
    clock.advance(1)
    assert table.add(first[0]) is None
    assert table.bucket(255) == [*first[1:4], first[0]]
    assert table.last_seen(first[0].node_id) == clock.now
    # re-adding a known contact refreshes its rank and address
    moved = Contact(first[1].peer_id, make_address(first[1].peer_id, "10.9.9.9", 2))
    table.add(moved)
    assert table.bucket(255)[-1].address == moved.address


def test_full_bucket_replaces_dead_oldest_with_freshest_replacement() -> None:
    rng = random.Random(4)
    own = rng.randbytes(32)
    table = RoutingTable(own, k=3)
    cs = contacts_in_bucket(own, 255, 6, rng)
    for c in cs[:3]:
        table.add(c)
    assert table.add(cs[3]) == cs[0]
    assert table.add(cs[4]) == cs[0]
    assert table.replacements(255) == [cs[3], cs[4]]
    assert table.remove(cs[0].node_id)  # the ping failed
    assert table.bucket(255) == [cs[1], cs[2], cs[4]]
    assert table.replacements(255) == [cs[3]]
    assert len(table) == 3
    assert table.remove(cs[3].node_id)  # removing a replacement just forgets it
    assert table.replacements(255) == []
    assert not table.remove(cs[5].node_id)


def test_replacement_cache_is_bounded() -> None:
    rng = random.Random(5)
    own = rng.randbytes(32)
    table = RoutingTable(own, k=2)
    cs = contacts_in_bucket(own, 255, 10, rng)
    for c in cs:
        table.add(c)
    assert table.bucket(255) == cs[:2]
    assert table.replacements(255) == cs[-2:]


def test_hearsay_fills_free_slots_but_never_evicts() -> None:
    rng = random.Random(6)
    own = rng.randbytes(32)
    table = RoutingTable(own, k=3)
    cs = contacts_in_bucket(own, 255, 5, rng)
    table.add(cs[0])
    assert table.add(cs[1], verified=False) is None
    assert table.bucket(255) == [cs[1], cs[0]]  # unverified ranks as least recently seen
    assert table.last_seen(cs[1].node_id) is None
    table.add(cs[2])
    assert table.add(cs[3], verified=False) is None  # full: no ping for hearsay
    assert table.replacements(255) == [cs[3]]
    # hearsay cannot change a known contact's address
    forged = Contact(cs[0].peer_id, make_address(cs[0].peer_id, "6.6.6.6", 6))
    table.add(forged, verified=False)
    assert table.get(cs[0].node_id) == cs[0]
    # a verified newcomer to a full bucket asks for the unverified one to be checked first
    assert table.add(cs[4]) == cs[1]


# --- messages ---------------------------------------------------------------------------

peer_ids = st.binary(min_size=32, max_size=32)
records = peer_ids.map(lambda p: ContactRecord(p, make_address(p, "h", 1)))
senders = st.one_of(st.none(), st.text(max_size=40))
keys = st.binary(min_size=32, max_size=32)

MESSAGES = st.one_of(
    st.builds(PingRequest, senders, st.integers(0, 2**64 - 1)),
    st.builds(PingResponse, st.integers(0, 2**64 - 1)),
    st.builds(FindNodeRequest, senders, keys),
    st.builds(FindNodeResponse, st.lists(records, max_size=5).map(tuple)),
    st.builds(AddProviderRequest, senders, keys, st.integers(0, 2**32 - 1)),
    st.builds(AddProviderResponse, st.booleans()),
    st.builds(GetProvidersRequest, senders, keys),
    st.builds(GetProvidersResponse, st.lists(records, max_size=3).map(tuple),
              st.lists(records, max_size=3).map(tuple)),
)


@given(MESSAGES)
@settings(max_examples=200, deadline=None)
def test_messages_round_trip_and_reject_damage(msg: object) -> None:
    cls = type(msg)
    raw = msg.encode()  # type: ignore[attr-defined]
    assert cls.decode(raw) == msg  # type: ignore[attr-defined]
    with pytest.raises(CodecError):
        cls.decode(raw + b"\x00")  # type: ignore[attr-defined]
    with pytest.raises(CodecError):
        cls.decode(raw[:-1])  # type: ignore[attr-defined]


def test_message_encoding_is_fixed() -> None:
    """The wire layout is part of the protocol: pin one encoding byte for byte."""
    pid = bytes(32)
    req = FindNodeRequest(None, b"\x11" * 32)
    assert req.encode() == b"\x00" + b"\x11" * 32
    resp = FindNodeResponse((ContactRecord(pid, "a"),))
    assert resp.encode() == b"\x00\x00\x00\x01" + pid + b"\x00\x00\x00\x01a"


def test_handlers_reject_malformed_requests() -> None:
    async def run() -> None:
        net = MemNetwork()
        rng = random.Random(7)
        node = make_node(net, rng, 0, FakeClock())
        other_id, other_addr = make_peer(rng, 1)
        handlers = net.handlers[node.peer_id]
        bad = [
            (KIND_PING, b""),
            (KIND_FIND_NODE, b"\x00" + b"\x11" * 31),  # truncated target
            (KIND_FIND_NODE, FindNodeRequest(None, bytes(32)).encode() + b"\x00"),
            (KIND_GET_PROVIDERS, b"\x02" + bytes(32)),  # bad optional tag
            # a sender address that names a key other than the authenticated peer's
            (KIND_PING, PingRequest(node.address, 1).encode()),
            (KIND_FIND_NODE, FindNodeRequest("not an address", bytes(32)).encode()),
            # providing needs a dialable address
            (KIND_ADD_PROVIDER, AddProviderRequest(None, bytes(32), 60).encode()),
        ]
        for kind, payload in bad:
            with pytest.raises(DhtMessageError):
                await handlers[kind](other_id, payload)
        assert issubclass(DhtMessageError, BadRequest) and issubclass(DhtMessageError, ValueError)
        assert len(node.table) == 0
        ok = await handlers[KIND_PING](other_id, PingRequest(other_addr, 9).encode())
        assert PingResponse.decode(ok).nonce == 9
        assert node.table.get(node_id_of(other_id)) == Contact(other_id, other_addr)

    asyncio.run(run())


def test_response_with_forged_contacts_counts_as_failure() -> None:
    async def run() -> None:
        net = MemNetwork()
        rng = random.Random(8)
        clock = FakeClock()
        a, b = make_node(net, rng, 0, clock), make_node(net, rng, 1, clock)
        await b.bootstrap([a.address or ""])
        assert b.node_id in a.table

        async def liar(peer_id: bytes, payload: bytes) -> bytes:
            return FindNodeResponse((ContactRecord(bytes(32), b.address or ""),)).encode()

        net.handlers[b.peer_id][KIND_FIND_NODE] = liar
        result = await a.lookup(rng.randbytes(32))
        assert result.failed == 1 and result.contacts == []
        assert b.node_id not in a.table

        # an address whose host answers with another key is a failure too
        c_id, c_addr = make_peer(rng, 2)
        net.by_address[c_addr] = b.peer_id
        assert not await a.ping(Contact(c_id, c_addr))

    asyncio.run(run())


# --- service behaviour ----------------------------------------------------------------------


def test_provider_store_expiry_and_limits() -> None:
    clock = FakeClock()
    store = ProviderStore(clock, max_keys=2, max_per_key=2)
    rng = random.Random(9)
    p1, p2, p3 = (contact_of(rng) for _ in range(3))
    key, key2, key3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    assert store.add(key, p1, 10)
    assert store.add(key, p2, 20)
    assert store.get(key) == [p2, p1]
    assert store.add(key, p3, 15)  # full: evicts the record that expires soonest (p1)
    assert store.get(key) == [p2, p3]
    assert not store.add(key, p1, 5)  # would expire before all the others
    clock.advance(15)
    assert store.get(key) == [p2]
    assert store.add(key2, p1, 5)
    assert not store.add(key3, p1, 5)  # key limit, nothing expired
    clock.advance(5)
    assert store.add(key3, p1, 5)  # key2 expired and made room
    assert store.add(key, p2, 0)  # ttl 0 withdraws
    assert store.get(key) == []
    clock.advance(100)
    assert store.expire() == 1 and len(store) == 0


def test_provider_records_expire_on_the_service_clock() -> None:
    async def run() -> None:
        net = MemNetwork()
        rng = random.Random(10)
        clock = FakeClock()
        nodes = [make_node(net, rng, i, clock) for i in range(30)]
        for i, node in enumerate(nodes[1:], 1):
            await node.bootstrap([nodes[rng.randrange(i)].address or ""])
        key = rng.randbytes(32)
        stored = await nodes[3].provide(key, ttl=600)
        assert stored >= 10
        assert [c.peer_id for c in await nodes[20].find_providers(key)] == [nodes[3].peer_id]
        clock.advance(601)
        assert await nodes[21].find_providers(key) == []

    asyncio.run(run())


def test_eviction_ping_removes_dead_oldest_and_promotes_newcomer() -> None:
    async def run() -> None:
        net = MemNetwork()
        rng = random.Random(11)
        clock = FakeClock()
        hub = make_node(net, rng, 0, clock, k=2)
        others: list[DhtNode] = []
        i = 1
        while len(others) < 3:  # three peers that land in the hub's farthest bucket
            node = make_node(net, rng, i, clock)
            i += 1
            if bucket_index(hub.node_id, node.node_id) == 255:
                others.append(node)
        old, young, newcomer = others
        assert await hub.ping(old.contact) and await hub.ping(young.contact)  # type: ignore[arg-type]
        assert hub.table.bucket(255) == [old.contact, young.contact]
        # while the oldest was heard from recently, a newcomer only waits in the cache
        await newcomer.ping(hub.contact)  # type: ignore[arg-type]
        await hub.settle()
        assert hub.table.bucket(255) == [old.contact, young.contact]
        assert hub.table.replacements(255) == [newcomer.contact]
        # later the oldest has gone silent: the next newcomer contact triggers a ping, it
        # fails, and the freshest replacement takes the slot
        clock.advance(60)
        net.dead.add(old.peer_id)
        await newcomer.ping(hub.contact)  # type: ignore[arg-type]
        await hub.settle()
        assert hub.table.bucket(255) == [young.contact, newcomer.contact]
        assert hub.table.replacements(255) == []
        # and a live oldest survives the same challenge
        clock.advance(60)
        net.dead.discard(old.peer_id)
        await old.ping(hub.contact)  # type: ignore[arg-type]
        await hub.settle()
        assert hub.table.bucket(255) == [newcomer.contact, young.contact]
        assert hub.table.replacements(255) == [old.contact]

    asyncio.run(run())


def test_failing_peer_is_removed_from_the_table() -> None:
    async def run() -> None:
        net, nodes, _ = await build_network(40, seed=12)
        src = nodes[0]
        victim = src.table.closest(nodes[5].node_id, 1)[0]
        net.dead.add(victim.peer_id)
        result = await src.lookup(victim.node_id)
        assert victim.node_id not in src.table
        assert victim.peer_id not in {c.peer_id for c in result.contacts}
        assert result.failed >= 1

    asyncio.run(run())


def test_bootstrap_needs_a_live_seed() -> None:
    async def run() -> None:
        net = MemNetwork()
        rng = random.Random(13)
        node = make_node(net, rng, 0, FakeClock())
        _, dead_addr = make_peer(rng, 1)
        with pytest.raises(DhtError):
            await node.bootstrap([dead_addr])
        lone = await node.bootstrap([])  # the first node of a network has no seeds
        assert lone.contacts == [] and lone.rounds == 0
        with pytest.raises(DhtMessageError):
            await node.bootstrap(["garbage"])

    asyncio.run(run())


def test_find_peer_and_refresh() -> None:
    async def run() -> None:
        _, nodes, _ = await build_network(60, seed=14)
        src, dst = nodes[2], nodes[57]
        found = await src.find_peer(dst.peer_id)
        assert found == dst.contact
        before = len(src.table)
        assert await src.refresh() > 0
        assert len(src.table) >= before

    asyncio.run(run())


def test_dht_over_real_p2p_transport() -> None:
    """The real TCP transport plugs into the protocol: join, look up, provide, penalise."""

    async def run() -> None:
        config = P2PConfig(handshake_timeout=2.0)
        p2ps: list[P2P] = []
        try:
            nodes: list[DhtNode] = []
            for i in range(6):
                p2p = P2P(PrivateKey.generate(), "smart-test-dht", config=config)
                await p2p.start()
                p2ps.append(p2p)
                node = DhtNode(p2p, p2p.peer_id, p2p.address, request_timeout=2.0)
                if nodes:
                    await node.bootstrap([nodes[i - 1].address or ""])
                nodes.append(node)
            found = await nodes[0].find_peer(nodes[5].peer_id)
            assert found == nodes[5].contact
            key = h256(b"piece")
            assert await nodes[4].provide(key) >= 3
            assert [c.peer_id for c in await nodes[1].find_providers(key, 1)] == \
                [nodes[4].peer_id]
            # a malformed request is a BadRequest to the transport: error reply and penalty
            with pytest.raises(Exception, match="bad request"):
                await p2ps[0].request(p2ps[1].peer_id, KIND_FIND_NODE, b"junk")
            assert p2ps[1].stats["bad_requests"] == 1
        finally:
            for p2p in reversed(p2ps):
                await p2p.stop()

    asyncio.run(asyncio.wait_for(run(), 30))


# --- whole-network simulations ----------------------------------------------------------------

SIM_N = 1000
SIM_LOOKUPS = 500


def test_simulation_lookups_and_providers() -> None:
    """1,000 nodes: lookups of existing ids succeed and take about log2(N)/2 rounds."""

    async def run() -> None:
        t0 = time.perf_counter()
        net, nodes, _ = await build_network(SIM_N, seed=100)
        built = time.perf_counter()
        stats = await random_lookups(nodes, SIM_LOOKUPS, seed=101)
        sizes = [len(n.table) for n in nodes]
        print()
        print(stats.report("lookups", SIM_N))
        print(f"  routing table size mean={statistics.mean(sizes):.1f} min={min(sizes)}; "
              f"build {built - t0:.1f}s, lookups {time.perf_counter() - built:.1f}s, "
              f"{net.requests} requests")
        assert stats.success_rate >= 0.99
        assert statistics.mean(stats.rounds) <= math.log2(SIM_N) / 2 + 2  # the target bound
        # measured ~3.2 rounds (~1.2 hops to first hear of the target): guard regressions
        assert statistics.mean(stats.rounds) <= math.log2(SIM_N) / 2

        # providers: 50 keys announced by random nodes, found from other random nodes
        rng = random.Random(102)
        announced: list[tuple[bytes, DhtNode]] = []
        for _ in range(50):
            key = rng.randbytes(32)
            provider = rng.choice(nodes)
            assert await provider.provide(key) >= K // 2
            announced.append((key, provider))
        hits = 0
        for key, provider in announced:
            seeker = rng.choice([n for n in nodes if n is not provider])
            found = await seeker.find_providers(key, count=1)
            hits += [c.peer_id for c in found] == [provider.peer_id]
        print(f"providers: {len(announced)} keys, found {hits / len(announced):.0%}")
        assert hits / len(announced) >= 0.99

    asyncio.run(run())


def test_simulation_with_ten_percent_dead() -> None:
    """After 10% of a 1,000-node network dies, lookups for live nodes still succeed."""

    async def run() -> None:
        net, nodes, _ = await build_network(SIM_N, seed=200)
        rng = random.Random(201)
        dead = rng.sample(nodes, SIM_N // 10)
        net.dead.update(n.peer_id for n in dead)
        live = [n for n in nodes if n.peer_id not in net.dead]
        stats = await random_lookups(live, SIM_LOOKUPS, seed=202)
        print()
        print(stats.report("lookups, 10% dead", SIM_N))
        assert stats.success_rate >= 0.95

    asyncio.run(run())


def test_simulation_with_loss_and_latency() -> None:
    """Lossy, jittery links (2% of requests lost, 0-1 ms latency) on a smaller network.

    A lookup asks each peer once, so when the target's own answer is lost that lookup
    misses it: expect about 1 - loss (measured 96-100% over a dozen seeds). Real-time
    latency makes the interleaving, hence the exact figure, vary from run to run.
    """

    async def run() -> None:
        net = MemNetwork(seed=300, loss=0.02, latency=(0.0, 0.001))
        net, nodes, _ = await build_network(150, seed=300, net=net)
        stats = await random_lookups(nodes, 200, seed=301)
        print()
        print(stats.report("lookups, 2% loss + latency", len(nodes)))
        assert stats.success_rate >= 0.94

    asyncio.run(run())
