"""The bank module's wire types: payloads, stored records, views and constants.

Importable on their own (codec, crypto and shared types only), so an SDK or a device can
build and read bank transactions without the node.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from smartchain.codec import U64, U128, Fixed20, Struct

ACCOUNT_PREFIX = b"bank/acct/"
SUPPLY_KEY = b"bank/supply"
MINTED_KEY = b"bank/minted"
EMISSION_KEY = b"bank/emission"
BURNED_KEY = b"bank/burned"  # HPC destroyed (burned governance deposits): u128
GENESIS_SUPPLY_KEY = b"bank/genesis"  # HPC genesis created (accounts, locked stake): u128

_ACCT = struct.Struct(">QQQ")  # balance as u128 (hi, lo) + nonce: the Account encoding
_U128_MASK = (1 << 64) - 1


@dataclass(frozen=True, slots=True)
class Account(Struct):
    balance: U128
    nonce: U64


@dataclass(frozen=True, slots=True)
class Transfer(Struct):
    to: Fixed20
    amount: U128
