"""The provider's piece store (smartchain/storage/piecestore.py) on a real disk: pieces of a
real encrypted, erasure-coded segment go in and come back, a byte flipped on disk is caught,
refused puts change nothing, and garbage collection keeps exactly the pinned columns."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from smartchain.storage import layout
from smartchain.storage.piecestore import (
    PieceConflict,
    PieceCorrupt,
    PieceNotFound,
    PieceStore,
    StoreFull,
)

K, N = 2, 3
GRACE = 60_000
T0 = 1_700_000_000_000


def segment_pieces(seed: int, size: int = 300_000) -> tuple[bytes, list[bytes]]:
    """(file id, the code_n pieces of one sealed segment of ``size`` random bytes)."""
    owner, salt = bytes([seed]) * 20, bytes([seed]) * 32
    file_id = layout.file_id_of(owner, salt)
    key = layout.file_key(bytes([seed]) * 32, salt)
    plain = os.urandom(size)
    return file_id, layout.Codec(K, N).encode(layout.encrypt_segment(key, file_id, 0, plain))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PieceStore]:
    s = PieceStore(tmp_path / "pieces", 64 * 1024 * 1024, min_free=0)
    yield s
    s.close()


def files_in(store: PieceStore) -> list[Path]:
    return [p for p in store.blobs.rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_put_get_round_trip_is_durable_and_content_addressed(store: PieceStore,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    file_id, pieces = segment_pieces(1)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    roots = [store.put(file_id, j, 0, p, now_ms=T0) for j, p in enumerate(pieces)]
    # Each new piece: its file and its directory fsync'd before put returned.
    assert len(synced) >= 2 * len(pieces)
    assert roots == [layout.piece_root(p) for p in pieces]
    for j, p in enumerate(pieces):
        assert store.get(file_id, j, 0) == p
        path = store.path_of(roots[j])
        assert path.read_bytes() == p and path.name == roots[j].hex()
        assert path.parent.name == roots[j].hex()[:3]  # fanned out: abc/abcdef…
    assert store.used == sum(len(p) for p in pieces)
    assert not [p for p in files_in(store) if p.name.endswith(".tmp")]
    # The same bytes under a second slot share one file; putting again changes nothing.
    store.put(file_id, 0, 1, pieces[0], now_ms=T0)
    store.put(file_id, 0, 0, pieces[0], now_ms=T0)
    assert store.used == sum(len(p) for p in pieces) and len(files_in(store)) == len(pieces)
    with pytest.raises(PieceNotFound, match="not held"):
        store.get(file_id, 7, 0)
    with pytest.raises(LookupError):  # what the P2P handler turns into "not found"
        store.get(bytes(32), 0, 0)


def test_index_survives_reopen_and_orphans_are_swept(tmp_path: Path) -> None:
    file_id, pieces = segment_pieces(2)
    with PieceStore(tmp_path, 10**8, min_free=0) as s:
        root = s.put(file_id, 0, 0, pieces[0])
        orphan = s.path_of(b"\xab" * 32)
        orphan.write_bytes(b"written, then the node died before indexing it")
        (s.path_of(root).parent / "x.123.456.tmp").write_bytes(b"half a piece")
    with PieceStore(tmp_path, 10**8, min_free=0) as s:
        assert s.removed_orphans == 2 and not orphan.exists()
        assert s.get(file_id, 0, 0) == pieces[0]
        assert s.used == len(pieces[0])


def test_corrupt_or_missing_file_is_detected(store: PieceStore) -> None:
    file_id, pieces = segment_pieces(3)
    roots = [store.put(file_id, j, 0, p) for j, p in enumerate(pieces)]
    path = store.path_of(roots[0])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of rot
    path.write_bytes(bytes(data))
    with pytest.raises(PieceCorrupt, match="corrupt on disk"):
        store.get(file_id, 0, 0)
    store.path_of(roots[1]).unlink()
    with pytest.raises(PieceCorrupt, match="gone"):
        store.get(file_id, 1, 0)
    assert store.get(file_id, 2, 0) == pieces[2]
    # Accepting a column whose file is gone is refused: the provider would sign a lie.
    with pytest.raises(PieceNotFound, match="missing"):
        store.accept(file_id, 1, [roots[1]])


def test_putting_a_damaged_piece_again_heals_it(store: PieceStore) -> None:
    """A repair re-puts a lost column onto the provider whose copy rotted (with no spare
    provider it is the only way back to n): the good bytes must replace the bad file, not
    count as a repeated put of bytes already held."""
    file_id, pieces = segment_pieces(4)
    roots = [store.put(file_id, j, 0, p) for j, p in enumerate(pieces)]
    used = store.used
    store.path_of(roots[0]).write_bytes(os.urandom(len(pieces[0])))  # rot, same size
    store.path_of(roots[1]).write_bytes(b"short")  # truncated
    store.path_of(roots[2]).unlink()  # gone
    for j, piece in enumerate(pieces):
        with pytest.raises(PieceCorrupt):
            store.get(file_id, j, 0)
        assert store.put(file_id, j, 0, piece) == roots[j]
        assert store.get(file_id, j, 0) == piece
        assert store.accept(file_id, j, [roots[j]]).root == layout.column_root([roots[j]])
    assert store.used == used and len(files_in(store)) == len(pieces)


def test_over_capacity_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    file_id, pieces = segment_pieces(4)
    size = len(pieces[0])
    with PieceStore(tmp_path, 2 * size + size // 2, min_free=0) as s:
        s.put(file_id, 0, 0, pieces[0])
        s.put(file_id, 1, 0, pieces[1])
        before = (s.used, sorted(files_in(s)))
        with pytest.raises(StoreFull, match="over capacity"):
            s.put(file_id, 2, 0, pieces[2])
        assert (s.used, sorted(files_in(s))) == before
        with pytest.raises(PieceNotFound):
            s.get(file_id, 2, 0)
        s.put(file_id, 0, 0, pieces[0])  # bytes it already holds still go in (no new space)


def test_disk_full_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    file_id, pieces = segment_pieces(5)
    free = shutil.disk_usage(tmp_path).free
    # The store keeps more bytes free than the disk has: every new piece means "disk full".
    with PieceStore(tmp_path, 10**12, min_free=free + 1) as s:
        with pytest.raises(StoreFull, match="disk full"):
            s.put(file_id, 0, 0, pieces[0])
        assert s.used == 0 and files_in(s) == [] and s.slot(file_id, 0, 0) is None


def test_concurrent_puts_cannot_overshoot_capacity(tmp_path: Path) -> None:
    pieces = [p for seed in (6, 7, 8) for p in segment_pieces(seed)[1]]
    size = max(len(p) for p in pieces)
    fits = 4
    with PieceStore(tmp_path, fits * size, min_free=0) as s:
        outcomes: list[str] = []

        def put(i: int) -> None:
            try:
                s.put(bytes([i]) * 32, 0, 0, pieces[i])
                outcomes.append("ok")
            except StoreFull:
                outcomes.append("full")

        threads = [threading.Thread(target=put, args=(i,)) for i in range(len(pieces))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes.count("ok") <= fits and s.used <= s.capacity
        assert s.used == sum(len(pieces[i]) for i in range(len(pieces))
                             if s.slot(bytes([i]) * 32, 0, 0) is not None)


def test_accept_needs_every_piece_and_gives_the_column_root(store: PieceStore) -> None:
    file_id, seg0 = segment_pieces(9)
    _, seg1 = segment_pieces(10, size=1000)
    column = [seg0[1], seg1[1]]
    roots = [layout.piece_root(p) for p in column]
    store.put(file_id, 1, 0, column[0])
    with pytest.raises(PieceNotFound, match="segment 1"):
        store.accept(file_id, 1, roots)
    store.put(file_id, 1, 1, column[1])
    with pytest.raises(PieceNotFound, match="segment 0"):
        store.accept(file_id, 1, [roots[1], roots[0]])
    meta = store.accept(file_id, 1, roots)
    assert meta.root == layout.column_root(roots) and meta.segments == 2
    assert meta.column_bytes == sum(len(p) for p in column) and not meta.pinned
    proof = layout.column_proof(list(meta.piece_roots), 1)
    assert layout.verify_piece(store.get(file_id, 1, 1), meta.root, 1, 2, proof)
    # An accepted column's slots cannot be overwritten with other bytes.
    with pytest.raises(PieceConflict):
        store.put(file_id, 1, 0, seg0[2])


def test_gc_removes_only_unpinned_pieces_after_the_grace_period(store: PieceStore) -> None:
    kept_id, kept = segment_pieces(11)
    lost_id, lost = segment_pieces(12)
    for j in range(N):
        store.put(kept_id, j, 0, kept[j], now_ms=T0)
        store.put(lost_id, j, 0, lost[j], now_ms=T0)
    store.accept(kept_id, 0, [layout.piece_root(kept[0])], now_ms=T0)
    store.accept(lost_id, 0, [layout.piece_root(lost[0])], now_ms=T0)
    missing = store.set_pinned([(kept_id, 0), (bytes(32), 5)], now_ms=T0)
    assert missing == [(bytes(32), 5)]  # on chain, not here: the provider logs it
    assert store.gc(GRACE, now_ms=T0 + GRACE - 1) == (0, 0)  # still in the grace period
    removed, freed = store.gc(GRACE, now_ms=T0 + GRACE)
    assert removed == 2 * N - 1
    assert freed == sum(len(p) for p in lost) + sum(len(p) for p in kept[1:])
    assert store.get(kept_id, 0, 0) == kept[0]
    assert store.used == len(kept[0]) and len(files_in(store)) == 1
    for j in range(N):
        with pytest.raises(PieceNotFound):
            store.get(lost_id, j, 0)
    assert [(f, j) for f, j, _ in store.columns()] == [(kept_id, 0)]
    # The deal ends: unpinned now, collected one grace period later (not before).
    later = T0 + 10 * GRACE
    store.set_pinned([], now_ms=later)
    assert store.gc(GRACE, now_ms=later + GRACE - 1) == (0, 0)
    assert store.gc(GRACE, now_ms=later + GRACE) == (1, len(kept[0]))
    assert store.used == 0 and files_in(store) == [] and list(store.columns()) == []


def test_replacing_a_pending_piece_frees_the_old_file(store: PieceStore) -> None:
    file_id, pieces = segment_pieces(13)
    store.put(file_id, 0, 0, pieces[0])
    store.put(file_id, 0, 0, pieces[1])  # a client re-uploading before acceptance
    assert store.get(file_id, 0, 0) == pieces[1]
    assert store.used == len(pieces[1])
    assert [p.name for p in files_in(store)] == [layout.piece_root(pieces[1]).hex()]
