"""What every node replays per compute task: the state machine's CPU for a whole job, in process.

``bench/compute.py`` measures a devnet, where consensus, the workers and a loaded machine
blur the figure. This one builds the blocks of one job on one chain, as the signer and
every follower execute them: a job of N tiny tasks (examples/compute/collatz.wasm), r = 2
on 2 providers; each phase (post, commits, reveals, releases) is one block of batched
answers (150 per transaction, as ``compute_worker`` sends them). Prints the CPU ms per
task of each phase (execute, state tree, commit), the state keys written per task, and
the ratio to a bank transfer's block cost on the same chain (the baseline: a block of N
signed transfers). Node CPU per task, summed over the bench's 3 nodes, is about 3x the
total. Not a test: the machine is noisy, compare within one run.

    python bench/compute_chain.py [--tasks 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from smartchain.app import open_chain
from smartchain.compute.wasm import TaskRunner
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.modules.compute import module as cm
from smartchain.modules.compute.types import (
    CommitResult,
    CommitResults,
    PostJob,
    RegisterProvider,
    ReleaseOutput,
    ReleaseOutputs,
    RevealResult,
    RevealResults,
    commitment,
    output_digest,
)
from smartchain.state.chain import Chain
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisValidator
from smartchain.state.params import Params
from smartchain.types.tx import Transaction

CHAIN = "bench-compute-chain"
GENESIS_MS = 1_700_000_000_000
MODULE = (Path(__file__).resolve().parent.parent / "examples/compute/collatz.wasm").read_bytes()
FUEL = 1_000_000
BATCH = 150
HPC = 10**8


class Net:
    """One chain, blocks built from signed messages; each block's CPU and keys written."""

    def __init__(self, root: Path, keys: list[PrivateKey]) -> None:
        self.proposer = PrivateKey.from_seed(b"\x99" * 32)
        params = Params(compute_min_stake=10 * HPC, max_block_gas=10**12, max_tx_gas=10**10)
        gen = Genesis(CHAIN, GENESIS_MS, params,
                      tuple(GenesisAccount(k.address, 10_000 * HPC) for k in keys),
                      (GenesisValidator(self.proposer.public_key, 1, "v"),))
        self.chain: Chain = open_chain(root, gen)
        self.kinds = {m.payload: kind for kind, m in self.chain.executor.msgs.items()}
        self.nonces: dict[bytes, int] = {}

    def sign(self, key: PrivateKey, msg: Any, gas: int = 10**9) -> bytes:
        nonce = self.nonces.get(key.address, 0)
        self.nonces[key.address] = nonce + 1
        return Transaction.create(key, chain_id=CHAIN, nonce=nonce, kind=self.kinds[type(msg)],
                                  payload=msg.encode(), gas_limit=gas, gas_price=1).encode()

    def block(self, raws: list[bytes]) -> tuple[float, int]:
        """CPU seconds to check, execute and commit ``raws`` as one block; keys written."""
        chain = self.chain
        t = time.process_time()
        checked = [chain.executor.check_stateless(raw, Transaction.decode(raw), h256(raw),
                                                  CHAIN, chain.params) for raw in raws]
        staged = chain.stage_proposal(checked, chain.next_time(GENESIS_MS + 1000 * (
            chain.height + 1)), self.proposer)
        chain.commit(staged)
        cpu = time.process_time() - t
        assert not staged.skipped and all(r.ok for r in staged.receipts), \
            [r.log for r in staged.receipts if not r.ok][:1]
        return cpu, len(staged.writes)

    def read(self, fn: Any, *args: Any) -> Any:
        with self.chain.reader() as reader:
            return fn(reader, *args)


def answers(net: Net, providers: list[PrivateKey], results: dict[Any, Any]) -> list[bytes]:
    """Every answer the providers owe now, batched as a worker sends them."""
    runner = TaskRunner()
    raws = []
    for k in providers:
        owed: dict[str, list[Any]] = {"commit": [], "reveal": [], "release": []}
        for a in net.read(cm.assignments, k.address):
            slot = (k.address, a.job, a.task)
            if a.action == "commit":
                res = runner.run(MODULE, a.input, fuel=a.fuel)
                results[slot] = (res.output, res.error, res.fuel_used)
                owed["commit"].append(CommitResult(a.job, a.task, commitment(
                    *results[slot], k.address, a.salt)))
            elif a.action == "reveal":
                out, err, fuel = results[slot]
                owed["reveal"].append(RevealResult(a.job, a.task, output_digest(out, a.salt),
                                                   err, fuel))
            elif a.action == "release" and k is providers[0]:
                owed["release"].append(ReleaseOutput(a.job, a.task, results[slot][0]))
        for kind, batch in (("commit", CommitResults), ("reveal", RevealResults),
                            ("release", ReleaseOutputs)):
            items = owed[kind]
            raws += [net.sign(k, batch(tuple(items[i:i + BATCH])))
                     for i in range(0, len(items), BATCH)]
    return raws


def one_run(root: Path, tasks: int) -> dict[str, float]:
    requester, *providers = [PrivateKey.from_seed(bytes([60 + i]) * 32) for i in range(3)]
    senders = [PrivateKey.from_seed(i.to_bytes(32, "big")) for i in range(1, 65)]
    net = Net(root, [requester, *providers, *senders])
    out: dict[str, float] = {}
    try:
        net.block([net.sign(p, RegisterProvider(10**12, 100 * HPC)) for p in providers])
        transfers = [net.sign(senders[i % 64], Transfer(senders[(i * 7 + 1) % 64].address, 1),
                              20_000) for i in range(tasks)]
        cpu, _ = net.block(transfers)
        out["baseline: a transfer"] = cpu
        inputs = tuple(struct.pack("<Q", 1 + i) for i in range(tasks))
        cpu, keys = net.block([net.sign(requester, PostJob(MODULE, inputs, FUEL, 1, 200, 2,
                                                           b""))])
        out["post"], out["keys"] = cpu, keys
        results: dict[Any, Any] = {}
        phase = ("commits", "reveals", "releases")
        for name in phase:
            raws = answers(net, providers, results)
            cpu, keys = net.block(raws)
            out[name] = cpu
            out["keys"] += keys
        view = net.read(cm.job_view, 1, False)
        assert view.job.verified == tasks, (view.status, view.job.verified, view.job.failed)
    finally:
        net.chain.close()
    out["task total"] = sum(out[k] for k in ("post", *phase))
    return {k: v / tasks * (1 if k == "keys" else 1000) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = []
    for _ in range(args.runs):
        root = Path(tempfile.mkdtemp(prefix="bench-compute-chain-"))
        try:
            runs.append(one_run(root, args.tasks))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{args.tasks} tasks, r=2, per task (CPU ms; keys written): min / median / max")
    for name in runs[0]:
        vals = sorted(r[name] for r in runs)
        print(f"  {name:22s} {vals[0]:7.3f} {statistics.median(vals):7.3f} {vals[-1]:7.3f}")
    ratios = sorted(r["task total"] / r["baseline: a transfer"] for r in runs)
    three = 3 * statistics.median(r["task total"] for r in runs)
    print(f"a task costs {statistics.median(ratios):.1f} transfers (min {ratios[0]:.1f}, max "
          f"{ratios[-1]:.1f}); x3 nodes = about {three:.2f} ms of the devnet's node CPU per task")


if __name__ == "__main__":
    main()
