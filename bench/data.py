"""Buying a data set: purchase transaction -> verified plaintext, against the owner's own get.

Through a local devnet (1 signer, storage provider nodes; real processes, pieces over P2P):
an owner's certified car stores one batch of device-signed records (``--mib`` of them) and
consents to sell it; then, timed:

(a) baseline: the owner's ``get`` of the batch file (``smart store get``);
(b) purchase: the buyer's ``data/buy`` sent and committed, the owner's agent delivering the
    sealed key on the ``data_buy`` event (``deliver_waiting``, in its own thread as it would
    be its own process), the buyer opening it, and the same file downloaded (from the moment
    the buy is sent: ``buy_and_fetch``) with every record's signature, the certificate and
    the Merkle root verified.

Goal: (b) <= 1.2 x (a). Not a test: prints figures; compare within one run. ``--rounds``
alternates (a) and (b) on fresh purchases of the same file. Two committed transactions
(buy, then delivery) cost about 1.5 block times whatever the file's size: ``--block-ms``
shows how the ratio moves with the block time (the devnet's default is 1000).

    python bench/data.py [--mib 64] [--record-bytes 4096] [--providers 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from smartchain import devnet
from smartchain.agent.messages import sign_message
from smartchain.client import Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.data.types import BatchHeader, asset_id_of, records_root, sign_batch
from smartchain.modules.devices.types import sign_certificate
from smartchain.sdkfiles import client_p2p
from smartchain.storage import client as sc
from smartchain.storage.datasets import buy_and_fetch, deliver_waiting, publish_batch

HPC = 10**8


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def records(device: PrivateKey, mib: int, record_bytes: int) -> list[bytes]:
    pad = "x" * (record_bytes - 200)
    count = mib * 1024 * 1024 // record_bytes
    return [sign_message(device, "trip", i, {"trip": i, "km": i % 97, "gps": pad})
            for i in range(count)]


def _ok(result: dict) -> dict:
    if not result["receipt"]["ok"]:
        raise SystemExit(result["receipt"]["log"])
    return result


async def agent(client: Client, owner: PrivateKey, from_height: int, sales: int) -> None:
    """The owner's agent: delivers keys as each purchase is committed (``data_buy``)."""
    address = to_bech32(owner.address)
    events = client.subscribe("events", kind="data_buy", where={"owner": address},
                              from_height=from_height)
    delivered = 0
    async with contextlib.aclosing(events):
        async for _ in events:
            delivered += len(await asyncio.to_thread(deliver_waiting, client, owner, address))
            if delivered >= sales:
                return


async def run(client: Client, owner: PrivateKey, buyer: PrivateKey, car: PrivateKey,
              recs: list[bytes], k: int, n: int, home: Path, rounds: int
              ) -> list[tuple[float, float]]:
    """(owner's get, purchase to verified data) per round, alternating."""
    chain_id = client.status()["chain_id"]
    _ok(client.register_manufacturer(owner, "Motors", 1_000 * HPC))
    cert = sign_certificate(owner, car.public_key, "EV-1", "VIN-1", ("car.trips",))
    _ok(client.register_own_device(owner, car, chain_id, to_bech32(owner.address), "EV-1",
                                   "VIN-1", ("car.trips",), cert))
    _ok(client.create_data_asset(owner, "car", "car.trips", "eu-west", [car.public_key],
                                 10 * HPC))
    asset = asset_id_of(owner.address, "car")
    header = BatchHeader(car.public_key, "car.trips", 0, len(recs), len(recs),
                         records_root(recs))
    view = sc.ApiChainView(client, owner)
    buyer_view = sc.ApiChainView(client, buyer)
    out = []
    async with client_p2p(view.network_id) as p2p:
        file_id = await publish_batch(p2p, view, client, owner, asset, header,
                                      sign_batch(car, header), cert, recs, k=k, n=n)
        height = int(client.status()["height"])
        consent = _ok(client.give_consent(owner, [asset], ["insurance"], HPC, height + 10_000))
        cid = int(next(e for e in consent["receipt"]["events"]
                       if e["kind"] == "data_consent")["attributes"]["consent"])
        delivering = asyncio.ensure_future(agent(client, owner, height, rounds))
        for r in range(rounds):
            t = time.perf_counter()
            await sc.get(p2p, view, owner, file_id, home / f"owner-{r}.bin")
            baseline = time.perf_counter() - t
            dest = home / f"bought-{r}"
            dest.mkdir()
            t = time.perf_counter()
            _pid, batches = await buy_and_fetch(p2p, buyer_view, client, buyer, cid, asset,
                                                [0], "insurance", HPC, dest)
            purchase = time.perf_counter() - t
            assert len(batches[0].records) == len(recs)
            out.append((baseline, purchase))
        await delivering
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--record-bytes", type=int, default=4096)
    ap.add_argument("--providers", type=int, default=4)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--block-ms", type=int, default=1000)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-data-"))
    doc = devnet.create(home, validators=1, accounts=2, api_port=_free_port(),
                        storage_providers=args.providers, block_time_ms=args.block_ms)
    devnet.start(doc)
    try:
        client = Client(doc["nodes"][0]["api_url"], timeout=60)
        owner, buyer = (a.key for a in devnet.demo_accounts(doc)[:2])
        deadline = time.monotonic() + 60
        while len(client.storage_providers()) < args.providers:
            if time.monotonic() > deadline:
                raise SystemExit("storage providers did not register")
            time.sleep(0.2)
        car = PrivateKey.generate()
        recs = records(car, args.mib, args.record_bytes)
        size = sum(len(r) for r in recs)
        rounds = asyncio.run(run(client, owner, buyer, car, recs, args.k, args.n, home,
                                 args.rounds))
    finally:
        devnet.stop(doc)
    print(f"data set: {len(recs)} device-signed records, {size / 2**20:.1f} MiB, "
          f"{args.k}-of-{args.n} on {args.providers} providers, {args.block_ms} ms blocks")
    for i, (baseline, purchase) in enumerate(rounds):
        print(f"round {i}: (a) owner's get {baseline:6.2f} s   (b) purchase tx -> key "
              f"delivered -> verified data {purchase:6.2f} s   ratio {purchase / baseline:.2f}")
    ratios = sorted(p / b for b, p in rounds)
    print(f"ratio (b)/(a): min {ratios[0]:.2f}  median {statistics.median(ratios):.2f}  "
          f"max {ratios[-1]:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
