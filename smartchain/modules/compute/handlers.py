"""The compute message handlers."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.hashing import h256
from smartchain.modules.compute.keys import (
    _deadline_key,
    get_task,
    input_key,
    network_group,
    task_key,
)
from smartchain.modules.compute.placement import (
    distinct_providers,
)
from smartchain.modules.compute.scheduling import (
    Slot,
    replica_rate,
)
from smartchain.modules.compute.settlement import (
    _finish_task,
    _settle,
    _verified,
)
from smartchain.modules.compute.state import (
    _Env,
    _need_provider,
    _owe,
    _put,
    _release,
    _slots,
    _store_slots,
)
from smartchain.modules.compute.types import (
    _U64,
    _ZERO32,
    ABSTAIN_MARK,
    ABSTAINED,
    AGREED,
    ASSIGNED,
    ASSIGNED_PREFIX,
    CANCELLED,
    CANCELLING,
    COMMITTED,
    FINAL,
    INITIAL_REPUTATION,
    JOB_STATUS,
    LIVE,
    MODULE_ACCOUNT,
    MODULE_PREFIX,
    NEXT_JOB_KEY,
    OPEN,
    OWE_NOTHING,
    PENDING,
    REPLICA_STATUS,
    REVEALED,
    RUNNING_JOB,
    T_COMMITTED,
    TASK_STATUS,
    VERIFIED,
    CancelJob,
    CommitResult,
    CommitResults,
    Deregister,
    Job,
    PostJob,
    Provider,
    RegisterProvider,
    ReleaseOutput,
    ReleaseOutputs,
    Replica,
    RevealResult,
    RevealResults,
    Task,
    digest_commitment,
    job_escrow,
    output_digest,
    replace,
    round_salt,
)
from smartchain.state.module import TxContext
from smartchain.types.errors import Code, OutOfGas, TxError

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
    env.put_job(job_id, job)
    env.flush()
    env.emit("compute_job_post", job=job_id, owner=ctx.sender.hex(), tasks=len(msg.tasks),
             escrow=escrow, module=job.module_hash.hex())


def _open_task(env: _Env, job_id: int, idx: int) -> tuple[Job, Task]:
    job = env.job(job_id)
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
    job = env.job(msg.job)
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
    job = env.job(msg.job)
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
    env.put_job(msg.job, job)
    env.flush()
