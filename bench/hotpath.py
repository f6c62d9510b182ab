"""Serial Python CPU per transfer on the node's main path, compiled vs pure Python, in one run.

Each measurement is a fresh process running, on one thread, what the node does per transfer
besides the signature check (done by worker processes, left out here): decode and stateless
checks (precheck), mempool admission, block building (execute, receipts, state tree, roots)
and commit to LMDB, then the mempool update. CPU time (``time.process_time``), so other
processes on the machine inflate it less than wall time; still noisy: several rounds,
alternating the builds, min/median/max printed. Builds compared:

  compiled  this checkout as installed (mypyc extensions if built; see docs/performance.md)
  pure      this checkout with SMARTCHAIN_PURE=1 (the .py sources)
  other     --compare DIR: another checkout's sources (e.g. main, for before/after)

    python bench/hotpath.py [--txs 20000] [--rounds 3] [--compare /work/main]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAGES = ("precheck", "admit", "build+commit", "after", "total")
N_ACCOUNTS = 5_000


def child(txs_file: str, chain_id: str) -> None:
    """One measurement, in this process: print per-stage microseconds per transfer (JSON).
    Imports only the node (the checkout measured may predate this bench's helpers)."""
    from smartchain.crypto.keys import PrivateKey
    from smartchain.node import node as node_module
    from smartchain.node.config import ConsensusSettings, NodeConfig
    from smartchain.node.home import init_home
    from smartchain.node.node import Node, now_ms

    raws: list[bytes] = pickle.loads(Path(txs_file).read_bytes())
    n = len(raws)
    keys = [PrivateKey.from_seed(i.to_bytes(32, "big")) for i in range(1, N_ACCOUNTS + 1)]
    home = Path(tempfile.mkdtemp(prefix="smart-hotpath-")) / "node"
    validator = PrivateKey.from_seed(b"\xee" * 32)
    init_home(home, chain_id=chain_id, key=validator, passphrase=None, insecure=True,
              accounts=[(k.address, 10**12) for k in keys],
              config=NodeConfig(mempool_max_txs=n + 1,
                                consensus=ConsensusSettings(max_block_txs=n)))
    node = Node(home, validator)
    tune = getattr(node_module, "tune_gc", None)  # as the node process does, where it does
    if tune is not None:
        tune()
    spent = dict.fromkeys(STAGES, 0.0)
    try:
        t = time.process_time()
        results, pending = node._precheck_batch(raws)
        spent["precheck"] = time.process_time() - t
        t = time.process_time()
        node._admit(results, pending, [None] * len(pending))  # signatures: the workers' job
        spent["admit"] = time.process_time() - t
        committed = 0
        while len(node.mempool):
            t = time.process_time()
            staged = node._build(node.candidates(), node.chain.next_time(now_ms()))
            spent["build+commit"] += time.process_time() - t
            t = time.process_time()
            node.after_commit(staged, time.monotonic())
            spent["after"] += time.process_time() - t
            committed += len(staged.block.txs)
        if committed != n:
            raise SystemExit(f"only {committed} of {n} transfers committed")
        spent["total"] = sum(spent[s] for s in STAGES[:-1])
        out = {s: spent[s] / n * 1e6 for s in STAGES}
        print(json.dumps({"compiled": _compiled(), "us": out}))
    finally:
        node.close()
        shutil.rmtree(home.parent, ignore_errors=True)


def _compiled() -> bool:
    try:
        from smartchain import _hotpath
    except ImportError:  # a checkout from before the compiled hot path
        return False
    return _hotpath.compiled()


def measure(txs_file: Path, chain_id: str, src: Path, pure: bool) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(src))
    env.pop("SMARTCHAIN_PURE", None)
    if pure:
        env["SMARTCHAIN_PURE"] = "1"
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child",
                          str(txs_file), chain_id], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"measuring {src} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--txs", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--compare", type=Path, help="another checkout to measure (its sources)")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    sys.path.insert(0, str(HERE))
    from pipeline import CHAIN, make_txs

    print(f"signing {args.txs} transfers among {N_ACCOUNTS} accounts ...")
    _, raws = make_txs(args.txs, N_ACCOUNTS)
    builds: dict[str, tuple[Path, bool]] = {"compiled": (HERE.parent, False),
                                            "pure": (HERE.parent, True)}
    if args.compare:
        builds["other"] = (args.compare.resolve(), False)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in builds}
    with tempfile.TemporaryDirectory() as tmp:
        txs_file = Path(tmp, "txs.pickle")
        txs_file.write_bytes(pickle.dumps(raws))
        for r in range(args.rounds):
            for name, (src, pure) in builds.items():
                res = measure(txs_file, CHAIN, src, pure)
                if name == "compiled" and not res["compiled"]:
                    print("note: the hot path is not compiled here (pure Python twice)")
                runs[name].append(res["us"])  # type: ignore[arg-type]
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{name} {runs[name][-1]['total']:.1f}" for name in builds) + " us/transfer")
    print(f"\nserial CPU per transfer, us (min / median / max of {args.rounds}):")
    print(f"{'stage':14s}" + "".join(f"{name:>24s}" for name in builds))
    for stage in STAGES:
        cells = []
        for name in builds:
            xs = [run[stage] for run in runs[name]]
            cells.append(f"{min(xs):6.2f} /{statistics.median(xs):6.2f} /{max(xs):6.2f}")
        print(f"{stage:14s}" + "".join(f"{c:>24s}" for c in cells))
    med = {name: statistics.median(run["total"] for run in runs[name]) for name in builds}
    for name in builds:
        if name != "compiled":
            print(f"ratio {name}/compiled (median totals): {med[name] / med['compiled']:.2f}")
    print(f"transfers/s one core could sustain at the compiled median: "
          f"{1e6 / med['compiled']:,.0f}")


if __name__ == "__main__":
    main()
