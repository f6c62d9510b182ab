"""A storage provider's pieces on disk.

Layout under the store's directory::

    blobs/abc/abcdef…(64 hex)   one file per distinct piece, named by its piece root
    index/                      LMDB: which slot holds which piece, and the books

**Content-addressed files.** A piece's file name is its piece root (the Merkle root the
chain and clients know it by), fanned out over 4,096 directories (its first three hex
digits) so that a directory holds a few hundred entries even at a million pieces (2 TiB).
The directories are all created (and made durable) when the store is first opened: a put
then never pays for creating one. Two slots holding the same bytes share one file
(reference-counted).

**Durable before acknowledged.** A piece is written to a temporary file, fsync'd, renamed
into place and its directory fsync'd, then the index is committed (LMDB, synchronous); only
then does ``put`` return, so a provider that acknowledged a piece still has it after a
power cut. A crash in between leaves at worst an unreferenced file, removed at the next open.
Index writes of concurrent puts share one commit (group commit): one fsync for many pieces.

**Checked on read.** The index keeps a blake2b-256 of each file, taken while the file is
written (in a second thread, during the write and the fsyncs); ``get`` compares it (one
pass over the bytes, cheaper than recomputing the piece root) and raises
``PieceCorrupt`` instead of handing out bytes that changed on disk: a provider must never
serve, nor prove, data it no longer has.

**Slots and columns.** A slot is ``(file_id, frag_index, segment)``: piece ``(s, j)`` of a
file. Once a client has put a whole column it asks the provider to *accept* it; the
column's record keeps its piece roots (for the column Merkle paths served with every piece
and every audit answer). A column is *pinned* while the chain lists it in an active deal of
this provider. Everything else is *pending*: uploads a client abandoned (long-tail
cancellation uploads more pieces than it keeps), columns moved away by repair, deals that
ended. ``gc`` deletes pending slots untouched for a grace period.

**Capacity.** ``capacity`` bytes of distinct pieces at most (what the provider offers on
chain), and never below ``min_free`` bytes free on the disk (``shutil.disk_usage``): a put
over either is refused with ``StoreFull`` and changes nothing. Space being written is
reserved first, so concurrent puts cannot overshoot together.

Thread-safe: puts and reads run in worker threads of the node (disk I/O off the event loop).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from smartchain.codec import U32, U64, Bool, Fixed32, Struct, list_of
from smartchain.durable import fsync_dir, write_durably
from smartchain.p2p import Refused
from smartchain.storage import layout

BLOBS_DIR = "blobs"
INDEX_DIR = "index"
TMP_SUFFIX = ".tmp"
DEFAULT_MIN_FREE = 256 * 1024 * 1024
FANOUT_DIGITS = 3  # hex digits of the root naming a piece's directory: 4,096 directories
FANOUT_MARK = ".fanout"  # written once every fan-out directory exists
INDEX_MAP_SIZE = 1 << 34  # sparse: the index of a large store is a few hundred MiB at most
LOCK_STRIPES = 256
HASH_THREADS = 2  # checksums taken while pieces are written (see ``_write_file``)
_USED_KEY = b"used"
T = TypeVar("T")


class PieceStoreError(Exception):
    """Base of the piece store's errors."""


class PieceNotFound(PieceStoreError, LookupError):
    """The slot (or column) is not held here: a P2P handler answers "not found"."""


class PieceCorrupt(PieceStoreError, LookupError):
    """The bytes on disk no longer match what was stored (bit rot, tampering, a lost file).

    A ``LookupError`` too: to a client, a piece this provider cannot vouch for is a piece it
    does not have, and it should ask another provider."""


class StoreFull(PieceStoreError, Refused):
    """A put would go over the configured capacity or below the disk's free-space floor."""


class PieceConflict(PieceStoreError, ValueError):
    """A slot of a pinned column (or an accepted column) already holds different bytes."""


@dataclass(frozen=True, slots=True)
class SlotMeta(Struct):
    root: Fixed32  # piece root: the blob's name
    size: U64
    received_ms: U64  # wall clock of the last put: pending garbage collection counts from it


@dataclass(frozen=True, slots=True)
class BlobMeta(Struct):
    size: U64
    refs: U32  # slots holding this piece
    checksum: Fixed32  # blake2b-256 of the file's bytes


@dataclass(frozen=True, slots=True)
class ColumnMeta(Struct):
    segments: U32
    root: Fixed32  # column root = root of piece_roots
    column_bytes: U64
    pinned: Bool  # in an active deal of this provider on chain
    since_ms: U64  # wall clock of the last accept or unpin: the grace period counts from it
    piece_roots: list_of[Fixed32]


def checksum(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=32).digest()


def slot_key(file_id: bytes, frag_index: int, segment: int) -> bytes:
    return file_id + frag_index.to_bytes(4, "big") + segment.to_bytes(4, "big")


def column_key(file_id: bytes, frag_index: int) -> bytes:
    return file_id + frag_index.to_bytes(4, "big")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PieceStore:
    """See the module docstring. ``close()`` when done (LMDB is opened once per process)."""

    def __init__(self, root: Path | str, capacity: int, *,
                 min_free: int = DEFAULT_MIN_FREE) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.root = Path(root)
        self.capacity = capacity
        self.min_free = min_free
        self.blobs = self.root / BLOBS_DIR
        self._make_fanout()
        (self.root / INDEX_DIR).mkdir(exist_ok=True)
        self.env = lmdb.open(str(self.root / INDEX_DIR), map_size=INDEX_MAP_SIZE, max_dbs=8,
                             sync=True, metasync=True)
        self._slots = self.env.open_db(b"slots")
        self._blobs = self.env.open_db(b"blobs")
        self._columns = self.env.open_db(b"columns")
        self._meta = self.env.open_db(b"meta")
        self._commits = _GroupCommit(self.env)
        self._space = threading.Lock()
        self._reserved = 0
        # One lock per first byte of the piece root: creating and deleting a blob file is
        # atomic with its index entry, while puts of different pieces still run in parallel.
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        self._hasher = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="piece-checksum")
        self.removed_orphans = self._sweep()

    def close(self) -> None:
        self._hasher.shutdown()
        self.env.close()

    def __enter__(self) -> PieceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- paths and space ------------------------------------------------------------------

    def path_of(self, root: bytes) -> Path:
        h = root.hex()
        return self.blobs / h[:FANOUT_DIGITS] / h

    def _make_fanout(self) -> None:
        if (self.blobs / FANOUT_MARK).exists():
            return
        self.blobs.mkdir(parents=True, exist_ok=True)
        for i in range(16 ** FANOUT_DIGITS):
            (self.blobs / f"{i:0{FANOUT_DIGITS}x}").mkdir(exist_ok=True)
        fsync_dir(self.blobs)
        fsync_dir(self.blobs.parent)
        (self.blobs / FANOUT_MARK).touch()

    @property
    def used(self) -> int:
        """Bytes of distinct pieces held (pending ones included)."""
        with self.env.begin(db=self._meta) as txn:
            raw = txn.get(_USED_KEY)
        return int.from_bytes(raw, "big") if raw else 0

    def _reserve(self, size: int) -> None:
        with self._space:
            used = self.used
            if used + self._reserved + size > self.capacity:
                raise StoreFull(f"over capacity: {used + self._reserved} of {self.capacity} "
                                f"bytes used, a {size}-byte piece does not fit")
            free = shutil.disk_usage(self.root).free
            if free - size < self.min_free:
                raise StoreFull(f"disk full: {free} bytes free on {self.root}, a {size}-byte "
                                f"piece would leave less than the {self.min_free} kept free")
            self._reserved += size

    def _release(self, size: int) -> None:
        with self._space:
            self._reserved -= size

    def _add_used(self, txn: lmdb.Transaction, delta: int) -> None:
        raw = txn.get(_USED_KEY, db=self._meta)
        used = (int.from_bytes(raw, "big") if raw else 0) + delta
        txn.put(_USED_KEY, used.to_bytes(8, "big"), db=self._meta)

    def _stripe(self, root: bytes) -> threading.Lock:
        return self._stripes[root[0]]

    # --- writing --------------------------------------------------------------------------

    def _write_file(self, path: Path, data: bytes) -> bytes:
        """Temp file, fsync, rename, fsync of the directory; returns the data's checksum,
        taken in another thread while the file is written and synced (hashlib lets go of
        the GIL for large buffers, and the disk's wait is idle CPU): the put waits for the
        slower of the two, not for both."""
        parent = path.parent
        tmp = parent / f"{path.name}.{os.getpid()}.{threading.get_ident()}{TMP_SUFFIX}"
        digest = self._hasher.submit(checksum, data)
        try:
            write_durably(path, data, mode=0o644, tmp=tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(f"disk full: writing {len(data)} bytes to {parent}: "
                                f"{exc.strerror}") from None
            raise
        finally:
            wait([digest])
        return digest.result()

    def put(self, file_id: bytes, frag_index: int, segment: int, piece: bytes,
            now_ms: int | None = None) -> bytes:
        """Store piece ``(segment, frag_index)`` of ``file_id``; returns its piece root.

        Durable when it returns. Putting the same bytes again only refreshes the slot's
        received time, unless the file on disk was damaged: then the bytes just received
        replace it (a repair re-puts a lost column onto the provider whose copy rotted).
        Raises ``StoreFull`` (nothing changed) or ``PieceConflict``."""
        now = _now_ms() if now_ms is None else now_ms
        root = layout.piece_root(piece)
        skey = slot_key(file_id, frag_index, segment)
        with self.env.begin() as txn:
            old_raw = txn.get(skey, db=self._slots)
            col_raw = txn.get(column_key(file_id, frag_index), db=self._columns)
        old = SlotMeta.decode(old_raw) if old_raw else None
        if old is not None and old.root != root and col_raw is not None:
            col = ColumnMeta.decode(col_raw)
            if segment < col.segments:
                raise PieceConflict(f"segment {segment} of column {file_id.hex()[:16]}…/"
                                    f"{frag_index} is accepted with other bytes")
        size = len(piece)
        with self._stripe(root):
            with self.env.begin() as txn:
                have_blob = txn.get(root, db=self._blobs) is not None
            reserved = 0
            if not have_blob:
                self._reserve(size)
                reserved = size
            try:
                path = self.path_of(root)
                if have_blob:  # the checksum also when shared: see _link
                    digest = checksum(piece)
                    if not self._intact(path, digest):
                        self._write_file(path, piece)
                else:
                    digest = self._write_file(path, piece)
                replaced = self._commits.run(
                    lambda txn: self._link(txn, skey, root, size, digest, now))
            finally:
                if reserved:
                    self._release(reserved)
        if replaced is not None:
            self._unlink_unreferenced(replaced)
        return root

    def _intact(self, path: Path, digest: bytes) -> bool:
        """Whether a piece's file holds the bytes whose checksum is ``digest``."""
        try:
            return checksum(path.read_bytes()) == digest
        except FileNotFoundError:
            return False

    def _link(self, txn: lmdb.Transaction, skey: bytes, root: bytes, size: int,
              digest: bytes, now: int) -> bytes | None:
        """Point a slot at a piece (in the caller's write transaction). Returns the root of
        a piece the slot held before and no slot holds any more (its file is to delete).

        The piece's file exists (the caller holds its stripe lock), even when the blob's
        entry is gone: another slot may have dropped its last reference since the caller
        looked, and its deletion waits for that lock, then finds the entry revived here."""
        old_raw = txn.get(skey, db=self._slots)
        old = SlotMeta.decode(old_raw) if old_raw else None
        txn.put(skey, SlotMeta(root, size, now).encode(), db=self._slots)
        repeated = old is not None and old.root == root
        blob_raw = txn.get(root, db=self._blobs)
        if blob_raw is not None:
            # ``digest`` is the checksum of the file now (``put`` rewrote a damaged one)
            blob = BlobMeta.decode(blob_raw)
            refs = blob.refs + (0 if repeated else 1)
            if (refs, digest) != (blob.refs, blob.checksum):
                txn.put(root, BlobMeta(blob.size, refs, digest).encode(), db=self._blobs)
        if repeated:
            return None  # a repeated put: only the time moved
        if blob_raw is None:
            txn.put(root, BlobMeta(size, 1, digest).encode(), db=self._blobs)
            self._add_used(txn, size)
        if old is not None and self._unref(txn, old.root):  # replaced bytes of a pending slot
            return old.root
        return None

    def _unlink_unreferenced(self, root: bytes) -> None:
        """Delete a blob's file unless a put re-created its index entry meanwhile (checked
        under the blob's lock, which a put holds from writing the file to indexing it)."""
        with self._stripe(root):
            with self.env.begin(db=self._blobs) as txn:
                if txn.get(root) is not None:
                    return
            self.path_of(root).unlink(missing_ok=True)

    def _unref(self, txn: lmdb.Transaction, root: bytes) -> bool:
        """Drop one reference; True when the blob's file must now be deleted."""
        raw = txn.get(root, db=self._blobs)
        if raw is None:
            return False
        blob = BlobMeta.decode(raw)
        if blob.refs > 1:
            txn.put(root, BlobMeta(blob.size, blob.refs - 1, blob.checksum).encode(),
                    db=self._blobs)
            return False
        txn.delete(root, db=self._blobs)
        self._add_used(txn, -blob.size)
        return True

    # --- reading --------------------------------------------------------------------------

    def slot(self, file_id: bytes, frag_index: int, segment: int) -> SlotMeta | None:
        with self.env.begin(db=self._slots) as txn:
            raw = txn.get(slot_key(file_id, frag_index, segment))
        return SlotMeta.decode(raw) if raw else None

    def get(self, file_id: bytes, frag_index: int, segment: int) -> bytes:
        """The piece's bytes, checked against the checksum taken when it was stored.

        Raises ``PieceNotFound`` (no such slot) or ``PieceCorrupt`` (file changed or gone)."""
        where = f"piece {segment} of column {file_id.hex()[:16]}…/{frag_index}"
        with self.env.begin() as txn:
            raw = txn.get(slot_key(file_id, frag_index, segment), db=self._slots)
            if raw is None:
                raise PieceNotFound(f"{where} is not held here")
            meta = SlotMeta.decode(raw)
            blob_raw = txn.get(meta.root, db=self._blobs)
        if blob_raw is None:  # cannot happen with a consistent index
            raise PieceCorrupt(f"{where}: index entry without its piece")
        blob = BlobMeta.decode(blob_raw)
        try:
            data = self.path_of(meta.root).read_bytes()
        except FileNotFoundError:
            raise PieceCorrupt(f"{where}: its file {self.path_of(meta.root)} is gone") from None
        if len(data) != blob.size or checksum(data) != blob.checksum:
            raise PieceCorrupt(f"{where}: file {self.path_of(meta.root)} does not match its "
                               f"checksum (corrupt on disk)")
        return data

    # --- columns --------------------------------------------------------------------------

    def accept(self, file_id: bytes, frag_index: int, piece_roots: list[bytes],
               now_ms: int | None = None) -> ColumnMeta:
        """Record a whole column, if every segment's piece is held with the given root.

        Checks the index and each file's presence and size, not every byte (a column can be
        gigabytes; the bytes were hashed on arrival and reads verify them). Accepting the
        same column again is harmless; it keeps a pin. Raises ``PieceNotFound``."""
        now = _now_ms() if now_ms is None else now_ms
        if not piece_roots:
            raise ValueError("a column has at least one segment")
        total = 0
        with self.env.begin() as txn:
            for s, want in enumerate(piece_roots):
                raw = txn.get(slot_key(file_id, frag_index, s), db=self._slots)
                slot = SlotMeta.decode(raw) if raw else None
                if slot is None or slot.root != want:
                    raise PieceNotFound(f"segment {s} of column {file_id.hex()[:16]}…/"
                                        f"{frag_index} is not held with root {want.hex()[:16]}…")
                try:
                    on_disk = self.path_of(want).stat().st_size
                except FileNotFoundError:
                    on_disk = -1
                if on_disk != slot.size:
                    raise PieceNotFound(f"segment {s} of column {file_id.hex()[:16]}…/"
                                        f"{frag_index}: its file is missing or truncated")
                total += slot.size
        root = layout.column_root(list(piece_roots))
        ckey = column_key(file_id, frag_index)
        with self.env.begin(write=True, db=self._columns) as txn:
            raw = txn.get(ckey)
            old = ColumnMeta.decode(raw) if raw else None
            if old is not None and old.pinned and old.root != root:
                raise PieceConflict(f"column {file_id.hex()[:16]}…/{frag_index} is in a deal "
                                    f"with another root")
            pinned = old is not None and old.pinned
            meta = ColumnMeta(len(piece_roots), root, total, pinned,
                              old.since_ms if pinned and old is not None else now,
                              tuple(piece_roots))
            txn.put(ckey, meta.encode())
        return meta

    def column(self, file_id: bytes, frag_index: int) -> ColumnMeta | None:
        with self.env.begin(db=self._columns) as txn:
            raw = txn.get(column_key(file_id, frag_index))
        return ColumnMeta.decode(raw) if raw else None

    def columns(self) -> Iterator[tuple[bytes, int, ColumnMeta]]:
        with self.env.begin(db=self._columns) as txn:
            items = list(txn.cursor())
        for key, raw in items:
            yield key[:32], int.from_bytes(key[32:36], "big"), ColumnMeta.decode(raw)

    def set_pinned(self, active: Iterable[tuple[bytes, int]],
                   now_ms: int | None = None) -> list[tuple[bytes, int]]:
        """Pin exactly the columns in ``active`` (the chain's columns of this provider in
        active deals), unpinning the others, whose grace period starts now. Returns the
        active columns that are not accepted here (the provider cannot prove them)."""
        now = _now_ms() if now_ms is None else now_ms
        want = {column_key(f, j) for f, j in active}
        seen: set[bytes] = set()
        with self.env.begin(write=True, db=self._columns) as txn:
            for key, raw in list(txn.cursor()):
                key = bytes(key)
                meta = ColumnMeta.decode(raw)
                pin = key in want
                seen.add(key)
                if pin != meta.pinned:
                    txn.put(key, ColumnMeta(meta.segments, meta.root, meta.column_bytes, pin,
                                            now, meta.piece_roots).encode())
        return [(k[:32], int.from_bytes(k[32:], "big")) for k in sorted(want - seen)]

    # --- garbage collection ---------------------------------------------------------------

    def discard(self, file_id: bytes, frag_index: int) -> tuple[int, int]:
        """Delete the pieces of one column now, unless it is pinned: an upload whose intent
        ran out without a deal (``storage/admission.py``)."""
        return self.gc(0, prefix=column_key(file_id, frag_index))

    def gc(self, grace_ms: int, now_ms: int | None = None,
           prefix: bytes = b"") -> tuple[int, int]:
        """Delete slots of unpinned columns (and loose slots) untouched for ``grace_ms``;
        only those whose key starts with ``prefix`` (a column key: one column).

        Returns (slots removed, bytes of files freed)."""
        now = _now_ms() if now_ms is None else now_ms
        doomed: list[tuple[bytes, bytes]] = []  # (slot key, root)
        cols: dict[bytes, ColumnMeta | None] = {}
        with self.env.begin() as txn:
            cursor = txn.cursor(db=self._slots)
            for key, raw in cursor.iternext() if cursor.set_range(prefix) else ():
                key = bytes(key)
                if not key.startswith(prefix):
                    break
                ckey = key[:36]
                if ckey not in cols:
                    craw = txn.get(ckey, db=self._columns)
                    cols[ckey] = ColumnMeta.decode(craw) if craw else None
                col = cols[ckey]
                if col is not None and col.pinned:
                    continue
                meta = SlotMeta.decode(raw)
                touched = max(meta.received_ms, col.since_ms if col is not None else 0)
                if now - touched >= grace_ms:
                    doomed.append((key, meta.root))
        removed = freed = 0
        for key, root in doomed:
            with self._stripe(root):
                with self.env.begin(write=True) as txn:
                    held = txn.get(key, db=self._slots)
                    if held is None or SlotMeta.decode(held).root != root:
                        continue
                    meta = SlotMeta.decode(held)
                    craw = txn.get(key[:36], db=self._columns)
                    col = ColumnMeta.decode(craw) if craw else None
                    if col is not None and col.pinned:
                        continue  # pinned since we looked
                    if now - max(meta.received_ms, col.since_ms if col else 0) < grace_ms:
                        continue  # put again since we looked
                    txn.delete(key, db=self._slots)
                    gone = self._unref(txn, root)
                removed += 1
                if gone:
                    self.path_of(root).unlink(missing_ok=True)
                    freed += meta.size
        self._drop_empty_columns()
        return removed, freed

    def _drop_empty_columns(self) -> None:
        with self.env.begin(write=True) as txn:
            for key, raw in list(txn.cursor(db=self._columns)):
                if ColumnMeta.decode(raw).pinned:
                    continue
                cur = txn.cursor(db=self._slots)
                if not (cur.set_range(bytes(key)) and bytes(cur.key()).startswith(bytes(key))):
                    txn.delete(bytes(key), db=self._columns)

    # --- recovery -------------------------------------------------------------------------

    def _sweep(self) -> int:
        """At open: remove temp files and files the index does not know (a crash between
        the rename and the index commit). Returns how many files went."""
        removed = 0
        with self.env.begin(db=self._blobs) as txn:
            for d in self.blobs.iterdir():
                if not d.is_dir():
                    continue
                for f in d.iterdir():
                    keep = False
                    if not f.name.endswith(TMP_SUFFIX) and len(f.name) == 64:
                        try:
                            keep = txn.get(bytes.fromhex(f.name)) is not None
                        except ValueError:
                            keep = False
                    if not keep:
                        f.unlink(missing_ok=True)
                        removed += 1
        return removed


class _GroupCommit:
    """Concurrent index writes share one LMDB commit.

    Each writer queues its operation, then takes the commit lock; whoever holds it commits
    every operation queued so far in one transaction (one fsync), so writers that queued
    meanwhile find theirs done. Alone, a writer commits just its own. An operation that
    raises would abort the batch: the batch is then run one operation per transaction, so
    only the faulty one fails."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._queue: list[_Op] = []

    def run(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        op = _Op(fn)
        with self._queue_lock:
            self._queue.append(op)
        with self._commit_lock:
            if not op.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    with self.env.begin(write=True) as txn:
                        for o in batch:
                            o.result = o.fn(txn)
                except Exception:
                    for o in batch:
                        try:
                            with self.env.begin(write=True) as txn:
                                o.result = o.fn(txn)
                        except Exception as exc:
                            o.error = exc
                for o in batch:
                    o.done = True
        if op.error is not None:
            raise op.error
        return op.result


class _Op:
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[lmdb.Transaction], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: Exception | None = None
        self.done = False
