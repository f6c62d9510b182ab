"""Finalised transfers/s and finality latency of a 4-signer network on this machine.

Starts a devnet of ``--validators`` signer processes on 127.0.0.1, pre-signs transfers
from many funded accounts, submits them through the HTTP API (each sender always to the
same node, so its nonces arrive in order) for ``--seconds``, and watches one node's
blocks to see when each transfer is final. Prints finalised transfers/s, p50/p99
latency from submission to finality, the mean block interval, and, as the ceilings to
compare against, the single-node pipeline rate (bench/pipeline.py) and the load
generator's own rate against a sink that checks nothing, both measured in the same
run. Not a test: these machines are noisy, so compare figures from one run.

    python bench/devnet_tps.py [--validators 4] [--seconds 30] [--rate 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pipeline

from smartchain import devnet
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.node.config import ConsensusSettings, NodeConfig
from smartchain.node.home import init_home
from smartchain.node.node import Node
from smartchain.types.tx import Transaction

BATCH = 250


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def get(url: str) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError:
        return None


def presign(keys: list[PrivateKey], chain_id: str, count: int) -> list[list[bytes]]:
    """Per sender, ``count`` transfers with consecutive nonces."""
    out = []
    for i, key in enumerate(keys):
        to = keys[(i + 1) % len(keys)].address
        out.append([Transaction.create(key, chain_id=chain_id, nonce=n, kind="bank/transfer",
                                       payload=Transfer(to, 1).encode(), gas_limit=20_000,
                                       gas_price=1).encode() for n in range(count)])
    return out


def generator_ceiling(signed: list[list[bytes]], seconds: float = 3.0) -> float:
    """Transfers/s this load generator can post at all: the same batches, the same HTTP
    client, to a sink that answers each without checking anything (the generator's own
    ceiling, so a figure below it is the network's, not the generator's)."""
    from aiohttp import web

    async def sink(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"results": [{"hash": str(i)}
                                              for i in range(len(body["txs"]))]})

    ready = threading.Event()
    loop = asyncio.new_event_loop()
    runner: list[web.AppRunner] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/txs/batch", sink)
        runner.append(web.AppRunner(app, access_log=None))
        loop.run_until_complete(runner[0].setup())
        loop.run_until_complete(web.TCPSite(runner[0], "127.0.0.1", 31999).start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    ready.wait(10)
    posted = 0
    t0 = time.monotonic()
    rows = itertools.cycle(range(len(signed[0])))
    while time.monotonic() - t0 < seconds:
        raws = [per_sender[next(rows) % len(per_sender)] for per_sender in signed]
        for i in range(0, len(raws), BATCH):
            posted += len(post("http://127.0.0.1:31999/v1/txs/batch",
                               {"txs": [x.hex() for x in raws[i:i + BATCH]]})["results"])
    rate = posted / (time.monotonic() - t0)
    asyncio.run_coroutine_threadsafe(runner[0].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    return rate


def pipeline_ceiling(n: int = 20_000) -> float:
    keys, raws = pipeline.make_txs(n, 2_000)
    home = Path(tempfile.mkdtemp(prefix="smart-ceiling-")) / "node"
    validator = PrivateKey.from_seed(b"\xee" * 32)
    init_home(home, chain_id=pipeline.CHAIN, key=validator, passphrase=None, insecure=True,
              accounts=[(k.address, 10**12) for k in keys],
              config=NodeConfig(mempool_max_txs=n + 1,
                                consensus=ConsensusSettings(max_block_txs=n)))
    node = Node(home, validator)
    try:
        node.verifier.warm_up()
        rate, _ = asyncio.run(pipeline.run_pipeline(node, raws, 2_000))
    finally:
        node.close()
        shutil.rmtree(home.parent, ignore_errors=True)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--senders", type=int, default=200)  # x 1M HPC each: under the cap
    ap.add_argument("--rate", type=int, default=3_000, help="offered transfers/s")
    ap.add_argument("--block-time-ms", type=int, default=200)
    args = ap.parse_args()

    print("measuring the single-node pipeline ceiling ...")
    ceiling = pipeline_ceiling()

    home = Path(tempfile.mkdtemp(prefix="smart-tps-")) / "devnet"
    doc = devnet.create(home, validators=args.validators, accounts=args.senders,
                        api_port=31000, block_time_ms=args.block_time_ms)
    keys = [a.key for a in devnet.demo_accounts(doc)]
    per_sender = int(args.rate * args.seconds / len(keys)) + 1
    print(f"pre-signing {per_sender * len(keys):,} transfers from {len(keys)} senders ...")
    signed = presign(keys, doc["chain_id"], per_sender)
    generator = generator_ceiling(signed)
    urls = [n["api_url"] for n in doc["nodes"]]
    devnet.start(doc)
    submitted: dict[str, float] = {}
    final: dict[str, float] = {}
    block_times: list[float] = []
    stop = threading.Event()
    try:
        while int(get(urls[0] + "/v1/status")["height"]) < 2:  # type: ignore[index]
            time.sleep(0.05)  # a cold network spends a round on its first block: not load
        start_height = int(get(urls[0] + "/v1/status")["height"])  # type: ignore[index]

        def watch() -> None:
            h = start_height + 1
            while not stop.is_set():
                block = get(f"{urls[0]}/v1/blocks/{h}")
                if block is None:
                    time.sleep(0.01)
                    continue
                seen = time.monotonic()
                block_times.append(int(block["header"]["time_ms"]))
                for tx_hash in block["txs"]:
                    final[tx_hash] = seen
                h += 1

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        print(f"offering {args.rate:,} transfers/s for {args.seconds:.0f} s to "
              f"{len(urls)} nodes ...")
        t0 = time.monotonic()
        rejected = 0
        round_no = 0
        while time.monotonic() - t0 < args.seconds and round_no < per_sender:
            # one nonce per sender per round: every sender's next tx goes to its node
            for node_i, url in enumerate(urls):
                raws = [signed[s][round_no] for s in range(node_i, len(keys), len(urls))]
                for i in range(0, len(raws), BATCH):
                    chunk = raws[i : i + BATCH]
                    sent_at = time.monotonic()
                    for r in post(url + "/v1/txs/batch", {"txs": [x.hex() for x in chunk]}
                                  )["results"]:
                        if "hash" in r:
                            submitted[r["hash"]] = sent_at
                        else:
                            rejected += 1
            round_no += 1
            # pace to the offered rate
            ahead = round_no * len(keys) / args.rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
        load_s = time.monotonic() - t0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(submitted) <= set(final):
            time.sleep(0.1)
        stop.set()
        watcher.join(timeout=5)
    finally:
        stop.set()
        devnet.stop(doc)
        shutil.rmtree(home.parent, ignore_errors=True)

    done = [h for h in submitted if h in final]
    lat = sorted(final[h] - submitted[h] for h in done)
    span = (max(final[h] for h in done) - t0) if done else float("nan")
    tps = len(done) / span if done else 0.0
    intervals = [b - a for a, b in itertools.pairwise(block_times)]
    print(f"validators                    : {args.validators} (2-core machine, all local)")
    print(f"submitted / finalised         : {len(submitted):,} / {len(done):,} "
          f"({rejected:,} refused at submission, load {load_s:.1f} s)")
    print(f"finalised transfers/s         : {tps:,.0f}  (target >= 5,000)")
    if lat:
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"latency p50 / p99             : {p50 * 1000:,.0f} ms / {p99 * 1000:,.0f} ms  "
              "(target p50 <= 1,000 ms)")
    if intervals:
        print(f"block interval mean           : {statistics.mean(intervals):,.0f} ms "
              f"over {len(block_times)} blocks")
    print(f"single-node pipeline ceiling  : {ceiling:,.0f} transfers/s (same run)")
    print(f"ratio network / ceiling       : {tps / ceiling:.2f}")
    print(f"load generator ceiling        : {generator:,.0f} transfers/s posted to a sink "
          "that checks nothing (same run)")


if __name__ == "__main__":
    main()
