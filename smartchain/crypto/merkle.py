"""Binary Merkle trees with inclusion proofs (RFC 6962 shape).

Leaves and inner nodes are hashed under different tags so a leaf can never pass for a
node. The tree splits at the largest power of two below n, so every leaf count has one
shape and proofs are O(log n). Used for transaction roots and, later, storage audits.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U64, Fixed32, Struct, list_of
from smartchain.crypto.hashing import h256_tagged, tagged_hasher

LEAF_TAG = b"smart/mk-leaf"
NODE_TAG = b"smart/mk-node"
EMPTY_ROOT = h256_tagged(b"smart/mk-empty")


_LEAF = tagged_hasher(LEAF_TAG)
_NODE = tagged_hasher(NODE_TAG)


def leaf_hash(data: bytes | memoryview) -> bytes:
    h = _LEAF.copy()
    h.update(data)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    h = _NODE.copy()
    h.update(left + right)
    return h.digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_of_hashes(leaves: list[bytes]) -> bytes:
    """Root over already-hashed leaves.

    Computed bottom-up, carrying a level's odd last node up unchanged: this builds exactly
    the RFC 6962 (left-balanced) tree that ``prove`` walks top-down.
    """
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _root(leaves: list[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 1:
        return leaves[lo]
    k = _split(n)
    return node_hash(_root(leaves, lo, lo + k), _root(leaves, lo + k, hi))


def merkle_root(items: list[bytes]) -> bytes:
    """Root over raw data items."""
    return root_of_hashes([leaf_hash(x) for x in items])


@dataclass(frozen=True, slots=True)
class MerkleProof(Struct):
    """Proof that the leaf at ``index`` of a ``size``-leaf tree has a given hash."""

    index: U64
    size: U64
    path: list_of[Fixed32]  # sibling hashes, leaf level first


def prove(leaves: list[bytes], index: int) -> MerkleProof:
    """Inclusion proof for ``leaves[index]`` (leaves already hashed)."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_root(leaves, lo, lo + k))
            lo = lo + k
    return MerkleProof(index, len(leaves), tuple(reversed(path)))


def verify_proof(root: bytes, leaf: bytes, proof: MerkleProof) -> bool:
    """True when ``leaf`` (already hashed) sits at ``proof.index`` under ``root``."""
    if not 0 <= proof.index < proof.size:
        return False
    # Recompute the descent to know, at each level, whether we were left or right.
    sides: list[bool] = []  # True = our subtree is the left child
    lo, hi, index = 0, proof.size, proof.index
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            sides.append(True)
            hi = lo + k
        else:
            sides.append(False)
            lo = lo + k
    if len(sides) != len(proof.path):
        return False
    acc = leaf
    for sibling, is_left in zip(proof.path, reversed(sides), strict=True):
        acc = node_hash(acc, sibling) if is_left else node_hash(sibling, acc)
    return acc == root
