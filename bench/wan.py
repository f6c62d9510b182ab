"""Finalised transfers/s and finality of the 4-signer network at 0, 50 and 100 ms one-way
delay between every two signers.

How the delay is made: this kernel refuses ``tc qdisc ... netem`` (no sch_netem), so the
delay is added in user space. Every P2P link goes through a delaying TCP proxy (the
tests' fault proxy, tests/framework/faultproxy.py, ``delay_ms``): node i dials node j
through a proxy port of its own that forwards every chunk ``delay`` ms after reading it,
in order, in both directions, so a round trip costs 2 x delay as on a real WAN (no loss,
no bandwidth limit, no jitter). Peer exchange is off (``[p2p] pex = false``) so that
nodes only dial their seeds, the proxies, and never each other's real addresses.

For each delay: a fresh devnet of ``--validators`` signers on 127.0.0.1, transfers from
many funded senders offered at ``--rate`` per second through the HTTP API for
``--seconds`` (each sender always to the same node, so its nonces arrive in order);
node0's blocks are watched to see when each transfer is final. Prints a table: finalised
transfers/s, p50 / p99 finality (submission to seen in a block of node0), the mean block
interval, and the goal p50 <= 4 x delay + block time. The 0 ms row (proxies, no delay)
is the baseline of the same run. Not a test: the machine is shared and noisy.

    python bench/wan.py [--delays 0,50,100] [--seconds 20] [--rate 200]
                        [--block-time-ms 500]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from devnet_tps import BATCH, get, post, presign
from framework.faultproxy import ProxyNet

from smartchain import devnet
from smartchain.node.config import NodeConfig


@dataclass(frozen=True, slots=True)
class Row:
    delay_ms: int
    submitted: int
    finalised: int
    tps: float
    p50_ms: float
    p99_ms: float
    interval_ms: float


def wire(doc: dict, proxies: ProxyNet, delay_ms: int) -> None:
    """Every node seeds every other through a delaying proxy of its own; no PEX."""
    nodes = doc["nodes"]
    for i, node in enumerate(nodes):
        home = Path(node["home"])
        cfg = NodeConfig.load(home)
        seeds = []
        for j, other in enumerate(nodes):
            if j == i:
                continue
            key, addr = other["p2p_address"].split("@")
            host, port = addr.rsplit(":", 1)
            via = proxies.add(f"{i}->{j}", (host, int(port)), delay_ms=delay_ms)
            seeds.append(f"{key}@127.0.0.1:{via}")
        cfg.p2p.seeds = seeds
        cfg.p2p.transport = replace(cfg.p2p.transport, pex=False)
        cfg.save(home)


def run(delay_ms: int, args: argparse.Namespace, api_port: int) -> Row:
    home = Path(tempfile.mkdtemp(prefix=f"smart-wan-{delay_ms}-")) / "devnet"
    doc = devnet.create(home, validators=args.validators, accounts=args.senders,
                        api_port=api_port, block_time_ms=args.block_time_ms)
    keys = [a.key for a in devnet.demo_accounts(doc)]
    per_sender = int(args.rate * args.seconds / len(keys)) + 1
    signed = presign(keys, doc["chain_id"], per_sender)
    urls = [n["api_url"] for n in doc["nodes"]]
    submitted: dict[str, float] = {}
    final: dict[str, float] = {}
    block_times: list[int] = []
    stop = threading.Event()
    with ProxyNet() as proxies:
        wire(doc, proxies, delay_ms)
        devnet.start(doc, timeout=60)
        try:
            while (get(urls[0] + "/v1/status") or {}).get("height", 0) < 3:
                time.sleep(0.05)  # the first rounds of a cold network are not the load's
            start_height = get(urls[0] + "/v1/status")["height"]  # type: ignore[index]

            def watch() -> None:
                h = start_height + 1
                while not stop.is_set():
                    block = get(f"{urls[0]}/v1/blocks/{h}")
                    if block is None:
                        time.sleep(0.005)
                        continue
                    seen = time.monotonic()
                    block_times.append(block["header"]["time_ms"])
                    for tx_hash in block["txs"]:
                        final[tx_hash] = seen
                    h += 1

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            t0 = time.monotonic()
            for round_no in range(per_sender):
                if time.monotonic() - t0 >= args.seconds:
                    break
                for node_i, url in enumerate(urls):
                    raws = [signed[s][round_no] for s in range(node_i, len(keys), len(urls))]
                    for i in range(0, len(raws), BATCH):
                        sent_at = time.monotonic()
                        body = {"txs": [x.hex() for x in raws[i:i + BATCH]]}
                        for r in post(url + "/v1/txs/batch", body)["results"]:
                            if "hash" in r:
                                submitted[r["hash"]] = sent_at
                ahead = (round_no + 1) * len(keys) / args.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not set(submitted) <= set(final):
                time.sleep(0.1)
        finally:
            stop.set()
            devnet.stop(doc)
            shutil.rmtree(home.parent, ignore_errors=True)
    done = [h for h in submitted if h in final]
    lat = sorted(final[h] - submitted[h] for h in done)
    span = max(final[h] for h in done) - t0 if done else float("nan")
    intervals = [b - a for a, b in itertools.pairwise(block_times)]
    return Row(delay_ms, len(submitted), len(done), len(done) / span if done else 0.0,
               1000 * statistics.median(lat) if lat else float("nan"),
               1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
               statistics.mean(intervals) if intervals else float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--delays", default="0,50,100", help="one-way delays in ms")
    ap.add_argument("--validators", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--senders", type=int, default=100)
    ap.add_argument("--rate", type=int, default=200, help="offered transfers/s")
    ap.add_argument("--block-time-ms", type=int, default=500)
    args = ap.parse_args()
    rows = []
    for n, delay in enumerate(int(d) for d in args.delays.split(",")):
        print(f"{delay} ms one-way: {args.validators} signers, {args.rate} transfers/s "
              f"offered for {args.seconds:.0f} s ...", flush=True)
        rows.append(run(delay, args, 32000 + 100 * n))
    bt = args.block_time_ms
    print(f"\n{args.validators} signers on one machine, block time {bt} ms, delay by "
          "user-space proxies (no netem)")
    print(f"{'one-way':>8} {'finalised':>12} {'tx/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'interval':>9} {'goal p50':>9}  met")
    for r in rows:
        goal = 4 * r.delay_ms + bt
        print(f"{r.delay_ms:>6} ms {r.finalised:>5}/{r.submitted:<6} {r.tps:>7.0f} "
              f"{r.p50_ms:>8.0f} {r.p99_ms:>8.0f} {r.interval_ms:>7.0f}ms {goal:>7} ms  "
              f"{'yes' if r.p50_ms <= goal else 'NO'}")


if __name__ == "__main__":
    main()
