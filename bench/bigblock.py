"""A 20 MB block of transfers (the paper's claim): build, verify and commit on one node.

Its own genesis raises ``max_block_gas`` so one block can carry ~20 MB of signed
``bank/transfer`` transactions. Per run, on fresh chains:

(0) baseline: bare Ed25519 verification of the block's transactions (the node's parallel
    verifier, one worker per core): the floor any node pays for the block;
(1) build, as the proposer: decode and stateless checks of every transaction (admission),
    their signatures (one verifier batch), then execute, stage the state tree and commit
    to LMDB (``Chain.build_block``);
(2) verify, as a second node: decode the block's bytes, decode and check its
    transactions, their signatures, re-execute it (every root compared: ``stage_block``)
    and commit.

Prints the seconds of each step and the ratios to the baseline. Goal: build and verify
each <= 2 s. Not a test: the machine is noisy, compare within one run.

    python bench/bigblock.py [--mb 20] [--accounts 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from smartchain.app import open_chain
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import ParallelVerifier, PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.state.chain import Chain
from smartchain.state.executor import CheckedTx
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisValidator
from smartchain.state.params import Params
from smartchain.types.block import Block
from smartchain.types.tx import TX_SIGN_DOMAIN, Transaction

CHAIN = "bench-bigblock"
GENESIS_MS = 1_700_000_000_000
GOAL_S = 2.0
T = TypeVar("T")


def make_txs(megabytes: int, keys: list[PrivateKey]) -> list[bytes]:
    """Signed transfers until they fill ``megabytes`` (each sender's nonces in order)."""
    raws: list[bytes] = []
    nonces = [0] * len(keys)
    size, i = 0, 0
    while size < megabytes * 1_000_000:
        s, r = i % len(keys), (i * 7919 + 1) % len(keys)
        raw = Transaction.create(keys[s], chain_id=CHAIN, nonce=nonces[s], kind="bank/transfer",
                                 payload=Transfer(keys[r].address, 1 + i % 1000).encode(),
                                 gas_limit=20_000, gas_price=1).encode()
        nonces[s] += 1
        raws.append(raw)
        size += len(raw)
        i += 1
    return raws


def genesis(keys: list[PrivateKey], proposer: PrivateKey) -> Genesis:
    params = Params(max_block_bytes=64 * 1024 * 1024, max_block_gas=10**12)
    return Genesis(CHAIN, GENESIS_MS, params,
                   tuple(GenesisAccount(k.address, 10**12) for k in keys),
                   (GenesisValidator(proposer.public_key, 1, "v"),))


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def check_all(chain: Chain, raws: list[bytes] | tuple[bytes, ...]) -> list[CheckedTx]:
    """What a node does with each transaction before its signature: decode, hash, checks."""
    executor, params = chain.executor, chain.params
    return [executor.check_stateless(raw, Transaction.decode(raw), h256(raw), CHAIN, params)
            for raw in raws]


def verify_all(verifier: ParallelVerifier, checked: list[CheckedTx]) -> None:
    ok = verifier.verify([(c.tx.sender, TX_SIGN_DOMAIN + c.raw[:-64], c.tx.signature)
                          for c in checked])
    assert all(ok), "a transaction's signature did not verify"


def one_run(root: Path, gen: Genesis, proposer: PrivateKey, raws: list[bytes],
            verifier: ParallelVerifier) -> dict[str, float]:
    out: dict[str, float] = {}
    a, b = open_chain(root / "a", gen), open_chain(root / "b", gen)
    try:
        checked = check_all(a, raws)  # the baseline's items, built outside its timing
        _, out["bare verify"] = timed(lambda: verify_all(verifier, checked))
        checked, out["build: check"] = timed(lambda: check_all(a, raws))
        _, out["build: signatures"] = timed(lambda: verify_all(verifier, checked))
        time_ms = a.next_time(GENESIS_MS + 1000)
        (block, receipts, skipped), out["build: execute+commit"] = timed(
            lambda: a.build_block(checked, time_ms, proposer))
        assert not skipped and len(block.txs) == len(raws) and all(r.ok for r in receipts)
        wire = block.encode()
        out["block MB"] = len(wire) / 1e6
        got, out["verify: decode block"] = timed(lambda: Block.decode(wire))
        theirs, out["verify: check"] = timed(lambda: check_all(b, got.txs))
        _, out["verify: signatures"] = timed(lambda: verify_all(verifier, theirs))
        staged, out["verify: execute"] = timed(lambda: b.stage_block(got, theirs))
        _, out["verify: commit"] = timed(lambda: b.commit(staged))
        assert b.state_root == a.state_root
    finally:
        a.close()
        b.close()
    out["build"] = sum(v for k, v in out.items() if k.startswith("build:"))
    out["verify"] = sum(v for k, v in out.items() if k.startswith("verify:"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=20, help="megabytes of transactions")
    ap.add_argument("--accounts", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    keys = [PrivateKey.from_seed(i.to_bytes(32, "big")) for i in range(1, args.accounts + 1)]
    proposer = PrivateKey.from_seed(b"\x99" * 32)
    raws, made = timed(lambda: make_txs(args.mb, keys))
    print(f"{len(raws):,} transfers, {sum(map(len, raws)) / 1e6:.1f} MB, signed in {made:.1f} s")
    gen = genesis(keys, proposer)
    verifier = ParallelVerifier()
    runs = []
    try:
        warm = [PrivateKey.from_seed(bytes(32))] * 2 * verifier.threshold
        verifier.verify([(k.public_key, b"m", k.sign(b"m")) for k in warm])  # spawn workers
        for i in range(args.runs):
            root = Path(tempfile.mkdtemp(prefix="bench-bigblock-"))
            try:
                runs.append(one_run(root, gen, proposer, raws, verifier))
            finally:
                shutil.rmtree(root, ignore_errors=True)
            r = runs[-1]
            print(f"run {i + 1}: build {r['build']:.2f} s ({r['build'] / r['bare verify']:.1f}x "
                  f"bare verify), verify {r['verify']:.2f} s "
                  f"({r['verify'] / r['bare verify']:.1f}x), bare verify {r['bare verify']:.2f} s")
    finally:
        verifier.close()
    print(f"{'step':24s} {'min':>7s} {'median':>7s} {'max':>7s}   (seconds; block "
          f"{runs[0]['block MB']:.1f} MB, {len(raws):,} txs)")
    for name in runs[0]:
        if name == "block MB":
            continue
        vals = [r[name] for r in runs]
        print(f"{name:24s} {min(vals):7.2f} {statistics.median(vals):7.2f} {max(vals):7.2f}")
    for what in ("build", "verify"):
        ratios = sorted(r[what] / r["bare verify"] for r in runs)
        best = min(r[what] for r in runs)
        print(f"{what}: ratio to bare verify min/median/max {ratios[0]:.1f}/"
              f"{statistics.median(ratios):.1f}/{ratios[-1]:.1f}; best {best:.2f} s vs goal "
              f"{GOAL_S:.0f} s ({best / GOAL_S:.1f}x the goal)")


if __name__ == "__main__":
    main()
