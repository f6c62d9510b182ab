"""The market: IoT service offers, an order book per service type, agreements settled in
instalments from escrow against usage receipts both agents signed (docs/market.md).

- An **offer** describes a service (type, unit, list price, token: HPC or an IOT_Coin token,
  quantity bounds, terms). A provider quotes **asks** on its offer; consumers quote **bids**
  on a service type and token, locking ``bid_lock`` of their funds.
- **Matching** runs when an order arrives: it crosses the best resting orders of the other
  side (price, then age), at most ``market_max_fills_per_order`` of them, each charged
  ``market_fill_gas``; fills are partial and at the resting order's price; each fill makes an
  **agreement** locking the consumer's deposit and first instalment in the module account.
- **Receipts** carry cumulative counters signed by both agents; each pays the provider for
  the units served and prepays the next instalment; the final one returns the deposit.
- **Closing** without the other party: the provider after ``market_receipt_grace`` blocks
  without a receipt (it keeps the deposit share of what was served), the consumer after the
  deadline, or early if nothing was ever served (it gets back all that was not served).
"""

from __future__ import annotations

from typing import Any

from smartchain.modules.bank.module import get_account
from smartchain.modules.market import handlers as h
from smartchain.modules.market.book import undoing
from smartchain.modules.market.state import (
    book_key,
    get_agreement,
    get_offer,
    get_order,
    read_u64,
)
from smartchain.modules.market.types import (
    AGREEMENT_PREFIX,
    ASKS_PREFIX,
    BIDS_PREFIX,
    BPS,
    HPC,
    MAX_RECEIPTS,
    MAX_SERVICE_TYPE,
    MAX_VALUE,
    MODULE_ACCOUNT,
    NO_KEY,
    OPEN,
    ORDER_PREFIX,
    SERVICE_TYPE_RE,
    UNIT_RE,
    Agreement,
    CancelOrder,
    CloseAgreement,
    CreateOffer,
    Order,
    PlaceAsk,
    PlaceBid,
    RetireOffer,
    SubmitReceipts,
    bid_lock,
    receipt_signatures,
)
from smartchain.modules.tokens.module import symbol_error, token_balance
from smartchain.state.module import Module, Msg, Query
from smartchain.types.errors import Code, TxError

# --- stateless checks ----------------------------------------------------------------------


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


def _check_service(service_type: str) -> None:
    if len(service_type) > MAX_SERVICE_TYPE or not SERVICE_TYPE_RE.fullmatch(service_type):
        raise _invalid(f"invalid service type {service_type!r}: dotted lower-case words, e.g. "
                       f"weather.readings (at most {MAX_SERVICE_TYPE} characters)")


def _check_token(token: str) -> None:
    if token != HPC and symbol_error(token):
        raise _invalid(f"invalid token {token!r}: HPC or an IOT_Coin token symbol")


def _check_value(quantity: int, price: int, bps: int) -> None:
    if quantity <= 0 or price <= 0:
        raise _invalid("price and quantity must be positive integers")
    if bps > BPS:
        raise _invalid(f"a deposit share is 0..{BPS} basis points")
    if bid_lock(quantity, price, bps) > MAX_VALUE:
        raise _invalid("price x quantity with the deposit exceeds 2^63-1 base units")


def validate_offer(msg: CreateOffer) -> None:
    _check_service(msg.service_type)
    if not UNIT_RE.fullmatch(msg.unit):
        raise _invalid(f"invalid unit {msg.unit!r}: 1-32 lower-case letters, digits or '_'")
    _check_token(msg.token)
    if not 1 <= msg.min_quantity <= msg.max_quantity:
        raise _invalid("need 1 <= min quantity <= max quantity")
    _check_value(msg.max_quantity, msg.unit_price, msg.terms.deposit_bps)
    if msg.terms.instalment_units < 1 or msg.terms.deadline_blocks < 1:
        raise _invalid("an instalment is at least one unit and the deadline at least a block")


def validate_ask(msg: PlaceAsk) -> None:
    _check_value(msg.quantity, msg.price, 0)


def validate_bid(msg: PlaceBid) -> None:
    _check_service(msg.service_type)
    _check_token(msg.token)
    _check_value(msg.quantity, msg.price, msg.max_deposit_bps)


def validate_receipts(msg: SubmitReceipts) -> None:
    if not 1 <= len(msg.receipts) <= MAX_RECEIPTS:
        raise _invalid(f"1..{MAX_RECEIPTS} receipts per transaction")
    for i, r in enumerate(msg.receipts):
        if NO_KEY in (r.provider_key, r.consumer_key):
            raise _invalid(f"receipt {i} does not name both agents' keys (the agreement's "
                           "provider_key and consumer_key)")


def _receipt_signatures(msg: SubmitReceipts, chain_id: str
                        ) -> list[tuple[bytes, bytes, bytes, str]]:
    return receipt_signatures(chain_id, msg.receipts)


def _bid_spend(msg: PlaceBid) -> int:
    return bid_lock(msg.quantity, msg.price, msg.max_deposit_bps) if msg.token == HPC else 0


# --- invariants ----------------------------------------------------------------------------


def escrow_by_token(view: Any) -> dict[str, int]:
    """What the module must hold per token: resting bids' locks, and per open agreement its
    deposit plus its unpaid instalments (the units prepaid but not yet served)."""
    held: dict[str, int] = {}
    for _k, raw in view.iter_prefix(ORDER_PREFIX):
        order = Order.decode(raw)
        held[order.token] = held.get(order.token, 0) + order.locked
    for _k, raw in view.iter_prefix(AGREEMENT_PREFIX):
        a = Agreement.decode(raw)
        if a.status == OPEN:
            unpaid = (a.coverage - a.counter) * a.price
            held[a.token] = held.get(a.token, 0) + a.deposit + unpaid
    return held


def book_violations(view: Any) -> list[str]:
    problems = []
    escrow = escrow_by_token(view)
    tokens = sorted(escrow.keys() | {HPC} | {
        k[len(b"tokens/bal/") + 20:].decode()
        for k, _v in view.iter_prefix(b"tokens/bal/" + MODULE_ACCOUNT)})
    for token in tokens:
        held = (get_account(view, MODULE_ACCOUNT).balance if token == HPC
                else token_balance(view, token, MODULE_ACCOUNT))
        if held != escrow.get(token, 0):
            problems.append(f"market holds {held} {token} but escrow is {escrow.get(token, 0)}")
    for _k, raw in view.iter_prefix(AGREEMENT_PREFIX):
        a = Agreement.decode(raw)
        if not a.counter <= a.coverage <= a.quantity:
            problems.append(f"agreement {a.id}: counter {a.counter}, coverage {a.coverage}, "
                            f"quantity {a.quantity} out of order")
    for prefix in (ASKS_PREFIX, BIDS_PREFIX):
        for key, _v in view.iter_prefix(prefix):
            order = get_order(view, read_u64(key[-8:]))
            if order is None or book_key(order) != key or not order.remaining:
                problems.append(f"book entry {key.hex()} has no live order behind it")
    return problems


class Market(Module):
    name = "market"

    def messages(self) -> dict[str, Msg]:
        return {
            "market/offer": Msg(CreateOffer, h.handle_offer, validate_offer),
            "market/retire_offer": Msg(RetireOffer, h.handle_retire),
            "market/ask": Msg(PlaceAsk, undoing(h.handle_ask), validate_ask),
            "market/bid": Msg(PlaceBid, undoing(h.handle_bid), validate_bid, spend=_bid_spend),
            "market/cancel": Msg(CancelOrder, undoing(h.handle_cancel)),
            "market/receipts": Msg(SubmitReceipts, h.handle_receipts, validate_receipts,
                                   signatures=_receipt_signatures,
                                   signed_check_cost=lambda m: 2 * len(m.receipts)),
            "market/close": Msg(CloseAgreement, h.handle_close),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "offer": lambda view, args: get_offer(view, int(args["id"])),
            "order": lambda view, args: get_order(view, int(args["id"])),
            "agreement": lambda view, args: get_agreement(view, int(args["id"])),
        }

    def invariants(self, view: Any) -> list[str]:
        return book_violations(view)
