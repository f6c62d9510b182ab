"""Examples 1 and 2 end to end (examples/iot): real node processes, a real mosquitto, two
agent processes and simulated devices; in each, one agent is killed mid-agreement and
restarted, and the books show every unit paid once and none lost."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from framework.harness import wait_until
from framework.netharness import Network

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "iot"))
from iotkit import AgentProc, Scenario
from market_scenes import PRICE, open_agreement, prepare_parking, prepare_weather, settled

MFR = PrivateKey.from_seed(b"\x71" * 32)
SELLER = PrivateKey.from_seed(b"\x72" * 32)
BUYER = PrivateKey.from_seed(b"\x73" * 32)
FUNDS = 10**13


def _role(agent: AgentProc, role: str) -> dict:
    return (agent.status() or {}).get("roles", {}).get(role, {})


def _clean(agent: AgentProc) -> None:
    assert "Traceback" not in agent.agent_log(), agent.agent_log()


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
            agreement = wait_until(lambda: open_agreement(client, BUYER, "weather.readings"),
                                   60, what="a match")
            sc.device("station", "station", str(work / "station-device.key.json"), "--port",
                      str(sc.mqtt_port), "--period", "0.05").start()

            # the buyer's agent is killed once it has countersigned an instalment
            wait_until(lambda: _role(buyer_agent, "consumer").get("countersigned", 0) >= 1,
                       60, what="a first countersigned receipt")
            buyer_agent.kill()
            buyer_agent.start()

            done = wait_until(lambda: settled(client, BUYER, "weather.readings"), 120,
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
            wait_until(lambda: open_agreement(client, BUYER, "parking.minutes"), 60,
                       what="the car matched with the gate")
            before = client.token_balance("PARK", to_bech32(SELLER.address))
            sc.device("car", "car", str(work / "car-device.key.json"), "--port", port,
                      "--period", "0.1", "--stay", str(stay)).start()

            # the gate's agent is killed once it has served minutes, then restarted
            wait_until(lambda: _role(gate_agent, "provider").get("units_served", 0) >= 2, 60,
                       what="minutes served")
            gate_agent.kill()
            gate_agent.start()

            done = wait_until(lambda: settled(client, BUYER, "parking.minutes"), 120,
                              what="the stay settled")
            wait_until(lambda: "GATE OPEN" in gate_dev.text(), 30, what="the gate opened")
            minutes = int(done["counter"])
            assert 1 <= minutes <= stay
            assert int(done["provider_paid"]) == minutes * PRICE
            assert client.token_balance("PARK", to_bech32(SELLER.address)) - before \
                == minutes * PRICE
            _clean(gate_agent)
            _clean(car_agent)
