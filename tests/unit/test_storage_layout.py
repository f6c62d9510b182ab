"""The file layout: what a piece is and how it proves it belongs to a column on chain."""

from __future__ import annotations

import os

import pytest

from smartchain.crypto.merkle import leaf_hash, root_of_hashes
from smartchain.storage import layout as L

K, N = 4, 6
OWNER = b"\x07" * 20


def _columns(data: bytes, key: bytes, file_id: bytes, k: int = K, n: int = N
             ) -> list[list[bytes]]:
    codec = L.Codec(k, n)
    cols: list[list[bytes]] = [[] for _ in range(n)]
    for s in range(L.segment_count(len(data), k)):
        start, end = L.segment_bounds(len(data), k, s)
        sealed_segment = L.encrypt_segment(key, file_id, s, data[start:end])
        for j, piece in enumerate(codec.encode(sealed_segment)):
            cols[j].append(piece)
    return cols


def _decode(cols: list[list[bytes]], picks: tuple[int, ...], key: bytes, file_id: bytes) -> bytes:
    codec = L.Codec(K, N)
    return b"".join(L.decrypt_segment(key, file_id, s, codec.decode([cols[j][s] for j in picks]))
                    for s in range(len(cols[0])))


@pytest.fixture(scope="module")
def sealed() -> tuple[bytes, bytes, bytes, list[list[bytes]]]:
    data = os.urandom(2 * L.segment_size(K) + 12_345)  # two full segments and a short one
    salt = os.urandom(32)
    file_id = L.file_id_of(OWNER, salt)
    key = L.file_key(b"\x01" * 32, salt)
    return data, key, file_id, _columns(data, key, file_id)


def test_any_k_columns_rebuild_the_file(sealed: tuple) -> None:
    data, key, file_id, cols = sealed
    assert _decode(cols, (5, 0, 3, 4), key, file_id) == data
    assert _decode(cols, (1, 2, 4, 5), key, file_id) == data


def test_piece_sizes_are_known_before_encoding(sealed: tuple) -> None:
    data, _key, _fid, cols = sealed
    full, last = L.piece_sizes(len(data), K, N)
    assert [len(p) for p in cols[0]] == [full, full, last]
    # the whole upload is n/k times the file, plus per-piece headers and the tags
    sent = sum(len(p) for col in cols for p in col)
    assert 1.5 <= sent / len(data) < 1.5005


def test_a_rebuilt_piece_is_byte_identical(sealed: tuple) -> None:
    _data, _key, _fid, cols = sealed
    codec = L.Codec(K, N)
    for s in range(3):
        assert codec.rebuild([cols[j][s] for j in (0, 2, 3, 5)], 1) == cols[1][s]


def test_a_piece_verifies_only_in_its_own_place(sealed: tuple) -> None:
    _data, _key, _fid, cols = sealed
    roots = [L.piece_root(p) for p in cols[2]]
    root = L.column_root(roots)
    proof = L.column_proof(roots, 1)
    assert L.verify_piece(cols[2][1], root, 1, 3, proof)
    assert not L.verify_piece(cols[2][0], root, 1, 3, proof)  # another segment's piece
    assert not L.verify_piece(cols[3][1], root, 1, 3, proof)  # another column's piece
    assert not L.verify_piece(cols[2][1], root, 1, 4, proof)  # wrong segment count
    flipped = bytearray(cols[2][1])
    flipped[5000] ^= 1
    assert not L.verify_piece(bytes(flipped), root, 1, 3, proof)


def test_an_audit_chunk_climbs_to_the_piece_root(sealed: tuple) -> None:
    _data, _key, _fid, cols = sealed
    piece = cols[4][2]
    leaf = L.leaf_count(len(piece)) - 1  # the short last chunk
    chunk, path = L.leaf_proof(piece, leaf)
    assert chunk == piece[leaf * L.LEAF_SIZE:]
    from smartchain.crypto.merkle import leaf_hash, verify_proof
    assert verify_proof(L.piece_root(piece), leaf_hash(chunk), path)
    assert not verify_proof(L.piece_root(piece), leaf_hash(chunk + b"x"), path)


def test_only_the_owner_key_and_the_right_place_decrypt(sealed: tuple) -> None:
    data, key, file_id, _cols = sealed
    sealed_seg = L.encrypt_segment(key, file_id, 0, data[:100])
    assert L.decrypt_segment(key, file_id, 0, sealed_seg) == data[:100]
    with pytest.raises(ValueError, match="does not decrypt"):
        L.decrypt_segment(L.file_key(b"\x02" * 32, b"s" * 32), file_id, 0, sealed_seg)
    with pytest.raises(ValueError, match="does not decrypt"):
        L.decrypt_segment(key, file_id, 1, sealed_seg)  # segments cannot be swapped
    with pytest.raises(ValueError, match="does not decrypt"):
        L.decrypt_segment(key, os.urandom(32), 0, sealed_seg)  # nor files


def test_an_empty_file_is_one_empty_segment() -> None:
    salt = b"\x00" * 32
    file_id, key = L.file_id_of(OWNER, salt), L.file_key(b"\x01" * 32, salt)
    cols = _columns(b"", key, file_id)
    assert L.segment_count(0, K) == 1 and len(cols[0]) == 1
    assert _decode(cols, (0, 1, 2, 3), key, file_id) == b""


def test_bad_codes_are_refused() -> None:
    with pytest.raises(ValueError):
        L.Codec(4, 4)
    with pytest.raises(ValueError):
        L.Codec(0, 3)


@pytest.mark.parametrize("k", [1, 4, 5])
def test_a_narrower_code_gives_the_first_pieces_of_a_wider_one(k: int) -> None:
    segment = os.urandom(3 * 1024 * 1024 + 17)
    wide = L.Codec(k, k + 4).encode(segment)
    for m in range(k + 1, k + 4):
        assert L.Codec(k, m).encode(segment) == wide[:m]


@pytest.mark.parametrize("length", [0, 1, L.LEAF_SIZE - 1, L.LEAF_SIZE, L.LEAF_SIZE + 1,
                                    5 * L.LEAF_SIZE + 3])
def test_piece_leaves_are_the_leaf_hashes_of_its_chunks(length: int) -> None:
    piece = os.urandom(length)
    want = [leaf_hash(piece[i:i + L.LEAF_SIZE]) for i in range(0, length, L.LEAF_SIZE)]
    want = want or [leaf_hash(b"")]
    assert L.piece_leaves(piece) == want and L.leaf_count(length) == len(want)
    assert L.piece_root(piece) == root_of_hashes(want)
