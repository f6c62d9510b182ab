"""Snapshot sync: a new node starts from a peer's state snapshot instead of every block.

Serving (every node with ``[sync] snapshot_interval``): ``sync/snapshots`` lists the
snapshots held (state/snapshot.py), ``sync/snapshot-manifest`` gives one's manifest and
``sync/snapshot-chunk`` one chunk, read from disk as written.

Syncing (``[sync] snapshot = true`` on a node with no block yet), for the highest snapshot
offered (at or below ``trust_height`` when one is set):

1. its block H with the commit that finalised it, from a peer holding it: the block must
   be the one the offer names, with the offer's state root;
2. the trust anchor: with ``trust_height``/``trust_hash``, the blocks H+1..trust_height are
   fetched and each must name the one before (``prev_hash``) up to the trusted hash, so H
   is the ancestor of a block the operator trusts; without, step 5 decides;
3. the manifest, checked against H's state root (a peer serving another root is
   penalised and another asked);
4. the chunks, from every peer offering the snapshot at once, each checked against its
   manifest entry as it arrives; a chunk that does not match is thrown away, its peer
   penalised and dropped, the chunk asked of another;
5. the commit of H, checked against the signer set of H read from the verified state
   (``ChainApplication.validators_in``); without a trusted hash the signatures must
   also carry over 1/3 of the genesis signers' power (skipping verification: at least
   one genesis signer who is honest signed H);
6. only then ``Chain.restore`` writes it, in one store transaction, and block sync
   follows from H+1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from smartchain.codec import U32, U64, CodecError, Struct, list_of
from smartchain.consensus.validators import ValidatorSet
from smartchain.node.blocksync import RANGE_BLOCKS, REQ_BLOCKS, BlockRange, RangeRequest
from smartchain.p2p import BadRequest
from smartchain.state.snapshot import (
    SnapshotChunk,
    SnapshotError,
    SnapshotInfo,
    SnapshotManifest,
    SnapshotStore,
    check_chunk,
    check_manifest,
)
from smartchain.types.block import Block
from smartchain.types.consensus import Commit

if TYPE_CHECKING:
    from smartchain.p2p.peers import P2P
    from smartchain.state.store import StateView

log = logging.getLogger("smartchain.snapsync")

REQ_SNAPSHOTS = "sync/snapshots"
REQ_MANIFEST = "sync/snapshot-manifest"
REQ_CHUNK = "sync/snapshot-chunk"
CHUNK_WINDOW = 16  # chunk requests in flight, over all peers
MAX_OFFERS_PER_PEER = 4  # a peer's highest offers tried (a node keeps a few snapshots)
LIST_TIMEOUT_S = 3.0
FETCH_TIMEOUT_S = 30.0
BAD_SNAPSHOT = 50  # score a peer loses for a block, manifest or chunk that does not verify


@dataclass(frozen=True, slots=True)
class SnapshotList(Struct):
    items: list_of[SnapshotInfo]


@dataclass(frozen=True, slots=True)
class SnapshotAt(Struct):
    height: U64


@dataclass(frozen=True, slots=True)
class ChunkRequest(Struct):
    height: U64
    index: U32


# --- serving ---------------------------------------------------------------------------------


def serve_list(store: SnapshotStore) -> bytes:
    return SnapshotList(tuple(store.infos())).encode()


def serve_manifest(store: SnapshotStore, payload: bytes) -> bytes:
    try:
        height = SnapshotAt.decode(payload).height
    except CodecError as exc:
        raise BadRequest(f"malformed manifest request: {exc}") from exc
    return store.manifest(height).encode()


def serve_chunk(store: SnapshotStore, payload: bytes) -> bytes:
    try:
        req = ChunkRequest.decode(payload)
    except CodecError as exc:
        raise BadRequest(f"malformed chunk request: {exc}") from exc
    return store.chunk(req.height, req.index)


# --- verifying -----------------------------------------------------------------------------


class SnapshotRefused(Exception):
    """This snapshot cannot be used (no peer served it right): try the next one."""


def check_link(block: Block, later: list[Block], trust_height: int, trust_hash: bytes) -> None:
    """Raise ``SnapshotError`` unless ``later`` (blocks H+1..trust_height) leads, block by
    block through ``prev_hash``, from ``block`` to the trusted hash."""
    prev = block
    for nxt in later:
        if nxt.header.height != prev.header.height + 1 or nxt.header.prev_hash != prev.hash():
            raise SnapshotError(f"block {nxt.header.height} does not follow block "
                                f"{prev.header.height}")
        prev = nxt
    if prev.header.height != trust_height or prev.hash() != trust_hash:
        raise SnapshotError(f"block {prev.header.height} is not the trusted block "
                            f"{trust_height}")


def check_commit(valset: ValidatorSet, chain_id: str, block: Block, commit: Commit,
                 anchor: ValidatorSet | None,
                 verifier: Callable[[list[tuple[bytes, bytes, bytes]]], list[bool]] | None
                 = None) -> None:
    """Raise ``ValueError`` unless ``commit`` finalises ``block`` with over 2/3 of
    ``valset`` (its height's set) and, when an ``anchor`` set is given, its valid
    signatures come from over 1/3 of the anchor's power."""
    height = block.header.height
    valset.verify_commit(chain_id, commit, block.hash(), height, verifier=verifier)
    if anchor is None:
        return
    signed = {valset.validators[s.validator_index].public_key for s in commit.signatures}
    power = sum(v.power for v in anchor.validators if v.public_key in signed)
    if power < anchor.skip_power:
        raise ValueError(f"the commit of block {height} carries {power} of the trusted "
                         f"signers' power {anchor.total_power} (needs {anchor.skip_power}): "
                         f"the set changed too much; set [sync] trust_height and trust_hash")


class _View:
    """Reads over verified chunks (the state to be restored), for the set of H."""

    def __init__(self, chunks: list[SnapshotChunk]) -> None:
        self._kv = {e.key: e.value for c in chunks for e in c.entries}

    def get(self, key: bytes) -> bytes | None:
        return self._kv.get(key)


# --- syncing -------------------------------------------------------------------------------

# restore(block, commit, chunks) in the block builder
Restore = Callable[[Block, Commit, list[SnapshotChunk]], Awaitable[None]]
SetIn = Callable[["StateView", int], ValidatorSet]


@dataclass(slots=True)
class SnapshotSync:
    """One attempt to start a new chain from the best snapshot peers offer."""

    p2p: P2P
    chain_id: str
    restore: Restore
    set_in: SetIn  # the signer set of a height, as recorded in a state
    anchor: ValidatorSet  # the genesis signers: the trust anchor without a trusted hash
    trust_height: int = 0
    trust_hash: bytes = b""
    verifier: Callable[[list[tuple[bytes, bytes, bytes]]], list[bool]] | None = None
    offers: dict[bytes, list[SnapshotInfo]] = field(default_factory=dict)

    async def run(self) -> int | None:
        """The height restored, or ``None`` when no offered snapshot verified."""
        self.offers = await self._lists()
        by_snapshot: dict[tuple[int, bytes, bytes, int], list[bytes]] = {}
        for peer, infos in self.offers.items():
            # each offer tried costs requests to every peer: a peer listing thousands of
            # made-up snapshots would hold the start for as many rounds
            usable = [i for i in infos
                      if not self.trust_height or i.height <= self.trust_height]
            best = sorted(usable, key=lambda i: i.height, reverse=True)[:MAX_OFFERS_PER_PEER]
            for i in best:
                key = (i.height, i.block_hash, i.state_root, i.chunks)
                by_snapshot.setdefault(key, []).append(peer)
        for key in sorted(by_snapshot, key=lambda k: (k[0], len(by_snapshot[k])),
                          reverse=True):
            height = key[0]
            try:
                await self._try(height, key[1], key[2], by_snapshot[key])
            except SnapshotRefused as exc:
                log.warning("snapshot at height %d refused: %s", height, exc)
                continue
            except Exception:  # what peers sent must never stop the node's start
                log.exception("snapshot at height %d refused: it could not be used", height)
                continue
            return height
        log.warning("no usable snapshot among %d offered by %d peers: syncing by blocks",
                    len(by_snapshot), len(self.offers))
        return None

    async def _lists(self) -> dict[bytes, list[SnapshotInfo]]:
        async def ask(peer: bytes) -> tuple[bytes, list[SnapshotInfo]] | None:
            try:
                raw = await self.p2p.request(peer, REQ_SNAPSHOTS, b"", timeout=LIST_TIMEOUT_S)
                return peer, list(SnapshotList.decode(raw).items)
            except Exception as exc:  # a peer that cannot answer is skipped
                log.debug("snapshot list from %s failed: %s", peer.hex()[:16], exc)
                return None
        answers = await asyncio.gather(*(ask(p) for p in self.p2p.connected_peers()))
        return dict(a for a in answers if a is not None)

    def _bad(self, peer: bytes, why: str) -> None:
        log.warning("snapshot sync: peer %s: %s", peer.hex()[:16], why)
        self.p2p.penalize(peer, BAD_SNAPSHOT, f"snapshot sync: {why}")

    async def _try(self, height: int, block_hash: bytes, root: bytes,
                   peers: list[bytes]) -> None:
        block, commit, block_peer = await self._block(height, block_hash, root)
        if self.trust_height:
            await self._link(block)
        manifest = await self._manifest(height, block_hash, root, peers)
        chunks = await self._chunks(manifest, list(peers))
        try:
            valset = self.set_in(_View(chunks), height)
            check_commit(valset, self.chain_id, block, commit,
                         None if self.trust_height else self.anchor, self.verifier)
        except (ValueError, LookupError) as exc:
            self._bad(block_peer, f"commit of block {height}: {exc}")
            raise SnapshotRefused(f"the commit of block {height} does not verify: {exc}") \
                from exc
        await self.restore(block, commit, chunks)
        log.info("state restored from the snapshot at height %d (%d chunks)", height,
                 len(chunks))

    async def _blocks(self, peer: bytes, start: int, count: int) -> list[tuple[Block, Commit]]:
        raw = await self.p2p.request(peer, REQ_BLOCKS,
                                     RangeRequest(start, count, 2 * 1024 * 1024).encode(),
                                     timeout=FETCH_TIMEOUT_S)
        rng = BlockRange.decode(raw)
        return [(Block.decode(b), Commit.decode(c))
                for b, c in zip(rng.blocks, rng.commits, strict=True)]

    async def _block(self, height: int, block_hash: bytes, root: bytes
                     ) -> tuple[Block, Commit, bytes]:
        """Block ``height`` with its commit, from any peer holding it."""
        for peer in self.p2p.connected_peers():
            try:
                got = await self._blocks(peer, height, 1)
            except (CodecError, ValueError) as exc:
                self._bad(peer, f"malformed block {height}: {exc}")
                continue
            except Exception as exc:  # not held (pruned), timeout, disconnect
                log.debug("block %d from %s: %s", height, peer.hex()[:16], exc)
                continue
            if len(got) != 1:
                self._bad(peer, f"answered {len(got)} blocks for block {height}")
                continue
            block, commit = got[0]
            if block.header.height != height or block.hash() != block_hash:
                self._bad(peer, f"served another block than block {height} of the snapshot")
            elif block.header.state_root != root:
                self._bad(peer, f"block {height} has another state root than the snapshot")
            else:
                return block, commit, peer
        raise SnapshotRefused(f"no peer served block {height} of the snapshot")

    async def _link(self, block: Block) -> None:
        """Blocks H+1..trust_height from any peer, linking H to the trusted hash."""
        start = block.header.height + 1
        for peer in self.p2p.connected_peers():
            later: list[Block] = []
            try:
                while start + len(later) <= self.trust_height:
                    first = start + len(later)
                    count = min(RANGE_BLOCKS, self.trust_height - first + 1)
                    later += [b for b, _ in await self._blocks(peer, first, count)]
                check_link(block, later, self.trust_height, self.trust_hash)
                return
            except SnapshotError as exc:
                raise SnapshotRefused(f"not an ancestor of the trusted block: {exc}") from exc
            except Exception as exc:  # this peer cannot serve the range: the next
                log.debug("blocks %d..%d from %s: %s", start, self.trust_height,
                          peer.hex()[:16], exc)
        raise SnapshotRefused(f"no peer served blocks {start}..{self.trust_height}")

    async def _manifest(self, height: int, block_hash: bytes, root: bytes,
                        peers: list[bytes]) -> SnapshotManifest:
        for peer in peers:
            try:
                raw = await self.p2p.request(peer, REQ_MANIFEST, SnapshotAt(height).encode(),
                                             timeout=FETCH_TIMEOUT_S)
            except Exception as exc:
                log.debug("manifest %d from %s: %s", height, peer.hex()[:16], exc)
                continue
            try:
                manifest = SnapshotManifest.decode(raw)
                check_manifest(manifest, height, block_hash, root)
            except (CodecError, SnapshotError) as exc:
                self._bad(peer, f"manifest of snapshot {height}: {exc}")
                continue
            return manifest
        raise SnapshotRefused(f"no peer served a manifest of snapshot {height} that verifies")

    async def _chunks(self, manifest: SnapshotManifest, peers: list[bytes]
                      ) -> list[SnapshotChunk]:
        """Every chunk, fetched from ``peers`` round robin, each checked on arrival."""
        todo = list(range(len(manifest.chunk_roots)))
        done: dict[int, SnapshotChunk] = {}
        loop = asyncio.get_running_loop()
        inflight: dict[asyncio.Task[bytes], tuple[int, bytes]] = {}
        turn = 0
        try:
            while len(done) < len(manifest.chunk_roots):
                while todo and len(inflight) < CHUNK_WINDOW and peers:
                    index = todo.pop()
                    peer = peers[turn % len(peers)]
                    turn += 1
                    req = ChunkRequest(manifest.height, index).encode()
                    task = asyncio.ensure_future(
                        self.p2p.request(peer, REQ_CHUNK, req, timeout=FETCH_TIMEOUT_S))
                    inflight[task] = (index, peer)
                if not inflight:
                    raise SnapshotRefused(f"{len(todo)} chunks left and no peer to ask")
                finished, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    index, peer = inflight.pop(task)
                    why = None
                    try:
                        raw = task.result()
                        done[index] = await loop.run_in_executor(
                            None, check_chunk, manifest, index, raw)
                    except SnapshotError as exc:
                        why = str(exc)
                        self._bad(peer, why)
                    except Exception as exc:  # timeout, not held any more, disconnect
                        why = str(exc) or type(exc).__name__
                    if why is not None:
                        todo.append(index)
                        if peer in peers:
                            peers.remove(peer)
        finally:
            for task in inflight:
                task.cancel()
        return [done[i] for i in range(len(manifest.chunk_roots))]
