"""Examples 1 and 2 end to end (examples/iot): real node processes, a real mosquitto, two
agent processes and simulated devices; in each, one agent is killed mid-agreement and
restarted, and the books show every unit paid once and none lost. And what a stranger on the
broker can send the agents (forged, unregistered, revoked, malformed) is dropped while they
keep trading."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import paho.mqtt.client as paho
from framework.harness import wait_until
from framework.netharness import Network
from paho.mqtt.enums import CallbackAPIVersion

from smartchain.agent.messages import sign_message
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.market.types import sign_receipt

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "iot"))
from iotkit import AgentProc, Scenario, certify, new_key, ok
from market_scenes import PRICE, open_agreement, prepare_parking, prepare_weather, settled

MFR = PrivateKey.from_seed(b"\x71" * 32)
SELLER = PrivateKey.from_seed(b"\x72" * 32)
BUYER = PrivateKey.from_seed(b"\x73" * 32)
FUNDS = 10**13


def _role(agent: AgentProc, role: str) -> dict:
    return (agent.status() or {}).get("roles", {}).get(role, {})


def _clean(agent: AgentProc) -> None:
    """No crash, and no order lost its fee for want of gas (the book moved under it)."""
    log = agent.agent_log()
    assert "Traceback" not in log and "out of gas" not in log, log


def _publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish as a stranger on the broker would (QoS 1, each acknowledged)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="stranger")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def short(key: PrivateKey) -> str:
    return key.public_key.hex()[:16]


def _dropped(agent: AgentProc) -> list[str]:
    """The reasons of the messages the agent dropped, in order."""
    return [line.split(": ", 2)[-1] for line in agent.agent_log().splitlines()
            if "dropped a message on" in line]


def test_a_buyer_pays_a_weather_station_per_instalment_and_resumes_after_a_kill(
        tmp_path: Path) -> None:
    readings = 12
    with Network(tmp_path / "net", n=1, accounts=[(k.address, FUNDS)
                                                  for k in (MFR, SELLER, BUYER)]) as net:
        net.start_all()
        net.wait_all(1)
        client = net.client(0)
        work = tmp_path / "iot"
        with Scenario(work) as sc:
            station, buyer = prepare_weather(client, MFR, SELLER, BUYER, work, sc.mqtt_port,
                                             readings, poll=0.2)
            seller_agent = sc.agent("station-agent", station.config).start()
            buyer_agent = sc.agent("buyer-agent", buyer.config).start()
            agreement = wait_until(lambda: open_agreement(client, buyer, "weather.readings"),
                                   60, what="a match")
            aid = str(agreement["id"])

            def readings_sent(count: int) -> None:  # the station's number goes on across runs
                dev = sc.device("station", "station", str(work / "station-device.key.json"),
                                "--port", str(sc.mqtt_port), "--period", "0.05", "--count",
                                str(count)).start()
                wait_until(lambda: not dev.running, 60, what=f"{count} readings published")

            # half the readings; the buyer's agent is killed once it countersigned a receipt
            readings_sent(readings // 2)
            wait_until(lambda: _role(buyer_agent, "consumer").get("countersigned", 0) >= 1,
                       60, what="a first countersigned receipt")
            buyer_agent.kill()
            signed = json.loads((work / "buyer-state" / "progress.json").read_text())[
                "buying"][aid]["countersigned"]
            assert 1 <= signed <= readings // 2
            assert int(open_agreement(client, buyer, "weather.readings")["counter"]) <= signed

            # the rest is served while it is down; restarted, it resumes from where it was
            readings_sent(readings - readings // 2)
            wait_until(lambda: _role(seller_agent, "provider").get("serving", {}).get(aid, {})
                       .get("delivered") == readings, 60, what="every reading served")
            buyer_agent.start()

            done = wait_until(lambda: settled(client, buyer, "weather.readings"), 120,
                              what="the agreement settled")
            assert done["id"] == agreement["id"]
            assert int(done["counter"]) == readings
            assert int(done["provider_paid"]) == readings * PRICE  # each reading paid once
            counters = [int(r["counter"]) for r in client.agreement_receipts(int(done["id"]))]
            assert counters == sorted(set(counters)) and counters[-1] == readings
            got = [json.loads(line) for line in (work / "buyer-state" / "received" /
                                                 f"{done['id']}.jsonl").read_text().splitlines()]
            assert [g["n"] for g in got] == list(range(1, readings + 1))  # none lost, no dup
            assert all(g["device"] == station.device.public_key.hex() for g in got)
            _clean(seller_agent)
            _clean(buyer_agent)


def test_a_car_pays_a_gate_per_minute_in_park_and_the_gate_opens_on_the_final_receipt(
        tmp_path: Path) -> None:
    stay = 6
    with Network(tmp_path / "net", n=1, accounts=[(k.address, FUNDS)
                                                  for k in (MFR, SELLER, BUYER)]) as net:
        net.start_all()
        net.wait_all(1)
        client = net.client(0)
        work = tmp_path / "iot"
        with Scenario(work) as sc:
            gate, car = prepare_parking(client, MFR, SELLER, BUYER, work, sc.mqtt_port,
                                        max_minutes=60, poll=0.2)
            gate_agent = sc.agent("gate-agent", gate.config).start()
            car_agent = sc.agent("car-agent", car.config).start()
            port = str(sc.mqtt_port)
            gate_dev = sc.device("gate", "gate", str(work / "gate-device.key.json"), "--port",
                                 port, "--period", "0.1", "--agent",
                                 gate.device.public_key.hex()).start()
            wait_until(lambda: open_agreement(client, car, "parking.minutes"), 60,
                       what="the car matched with the gate")
            aid = str(wait_until(lambda: open_agreement(client, car, "parking.minutes"), 60,
                                 what="the car matched with the gate")["id"])
            before = client.token_balance("PARK", to_bech32(SELLER.address))

            def parked(minutes: int, *leave: str) -> None:  # the car's number goes on
                dev = sc.device("car", "car", str(work / "car-device.key.json"), "--port",
                                port, "--period", "0.1", "--stay", str(minutes), *leave).start()
                wait_until(lambda: not dev.running, 60, what=f"{minutes} minutes parked")

            def buying() -> dict:
                return _role(car_agent, "consumer").get("buying", {}).get(aid, {})

            # half the stay; the gate's agent is killed once it has served minutes
            parked(stay // 2, "--no-leave")
            wait_until(lambda: buying().get("witnessed") == stay // 2, 60,
                       what="the car witnessed its minutes")
            wait_until(lambda: _role(gate_agent, "provider").get("units_served", 0) >= 2, 60,
                       what="minutes served")
            gate_agent.kill()
            assert open_agreement(client, car, "parking.minutes")

            # the car stays on and leaves while the gate's agent is down; it comes back
            parked(stay - stay // 2)
            wait_until(lambda: buying().get("end") == stay, 60, what="the car's end")
            gate_agent.start()

            done = wait_until(lambda: settled(client, car, "parking.minutes"), 120,
                              what="the stay settled")
            wait_until(lambda: "GATE OPEN" in gate_dev.text(), 30, what="the gate opened")
            assert int(done["counter"]) == stay  # each minute the car was there, once
            assert int(done["provider_paid"]) == stay * PRICE
            assert client.token_balance("PARK", to_bech32(SELLER.address)) - before \
                == stay * PRICE
            _clean(gate_agent)
            _clean(car_agent)


def test_forged_unregistered_revoked_and_malformed_messages_are_dropped_and_trade_goes_on(
        tmp_path: Path) -> None:
    readings = 6
    with Network(tmp_path / "net", n=1, accounts=[(k.address, FUNDS)
                                                  for k in (MFR, SELLER, BUYER)]) as net:
        net.start_all()
        net.wait_all(1)
        client = net.client(0)
        work = tmp_path / "iot"
        with Scenario(work) as sc:
            station, buyer = prepare_weather(client, MFR, SELLER, BUYER, work, sc.mqtt_port,
                                             readings, poll=0.2)
            recalled = new_key(work / "recalled-device.key.json")
            certify(client, MFR, SELLER, recalled, "WS-100", "ws-0666", ["weather"])
            ok(client.revoke_device(MFR, recalled.public_key))
            stranger = PrivateKey.from_seed(b"\x74" * 32)  # never registered
            seller_agent = sc.agent("station-agent", station.config).start()
            buyer_agent = sc.agent("buyer-agent", buyer.config).start()
            aid = int(wait_until(lambda: open_agreement(client, buyer, "weather.readings"), 60,
                                 what="a match")["id"])
            wait_until(lambda: str(aid) in _role(seller_agent, "provider").get("serving", {})
                       and str(aid) in _role(buyer_agent, "consumer").get("buying", {}), 60,
                       what="both agents serving the agreement")

            reading = {"temperature_c10": 150}
            forged = bytearray(sign_message(station.device, "reading", 1, reading))
            forged[0] ^= 1
            up = f"smart/devices/{station.device.public_key.hex()}/up"
            chain_id = str(client.status()["chain_id"])

            def unit(key: PrivateKey) -> bytes:
                msg = sign_message(key, "reading", 1, reading).hex()
                return json.dumps({"agreement": aid, "n": 1, "msg": msg}).encode()

            def receipt(topic: str, sig_name: str) -> tuple[str, bytes]:
                sig = sign_receipt(stranger, chain_id, aid, readings, True).hex()
                return (f"smart/agreements/{aid}/{topic}", json.dumps(
                    {"agreement": aid, "counter": readings, "final": True,
                     sig_name: sig}).encode())

            _publish(sc.mqtt_port, [
                (up, bytes(forged)),
                (up, sign_message(stranger, "reading", 1, reading)),
                (up, sign_message(recalled, "reading", 1, reading)),
                (f"smart/agreements/{aid}/data", unit(recalled)),
                (f"smart/agreements/{aid}/data", unit(stranger)),
                (f"smart/agreements/{aid}/data", b"not json"),
                receipt("receipt", "provider_sig"),
                receipt("countersign", "consumer_sig")])
            seller_drops = wait_until(lambda: len(_dropped(seller_agent)) >= 4 and
                                      _dropped(seller_agent), 60, what="the station's drops")
            buyer_drops = wait_until(lambda: len(_dropped(buyer_agent)) >= 4 and
                                     _dropped(buyer_agent), 60, what="the buyer's drops")
            assert seller_drops == [
                f"bad signature on a message claiming device {short(station.device)}",
                f"device {short(stranger)} is not registered on chain",
                f"device {short(recalled)} has had its certificate revoked",
                f"agreement {aid}: countersignature does not verify"]
            assert buyer_drops == [
                f"device {short(recalled)} has had its certificate revoked",
                f"device {short(stranger)} is not registered on chain",
                "not JSON",
                f"agreement {aid}: receipt not signed by the provider's agent"]
            assert open_agreement(client, buyer, "weather.readings")["counter"] == "0"

            # the agents are still running and trade the station's real readings
            sc.device("station", "station", str(work / "station-device.key.json"), "--port",
                      str(sc.mqtt_port), "--period", "0.05").start()
            done = wait_until(lambda: settled(client, buyer, "weather.readings"), 120,
                              what="the agreement settled")
            assert (int(done["id"]), int(done["counter"])) == (aid, readings)
            assert int(done["provider_paid"]) == readings * PRICE
            got = [json.loads(line) for line in (work / "buyer-state" / "received" /
                                                 f"{aid}.jsonl").read_text().splitlines()]
            assert [g["n"] for g in got] == list(range(1, readings + 1))
            assert {g["device"] for g in got} == {station.device.public_key.hex()}
            assert seller_agent.running and buyer_agent.running
            _clean(seller_agent)
            _clean(buyer_agent)
