"""State snapshots (smartchain/state/snapshot.py) and snapshot sync's checks
(smartchain/node/snapsync.py): a real chain's state dumped, checked chunk by chunk,
restored into a new chain; bad manifests, bad chunks, a bad commit and a broken link to
the trusted hash refused; a peer serving a bad chunk penalised while the sync completes
from the others. The peers are an in-process stand-in for the P2P transport, answering
from real snapshot stores and chains."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from smartchain.app import open_chain
from smartchain.consensus.validators import Validator, ValidatorSet
from smartchain.crypto.keys import PrivateKey
from smartchain.node.blocksync import REQ_BLOCKS, BlockRange, serve_range
from smartchain.node.home import make_genesis
from smartchain.node.snapsync import (
    MAX_OFFERS_PER_PEER,
    REQ_CHUNK,
    REQ_MANIFEST,
    REQ_SNAPSHOTS,
    SnapshotList,
    SnapshotSync,
    check_commit,
    check_link,
    serve_chunk,
    serve_list,
    serve_manifest,
)
from smartchain.state.chain import Chain, ChainError
from smartchain.state.genesis import Genesis
from smartchain.state.snapshot import (
    SnapshotChunk,
    SnapshotEntry,
    SnapshotError,
    SnapshotInfo,
    SnapshotManifest,
    SnapshotStore,
    check_chunk,
    check_manifest,
)
from smartchain.types.block import Block
from smartchain.types.consensus import EMPTY_COMMIT, Commit, CommitSig, Step, Vote

CHAIN = "smart-snap-1"
KEYS = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
ACCOUNTS = [(PrivateKey.from_seed(bytes([0x40, i % 256, i // 256]) + bytes(29)).address,
             1_000 + i) for i in range(300)]
FRAME = 4 * 1024 * 1024


def certify(height: int, block_hash: bytes, signers: range = range(3)) -> Commit:
    sigs = []
    for i in signers:
        vote = Vote(CHAIN, height, 0, int(Step.PRECOMMIT), block_hash, KEYS[i].public_key,
                    bytes(64)).signed_by(KEYS[i])
        sigs.append(CommitSig(i, vote.signature))
    return Commit(height, 0, block_hash, tuple(sigs))


def grow(chain: Chain, n: int) -> None:
    last = (chain.get_commit(chain.height) if chain.height else None) or EMPTY_COMMIT
    for _ in range(n):
        h = chain.height + 1
        staged = chain.stage_proposal([], 1_000 + h, KEYS[h % 4], last_commit=last)
        last = certify(h, staged.block.hash())
        chain.commit(staged, last)


def genesis_set(genesis: Genesis) -> ValidatorSet:
    return ValidatorSet([Validator(v.public_key, v.power, v.name) for v in genesis.validators])


def take(chain: Chain, store: SnapshotStore) -> SnapshotManifest:
    assert chain.latest is not None
    with chain.store.read() as txn:
        return store.take(txn, chain.store.dbs, chain.height, chain.latest.hash(),
                          chain.latest.state_root)


@pytest.fixture
def genesis() -> Genesis:
    return make_genesis(CHAIN, [(k.public_key, 1, f"v{i}") for i, k in enumerate(KEYS)],
                        accounts=ACCOUNTS, genesis_time_ms=1_000)


@pytest.fixture
def source(tmp_path: Path, genesis: Genesis) -> Iterator[Chain]:
    chain = open_chain(tmp_path / "src", genesis)
    grow(chain, 12)
    yield chain
    chain.close()


@pytest.fixture
def fresh(tmp_path: Path, genesis: Genesis) -> Iterator[Chain]:
    chain = open_chain(tmp_path / "new", genesis)
    yield chain
    chain.close()


@pytest.fixture
def snap(tmp_path: Path, source: Chain) -> tuple[SnapshotStore, SnapshotManifest]:
    store = SnapshotStore(tmp_path / "snaps", keep=2)
    return store, take(source, store)


def chunks_of(store: SnapshotStore, m: SnapshotManifest) -> list[SnapshotChunk]:
    return [check_chunk(m, i, store.chunk(m.height, i)) for i in range(len(m.chunk_roots))]


def test_a_snapshot_verifies_chunk_by_chunk_and_restores_the_same_state(
        source: Chain, fresh: Chain, snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    store, m = snap
    check_manifest(m, source.height, source.latest_hash, source.state_root)
    chunks = chunks_of(store, m)
    assert sum(len(c.entries) for c in chunks) > len(ACCOUNTS)
    block = source.get_block(source.height)
    commit = source.get_commit(source.height)
    assert block is not None and commit is not None
    fresh.restore(block, commit, [[(e.key, e.value) for e in c.entries] for c in chunks])
    assert (fresh.height, fresh.base, fresh.state_root) == (12, 12, source.state_root)
    with source.reader() as a, fresh.reader() as b:
        assert list(a.iter_prefix(b"")) == list(b.iter_prefix(b""))
    grow(fresh, 1)  # it follows with blocks: the next block's root is computed the same
    grow(source, 1)
    assert fresh.state_root == source.state_root
    assert fresh.latest_hash == source.latest_hash


def test_a_restored_chain_reopens_at_the_snapshot_height(
        tmp_path: Path, genesis: Genesis, source: Chain,
        snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    store, m = snap
    chain = open_chain(tmp_path / "again", genesis)
    block, commit = source.get_block(12), source.get_commit(12)
    assert block is not None and commit is not None
    chain.restore(block, commit, [[(e.key, e.value) for e in c.entries]
                                  for c in chunks_of(store, m)])
    chain.close()
    chain = open_chain(tmp_path / "again", genesis)
    assert (chain.height, chain.base, chain.state_root) == (12, 12, source.state_root)
    assert chain.get_block(11) is None and chain.get_commit(12) == commit
    chain.close()


def test_a_chunk_whose_content_differs_from_its_root_is_refused(
        snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    store, m = snap
    index = next(i for i in range(len(m.chunk_roots))
                 if SnapshotChunk.decode(store.chunk(m.height, i)).entries)
    chunk = SnapshotChunk.decode(store.chunk(m.height, index))
    first = chunk.entries[0]
    forged = replace(chunk, entries=(SnapshotEntry(first.key, first.value + b"\x01"),
                                     *chunk.entries[1:]))
    with pytest.raises(SnapshotError, match="does not match its root"):
        check_chunk(m, index, forged.encode())
    dropped = replace(chunk, entries=chunk.entries[1:])
    with pytest.raises(SnapshotError, match="does not match its root"):
        check_chunk(m, index, dropped.encode())
    with pytest.raises(SnapshotError, match="holds a key of bucket"):
        check_chunk(m, (index + 1) % len(m.chunk_roots), chunk.encode())
    with pytest.raises(SnapshotError, match="malformed chunk"):
        check_chunk(m, index, b"\x00\x01")


def test_a_manifest_of_another_root_or_block_is_refused(
        source: Chain, snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    _, m = snap
    with pytest.raises(SnapshotError, match="another state root"):
        check_manifest(m, m.height, m.block_hash, bytes(32))
    with pytest.raises(SnapshotError, match="not of the block asked"):
        check_manifest(m, m.height, bytes(32), m.state_root)
    roots = list(m.chunk_roots)
    roots[0] = bytes(32)
    with pytest.raises(SnapshotError, match="do not give the state root"):
        check_manifest(replace(m, chunk_roots=tuple(roots)), m.height, m.block_hash,
                       m.state_root)


def test_restoring_an_incomplete_state_changes_nothing(
        source: Chain, fresh: Chain, snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    store, m = snap
    chunks = chunks_of(store, m)
    missing = next(i for i, c in enumerate(chunks) if c.entries)
    before = fresh.state_root
    block, commit = source.get_block(12), source.get_commit(12)
    assert block is not None and commit is not None
    with pytest.raises(ChainError, match="does not give its block's state root"):
        fresh.restore(block, commit, [[(e.key, e.value) for e in c.entries]
                                      for i, c in enumerate(chunks) if i != missing])
    assert (fresh.height, fresh.state_root) == (0, before)
    grow(fresh, 1)  # still the genesis chain


def test_the_store_keeps_only_the_latest_snapshots(tmp_path: Path, source: Chain) -> None:
    store = SnapshotStore(tmp_path / "keep", keep=2)
    for _ in range(3):
        take(source, store)
        grow(source, 5)
    assert store.heights() == [17, 22]
    assert sorted(p.name for p in (tmp_path / "keep").iterdir()) == ["17", "22"]
    assert SnapshotStore(tmp_path / "keep", keep=2).heights() == [17, 22]
    with pytest.raises(LookupError):
        store.chunk(12, 0)


def test_a_commit_must_carry_a_quorum_and_a_third_of_the_trusted_signers(
        source: Chain, genesis: Genesis) -> None:
    block = source.get_block(12)
    assert block is not None
    valset = genesis_set(genesis)
    check_commit(valset, CHAIN, block, certify(12, block.hash()), valset)
    with pytest.raises(ValueError, match="below quorum"):
        check_commit(valset, CHAIN, block, certify(12, block.hash(), range(2)), valset)
    # A set of strangers signing: a quorum of their own set, none of the trusted one.
    strangers = [PrivateKey.from_seed(bytes([0x90 + i]) * 32) for i in range(4)]
    other = ValidatorSet([Validator(k.public_key, 1, f"s{i}") for i, k in enumerate(strangers)])
    sigs = tuple(CommitSig(i, Vote(CHAIN, 12, 0, int(Step.PRECOMMIT), block.hash(),
                                   k.public_key, bytes(64)).signed_by(k).signature)
                 for i, k in enumerate(strangers))
    forged = Commit(12, 0, block.hash(), sigs)
    check_commit(other, CHAIN, block, forged, None)  # fine without an anchor...
    with pytest.raises(ValueError, match="set changed too much"):
        check_commit(other, CHAIN, block, forged, valset)  # ...not against the genesis set


def test_the_snapshot_block_must_lead_to_the_trusted_hash(source: Chain) -> None:
    blocks = [source.get_block(h) for h in range(8, 13)]
    assert all(b is not None for b in blocks)
    first, later = blocks[0], [b for b in blocks[1:] if b is not None]
    assert first is not None
    check_link(first, later, 12, source.latest_hash)
    with pytest.raises(SnapshotError, match="not the trusted block"):
        check_link(first, later, 12, bytes(32))
    with pytest.raises(SnapshotError, match="does not follow"):
        check_link(first, later[1:], 12, source.latest_hash)


# --- the sync itself, over stand-in peers ---------------------------------------------------


class Peers:
    """The part of the P2P transport snapshot sync uses, answering from real chains and
    snapshot stores; ``corrupt`` peers flip a byte of every chunk they serve."""

    def __init__(self, served: dict[bytes, tuple[Chain, SnapshotStore]],
                 corrupt: set[bytes]) -> None:
        self.served = served
        self.corrupt = corrupt
        self.penalties: dict[bytes, list[str]] = {}

    def connected_peers(self) -> list[bytes]:
        return sorted(self.served)

    def penalize(self, peer: bytes, points: int, reason: str) -> None:
        self.penalties.setdefault(peer, []).append(reason)

    async def request(self, peer: bytes, kind: str, payload: bytes,
                      timeout: float = 5.0) -> bytes:
        chain, store = self.served[peer]
        if kind == REQ_SNAPSHOTS:
            return serve_list(store)
        if kind == REQ_MANIFEST:
            return serve_manifest(store, payload)
        if kind == REQ_BLOCKS:
            return serve_range(chain, payload, FRAME)
        assert kind == REQ_CHUNK
        raw = serve_chunk(store, payload)
        if peer in self.corrupt and len(raw) > 8:
            raw = raw[:-1] + bytes([raw[-1] ^ 1])
        return raw


def sync(peers: Peers, fresh: Chain, genesis: Genesis, trust: tuple[int, bytes] = (0, b"")
         ) -> int | None:
    async def restore(block: Block, commit: Commit, chunks: list[SnapshotChunk]) -> None:
        fresh.restore(block, commit, [[(e.key, e.value) for e in c.entries] for c in chunks])

    valset = genesis_set(genesis)
    run = SnapshotSync(peers, CHAIN, restore, lambda view, h: valset,  # type: ignore[arg-type]
                       valset, trust[0], trust[1])
    return asyncio.run(run.run())


def test_sync_restores_from_several_peers_and_penalises_the_one_serving_bad_chunks(
        source: Chain, fresh: Chain, genesis: Genesis,
        snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    store, _ = snap
    good = [bytes([1]) * 32, bytes([2]) * 32]
    bad = bytes([3]) * 32
    peers = Peers({p: (source, store) for p in (*good, bad)}, corrupt={bad})
    assert sync(peers, fresh, genesis) == 12
    assert fresh.state_root == source.state_root
    assert set(peers.penalties) == {bad}
    assert "does not match its root" in peers.penalties[bad][0]


def test_sync_refuses_a_snapshot_no_honest_peer_serves_and_writes_nothing(
        source: Chain, fresh: Chain, genesis: Genesis,
        snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    store, _ = snap
    bad = bytes([3]) * 32
    peers = Peers({bad: (source, store)}, corrupt={bad})
    before = fresh.state_root
    assert sync(peers, fresh, genesis) is None
    assert (fresh.height, fresh.state_root) == (0, before)
    assert bad in peers.penalties


def test_sync_with_a_trusted_hash_refuses_a_snapshot_off_the_trusted_chain(
        source: Chain, fresh: Chain, genesis: Genesis,
        snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    store, _ = snap
    grow(source, 3)
    peers = Peers({bytes([1]) * 32: (source, store)}, corrupt=set())
    assert sync(peers, fresh, genesis, (15, bytes(32))) is None
    assert fresh.height == 0
    assert sync(peers, fresh, genesis, (15, source.latest_hash)) == 12
    assert fresh.state_root == store.manifest(12).state_root


class HostilePeers(Peers):
    """``Peers`` where ``liars`` answer every block request with no block at all, and list
    ``offers`` made-up snapshots each besides the real ones."""

    def __init__(self, served: dict[bytes, tuple[Chain, SnapshotStore]], liars: set[bytes],
                 offers: int = 0, offerers: set[bytes] | None = None) -> None:
        super().__init__(served, set())
        self.liars, self.offers, self.block_asks = liars, offers, 0
        self.offerers = liars if offerers is None else offerers

    async def request(self, peer: bytes, kind: str, payload: bytes,
                      timeout: float = 5.0) -> bytes:
        if kind == REQ_BLOCKS:
            self.block_asks += 1
        if peer in self.liars and kind == REQ_BLOCKS:
            return BlockRange((), ()).encode()
        if peer in self.offerers and kind == REQ_SNAPSHOTS:
            fake = [SnapshotInfo(10**6 + i, bytes([i % 256]) * 32, bytes(32), 64)
                    for i in range(self.offers)]
            return SnapshotList((*fake, *SnapshotList.decode(
                await super().request(peer, kind, payload)).items)).encode()
        return await super().request(peer, kind, payload, timeout)


def test_a_peer_answering_a_block_request_with_no_block_is_penalised_not_fatal(
        source: Chain, fresh: Chain, genesis: Genesis,
        snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    """The block of the snapshot asked of a peer that answers an empty range used to raise
    IndexError out of the sync, and the new node's start failed."""
    store, _ = snap
    liar, honest = bytes([0]) * 32, bytes([1]) * 32
    peers = HostilePeers({p: (source, store) for p in (liar, honest)}, liars={liar})
    assert sync(peers, fresh, genesis) == 12
    assert fresh.state_root == source.state_root
    assert set(peers.penalties) == {liar}


def test_a_peer_offering_a_flood_of_snapshots_costs_a_bounded_number_of_requests(
        source: Chain, fresh: Chain, genesis: Genesis,
        snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    """Each offered snapshot is tried highest first, asking every peer for its block: one
    peer listing thousands of made-up snapshots held the new node's start for thousands of
    rounds. Only the few best offers of each peer are tried."""
    store, _ = snap
    liar, honest = bytes([0]) * 32, bytes([1]) * 32
    peers = HostilePeers({p: (source, store) for p in (liar, honest)}, liars={liar},
                         offers=5_000)
    assert sync(peers, fresh, genesis) == 12
    assert peers.block_asks <= 2 * 2 * (MAX_OFFERS_PER_PEER + 1)


def test_offers_above_the_trusted_height_do_not_crowd_out_the_one_below_it(
        source: Chain, fresh: Chain, genesis: Genesis,
        snap: tuple[SnapshotStore, SnapshotManifest]) -> None:
    """A peer's offers are capped after those above ``trust_height`` are left out: a node
    holding more recent snapshots than the cap still serves the one a trusting joiner needs."""
    store, _ = snap
    grow(source, 3)
    peer = bytes([1]) * 32
    peers = HostilePeers({peer: (source, store)}, liars=set(), offers=2 * MAX_OFFERS_PER_PEER,
                         offerers={peer})
    assert sync(peers, fresh, genesis, (15, source.latest_hash)) == 12
