"""State snapshots: the whole state after a height, in chunks a new node checks one by one.

A snapshot at height H holds the state after block H, cut along the state tree
(commitment.py): chunk ``i`` holds every (key, value) whose bucket lies in
``[i << L, (i + 1) << L)`` (``L`` = ``chunk_level``), sorted by (bucket, key). Its
manifest lists each chunk's subtree root: the node at level ``L`` above those buckets.
So a node that trusts header H's state root checks

- the manifest: the top ``16 - L`` levels built over the chunk roots give the state root;
- each chunk, as it arrives from whichever peer: the bucket leaves recomputed from its
  entries give its manifest entry.

A chunk that fails is thrown away (its peer penalised by the caller); nothing is written
before every chunk has passed (``Chain.restore``). On disk a snapshot is a directory
``HOME/snapshots/<height>/`` with ``manifest`` and ``chunk-<i>`` files (their encodings,
served as they are), written by ``SnapshotStore.take`` from one read transaction.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import lmdb

from smartchain.codec import U8, U32, U64, Bytes, CodecError, Fixed32, Struct, list_of
from smartchain.state.commitment import (
    DEPTH,
    EMPTY_AT,
    bucket_of,
    entry_hash,
    leaf_of,
    node_of,
)

log = logging.getLogger("smartchain.snapshot")

MAX_CHUNK_LEVEL = 10  # at least 2**6 = 64 chunks: several peers share the download
CHUNK_TARGET_BYTES = 1024 * 1024  # what a chunk should stay near (a P2P frame is 4 MiB)
MANIFEST_FILE = "manifest"


class SnapshotError(ValueError):
    """A manifest or chunk that does not verify, or a snapshot we do not hold."""


@dataclass(frozen=True, slots=True)
class SnapshotEntry(Struct):
    key: Bytes
    value: Bytes


@dataclass(frozen=True, slots=True)
class SnapshotChunk(Struct):
    entries: list_of[SnapshotEntry]


@dataclass(frozen=True, slots=True)
class SnapshotManifest(Struct):
    """What a snapshot claims: the block it follows and its chunks' subtree roots."""

    height: U64
    block_hash: Fixed32
    state_root: Fixed32
    chunk_level: U8
    chunk_roots: list_of[Fixed32]


@dataclass(frozen=True, slots=True)
class SnapshotInfo(Struct):
    """A snapshot a peer offers (its manifest without the chunk roots)."""

    height: U64
    block_hash: Fixed32
    state_root: Fixed32
    chunks: U32


# --- verification ------------------------------------------------------------------------


def subtree_root(leaves: dict[int, bytes], first: int, level: int) -> bytes:
    """The level-``level`` node above buckets ``first .. first + 2**level - 1``, from
    their non-empty ``leaves`` (bucket -> leaf; any other bucket is empty)."""
    nodes = {b - first: leaf for b, leaf in leaves.items()}
    for lvl in range(level):
        up: dict[int, bytes] = {}
        for i in sorted({i >> 1 for i in nodes}):
            left = nodes.get(2 * i, EMPTY_AT[lvl])
            right = nodes.get(2 * i + 1, EMPTY_AT[lvl])
            up[i] = node_of(left, right)
        nodes = up
    return nodes.get(0, EMPTY_AT[level])


def root_over(chunk_roots: Iterable[bytes]) -> bytes:
    """The state root from a complete row of subtree roots (a power of two of them)."""
    row = list(chunk_roots)
    while len(row) > 1:
        row = [node_of(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def check_manifest(manifest: SnapshotManifest, height: int, block_hash: bytes,
                   state_root: bytes) -> None:
    """Raise ``SnapshotError`` unless ``manifest`` is of that block and its chunk roots
    give that state root."""
    if (manifest.height, manifest.block_hash) != (height, block_hash):
        raise SnapshotError(f"manifest of block {manifest.height}, not of the block asked")
    if manifest.state_root != state_root:
        raise SnapshotError("manifest of another state root than the block's")
    if not 0 <= manifest.chunk_level <= MAX_CHUNK_LEVEL:
        raise SnapshotError(f"chunk level {manifest.chunk_level} out of 0..{MAX_CHUNK_LEVEL}")
    if len(manifest.chunk_roots) != 1 << (DEPTH - manifest.chunk_level):
        raise SnapshotError(f"{len(manifest.chunk_roots)} chunk roots for level "
                            f"{manifest.chunk_level}")
    if root_over(manifest.chunk_roots) != state_root:
        raise SnapshotError("the chunk roots do not give the state root")


def chunk_leaves(entries: Iterable[SnapshotEntry]) -> dict[int, bytes]:
    """Bucket -> leaf of entries sorted by (bucket, key)."""
    hashes: dict[int, list[bytes]] = {}
    for e in entries:
        hashes.setdefault(bucket_of(e.key), []).append(entry_hash(e.key, e.value))
    return {b: leaf_of(hs) for b, hs in hashes.items()}


def check_chunk(manifest: SnapshotManifest, index: int, raw: bytes) -> SnapshotChunk:
    """The chunk, decoded, if ``raw`` is chunk ``index`` of ``manifest``; else
    ``SnapshotError``."""
    if not 0 <= index < len(manifest.chunk_roots):
        raise SnapshotError(f"no chunk {index} in this snapshot")
    try:
        chunk = SnapshotChunk.decode(raw)
    except CodecError as exc:
        raise SnapshotError(f"malformed chunk {index}: {exc}") from exc
    level = manifest.chunk_level
    first = index << level
    prev: tuple[int, bytes] | None = None
    for e in chunk.entries:
        b = bucket_of(e.key)
        if not first <= b < first + (1 << level):
            raise SnapshotError(f"chunk {index} holds a key of bucket {b}")
        if prev is not None and (b, e.key) <= prev:
            raise SnapshotError(f"chunk {index}: keys out of order or repeated")
        prev = (b, e.key)
    if subtree_root(chunk_leaves(chunk.entries), first, level) != manifest.chunk_roots[index]:
        raise SnapshotError(f"chunk {index} does not match its root in the manifest")
    return chunk


# --- taking and serving --------------------------------------------------------------------


def chunk_level_for(state_bytes: int) -> int:
    """The largest level (fewest chunks, at least 64) whose chunks average at most
    ``CHUNK_TARGET_BYTES``: the state's buckets fill evenly (they are hashes)."""
    level = MAX_CHUNK_LEVEL
    while level > 0 and state_bytes >> (DEPTH - level) > CHUNK_TARGET_BYTES:
        level -= 1
    return level


def _db_bytes(txn: lmdb.Transaction[bytes], db: lmdb._Database) -> int:
    st = txn.stat(db)
    return int((st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * st["psize"])


def dump_state(txn: lmdb.Transaction[bytes], dbs: dict[str, lmdb._Database], out: Path,
               height: int, block_hash: bytes, state_root: bytes) -> SnapshotManifest:
    """Write the state seen by ``txn`` as snapshot files in ``out`` (created); check that
    it gives ``state_root`` before writing the manifest."""
    out.mkdir(parents=True)
    level = chunk_level_for(_db_bytes(txn, dbs["state"]))
    span = 1 << level
    state_get = txn.get
    state_db = dbs["state"]
    roots: list[bytes] = []
    entries: list[SnapshotEntry] = []
    index = 0

    def flush(upto: int) -> None:
        nonlocal index, entries
        while index < upto:
            chunk = SnapshotChunk(tuple(entries))
            roots.append(subtree_root(chunk_leaves(entries), index * span, level))
            (out / f"chunk-{index}").write_bytes(chunk.encode())
            entries = []
            index += 1

    for skey, _h in txn.cursor(db=dbs["sidx"]):
        flush(int.from_bytes(skey[:2], "big") >> level)
        key = bytes(skey[2:])
        value = state_get(key, db=state_db)
        if value is None:
            raise SnapshotError(f"state index names a key with no value: {key.hex()}")
        entries.append(SnapshotEntry(key, value))
    flush(1 << (DEPTH - level))
    manifest = SnapshotManifest(height, block_hash, state_root, level, tuple(roots))
    if root_over(roots) != state_root:
        raise SnapshotError(f"the state dumped at height {height} does not give its root")
    (out / MANIFEST_FILE).write_bytes(manifest.encode())
    return manifest


class SnapshotStore:
    """The snapshots a node holds in ``root`` (``HOME/snapshots``): the ``keep`` latest."""

    def __init__(self, root: Path, keep: int) -> None:
        self.root = root
        self.keep = keep
        self._manifests: dict[int, SnapshotManifest] = {}
        for path in sorted(root.glob("*/" + MANIFEST_FILE)) if root.is_dir() else []:
            try:
                m = SnapshotManifest.decode(path.read_bytes())
            except (OSError, CodecError):
                log.warning("ignoring unreadable snapshot %s", path.parent)
                continue
            self._manifests[m.height] = m

    def heights(self) -> list[int]:
        return sorted(self._manifests)

    def infos(self) -> list[SnapshotInfo]:
        return [SnapshotInfo(m.height, m.block_hash, m.state_root, len(m.chunk_roots))
                for m in (self._manifests[h] for h in self.heights())]

    def manifest(self, height: int) -> SnapshotManifest:
        m = self._manifests.get(height)
        if m is None:
            raise LookupError(f"no snapshot at height {height}")
        return m

    def chunk(self, height: int, index: int) -> bytes:
        m = self.manifest(height)
        if not 0 <= index < len(m.chunk_roots):
            raise LookupError(f"the snapshot at height {height} has no chunk {index}")
        try:
            return (self.root / str(height) / f"chunk-{index}").read_bytes()
        except FileNotFoundError as exc:  # pruned meanwhile
            raise LookupError(f"no snapshot at height {height}") from exc

    def take(self, txn: lmdb.Transaction[bytes], dbs: dict[str, lmdb._Database],
             height: int, block_hash: bytes, state_root: bytes) -> SnapshotManifest:
        """Dump the state ``txn`` sees (after block ``height``), then drop the oldest
        snapshots beyond ``keep``. Written under a temporary name: a crash leaves no
        half snapshot (only a ``.tmp`` directory, removed next time)."""
        tmp = self.root / f"{height}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        manifest = dump_state(txn, dbs, tmp, height, block_hash, state_root)
        final = self.root / str(height)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        self._manifests[height] = manifest
        for old in self.heights()[:-self.keep] if self.keep > 0 else []:
            del self._manifests[old]
            shutil.rmtree(self.root / str(old), ignore_errors=True)
        return manifest
