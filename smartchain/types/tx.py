"""Transactions and their receipts.

Every transaction names its chain, sender (Ed25519 public key), nonce, gas limit and
price, kind and payload, and is signed over all of that, so it cannot be replayed on
another chain or at another nonce. The signature is the last field: the signed bytes are
a domain tag plus the encoding minus its last 64 bytes, so no re-encoding is needed to
verify a transaction received as bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from smartchain.codec import U32, U64, U128, Bytes, Fixed32, Fixed64, Str, Struct, list_of
from smartchain.crypto.address import address_of, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey

TX_SIGN_DOMAIN = b"smartchain/tx/v1\x00"


@dataclass(frozen=True, slots=True)
class Transaction(Struct):
    chain_id: Str
    sender: Fixed32  # Ed25519 public key; the account is its address
    nonce: U64
    gas_limit: U64
    gas_price: U64  # base units of HPC per gas
    kind: Str  # "<module>/<message>", e.g. "bank/transfer"
    payload: Bytes  # the message, in the canonical encoding of the kind's payload type
    signature: Fixed64

    @property
    def sender_address(self) -> bytes:
        return address_of(self.sender)

    @property
    def max_fee(self) -> int:
        return self.gas_limit * self.gas_price

    def sign_bytes(self) -> bytes:
        return sign_bytes_of(self.encode())

    def hash(self) -> bytes:
        return h256(self.encode())

    @classmethod
    def create(cls, key: PrivateKey, *, chain_id: str, nonce: int, kind: str, payload: bytes,
               gas_limit: int, gas_price: int) -> Transaction:
        unsigned = cls(chain_id, key.public_key, nonce, gas_limit, gas_price, kind, payload,
                       bytes(64))
        return replace(unsigned, signature=key.sign(unsigned.sign_bytes()))


def sign_bytes_of(raw: bytes) -> bytes:
    """The bytes a transaction's signature covers, given its full encoding."""
    return TX_SIGN_DOMAIN + raw[:-64]


@dataclass(frozen=True, slots=True)
class Attribute(Struct):
    key: Str
    value: Str


# Attributes the chain itself writes as 40 hex characters (cheap inside the state machine)
# and shows as bech32. A contract's own attributes are data: shown exactly as emitted.
ADDRESS_ATTRIBUTES = frozenset({"sender", "recipient", "proposer", "address", "owner", "to",
                                "from", "spender", "issuer", "contract", "caller", "creator",
                                "buyer"})
CONTRACT_EVENT_PREFIX = "contract/"
_HEX_ADDRESS = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True, slots=True)
class Event(Struct):
    """Something a handler wants the outside world to see (indexed by the API later).

    Attribute values are strings. A module's event names its addresses in
    ``ADDRESS_ATTRIBUTES``; a contract's event (kind ``contract/NAME``) starts with the
    ``contract`` attribute the host adds, and the rest is whatever the contract emitted.
    """

    kind: Str
    attributes: list_of[Attribute]

    @classmethod
    def of(cls, kind: str, **attrs: object) -> Event:
        return cls(kind, tuple(Attribute(k, str(v)) for k, v in attrs.items()))

    def to_json(self) -> dict:
        """Attributes by name, never failing on any content: only what the chain wrote is
        interpreted (its hex addresses shown as bech32), and what a contract emitted is
        shown verbatim, never over an attribute the chain wrote."""
        chain_written = 1 if self.kind.startswith(CONTRACT_EVENT_PREFIX) else \
            len(self.attributes)
        attrs: dict[str, str] = {}
        for i, a in enumerate(self.attributes):
            if i < chain_written:
                attrs[a.key] = _chain_value(a)
            else:
                attrs.setdefault(a.key, a.value)
        return {"kind": self.kind, "attributes": attrs}


def _chain_value(a: Attribute) -> str:
    if a.key in ADDRESS_ATTRIBUTES and _HEX_ADDRESS.fullmatch(a.value):
        return to_bech32(bytes.fromhex(a.value))
    return a.value


@dataclass(frozen=True, slots=True)
class Receipt(Struct):
    """What executing a transaction did. ``code`` 0 is success; the fee is paid either way."""

    tx_hash: Fixed32
    code: U32
    gas_used: U64
    fee: U128
    log: Str
    events: list_of[Event]

    @property
    def ok(self) -> bool:
        return self.code == 0
