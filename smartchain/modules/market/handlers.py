"""The market's transaction handlers: offers, quotes and matching, receipts, closing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any, TypeVar, cast

from smartchain.codec import Struct
from smartchain.modules.market import book
from smartchain.modules.market.state import (
    agreement_key,
    balance_of,
    book_key,
    book_price,
    check_agent_key,
    check_receipt_agent,
    drop,
    get_agreement,
    get_order,
    lock,
    mark,
    next_id,
    offer_key,
    offer_type_key,
    order_key,
    party_key,
    put,
    read_u64,
    receipt_key,
    release,
    require_known_token,
)
from smartchain.modules.market.types import (
    ASK,
    ASKS_PREFIX,
    BID,
    BIDS_PREFIX,
    CLOSED_BY_CONSUMER,
    CLOSED_BY_PROVIDER,
    MAX_VALUE,
    OPEN,
    SETTLED,
    SIDES,
    SIGNATURE_GAS,
    STATUS,
    AcceptedReceipt,
    Agreement,
    CancelOrder,
    CloseAgreement,
    CreateOffer,
    Offer,
    Order,
    PlaceAsk,
    PlaceBid,
    RetireOffer,
    SubmitReceipts,
    UsageReceipt,
    bid_lock,
    book_id,
    entry_cost,
)
from smartchain.state.module import TxContext
from smartchain.types.errors import Code, TxError

T = TypeVar("T", bound=Struct)


def _fail(message: str, code: Code = Code.FAILED) -> TxError:
    return TxError(code, message)


# --- offers --------------------------------------------------------------------------------


def handle_offer(ctx: TxContext, msg: CreateOffer) -> None:
    ctx.gas.consume(ctx.block.params.market_order_gas)
    require_known_token(ctx.store, msg.token)
    check_agent_key(ctx.store, ctx.sender, msg.agent_key)
    offer = Offer(next_id(ctx.store), ctx.sender, msg.service_type, msg.unit, msg.unit_price,
                  msg.token, msg.min_quantity, msg.max_quantity, msg.terms, msg.agent_key,
                  True, ctx.block.height)
    put(ctx, offer_key(offer.id), offer)
    mark(ctx, offer_type_key(offer))
    ctx.emit("market_offer", offer=offer.id, provider=ctx.sender.hex(),
             service_type=offer.service_type, token=offer.token, unit_price=offer.unit_price)


def _own_offer(ctx: TxContext, offer_id: int) -> Offer:
    offer = _offer(ctx, offer_id)
    if offer is None:
        raise _fail(f"no offer {offer_id}")
    if offer.provider != ctx.sender:
        raise _fail(f"offer {offer_id} is not yours")
    if not offer.active:
        raise _fail(f"offer {offer_id} is retired")
    return offer


def handle_retire(ctx: TxContext, msg: RetireOffer) -> None:
    offer = _own_offer(ctx, msg.offer_id)
    drop(ctx, offer_type_key(offer))
    put(ctx, offer_key(offer.id), replace(offer, active=False))
    ctx.emit("market_retire", offer=offer.id)


# --- orders and matching -------------------------------------------------------------------


def _check_expiry(ctx: TxContext, expiry: int) -> None:
    height, most = ctx.block.height, ctx.block.params.market_max_expiry_blocks
    if not height <= expiry <= height + most:
        raise _fail(f"expiry {expiry} must be between this height {height} and {most} "
                    "blocks ahead")


def handle_ask(ctx: TxContext, msg: PlaceAsk) -> None:
    ctx.gas.consume(ctx.block.params.market_order_gas)
    offer = _own_offer(ctx, msg.offer_id)
    if not offer.min_quantity <= msg.quantity <= offer.max_quantity:
        raise _fail(f"quantity {msg.quantity} outside the offer's {offer.min_quantity}.."
                    f"{offer.max_quantity}")
    if bid_lock(msg.quantity, msg.price, offer.terms.deposit_bps) > MAX_VALUE:
        raise _fail("price x quantity with the deposit exceeds 2^63-1 base units")
    _check_expiry(ctx, msg.expiry)
    order = Order(next_id(ctx.store), ASK, ctx.sender, offer.service_type, offer.token,
                  msg.price, msg.quantity, msg.quantity, msg.expiry, offer.id,
                  offer.agent_key, 0, 0, ctx.block.height)
    _place(ctx, order)


def handle_bid(ctx: TxContext, msg: PlaceBid) -> None:
    ctx.gas.consume(ctx.block.params.market_order_gas)
    require_known_token(ctx.store, msg.token)
    check_agent_key(ctx.store, ctx.sender, msg.agent_key)
    _check_expiry(ctx, msg.expiry)
    locked = bid_lock(msg.quantity, msg.price, msg.max_deposit_bps)
    have = balance_of(ctx.store, msg.token, ctx.sender)
    if have < locked:
        raise _fail(f"insufficient {msg.token} for the bid: it locks {locked}, balance {have}",
                    Code.INSUFFICIENT_FUNDS)
    order = Order(next_id(ctx.store), BID, ctx.sender, msg.service_type, msg.token, msg.price,
                  msg.quantity, msg.quantity, msg.expiry, 0, msg.agent_key,
                  msg.max_deposit_bps, locked, ctx.block.height)
    _place(ctx, order)


def _place(ctx: TxContext, order: Order) -> None:
    ctx.emit("market_order", order=order.id, side=SIDES[order.side], owner=order.owner.hex(),
             service_type=order.service_type, token=order.token, price=order.price,
             quantity=order.quantity)
    order, escrowed = _match(ctx, order)
    if order.side == BID:  # its lock was only checked: it moves once, net of its fills
        lock(ctx, order.token, order.owner, escrowed + order.locked)
    if order.remaining and _can_rest(ctx, order):
        put(ctx, order_key(order.id), order)
        key = book_key(order)
        mark(ctx, key)
        book.put(ctx, key[:-16], key)
    else:
        _finish(ctx, order)


def _can_rest(ctx: TxContext, order: Order) -> bool:
    """An ask whose rest is below its offer's minimum can never fill: it does not rest."""
    if order.side == BID:
        return True
    offer = _offer(ctx, order.offer_id)
    return offer is not None and order.remaining >= offer.min_quantity


def _finish(ctx: TxContext, order: Order) -> None:
    """An order leaves (filled, cancelled, expired): a bid's lock goes back to its owner."""
    if order.locked:
        release(ctx, order.token, order.owner, order.locked)
    ctx.emit("market_order_done", order=order.id, remaining=order.remaining)


def _crossing(ctx: TxContext, order: Order) -> Iterator[int]:
    """The ids of the resting orders ``order`` crosses, best first, at most
    ``market_max_fills_per_order`` of them. Read as the matching goes: it only removes
    entries already read, and the scan's view of the block's own writes is taken at the
    start."""
    other = BID if order.side == ASK else ASK
    side = (BIDS_PREFIX if other == BID else ASKS_PREFIX) + book_id(order.service_type,
                                                                     order.token)
    params = ctx.block.params
    tombstones, keys = book.scan(ctx, side)
    ctx.gas.consume(tombstones * params.market_tombstone_gas)
    for _n, key in zip(range(params.market_max_fills_per_order), keys, strict=False):
        price = book_price(key, other)
        if (price > order.price) if other == ASK else (price < order.price):
            return
        yield read_u64(key[-8:])


def _match(ctx: TxContext, order: Order) -> tuple[Order, int]:
    """Fill ``order`` against the book at the resting orders' prices (price-time priority):
    every visited resting order costs ``market_fill_gas``. While every order visited so far
    left the book, the book's front moves past them (``book.removed``). Returns what is
    left of ``order`` and, for a bid, what its agreements took into escrow (its own lock
    has not moved yet)."""
    front, escrowed = True, 0
    for rid in _crossing(ctx, order):
        ctx.gas.consume(ctx.block.params.market_fill_gas)
        resting = _order(ctx, rid)
        if resting is None:  # cannot happen: the book and the orders move together
            front = False
            continue
        if resting.expiry < ctx.block.height:
            _remove(ctx, resting, front)
            continue
        if resting.owner == order.owner:  # no trade with oneself
            front = False
            continue
        order, filled, entry = _fill(ctx, order, resting)
        if filled is resting:  # the terms did not allow this pair: the book is unchanged
            front = False
            continue
        escrowed += entry
        resting = filled
        if resting.remaining and _can_rest(ctx, resting):
            put(ctx, order_key(resting.id), resting)
            front = False
        else:
            _remove(ctx, resting, front)
        if not order.remaining:
            break
    return order, escrowed


def _remove(ctx: TxContext, order: Order, front: bool = False) -> None:
    key = book_key(order)
    book.removed(ctx, key[:-16], key, front)
    drop(ctx, key)
    drop(ctx, order_key(order.id))
    _finish(ctx, order)


def _decoded(ctx: TxContext, kind: type[T], raw: bytes | None) -> T | None:
    """``raw`` decoded, once per block: a record's bytes are all of it, so every read of
    the same bytes shares one (immutable) decoding."""
    if raw is None:
        return None
    memo: dict[bytes, Any] = ctx.block.cache.setdefault(f"market/decoded/{kind.__name__}", {})
    found = memo.get(raw)
    if found is None:
        found = memo[raw] = kind.decode(raw)
    return cast(T, found)


def _order(ctx: TxContext, order_id: int) -> Order | None:
    return _decoded(ctx, Order, ctx.store.get(order_key(order_id)))


def _offer(ctx: TxContext, offer_id: int) -> Offer | None:
    return _decoded(ctx, Offer, ctx.store.get(offer_key(offer_id)))


def _fill(ctx: TxContext, incoming: Order, resting: Order) -> tuple[Order, Order, int]:
    """Make an agreement between two crossing orders if the offer's terms allow (else
    nothing changes); returns both orders with what is left of them, and what the
    agreement holds in escrow (taken from a resting bid's lock; an incoming bid's moves
    once it is matched, see ``_place``)."""
    ask, bid = (incoming, resting) if incoming.side == ASK else (resting, incoming)
    offer = _offer(ctx, ask.offer_id)
    if offer is None or offer.terms.deposit_bps > bid.max_deposit_bps:
        return incoming, resting, 0
    quantity = min(ask.remaining, bid.remaining)
    if quantity < offer.min_quantity:
        return incoming, resting, 0
    price = resting.price
    deposit, prepaid = entry_cost(quantity, price, offer.terms)
    entry = deposit + prepaid * price
    kept = bid_lock(bid.remaining - quantity, bid.price, bid.max_deposit_bps)
    if bid is resting:
        release(ctx, bid.token, bid.owner, bid.locked - kept - entry)  # >= 0: see bid_lock
    agreement = Agreement(
        next_id(ctx.store), offer.id, ask.id, bid.id, offer.service_type, offer.unit,
        offer.token, ask.owner, bid.owner, ask.agent_key, bid.agent_key, quantity, price,
        offer.terms, deposit, prepaid, 0, ctx.block.height,
        ctx.block.height + offer.terms.deadline_blocks, 0, OPEN, 0, 0)
    put(ctx, agreement_key(agreement.id), agreement)
    mark(ctx, party_key(agreement.provider, agreement.id))
    mark(ctx, party_key(agreement.consumer, agreement.id))
    ctx.emit("market_match", agreement=agreement.id, ask=ask.id, bid=bid.id,
             provider=ask.owner.hex(), consumer=bid.owner.hex(), quantity=quantity,
             price=price, deposit=deposit, prepaid_units=prepaid)
    ask = replace(ask, remaining=ask.remaining - quantity)
    bid = replace(bid, remaining=bid.remaining - quantity, locked=kept)
    return ((ask, bid) if incoming.side == ASK else (bid, ask)) + (entry,)


def handle_cancel(ctx: TxContext, msg: CancelOrder) -> None:
    order = get_order(ctx.store, msg.order_id)
    if order is None:
        raise _fail(f"no resting order {msg.order_id}")
    if order.owner != ctx.sender:
        raise _fail(f"order {msg.order_id} is not yours")
    _remove(ctx, order)


# --- receipts ------------------------------------------------------------------------------


def _open_agreement(ctx: TxContext, agreement_id: int) -> Agreement:
    agreement = get_agreement(ctx.store, agreement_id)
    if agreement is None:
        raise _fail(f"no agreement {agreement_id}")
    if agreement.status != OPEN:
        raise _fail(f"agreement {agreement_id} is {STATUS[agreement.status]}")
    return agreement


def _check_counter(a: Agreement, r: UsageReceipt) -> None:
    if r.counter > a.quantity:
        raise _fail(f"counter {r.counter} above the agreement's quantity {a.quantity}")
    if r.counter < a.counter:
        raise _fail(f"counter {r.counter} goes backwards: {a.counter} already accepted")
    if r.counter == a.counter and not r.final:
        raise _fail(f"receipt for counter {r.counter} of agreement {a.id} already accepted")


def _settle_receipt(ctx: TxContext, r: UsageReceipt) -> None:
    """Both signatures were verified before the mempool against the keys ``r`` names
    (``receipt_signatures``): here those keys must be the agreement's."""
    ctx.gas.consume(2 * SIGNATURE_GAS)
    a = _open_agreement(ctx, r.agreement_id)
    _check_counter(a, r)
    provider_held = check_receipt_agent(ctx.store, a.provider, a.provider_key,
                                        r.provider_key, "provider")
    consumer_held = check_receipt_agent(ctx.store, a.consumer, a.consumer_key,
                                        r.consumer_key, "consumer")
    held = provider_held and consumer_held
    if not held and r.counter > max(a.coverage, a.counter):
        raise _fail(f"a device of agreement {a.id} is no longer owned by its party: its "
                    f"receipts count up to the prepaid coverage {a.coverage}, not {r.counter}")
    from_escrow = (max(min(r.counter, a.coverage), a.counter) - a.counter) * a.price
    beyond = max(r.counter - max(a.coverage, a.counter), 0) * a.price  # served unprepaid
    release(ctx, a.token, a.provider, from_escrow)
    if beyond:  # the consumer countersigned it: it pays from its balance
        _move_from(ctx, a, beyond)
    paid = from_escrow + beyond
    coverage = max(a.coverage, r.counter)
    status, refund = a.status, a.consumer_refund
    if r.final or r.counter == a.quantity:
        status, refund = SETTLED, a.deposit + (coverage - r.counter) * a.price
        release(ctx, a.token, a.consumer, refund)
        coverage = r.counter
        ctx.emit("market_settle", agreement=a.id, counter=r.counter, refund=refund)
    elif held:  # a device that changed hands takes no more of the consumer's money
        coverage = _prepay_next(ctx, a, r.counter, coverage)
    a = replace(a, counter=r.counter, coverage=coverage, last_receipt_height=ctx.block.height,
                provider_paid=a.provider_paid + paid, status=status, consumer_refund=refund)
    put(ctx, agreement_key(a.id), a)
    put(ctx, receipt_key(a.id, r.counter, r.final),
        AcceptedReceipt(a.id, r.counter, r.final, ctx.block.height, paid))
    ctx.emit("market_receipt", agreement=a.id, counter=r.counter, paid=paid)


def _move_from(ctx: TxContext, a: Agreement, amount: int) -> None:
    have = balance_of(ctx.store, a.token, a.consumer)
    if have < amount:
        raise _fail(f"the consumer cannot pay {amount} {a.token} for units served beyond its "
                    f"prepaid instalment (balance {have})", Code.INSUFFICIENT_FUNDS)
    lock(ctx, a.token, a.consumer, amount)
    release(ctx, a.token, a.provider, amount)


def _prepay_next(ctx: TxContext, a: Agreement, counter: int, coverage: int) -> int:
    """Keep one instalment prepaid ahead of ``counter``, if the consumer can pay it; if not,
    the provider sees ``market_unfunded`` and serves no further than ``coverage``. Returns
    the coverage."""
    target = min(a.quantity, counter + a.terms.instalment_units)
    need = (target - coverage) * a.price
    if need <= 0:
        return coverage
    if balance_of(ctx.store, a.token, a.consumer) < need:
        ctx.emit("market_unfunded", agreement=a.id, coverage=coverage, needed=need)
        return coverage
    lock(ctx, a.token, a.consumer, need)
    return target


def handle_receipts(ctx: TxContext, msg: SubmitReceipts) -> None:
    for r in msg.receipts:
        _settle_receipt(ctx, r)


# --- closing -------------------------------------------------------------------------------


def handle_close(ctx: TxContext, msg: CloseAgreement) -> None:
    a = _open_agreement(ctx, msg.agreement_id)
    height, grace = ctx.block.height, ctx.block.params.market_receipt_grace
    prepaid = (a.coverage - a.counter) * a.price
    if ctx.sender == a.provider:
        if a.counter == 0:
            raise _fail("the provider can close only after a countersigned receipt: nothing "
                        "was served yet")
        if height < a.last_receipt_height + grace:
            raise _fail(f"the consumer countersigned at height {a.last_receipt_height}: the "
                        f"provider may close from height {a.last_receipt_height + grace}")
        kept = a.deposit * a.counter // a.quantity  # the deposit share of what was served
        release(ctx, a.token, a.provider, kept)
        refund = a.deposit - kept + prepaid
        status = CLOSED_BY_PROVIDER
        a = replace(a, provider_paid=a.provider_paid + kept)
    elif ctx.sender == a.consumer:
        quiet_since = a.start_height + grace
        if height <= a.deadline_height and (a.counter or height < quiet_since):
            raise _fail(f"the consumer may close after the deadline (height "
                        f"{a.deadline_height})" + ("" if a.counter else
                                                  f" or, nothing served, from {quiet_since}"))
        refund = a.deposit + prepaid
        status = CLOSED_BY_CONSUMER
    else:
        raise _fail(f"only the parties of agreement {a.id} can close it")
    release(ctx, a.token, a.consumer, refund)
    a = replace(a, coverage=a.counter, status=status, consumer_refund=refund)
    put(ctx, agreement_key(a.id), a)
    ctx.emit("market_close", agreement=a.id, by=STATUS[status], counter=a.counter,
             refund=refund)
