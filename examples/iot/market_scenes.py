"""Examples 1 and 2, set up on any node: a weather station selling readings in HPC, and a
parking gate selling minutes in its own ``PARK`` token to a car. Each party is an account
(the owner, who trades and pays) and a certified device whose key its agent holds (it signs
usage receipts); ``prepare_*`` registers and funds everything and writes the agents' configs.

Each run makes new devices (serial numbers from their keys, as a factory would number them)
and first cancels the quotes its accounts left on the book in an earlier run, whose agents
are gone: so an example runs again and again on one devnet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iotkit import certify, new_key, ok, write_config

from smartchain.client import Client
from smartchain.crypto import keystore
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.market.types import bid_lock

PRICE = 1_000  # base units per reading / per minute
DEPOSIT_BPS = 1_000


@dataclass
class Party:
    config: Path
    account: PrivateKey
    device: PrivateKey


def _serial(prefix: str, device: PrivateKey) -> str:
    return f"{prefix}-{device.public_key.hex()[:12]}"


def cancel_stale_quotes(client: Client, service: str, token: str,
                        parties: tuple[PrivateKey, ...]) -> None:
    """Cancel what these accounts still have on the book of ``service``."""
    book = client.order_book(service, token)
    for order in book["asks"] + book["bids"]:
        for key in parties:
            if order["owner"] == to_bech32(key.address):
                ok(client.cancel_order(key, int(order["id"])))


def _account_file(path: Path, key: PrivateKey) -> str:
    if not path.exists():
        keystore.save(path, key, None, insecure=True)
    return path.name


def _agent(workdir: Path, name: str, client: Client, mqtt_port: int, account: PrivateKey,
           device: PrivateKey, device_public: str, extra: dict[str, Any],
           lists: dict[str, list[dict[str, Any]]], poll: float) -> Path:
    return write_config(workdir / f"{name}.toml", {
        "agent": {"name": name, "node": client.url, "key_file": f"{name}-device.key.json",
                  "account_key_file": _account_file(workdir / f"{name}-account.key.json",
                                                    account),
                  "state_dir": f"{name}-state", "poll_seconds": poll},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "device": {"public_key": device_public, "kind": extra.pop("kind", "reading")},
        **extra}, lists)


def prepare_weather(client: Client, manufacturer: PrivateKey, seller: PrivateKey,
                    buyer: PrivateKey, workdir: Path, mqtt_port: int, readings: int,
                    poll: float = 0.3) -> tuple[Party, Party]:
    station = new_key(workdir / "station-device.key.json")
    buyer_dev = new_key(workdir / "buyer-device.key.json")
    certify(client, manufacturer, seller, station, "WS-100", _serial("ws", station),
            ["weather"])
    certify(client, manufacturer, buyer, buyer_dev, "GW-1", _serial("gw", buyer_dev),
            ["gateway"])
    cancel_stale_quotes(client, "weather.readings", "HPC", (seller, buyer))
    instalment = max(1, readings // 4)
    s = _agent(workdir, "station", client, mqtt_port, seller, station, "self", {
        "limits": {"min_price": PRICE}}, {
        "offer": [{"service": "weather.readings", "unit": "reading", "price": PRICE,
                   "max_quantity": readings, "deposit_bps": DEPOSIT_BPS,
                   "instalment_units": instalment, "deadline_blocks": 100_000}],
        "quote": [{"side": "ask", "service": "weather.readings", "price": PRICE,
                   "quantity": readings}]}, poll)
    b = _agent(workdir, "buyer", client, mqtt_port, buyer, buyer_dev, "", {
        "limits": {"max_price": PRICE, "budget": bid_lock(readings, PRICE, DEPOSIT_BPS)}}, {
        "quote": [{"side": "bid", "service": "weather.readings", "price": PRICE,
                   "quantity": readings, "max_deposit_bps": DEPOSIT_BPS}]}, poll)
    return Party(s, seller, station), Party(b, buyer, buyer_dev)


def prepare_parking(client: Client, manufacturer: PrivateKey, operator: PrivateKey,
                    driver: PrivateKey, workdir: Path, mqtt_port: int, max_minutes: int,
                    poll: float = 0.3) -> tuple[Party, Party]:
    gate = new_key(workdir / "gate-device.key.json")
    car = new_key(workdir / "car-device.key.json")
    certify(client, manufacturer, operator, gate, "GATE-7", _serial("g", gate),
            ["parking.gate"])
    certify(client, manufacturer, driver, car, "CAR-3", _serial("c", car), ["vehicle"])
    try:
        client.token("PARK")
    except Exception:  # not issued yet: the operator issues it and sells the driver some
        ok(client.issue_token(operator, "PARK", "Parking credit", 0, 10**9))
    if client.token_balance("PARK", to_bech32(driver.address)) < 10 * max_minutes * PRICE:
        ok(client.token_transfer(operator, "PARK", to_bech32(driver.address),
                                 10 * max_minutes * PRICE))
    cancel_stale_quotes(client, "parking.minutes", "PARK", (operator, driver))
    g = _agent(workdir, "gate", client, mqtt_port, operator, gate, "self", {
        "kind": "minute", "limits": {"min_price": PRICE}}, {
        "offer": [{"service": "parking.minutes", "unit": "minute", "price": PRICE,
                   "token": "PARK", "max_quantity": max_minutes, "deposit_bps": DEPOSIT_BPS,
                   "instalment_units": 2, "deadline_blocks": 100_000}],
        "quote": [{"side": "ask", "service": "parking.minutes", "price": PRICE,
                   "quantity": max_minutes, "token": "PARK"}]}, poll)
    c = _agent(workdir, "car", client, mqtt_port, driver, car, "self", {
        "kind": "parked",
        "limits": {"max_price": PRICE, "budget": bid_lock(max_minutes, PRICE, DEPOSIT_BPS)}}, {
        "quote": [{"side": "bid", "service": "parking.minutes", "price": PRICE,
                   "quantity": max_minutes, "token": "PARK",
                   "max_deposit_bps": DEPOSIT_BPS}]}, poll)
    return Party(g, operator, gate), Party(c, driver, car)


def _agreement(client: Client, party: Party, service: str,
               is_open: bool) -> dict[str, Any] | None:
    """The party's agreement of ``service`` made by its agent (its key) in this run."""
    key = party.device.public_key.hex()
    for a in client.agreements(to_bech32(party.account.address)):
        if a["service_type"] == service and key in (a["provider_key"], a["consumer_key"]) \
                and (a["status"] == "open") == is_open:
            return a
    return None


def settled(client: Client, party: Party, service: str) -> dict[str, Any] | None:
    """The party's agreement of ``service`` once it is no longer open, else None."""
    return _agreement(client, party, service, False)


def open_agreement(client: Client, party: Party, service: str) -> dict[str, Any] | None:
    return _agreement(client, party, service, True)
