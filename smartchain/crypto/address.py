"""Account addresses: 20-byte BLAKE2b of the public key, shown as bech32 with hrp ``smart``.

Bech32 (BIP-173) detects any error in up to 4 characters and rejects mixed case, so a
mistyped address fails loudly instead of sending HPC to nowhere.
"""

from __future__ import annotations

from functools import lru_cache

import bech32 as _bech32

from smartchain.crypto.hashing import h160

HRP = "smart"
ADDRESS_SIZE = 20


class AddressError(ValueError):
    """A string that is not a valid ``smart1...`` address."""


def address_of(public_key: bytes) -> bytes:
    """The 20-byte account address of an Ed25519 public key."""
    return h160(public_key)


@lru_cache(maxsize=1 << 16)  # pure and ~20 µs in pure Python; contracts convert on every call
def to_bech32(address: bytes) -> str:
    if len(address) != ADDRESS_SIZE:
        raise AddressError("an address is 20 bytes")
    data = _bech32.convertbits(address, 8, 5, True)
    assert data is not None  # None only for input that is not 8-bit values
    return _bech32.bech32_encode(HRP, data)


@lru_cache(maxsize=1 << 16)
def from_bech32(text: str) -> bytes:
    """Parse a bech32 address; raises ``AddressError`` with the reason."""
    if not isinstance(text, str) or not text:
        raise AddressError("address must be a non-empty string")
    if text.lower() != text and text.upper() != text:
        raise AddressError("address mixes upper and lower case")
    hrp, data = _bech32.bech32_decode(text)
    if hrp is None or data is None:
        raise AddressError(f"invalid bech32 address (bad checksum or characters): {text!r}")
    if hrp != HRP:
        raise AddressError(f"address must start with '{HRP}1', got prefix {hrp!r}")
    raw = _bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != ADDRESS_SIZE:
        raise AddressError("address payload must be 20 bytes")
    return bytes(raw)


def is_address(text: str) -> bool:
    try:
        from_bech32(text)
        return True
    except AddressError:
        return False
