"""Ed25519 keys through PyNaCl (libsodium).

We measured the bindings on this machine (bench/verify_bindings.py): PyNaCl verifies
~13.9 k/s on one core and ~24.8 k/s on two threads because it releases the GIL;
py-ed25519-zebra-bindings verifies ~20.7 k/s on one core but holds the GIL, so two
threads gain nothing. On our 2-core machines PyNaCl is the fastest per machine, needs no
IPC, and libsodium's verify is strict (canonical S, no small-order keys), which keeps
every node's accept/reject decision identical.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import nacl.bindings as _nb
import nacl.exceptions

from smartchain.crypto.address import address_of

PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
SEED_SIZE = 32

_sign = _nb.crypto_sign
_open = _nb.crypto_sign_open
_BadSignature = nacl.exceptions.BadSignatureError


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``."""
    try:
        _open(signature + message, public_key)
        return True
    except (_BadSignature, ValueError, TypeError):
        return False


def verify_many(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    """Verify (public_key, message, signature) triples; a libsodium call per item, GIL released."""
    out = []
    append = out.append
    for pk, msg, sig in items:
        try:
            _open(sig + msg, pk)
            append(True)
        except (_BadSignature, ValueError, TypeError):
            append(False)
    return out


class ParallelVerifier:
    """Spreads batches of signature checks over threads (libsodium releases the GIL)."""

    def __init__(self, workers: int | None = None, chunk: int = 256) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.chunk = chunk
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sigverify")

    def verify(self, items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
        if len(items) <= self.chunk or self.workers == 1:
            return verify_many(items)
        step = max(self.chunk, -(-len(items) // (self.workers * 4)))
        parts = [items[i : i + step] for i in range(0, len(items), step)]
        out: list[bool] = []
        for res in self._pool.map(verify_many, parts):
            out.extend(res)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


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
