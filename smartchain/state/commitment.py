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
# Copied per hash in the per-block loops: cheaper than a new personalised state each time.
_ENTRY_STATE = blake2b(digest_size=32, person=_ENTRY)
_NODE_STATE = blake2b(digest_size=32, person=_NODE)


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
    entries: list_of[Fixed32]  # every entry hash in the bucket, in key order
    siblings: list_of[Fixed32]  # leaf level first


@dataclass(slots=True)
class TreeUpdate:
    """A block's effect on the state tree, computed without changing it.

    Proposers and validators stage a block to learn its state root; only a committed
    block's update is written (``write``) and then installed (``install``).
    """

    root: bytes
    entries: dict[bytes, bytes | None]  # sidx key -> entry hash (None: delete)
    leaves: dict[int, bytes]  # bucket -> new leaf
    nodes: list[dict[int, bytes]]  # per level (0: the leaves): index -> new node


class StateTree:
    """In-memory inner nodes of the bucket tree; leaves persisted in LMDB."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [
            [EMPTY_AT[lvl]] * (NBUCKETS >> lvl) for lvl in range(DEPTH + 1)
        ]

    @property
    def root(self) -> bytes:
        return self.levels[DEPTH][0]

    def load(self, txn: lmdb.Transaction[bytes], sleaf_db: lmdb._Database) -> None:
        """Rebuild the tree from the persisted bucket leaves."""
        leaves: dict[int, bytes] = {}
        for k, v in txn.cursor(db=sleaf_db):
            leaves[int.from_bytes(k, "big")] = v
        self.install(TreeUpdate(b"", {}, leaves, self._paths(leaves)))

    def _paths(self, leaves: dict[int, bytes]) -> list[dict[int, bytes]]:
        """New nodes above changed ``leaves``, per level (the tree itself is not touched)."""
        out = [dict(leaves)]
        cur = leaves
        node = _NODE_STATE.copy
        for lvl in range(1, DEPTH + 1):
            row = self.levels[lvl - 1]
            nxt: dict[int, bytes] = {}
            for i in {c >> 1 for c in cur}:
                left = cur.get(2 * i) or row[2 * i]
                right = cur.get(2 * i + 1) or row[2 * i + 1]
                h = node()
                h.update(left + right)
                nxt[i] = h.digest()
            out.append(nxt)
            cur = nxt
        return out

    def stage(self, txn: lmdb.Transaction[bytes], sidx_db: lmdb._Database,
              writes: dict[bytes, bytes | None]) -> TreeUpdate:
        """The tree update for ``writes`` over the committed state seen by ``txn``."""
        entries: dict[bytes, bytes | None] = {}
        by_bucket: dict[bytes, dict[bytes, bytes | None]] = {}
        entry = _ENTRY_STATE.copy
        for key, value in writes.items():
            prefix = blake2b(key, digest_size=2).digest()  # bucket_of(key), as bytes
            skey = prefix + key
            h: bytes | None = None
            if value is not None:
                hasher = entry()
                hasher.update(len(key).to_bytes(4, "big") + key + value)
                h = hasher.digest()
            entries[skey] = h
            changes = by_bucket.get(prefix)
            if changes is None:
                changes = by_bucket[prefix] = {}
            changes[skey] = h
        cur = txn.cursor(db=sidx_db)
        leaves: dict[int, bytes] = {}
        for prefix, changes in by_bucket.items():
            merged: dict[bytes, bytes | None] = {}
            if cur.set_range(prefix):
                for k, v in cur:
                    if not k.startswith(prefix):
                        break
                    merged[k] = v
            merged.update(changes)
            leaves[int.from_bytes(prefix, "big")] = leaf_of(
                [h for k in sorted(merged) if (h := merged[k]) is not None])
        nodes = self._paths(leaves)
        return TreeUpdate(nodes[DEPTH][0] if leaves else self.root, entries, leaves, nodes)

    @staticmethod
    def write(txn: lmdb.Transaction[bytes], dbs: dict[str, lmdb._Database],
              update: TreeUpdate) -> None:
        """Persist entry hashes and leaves inside the block's LMDB write transaction."""
        sidx, sleaf = dbs["sidx"], dbs["sleaf"]
        for skey, h in update.entries.items():
            if h is None:
                txn.delete(skey, db=sidx)
            else:
                txn.put(skey, h, db=sidx)
        for b, leaf in update.leaves.items():
            if leaf == EMPTY_LEAF:
                txn.delete(b.to_bytes(2, "big"), db=sleaf)
            else:
                txn.put(b.to_bytes(2, "big"), leaf, db=sleaf)

    def install(self, update: TreeUpdate) -> None:
        """Adopt a written update (after its LMDB transaction committed)."""
        for row, changed in zip(self.levels, update.nodes, strict=True):
            for i, h in changed.items():
                row[i] = h

    def prove(self, txn: lmdb.Transaction[bytes], sidx_db: lmdb._Database,
              key: bytes) -> StateProof:
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
