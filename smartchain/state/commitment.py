"""The state root: a fixed 16-level binary Merkle tree over 65,536 hash buckets.

Each state key falls into bucket ``H(key)[:2]``; a bucket's leaf hashes the sorted
(key, value) entry hashes that fall in it; the root is the Merkle root over all buckets.
Updating a block's writes costs one bucket rescan (a handful of entries) plus 16 hashes
per dirty bucket — O(changes), not O(state) — and a key's inclusion proof is its bucket's
entry hashes plus 16 siblings. The entry hashes live in LMDB (``sidx``), the bucket
leaves in ``sleaf``; the inner tree is rebuilt in memory at start-up from the leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import blake2b

import lmdb

from smartchain.codec import U32, Fixed32, Struct, list_of

DEPTH = 16
NBUCKETS = 1 << DEPTH


_ENTRY = b"smart/st-entry".ljust(16, b"\0")
_LEAF = b"smart/st-leaf".ljust(16, b"\0")
_NODE = b"smart/st-node".ljust(16, b"\0")


def entry_hash(key: bytes, value: bytes) -> bytes:
    return blake2b(len(key).to_bytes(4, "big") + key + value, digest_size=32,
                   person=_ENTRY).digest()


def bucket_of(key: bytes) -> int:
    return int.from_bytes(blake2b(key, digest_size=2).digest(), "big")


def leaf_of(entry_hashes: list[bytes]) -> bytes:
    if not entry_hashes:
        return EMPTY_LEAF
    return blake2b(b"".join(entry_hashes), digest_size=32, person=_LEAF).digest()


def node_of(left: bytes, right: bytes) -> bytes:
    return blake2b(left + right, digest_size=32, person=_NODE).digest()


EMPTY_LEAF = blake2b(b"", digest_size=32, person=_LEAF).digest()


def _empty_levels() -> list[bytes]:
    out = [EMPTY_LEAF]
    for _ in range(DEPTH):
        out.append(node_of(out[-1], out[-1]))
    return out


EMPTY_AT = _empty_levels()  # EMPTY_AT[level] is the hash of an all-empty subtree


@dataclass(frozen=True, slots=True)
class StateProof(Struct):
    """Proof that ``key`` has a value (or none) under a state root."""

    bucket: U32
    entries: list_of(Fixed32)  # every entry hash in the bucket, in key order
    siblings: list_of(Fixed32)  # leaf level first


class StateTree:
    """In-memory inner nodes of the bucket tree; leaves persisted in LMDB."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [
            [EMPTY_AT[lvl]] * (NBUCKETS >> lvl) for lvl in range(DEPTH + 1)
        ]

    @property
    def root(self) -> bytes:
        return self.levels[DEPTH][0]

    def load(self, txn: lmdb.Transaction, sleaf_db: object) -> None:
        """Rebuild the tree from the persisted bucket leaves."""
        dirty = set()
        for k, v in txn.cursor(db=sleaf_db):
            b = int.from_bytes(k, "big")
            self.levels[0][b] = v
            dirty.add(b)
        self._recompute(dirty)

    def _recompute(self, dirty: set[int]) -> list[tuple[int, int, bytes]]:
        """Recompute the paths above ``dirty`` leaves; return (level, index, old) for undo."""
        undo: list[tuple[int, int, bytes]] = []
        levels = self.levels
        for lvl in range(1, DEPTH + 1):
            below = levels[lvl - 1]
            here = levels[lvl]
            dirty = {i >> 1 for i in dirty}
            for i in dirty:
                undo.append((lvl, i, here[i]))
                here[i] = node_of(below[2 * i], below[2 * i + 1])
        return undo

    def apply(self, txn: lmdb.Transaction, dbs: dict, writes: dict[bytes, bytes | None]
              ) -> list[tuple[int, int, bytes]]:
        """Fold a block's state writes into the tree inside the block's LMDB write txn.

        Returns an undo log so the caller can restore the in-memory tree if the LMDB
        transaction is aborted instead of committed.
        """
        sidx, sleaf = dbs["sidx"], dbs["sleaf"]
        dirty: set[int] = set()
        put, delete = txn.put, txn.delete
        for key, value in writes.items():
            b = bucket_of(key)
            skey = b.to_bytes(2, "big") + key
            if value is None:
                delete(skey, db=sidx)
            else:
                put(skey, entry_hash(key, value), db=sidx)
            dirty.add(b)
        leaves = self.levels[0]
        undo: list[tuple[int, int, bytes]] = []
        cur = txn.cursor(db=sidx)
        for b in dirty:
            prefix = b.to_bytes(2, "big")
            hashes = []
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    hashes.append(v)
            leaf = leaf_of(hashes)
            undo.append((0, b, leaves[b]))
            leaves[b] = leaf
            if hashes:
                put(prefix, leaf, db=sleaf)
            else:
                delete(prefix, db=sleaf)
        undo.extend(self._recompute(dirty))
        return undo

    def undo(self, log: list[tuple[int, int, bytes]]) -> None:
        for lvl, i, old in reversed(log):
            self.levels[lvl][i] = old

    def prove(self, txn: lmdb.Transaction, sidx_db: object, key: bytes) -> StateProof:
        b = bucket_of(key)
        prefix = b.to_bytes(2, "big")
        entries = []
        cur = txn.cursor(db=sidx_db)
        if cur.set_range(prefix):
            for k, v in cur:
                if not k.startswith(prefix):
                    break
                entries.append(v)
        siblings = []
        i = b
        for lvl in range(DEPTH):
            siblings.append(self.levels[lvl][i ^ 1])
            i >>= 1
        return StateProof(b, tuple(entries), tuple(siblings))


def verify_state_proof(root: bytes, key: bytes, value: bytes, proof: StateProof) -> bool:
    """True when ``key`` maps to ``value`` under ``root`` (a proof of presence)."""
    if proof.bucket != bucket_of(key) or len(proof.siblings) != DEPTH:
        return False
    if entry_hash(key, value) not in proof.entries:
        return False
    acc = leaf_of(list(proof.entries))
    i = proof.bucket
    for sib in proof.siblings:
        acc = node_of(acc, sib) if i % 2 == 0 else node_of(sib, acc)
        i >>= 1
    return acc == root
