"""Transfers/s through the node's own path versus bare signature checks, in one run.

(a) bare Ed25519 verifications/s of the node's verifier, on the same cores the pipeline
    uses (ed25519-zebra in one worker process per core);
(b) transfers/s through the node: decode, stateless checks, signature, mempool, execute,
    commit to LMDB (one durable write transaction per block), with block building in the
    builder thread overlapping admission, as in a running node.

Prints both, the ratio b/a and the absolute rate. Targets: ratio >= 0.85 and >= 20,000
transfers/s. Not a test: the machine is noisy, so the ratio is what to compare.

    python bench/pipeline.py [--txs 100000] [--accounts 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from smartchain.crypto.keys import ParallelVerifier, PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.node.config import ConsensusSettings, NodeConfig
from smartchain.node.home import init_home
from smartchain.node.node import Node, tune_gc
from smartchain.types.tx import TX_SIGN_DOMAIN, Transaction

CHAIN = "bench-1"


def make_txs(n: int, n_accounts: int) -> tuple[list[PrivateKey], list[bytes]]:
    keys = [PrivateKey.from_seed(i.to_bytes(32, "big")) for i in range(1, n_accounts + 1)]
    raws: list[bytes] = []
    nonces = [0] * n_accounts
    for i in range(n):
        s = i % n_accounts
        r = (i * 7919 + 1) % n_accounts
        tx = Transaction.create(keys[s], chain_id=CHAIN, nonce=nonces[s], kind="bank/transfer",
                                payload=Transfer(keys[r].address, 1 + i % 1000).encode(),
                                gas_limit=20_000, gas_price=1)
        nonces[s] += 1
        raws.append(tx.encode())
    return keys, raws


def bare_verify_rate(raws: list[bytes], verifier: ParallelVerifier) -> float:
    items = [(Transaction.decode(raw).sender, TX_SIGN_DOMAIN + raw[:-64], raw[-64:])
             for raw in raws]
    t = time.perf_counter()
    ok = verifier.verify(items)
    dt = time.perf_counter() - t
    assert all(ok)
    return len(items) / dt


async def run_pipeline(node: Node, raws: list[bytes], batch: int) -> tuple[float, int]:
    total = len(raws)
    start_height = node.chain.height
    committed = 0
    done = asyncio.Event()

    async def producer() -> None:
        nonlocal committed
        while committed < total:
            if len(node.mempool) == 0:
                await asyncio.sleep(0.001)
                continue
            res = await node.produce_block_async()
            committed += res.included
        done.set()

    async def submit(chunk: list[bytes]) -> None:
        bad = [r for r in await node.submit_many_async(chunk) if not isinstance(r, bytes)]
        if bad:
            raise SystemExit(f"bench tx rejected: {bad[0]!r}")

    t = time.perf_counter()
    prod = asyncio.create_task(producer())
    in_flight: list[asyncio.Task[None]] = []
    for i in range(0, total, batch):
        in_flight.append(asyncio.create_task(submit(raws[i : i + batch])))
        if len(in_flight) >= 3:  # keep a few batches verifying while one is admitted
            await in_flight.pop(0)
    for task in in_flight:
        await task
    await done.wait()
    await prod
    dt = time.perf_counter() - t
    return total / dt, node.chain.height - start_height


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--txs", type=int, default=100_000)
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--block-txs", type=int, default=20_000)
    args = ap.parse_args()

    print(f"generating {args.txs} signed transfers among {args.accounts} accounts ...")
    keys, raws = make_txs(args.txs, args.accounts)
    home = Path(tempfile.mkdtemp(prefix="smart-bench-")) / "node"
    validator = PrivateKey.from_seed(b"\xee" * 32)
    init_home(home, chain_id=CHAIN, key=validator, passphrase=None, insecure=True,
              accounts=[(k.address, 10**12) for k in keys],
              config=NodeConfig(mempool_max_txs=args.txs + 1,
                                consensus=ConsensusSettings(max_block_txs=args.block_txs)))
    node = Node(home, validator)
    tune_gc()  # as the node process does (smartchain/daemon.py)
    try:
        cores = os.cpu_count() or 1
        node.verifier.warm_up()
        a = bare_verify_rate(raws, node.verifier)
        b, blocks = asyncio.run(run_pipeline(node, raws, args.batch))
    finally:
        node.close()
        shutil.rmtree(home.parent, ignore_errors=True)
    ratio = b / a
    print(f"cores used                    : {cores} (verifier processes: {node.verifier.workers})")
    print(f"(a) bare verifications/s      : {a:,.0f}")
    print(f"(b) pipeline transfers/s      : {b:,.0f}  ({blocks} blocks committed)")
    print(f"ratio b/a                     : {ratio:.3f}  (target >= 0.85)")
    print(f"absolute                      : {b:,.0f} transfers/s  (target >= 20,000)")


if __name__ == "__main__":
    main()
