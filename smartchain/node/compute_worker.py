"""The compute worker: a node that offers compute (``[compute] cores``) runs the tasks
the chain assigns it, in the node process, and answers with commit and reveal transactions.

How it works:

- **Identity.** The provider is the node's own key (``Node.key``: the key in
  ``validator_key.json``, which is the consensus key on a signer). That is the simplest
  identity a node has, needs no second key file, and ties the provider's reputation to the
  node. The key's account pays the stake and the fees, so it must be funded (the devnet and
  the tests fund it in genesis).
- **Capability.** At start the worker runs a fixed benchmark module (``BENCH_WAT``, a tight
  integer loop; deterministic fuel) a few times on one pool thread and takes the best
  fuel/s, times ``[compute] cores``. The chain uses it only as a ceiling: its share
  of the tasks grows with the work it has verified and its stake
  (``effective_capability`` in the compute module).
  ``[compute] capability_override`` (config; tests and the devnet) declares a fixed value
  instead, so a network of identical machines can still have providers of different
  declared speeds, deterministically.
- **Registration.** Until the chain shows this address as an active provider with the
  declared capability, the worker sends ``compute/register_provider`` (topping its stake up
  to ``[compute] stake`` HPC), retrying each few blocks (an unfunded account gets one clear
  warning per attempt, no traceback). It declares the node's ``[p2p] host`` as its network
  address (a private or loopback one counts for nothing), so the chain keeps replicas of a
  task off machines in one network.
- **Each new block** it reads ``assignments(address)`` straight from the node's state (it is
  in-process), fetches modules by hash (cached), runs what is new in a pool of
  ``[compute] cores`` threads with a large native stack (wasmtime needs more than 2 MiB
  free), then answers: every commit it owes in one ``commit_results`` transaction, every
  reveal (the output's hash) in one ``reveal_results`` and, once the quorum has paid,
  every output in one ``release_outputs`` (split only by size). One transaction per block instead of
  one per task is what keeps the chain's cost per task low: a signature check, a gossip
  round and a base fee are paid once for the batch. Nonces come from ``Node.pending_nonce``
  (state + own mempool); a transaction the mempool refuses (nonce raced, not synced yet) is
  simply retried at the next block. A batch is all or nothing, so when one was committed but
  failed, its answers are retried one per transaction, and one that fails alone is not
  retried for that assignment.
- **Persistence.** Results are kept in ``HOME/compute_results.json`` (output hex, error,
  fuel per job/task), written atomically before the commit is sent, so a restarted node can
  still reveal what it committed to; entries leave the file when the chain no longer lists
  the assignment. Without the file a result is simply computed again (tasks are
  deterministic), except in cheat mode.
- **Cheat mode** (``[faults] cheat_compute``, tests only, needs ``SMARTCHAIN_TEST_FAULTS=1``):
  every successful output has its first byte flipped, so tests can watch the quorum out-vote
  and slash this provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import wasmtime

from smartchain.compute.wasm import TaskResult, TaskRunner
from smartchain.crypto.address import to_bech32
from smartchain.modules.compute import module as cm
from smartchain.modules.compute import types as ct
from smartchain.node.node import Node
from smartchain.node.service import BlockService
from smartchain.types.amount import UNITS_PER_HPC

log = logging.getLogger("smartchain.compute")

RESULTS_FILE = "compute_results.json"
THREAD_STACK = 16 * 1024 * 1024  # native stack of the task threads (wasmtime wants > 2 MiB)
BATCH_BYTES = 48 * 1024  # payload bytes per batch, under max_tx_bytes with room to spare
BATCH_ITEMS = 150  # answers per batch: 150 reveals' gas stays under max_tx_gas (50M)
REGISTER_GAS = 2_000_000
REGISTER_RETRY_BLOCKS = 5
BENCH_ITERATIONS = 2_000_000  # ~66M fuel: a few ms
BENCH_RUNS = 3
BENCH_FUEL = 100_000_000

# The standard benchmark: n iterations of an integer mix (xorshift-multiply), output the
# final state. Same fuel on every machine; only the time differs.
BENCH_WAT = """
(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "run") (param $ptr i32) (param $len i32) (result i64)
    (local $n i64) (local $x i64)
    (local.set $n (i64.load (local.get $ptr)))
    (local.set $x (i64.const 0x9E3779B97F4A7C15))
    (block $done
      (loop $next
        (br_if $done (i64.eqz (local.get $n)))
        (local.set $x (i64.xor (local.get $x) (i64.shr_u (local.get $x) (i64.const 30))))
        (local.set $x (i64.mul (local.get $x) (i64.const 0xBF58476D1CE4E5B9)))
        (local.set $x (i64.add (local.get $x) (local.get $n)))
        (local.set $n (i64.sub (local.get $n) (i64.const 1)))
        (br $next)))
    (i64.store (i32.const 2048) (local.get $x))
    (i64.const 0x0000080000000008))
)
"""


Key = tuple[int, int, str, int]  # (job, task, action, deadline): one answer owed


@dataclass(frozen=True, slots=True)
class Result:
    output: bytes
    error: str
    fuel_used: int

    def to_json(self) -> dict[str, Any]:
        return {"output": self.output.hex(), "error": self.error, "fuel_used": self.fuel_used}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Result:
        return cls(bytes.fromhex(doc["output"]), str(doc["error"]), int(doc["fuel_used"]))


def bench_module() -> bytes:
    return bytes(wasmtime.wat2wasm(BENCH_WAT))


def measure_capability(runner: TaskRunner, cores: int = 1) -> int:
    """Fuel/s of this machine on the standard benchmark (best of a few runs) × cores."""
    module = bench_module()
    data = BENCH_ITERATIONS.to_bytes(8, "little")
    runner.run(module, data, fuel=BENCH_FUEL)  # compile and warm up
    best = 0
    for _ in range(BENCH_RUNS):
        t0 = time.perf_counter_ns()
        res = runner.run(module, data, fuel=BENCH_FUEL)
        ns = max(1, time.perf_counter_ns() - t0)
        if not res.ok:
            raise RuntimeError(f"benchmark module failed: {res.error}")
        best = max(best, res.fuel_used * 1_000_000_000 // ns)
    return max(1, best * cores)


def cheat(result: Result) -> Result:
    """The test-only wrong answer: the first output byte flipped."""
    if result.error or not result.output:
        return result
    return Result(bytes([result.output[0] ^ 0xFF]) + result.output[1:], "", result.fuel_used)


def _big_stack_pool(threads: int) -> ThreadPoolExecutor:
    """A pool whose threads all exist now, created with a large native stack."""
    pool = ThreadPoolExecutor(threads, thread_name_prefix="compute-task")
    old = threading.stack_size(THREAD_STACK)
    try:
        barrier = threading.Barrier(threads)
        for f in [pool.submit(barrier.wait) for _ in range(threads)]:
            f.result()
    finally:
        threading.stack_size(old)
    return pool


class ComputeWorker(BlockService):
    """See the module docstring. ``start``/``stop`` from the node's event loop."""

    what = "compute"
    log = log

    def __init__(self, node: Node, *, cores: int, stake_hpc: int,
                 capability_override: int = 0, cheat: bool = False) -> None:
        if cores <= 0:
            raise ValueError("cores must be positive")
        super().__init__(node)
        self.cores = cores
        self.stake = stake_hpc * UNITS_PER_HPC
        self.capability_override = capability_override
        self.cheat = cheat
        self.capability = 0
        self.runner = TaskRunner()
        self.pool: ThreadPoolExecutor | None = None
        self.path = node.home / RESULTS_FILE
        self.results: dict[tuple[int, int], Result] = self._load()
        self.modules: dict[bytes, bytes] = {}
        self.running: set[tuple[int, int]] = set()
        self._fresh: list[ct.Assignment] = []  # computed, waiting for one save and answer
        # (job, task, action, deadline) -> hash of the transaction sent for it
        self.sent: dict[Key, bytes] = {}
        self.given_up: set[Key] = set()
        self.solo: set[Key] = set()  # failed inside a batch: retried alone, to find out why
        self.outbox: dict[str, list[tuple[Key, Any]]] = {"commit": [], "reveal": [],
                                                          "release": []}
        self.registered = False
        self._register_at = -1
        self._task: asyncio.Task[None] | None = None
        self.stats = {"computed": 0, "commits": 0, "reveals": 0, "releases": 0}

    # --- persistence ---------------------------------------------------------------------

    def _load(self) -> dict[tuple[int, int], Result]:
        try:
            doc = json.loads(self.path.read_text())
            return {(int(k.split(":")[0]), int(k.split(":")[1])): Result.from_json(v)
                    for k, v in doc.items()}
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            log.warning("compute: ignoring unreadable %s (%s); results will be recomputed",
                        self.path, exc)
            return {}

    def _save(self) -> None:
        doc = {f"{j}:{t}": r.to_json() for (j, t), r in sorted(self.results.items())}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self.pool = _big_stack_pool(self.cores)
        loop = asyncio.get_running_loop()
        if self.capability_override > 0:
            self.capability = self.capability_override
            how = "declared by [compute] capability_override"
        else:
            self.capability = await loop.run_in_executor(self.pool, measure_capability,
                                                         self.runner, self.cores)
            how = f"benchmark, {self.cores} core(s)"
        log.info("compute: providing %d core(s) as %s, capability %d fuel/s (%s)%s",
                 self.cores, to_bech32(self.address), self.capability, how,
                 " [TEST CHEAT MODE: outputs are falsified]" if self.cheat else "")
        self._task = asyncio.create_task(self.run_blocks())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
        log.info("compute: stopped (%d tasks computed, %d commits, %d reveals, %d releases "
                 "sent)", self.stats["computed"], self.stats["commits"], self.stats["reveals"],
                 self.stats["releases"])

    def _module(self, digest: bytes) -> bytes | None:
        module = self.modules.get(digest)
        if module is None:
            module = self.read(cm.get_module, digest)
            if module is not None:
                if len(self.modules) >= 64:
                    self.modules.pop(next(iter(self.modules)))
                self.modules[digest] = module
        return module

    # --- the per-block pass --------------------------------------------------------------

    def on_block(self, height: int) -> None:
        if self.registered and height % REGISTER_RETRY_BLOCKS == 0:
            pv = self.read(cm.provider_view, self.address)
            if pv is None or not pv.provider.active:  # deregistered, or off the roster
                log.warning("compute: no longer an active provider; registering again")
                self.registered = False
        if not self.registered:
            self._ensure_registered(height)
            if not self.registered:
                return
        work = self.read(cm.assignments, self.address)
        live = {(a.job, a.task) for a in work}
        stale = [k for k in self.results if k not in live and k not in self.running]
        if stale:
            for k in stale:
                del self.results[k]
            self._save()
        for a in work:
            self._handle(a)
        self._flush()

    def _ensure_registered(self, height: int) -> None:
        pv = self.read(cm.provider_view, self.address)
        if pv is not None and pv.provider.active and pv.provider.capability == self.capability \
                and pv.provider.stake >= self.stake:
            self.registered = True
            log.info("compute: registered on chain (stake %d, capability %d fuel/s)",
                     pv.provider.stake, pv.provider.capability)
            return
        if self._register_at >= 0 and height < self._register_at + REGISTER_RETRY_BLOCKS:
            return
        self._register_at = height
        have = pv.provider.stake if pv is not None else 0
        msg = ct.RegisterProvider(self.capability, max(0, self.stake - have), bytes(20),
                                  self.node.config.p2p.host)
        if self.send("compute/register_provider", msg, REGISTER_GAS) is not None:
            log.info("compute: registering (capability %d fuel/s, stake %d)", self.capability,
                     msg.stake)

    def _handle(self, a: ct.Assignment) -> None:
        if a.action not in ("commit", "reveal", "release"):
            return
        slot = (a.job, a.task)
        key = (a.job, a.task, a.action, a.deadline)
        if key in self.given_up:
            return
        state = self.tx_state(self.sent.get(key))
        if state == "pending":
            return
        if state == "committed":  # included, yet the chain still asks: it failed
            if key in self.solo:
                log.warning("compute: %s for job %d task %d was included but did not take "
                            "effect; not retrying it", a.action, a.job, a.task)
                self.given_up.add(key)
                return
            self.solo.add(key)  # its batch failed, maybe because of another answer in it
        result = self.results.get(slot)
        if result is None:
            if slot not in self.running:
                self._compute(a)
            return
        if a.action == "commit":
            item: Any = ct.CommitResult(a.job, a.task, ct.commitment(
                result.output, result.error, result.fuel_used, self.address, a.salt))
        elif a.action == "reveal":
            item = ct.RevealResult(a.job, a.task, ct.output_digest(result.output, a.salt),
                                   result.error, result.fuel_used)
        else:
            item = ct.ReleaseOutput(a.job, a.task, result.output)
        self.outbox[a.action].append((key, item))

    def _flush(self) -> None:
        """Send what is owed, a batch per kind (and alone what failed inside a batch)."""
        for action, items in self.outbox.items():
            self.outbox[action] = []
            alone = [[it] for it in items if it[0] in self.solo]
            for batch in alone + _batches([it for it in items if it[0] not in self.solo]):
                self._send_batch(action, batch)

    def _send_batch(self, action: str, batch: list[tuple[Key, Any]]) -> None:
        items = tuple(item for _, item in batch)
        if action == "commit":
            msg: Any = ct.CommitResults(items)
            kind = "commit_results"
        elif action == "reveal":
            msg = ct.RevealResults(items)
            kind = "reveal_results"
        else:
            msg = ct.ReleaseOutputs(items)
            kind = "release_outputs"
        gas = ct.answer_gas_limit(msg, self.node.chain.params.max_tx_gas)
        tx_hash = self.send(f"compute/{kind}", msg, gas)
        if tx_hash is None:
            return
        for key, _ in batch:
            self.sent[key] = tx_hash
        self.stats[action + "s"] += len(items)
        log.info("compute: sent %d %s(s) in one transaction", len(items), action)

    def _compute(self, a: ct.Assignment) -> None:
        module = self._module(a.module_hash)
        if module is None:
            log.warning("compute: module %s of job %d not in state", a.module_hash.hex(), a.job)
            return
        slot = (a.job, a.task)
        self.running.add(slot)
        assert self.pool is not None
        fut = asyncio.get_running_loop().run_in_executor(
            self.pool, self._run_task, module, a.input, a.fuel)
        fut.add_done_callback(lambda f: self._done(a, f))

    def _run_task(self, module: bytes, data: bytes, fuel: int) -> TaskResult:
        return self.runner.run(module, data, fuel=fuel)

    def _done(self, a: ct.Assignment, fut: asyncio.Future[TaskResult]) -> None:
        slot = (a.job, a.task)
        self.running.discard(slot)
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            log.error("compute: job %d task %d could not run: %s", a.job, a.task, exc)
            return
        res = fut.result()
        result = Result(res.output, res.error, res.fuel_used)
        if self.cheat:
            result = cheat(result)
        self.results[slot] = result
        self.stats["computed"] += 1
        log.debug("compute: ran job %d task %d: %s, %d fuel", a.job, a.task,
                  f"error {res.error!r}" if res.error else f"{len(res.output)} bytes",
                  res.fuel_used)
        # Answer at once (no need to wait for the next block), but in one batch per loop
        # turn: saving the results file and reading assignments cost O(results) each.
        self._fresh.append(a)
        if len(self._fresh) == 1:
            asyncio.get_running_loop().call_soon(self._answer_fresh)

    def _answer_fresh(self) -> None:
        fresh, self._fresh = self._fresh, []
        # one line per batch, not per task: a thousand log lines cost a provider more CPU
        # than the thousand tiny tasks they describe
        log.info("compute: ran %d task(s), job %d task %d first", len(fresh), fresh[0].job,
                 fresh[0].task)
        self._save()  # before the commits leave: a restart can still reveal
        for a in fresh:
            self._handle(a)
        self._flush()


def _batches(items: list[tuple[Key, Any]]) -> list[list[tuple[Key, Any]]]:
    """Split answers into transactions of at most ``ct.MAX_BATCH`` items and about
    ``BATCH_BYTES`` of payload (a reveal carries its output, up to 64 KiB)."""
    out: list[list[tuple[Key, Any]]] = []
    size = 0
    for it in items:
        n = len(it[1].encode())
        if not out or len(out[-1]) >= BATCH_ITEMS or size + n > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(it)
        size += n
    return out
