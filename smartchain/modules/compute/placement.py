"""Placing what waits for replicas in end_block, fairly and under a budget."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

from smartchain.modules.compute.keys import (
    _job_queue_key,
    _split_jt,
    get_task,
    task_key,
)
from smartchain.modules.compute.scheduling import (
    Slot,
)
from smartchain.modules.compute.settlement import (
    _settle,
)
from smartchain.modules.compute.state import (
    _Budget,
    _enqueue_job,
    _enqueue_task,
    _Env,
    _place_bound,
    _slots,
    _store_slots,
)
from smartchain.modules.compute.types import (
    _U64,
    JOB_QUEUE_PREFIX,
    LIVE,
    OPEN,
    PENDING,
    PLACING_KEY,
    TASK_QUEUE_PREFIX,
    Job,
    Placing,
    Task,
    replace,
)


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
        job, task = env.job(job_id), get_task(env.store, job_id, idx)
        assert job is not None and task is not None, "a queued task does not exist"
        bound = _place_bound(task, len(slots))
        if bound > budget.left - reserve:
            if bound <= allowance:
                break  # it goes first next block
        else:
            new_job, task = _try(env, job_id, job, idx, task, slots, budget)
            if new_job != job:
                env.put_job(job_id, new_job)
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
        job = env.job(job_id)
        assert job is not None, "a queued job does not exist"
        job, done = _job_turn(env, job_id, job, slots, budget, allowance)
        env.put_job(job_id, job)
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
