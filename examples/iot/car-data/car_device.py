"""A simulated car: a month and more of driving, told to its agent over MQTT.

    car_device.py KEY --port P [--days 35] [--period 0.02] [--out published.jsonl]

Each simulated day from ``START_MS`` (1 February 2026, 00:00 UTC) the car publishes its
``mileage`` (the odometer at midnight) and then its ``trip``s of the day (one to three:
distance, duration, top speed, whether at night), each a message signed by its device key
on ``PREFIX/devices/KEYHEX/up`` (``smartchain.agent.messages``), ``--period`` seconds apart
in real time. The simulated times are in each body's ``t_ms``. What it publishes is also
written to ``--out`` (one JSON line per message: seq, kind, body), so a run can compare what
a buyer verified with what the car said. The trips follow from the key: the same car drives
the same month.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from devices import Device

START_MS = 1_769_904_000_000  # 2026-02-01T00:00:00Z
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def driving(seed: bytes, days: int) -> list[tuple[str, dict[str, object]]]:
    """The car's messages for ``days`` days: (kind, body), in time order."""
    rng = random.Random(seed)
    odometer_m = 42_000_000 + rng.randrange(1_000_000)
    out: list[tuple[str, dict[str, object]]] = []
    for day in range(days):
        midnight = START_MS + day * DAY_MS
        out.append(("mileage", {"t_ms": midnight, "odometer_km": odometer_m // 1000}))
        hour = 6
        for _ in range(rng.randint(1, 3)):
            hour = min(21, hour + rng.randint(1, 6))  # home before midnight
            duration_s = rng.randint(5 * 60, 90 * 60)
            distance_m = duration_s * rng.randint(6, 25)  # 22 to 90 km/h on average
            odometer_m += distance_m
            out.append(("trip", {"t_ms": midnight + hour * HOUR_MS + duration_s * 1000,
                                 "distance_m": distance_m, "duration_s": duration_s,
                                 "max_speed_kmh": rng.randint(50, 150),
                                 "night": hour >= 21}))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("key", type=Path, help="the car's device key file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--prefix", default="smart")
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--period", type=float, default=0.02, help="seconds between messages")
    ap.add_argument("--out", type=Path, default=None, help="log of what was published")
    args = ap.parse_args(argv)
    dev = Device(args.key, args.host, args.port, args.prefix)
    try:
        for kind, body in driving(dev.key.public_key, args.days):
            dev.say(kind, body)
            if args.out is not None:
                with open(args.out, "a") as f:
                    f.write(json.dumps({"seq": dev.seq, "kind": kind, "body": body}) + "\n")
            time.sleep(args.period)
    finally:
        dev.close()


if __name__ == "__main__":
    main()
