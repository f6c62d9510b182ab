"""Ed25519 keys: signing through PyNaCl (libsodium), verification through ed25519-zebra.

We measured the bindings on this machine (bench/verify_bindings.py): PyNaCl verifies
~13.9 k/s per core and releases the GIL; py-ed25519-zebra-bindings verifies ~20.7 k/s
per core but holds the GIL. Threads that release and retake the GIL thrash against the
node's own Python threads (we saw block building slow 5x), so batch verification runs in
worker *processes*, where holding the GIL costs nothing: zebra in two processes is the
fastest option per machine. Zebra implements the ZIP-215 rules, under which single and
batch verification accept exactly the same signatures, so every node reaches the same
verdict whatever path checked a signature. Signatures made by libsodium are standard
RFC 8032 signatures and verify under both.

One ZIP-215 rule we do not keep: it accepts a small-order point (one of the 8 points of
order 1, 2, 4 or 8) as a public key, and under the cofactored equation anybody can then
"sign" any message for it (``R`` = identity, ``s`` = 0). Every path here (``verify``,
``verify_many`` and the worker processes of ``ParallelVerifier``) refuses such keys, in
every encoding zebra would decode, before the curve is touched, so single and batch
verification still agree on every input.
"""

from __future__ import annotations

import multiprocessing
import os
import struct
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import ed25519_zebra as _zebra
import nacl.bindings as _nb

from smartchain.crypto.address import address_of

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32

_sign = _nb.crypto_sign
_zverify = _zebra.ed_verify
_ITEM = struct.Struct(">32s64sI")
_P = 2**255 - 19
# The y coordinates (as encoded, so y and y + p where y + p < 2^255) of the 8 small-order
# points: order 1 (y = 1), 2 (y = -1), 4 (y = 0) and 8 (the other two). Same list as
# libsodium's ``has_small_order`` blocklist.
_SMALL_ORDER_Y = (
    0, 1, _P - 1, _P, _P + 1,
    2707385501144840649318225287225658788936804267575313519463743609750303402022,
    55188659117513257062467267217118295137698188065244968500265048394206261417927,
)
# Each with either sign bit: zebra accepts a set sign bit on x = 0 (non-canonical).
SMALL_ORDER_KEYS = frozenset((y | sign << 255).to_bytes(32, "little")
                             for y in _SMALL_ORDER_Y for sign in (0, 1))


def is_small_order(public_key: bytes) -> bool:
    """True for every encoding of a point of order 1, 2, 4 or 8: such a key has no secret
    behind it and ZIP-215 would accept forged signatures for it."""
    return public_key in SMALL_ORDER_KEYS


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``
    (ZIP-215 rules, small-order public keys refused)."""
    if (len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE
            or public_key in SMALL_ORDER_KEYS):
        return False
    return _zverify(signature, message, public_key)


def verify_many(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """Verify (public_key, message, signature) triples in this process."""
    return [verify(pk, msg, sig) for pk, msg, sig in items]


def _pack(items: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """One buffer per chunk: pickling a single bytes object is a memcpy."""
    parts = []
    for pk, msg, sig in items:
        if len(pk) != PUBLIC_KEY_SIZE or len(sig) != SIGNATURE_SIZE:
            pk, sig, msg = bytes(32), bytes(64), b"invalid"  # fails verification below
        parts.append(_ITEM.pack(pk, sig, len(msg)))
        parts.append(msg)
    return b"".join(parts)


def _verify_packed(blob: bytes) -> bytes:
    """Worker side: one byte (0/1) per item."""
    out = bytearray()
    view = memoryview(blob)
    pos, end, size = 0, len(blob), _ITEM.size
    unpack = _ITEM.unpack_from
    while pos < end:
        pk, sig, n = unpack(view, pos)
        pos += size
        out.append(1 if verify(pk, bytes(view[pos : pos + n]), sig) else 0)
        pos += n
    return bytes(out)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer: exit once the node that started us is gone. A node killed by
    SIGKILL cannot shut its pool down, and a worker blocked on its call queue would
    otherwise live on as an orphan after every crash."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class ParallelVerifier:
    """Spreads batches of signature checks over worker processes (one per core).

    Small batches are checked in-process: below ``threshold`` the IPC costs more than
    it saves. Workers start lazily, with the ``spawn`` method (no fork of a process that
    holds LMDB environments and an event loop).
    """

    def __init__(self, workers: int | None = None, threshold: int = 256) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.threshold = threshold
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with_parent, initargs=(os.getpid(),))
        return self._pool

    def warm_up(self) -> None:
        """Start the workers now rather than on the first big batch."""
        if self.workers > 1:
            list(self._get_pool().map(_verify_packed, [b""] * self.workers))

    def verify(self, items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
        if len(items) < self.threshold or self.workers == 1:
            return verify_many(items)
        step = -(-len(items) // self.workers)
        blobs = [_pack(items[i : i + step]) for i in range(0, len(items), step)]
        out: list[bool] = []
        for res in self._get_pool().map(_verify_packed, blobs):
            out.extend(b == 1 for b in res)
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


@dataclass(frozen=True, slots=True)
class PrivateKey:
    """An Ed25519 key pair held as its 32-byte seed."""

    seed: bytes
    public_key: bytes
    _secret: bytes

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls.from_seed(os.urandom(SEED_SIZE))

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        if len(seed) != SEED_SIZE:
            raise ValueError("an Ed25519 seed is 32 bytes")
        pk, sk = _nb.crypto_sign_seed_keypair(seed)
        return cls(seed, pk, sk)

    def sign(self, message: bytes) -> bytes:
        return _sign(message, self._secret)[:SIGNATURE_SIZE]

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)

    def __repr__(self) -> str:  # never print the seed
        return f"PrivateKey(public_key={self.public_key.hex()})"
