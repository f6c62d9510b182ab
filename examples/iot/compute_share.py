"""Example 3: IoT devices share their idle compute and are paid (Smartshare ch. III §2).

Each device's SmartAgent (``[compute] share = true``) registers the device's key as a compute
provider of the compute module, runs the WebAssembly tasks the chain assigns it, answers
(commit, reveal, release) and is paid for every task its quorum verified. A requester posts
a job (sums of numbers, ``examples/compute/sum_u64.wasm``); the example prints who ran what
and what each device earned.

    python3 examples/iot/compute_share.py          # against `smart devnet up`

Keys: the devnet's demo accounts (``demo1`` requests, ``demo2`` owns the devices and funds
them). On the devnet the compute provider nodes take tasks too: the devices get their share.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from iotkit import Scenario, new_key, ok, wait_for, write_config

from smartchain.client import Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.compute.sdk import posted_job_id
from smartchain.types.amount import UNITS_PER_HPC, format_hpc

MODULE = Path(__file__).resolve().parents[1] / "compute" / "sum_u64.wasm"
STAKE = 50 * UNITS_PER_HPC
FUNDING = 100 * UNITS_PER_HPC  # stake and fees


def prepare(client: Client, owner: PrivateKey, workdir: Path, devices: int,
            poll_seconds: float = 0.3) -> list[Path]:
    """Device keys made and funded by ``owner``; one agent config each."""
    configs = []
    for i in range(devices):
        key = new_key(workdir / f"device{i}.key.json")
        address = to_bech32(key.address)
        if client.balance(address) < FUNDING // 2:
            ok(client.transfer(owner, address, FUNDING))
        configs.append(write_config(workdir / f"device{i}.toml", {
            "agent": {"name": f"compute-device{i}", "node": client.url,
                      "key_file": f"device{i}.key.json", "state_dir": f"device{i}-state",
                      "poll_seconds": poll_seconds},
            # distinct declared speeds, so the chain's placement differs per device
            "compute": {"share": True, "stake": STAKE, "capability": (i + 1) * 10**9},
        }))
    return configs


def post_job(client: Client, requester: PrivateKey, tasks: int) -> int:
    inputs = [b"".join((t * 10 + k).to_bytes(8, "little") for k in range(4))
              for t in range(tasks)]
    result = ok(client.post_job(requester, MODULE.read_bytes(), inputs, redundancy=2,
                                fuel_per_task=1_000_000, price_per_fuel=1,
                                deadline_blocks=100))
    return posted_job_id(result)


def job_done(client: Client, job: int) -> dict[str, Any] | None:
    doc = client.compute_job(job)
    return doc if doc["status"] == "done" else None


def main(argv: list[str] | None = None) -> int:
    from smartchain.cli import keyring, settings

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--node", default=None, help="node API (default: the CLI's)")
    ap.add_argument("--devices", type=int, default=2)
    ap.add_argument("--tasks", type=int, default=6)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    client = Client(args.node or settings.default_node())
    requester, owner = keyring.load("demo1", None), keyring.load("demo2", None)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="iot-compute-"))
    configs = prepare(client, owner, workdir, args.devices)
    with Scenario(workdir, broker=False) as sc:
        agents = [sc.agent(f"device{i}", c).start() for i, c in enumerate(configs)]
        for a in agents:
            wait_for(lambda a=a: (a.status() or {}).get("roles", {}).get("compute", {})
                     .get("registered"), 60, f"{a.name} registered as a compute provider")
        before = {a.name: client.balance(to_bech32(a.config_key().address)) for a in agents}
        job = post_job(client, requester, args.tasks)
        print(f"job {job} posted: {args.tasks} tasks, each run by 2 providers")
        doc = wait_for(lambda: job_done(client, job), 120, f"job {job} done")
        print(f"job {job} done: paid {doc['paid_hpc']} HPC in all")
        for a in agents:
            address = to_bech32(a.config_key().address)
            view = client.compute_provider(address)
            earned = client.balance(address) - before[a.name]
            print(f"  {a.name} ({address}): verified fuel {view['verified_fuel']}, "
                  f"balance change {format_hpc(earned)} HPC (after fees)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
