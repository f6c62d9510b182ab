"""The market module's HTTP queries: offers, order books, orders, agreements, receipts."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.market.state import (
    agreements_of,
    book_orders,
    get_agreement,
    get_offer,
    get_order,
    offers_by,
    receipts_of,
)
from smartchain.modules.market.types import (
    ASK,
    BID,
    HPC,
    SERVICE_TYPE_RE,
    SIDES,
    STATUS,
    AcceptedReceipt,
    Agreement,
    Offer,
    Order,
    Terms,
)
from smartchain.modules.query import (
    ADDRESS,
    HEX32,
    U64,
    U64_INT,
    HttpQuery,
    ModuleApi,
    Param,
    QueryError,
    parse_address,
    parse_u64,
    ref,
)
from smartchain.modules.tokens.types import SYMBOL_RE
from smartchain.state.store import StateReader

TAG = "market"
AMOUNT = {"type": "string", "pattern": "^[0-9]+$",
          "description": "integer base units of the agreement's token"}
SERVICE = {"type": "string", "pattern": f"^{SERVICE_TYPE_RE.pattern}$",
           "description": "service type, e.g. weather.readings"}
TOKEN = {"type": "string", "pattern": f"^{SYMBOL_RE.pattern}$",
         "description": "HPC or an IOT_Coin token symbol"}
# The optional filters of a listing: empty means any.
ANY_SERVICE = {**SERVICE, "pattern": f"^({SERVICE_TYPE_RE.pattern})?$"}
ANY_TOKEN = {**TOKEN, "pattern": f"^({SYMBOL_RE.pattern})?$"}


def parse_service(text: str) -> str:
    if not SERVICE_TYPE_RE.fullmatch(text):
        raise QueryError(400, "malformed", f"invalid service type {text!r}")
    return text


def parse_token(text: str) -> str:
    if text != HPC and not SYMBOL_RE.fullmatch(text):
        raise QueryError(400, "malformed", f"invalid token {text!r}")
    return text


def terms_json(t: Terms) -> dict[str, Any]:
    return {"deposit_bps": t.deposit_bps, "instalment_units": str(t.instalment_units),
            "deadline_blocks": str(t.deadline_blocks)}


def offer_json(o: Offer) -> dict[str, Any]:
    return {"id": str(o.id), "provider": to_bech32(o.provider), "service_type": o.service_type,
            "unit": o.unit, "unit_price": str(o.unit_price), "token": o.token,
            "min_quantity": str(o.min_quantity), "max_quantity": str(o.max_quantity),
            "terms": terms_json(o.terms), "agent_key": o.agent_key.hex(), "active": o.active,
            "height": str(o.height)}


def order_json(o: Order) -> dict[str, Any]:
    return {"id": str(o.id), "side": SIDES[o.side], "owner": to_bech32(o.owner),
            "service_type": o.service_type, "token": o.token, "price": str(o.price),
            "quantity": str(o.quantity), "remaining": str(o.remaining),
            "expiry": str(o.expiry), "offer_id": str(o.offer_id),
            "agent_key": o.agent_key.hex(), "max_deposit_bps": o.max_deposit_bps,
            "locked": str(o.locked), "height": str(o.height)}


def agreement_json(a: Agreement) -> dict[str, Any]:
    return {"id": str(a.id), "offer_id": str(a.offer_id), "ask_id": str(a.ask_id),
            "bid_id": str(a.bid_id), "service_type": a.service_type, "unit": a.unit,
            "token": a.token, "provider": to_bech32(a.provider),
            "consumer": to_bech32(a.consumer), "provider_key": a.provider_key.hex(),
            "consumer_key": a.consumer_key.hex(), "quantity": str(a.quantity),
            "price": str(a.price), "terms": terms_json(a.terms), "deposit": str(a.deposit),
            "coverage": str(a.coverage), "counter": str(a.counter),
            "escrow": str(a.deposit + (a.coverage - a.counter) * a.price
                          if STATUS[a.status] == "open" else 0),
            "start_height": str(a.start_height), "deadline_height": str(a.deadline_height),
            "last_receipt_height": str(a.last_receipt_height), "status": STATUS[a.status],
            "provider_paid": str(a.provider_paid), "consumer_refund": str(a.consumer_refund)}


def receipt_json(r: AcceptedReceipt) -> dict[str, Any]:
    return {"agreement_id": str(r.agreement_id), "counter": str(r.counter), "final": r.final,
            "height": str(r.height), "paid": str(r.paid)}


def _offers(reader: StateReader, args: dict[str, Any]) -> Any:
    found = offers_by(reader, args["type"] or None, args["token"] or None,
                      args["max_price"] if args["max_price"] else None)
    return {"offers": [offer_json(o) for o in found]}


def _offer(reader: StateReader, args: dict[str, Any]) -> Any:
    o = get_offer(reader, args["id"])
    if o is None:
        raise QueryError(404, "not_found", f"no offer {args['id']}")
    return offer_json(o)


def _book(reader: StateReader, args: dict[str, Any]) -> Any:
    st, token = args["service_type"], args["token"]
    return {"service_type": st, "token": token,
            "asks": [order_json(o) for o in book_orders(reader, st, token, ASK)],
            "bids": [order_json(o) for o in book_orders(reader, st, token, BID)]}


def _order(reader: StateReader, args: dict[str, Any]) -> Any:
    o = get_order(reader, args["id"])
    if o is None:
        raise QueryError(404, "not_found", f"no resting order {args['id']}")
    return order_json(o)


def _agreements(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"party": to_bech32(args["address"]),
            "agreements": [agreement_json(a) for a in agreements_of(reader, args["address"])]}


def _require_agreement(reader: StateReader, agreement_id: int) -> Agreement:
    a = get_agreement(reader, agreement_id)
    if a is None:
        raise QueryError(404, "not_found", f"no agreement {agreement_id}")
    return a


def _agreement(reader: StateReader, args: dict[str, Any]) -> Any:
    return agreement_json(_require_agreement(reader, args["id"]))


def _receipts(reader: StateReader, args: dict[str, Any]) -> Any:
    _require_agreement(reader, args["id"])
    return {"agreement_id": str(args["id"]),
            "receipts": [receipt_json(r) for r in receipts_of(reader, args["id"])]}


_ID = Param("id", U64_INT, parse_u64("id"))
_TOKEN_Q = Param("token", ANY_TOKEN, lambda t: parse_token(t) if t else "", "query", "")
_NOT_FOUND = {400: "malformed id", 404: "not found"}


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(props), "properties": props}


API = ModuleApi(
    queries=(
        HttpQuery("/v1/market/offers", "listOffers", TAG,
                  "Active offers, by type and token (then price), at most a price", _offers,
                  _obj({"offers": {"type": "array", "items": ref("Offer")}}), "offers",
                  (Param("type", ANY_SERVICE, lambda t: parse_service(t) if t else "", "query",
                         ""), _TOKEN_Q,
                   Param("max_price", U64_INT, parse_u64("max_price"), "query", "0",
                         description="0: no limit")),
                  {400: "malformed filter"}),
        HttpQuery("/v1/market/offers/{id}", "getOffer", TAG, "An offer", _offer, ref("Offer"),
                  "offer", (_ID,), _NOT_FOUND),
        HttpQuery("/v1/market/book/{service_type}", "getOrderBook", TAG,
                  "The order book of a service type in a token: asks lowest first, bids "
                  "highest first, then oldest", _book,
                  _obj({"service_type": SERVICE, "token": TOKEN,
                        "asks": {"type": "array", "items": ref("MarketOrder")},
                        "bids": {"type": "array", "items": ref("MarketOrder")}}), "book",
                  (Param("service_type", SERVICE, parse_service),
                   Param("token", TOKEN, parse_token, "query", HPC)),
                  {400: "malformed service type or token"}),
        HttpQuery("/v1/market/orders/{id}", "getMarketOrder", TAG, "A resting order", _order,
                  ref("MarketOrder"), "order", (_ID,), _NOT_FOUND),
        HttpQuery("/v1/market/parties/{address}/agreements", "listAgreements", TAG,
                  "The agreements an account is a party of", _agreements,
                  _obj({"party": ADDRESS,
                        "agreements": {"type": "array", "items": ref("Agreement")}}),
                  "agreements", (Param("address", ADDRESS, parse_address),),
                  {400: "malformed address"}),
        HttpQuery("/v1/market/agreements/{id}", "getAgreement", TAG, "An agreement and its "
                  "escrow", _agreement, ref("Agreement"), "agreement", (_ID,), _NOT_FOUND),
        HttpQuery("/v1/market/agreements/{id}/receipts", "listAgreementReceipts", TAG,
                  "The usage receipts an agreement accepted, by counter", _receipts,
                  _obj({"agreement_id": U64,
                        "receipts": {"type": "array", "items": ref("UsageReceipt")}}),
                  "receipts", (_ID,), _NOT_FOUND),
    ),
    schemas={
        "MarketTerms": _obj({"deposit_bps": {"type": "integer"}, "instalment_units": U64,
                             "deadline_blocks": U64}),
        "Offer": _obj({"id": U64, "provider": ADDRESS, "service_type": SERVICE,
                       "unit": {"type": "string"}, "unit_price": AMOUNT, "token": TOKEN,
                       "min_quantity": U64, "max_quantity": U64, "terms": ref("MarketTerms"),
                       "agent_key": HEX32, "active": {"type": "boolean"}, "height": U64}),
        "MarketOrder": _obj({"id": U64, "side": {"enum": list(SIDES)}, "owner": ADDRESS,
                             "service_type": SERVICE, "token": TOKEN, "price": AMOUNT,
                             "quantity": U64, "remaining": U64, "expiry": U64,
                             "offer_id": U64, "agent_key": HEX32,
                             "max_deposit_bps": {"type": "integer"}, "locked": AMOUNT,
                             "height": U64}),
        "Agreement": _obj({"id": U64, "offer_id": U64, "ask_id": U64, "bid_id": U64,
                           "service_type": SERVICE, "unit": {"type": "string"},
                           "token": TOKEN, "provider": ADDRESS, "consumer": ADDRESS,
                           "provider_key": HEX32, "consumer_key": HEX32, "quantity": U64,
                           "price": AMOUNT, "terms": ref("MarketTerms"), "deposit": AMOUNT,
                           "coverage": U64, "counter": U64, "escrow": AMOUNT,
                           "start_height": U64, "deadline_height": U64,
                           "last_receipt_height": U64, "status": {"enum": list(STATUS)},
                           "provider_paid": AMOUNT, "consumer_refund": AMOUNT}),
        "UsageReceipt": _obj({"agreement_id": U64, "counter": U64,
                              "final": {"type": "boolean"}, "height": U64, "paid": AMOUNT}),
    },
)
