"""Where the market keeps its records, how escrow moves, and who may sign for a party."""

from __future__ import annotations

import struct
from typing import Any

from smartchain.crypto.address import address_of
from smartchain.modules.bank.module import get_account, move_hpc
from smartchain.modules.devices.module import active_device, get_device
from smartchain.modules.market.types import (
    AGREEMENT_PREFIX,
    ASK,
    ASKS_PREFIX,
    BIDS_PREFIX,
    HPC,
    MARK,
    MODULE_ACCOUNT,
    NEXT_KEY,
    OFFER_PREFIX,
    OFFER_TYPE_PREFIX,
    ORDER_PREFIX,
    PARTY_PREFIX,
    RECEIPT_PREFIX,
    AcceptedReceipt,
    Agreement,
    Offer,
    Order,
    book_id,
)
from smartchain.modules.tokens.module import move_tokens, require_token, token_balance
from smartchain.state.module import TxContext
from smartchain.types.errors import Code, TxError

_U64 = struct.Struct(">Q")
_TOP = (1 << 64) - 1


def u64(n: int) -> bytes:
    return _U64.pack(n)


def read_u64(raw: bytes) -> int:
    return int(_U64.unpack(raw)[0])


# --- keys ----------------------------------------------------------------------------------


def offer_key(offer_id: int) -> bytes:
    return OFFER_PREFIX + u64(offer_id)


def offer_type_key(offer: Offer) -> bytes:
    return (OFFER_TYPE_PREFIX + book_id(offer.service_type, offer.token)
            + u64(offer.unit_price) + u64(offer.id))


def order_key(order_id: int) -> bytes:
    return ORDER_PREFIX + u64(order_id)


def book_key(order: Order) -> bytes:
    """Its place in the book: asks lowest price first, bids highest; then oldest (id)."""
    book = book_id(order.service_type, order.token)
    if order.side == ASK:
        return ASKS_PREFIX + book + u64(order.price) + u64(order.id)
    return BIDS_PREFIX + book + u64(_TOP - order.price) + u64(order.id)


def book_price(key: bytes, side: int) -> int:
    """The price of the order at ``key`` in the book of ``side``."""
    raw = read_u64(key[-16:-8])
    return raw if side == ASK else _TOP - raw


def agreement_key(agreement_id: int) -> bytes:
    return AGREEMENT_PREFIX + u64(agreement_id)


def party_key(address: bytes, agreement_id: int) -> bytes:
    return PARTY_PREFIX + address + u64(agreement_id)


def receipt_key(agreement_id: int, counter: int, final: bool) -> bytes:
    return RECEIPT_PREFIX + u64(agreement_id) + u64(counter) + (b"\x01" if final else b"\x00")


# --- reads ---------------------------------------------------------------------------------


def next_id(store: Any) -> int:
    """One sequence for offers, orders and agreements: an order's id is its time priority."""
    raw = store.get(NEXT_KEY)
    n = (read_u64(raw) if raw else 0) + 1
    store.set(NEXT_KEY, u64(n))
    return n


def get_offer(view: Any, offer_id: int) -> Offer | None:
    raw = view.get(offer_key(offer_id))
    return Offer.decode(raw) if raw is not None else None


def get_order(view: Any, order_id: int) -> Order | None:
    raw = view.get(order_key(order_id))
    return Order.decode(raw) if raw is not None else None


def get_agreement(view: Any, agreement_id: int) -> Agreement | None:
    raw = view.get(agreement_key(agreement_id))
    return Agreement.decode(raw) if raw is not None else None


def agreements_of(view: Any, party: bytes) -> list[Agreement]:
    prefix = PARTY_PREFIX + party
    out = []
    for key, _v in view.iter_prefix(prefix):
        agreement = get_agreement(view, read_u64(key[len(prefix):]))
        if agreement is not None:
            out.append(agreement)
    return out


def receipts_of(view: Any, agreement_id: int) -> list[AcceptedReceipt]:
    return [AcceptedReceipt.decode(v)
            for _k, v in view.iter_prefix(RECEIPT_PREFIX + u64(agreement_id))]


def book_orders(view: Any, service_type: str, token: str, side: int,
                limit: int = 200) -> list[Order]:
    """Resting orders of one side of a book, best first (expired ones not yet swept too)."""
    prefix = (ASKS_PREFIX if side == ASK else BIDS_PREFIX) + book_id(service_type, token)
    out: list[Order] = []
    for key, _v in view.iter_prefix(prefix):
        order = get_order(view, read_u64(key[-8:]))
        if order is not None:
            out.append(order)
        if len(out) >= limit:
            break
    return out


def offers_by(view: Any, service_type: str | None, token: str | None,
              max_price: int | None, limit: int = 500) -> list[Offer]:
    """Active offers: of a type and token by price (the index), else every offer in id order
    filtered (at most ``limit``)."""
    out: list[Offer] = []
    if service_type is not None and token is not None:
        prefix = OFFER_TYPE_PREFIX + book_id(service_type, token)
        for key, _v in view.iter_prefix(prefix):
            if max_price is not None and read_u64(key[-16:-8]) > max_price:
                break
            offer = get_offer(view, read_u64(key[-8:]))
            if offer is not None:
                out.append(offer)
            if len(out) >= limit:
                break
        return out
    for _k, raw in view.iter_prefix(OFFER_PREFIX):
        offer = Offer.decode(raw)
        if (offer.active and (service_type is None or offer.service_type == service_type)
                and (token is None or offer.token == token)
                and (max_price is None or offer.unit_price <= max_price)):
            out.append(offer)
            if len(out) >= limit:
                break
    return out


# --- money ---------------------------------------------------------------------------------


def require_known_token(view: Any, token: str) -> None:
    if token != HPC:
        require_token(view, token)  # "unknown token 'X'"


def balance_of(view: Any, token: str, address: bytes) -> int:
    if token == HPC:
        return get_account(view, address).balance
    return token_balance(view, token, address)


def move(ctx: TxContext, token: str, frm: bytes, to: bytes, amount: int) -> None:
    """Move ``amount`` of ``token`` (HPC through the bank, else the tokens module), charging
    its two writes; ``INSUFFICIENT_FUNDS`` if ``frm`` lacks it."""
    if amount <= 0:
        return
    ctx.gas.consume(2 * ctx.block.params.gas_per_write)
    if token == HPC:
        move_hpc(ctx.store, frm, to, amount)
    else:
        move_tokens(ctx.store, token, frm, to, amount)


def lock(ctx: TxContext, token: str, frm: bytes, amount: int) -> None:
    move(ctx, token, frm, MODULE_ACCOUNT, amount)


def release(ctx: TxContext, token: str, to: bytes, amount: int) -> None:
    move(ctx, token, MODULE_ACCOUNT, to, amount)


# --- agents --------------------------------------------------------------------------------


def check_agent_key(view: Any, party: bytes, key: bytes) -> None:
    """``key`` may sign receipts for ``party``: its own account key, or a device it owns
    that is not revoked."""
    if address_of(key) == party:
        return
    device = get_device(view, key)
    if device is None:
        raise TxError(Code.FAILED, "agent key is neither the sender's own key nor a "
                      "registered device")
    device = active_device(view, key)
    if device.owner != party:
        raise TxError(Code.FAILED, f"device {key.hex()} is not owned by the sender")


def check_receipt_agent(view: Any, party: bytes, key: bytes, named: bytes, who: str) -> bool:
    """The receipt names ``key``, the agreement's agent key of ``party`` (the node verified
    the signature against the key the receipt names before the mempool), and a device key
    is still registered and not revoked. Returns whether the key is still the party's: a
    device it gave away since signs only for what is already escrowed (``_settle_receipt``),
    so its old owner cannot void receipts it countersigned, nor the new one spend more."""
    if named != key:
        raise TxError(Code.FAILED, f"receipt not signed by the {who}'s agent: it names key "
                      f"{named.hex()}, the agreement's is {key.hex()}")
    return address_of(key) == party or active_device(view, key).owner == party


def put(ctx: TxContext, key: bytes, record: Any) -> None:
    ctx.write(key, record.encode())


def mark(ctx: TxContext, key: bytes) -> None:
    ctx.write(key, MARK)


def drop(ctx: TxContext, key: bytes) -> None:
    ctx.gas.consume(ctx.block.params.gas_per_write)
    ctx.store.delete(key)
