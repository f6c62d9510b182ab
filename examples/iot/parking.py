"""Example 2: a car pays a parking gate per minute in the gate operator's ``PARK`` token.

    python3 examples/iot/parking.py            # against `smart devnet up`

The gate and the car are certified devices (owned by ``demo2`` and ``demo3``; ``demo1``
manufactures both), each with its agent. The gate's agent offers ``parking.minutes`` in
PARK; the car's agent bids and is matched; the gate counts minutes, the car witnesses them,
each instalment is countersigned; when the car leaves, the final receipt settles and the
gate opens (its log says ``GATE OPEN``). A "minute" lasts ``--period`` seconds here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from iotkit import Scenario, wait_for
from market_scenes import open_agreement, prepare_parking, settled

from smartchain.client import Client


def main(argv: list[str] | None = None) -> int:
    from smartchain.cli import keyring, settings

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default=None)
    ap.add_argument("--stay", type=int, default=8, help="minutes the car stays")
    ap.add_argument("--period", type=float, default=1.0, help="seconds per minute")
    args = ap.parse_args(argv)
    client = Client(args.node or settings.default_node())
    workdir = Path(tempfile.mkdtemp(prefix="iot-parking-"))
    mfr, operator, driver = (keyring.load(n, None) for n in ("demo1", "demo2", "demo3"))
    with Scenario(workdir) as sc:
        gate, car = prepare_parking(client, mfr, operator, driver, workdir, sc.mqtt_port,
                                    max_minutes=60)
        sc.agent("gate-agent", gate.config).start()
        sc.agent("car-agent", car.config).start()
        port = str(sc.mqtt_port)
        gate_dev = sc.device("gate", "gate", str(workdir / "gate-device.key.json"), "--port",
                             port, "--period", str(args.period), "--agent",
                             gate.device.public_key.hex()).start()
        wait_for(lambda: open_agreement(client, car, "parking.minutes"), 60,
                 "the car matched with the gate")
        sc.device("car", "car", str(workdir / "car-device.key.json"), "--port", port,
                  "--period", str(args.period), "--stay", str(args.stay)).start()
        done = wait_for(lambda: settled(client, car, "parking.minutes"),
                        60 + 3 * args.stay * args.period, "the stay settled")
        wait_for(lambda: "GATE OPEN" in gate_dev.text(), 30, "the gate to open")
        print(json.dumps(done, indent=2))
        print(next(line for line in gate_dev.text().splitlines() if "GATE OPEN" in line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
