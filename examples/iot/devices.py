"""Simulated IoT devices for the examples: each signs what it says with its device key.

    devices.py station KEY --port P [--period S]          temperature, humidity, pressure
    devices.py gate KEY --agent HEX --port P [--period S]  a parking minute per period; opens
                                                           when its agent says the stay is paid
    devices.py car KEY --port P --stay N [--period S]      parked for N periods, then leaves
                                                           (--no-leave: still parked)

A device publishes on ``PREFIX/devices/KEYHEX/up`` (``smartchain.agent.messages``: signed,
numbered); the gate also listens on ``.../down`` for commands signed by its agent's key.
The message number survives a restart (``KEY.seq``), so the agent never sees one twice.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from smartchain.agent.messages import BadMessage, open_message, sign_message
from smartchain.crypto import keystore
from smartchain.crypto.keys import PrivateKey


class Device:
    def __init__(self, key_path: Path, host: str, port: int, prefix: str) -> None:
        self.key: PrivateKey = keystore.open_doc(json.loads(key_path.read_text()), None)
        self.seq_path = key_path.with_suffix(".seq")
        self.seq = int(self.seq_path.read_text()) if self.seq_path.exists() else 0
        self.topic = f"{prefix}/devices/{self.key.public_key.hex()}"
        self.mqtt = paho.Client(CallbackAPIVersion.VERSION2,
                                client_id=f"device-{self.key.public_key.hex()[:16]}")
        self.mqtt.connect(host, port)
        self.mqtt.loop_start()

    def say(self, kind: str, body: dict[str, object]) -> None:
        self.seq += 1
        self.seq_path.write_text(str(self.seq))
        info = self.mqtt.publish(self.topic + "/up", sign_message(self.key, kind, self.seq, body),
                                 qos=1)
        info.wait_for_publish(10)
        print(f"{kind} #{self.seq} {json.dumps(body)}", flush=True)

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


def station(dev: Device, period: float, count: int) -> None:
    """Readings in integers (tenths of a degree, per mille humidity, pascals)."""
    n = 0
    while count == 0 or n < count:
        n += 1
        dev.say("reading", {"temperature_c10": 150 + int(40 * math.sin(dev.seq / 10)),
                            "humidity_pm": 600 + dev.seq % 50,
                            "pressure_pa": 101_300 + dev.seq % 7})
        time.sleep(period)  # the device's own sampling period


def gate(dev: Device, agent_key: bytes, period: float) -> None:
    opened = threading.Event()

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        try:
            cmd = open_message(bytes(msg.payload))
        except BadMessage as exc:
            print(f"ignored a command: {exc}", flush=True)
            return
        if cmd.device != agent_key:
            print("ignored a command not signed by this gate's agent", flush=True)
            return
        print(f"GATE OPEN: agreement {cmd.data()['agreement']} paid for "
              f"{cmd.data()['counter']} minutes", flush=True)
        opened.set()

    dev.mqtt.on_message = on_message
    dev.mqtt.subscribe(dev.topic + "/down", qos=1)
    while True:
        dev.say("minute", {"minute": dev.seq + 1})
        if opened.wait(period):
            opened.clear()


def car(dev: Device, stay: int, period: float, leave: bool) -> None:
    for _ in range(stay):
        dev.say("parked", {"minute": dev.seq + 1})
        time.sleep(period)
    if leave:
        dev.say("leave", {})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["station", "gate", "car"])
    ap.add_argument("key", type=Path, help="the device's key file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--prefix", default="smart")
    ap.add_argument("--period", type=float, default=1.0, help="seconds between messages")
    ap.add_argument("--count", type=int, default=0, help="station: stop after N (0: never)")
    ap.add_argument("--agent", default="", help="gate: its agent's public key (hex)")
    ap.add_argument("--stay", type=int, default=10, help="car: periods parked")
    ap.add_argument("--no-leave", action="store_true", help="car: stays parked after them")
    args = ap.parse_args(argv)
    dev = Device(args.key, args.host, args.port, args.prefix)
    try:
        if args.kind == "station":
            station(dev, args.period, args.count)
        elif args.kind == "gate":
            gate(dev, bytes.fromhex(args.agent), args.period)
        else:
            car(dev, args.stay, args.period, not args.no_leave)
    except KeyboardInterrupt:
        pass
    finally:
        dev.close()


if __name__ == "__main__":
    sys.exit(main())
