"""The market module's wire types: payloads, stored records, signed bytes and constants.

Importable on their own (codec, crypto and shared types only), so a SmartAgent builds offers,
quotes and usage receipts without the node.

A usage receipt's signed bytes: ``h256_tagged(b"smart/mkt/rcpt", ReceiptBody(chain_id,
agreement_id, counter, final).encode())`` (BLAKE2b-256 personalised with the tag, over the
codec encoding), signed by BOTH agents' keys named in the agreement: each side's
``agent_key``, which is either the party's account key or the key of a device registered
(``devices`` module) to the party and not revoked. Both sign the same 32 bytes.

Amounts are integers in base units of the agreement's token (``HPC``: 10^8 per HPC, or an
IOT_Coin token of the tokens module); every price x quantity (with the deposit) fits
``MAX_VALUE`` so it is exact in any token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from smartchain.codec import (
    U8,
    U32,
    U64,
    U128,
    Bool,
    Fixed20,
    Fixed32,
    Fixed64,
    Str,
    Struct,
    list_of,
)
from smartchain.crypto.hashing import h256_tagged
from smartchain.crypto.keys import PrivateKey

MODULE_ACCOUNT = h256_tagged(b"smart/module", b"market")[:20]  # holds every escrow
HPC = "HPC"  # the native coin; any other token symbol names an IOT_Coin token
RECEIPT_TAG = b"smart/mkt/rcpt"
BOOK_TAG = b"smart/mkt/book"

BPS = 10_000
MAX_VALUE = 2**63 - 1  # price x quantity x (1 + deposit share) must fit: exact in any token
MAX_SERVICE_TYPE = 64
SERVICE_TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+")  # e.g. weather.readings
UNIT_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")  # e.g. reading, minute, gib_epoch
MAX_RECEIPTS = 256  # receipts in one transaction
SIGNATURE_GAS = 5_000  # each signature a receipt carries (verified before the mempool)

ASK, BID = 0, 1
SIDES = ("ask", "bid")
OPEN, SETTLED, CLOSED_BY_PROVIDER, CLOSED_BY_CONSUMER = range(4)
STATUS = ("open", "settled", "closed_by_provider", "closed_by_consumer")

NEXT_KEY = b"market/next"  # the last id given to an offer, order or agreement (one sequence)
OFFER_PREFIX = b"market/offer/"  # + id -> Offer
OFFER_TYPE_PREFIX = b"market/otype/"  # + book id + price + id -> MARK: offers by type/price
ORDER_PREFIX = b"market/order/"  # + id -> Order
ASKS_PREFIX = b"market/asks/"  # + book id + price + id -> MARK: lowest price, then oldest
BIDS_PREFIX = b"market/bids/"  # + book id + (2^64-1 - price) + id -> MARK: highest first
AGREEMENT_PREFIX = b"market/agr/"  # + id -> Agreement
PARTY_PREFIX = b"market/party/"  # + address + id -> MARK: agreements of a party
RECEIPT_PREFIX = b"market/rcpt/"  # + agreement id + counter -> AcceptedReceipt
MARK = b"\x01"
NO_KEY = bytes(32)  # a receipt's agent key not filled in yet


# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Terms(Struct):
    deposit_bps: U32  # the deposit, as a share of the agreement's total
    instalment_units: U64  # units prepaid ahead of the service (the first at agreement)
    deadline_blocks: U64  # the agreement is served within this many blocks of its start


@dataclass(frozen=True, slots=True)
class Offer(Struct):
    id: U64
    provider: Fixed20
    service_type: Str
    unit: Str
    unit_price: U64  # list price; asks quote their own limit
    token: Str
    min_quantity: U64  # the least one agreement may be for
    max_quantity: U64  # the most one agreement (and one ask) may be for
    terms: Terms
    agent_key: Fixed32  # signs receipts for the provider
    active: Bool
    height: U64


@dataclass(frozen=True, slots=True)
class Order(Struct):
    id: U64  # also its time priority: ids only grow
    side: U8  # ASK or BID
    owner: Fixed20
    service_type: Str
    token: Str
    price: U64  # limit price per unit
    quantity: U64
    remaining: U64
    expiry: U64  # last height it can match at
    offer_id: U64  # an ask's offer (0 for a bid)
    agent_key: Fixed32
    max_deposit_bps: U32  # a bid matches only offers asking at most this deposit share
    locked: U128  # a bid's funds held in escrow for its remaining quantity
    height: U64


@dataclass(frozen=True, slots=True)
class Agreement(Struct):
    id: U64
    offer_id: U64
    ask_id: U64
    bid_id: U64
    service_type: Str
    unit: Str
    token: Str
    provider: Fixed20
    consumer: Fixed20
    provider_key: Fixed32
    consumer_key: Fixed32
    quantity: U64
    price: U64  # per unit: the resting order's
    terms: Terms
    deposit: U128
    coverage: U64  # units paid for so far (served and prepaid): escrow holds the prepaid part
    counter: U64  # the last countersigned cumulative counter
    start_height: U64
    deadline_height: U64
    last_receipt_height: U64  # 0: no receipt yet
    status: U8
    provider_paid: U128  # paid out to the provider so far
    consumer_refund: U128  # returned to the consumer at close


@dataclass(frozen=True, slots=True)
class AcceptedReceipt(Struct):
    agreement_id: U64
    counter: U64
    final: Bool
    height: U64
    paid: U128  # released to the provider by this receipt


@dataclass(frozen=True, slots=True)
class ReceiptBody(Struct):
    chain_id: Str
    agreement_id: U64
    counter: U64
    final: Bool


# --- payloads -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateOffer(Struct):
    service_type: Str
    unit: Str
    unit_price: U64
    token: Str
    min_quantity: U64
    max_quantity: U64
    terms: Terms
    agent_key: Fixed32  # the sender's own key, or a device it owns


@dataclass(frozen=True, slots=True)
class RetireOffer(Struct):
    """No new asks on this offer (resting asks stay until filled, expired or cancelled)."""

    offer_id: U64


@dataclass(frozen=True, slots=True)
class PlaceAsk(Struct):
    offer_id: U64
    price: U64
    quantity: U64
    expiry: U64  # last height the ask can match at


@dataclass(frozen=True, slots=True)
class PlaceBid(Struct):
    service_type: Str
    token: Str
    price: U64
    quantity: U64
    expiry: U64
    max_deposit_bps: U32
    agent_key: Fixed32  # the sender's own key, or a device it owns


@dataclass(frozen=True, slots=True)
class CancelOrder(Struct):
    order_id: U64


@dataclass(frozen=True, slots=True)
class UsageReceipt(Struct):
    """Both agents' signatures and the keys that made them: the node verifies the
    signatures against these keys before the mempool (stateless, in its parallel verifier),
    and the handler only checks that they are the agreement's keys. Zero keys: not filled
    in yet (``MarketSdk.submit_receipts`` fills them from the agreement)."""

    agreement_id: U64
    counter: U64  # cumulative units served
    final: Bool  # settles and closes the agreement
    provider_sig: Fixed64
    consumer_sig: Fixed64
    provider_key: Fixed32 = NO_KEY  # the provider's agent key, as in the agreement
    consumer_key: Fixed32 = NO_KEY  # the consumer's agent key, as in the agreement


@dataclass(frozen=True, slots=True)
class SubmitReceipts(Struct):
    """Anyone may post receipts: both parties signed them, money moves only by the terms."""

    receipts: list_of[UsageReceipt]


@dataclass(frozen=True, slots=True)
class CloseAgreement(Struct):
    """Close unilaterally: by the provider when the consumer stopped countersigning, by the
    consumer when the provider stopped serving (see ``docs/market.md``)."""

    agreement_id: U64


PAYLOADS: dict[str, type[Struct]] = {
    "market/offer": CreateOffer,
    "market/retire_offer": RetireOffer,
    "market/ask": PlaceAsk,
    "market/bid": PlaceBid,
    "market/cancel": CancelOrder,
    "market/receipts": SubmitReceipts,
    "market/close": CloseAgreement,
}


# --- arithmetic both sides compute --------------------------------------------------------


def book_id(service_type: str, token: str) -> bytes:
    """The order book of a service type in a token (16 bytes of a tagged hash)."""
    return h256_tagged(BOOK_TAG, service_type.encode(), b"\0", token.encode())[:16]


def deposit_of(quantity: int, price: int, deposit_bps: int) -> int:
    """The consumer's deposit for an agreement (rounded down)."""
    return quantity * price * deposit_bps // BPS


def bid_lock(quantity: int, price: int, max_deposit_bps: int) -> int:
    """What a bid holds in escrow for ``quantity`` units: enough for every agreement its fills
    can make (each: a deposit of at most ``max_deposit_bps`` and a first instalment of at
    most its quantity, at a price at most the limit). Rounded up, so the lock of the whole is
    never less than the locks of its parts."""
    value = quantity * price
    return value + -(-value * max_deposit_bps // BPS)


def entry_cost(quantity: int, price: int, terms: Terms) -> tuple[int, int]:
    """(deposit, units prepaid) locked when an agreement is made."""
    return deposit_of(quantity, price, terms.deposit_bps), min(quantity, terms.instalment_units)


def receipt_bytes(chain_id: str, agreement_id: int, counter: int, final: bool) -> bytes:
    """What both agents sign for a usage receipt (see the module docstring)."""
    return h256_tagged(RECEIPT_TAG, ReceiptBody(chain_id, agreement_id, counter, final).encode())


def sign_receipt(key: PrivateKey, chain_id: str, agreement_id: int, counter: int,
                 final: bool = False) -> bytes:
    """One agent's signature (64 bytes) of a usage receipt."""
    return key.sign(receipt_bytes(chain_id, agreement_id, counter, final))


def receipt(provider_key: PrivateKey, consumer_key: PrivateKey, chain_id: str,
            agreement_id: int, counter: int, final: bool = False) -> UsageReceipt:
    """A receipt signed by both agents (tests, and an agent holding both halves)."""
    message = receipt_bytes(chain_id, agreement_id, counter, final)
    return UsageReceipt(agreement_id, counter, final, provider_key.sign(message),
                        consumer_key.sign(message), provider_key.public_key,
                        consumer_key.public_key)


def with_keys(r: UsageReceipt, provider_key: bytes, consumer_key: bytes) -> UsageReceipt:
    """``r`` naming the agreement's agent keys where it names none yet."""
    return replace(r, provider_key=r.provider_key if r.provider_key != NO_KEY else provider_key,
                   consumer_key=r.consumer_key if r.consumer_key != NO_KEY else consumer_key)


def receipt_signatures(chain_id: str, receipts: tuple[UsageReceipt, ...]
                       ) -> list[tuple[bytes, bytes, bytes, str]]:
    """Every signature the receipts carry, as (public key, signed bytes, signature, whose):
    what the node verifies before the mempool."""
    out = []
    for i, r in enumerate(receipts):
        message = receipt_bytes(chain_id, r.agreement_id, r.counter, r.final)
        out.append((r.provider_key, message, r.provider_sig, f"receipt {i}: the provider's"))
        out.append((r.consumer_key, message, r.consumer_sig, f"receipt {i}: the consumer's"))
    return out
