"""Deciding a task by quorum, paying, slashing, and expiring missed deadlines."""

from __future__ import annotations

from dataclasses import replace

from smartchain.modules.compute.keys import (
    _assigned_key,
    _deadline_key,
    _split_jt,
    get_job,
    get_task,
)
from smartchain.modules.compute.scheduling import (
    Slot,
    replica_bond,
)
from smartchain.modules.compute.state import (
    _Budget,
    _Env,
    _need_provider,
    _new_round,
    _owe,
    _place,
    _put,
    _release,
    _reveal_deadlines,
    _set_pending,
    _set_task_deadline,
)
from smartchain.modules.compute.types import (
    _U64,
    ABSTAINED,
    AGREED,
    ASSIGNED,
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
    JOB_CANCELLED,
    JOB_STATUS,
    LIVE,
    MAX_REPLICAS,
    MAX_REPUTATION,
    MODULE_ACCOUNT,
    OWE_RELEASE,
    PENDING,
    REPUTATION_GAIN,
    REPUTATION_MISS,
    REPUTATION_SLASH,
    REVEALED,
    T_ASSIGNED,
    T_COMMITTED,
    TASK_MARK,
    VERIFIED,
    Job,
    Replica,
    Task,
)
from smartchain.modules.rewards.state import record_work


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
    record_work(env, r.provider, fuel=r.fuel_used)  # the epoch's rewards (docs/rewards.md)


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
