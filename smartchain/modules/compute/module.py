"""Compute jobs on chain: providers, jobs sliced into tasks, assignment, commit-reveal,
verification by quorum, payment from escrow (Smart Chain 3.2.1, 5.2; BOINC, iExec).

Why it is shaped this way:

- **Money stays in the bank.** Provider stakes and job escrows are HPC moved into one module
  account (``MODULE_ACCOUNT``), so the bank's supply check holds untouched: the module
  account's balance is the sum of live stakes and job escrows. Slashed stake is not burned
  (only emission changes supply): it moves into the job's escrow, pays for the extra
  replicas the disagreement caused, and what is left returns to the requester with the
  rest of the unused escrow when the job ends.
- **The chain decides who runs what, by what it verified.** Assignment is nginx's smooth
  weighted round-robin (``swrr_pick``, a function over plain ``Slot`` data) over active
  providers. A provider may only take a replica if its declared capability (fuel/s) still
  covers every replica it holds by their deadlines (each reserves ``fuel_per_task /
  deadline`` fuel/s): nobody gets a task it cannot finish in time. Its weight is never
  what it declared: ``compute_probation_weight`` plus the fuel a quorum verified for it,
  capped by its declared capability and by its stake (``compute_weight_per_hpc`` per
  HPC), so a newcomer starts small and a share of the tasks needs a proportional stake at
  risk; the weight is then scaled by the part of its capacity still free. Verified fuel is
  the fuel the winning replicas agreed on (it is part of what they vote on). Busy time
  (``verified_ms``, assignment or previous commit to commit) is kept for the explorer only:
  it measures block cadence as much as machines. The SWRR current weights live in the
  provider records, so the rotation continues across jobs. Ties are broken by a hash of
  (height, job, task, address): the beacon is not in ``BlockInfo``.
- **Replicas of a task are unrelated.** A provider declares an owner (the account that
  operates it; itself by default) and a network address (kept as its /24, or /48 for
  IPv6; private addresses say nothing and are not kept). No two live replicas of a task go
  to providers sharing either. Both are declarations: they keep an honest operator's
  machines apart; a Sybil is priced by stake and by verified work, not by them. Posting a
  job whose redundancy exceeds the unrelated providers able to run it is refused. A task
  with no replica is placed whole or not at all; a task short of replicas while others
  wait on it has ``deadline_blocks`` to be whole again, or it fails: no reservation is
  held for ever.
- **Commit, reveal a hash, then release.** A worker commits to ``commitment(output, error,
  fuel, address)`` (its own address is in the hash, so a commitment cannot be copied);
  reveals open when every live replica of the task has committed and show the output's
  hash (``output_digest``), not the output. A replica added once a reveal of its task is
  public (a replacement, or an extra one after a disagreement) could commit to that reveal
  without running anything; so the task starts a new round: every live replica commits
  again to a digest salted for the round (``round_salt``, given in the assignment), which
  the earlier reveals say nothing about. A runner error (``out of fuel``, a trap) is a
  result like any other: matching errors verify and the requester pays the fuel. An error
  marked machine-dependent (a native stack overflow) is an abstention: no pay, no penalty,
  another replica is placed.
- **Quorum with adaptive replication, paid before the output is seen.** A task is agreed
  when at least ``redundancy`` reveals agree on (hash, error, fuel) and they are a strict
  majority of the reveals; otherwise one more replica is added, up to ``redundancy +
  compute_max_extra_replicas``, after which the task fails and its escrow returns. The
  out-voted are slashed (``compute_slash_bps`` of their stake) and lose reputation. Each
  winner is paid ``fuel_used × price_per_fuel`` from the task's budget (``redundancy ×
  fuel_per_task × price`` plus the slashed stake) in that same step; a budget too small
  for every winner is shared equally. Only then is the output put on chain
  (``release_outputs``, by any winner, checked against the hash) within
  ``compute_reveal_blocks``; if none does, the winners give their pay back out of their
  stake with a miss and the task fails. A replica is only placed on a provider whose
  stake, beyond what its other replicas hold ``bonded``, covers the most the replica can
  pay (``replica_bond``); the bond is held until the output is out. So the output never
  travels before its payment is final, and withholding a paid output never profits.
- **Cancelling** drops only the tasks no replica has committed to (their budget returns at
  once); tasks with a commitment run to their end and are paid, and the job closes as
  cancelled after them: a cancel sent after seeing anything cannot take work's pay away.
- **Deadlines.** A replica must commit within ``deadline_blocks`` of its assignment and, once
  reveals open, reveal within ``compute_reveal_blocks``; ``end_block`` expires laggards
  (``compute_miss_slash_bps`` of their stake into the job's escrow, a little reputation;
  ``compute_max_misses`` misses without a commit take a provider off the roster, and
  registering again forgives none of it) and places a new replica. Tasks short of replicas
  (no eligible provider yet) stay pending and ``end_block`` retries them (``_place_pending``).
- **Placing is bounded and fair.** ``end_block`` spends at most
  ``compute_place_looks_per_block`` provider looks a block placing replicas (nobody's gas
  pays for them). Tasks that hold or held replicas go first, short ones first of all, so
  work already committed is not lost for want of a replica; jobs with fresh tasks get the
  rest, and at least half of the looks while any waits. Both queues turn round: a task (or
  job) that could not be placed goes to the back, so a flood of tasks nobody can take
  holds nobody else up. A task short of replicas fails after
  ``compute_place_wait_blocks`` (a job deadline while others wait on it) and its budget
  goes back: nothing is retried for ever.
- **Results.** A job is done when each task is verified or failed; its unused escrow returns
  to the requester. The verified outputs stay in the task records (``job_outputs``); a
  reduce module, if given, is stored by hash and run by the client over the outputs (or
  posted by it as a later one-task job): the chain does not run WebAssembly itself.

Work done in ``end_block`` (expiries, placing pending replicas) is not metered: the
transactions that created it paid for it (an expiry is once per paid item), and placing is
capped per block and per task's life.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Container, Iterator
from dataclasses import dataclass, replace
from itertools import chain
from typing import Any

from smartchain.compute.wasm import TaskRunner
from smartchain.crypto.address import from_bech32
from smartchain.crypto.hashing import h256, h256_tagged
from smartchain.modules.compute.types import (
    _U32,
    _U64,
    _ZERO32,
    ABSTAIN_MARK,
    ABSTAINED,
    AGREED,
    ASSIGNED,
    ASSIGNED_PREFIX,
    BPS,
    CANCELLED,
    CANCELLING,
    COMMITTED,
    DEADLINE_PREFIX,
    DONE,
    EMPTY_DIGEST,
    EXPIRED,
    FAILED,
    FINAL,
    I64_MAX,
    I64_MIN,
    INITIAL_REPUTATION,
    INPUT_PREFIX,
    JOB_CANCELLED,
    JOB_PREFIX,
    JOB_QUEUE_PREFIX,
    JOB_STATUS,
    LIVE,
    MARK,
    MAX_BATCH,
    MAX_DEADLINE_BLOCKS,
    MAX_ERROR,
    MAX_NETWORK,
    MAX_REDUNDANCY,
    MAX_REPLICAS,
    MAX_REPUTATION,
    MODULE_ACCOUNT,
    MODULE_PREFIX,
    NEXT_JOB_KEY,
    OPEN,
    OWE_COMMIT,
    OWE_NOTHING,
    OWE_RELEASE,
    OWE_REVEAL,
    PENDING,
    PLACING_KEY,
    PROVIDER_PREFIX,
    QUEUE_SEQ_KEY,
    REPLICA_STATUS,
    REPUTATION_GAIN,
    REPUTATION_MISS,
    REPUTATION_SLASH,
    RESTART,
    REVEALED,
    RUNNING_JOB,
    SHORT,
    STARTED_PREFIX,
    T_ASSIGNED,
    T_COMMITTED,
    TASK_MARK,
    TASK_PREFIX,
    TASK_QUEUE_PREFIX,
    TASK_STATUS,
    VERIFIED,
    Assignment,
    CancelJob,
    CommitResult,
    CommitResults,
    Deregister,
    Job,
    JobView,
    Placing,
    PostJob,
    Provider,
    ProviderView,
    RegisterProvider,
    ReleaseOutput,
    ReleaseOutputs,
    Replica,
    ReplicaView,
    RevealResult,
    RevealResults,
    Task,
    TaskView,
    _jt,
    digest_commitment,
    job_escrow,
    output_digest,
    round_salt,
)
from smartchain.modules.env import ModuleEnv
from smartchain.state.emission import MAX_SUPPLY
from smartchain.state.module import BlockInfo, Module, Msg, Query, TxContext
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.store import Overlay, StateView
from smartchain.types.amount import UNITS_PER_HPC
from smartchain.types.errors import Code, OutOfGas, TxError
from smartchain.types.tx import Event

# --- keys -----------------------------------------------------------------------------------


def provider_key(address: bytes) -> bytes:
    return PROVIDER_PREFIX + address


def job_key(job_id: int) -> bytes:
    return JOB_PREFIX + _U64.pack(job_id)


def task_key(job_id: int, idx: int) -> bytes:
    return TASK_PREFIX + _jt(job_id, idx)


def input_key(job_id: int, idx: int) -> bytes:
    return INPUT_PREFIX + _jt(job_id, idx)


def _started_key(job_id: int, idx: int) -> bytes:
    return STARTED_PREFIX + _jt(job_id, idx)


def _job_queue_key(seq: int, job_id: int) -> bytes:
    return JOB_QUEUE_PREFIX + _U64.pack(seq) + _U64.pack(job_id)


def _deadline_key(height: int, job_id: int, idx: int, provider: bytes) -> bytes:
    return DEADLINE_PREFIX + _U64.pack(height) + _jt(job_id, idx) + provider


def _assigned_key(provider: bytes, job_id: int, idx: int) -> bytes:
    return ASSIGNED_PREFIX + provider + _jt(job_id, idx)


def _owe(env: _Env, provider: bytes, job_id: int, idx: int, what: bytes, deadline: int,
         rnd: int = 0) -> None:
    env.set(_assigned_key(provider, job_id, idx), what + _U64.pack(deadline) + _U32.pack(rnd))


def _split_jt(raw: bytes) -> tuple[int, int]:
    return _U64.unpack_from(raw)[0], _U32.unpack_from(raw, 8)[0]


# --- reads any module or query may use ---------------------------------------------------------


def get_provider(store: Any, address: bytes) -> Provider | None:
    raw = store.get(provider_key(address))
    return Provider.decode(raw) if raw is not None else None


def get_job(store: Any, job_id: int) -> Job | None:
    raw = store.get(job_key(job_id))
    return Job.decode(raw) if raw is not None else None


def get_task(store: Any, job_id: int, idx: int) -> Task | None:
    raw = store.get(task_key(job_id, idx))
    return Task.decode(raw) if raw is not None else None


def task_input(store: StateView, job_id: int, idx: int) -> bytes | None:
    return store.get(input_key(job_id, idx))


def get_module(store: StateView, module_hash: bytes) -> bytes | None:
    return store.get(MODULE_PREFIX + module_hash)


def job_outputs(store: Any, job_id: int) -> list[bytes | None] | None:
    """Verified outputs in task order (None for a task that is not verified): what a
    reduce step runs over."""
    job = get_job(store, job_id)
    if job is None:
        return None
    out: list[bytes | None] = []
    for idx in range(job.tasks):
        task = get_task(store, job_id, idx)
        out.append(task.output if task is not None and task.status == VERIFIED else None)
    return out


def placing(store: Any) -> Placing | None:
    """What the last ``end_block`` with tasks to place did (looks spent, tasks tried)."""
    raw = store.get(PLACING_KEY)
    return Placing.decode(raw) if raw is not None else None


def effective_capability(p: Provider, params: Params) -> int:
    """The provider's scheduling weight: what the chain verified, never what it declared.
    A newcomer starts at ``compute_probation_weight``, and every unit of fuel a quorum
    verified for it adds one; the declared capability and its stake
    (``compute_weight_per_hpc`` per whole HPC) cap it, so a share of the tasks needs
    verified work and a proportional stake at risk."""
    backed = p.stake * params.compute_weight_per_hpc // UNITS_PER_HPC
    return max(1, min(p.capability, backed, params.compute_probation_weight + p.verified_fuel))


def network_group(address: str) -> str:
    """The network a declared address is in, for keeping replicas apart: an IPv4 /24 or an
    IPv6 /48; a host name as written (lower case); "" (no group) for a private, loopback
    or otherwise non-public address, which says nothing about where a machine is.
    Raises ``ValueError`` for text that is no address."""
    host = address.strip().lower()
    if not host:
        return ""
    if host.startswith("["):  # [v6]:port
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:  # v4:port or name:port
        host = host.partition(":")[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if not all(part and len(part) <= 63 and part.replace("-", "").isalnum()
                   and part.isascii() for part in host.split(".")) or len(host) > 253:
            raise ValueError(f"{address!r} is not an IP address or a host name") from None
        return host
    if not ip.is_global:
        return ""
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


# --- the scheduling policy, over plain data ------------------------------------------------------


@dataclass(slots=True)
class Slot:
    """A provider as the scheduler sees it: plain data, so the policy is testable alone."""

    address: bytes
    capacity: int  # declared fuel/s: the most its replicas may reserve
    effective: int  # its weight (``effective_capability``)
    reserved: int = 0  # fuel/s held by its replicas
    current: int = 0  # SWRR current weight
    placed: int = 0  # replicas placed on it by this batch
    placed_rate: int = 0
    owner: bytes = b""
    network: str = ""
    stake: int = 0  # its stake: the pay of every replica it holds must be covered
    bonded: int = 0  # the part of it backing replicas it holds
    placed_bond: int = 0


def slot_weight(s: Slot) -> int:
    """Effective capability scaled by the free part of the capacity: load lowers the share."""
    return max(1, s.effective * (s.capacity - s.reserved) // s.capacity)


def _tie(seed: bytes, address: bytes) -> bytes:
    return h256_tagged(b"smart/compute/tie", seed, address)


def swrr_pick(slots: list[Slot], rate: int, exclude: Container[bytes],
              seed: bytes = b"", bond: int = 0) -> Slot | None:
    """One step of smooth weighted round-robin (nginx) over the slots that can take one more
    replica reserving ``rate`` fuel/s and ``bond`` of stake; updates the slots and returns
    the chosen one."""
    best: Slot | None = None
    total = 0
    for s in slots:
        if s.capacity <= 0 or s.reserved + rate > s.capacity or s.address in exclude or \
                s.bonded + bond > s.stake:
            continue
        w = slot_weight(s)
        s.current += w
        total += w
        if best is None or s.current > best.current or (
                s.current == best.current and _tie(seed, s.address) > _tie(seed, best.address)):
            best = s
    if best is None:
        return None
    best.current -= total
    best.reserved += rate
    best.placed += 1
    best.placed_rate += rate
    best.bonded += bond
    best.placed_bond += bond
    return best


def replica_bond(job: Job) -> int:
    """The stake a replica holds bonded: the most it can be paid. A winner who never
    releases the output gives its pay back out of it, so withholding never pays."""
    return job.fuel_per_task * job.price_per_fuel


def replica_rate(fuel_per_task: int, deadline_blocks: int, block_time_ms: int) -> int:
    """Fuel/s a replica needs to finish by its deadline (rounded up)."""
    window_ms = max(1, deadline_blocks * block_time_ms)
    return max(1, -(-fuel_per_task * 1000 // window_ms))


# --- the shared state logic ----------------------------------------------------------------------


class _Env(ModuleEnv[Provider]):
    """``ModuleEnv`` over compute providers, and the block's placement seed."""

    __slots__ = ()

    def provider_key(self, address: bytes) -> bytes:
        return provider_key(address)

    def load_provider(self, address: bytes) -> Provider | None:
        return get_provider(self.store, address)

    def all_providers(self) -> Iterator[tuple[bytes, Provider]]:
        """Every provider in address order (cached versions win)."""
        start = len(PROVIDER_PREFIX)
        for key, raw in self.store.iter_prefix(PROVIDER_PREFIX):
            address = key[start:]
            p = self.providers.get(address)
            yield address, p if p is not None else Provider.decode(raw)

    def seed(self, job_id: int, idx: int) -> bytes:
        return h256_tagged(b"smart/compute/seed", _U64.pack(self.block.height), _jt(job_id, idx))


def _need_provider(env: _Env, address: bytes) -> Provider:
    p = env.provider(address)
    assert p is not None, "a replica names a provider that is not registered"
    return p


def _eligible(p: Provider, params: Params) -> bool:
    return p.active and p.stake >= params.compute_min_stake and p.capability > 0


def _slots(env: _Env, budget: _Budget | None = None) -> list[Slot]:
    """The providers that may get new replicas, in address order. With a ``budget`` each
    provider record read is a look, and one more for each slot (written back at the end);
    none are returned if the looks run out."""
    params = env.params
    out = []
    for a, p in env.all_providers():
        eligible = _eligible(p, params)
        if budget is not None:
            if budget.left < 1 + eligible:
                return []
            budget.take(1 + eligible)
        if eligible:
            out.append(Slot(a, p.capability, effective_capability(p, params), p.reserved,
                            p.current, owner=p.owner, network=p.network, stake=p.stake,
                            bonded=p.bonded))
    return out


def _store_slots(env: _Env, slots: list[Slot]) -> None:
    """Write back what a batch of picks changed (as deltas: releases may have happened)."""
    for s in slots:
        p = _need_provider(env, s.address)
        if s.placed == 0 and s.current == p.current:
            continue
        env.put_provider(s.address, replace(
            p, current=min(I64_MAX, max(I64_MIN, s.current)), load=p.load + s.placed,
            reserved=p.reserved + s.placed_rate, bonded=p.bonded + s.placed_bond))


def _put(env: _Env, job_id: int, job: Job, idx: int, task: Task) -> None:
    env.set(task_key(job_id, idx), task.encode())
    env.set(job_key(job_id), job.encode())


def _next_seq(env: _Env) -> int:
    raw = env.store.get(QUEUE_SEQ_KEY)
    seq = _U64.unpack(raw)[0] if raw else 1
    env.set(QUEUE_SEQ_KEY, _U64.pack(seq + 1))
    return seq


def _dequeue_task(env: _Env, job_id: int, idx: int) -> None:
    place = env.store.get(_started_key(job_id, idx))
    if place is not None:
        env.delete(TASK_QUEUE_PREFIX + place + _jt(job_id, idx))
        env.delete(_started_key(job_id, idx))


def _enqueue_task(env: _Env, job_id: int, idx: int, kind: bytes) -> None:
    """Put a started task at the back of the task queue (of ``kind``)."""
    _dequeue_task(env, job_id, idx)
    place = kind + _U64.pack(_next_seq(env))
    env.set(_started_key(job_id, idx), place)
    env.set(TASK_QUEUE_PREFIX + place + _jt(job_id, idx), MARK)


def _enqueue_job(env: _Env, job_id: int, job: Job) -> Job:
    """Put the job at the back of the job queue; the caller stores the returned job."""
    if job.queued:
        env.delete(_job_queue_key(job.queued, job_id))
    seq = _next_seq(env)
    env.set(_job_queue_key(seq, job_id), MARK)
    return replace(job, queued=seq)


def _set_pending(env: _Env, job_id: int, job: Job, idx: int, task: Task,
                 pending: bool) -> Job:
    """Keep a task short of replicas in the queue it belongs to (and out of both when it is
    not): a fresh task's job is queued, its turns starting at this task (it leaves the
    queue on a turn that finds no fresh task left); a started task is queued by kind,
    keeping its place."""
    if not pending:
        _dequeue_task(env, job_id, idx)
        return job
    if not task.replicas:
        return job if job.queued else _enqueue_job(env, job_id, replace(job, fresh=idx))
    kind = SHORT if any(r.status in LIVE for r in task.replicas) else RESTART
    place = env.store.get(_started_key(job_id, idx))
    if place is None or place[:1] != kind:
        _enqueue_task(env, job_id, idx, kind)
    return job


def _set_task_deadline(env: _Env, job_id: int, idx: int, task: Task, deadline: int) -> Task:
    """The task's own deadline (placement or release); 0 clears it."""
    if task.deadline == deadline:
        return task
    if task.deadline:
        env.delete(_deadline_key(task.deadline, job_id, idx, TASK_MARK))
    if deadline:
        env.set(_deadline_key(deadline, job_id, idx, TASK_MARK), MARK)
    return replace(task, deadline=deadline)


def _release(env: _Env, job_id: int, job: Job, idx: int, rep: Replica,
             keep_bond: bool = False) -> None:
    """The provider no longer holds this replica: its load and reservation go down, and
    its bond too unless it still owes the output (``keep_bond``)."""
    p = _need_provider(env, rep.provider)
    bonded = p.bonded if keep_bond else max(0, p.bonded - replica_bond(job))
    env.put_provider(rep.provider, replace(p, load=max(0, p.load - 1), bonded=bonded,
                                           reserved=max(0, p.reserved - job.rate)))
    env.delete(_assigned_key(rep.provider, job_id, idx))
    if rep.deadline:
        env.delete(_deadline_key(rep.deadline, job_id, idx, rep.provider))


class _Related:
    """The providers a task must not get, as ``swrr_pick``'s ``exclude``: those in ``held``
    and those sharing an owner or a network with its live replicas. Asked slot by slot, so
    it costs no scan of its own."""

    __slots__ = ("by_address", "held", "networks", "owners")

    def __init__(self, by_address: dict[bytes, Slot], held: set[bytes], owners: set[bytes],
                 networks: set[str]) -> None:
        self.by_address = by_address
        self.held = held
        self.owners = owners
        self.networks = networks

    def __contains__(self, address: object) -> bool:
        s = self.by_address[address]  # type: ignore[index]  # Container takes object: addresses
        return address in self.held or s.owner in self.owners or (
            bool(s.network) and s.network in self.networks)


@dataclass(slots=True)
class _Budget:
    """Provider looks ``end_block`` may still spend placing replicas, and what it did."""

    left: int
    looks: int = 0
    tried: int = 0
    placed: int = 0

    def take(self, looks: int) -> None:
        self.left -= looks
        self.looks += looks


def _place_bound(task: Task, providers: int) -> int:
    """The most provider looks ``_place`` spends on ``task``: a scan per missing replica
    (two when it may fall back on a provider that only missed its deadline), and two to
    save and restore the rotation when a task holding nothing cannot be placed whole."""
    live = sum(r.status in LIVE for r in task.replicas)
    lost = any(r.status == EXPIRED for r in task.replicas)
    return providers * (max(0, task.want - live) * (2 if lost else 1) + (0 if live else 2))


def _place(env: _Env, job_id: int, job: Job, idx: int, task: Task, slots: list[Slot],
           budget: _Budget | None = None) -> Task:
    """Give the task the replicas it is short of, on providers that share no owner and no
    network with each other (if there are any). Providers that already held it are
    avoided; one that only missed its deadline may get it back when nobody else can take
    it. A task holding no replica is placed whole or not at all: half a task would hold
    capacity while it waits for the rest. ``budget`` counts the looks (in ``end_block``)."""
    budget = budget or _Budget(0)
    live = [r for r in task.replicas if r.status in LIVE]
    need = task.want - len(live)
    by_address = {s.address: s for s in slots}
    owners, networks = set(), set()
    for r in live:
        p = _need_provider(env, r.provider)
        owners.add(p.owner)
        networks.add(p.network)
    held = {r.provider for r in task.replicas}
    lost = {r.provider for r in task.replicas if r.status == EXPIRED}
    seed = env.seed(job_id, idx)
    height = env.block.height
    undo = [(s.current, s.reserved, s.placed, s.placed_rate, s.bonded, s.placed_bond)
            for s in slots] if not live else []
    budget.take(len(undo))
    bond = replica_bond(job)
    picked: list[Slot] = []
    for _ in range(need):
        env.charge(env.params.compute_scan_gas * len(slots))
        budget.take(len(slots))
        s = swrr_pick(slots, job.rate, _Related(by_address, held, owners, networks), seed, bond)
        if s is None and lost:
            budget.take(len(slots))
            s = swrr_pick(slots, job.rate, _Related(by_address, held - lost, owners, networks),
                          seed, bond)
        if s is None:
            break
        held.add(s.address)
        owners.add(s.owner)
        networks.add(s.network)
        picked.append(by_address[s.address])
    if undo and len(picked) < need:
        budget.take(len(slots))
        for s, saved in zip(slots, undo, strict=True):
            s.current, s.reserved, s.placed, s.placed_rate, s.bonded, s.placed_bond = saved
        return task
    placed: list[Replica] = []
    for s in picked:
        deadline = height + job.deadline_blocks
        placed.append(Replica(s.address, ASSIGNED, height, env.block.time_ms, deadline, _ZERO32,
                              _ZERO32, "", 0, 0))
        env.set(_deadline_key(deadline, job_id, idx, s.address), MARK)
        _owe(env, s.address, job_id, idx, OWE_COMMIT, deadline, task.round)
    if not placed:
        return task
    return replace(task, replicas=task.replicas + tuple(placed))


def _reveal_deadlines(env: _Env, job_id: int, idx: int, task: Task, deadline: int) -> Task:
    """Reveals open (every live replica committed): the committed replicas get ``deadline``;
    reveals close again (a replica was lost): they wait with none (``deadline`` 0)."""
    replicas = []
    for r in task.replicas:
        if r.status == COMMITTED:
            if r.deadline:
                env.delete(_deadline_key(r.deadline, job_id, idx, r.provider))
            if deadline:
                env.set(_deadline_key(deadline, job_id, idx, r.provider), MARK)
            _owe(env, r.provider, job_id, idx, OWE_REVEAL if deadline else OWE_NOTHING, deadline,
                 task.round)
            r = replace(r, deadline=deadline)
        replicas.append(r)
    return replace(task, replicas=tuple(replicas))


def _new_round(env: _Env, job_id: int, job: Job, idx: int, task: Task) -> Task:
    """A replica is to be added while reveals of this task are public: a newcomer could
    commit to one without running anything. So every live replica that committed or
    revealed commits again (within ``deadline_blocks``) to a digest salted for the new
    round, which the old reveals say nothing about."""
    deadline = env.block.height + job.deadline_blocks
    task = replace(task, round=task.round + 1)
    replicas = []
    for r in task.replicas:
        if r.status in (COMMITTED, REVEALED):
            if r.deadline:
                env.delete(_deadline_key(r.deadline, job_id, idx, r.provider))
            env.set(_deadline_key(deadline, job_id, idx, r.provider), MARK)
            _owe(env, r.provider, job_id, idx, OWE_COMMIT, deadline, task.round)
            r = replace(r, status=ASSIGNED, deadline=deadline, commitment=_ZERO32,
                        digest=_ZERO32, error="", fuel_used=0)
        replicas.append(r)
    env.emit("compute_task_round", job=job_id, task=idx, round=task.round)
    return replace(task, replicas=tuple(replicas))


def _settle(env: _Env, job_id: int, job: Job, idx: int, task: Task,
            slots: list[Slot] | None = None,
            budget: _Budget | None = None) -> tuple[Job, Task]:
    """Move a task on after any change: place missing replicas (when ``slots`` are given),
    open reveals, decide. Returns the (maybe changed) job and task; the caller stores them."""
    while task.status not in FINAL and task.status != AGREED:
        live = sum(r.status in LIVE for r in task.replicas)
        if live < task.want:
            lost = sum(r.status in (EXPIRED, ABSTAINED) for r in task.replicas)
            if lost > env.params.compute_max_reassign:
                env.emit("compute_task_failed", job=job_id, task=idx, reason="replicas lost")
                return _finish_task(env, job_id, job, idx, task, FAILED)
            if any(r.status == REVEALED for r in task.replicas):
                task = _new_round(env, job_id, job, idx, task)
            if slots is not None:
                task = _place(env, job_id, job, idx, task, slots, budget)
                live = sum(r.status in LIVE for r in task.replicas)
        statuses = {r.status for r in task.replicas if r.status in LIVE}
        if live < task.want:
            status = PENDING
        elif ASSIGNED in statuses:
            status = T_ASSIGNED
        elif COMMITTED in statuses:
            status = T_COMMITTED
        else:  # every live replica revealed
            job, task = _decide(env, job_id, job, idx, task)
            continue
        if status == T_COMMITTED and task.status != T_COMMITTED:
            task = _reveal_deadlines(env, job_id, idx, task,
                                     env.block.height + env.params.compute_reveal_blocks)
        elif status != T_COMMITTED and task.status == T_COMMITTED:
            task = _reveal_deadlines(env, job_id, idx, task, 0)
        # A task short of replicas has ``compute_place_wait_blocks`` to be whole, counted
        # from when it fell short; while others wait on it, one job deadline at most: the
        # capacity its replicas hold is never held for ever, and end_block does not retry
        # for ever a task nobody can take.
        if status != PENDING:
            task = _set_task_deadline(env, job_id, idx, task, 0)
        elif not task.deadline:
            wait = env.params.compute_place_wait_blocks
            if live:
                wait = min(wait, job.deadline_blocks)
            task = _set_task_deadline(env, job_id, idx, task, env.block.height + max(1, wait))
        job = _set_pending(env, job_id, job, idx, task, status == PENDING)
        return job, replace(task, status=status)
    return job, task


def _decide(env: _Env, job_id: int, job: Job, idx: int, task: Task) -> tuple[Job, Task]:
    """All live replicas revealed: verify, add a replica, or give up."""
    revealed = [r for r in task.replicas if r.status == REVEALED]
    groups: dict[tuple[bytes, str, int], list[Replica]] = {}
    for r in revealed:
        groups.setdefault((r.digest, r.error, r.fuel_used), []).append(r)
    winners = max(groups.values(), key=len)  # a strict majority is unique
    if len(winners) >= job.redundancy and 2 * len(winners) > len(revealed):
        return _agree(env, job_id, job, idx, task, winners, revealed)
    cap = min(MAX_REPLICAS, job.redundancy + env.params.compute_max_extra_replicas)
    if task.want < cap:
        env.emit("compute_replicate", job=job_id, task=idx, replicas=task.want + 1)
        return job, replace(task, want=task.want + 1, status=PENDING)
    env.emit("compute_task_failed", job=job_id, task=idx, reason="no majority")
    return _finish_task(env, job_id, job, idx, task, FAILED)


def _agree(env: _Env, job_id: int, job: Job, idx: int, task: Task, winners: list[Replica],
           revealed: list[Replica]) -> tuple[Job, Task]:
    """A quorum agreed on a result: slash the out-voted into the task's budget and pay the
    winners from it now, before anyone has seen the output. The output then has to be
    released (``release_outputs``) within ``compute_reveal_blocks``, or the winners give
    their pay back out of their stake (plus a miss) and the task fails."""
    winning = {r.provider for r in winners}
    bonus = sum(_slash(env, r.provider, job_id, idx) for r in revealed
                if r.provider not in winning)
    budget = job.redundancy * job.fuel_per_task * job.price_per_fuel + task.bonus + bonus
    due = winners[0].fuel_used * job.price_per_fuel
    each = due if due * len(winners) <= budget else budget // len(winners)
    for r in winners:
        env.move(MODULE_ACCOUNT, r.provider, each)
        _credit(env, r)
    spent = each * len(winners)
    job = replace(job, escrow=job.escrow + bonus - spent, paid=job.paid + spent)
    w = winners[0]
    task = replace(task, bonus=task.bonus + bonus, error=w.error, fuel_used=w.fuel_used,
                   digest=w.digest)
    env.emit("compute_task_agreed", job=job_id, task=idx, fuel=w.fuel_used, paid=spent,
             replicas=len(revealed))
    if w.error or w.digest == EMPTY_DIGEST:  # nothing to release: the result is on chain
        return _verified(env, job_id, job, idx, task, b"")
    for r in task.replicas:  # the replicas' work is done: their capacity is free, not the
        if r.status in LIVE:  # winners' bond: it backs the pay until the output is out
            _release(env, job_id, job, idx, r, keep_bond=r.provider in winning)
    deadline = env.block.height + env.params.compute_reveal_blocks
    for r in winners:
        _owe(env, r.provider, job_id, idx, OWE_RELEASE, deadline)
    job = _set_pending(env, job_id, job, idx, task, False)
    task = _set_task_deadline(env, job_id, idx, task, deadline)
    return job, replace(task, status=AGREED)


def _verified(env: _Env, job_id: int, job: Job, idx: int, task: Task,
              output: bytes) -> tuple[Job, Task]:
    """The agreed result is on chain: the task is done (and the winners' bond free)."""
    if task.status == AGREED:
        for r in _winners(task):
            _unbond(env, r.provider, job)
            env.delete(_assigned_key(r.provider, job_id, idx))
    task = _set_task_deadline(env, job_id, idx, replace(task, output=output), 0)
    env.emit("compute_task_verified", job=job_id, task=idx, fuel=task.fuel_used,
             output_size=len(output))
    return _finish_task(env, job_id, job, idx, task, VERIFIED)


def _winners(task: Task) -> list[Replica]:
    """The replicas whose reveal is the agreed result."""
    return [r for r in task.replicas if r.status == REVEALED
            and (r.digest, r.error, r.fuel_used) == (task.digest, task.error, task.fuel_used)]


def _unbond(env: _Env, address: bytes, job: Job) -> None:
    p = _need_provider(env, address)
    env.put_provider(address, replace(p, bonded=max(0, p.bonded - replica_bond(job))))


def _slash(env: _Env, address: bytes, job_id: int, idx: int, bps: int = 0, extra: int = 0,
           reputation: int = REPUTATION_SLASH) -> int:
    """Take ``bps`` of the provider's stake (``compute_slash_bps`` by default) plus
    ``extra``, at most all of it; returns the amount, which the caller adds to a job's
    escrow."""
    p = _need_provider(env, address)
    amount = min(p.stake, p.stake * (bps or env.params.compute_slash_bps) // BPS + extra)
    stake = p.stake - amount
    env.put_provider(address, replace(
        p, stake=stake, slashed=p.slashed + amount,
        reputation=max(0, p.reputation - reputation),
        active=p.active and stake >= env.params.compute_min_stake))
    if reputation == REPUTATION_SLASH:  # out-voted; a miss has its own event
        env.emit("compute_slash", address=address.hex(), job=job_id, task=idx, amount=amount)
    return amount


def _credit(env: _Env, r: Replica) -> None:
    p = _need_provider(env, r.provider)
    env.put_provider(r.provider, replace(
        p, reputation=min(MAX_REPUTATION, p.reputation + REPUTATION_GAIN),
        verified_fuel=p.verified_fuel + r.fuel_used, verified_ms=p.verified_ms + r.busy_ms,
        misses=0))


def _finish_task(env: _Env, job_id: int, job: Job, idx: int, task: Task,
                 status: int) -> tuple[Job, Task]:
    for r in task.replicas:
        if r.status in LIVE and task.status != AGREED:  # an agreed task released them
            _release(env, job_id, job, idx, r)
    job = _set_pending(env, job_id, job, idx, task, False)
    task = _set_task_deadline(env, job_id, idx, replace(task, status=status), 0)
    job = replace(job, verified=job.verified + (status == VERIFIED),
                  failed=job.failed + (status == FAILED),
                  cancelled=job.cancelled + (status == CANCELLED))
    if job.verified + job.failed + job.cancelled == job.tasks:
        job = _close_job(env, job_id, job, JOB_CANCELLED if job.status == CANCELLING else DONE)
    return job, task


def _close_job(env: _Env, job_id: int, job: Job, status: int) -> Job:
    """The job ends: its unused escrow (and leftover slashed stake) goes back."""
    env.move(MODULE_ACCOUNT, job.requester, job.escrow)
    env.emit("compute_job_" + JOB_STATUS[status], job=job_id, owner=job.requester.hex(),
             refund=job.escrow, paid=job.paid, verified=job.verified, failed=job.failed)
    return replace(job, escrow=0, status=status, finished=env.block.height)


def _expire(env: _Env) -> None:
    """Everything past its deadline: replicas (``_expire_one``) and tasks' own deadlines
    (``_expire_task``)."""
    height = env.block.height
    due: list[bytes] = []
    for key, _ in env.store.iter_prefix(DEADLINE_PREFIX):
        if _U64.unpack_from(key, len(DEADLINE_PREFIX))[0] > height:
            break
        due.append(key)
    for key in due:
        if env.store.get(key) is None:  # went with an earlier one (a task's release)
            continue
        rest = key[len(DEADLINE_PREFIX):]
        deadline = _U64.unpack_from(rest)[0]
        job_id, idx = _split_jt(rest[8:20])
        if rest[20:] == TASK_MARK:
            _expire_task(env, job_id, idx)
        else:
            _expire_one(env, deadline, job_id, idx, rest[20:])


def _expire_one(env: _Env, deadline: int, job_id: int, idx: int, address: bytes) -> None:
    """A replica missed its deadline: it is released, its provider loses
    ``compute_miss_slash_bps`` of its stake into the job's escrow and some reputation (and,
    after ``compute_max_misses`` misses without a commit, its place on the roster); the
    task goes back to pending so a new replica is placed."""
    job, task = get_job(env.store, job_id), get_task(env.store, job_id, idx)
    assert job is not None and task is not None, "a deadline names a task that does not exist"
    replicas = list(task.replicas)
    for i, r in enumerate(replicas):
        running = r.status in (ASSIGNED, COMMITTED)
        if running and r.provider == address and r.deadline == deadline:
            _release(env, job_id, job, idx, r)
            replicas[i] = replace(r, status=EXPIRED, deadline=0)
            break
    else:  # unreachable: deadline keys are deleted with their replica's deadline
        env.delete(_deadline_key(deadline, job_id, idx, address))
        return
    job = _miss(env, address, job_id, job, idx)
    job, task = _settle(env, job_id, job, idx, replace(task, replicas=tuple(replicas)))
    _put(env, job_id, job, idx, task)


def _miss(env: _Env, address: bytes, job_id: int, job: Job, idx: int, extra: int = 0) -> Job:
    """A missed deadline costs stake (into the job's escrow) and counts toward the roster."""
    amount = _slash(env, address, job_id, idx, env.params.compute_miss_slash_bps, extra,
                    REPUTATION_MISS)
    p = _need_provider(env, address)
    misses = p.misses + 1
    env.put_provider(address, replace(
        p, misses=misses, active=p.active and misses < env.params.compute_max_misses))
    env.emit("compute_deadline_missed", address=address.hex(), job=job_id, task=idx,
             misses=misses, slashed=amount)
    return replace(job, escrow=job.escrow + amount)


def _expire_task(env: _Env, job_id: int, idx: int) -> None:
    """A task's own deadline passed. Still short of replicas: it fails (no provider could
    make it whole in time). Its agreed output never released: the winners give their pay
    back out of their stake, with a miss, and it fails."""
    job, task = get_job(env.store, job_id), get_task(env.store, job_id, idx)
    assert job is not None and task is not None, "a deadline names a task that does not exist"
    if task.status == AGREED:
        for r in _winners(task):  # the out-voted owed nothing
            job = _miss(env, r.provider, job_id, job, idx,
                        extra=r.fuel_used * job.price_per_fuel)
            _unbond(env, r.provider, job)
            env.delete(_assigned_key(r.provider, job_id, idx))
        env.emit("compute_task_failed", job=job_id, task=idx, reason="output not released")
    else:
        env.emit("compute_task_failed", job=job_id, task=idx, reason="no provider in time")
    job, task = _finish_task(env, job_id, job, idx, task, FAILED)
    _put(env, job_id, job, idx, task)


def _place_pending(env: _Env) -> None:
    """Give tasks short of replicas their turn, within ``compute_place_looks_per_block``
    provider looks: this work is nobody's gas, so it is capped per block, and a task that
    waits too long fails at its deadline (``compute_place_wait_blocks``) with its budget
    going back. Started tasks come first (short ones, whose replicas' committed work is at
    stake, then those that lost theirs), then jobs with fresh tasks; while jobs wait, the
    started tasks get at most half the looks, so neither queue starves the other. Each
    queue turns round: whoever could not be placed goes to the back, behind everyone who
    has not had a turn, so nothing stuck at the front holds the rest up. What was done is
    kept under ``PLACING_KEY``."""
    started = env.store.iter_prefix(TASK_QUEUE_PREFIX)
    queued = env.store.iter_prefix(JOB_QUEUE_PREFIX)
    first_task, first_job = next(started, None), next(queued, None)
    if first_task is None and first_job is None:
        return
    budget = _Budget(env.params.compute_place_looks_per_block)
    slots = _slots(env, budget)
    if slots and budget.left > 0:
        if first_task is not None:
            reserve = budget.left // 2 if first_job is not None else 0
            _place_started(env, chain([first_task], started), slots, budget, reserve)
        if first_job is not None:
            _place_fresh(env, chain([first_job], queued), slots, budget)
        _store_slots(env, slots)
    env.set(PLACING_KEY, Placing(env.block.height, budget.looks, budget.tried,
                                 budget.placed).encode())


def _try(env: _Env, job_id: int, job: Job, idx: int, task: Task, slots: list[Slot],
         budget: _Budget) -> tuple[Job, Task]:
    """One placement attempt in ``end_block``; stores the task (the caller, the job)."""
    live = sum(r.status in LIVE for r in task.replicas)
    job, new_task = _settle(env, job_id, job, idx, task, slots, budget)
    budget.tried += 1
    budget.placed += sum(r.status in LIVE for r in new_task.replicas) > live
    if new_task != task:
        env.set(task_key(job_id, idx), new_task.encode())
    return job, new_task


def _place_started(env: _Env, queue: Iterator[tuple[bytes, bytes]], slots: list[Slot],
                   budget: _Budget, reserve: int) -> None:
    """Started tasks in queue order, leaving ``reserve`` looks; each one tried and still
    short goes to the back. A task whose attempt needs more looks than this phase has at
    all goes to the back untried (its deadline ends it)."""
    allowance = budget.left - reserve
    start = len(TASK_QUEUE_PREFIX) + 9  # kind + seq
    for key, _ in queue:
        if budget.left <= reserve:
            break
        if env.store.get(key) is None:  # left the queue during this pass
            continue
        job_id, idx = _split_jt(key[start:])
        budget.take(1)
        job, task = get_job(env.store, job_id), get_task(env.store, job_id, idx)
        assert job is not None and task is not None, "a queued task does not exist"
        bound = _place_bound(task, len(slots))
        if bound > budget.left - reserve:
            if bound <= allowance:
                break  # it goes first next block
        else:
            new_job, task = _try(env, job_id, job, idx, task, slots, budget)
            if new_job != job:
                env.set(job_key(job_id), new_job.encode())
        if task.status == PENDING:
            _enqueue_task(env, job_id, idx, key[len(TASK_QUEUE_PREFIX):][:1])


def _place_fresh(env: _Env, queue: Iterator[tuple[bytes, bytes]], slots: list[Slot],
                 budget: _Budget) -> None:
    """Jobs with fresh tasks in queue order, one turn each, until the looks run out."""
    allowance = budget.left
    start = len(JOB_QUEUE_PREFIX) + 8  # seq
    for key, _ in queue:
        if budget.left <= 0:
            break
        if env.store.get(key) is None:
            continue
        job_id = _U64.unpack_from(key, start)[0]
        budget.take(1)
        job = get_job(env.store, job_id)
        assert job is not None, "a queued job does not exist"
        job, done = _job_turn(env, job_id, job, slots, budget, allowance)
        env.set(job_key(job_id), job.encode())
        if not done:
            break


def _job_turn(env: _Env, job_id: int, job: Job, slots: list[Slot], budget: _Budget,
              allowance: int) -> tuple[Job, bool]:
    """A job's turn: its fresh tasks in order until one cannot be placed. Fresh tasks of a
    job are alike, so the others would not be either: the job goes to the back of the
    queue (it leaves it when no fresh task is left). Not done when the looks ran out
    first: the job keeps its place, and its turn goes on next block. Returns the job for
    the caller to store."""
    idx = job.fresh if job.status == OPEN else job.tasks  # cancelling drops fresh tasks
    while idx < job.tasks:
        if budget.left <= 0:
            return replace(job, fresh=idx), False
        budget.take(1)
        task = get_task(env.store, job_id, idx)
        assert task is not None, "a job names a task that does not exist"
        if task.status == PENDING:  # else it ended (expired with the others): skip it
            bound = _place_bound(task, len(slots))
            if bound > budget.left:
                if bound <= allowance:
                    return replace(job, fresh=idx), False
                break  # no block has the looks for it: it waits at the back for its deadline
            job, task = _try(env, job_id, job, idx, task, slots, budget)
            if task.status == PENDING:
                break
        idx += 1
    if idx < job.tasks:
        return _enqueue_job(env, job_id, replace(job, fresh=idx)), True
    env.delete(_job_queue_key(job.queued, job_id))
    return replace(job, queued=0, fresh=0), True


def distinct_providers(slots: list[Slot], rate: int, want: int, bond: int = 0) -> int:
    """How many of ``slots`` able to run a replica of ``rate`` fuel/s with a stake covering
    ``bond`` share no owner and no network, up to ``want``: a maximum matching of owners to
    networks (Kuhn's augmenting paths; a provider without a network is a network of its
    own)."""
    edges: dict[bytes, list[str]] = {}
    for s in slots:
        if s.capacity >= rate and s.stake >= bond:
            edges.setdefault(s.owner, []).append(s.network or "@" + s.address.hex())
    match: dict[str, bytes] = {}

    def augment(owner: bytes, seen: set[str]) -> bool:
        for net in edges[owner]:
            if net in seen:
                continue
            seen.add(net)
            if net not in match or augment(match[net], seen):
                match[net] = owner
                return True
        return False

    for owner in edges:
        if len(match) >= want:
            break
        augment(owner, set())
    return len(match)


# --- stateless checks --------------------------------------------------------------------------


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


_checker = threading.local()


def check_module(module: bytes, what: str = "module") -> None:
    """Refuse a module that cannot run as a task before it reaches the mempool: WebAssembly
    is validated and compiled; a Lua task (first line ``--!lua``) is compiled, its bytecode
    checked, and its top level run once in a fresh sandbox, metered (at most
    ``compute.lua.CHECK_FUEL``), to see that it defines ``run``. Deterministic either way."""
    runner = getattr(_checker, "runner", None)
    if runner is None:
        runner = _checker.runner = TaskRunner(cache_size=16)
    problem = runner.check(module)
    if problem:
        raise _invalid(f"{what} rejected: {problem}")


def _validate_register(msg: RegisterProvider) -> None:
    if msg.capability <= 0:
        raise _invalid("capability must be a positive number of fuel units per second")
    if len(msg.network) > MAX_NETWORK:
        raise _invalid(f"network address is at most {MAX_NETWORK} characters")
    try:
        network_group(msg.network)
    except ValueError as exc:
        raise _invalid(str(exc)) from None


def _validate_post(msg: PostJob) -> None:
    if not msg.tasks:
        raise _invalid("a job needs at least one task")
    if not 1 <= msg.redundancy <= MAX_REDUNDANCY:
        raise _invalid(f"redundancy must be 1..{MAX_REDUNDANCY}")
    if msg.fuel_per_task <= 0 or msg.price_per_fuel <= 0:
        raise _invalid("fuel per task and price per fuel must be positive integers")
    if not 1 <= msg.deadline_blocks <= MAX_DEADLINE_BLOCKS:
        raise _invalid(f"deadline must be 1..{MAX_DEADLINE_BLOCKS} blocks")
    if job_escrow(msg) > MAX_SUPPLY:
        raise _invalid("escrow (tasks × redundancy × fuel × price) exceeds the HPC supply cap")
    check_module(msg.module)
    if msg.reduce:
        check_module(msg.reduce, "reduce module")


def _validate_reveal(msg: RevealResult) -> None:
    if len(msg.error) > MAX_ERROR:
        raise _invalid(f"error text is at most {MAX_ERROR} characters")
    if msg.error and msg.digest != EMPTY_DIGEST:
        raise _invalid("a failed task has no output")


def _validate_batch(items: tuple[Any, ...], what: str) -> None:
    if not 1 <= len(items) <= MAX_BATCH:
        raise _invalid(f"a batch holds 1 to {MAX_BATCH} {what}, not {len(items)}")
    if len({(i.job, i.task) for i in items}) != len(items):
        raise _invalid(f"a batch names a task twice in its {what}")


def _validate_commits(msg: CommitResults) -> None:
    _validate_batch(msg.commits, "commits")


def _validate_reveals(msg: RevealResults) -> None:
    _validate_batch(msg.reveals, "reveals")
    for r in msg.reveals:
        _validate_reveal(r)


def _validate_releases(msg: ReleaseOutputs) -> None:
    _validate_batch(msg.releases, "releases")


# --- handlers ----------------------------------------------------------------------------------


def _env(ctx: TxContext) -> _Env:
    return _Env(ctx.store, ctx.block, ctx.gas, ctx.events)


def _fail(message: str) -> TxError:
    return TxError(Code.FAILED, message)


def _handle_register(ctx: TxContext, msg: RegisterProvider) -> None:
    """Registering again re-activates a provider but forgives nothing: its misses, slashes
    and verified record stay."""
    env = _env(ctx)
    p = env.provider(ctx.sender)
    owner = msg.owner if msg.owner != bytes(20) else ctx.sender
    network = network_group(msg.network)
    if p is None:
        p = Provider(msg.capability, msg.stake, INITIAL_REPUTATION, 0, 0, 0, 0, 0, True, 0, 0, 0,
                     ctx.block.height, owner, network)
    else:
        if p.load and (p.owner, p.network) != (owner, network):
            raise _fail(f"provider holds {p.load} replicas: its owner and network stay until "
                        "they are done")
        p = replace(p, capability=msg.capability, stake=p.stake + msg.stake, active=True,
                    owner=owner, network=network)
    if p.stake < env.params.compute_min_stake:
        raise _fail(f"stake {p.stake} below the minimum {env.params.compute_min_stake}")
    env.move(ctx.sender, MODULE_ACCOUNT, msg.stake)
    env.put_provider(ctx.sender, p)
    env.flush()
    env.emit("compute_provider_register", address=ctx.sender.hex(), capability=p.capability,
             stake=p.stake)


def _handle_deregister(ctx: TxContext, msg: Deregister) -> None:
    env = _env(ctx)
    p = env.provider(ctx.sender)
    if p is None or (not p.active and p.stake == 0):
        raise _fail("not a registered compute provider")
    if p.load:
        raise _fail(f"provider still holds {p.load} replicas")
    if any(True for _ in env.store.iter_prefix(ASSIGNED_PREFIX + ctx.sender)):
        raise _fail("provider still owes the output of a task it was paid for")
    env.move(MODULE_ACCOUNT, ctx.sender, p.stake)
    env.put_provider(ctx.sender, replace(p, stake=0, active=False))
    env.flush()
    env.emit("compute_provider_deregister", address=ctx.sender.hex(), stake=p.stake)


def _store_module(env: _Env, module: bytes) -> bytes:
    """Modules are kept once, by hash: jobs that reuse one do not pay to store it again."""
    digest = h256(module)
    if env.store.get(MODULE_PREFIX + digest) is None:
        env.set(MODULE_PREFIX + digest, module)
    return digest


def _next_job_id(env: _Env) -> int:
    raw = env.store.get(NEXT_JOB_KEY)
    job_id = _U64.unpack(raw)[0] if raw else 1
    env.set(NEXT_JOB_KEY, _U64.pack(job_id + 1))
    return job_id


def _handle_post(ctx: TxContext, msg: PostJob) -> None:
    env = _env(ctx)
    params = env.params
    if len(msg.tasks) > params.compute_max_tasks:
        raise _fail(f"{len(msg.tasks)} tasks, at most {params.compute_max_tasks} per job")
    rate = replica_rate(msg.fuel_per_task, msg.deadline_blocks, params.block_time_ms)
    escrow = job_escrow(msg)
    env.move(ctx.sender, MODULE_ACCOUNT, escrow)
    slots = _slots(env)
    env.charge(params.compute_scan_gas * len(slots) * msg.redundancy)
    bond = msg.fuel_per_task * msg.price_per_fuel
    able = distinct_providers(slots, rate, msg.redundancy, bond)
    if able < msg.redundancy:
        raise _fail(f"redundancy {msg.redundancy} needs as many active providers of distinct "
                    f"owners and networks able to run {rate} fuel/s with a stake of at least "
                    f"{bond} (a replica's pay); there are {able}")
    job_id = _next_job_id(env)
    job = Job(ctx.sender, _store_module(env, msg.module),
              _store_module(env, msg.reduce) if msg.reduce else None, len(msg.tasks),
              msg.redundancy, msg.fuel_per_task, msg.price_per_fuel, msg.deadline_blocks,
              rate, escrow, 0, OPEN, 0, 0, ctx.block.height, 0, 0)
    placing: list[Slot] | None = slots  # fresh tasks are alike: once one waits, all do
    for idx, data in enumerate(msg.tasks):
        env.set(input_key(job_id, idx), data)
        task = Task(PENDING, msg.redundancy, 0, (), b"", "", 0, _ZERO32, 0)
        job, task = _settle(env, job_id, job, idx, task, placing)
        if task.status == PENDING:
            placing = None
        env.set(task_key(job_id, idx), task.encode())
    _store_slots(env, slots)
    env.set(job_key(job_id), job.encode())
    env.flush()
    env.emit("compute_job_post", job=job_id, owner=ctx.sender.hex(), tasks=len(msg.tasks),
             escrow=escrow, module=job.module_hash.hex())


def _open_task(env: _Env, job_id: int, idx: int) -> tuple[Job, Task]:
    job = get_job(env.store, job_id)
    if job is None:
        raise _fail(f"no job {job_id}")
    if job.status not in RUNNING_JOB:
        raise _fail(f"job {job_id} is {JOB_STATUS[job.status]}")
    task = get_task(env.store, job_id, idx) if idx < job.tasks else None
    if task is None:
        raise _fail(f"job {job_id} has no task {idx}")
    if task.status in FINAL:
        raise _fail(f"task {idx} of job {job_id} is {TASK_STATUS[task.status]}")
    return job, task


def _with_replica(task: Task, i: int, r: Replica) -> Task:
    return replace(task, replicas=(*task.replicas[:i], r, *task.replicas[i + 1:]))


def _my_replica(task: Task, sender: bytes, status: int, doing: str) -> int:
    for i, r in enumerate(task.replicas):
        if r.provider == sender and r.status in LIVE:
            if r.status != status:
                raise _fail(f"cannot {doing}: this replica is {REPLICA_STATUS[r.status]}")
            return i
    raise _fail(f"cannot {doing}: the sender is not assigned this task")


def _handle_commit(ctx: TxContext, msg: CommitResult) -> None:
    env = _env(ctx)
    _commit(env, ctx.sender, msg)
    env.flush()


def _commit(env: _Env, sender: bytes, msg: CommitResult) -> None:
    job, task = _open_task(env, msg.job, msg.task)
    i = _my_replica(task, sender, ASSIGNED, "commit")
    r = task.replicas[i]
    p = _need_provider(env, sender)
    now = env.block.time_ms
    busy = max(0, now - max(r.assigned_ms, p.last_commit_ms))
    env.delete(_deadline_key(r.deadline, msg.job, msg.task, sender))
    r = replace(r, status=COMMITTED, commitment=msg.commitment, deadline=0, busy_ms=busy)
    _owe(env, sender, msg.job, msg.task, OWE_NOTHING, 0)  # until reveals open
    env.put_provider(sender, replace(p, last_commit_ms=now, misses=0))
    task = _with_replica(task, i, r)
    job, task = _settle(env, msg.job, job, msg.task, task)
    _put(env, msg.job, job, msg.task, task)
    env.emit("compute_commit", address=sender.hex(), job=msg.job, task=msg.task)


def _handle_reveal(ctx: TxContext, msg: RevealResult) -> None:
    env = _env(ctx)
    _reveal(env, ctx.sender, msg)
    env.flush()


def _reveal(env: _Env, sender: bytes, msg: RevealResult) -> None:
    job, task = _open_task(env, msg.job, msg.task)
    i = _my_replica(task, sender, COMMITTED, "reveal")
    if task.status != T_COMMITTED:
        raise _fail("reveals open once every replica of the task has committed")
    if msg.fuel_used > job.fuel_per_task:
        raise _fail(f"fuel used {msg.fuel_used} above the task's limit {job.fuel_per_task}")
    r = task.replicas[i]
    if digest_commitment(msg.digest, msg.error, msg.fuel_used, sender) != r.commitment:
        raise _fail("reveal does not match the commitment")
    env.delete(_deadline_key(r.deadline, msg.job, msg.task, sender))
    if ABSTAIN_MARK in msg.error:  # not a vote: the same module may pass elsewhere
        _release(env, msg.job, job, msg.task, r)
        r = replace(r, status=ABSTAINED, deadline=0, error=msg.error, fuel_used=msg.fuel_used)
    else:
        r = replace(r, status=REVEALED, deadline=0, digest=msg.digest, error=msg.error,
                    fuel_used=msg.fuel_used)
        _owe(env, sender, msg.job, msg.task, OWE_NOTHING, 0)
    task = _with_replica(task, i, r)
    job, task = _settle(env, msg.job, job, msg.task, task)
    _put(env, msg.job, job, msg.task, task)
    env.emit("compute_reveal", address=sender.hex(), job=msg.job, task=msg.task)


def _each(ctx: TxContext, items: tuple[Any, ...], handle: Any, what: str) -> None:
    """A batch is all or nothing, like any transaction; the error names the item. One
    ``_Env`` for the batch: the provider's record is written once, not once per item."""
    env = _env(ctx)
    for item in items:
        try:
            handle(env, ctx.sender, item)
        except TxError as exc:
            if isinstance(exc, OutOfGas):
                raise
            raise TxError(exc.code, f"{what} for job {item.job} task {item.task}: "
                                    f"{exc.message}") from None
    env.flush()


def _handle_commits(ctx: TxContext, msg: CommitResults) -> None:
    _each(ctx, msg.commits, _commit, "commit")


def _handle_reveals(ctx: TxContext, msg: RevealResults) -> None:
    _each(ctx, msg.reveals, _reveal, "reveal")


def _handle_release(ctx: TxContext, msg: ReleaseOutputs) -> None:
    _each(ctx, msg.releases, _release_output, "release")


def _release_output(env: _Env, sender: bytes, msg: ReleaseOutput) -> None:
    """Anyone holding the agreed output may put it on chain (the winners owe it). A task a
    co-winner released in the same block is skipped, so a batch does not fail for it."""
    job = get_job(env.store, msg.job)
    task = get_task(env.store, msg.job, msg.task) if job is not None else None
    if job is None or task is None:
        raise _fail(f"no task {msg.task} in job {msg.job}")
    digest = output_digest(msg.output, round_salt(msg.job, msg.task, task.round))
    if task.status == VERIFIED and digest == task.digest:
        return
    if task.status != AGREED:
        raise _fail(f"task is {TASK_STATUS[task.status]}, not waiting for its output")
    if digest != task.digest:
        raise _fail("output does not match the digest the replicas agreed on")
    env.charge(env.params.gas_per_tx_byte * len(msg.output))  # kept in state for ever
    job, task = _verified(env, msg.job, job, msg.task, task, msg.output)
    _put(env, msg.job, job, msg.task, task)


def _handle_cancel(ctx: TxContext, msg: CancelJob) -> None:
    """Stop a job: tasks no replica has committed to are cancelled, their replicas released
    unpaid and their escrow returned at once. A task with a commitment runs to its end:
    its replicas have done the work, and a cancel sent after seeing a result must not
    take their pay away. The job closes (cancelled) when the last of those ends."""
    env = _env(ctx)
    job = get_job(env.store, msg.job)
    if job is None:
        raise _fail(f"no job {msg.job}")
    if job.requester != ctx.sender:
        raise _fail("only the requester can cancel a job")
    if job.status != OPEN:
        raise _fail(f"job {msg.job} is {JOB_STATUS[job.status]}")
    job = replace(job, status=CANCELLING)
    refund = 0
    for idx in range(job.tasks):
        task = get_task(env.store, msg.job, idx)
        assert task is not None
        if task.status in FINAL or task.status == AGREED or any(
                r.status in (COMMITTED, REVEALED) for r in task.replicas):
            continue
        job, task = _finish_task(env, msg.job, job, idx, task, CANCELLED)
        env.set(task_key(msg.job, idx), task.encode())
        refund += job.redundancy * job.fuel_per_task * job.price_per_fuel
    if job.status == CANCELLING:  # tasks still run: the cancelled ones' budgets go back now
        env.move(MODULE_ACCOUNT, job.requester, refund)
        job = replace(job, escrow=job.escrow - refund)
        env.emit("compute_job_cancelling", job=msg.job, owner=job.requester.hex(),
                 refund=refund, running=job.tasks - job.verified - job.failed - job.cancelled)
    env.set(job_key(msg.job), job.encode())
    env.flush()


# --- queries -----------------------------------------------------------------------------------


def _params(view: Any) -> Params:
    raw = view.get(PARAMS_KEY)
    return Params.decode(raw) if raw is not None else Params()


def provider_view(view: Any, address: bytes) -> ProviderView | None:
    p = get_provider(view, address)
    if p is None:
        return None
    return ProviderView(address, p, effective_capability(p, _params(view)))


def list_providers(view: Any) -> list[ProviderView]:
    params = _params(view)
    start = len(PROVIDER_PREFIX)
    out = []
    for key, raw in view.iter_prefix(PROVIDER_PREFIX):
        p = Provider.decode(raw)
        out.append(ProviderView(key[start:], p, effective_capability(p, params)))
    return out


def _task_view(idx: int, task: Task) -> TaskView:
    replicas = tuple(ReplicaView(r.provider, REPLICA_STATUS[r.status], r.deadline, r.digest,
                                 r.error, r.fuel_used) for r in task.replicas)
    return TaskView(idx, TASK_STATUS[task.status], task.want, replicas, task.output, task.error,
                    task.fuel_used, task.digest, task.deadline, task.round)


def job_view(view: Any, job_id: int, with_tasks: bool = True) -> JobView | None:
    job = get_job(view, job_id)
    if job is None:
        return None
    tasks = []
    for idx in range(job.tasks if with_tasks else 0):
        task = get_task(view, job_id, idx)
        assert task is not None
        tasks.append(_task_view(idx, task))
    return JobView(job_id, JOB_STATUS[job.status], job, tuple(tasks))


ACTIONS = {OWE_COMMIT: "commit", OWE_REVEAL: "reveal", OWE_NOTHING: "wait",
           OWE_RELEASE: "release"}


def assignments(view: Any, address: bytes) -> list[Assignment]:
    """What a worker must run or answer now, in (job, task) order. Read from the worker's
    index alone (plus the job and, for a commit owed, the task's input): it is polled
    every block, so it decodes no task."""
    prefix = ASSIGNED_PREFIX + address
    out = []
    jobs: dict[int, Job | None] = {}  # a worker holds many tasks of few jobs
    for key, owed in view.iter_prefix(prefix):
        job_id, idx = _split_jt(key[len(prefix):])
        if job_id not in jobs:
            jobs[job_id] = get_job(view, job_id)
        job = jobs[job_id]
        assert job is not None
        action = ACTIONS[owed[:1]]
        data = task_input(view, job_id, idx) or b"" if action == "commit" else b""
        out.append(Assignment(job_id, idx, job.module_hash, data, job.fuel_per_task,
                              _U64.unpack_from(owed, 1)[0], action,
                              round_salt(job_id, idx, _U32.unpack_from(owed, 9)[0])))
    return out


def _address(args: dict[str, str]) -> bytes:
    return from_bech32(args["address"])


class Compute(Module):
    name = "compute"

    def messages(self) -> dict[str, Msg]:
        return {
            "compute/register_provider": Msg(RegisterProvider, _handle_register,
                                             _validate_register, spend=lambda m: m.stake),
            "compute/deregister": Msg(Deregister, _handle_deregister),
            "compute/post_job": Msg(PostJob, _handle_post, _validate_post, spend=job_escrow),
            "compute/commit_result": Msg(CommitResult, _handle_commit),
            "compute/reveal_result": Msg(RevealResult, _handle_reveal, _validate_reveal),
            "compute/commit_results": Msg(CommitResults, _handle_commits, _validate_commits),
            "compute/reveal_results": Msg(RevealResults, _handle_reveals, _validate_reveals),
            "compute/release_outputs": Msg(ReleaseOutputs, _handle_release,
                                           _validate_releases),
            "compute/cancel_job": Msg(CancelJob, _handle_cancel),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "provider": lambda view, args: provider_view(view, _address(args)),
            "providers": lambda view, args: list_providers(view),
            "job": lambda view, args: job_view(view, int(args["id"])),
            "result": lambda view, args: job_outputs(view, int(args["id"])),
            "assignments": lambda view, args: assignments(view, _address(args)),
            "module": lambda view, args: get_module(view, bytes.fromhex(args["hash"])),
            "placing": lambda view, args: placing(view),
        }

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        env = _Env(store, block, None, [])
        _expire(env)
        env.flush()
        _place_pending(env)
        env.flush()
        return env.events
