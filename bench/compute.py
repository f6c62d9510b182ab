"""Compute tasks/s in-process (the bound) versus through a local devnet, in one run.

(a) bound: N tiny tasks (examples/compute/collatz.wasm, one parameter each) run directly
    with the deterministic wasmtime ``TaskRunner``: tasks/s and CPU ms per task.
(b) devnet: the same N tasks as one job on a devnet of 1 signer and 2 compute provider
    nodes, redundancy 2: assignment, execution on both providers, commit-reveal and
    verification, until the job is done: tasks/s, and the CPU of every node process
    (with its children) per task.

Overhead per task = node CPU per task - r x the task's own CPU (a). Target <= 2 ms.
Not a test: prints figures; the machine is noisy, compare within one run.

    python bench/compute.py [--tasks 1000]
"""

from __future__ import annotations

import argparse
import collections
import os
import socket
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from smartchain import devnet
from smartchain.client import Client
from smartchain.compute.wasm import TaskRunner

MODULE = (Path(__file__).resolve().parent.parent / "examples/compute/collatz.wasm").read_bytes()
FUEL = 1_000_000
TICK = os.sysconf("SC_CLK_TCK")


def bound(inputs: list[bytes]) -> tuple[float, float]:
    runner = TaskRunner()
    runner.run(MODULE, inputs[0], fuel=FUEL)  # compile once, as a worker's cache would
    t, c = time.perf_counter(), time.process_time()
    for data in inputs:
        assert runner.run(MODULE, data, fuel=FUEL).ok
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return len(inputs) / wall, cpu / len(inputs) * 1000


def _cpu_seconds(pids: set[int]) -> float:
    """utime + stime of these processes and of every descendant alive now."""
    parent: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        parent[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICK
    total = 0.0
    for pid, secs in times.items():
        p = pid
        while p > 1:
            if p in pids:
                total += secs
                break
            p = parent.get(p, 0)
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Devnet:
    rate: float  # tasks/s
    cpu_ms: dict[str, float]  # node CPU per task, by node
    idle_ms: dict[str, float]  # the same nodes' CPU while idle, over the job's wall time


def _cpu_by_node(procs: dict[str, int]) -> dict[str, float]:
    return {name: _cpu_seconds({pid}) for name, pid in procs.items()}


def through_devnet(inputs: list[bytes], idle_s: float) -> Devnet:
    home = Path(tempfile.mkdtemp(prefix="bench-compute-"))
    doc = devnet.create(home, validators=1, accounts=1, api_port=_free_port(),
                        block_time_ms=200, compute_providers=2)
    procs = devnet.start(doc)
    try:
        client = Client(doc["nodes"][0]["api_url"], timeout=60)
        key = devnet.demo_accounts(doc)[0].key
        deadline = time.monotonic() + 60
        while len(client.compute_providers()) < 2:
            if time.monotonic() > deadline:
                raise SystemExit("compute providers did not register")
            time.sleep(0.2)
        names = {node["name"]: p.pid for node, p in zip(doc["nodes"], procs, strict=True)}
        # The chain's heartbeat (5 blocks/s, each signed, fsync'd and committed) costs CPU
        # with or without tasks: measured idle first, it is reported apart.
        idle0, i0 = _cpu_by_node(names), time.perf_counter()
        time.sleep(idle_s)
        idle1, idle_wall = _cpu_by_node(names), time.perf_counter() - i0
        cpu0, t0 = _cpu_by_node(names), time.perf_counter()
        posted = client.post_job(key, MODULE, inputs, redundancy=2, fuel_per_task=FUEL,
                                 price_per_fuel=1, deadline_blocks=200)
        job = next(e["attributes"]["job"] for e in posted["receipt"]["events"]
                   if e["kind"] == "compute_job_post")
        while True:  # the job record alone: reading 1,000 tasks per poll is node CPU too
            state = client.compute_job(job, tasks=False)
            if state["status"] != "open":
                break
            time.sleep(0.2)
        wall, cpu1 = time.perf_counter() - t0, _cpu_by_node(names)
        assert state["failed"] == 0 and state["verified"] == len(inputs), state
        replicas = collections.Counter(r["status"] for t in client.compute_job(job)["task_states"]
                                       for r in t["replicas"])
        print(f"    replicas: {dict(replicas)}")
        n = len(inputs)
        return Devnet(n / wall, {k: (cpu1[k] - cpu0[k]) / n * 1000 for k in names},
                      {k: (idle1[k] - idle0[k]) / idle_wall * wall / n * 1000 for k in names})
    finally:
        devnet.stop(doc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--idle", type=float, default=5.0, help="seconds of idle chain measured")
    args = ap.parse_args()
    inputs = [struct.pack("<Q", 1 + i) for i in range(args.tasks)]
    a_rate, a_cpu = bound(inputs)
    b = through_devnet(inputs, args.idle)
    total, idle = sum(b.cpu_ms.values()), sum(b.idle_ms.values())
    overhead = total - 2 * a_cpu
    print(f"(a) in-process wasmtime:   {a_rate:>9,.0f} tasks/s, {a_cpu:.3f} ms CPU per task")
    print(f"(b) devnet, r=2, 2 providers: {b.rate:>6,.0f} tasks/s, {total:.2f} ms node CPU "
          "per task (all node processes)")
    for name, ms in b.cpu_ms.items():
        print(f"    {name}: {ms:.2f} ms per task, of which the idle chain {b.idle_ms[name]:.2f}")
    print(f"overhead per task beyond its own execution: {overhead:.2f} ms, all nodes "
          f"(target <= 2 ms; ratio {overhead / 2:.2f}); {overhead - idle:.2f} ms without the "
          f"idle chain's {idle:.2f} ms (ratio {(overhead - idle) / 2:.2f})")


if __name__ == "__main__":
    main()
