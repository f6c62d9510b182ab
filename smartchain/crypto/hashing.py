"""The chain's hash function: BLAKE2b-256 (libsodium's generichash), fast in hashlib."""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

HASH_SIZE = 32


def h256(data: bytes) -> bytes:
    """32-byte BLAKE2b digest of ``data``."""
    return blake2b(data, digest_size=32).digest()


_TAGGED: dict[bytes, Any] = {}


def tagged_hasher(tag: bytes) -> Any:  # hashlib's blake2b type is private
    """A BLAKE2b-256 state personalised with ``tag``; ``.copy()`` it (cheaper than a new one)."""
    base = _TAGGED.get(tag)
    if base is None:
        base = _TAGGED[tag] = blake2b(digest_size=32, person=tag.ljust(16, b"\0")[:16])
    return base


def h256_tagged(tag: bytes, *parts: bytes) -> bytes:
    """Domain-separated hash: the tag keeps a hash of one kind from standing for another."""
    hasher = tagged_hasher(tag).copy()
    for part in parts:
        hasher.update(part)
    return hasher.digest()


def h160(data: bytes) -> bytes:
    """20-byte BLAKE2b digest, used for account addresses."""
    return blake2b(data, digest_size=20).digest()
