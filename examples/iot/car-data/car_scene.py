"""The car-data scene, step by step: ``car_data.py`` runs it against ``smart devnet up``,
``tests/functional/test_data_car_e2e.py`` against a test network.

Three parties: a manufacturer certifies the car; the car's owner runs the car's agent (it
holds the car's key: it collects the car's signed records over MQTT, batches a week at a
time, stores each batch encrypted on the storage providers and registers it under the
owner's data asset, and delivers keys to buyers under the owner's consent); an insurer
finds the asset, buys February, downloads and verifies every record.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from car_device import DAY_MS, START_MS
from iotkit import AgentProc, Proc, Scenario, certify, new_key, ok, wait_for, write_config

from smartchain.client import ApiError, Client, SimulationFailed
from smartchain.crypto import keystore
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.data.types import asset_id_of
from smartchain.modules.devices.types import sign_certificate
from smartchain.modules.storage.cli import client_p2p
from smartchain.storage import client as sc
from smartchain.storage.datasets import VerifiedBatch, fetch_purchase

SCHEMA = "car.trips"
MODEL = "EV-3"
REGION = "eu-west"
PURPOSE = "insurance"
KINDS = ["mileage", "trip"]
PRICE = 5 * 10**7  # base units of HPC per batch (a week of driving): 0.5 HPC
WEEK_MS = 7 * DAY_MS
FEBRUARY = (START_MS, START_MS + 28 * DAY_MS)  # 2026 has 28 days of it: four weekly batches
K, N = 2, 3  # storage redundancy of each batch: any 2 of 3 columns
CAR_SCRIPT = Path(__file__).resolve().with_name("car_device.py")


@dataclass
class Car:
    config: Path
    owner: PrivateKey
    device: PrivateKey
    asset: bytes
    published: Path  # what the car said, one JSON line per message


def prepare(client: Client, manufacturer: PrivateKey, owner: PrivateKey, workdir: Path,
            mqtt_port: int, *, poll: float = 0.3, wait_seconds: float = 3.0) -> Car:
    """A new certified car of ``owner`` and its agent's config: collect and deliver."""
    device = new_key(workdir / "car-device.key.json")
    serial = f"VIN-{device.public_key.hex()[:12]}"
    certify(client, manufacturer, owner, device, MODEL, serial, [SCHEMA])
    cert = sign_certificate(manufacturer, device.public_key, MODEL, serial, [SCHEMA])
    keystore.save(workdir / "owner-account.key.json", owner, None, insecure=True)
    name = f"car-{device.public_key.hex()[:8]}"  # one asset per car (and per run)
    config = write_config(workdir / "car-agent.toml", {
        "agent": {"name": "car-agent", "node": client.url, "key_file": "car-device.key.json",
                  "account_key_file": "owner-account.key.json", "state_dir": "car-agent-state",
                  "poll_seconds": poll},
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "device": {"public_key": "self"},
        "data": {"collect": True, "deliver": True, "asset": name, "schema": SCHEMA,
                 "region": REGION, "certificate": cert.hex(), "kinds": KINDS,
                 "batch_span_ms": WEEK_MS, "batch_wait_seconds": wait_seconds,
                 "k": K, "n": N}})
    return Car(config, owner, device, asset_id_of(owner.address, name),
               workdir / "car-published.jsonl")


def start_agent(sc: Scenario, car: Car, timeout: float = 30.0) -> AgentProc:
    """The car's agent, started and subscribed (it has reported a first turn): what the car
    publishes from then on reaches it, even while it is busy or restarting."""
    agent = sc.agent("car-agent", car.config).start()
    wait_for(agent.status, timeout, "the car's agent running")
    return agent


def drive(sc: Scenario, car: Car, days: int, period: float = 0.02) -> Proc:
    """The simulated car, started: ``days`` days of driving, then it stops."""
    return sc.device("car", str(car.config.parent / "car-device.key.json"), "--port",
                     str(sc.mqtt_port), "--days", str(days), "--period", str(period),
                     "--out", str(car.published), script=CAR_SCRIPT).start()


def wait_storage_providers(client: Client, timeout: float = 60.0) -> None:
    wait_for(lambda: len(client.storage_providers()) >= N, timeout,
             f"{N} storage providers registered on chain")


def published(car: Car) -> list[dict[str, Any]]:
    try:
        return [json.loads(line) for line in car.published.read_text().splitlines()]
    except FileNotFoundError:
        return []


def stored(client: Client, car: Car, timeout: float) -> dict[str, Any]:
    """The asset once every record the car published is in a registered batch."""
    want = len(published(car))

    def asset() -> dict[str, Any] | None:
        try:
            doc = client.data_asset(car.asset)
        except ApiError as exc:
            if exc.code != "not_found":  # the agent creates it with its first batch
                raise
            return None
        return doc if int(doc["records"]) == want else None

    return wait_for(asset, timeout, f"{want} records stored and registered")


def give_consent(client: Client, owner: PrivateKey, asset: bytes) -> int:
    """Insurers only (by purpose), ``PRICE`` per batch, for the next 100,000 blocks."""
    height = int(client.status()["height"])
    result = ok(client.give_consent(owner, [asset], [PURPOSE], PRICE, height + 100_000))
    return int(next(e for e in result["receipt"]["events"]
                    if e["kind"] == "data_consent")["attributes"]["consent"])


def batches_within(asset: dict[str, Any], start_ms: int, end_ms: int) -> list[int]:
    """The batches whose records all fall in [start_ms, end_ms)."""
    return [b["index"] for b in asset["batch_list"]
            if int(b["start_ms"]) >= start_ms and int(b["end_ms"]) < end_ms]


def buy(client: Client, insurer: PrivateKey, consent: int, asset: bytes,
        batches: list[int]) -> dict[str, Any]:
    """The purchase (simulated first: a refused one raises ``SimulationFailed``, unpaid)."""
    result = ok(client.buy_data(insurer, consent, asset, batches, PURPOSE,
                                PRICE * len(batches)))
    pid = int(next(e for e in result["receipt"]["events"]
                   if e["kind"] == "data_buy")["attributes"]["purchase"])
    return client.data_purchase(pid)


def purchase_in(client: Client, pid: int, *statuses: str) -> dict[str, Any] | None:
    p = client.data_purchase(pid)
    return p if p["status"] in statuses else None


def download_and_verify(client: Client, insurer: PrivateKey, pid: int,
                        out_dir: Path) -> list[VerifiedBatch]:
    """Every batch bought, opened with the delivered keys, downloaded and checked: each
    record's device signature, the device's certificate, the Merkle root."""
    out_dir.mkdir(parents=True, exist_ok=True)
    view = sc.ApiChainView(client, insurer)

    async def run() -> list[VerifiedBatch]:
        async with client_p2p(view.network_id) as p2p:
            return await fetch_purchase(p2p, view, client, insurer, pid, out_dir)

    return asyncio.run(run())


def as_published(batches: list[VerifiedBatch]) -> list[dict[str, Any]]:
    """Verified records in the car's own log form (seq, kind, body)."""
    return [{"seq": r.seq, "kind": r.kind, "body": r.data()}
            for b in batches for r in b.records]


def fees_since(client: Client, address: str, height: int) -> int:
    """Fees ``address`` paid for its transactions at ``height`` or later."""
    txs = client.account_txs(address, limit=100)["txs"]
    return sum(int(t["fee"]) for t in txs
               if t["sender"] == address and int(t["height"]) >= height)


def refused(client: Client, insurer: PrivateKey, consent: int, asset: bytes,
            batches: list[int]) -> str:
    """Why the chain refuses this purchase (it was not sent, nothing paid); raises if the
    purchase went through."""
    try:
        client.buy_data(insurer, consent, asset, batches, PURPOSE, PRICE * len(batches))
    except SimulationFailed as exc:
        return str(exc.simulation["log"])
    raise AssertionError(f"a purchase under consent {consent} was accepted")


def address(key: PrivateKey) -> str:
    return to_bech32(key.address)
