"""The car-data example end to end (examples/iot/car-data): a real node, three storage
provider nodes, a real mosquitto, the car's agent (``smart agent run``) and the simulated car
as processes. The car publishes five weeks of mileage and trips over MQTT; its owner's
agent batches, stores and registers them (killed mid-drive and restarted: no record lost or
stored twice); the owner consents to sell to insurers; the
insurer buys February, the agent delivers the keys on its own, the insurer verifies every
record and the owner is paid what the insurer put in escrow; after the owner withdraws its
consent the next purchase is refused and nothing moves. A forged record a stranger slips
onto the car's topic is dropped and logged, never batched."""

from __future__ import annotations

import sys
from pathlib import Path

import paho.mqtt.client as paho
from framework.harness import wait_until
from paho.mqtt.enums import CallbackAPIVersion
from test_storage_provider import STORAGE_TEST_PARAMS, start_storage_network

from smartchain.agent.messages import sign_message
from smartchain.client import ApiError, Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.data.types import MODULE_ACCOUNT
from smartchain.types.amount import UNITS_PER_HPC

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "iot" / "car-data"))
import car_scene as scene
from car_device import START_MS
from iotkit import Scenario, ok

MiB = 1024 * 1024
MFR, OWNER, INSURER = (PrivateKey.from_seed(bytes([i]) * 32) for i in (0x91, 0x92, 0x93))
FUNDS = 100_000 * UNITS_PER_HPC
DAYS = 35  # February (four weekly batches) and the first week of March
DISPUTE_BLOCKS = 5


def _publish(port: int, topic: str, payload: bytes) -> None:
    """Publish as a stranger on the broker would (QoS 1, acknowledged)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="stranger")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _registered(client: Client, car: scene.Car) -> int:
    try:
        return int(client.data_asset(car.asset)["batches"])
    except ApiError:
        return 0


def _balances() -> list[str]:
    return [scene.address(k) for k in (OWNER, INSURER)] + [to_bech32(MODULE_ACCOUNT)]


def test_an_insurer_buys_a_month_of_verified_trips_and_nothing_once_consent_is_withdrawn(
        tmp_path: Path) -> None:
    net, _ = start_storage_network(
        tmp_path / "net", 1, [64 * MiB] * scene.N,
        accounts=[(k.address, FUNDS) for k in (MFR, OWNER, INSURER)],
        params={**STORAGE_TEST_PARAMS, "data_dispute_blocks": DISPUTE_BLOCKS})
    try:
        client = net.client(0, timeout=60)
        work = tmp_path / "car"
        with Scenario(work) as sc:
            car = scene.prepare(client, MFR, OWNER, work, sc.mqtt_port, poll=0.2,
                                wait_seconds=2.0)
            agent = scene.start_agent(sc, car)
            forged = bytearray(sign_message(car.device, "trip", 1,
                                            {"t_ms": START_MS, "distance_m": 999_000}))
            forged[7] ^= 1  # a signature byte: not the car's signature any more
            _publish(sc.mqtt_port, f"smart/devices/{car.device.public_key.hex()}/up",
                     bytes(forged))

            drive = scene.drive(sc, car, DAYS, period=0.05)
            wait_until(lambda: _registered(client, car) >= 1, 60, what="a first week stored")
            agent.kill()  # mid-drive: what the car says meanwhile waits in the broker
            wait_until(lambda: not drive.running, 60, what="the car's five weeks")
            agent = scene.start_agent(sc, car)
            said = scene.published(car)
            asset = scene.stored(client, car, 90)
            assert asset["batches"] == 5  # four weeks of February, then March's first
            february = scene.batches_within(asset, *scene.FEBRUARY)
            assert february == [0, 1, 2, 3]

            consent = scene.give_consent(client, OWNER, car.asset)
            assert car.asset.hex() in [a["id"] for a in client.data_search(
                schema=scene.SCHEMA, model=scene.MODEL)]
            before = {a: client.balance(a) for a in _balances()}
            purchase = scene.buy(client, INSURER, consent, car.asset, february)
            pid, price = int(purchase["id"]), scene.PRICE * len(february)
            assert int(purchase["escrow"]) == price

            wait_until(lambda: scene.purchase_in(client, pid, "delivered", "settled"), 30,
                       what="the owner's agent delivering the keys")
            batches = scene.download_and_verify(client, INSURER, pid, work / "insurer")
            assert scene.as_published(batches) == [
                r for r in said if scene.FEBRUARY[0] <= r["body"]["t_ms"] < scene.FEBRUARY[1]]

            done = wait_until(lambda: scene.purchase_in(client, pid, "settled"), 30,
                              what="the payout after the dispute window")
            assert done["escrow"] == "0"
            owner, insurer, module = _balances()
            assert client.balance(module) == before[module]  # the escrow went out in full
            height = int(purchase["height"])
            assert client.balance(owner) - before[owner] \
                == price - scene.fees_since(client, owner, height)
            assert before[insurer] - client.balance(insurer) \
                == price + scene.fees_since(client, insurer, height)

            ok(client.withdraw_consent(OWNER, consent))
            before = {a: client.balance(a) for a in _balances()}
            why = scene.refused(client, INSURER, consent, car.asset, [4])
            assert f"consent {consent} was withdrawn" in why and "no new sale" in why
            assert {a: client.balance(a) for a in _balances()} == before  # nothing paid
            assert [p["id"] for p in client.data_purchases_of(insurer)] == [str(pid)]

            log = agent.agent_log()
            assert "Traceback" not in log, log
            assert f"dropped a message on smart/devices/{car.device.public_key.hex()}/up: " \
                   "bad signature" in log
    finally:
        net.close()
