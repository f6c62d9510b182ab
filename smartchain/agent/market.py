"""The agent in the market: the provider's and the consumer's side of an agreement.

Both sides talk over MQTT, under ``PREFIX/agreements/ID/``:

- ``data``        provider -> consumer: unit ``n`` of the service, the device's signed message
- ``receipt``     provider -> consumer: a cumulative counter signed by the provider's agent key
- ``countersign`` consumer -> provider: the consumer's signature of that same receipt
- ``resend``      consumer -> provider: units from ``from`` again (after a restart, or a gap)
- ``end``         consumer -> provider: stop at ``counter`` (the car left), signed by its key

and each device under ``PREFIX/devices/DEVICE_HEX/up`` (its signed messages to its agent) and
``.../down`` (commands its agent signs, e.g. the gate's ``open``).

A device message counts only if its signature verifies and the chain vouches for the device
(registered, not revoked, owned by the right party): anything else is dropped with a log line.
The consumer countersigns a counter only up to what it has received (and, with a device of
its own, what that device witnessed), never below what it signed before, and never beyond the
agreement or its budget; the provider submits a receipt only with both signatures. Each side
records a step in its progress file before it acts on it (see ``store.py``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smartchain.agent.chain import AgreementView, DeviceTrust, Untrusted
from smartchain.agent.config import AgentConfig, OfferSettings, QuoteSettings
from smartchain.agent.messages import BadMessage, DeviceMessage, open_message, sign_message
from smartchain.agent.mqtt import Incoming, MqttLink
from smartchain.agent.receipts import (
    consumer_countersigns,
    provider_proposal,
    provider_settles,
)
from smartchain.agent.store import Progress
from smartchain.client import ApiError, Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey, verify
from smartchain.modules.market.sdk import offer_id as made_offer_id
from smartchain.modules.market.sdk import order_id
from smartchain.modules.market.types import (
    Terms,
    UsageReceipt,
    bid_lock,
    receipt_bytes,
    sign_receipt,
)

log = logging.getLogger("smartchain.agent.market")


class Context:
    """What both roles share: keys, node, broker, progress, the chain's view of devices."""

    def __init__(self, cfg: AgentConfig, agent_key: PrivateKey, account: PrivateKey,
                 client: Client, link: MqttLink, progress: Progress) -> None:
        self.cfg, self.agent_key, self.account = cfg, agent_key, account
        self.client, self.link, self.progress = client, link, progress
        self.address = to_bech32(account.address)
        self.trust = DeviceTrust(client)
        self.prefix = cfg.mqtt.prefix
        self._chain_id = ""
        self._fill_room = -1
        public = cfg.device.public_key
        self.device = agent_key.public_key if public == "self" else \
            bytes.fromhex(public) if public else None

    @property
    def chain_id(self) -> str:
        if not self._chain_id:
            self._chain_id = str(self.client.status()["chain_id"])
        return self._chain_id

    def height(self) -> int:
        return int(self.client.status()["height"])

    @property
    def fill_room(self) -> int:
        """Gas for every fill an order may make besides what its simulation used (the
        chain's ``market_max_fills_per_order`` x twice ``market_fill_gas``, which covers a
        fill's writes too): the book can change between simulation and block."""
        if self._fill_room < 0:
            params = self.client.genesis()["params"]
            self._fill_room = 2 * int(params["market_fill_gas"]) \
                * int(params["market_max_fills_per_order"])
        return self._fill_room

    def topic(self, agreement: int | str, leaf: str) -> str:
        return f"{self.prefix}/agreements/{agreement}/{leaf}"

    def device_topic(self, device: bytes, leaf: str) -> str:
        return f"{self.prefix}/devices/{device.hex()}/{leaf}"

    def send(self, topic: str, doc: dict[str, Any]) -> None:
        self.link.publish(topic, json.dumps(doc, sort_keys=True).encode())

    def agreements(self, side: str) -> list[AgreementView]:
        """This agent's agreements on ``side``: its account's that name its key (an account
        may run several agents, one per device)."""
        mine = [AgreementView.from_json(a) for a in self.client.agreements(self.address)]
        return sorted((a for a in mine if self.ours(a, side)), key=lambda a: a.id)

    def ours(self, a: AgreementView, side: str) -> bool:
        return a.names(side, self.address, self.agent_key.public_key)

    def device_message(self, raw: bytes, owner: str) -> DeviceMessage:
        """A verified message of a device the chain vouches for, new (``seq`` grew)."""
        msg = open_message(raw)
        self.trust.check(msg.device, owner)
        return msg

    def fresh(self, msg: DeviceMessage) -> bool:
        """True once per ``seq`` of a device: a replayed message is not metered twice."""
        key = msg.device.hex()
        if msg.seq <= int(self.progress.entry("devices", key).get("seq", 0)):
            return False
        self.progress.update("devices", key, seq=msg.seq)
        return True


def _leaf(topic: str) -> tuple[str, str] | None:
    """(agreement id, leaf) of ``PREFIX/agreements/ID/LEAF``."""
    parts = topic.split("/")
    if len(parts) >= 4 and parts[-3] == "agreements" and parts[-2].isdigit():
        return parts[-2], parts[-1]
    return None


def _json(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except ValueError:
        raise BadMessage("not JSON") from None
    if not isinstance(doc, dict):
        raise BadMessage("not a JSON object")
    return doc


def _append(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(doc, sort_keys=True) + "\n")
        f.flush()


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def trim_units(path: Path, upto: int) -> None:
    """Keep only the units the progress file counts: a kill between appending unit n and
    recording it leaves a line n that would otherwise be stored (or sent) twice."""
    lines = _lines(path)
    kept = [item for item in lines if int(item["n"]) <= upto]
    if len(kept) == len(lines):
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(item, sort_keys=True) + "\n" for item in kept))
    os.replace(tmp, path)


class Quotes:
    """Keeps one quote of each configured kind on the book, within the owner's limits."""

    def __init__(self, ctx: Context, section: str) -> None:
        self.ctx, self.section = ctx, section

    def resting(self, name: str, height: int) -> bool:
        """Is our last quote under ``name`` still on the book (unfilled, unexpired)?"""
        entry = self.ctx.progress.entry(self.section, name)
        if "order" not in entry:
            return False
        try:
            order = self.ctx.client.order(int(entry["order"]))
        except ApiError as exc:
            if exc.code == "not_found":
                return False
            raise
        return int(order["remaining"]) > 0 and int(order["expiry"]) >= height

    def place(self, name: str, what: str, send: Callable[..., dict[str, Any]]) -> bool:
        """Simulate the order (refused: no fee spent), then send it with gas for every fill
        it may make: sent with just what its simulation used, an order that meets a
        counter-order placed meanwhile runs out of gas and its fee is lost."""
        sim = send(dry_run=True)
        if not sim["ok"]:
            log.warning("%s refused: %s", what, sim["log"])
            return False
        result = send(gas_limit=int(sim["gas_wanted"]) + self.ctx.fill_room)
        if not result["receipt"]["ok"]:
            log.warning("%s refused: %s", what, result["receipt"]["log"])
            return False
        oid = order_id(result)
        self.ctx.progress.update(self.section, name, order=oid)
        log.info("%s placed: order %d", what, oid)
        return True


class ProviderRole:
    """Publishes offers, keeps asks on the book, serves agreements, settles receipts."""

    name = "provider"

    def __init__(self, ctx: Context, offers: tuple[OfferSettings, ...],
                 asks: list[QuoteSettings]) -> None:
        self.ctx, self.offers, self.asks = ctx, offers, asks
        self.quotes = Quotes(ctx, "asks")
        self.open: dict[int, AgreementView] = {}
        self.seen: set[int] = set()
        self.stats = {"units_served": 0, "receipts_settled": 0, "dropped": 0}

    def topics(self) -> list[str]:
        t = [self.ctx.topic("+", leaf) for leaf in ("countersign", "resend", "end")]
        if self.ctx.device is not None:
            t.append(self.ctx.device_topic(self.ctx.device, "up"))
        return t

    def status(self) -> dict[str, Any]:
        serving = {str(a): self._entry(a) for a in sorted(self.open)}
        return {**self.stats, "offers": self.ctx.progress.doc.get("offers", {}),
                "serving": serving}

    def _entry(self, agreement: int) -> dict[str, Any]:
        return self.ctx.progress.entry("serving", str(agreement))

    def _log(self, agreement: int) -> Path:
        return self.ctx.cfg.state_dir / "served" / f"{agreement}.jsonl"

    # --- each turn -------------------------------------------------------------------------

    def step(self) -> None:
        height = self.ctx.height()
        for offer in self.offers:
            self._ensure_offer(offer)
        self._refresh()
        for a in self.open.values():
            self._propose(a)
        busy = {a.service_type for a in self.open.values()}
        for q in self.asks:
            if q.service not in busy and not self.quotes.resting(q.service, height):
                self._place_ask(q, height)

    def _refresh(self) -> None:
        """Read our agreements from the chain: the open ones to serve."""
        mine = self.ctx.agreements("provider")
        for a in mine:
            if a.id not in self.seen:  # after a start: the served log as progress counts it
                self.seen.add(a.id)
                trim_units(self._log(a.id), int(self._entry(a.id).get("delivered", 0)))
            if a.status == "settled" and "delivered" in self._entry(a.id) \
                    and not self._entry(a.id).get("released"):
                self._finished(a)  # settled, but killed before the device was told
        self.open = {a.id: a for a in mine if a.open}

    def _ensure_offer(self, o: OfferSettings) -> int:
        entry = self.ctx.progress.entry("offers", o.service)
        if "id" in entry:
            return int(entry["id"])
        terms = Terms(o.deposit_bps, o.instalment_units, o.deadline_blocks)
        result = self.ctx.client.create_offer(
            self.ctx.account, o.service, o.unit, max(o.price, self.ctx.cfg.limits.min_price),
            o.token, o.min_quantity, o.max_quantity, terms,
            agent_key=self.ctx.agent_key.public_key)
        if not result["receipt"]["ok"]:
            raise BadMessage(f"offer {o.service} refused: {result['receipt']['log']}")
        oid = made_offer_id(result)
        self.ctx.progress.update("offers", o.service, id=oid)
        log.info("offer %d published: %s at %d per %s in %s", oid, o.service, o.price, o.unit,
                 o.token)
        return oid

    def _place_ask(self, q: QuoteSettings, height: int) -> None:
        limits = self.ctx.cfg.limits
        offer = next((o for o in self.offers if o.service == q.service), None)
        if offer is None:
            log.warning("ask for %s: no [[offer]] of that service", q.service)
            return
        price = max(q.price, limits.min_price)
        quantity = min(q.quantity, limits.max_quantity, offer.max_quantity)
        oid = self._ensure_offer(offer)
        self.quotes.place(q.service, f"ask {quantity} {q.service} at {price}",
                          lambda **gas: self.ctx.client.place_ask(
                              self.ctx.account, oid, price, quantity, height + q.expires_blocks,
                              **gas))

    def _end_of(self, a: AgreementView) -> int | None:
        end = self._entry(a.id).get("end")
        return None if end is None else int(end)

    def _propose(self, a: AgreementView) -> None:
        """Propose the receipt due (or again the one still waiting for its countersign)."""
        p = provider_proposal(int(self._entry(a.id).get("delivered", 0)), self._end_of(a),
                              a.quantity, a.counter, a.instalment_units)
        if p is None:
            return
        sig = sign_receipt(self.ctx.agent_key, self.ctx.chain_id, a.id, p.counter, p.final)
        self.ctx.send(self.ctx.topic(a.id, "receipt"),
                      {"agreement": a.id, "counter": p.counter, "final": p.final,
                       "provider_sig": sig.hex()})

    # --- messages --------------------------------------------------------------------------

    def on_message(self, msg: Incoming) -> None:
        try:
            if self.ctx.device is not None and msg.topic == self.ctx.device_topic(
                    self.ctx.device, "up"):
                self._device(msg.payload)
                return
            where = _leaf(msg.topic)
            if where is None or where[1] not in ("countersign", "resend", "end"):
                return
            a = self.open.get(int(where[0]))
            if a is None:
                return  # not one of ours, or not open: nothing to do
            doc = _json(msg.payload)
            if where[1] == "countersign":
                self._countersigned(a, doc)
            elif where[1] == "resend":
                self._resend(a, int(doc.get("from", 1)))
            else:
                self._end(a, doc)
        except (BadMessage, Untrusted, ValueError, KeyError, TypeError) as exc:
            self.stats["dropped"] += 1
            log.warning("dropped a message on %s: %s", msg.topic, exc)

    def _device(self, raw: bytes) -> None:
        m = self.ctx.device_message(raw, self.ctx.address)
        if m.device != self.ctx.device or not self.ctx.fresh(m):
            raise BadMessage(f"replayed or foreign message (seq {m.seq})")
        if m.kind != self.ctx.cfg.device.kind:
            return
        if not self._serve(raw):  # wanted by none we knew of: by one made since our turn?
            self._refresh()
            self._serve(raw)

    def _serve(self, raw: bytes) -> bool:
        """Deliver a unit to the oldest agreement still wanting units, if any."""
        for a in self.open.values():
            e = self._entry(a.id)
            n = int(e.get("delivered", 0)) + 1
            end = e.get("end")
            if n > a.quantity or (end is not None and n > int(end)):
                continue
            item = {"n": n, "msg": raw.hex()}
            _append(self._log(a.id), item)
            self.ctx.progress.update("serving", str(a.id), delivered=n)
            self.stats["units_served"] += 1
            self.ctx.send(self.ctx.topic(a.id, "data"), {"agreement": a.id, **item})
            return True
        return False

    def _resend(self, a: AgreementView, start: int) -> None:
        delivered = int(self._entry(a.id).get("delivered", 0))
        for item in _lines(self._log(a.id)):
            if start <= int(item["n"]) <= delivered:
                self.ctx.send(self.ctx.topic(a.id, "data"), {"agreement": a.id, **item})

    def _end(self, a: AgreementView, doc: dict[str, Any]) -> None:
        m = open_message(bytes.fromhex(doc["msg"]))
        if m.device != a.consumer_key or m.kind != "end" or m.seq != a.id:
            raise BadMessage("an end not signed by the agreement's consumer")
        end = int(m.data()["counter"])
        if end != self._end_of(a):  # the consumer repeats it until the final receipt
            self.ctx.progress.update("serving", str(a.id), end=end)
            log.info("agreement %d: the consumer ends it at %d", a.id, end)
        self._propose(a)

    def _countersigned(self, a: AgreementView, doc: dict[str, Any]) -> None:
        counter, final = int(doc["counter"]), bool(doc["final"])
        consumer_sig = bytes.fromhex(doc["consumer_sig"])
        message = receipt_bytes(self.ctx.chain_id, a.id, counter, final)
        if not verify(a.consumer_key, message, consumer_sig):
            raise BadMessage(f"agreement {a.id}: countersignature does not verify")
        e = self._entry(a.id)
        settled = max(int(e.get("settled", 0)), a.counter)
        try:
            if not provider_settles(counter, final, delivered=int(e.get("delivered", 0)),
                                    end=self._end_of(a), quantity=a.quantity,
                                    settled=settled):
                return  # settled already (a repeated countersign)
        except BadMessage as exc:
            raise BadMessage(f"agreement {a.id}: {exc}") from None
        self.ctx.progress.update("serving", str(a.id), countersigned=counter)
        receipt = UsageReceipt(a.id, counter, final,
                               sign_receipt(self.ctx.agent_key, self.ctx.chain_id, a.id,
                                            counter, final), consumer_sig)
        result = self.ctx.client.submit_receipts(self.ctx.account, [receipt])
        chain = AgreementView.from_json(self.ctx.client.agreement(a.id))
        self.ctx.progress.update("serving", str(a.id), settled=chain.counter)
        if not result["receipt"]["ok"]:  # e.g. accepted already, from a run before a kill
            log.warning("agreement %d: receipt %d refused (%s); chain has %d", a.id, counter,
                        result["receipt"]["log"], chain.counter)
        else:
            self.stats["receipts_settled"] += 1
            log.info("agreement %d: receipt %d%s settled on chain", a.id, counter,
                     " (final)" if final else "")
        if not chain.open:
            self._finished(chain)

    def _finished(self, a: AgreementView) -> None:
        """The agreement is over: stop serving it, and tell the device (the gate opens)."""
        self.open.pop(a.id, None)
        if self.ctx.device is not None and a.status == "settled":
            cmd = sign_message(self.ctx.agent_key, "command", a.id,
                               {"command": "release", "agreement": a.id, "counter": a.counter})
            self.ctx.link.publish(self.ctx.device_topic(self.ctx.device, "down"), cmd)
        self.ctx.progress.update("serving", str(a.id), released=True)


class ConsumerRole:
    """Keeps bids on the book within limits and budget, receives, countersigns."""

    name = "consumer"

    def __init__(self, ctx: Context, bids: list[QuoteSettings]) -> None:
        self.ctx, self.bids = ctx, bids
        self.quotes = Quotes(ctx, "bids")
        self.open: dict[int, AgreementView] = {}
        self.asked_resend: set[int] = set()
        self.stats = {"units_received": 0, "countersigned": 0, "dropped": 0}

    def topics(self) -> list[str]:
        t = [self.ctx.topic("+", "data"), self.ctx.topic("+", "receipt")]
        if self.ctx.device is not None:
            t.append(self.ctx.device_topic(self.ctx.device, "up"))
        return t

    def status(self) -> dict[str, Any]:
        return {**self.stats, "committed": self.ctx.progress.doc.get("budget", {}),
                "buying": {str(a): self._entry(a) for a in sorted(self.open)}}

    def _entry(self, agreement: int) -> dict[str, Any]:
        return self.ctx.progress.entry("buying", str(agreement))

    def received_path(self, agreement: int) -> Path:
        return self.ctx.cfg.state_dir / "received" / f"{agreement}.jsonl"

    def step(self) -> None:
        height = self.ctx.height()
        self.open = {a.id: a for a in self.ctx.agreements("consumer") if a.open}
        for a in self.open.values():
            if a.id not in self.asked_resend:  # after a start: whatever we missed, again
                self.asked_resend.add(a.id)
                trim_units(self.received_path(a.id), int(self._entry(a.id).get("received", 0)))
                self._ask_resend(a)
            if "end" in self._entry(a.id):  # until the provider settles the final receipt
                self._send_end(a)
        busy = {a.service_type for a in self.open.values()}
        for q in self.bids:
            if q.service not in busy and not self.quotes.resting(q.service, height):
                self._place_bid(q, height)

    def _place_bid(self, q: QuoteSettings, height: int) -> None:
        limits = self.ctx.cfg.limits
        price = min(q.price, limits.max_price)
        quantity = min(q.quantity, limits.max_quantity)
        lock = bid_lock(quantity, price, q.max_deposit_bps)
        committed = int(self.ctx.progress.entry("budget", "all").get("committed", 0))
        if committed + lock > limits.budget:
            return  # the owner's budget is spent: no more bids
        # counted before it is sent: a crash may waste budget, never exceed it
        self.ctx.progress.update("budget", "all", committed=committed + lock)
        if not self.quotes.place(q.service, f"bid {quantity} {q.service} at {price}",
                                 lambda **gas: self.ctx.client.place_bid(
                                     self.ctx.account, q.service, q.token, price, quantity,
                                     height + q.expires_blocks,
                                     max_deposit_bps=q.max_deposit_bps,
                                     agent_key=self.ctx.agent_key.public_key, **gas)):
            self.ctx.progress.update("budget", "all", committed=committed)  # refused: unspent

    def _ask_resend(self, a: AgreementView) -> None:
        start = int(self._entry(a.id).get("received", 0)) + 1
        self.ctx.send(self.ctx.topic(a.id, "resend"), {"agreement": a.id, "from": start})

    def _agreement(self, agreement: int) -> AgreementView | None:
        a = self.open.get(agreement)
        if a is None:  # a match made since the last turn
            try:
                a = AgreementView.from_json(self.ctx.client.agreement(agreement))
            except ApiError:
                return None
            if not self.ctx.ours(a, "consumer") or not a.open:
                return None
            self.open[a.id] = a
        return a

    # --- messages --------------------------------------------------------------------------

    def on_message(self, msg: Incoming) -> None:
        try:
            if self.ctx.device is not None and msg.topic == self.ctx.device_topic(
                    self.ctx.device, "up"):
                self._witness(msg.payload)
                return
            where = _leaf(msg.topic)
            if where is None or where[1] not in ("data", "receipt"):
                return
            a = self._agreement(int(where[0]))
            if a is None:
                return
            doc = _json(msg.payload)
            if where[1] == "data":
                self._data(a, doc)
            else:
                self._receipt(a, doc)
        except (BadMessage, Untrusted, ValueError, KeyError, TypeError) as exc:
            self.stats["dropped"] += 1
            log.warning("dropped a message on %s: %s", msg.topic, exc)

    def _data(self, a: AgreementView, doc: dict[str, Any]) -> None:
        n = int(doc["n"])
        m = self.ctx.device_message(bytes.fromhex(doc["msg"]), a.provider)
        received = int(self._entry(a.id).get("received", 0))
        if n <= received:
            return  # a unit sent again: we have it
        if n > received + 1:
            self._ask_resend(a)
            return
        if n > a.quantity:
            raise BadMessage(f"agreement {a.id}: unit {n} beyond the {a.quantity} agreed")
        seen = self._entry(a.id).get("last_seq", 0)
        if m.seq <= int(seen):
            raise BadMessage(f"agreement {a.id}: device message {m.seq} sent as a new unit")
        _append(self.received_path(a.id), {"n": n, "device": m.device.hex(), "seq": m.seq,
                                           "kind": m.kind, "data": m.data()})
        self.ctx.progress.update("buying", str(a.id), received=n, last_seq=m.seq)
        self.stats["units_received"] += 1

    def _evidence(self, a: AgreementView) -> int:
        """Units we can vouch for: received, and witnessed by our own device if we have one."""
        e = self._entry(a.id)
        units = int(e.get("received", 0))
        if self.ctx.device is not None:
            units = min(units, int(e.get("witnessed", 0)))
        return units

    def _receipt(self, a: AgreementView, doc: dict[str, Any]) -> None:
        counter, final = int(doc["counter"]), bool(doc["final"])
        provider_sig = bytes.fromhex(doc["provider_sig"])
        message = receipt_bytes(self.ctx.chain_id, a.id, counter, final)
        if not verify(a.provider_key, message, provider_sig):
            raise BadMessage(f"agreement {a.id}: receipt not signed by the provider's agent")
        e = self._entry(a.id)
        signed = int(e.get("countersigned", 0))
        try:
            if not consumer_countersigns(
                    counter, final, signed=signed, signed_final=bool(e.get("final")),
                    evidence=self._evidence(a), end=int(e["end"]) if "end" in e else None,
                    quantity=a.quantity, price=a.price, budget=self.ctx.cfg.limits.budget):
                return  # not served yet as far as we can tell: wait for the units
        except BadMessage as exc:
            raise BadMessage(f"agreement {a.id}: {exc}") from None
        self.ctx.progress.update("buying", str(a.id), countersigned=counter, final=final)
        sig = sign_receipt(self.ctx.agent_key, self.ctx.chain_id, a.id, counter, final)
        self.ctx.send(self.ctx.topic(a.id, "countersign"),
                      {"agreement": a.id, "counter": counter, "final": final,
                       "consumer_sig": sig.hex()})
        if counter > signed:
            self.stats["countersigned"] += 1
            log.info("agreement %d: countersigned %d%s", a.id, counter,
                     " (final)" if final else "")

    def _witness(self, raw: bytes) -> None:
        m = self.ctx.device_message(raw, self.ctx.address)
        if m.device != self.ctx.device or not self.ctx.fresh(m):
            raise BadMessage(f"replayed or foreign message (seq {m.seq})")
        if not self.open:  # matched since the last turn? our device's word must not be lost
            self.open = {a.id: a for a in self.ctx.agreements("consumer") if a.open}
        a = next(iter(sorted(self.open.values(), key=lambda x: x.id)), None)
        if a is None:
            return
        e = self._entry(a.id)
        if m.kind == self.ctx.cfg.device.kind and "end" not in e:
            self.ctx.progress.update("buying", str(a.id),
                                     witnessed=int(e.get("witnessed", 0)) + 1)
        elif m.kind == self.ctx.cfg.device.final_kind and "end" not in e:
            end = min(int(e.get("witnessed", 0)), a.quantity)  # as long as our device saw
            self.ctx.progress.update("buying", str(a.id), end=end)
            log.info("agreement %d: our device is done; ending at %d", a.id, end)
        if "end" in self._entry(a.id):
            self._send_end(a)

    def _send_end(self, a: AgreementView) -> None:
        end = int(self._entry(a.id)["end"])
        signed = sign_message(self.ctx.agent_key, "end", a.id,
                              {"agreement": a.id, "counter": end})
        self.ctx.send(self.ctx.topic(a.id, "end"), {"agreement": a.id, "msg": signed.hex()})


def market_roles(ctx: Context) -> list[Any]:
    cfg = ctx.cfg
    asks = [q for q in cfg.quotes if q.side == "ask"]
    bids = [q for q in cfg.quotes if q.side == "bid"]
    roles: list[Any] = []
    if cfg.offers or asks:
        roles.append(ProviderRole(ctx, cfg.offers, asks))
    if bids:
        roles.append(ConsumerRole(ctx, bids))
    return roles
