"""SDK methods of the market module: offers, quotes, agreements and usage receipts.

Receipts are signed with ``market.types.sign_receipt`` (each agent its half) and joined into
a ``UsageReceipt``; ``submit_receipts`` posts them, naming the agreement's agent keys in
any receipt that names none. Ids of what a transaction made are read
from its events (``offer_id``, ``order_id``, ``agreement_ids``).
"""

from __future__ import annotations

from typing import Any

from smartchain.crypto.keys import PrivateKey
from smartchain.modules.market.types import (
    NO_KEY,
    CancelOrder,
    CloseAgreement,
    CreateOffer,
    PlaceAsk,
    PlaceBid,
    RetireOffer,
    SubmitReceipts,
    Terms,
    UsageReceipt,
    with_keys,
)
from smartchain.modules.sdk import ModuleSdk, seg


def _events(result: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["attributes"] for e in result["receipt"]["events"] if e["kind"] == kind]


def offer_id(result: dict[str, Any]) -> int:
    """The offer id from a committed ``create_offer`` (``KeyError`` if it failed)."""
    for attrs in _events(result, "market_offer"):
        return int(attrs["offer"])
    raise KeyError("no market_offer event: the offer was not made")


def order_id(result: dict[str, Any]) -> int:
    """The order id from a committed ``place_ask`` or ``place_bid``."""
    for attrs in _events(result, "market_order"):
        return int(attrs["order"])
    raise KeyError("no market_order event: the order was not placed")


def agreement_ids(result: dict[str, Any]) -> list[int]:
    """The agreements a committed order made, in fill order."""
    return [int(attrs["agreement"]) for attrs in _events(result, "market_match")]


class MarketSdk(ModuleSdk):
    """Market reads and transactions; prices and amounts in base units of the token."""

    def offers(self, service_type: str | None = None, token: str | None = None,
               max_price: int | None = None) -> list[dict[str, Any]]:
        """Active offers, by type (then price), optionally of one token, at most a price."""
        query = {k: v for k, v in (("type", service_type), ("token", token),
                                   ("max_price", max_price)) if v is not None}
        path = "/v1/market/offers"
        if query:
            path += "?" + "&".join(f"{k}={seg(str(v))}" for k, v in query.items())
        return self._request("GET", path)["offers"]

    def offer(self, offer_id: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/market/offers/{int(offer_id)}")

    def order_book(self, service_type: str, token: str = "HPC") -> dict[str, Any]:
        """Resting asks (lowest first) and bids (highest first) of a service type."""
        return self._request("GET", f"/v1/market/book/{seg(service_type)}?token={seg(token)}")

    def order(self, order_id: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/market/orders/{int(order_id)}")

    def agreements(self, party: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v1/market/parties/{seg(party)}/agreements")["agreements"]

    def agreement(self, agreement_id: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/market/agreements/{int(agreement_id)}")

    def agreement_receipts(self, agreement_id: int) -> list[dict[str, Any]]:
        path = f"/v1/market/agreements/{int(agreement_id)}/receipts"
        return self._request("GET", path)["receipts"]

    def create_offer(self, key: PrivateKey, service_type: str, unit: str, unit_price: int,
                     token: str, min_quantity: int, max_quantity: int, terms: Terms, *,
                     agent_key: bytes | None = None, gas_limit: int | None = None,
                     **kwargs: Any) -> dict[str, Any]:
        """Describe a service; receipts are signed by ``agent_key`` (default: this key)."""
        msg = CreateOffer(service_type, unit, unit_price, token, min_quantity, max_quantity,
                          terms, agent_key or key.public_key)
        return self.send_tx(key, "market/offer", msg, gas_limit=gas_limit, **kwargs)

    def retire_offer(self, key: PrivateKey, offer_id: int, *, gas_limit: int | None = None,
                     **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "market/retire_offer", RetireOffer(offer_id),
                            gas_limit=gas_limit, **kwargs)

    def place_ask(self, key: PrivateKey, offer_id: int, price: int, quantity: int,
                  expiry: int, *, gas_limit: int | None = None,
                  **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "market/ask", PlaceAsk(offer_id, price, quantity, expiry),
                            gas_limit=gas_limit, **kwargs)

    def place_bid(self, key: PrivateKey, service_type: str, token: str, price: int,
                  quantity: int, expiry: int, *, max_deposit_bps: int = 10_000,
                  agent_key: bytes | None = None, gas_limit: int | None = None,
                  **kwargs: Any) -> dict[str, Any]:
        """A bid locks ``bid_lock(quantity, price, max_deposit_bps)`` until filled or
        cancelled; receipts are countersigned by ``agent_key`` (default: this key)."""
        msg = PlaceBid(service_type, token, price, quantity, expiry, max_deposit_bps,
                       agent_key or key.public_key)
        return self.send_tx(key, "market/bid", msg, gas_limit=gas_limit, **kwargs)

    def cancel_order(self, key: PrivateKey, order_id: int, *, gas_limit: int | None = None,
                     **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "market/cancel", CancelOrder(order_id), gas_limit=gas_limit,
                            **kwargs)

    def submit_receipts(self, key: PrivateKey, receipts: list[UsageReceipt], *,
                        gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Post receipts both agents signed (any account may post them). A receipt that
        names no agent keys gets its agreement's (read from the chain): the node checks
        the signatures against them before the mempool."""
        return self.send_tx(key, "market/receipts",
                            SubmitReceipts(tuple(self._keyed(r) for r in receipts)),
                            gas_limit=gas_limit, **kwargs)

    def _keyed(self, r: UsageReceipt) -> UsageReceipt:
        if NO_KEY not in (r.provider_key, r.consumer_key):
            return r
        a = self.agreement(r.agreement_id)
        return with_keys(r, bytes.fromhex(a["provider_key"]), bytes.fromhex(a["consumer_key"]))

    def close_agreement(self, key: PrivateKey, agreement_id: int, *,
                        gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "market/close", CloseAgreement(agreement_id),
                            gas_limit=gas_limit, **kwargs)
