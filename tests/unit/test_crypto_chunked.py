"""The libsodium path for chunk Merkle trees builds the trees ``crypto.merkle`` defines: the
chain checks audit proofs with ``merkle.leaf_hash`` and ``verify_proof``, so any difference
would make an honest provider fail its audits."""

from __future__ import annotations

import os

import pytest

from smartchain.crypto import chunked
from smartchain.crypto.merkle import leaf_hash, prove, root_of_hashes, verify_proof

SIZE = 1024


def _reference(data: bytes, size: int) -> list[bytes]:
    parts = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    return [leaf_hash(p) for p in parts]


@pytest.mark.parametrize("length", [0, 1, SIZE - 1, SIZE, SIZE + 1, 2 * SIZE, 3 * SIZE + 5,
                                    7 * SIZE, 2 * 1024 * 1024 + 80])
def test_leaf_hashes_and_root_match_the_merkle_module_for_every_length(length: int) -> None:
    data = os.urandom(length)
    want = _reference(data, SIZE)
    assert chunked.leaf_hashes(data, SIZE) == want
    assert chunked.chunk_root(data, SIZE) == root_of_hashes(want)
    assert chunked.leaf_count(length, SIZE) == len(want)


def test_a_memoryview_of_a_larger_buffer_hashes_only_its_own_bytes() -> None:
    data = os.urandom(5 * SIZE + 7)
    view = memoryview(data)[SIZE + 3: 4 * SIZE]
    assert chunked.leaf_hashes(view, SIZE) == _reference(bytes(view), SIZE)


def test_a_proof_from_the_libsodium_leaves_verifies_with_hashlib() -> None:
    data = os.urandom(37 * SIZE + 100)
    leaves = chunked.leaf_hashes(data, SIZE)
    root = chunked.chunk_root(data, SIZE)
    for i in (0, 17, 37):
        chunk = data[i * SIZE:(i + 1) * SIZE]
        assert verify_proof(root, leaf_hash(chunk), prove(leaves, i))
