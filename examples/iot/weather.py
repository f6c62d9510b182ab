"""Example 1: a weather station sells its readings, one HPC instalment at a time.

    python3 examples/iot/weather.py            # against `smart devnet up`

The station (a certified device owned by ``demo2``) publishes signed readings on MQTT every
``--period`` seconds; its agent offers ``weather.readings`` and asks; the buyer's agent
(``demo3``) bids within its budget, is matched on chain, receives the readings, countersigns
each instalment's receipt, and the station's agent settles them. ``demo1`` is the
manufacturer. A local mosquitto is started for the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from iotkit import Scenario, wait_for
from market_scenes import prepare_weather, settled

from smartchain.client import Client


def main(argv: list[str] | None = None) -> int:
    from smartchain.cli import keyring, settings

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default=None)
    ap.add_argument("--readings", type=int, default=12)
    ap.add_argument("--period", type=float, default=1.0)
    args = ap.parse_args(argv)
    client = Client(args.node or settings.default_node())
    workdir = Path(tempfile.mkdtemp(prefix="iot-weather-"))
    mfr, seller, buyer = (keyring.load(n, None) for n in ("demo1", "demo2", "demo3"))
    with Scenario(workdir) as sc:
        station, buyer_p = prepare_weather(client, mfr, seller, buyer, workdir, sc.mqtt_port,
                                           args.readings)
        sc.agent("station-agent", station.config).start()
        sc.agent("buyer-agent", buyer_p.config).start()
        sc.device("station", "station", str(workdir / "station-device.key.json"),
                  "--port", str(sc.mqtt_port), "--period", str(args.period)).start()
        done = wait_for(lambda: settled(client, buyer_p, "weather.readings"),
                        60 + 3 * args.readings * args.period, "the agreement settled")
        print(json.dumps(done, indent=2))
        print(f"readings received: {workdir}/buyer-state/received/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
