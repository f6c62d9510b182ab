"""The shared state logic: the module's env, queues, and placing one replica of a task."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from smartchain.crypto.hashing import h256_tagged
from smartchain.modules.compute.keys import (
    _assigned_key,
    _deadline_key,
    _job_queue_key,
    _started_key,
    effective_capability,
    get_job,
    get_provider,
    job_key,
    provider_key,
    task_key,
)
from smartchain.modules.compute.scheduling import (
    Slot,
    replica_bond,
    swrr_pick,
)
from smartchain.modules.compute.types import (
    _U32,
    _U64,
    _ZERO32,
    ASSIGNED,
    COMMITTED,
    EXPIRED,
    I64_MAX,
    I64_MIN,
    LIVE,
    MARK,
    OWE_COMMIT,
    OWE_NOTHING,
    OWE_REVEAL,
    PROVIDER_PREFIX,
    QUEUE_SEQ_KEY,
    RESTART,
    REVEALED,
    SHORT,
    TASK_MARK,
    TASK_QUEUE_PREFIX,
    Job,
    Provider,
    Replica,
    Task,
    _jt,
    replace,
)
from smartchain.modules.env import ModuleEnv
from smartchain.state.module import BlockInfo, GasMeter
from smartchain.state.params import Params
from smartchain.state.store import Overlay
from smartchain.types.tx import Event

# --- the shared state logic ----------------------------------------------------------------------


class _Env(ModuleEnv[Provider]):
    """``ModuleEnv`` over compute providers, and the block's placement seed. Job records
    are cached like providers: a batch of 150 answers to one job decodes and writes the
    job once, not 150 times."""

    __slots__ = ("dirty_jobs", "jobs")

    def __init__(self, store: Overlay, block: BlockInfo, gas: GasMeter | None,
                 events: list[Event]) -> None:
        super().__init__(store, block, gas, events)
        self.jobs: dict[int, Job] = {}
        self.dirty_jobs: set[int] = set()

    def job(self, job_id: int) -> Job | None:
        job = self.jobs.get(job_id)
        if job is None:
            job = get_job(self.store, job_id)
            if job is not None:
                self.jobs[job_id] = job
        return job

    def put_job(self, job_id: int, job: Job) -> None:
        self.jobs[job_id] = job
        self.dirty_jobs.add(job_id)

    def flush(self) -> None:
        for job_id in sorted(self.dirty_jobs):
            self.set(job_key(job_id), self.jobs[job_id].encode())
        self.dirty_jobs.clear()
        super().flush()

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


def _owe(env: _Env, provider: bytes, job_id: int, idx: int, what: bytes, deadline: int,
         rnd: int = 0) -> None:
    env.set(_assigned_key(provider, job_id, idx), what + _U64.pack(deadline) + _U32.pack(rnd))


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
    env.put_job(job_id, job)


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
