"""A car's data sold to an insurer with its owner's consent, and no more once withdrawn.

    python3 examples/iot/car-data/car_data.py       # against `smart devnet up`

``demo1`` manufactures the car, ``demo2`` owns it, ``demo3`` is the insurer. A local
mosquitto is started for the run, with the car's agent (``smart agent run``: ``[data]``
collect and deliver) and the simulated car (``car_device.py``: 35 days of mileage and trips
from 1 February 2026). Then:

1. the agent batches the car's signed records a week at a time, stores each batch encrypted
   on the devnet's storage providers and registers it under the owner's data asset;
2. the owner consents to sell the asset to insurers (purpose ``insurance``), 0.5 HPC a batch;
3. the insurer finds it (``data_search``), buys February (four weekly batches) into escrow;
4. the owner's agent delivers the keys (sealed to the insurer's keys) on its own;
5. the insurer downloads every batch and verifies every record: the car's signature, the
   car's certificate from its manufacturer, the Merkle root the car signed;
6. after the dispute window the escrow is paid to the owner;
7. the owner withdraws consent: the insurer's next purchase (March) is refused.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import car_scene as scene
from iotkit import Scenario, ok, wait_for

from smartchain.cli import keyring, settings
from smartchain.client import Client
from smartchain.types.amount import format_hpc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default=None)
    ap.add_argument("--days", type=int, default=35, help="days the car drives (>= 29)")
    args = ap.parse_args(argv)
    client = Client(args.node or settings.default_node(), timeout=60)
    workdir = Path(tempfile.mkdtemp(prefix="car-data-"))
    mfr, owner, insurer = (keyring.load(n, None) for n in ("demo1", "demo2", "demo3"))
    scene.wait_storage_providers(client)
    with Scenario(workdir) as sc:
        car = scene.prepare(client, mfr, owner, workdir, sc.mqtt_port)
        scene.start_agent(sc, car)
        drive = scene.drive(sc, car, args.days)
        wait_for(lambda: not drive.running, 60 + args.days, "the car's drive")
        said = scene.published(car)
        print(f"car: {len(said)} signed messages over MQTT ({args.days} days of mileage and "
              "trips)")
        asset = scene.stored(client, car, 120)
        print(f"agent: {asset['batches']} weekly batches stored and registered as asset "
              f"{car.asset.hex()[:16]}... ({asset['records']} records)")

        consent = scene.give_consent(client, owner, car.asset)
        print(f"owner: consent {consent}: insurers ({scene.PURPOSE}) may buy, "
              f"{format_hpc(scene.PRICE)} HPC a batch")
        found = [a["id"] for a in client.data_search(schema=scene.SCHEMA, model=scene.MODEL)]
        assert car.asset.hex() in found
        february = scene.batches_within(asset, *scene.FEBRUARY)
        paid_before = client.balance(scene.address(owner))
        purchase = scene.buy(client, insurer, consent, car.asset, february)
        pid = int(purchase["id"])
        print(f"insurer: found the asset by search; purchase {pid} of February (batches "
              f"{february}): {format_hpc(int(purchase['escrow']))} HPC in escrow")
        wait_for(lambda: scene.purchase_in(client, pid, "delivered", "settled"), 60,
                 "the owner's agent to deliver the keys")
        batches = scene.download_and_verify(client, insurer, pid, workdir / "insurer")
        records = scene.as_published(batches)
        assert records == [r for r in said if scene.FEBRUARY[0] <= r["body"]["t_ms"]
                           < scene.FEBRUARY[1]]
        trips = [r for r in records if r["kind"] == "trip"]
        km = sum(r["body"]["distance_m"] for r in trips) // 1000
        print(f"insurer: keys delivered by the agent; {len(records)} records verified in "
              f"{len(batches)} batches (device signatures, certificate, Merkle roots): "
              f"{len(trips)} trips, {km} km in February")

        window = int(client.genesis()["params"]["data_dispute_blocks"])
        print(f"(the dispute window: {window} blocks before the owner is paid)")
        done = wait_for(lambda: scene.purchase_in(client, pid, "settled"), 60 + 3 * window,
                        "the payout")
        fees = scene.fees_since(client, scene.address(owner), int(purchase["height"]))
        gain = client.balance(scene.address(owner)) - paid_before
        price = scene.PRICE * len(february)
        assert gain == price - fees and done["escrow"] == "0"
        print(f"owner: paid {format_hpc(price)} HPC from escrow (balance +{format_hpc(gain)} "
              f"HPC after {format_hpc(fees)} HPC of fee for the delivery)")

        ok(client.withdraw_consent(owner, consent))
        march = [i for i in range(asset["batches"]) if i not in february]
        why = scene.refused(client, insurer, consent, car.asset, march)
        print(f"owner: consent {consent} withdrawn; insurer's purchase of March refused: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
