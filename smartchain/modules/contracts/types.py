"""The contracts module's wire types: payloads, stored records, views and constants.

Importable on their own (codec, crypto and shared types only), so an SDK or a device can
build and read contracts transactions without the node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smartchain.codec import I64, U8, U64, U128, Bytes, Fixed20, Fixed32, Str, Struct, list_of
from smartchain.crypto.hashing import h256_tagged
from smartchain.types.errors import Code, TxError

CODE_PREFIX = b"contracts/code/"
# The source as the VM compiles it (contracts/rewrite.py), made once by the deploy that pays
# for it: rewriting costs far more CPU than compiling, and a call must not pay it again.
EXEC_PREFIX = b"contracts/exec/"
INFO_PREFIX = b"contracts/info/"
MAX_ARGS = 16
QUERY_GAS = 20_000_000
QUERY_SECONDS = 2.0
SOURCES_REMEMBERED = 64  # verdicts of check_source kept (64 KB each at most)
# check_source takes about 0.6 us a byte (36 ms for 60 KB), an Ed25519 check about 60 us
SOURCE_BYTES_PER_SIGNATURE_CHECK = 100

NIL, FALSE, TRUE, INT, STR = range(5)


@dataclass(frozen=True, slots=True)
class Arg(Struct):
    """One argument of a call: nil, a boolean, a 64-bit integer or a byte string."""

    kind: U8
    integer: I64 = 0
    data: Bytes = b""

    @classmethod
    def of(cls, value: Any) -> Arg:
        if value is None:
            return cls(NIL)
        if isinstance(value, bool):
            return cls(TRUE if value else FALSE)
        if isinstance(value, int):
            return cls(INT, value)
        if isinstance(value, str):
            value = value.encode()
        if isinstance(value, bytes):
            return cls(STR, 0, value)
        raise TypeError(f"a contract argument is None, bool, int, str or bytes, not {value!r}")

    def value(self) -> Any:
        return (None, False, True, self.integer, self.data)[self.kind]

    def check(self) -> None:
        if self.kind > STR:
            raise TxError(Code.INVALID_PAYLOAD, f"unknown argument kind {self.kind}")
        if (self.kind != INT and self.integer) or (self.kind != STR and self.data):
            raise TxError(Code.INVALID_PAYLOAD, "argument has fields its kind does not use")


@dataclass(frozen=True, slots=True)
class Deploy(Struct):
    source: Bytes
    init_args: list_of[Arg]
    value: U128 = 0  # HPC the new contract starts with


@dataclass(frozen=True, slots=True)
class Call(Struct):
    contract: Fixed20
    function: Str
    args: list_of[Arg]
    value: U128 = 0  # HPC sent to the contract with the call


@dataclass(frozen=True, slots=True)
class ContractInfo(Struct):
    creator: Fixed20
    code_hash: Fixed32
    code_size: U64
    height: U64  # deployed at


def contract_address(creator: bytes, nonce: int) -> bytes:
    """Derived from the creator and its account nonce: known before the deploy is sent."""
    return h256_tagged(b"smart/contract", creator, nonce.to_bytes(8, "big"))[:20]


