"""The tokens module's wire types: payloads, stored records, views and constants.

Importable on their own (codec, crypto and shared types only), so an SDK or a device can
build and read tokens transactions without the node.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from smartchain.codec import U8, U64, Bool, Fixed20, Str, Struct

MAX_AMOUNT = 2**63 - 1
MAX_DECIMALS = 18
MAX_NAME = 64
RESERVED_SYMBOLS = frozenset({"HPC"})
SYMBOL_RE = re.compile(r"[A-Z][A-Z0-9]{1,9}")

META_PREFIX = b"tokens/meta/"
BALANCE_PREFIX = b"tokens/bal/"
ALLOW_PREFIX = b"tokens/allow/"

_AMOUNT = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class TokenInfo(Struct):
    symbol: Str
    name: Str
    decimals: U8
    issuer: Fixed20
    supply: U64
    max_supply: U64
    mintable: Bool


# --- payloads ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issue(Struct):
    """A new token; a non-mintable one must say ``max_supply == supply`` (no hidden cap)."""

    symbol: Str
    name: Str
    decimals: U8
    supply: U64
    mintable: Bool
    max_supply: U64


@dataclass(frozen=True, slots=True)
class TokenTransfer(Struct):
    symbol: Str
    to: Fixed20
    amount: U64


@dataclass(frozen=True, slots=True)
class Approve(Struct):
    symbol: Str
    spender: Fixed20
    amount: U64  # the new allowance (0 revokes), not an increment


@dataclass(frozen=True, slots=True)
class TransferFrom(Struct):
    symbol: Str
    owner: Fixed20
    to: Fixed20
    amount: U64


@dataclass(frozen=True, slots=True)
class Mint(Struct):
    symbol: Str
    to: Fixed20
    amount: U64


@dataclass(frozen=True, slots=True)
class Burn(Struct):
    symbol: Str
    amount: U64


PAYLOADS: dict[str, type[Struct]] = {
    "tokens/issue": Issue,
    "tokens/transfer": TokenTransfer,
    "tokens/approve": Approve,
    "tokens/transfer_from": TransferFrom,
    "tokens/mint": Mint,
    "tokens/burn": Burn,
}


