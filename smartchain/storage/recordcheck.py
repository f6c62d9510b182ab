"""Checking a batch's device-signed records on every core: each record opened exactly as an
agent opens one (``open_message``: size, encoding, the device's Ed25519 signature, a JSON
body), its device compared with the batch's, and its Merkle leaf hashed, in worker processes.

A 64 MiB batch holds ~16,000 records: one core checks them in about a second, the buyer's
wait after its key arrives. Chunks of records go to worker processes (``spawn``: the
caller may hold an event loop and sockets) as the plaintext arrives, so checking overlaps
decryption and uses every core; results come back in order and the first bad record is
named exactly as the in-process path names it. Small batches are checked in-process: below
``threshold`` records the IPC costs more than it saves.

Kept apart from ``datasets.py`` so a worker imports only the codec and the crypto.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from smartchain.agent.messages import BadMessage, open_message
from smartchain.crypto.keys import _exit_with_parent
from smartchain.crypto.merkle import leaf_hash

CHUNK = 512  # the fewest records per task: ~2 MiB of 4 KiB records, ~40 ms of checks
TASKS_PER_WORKER = 4  # enough to overlap decryption; few, as each is a round of IPC wake-ups
OTHER_DEVICE = "signed by another device"


@dataclass(frozen=True, slots=True)
class Checked:
    """What a chunk of records came to: their Merkle leaves, concatenated, up to the first
    bad record (``error``: its index within the chunk and why). Only these bytes travel
    back: returning the opened messages would cost more to pickle than to decode again."""

    leaves: bytes
    error: tuple[int, str] | None = None


def check_records(device: bytes, records: list[bytes]) -> Checked:
    """Open each record; stop at the first one that is malformed, badly signed or signed by
    another device than ``device``."""
    leaves: list[bytes] = []
    for i, raw in enumerate(records):
        try:
            msg = open_message(raw)
        except BadMessage as exc:
            return Checked(b"".join(leaves), (i, str(exc)))
        if msg.device != device:
            return Checked(b"".join(leaves), (i, OTHER_DEVICE))
        leaves.append(leaf_hash(raw))
    return Checked(b"".join(leaves))


def _done(result: Checked) -> Future[Checked]:
    fut: Future[Checked] = Future()
    fut.set_result(result)
    return fut


class RecordPool:
    """Worker processes (one per core) that check chunks of records; started lazily, or
    early with ``warm_up`` while the caller waits for something else (a key)."""

    def __init__(self, workers: int | None = None, threshold: int = 2 * CHUNK) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.threshold = threshold
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # ``warm_up`` runs in a thread beside ``submit``

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_exit_with_parent, initargs=(os.getpid(),))
            return self._pool

    def parallel(self, count: int) -> bool:
        """Whether a batch of ``count`` records is worth the workers."""
        return self.workers > 1 and count >= self.threshold

    def chunk(self, count: int) -> int:
        """Records per task for a batch of ``count``: a handful of tasks per worker (each
        costs process wake-ups, slow on a busy machine), none smaller than ``CHUNK``."""
        return max(CHUNK, -(-count // (TASKS_PER_WORKER * self.workers)))

    def warm_up(self) -> None:
        """Start the workers and import the checks in them now (a spawn takes a few hundred
        milliseconds per worker) rather than on the first chunk."""
        if self.workers > 1:
            list(self._get_pool().map(check_records, [b""] * self.workers,
                                      [[]] * self.workers))

    def submit(self, device: bytes, records: list[bytes], parallel: bool = True
               ) -> Future[Checked]:
        """Check ``records`` on a worker (in this process when ``parallel`` is false)."""
        if not parallel or self.workers == 1:
            return _done(check_records(device, records))
        return self._get_pool().submit(check_records, device, records)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


_DEFAULT: RecordPool | None = None


def default_pool() -> RecordPool:
    """The process's shared pool (its workers live until the process exits)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RecordPool()
    return _DEFAULT
