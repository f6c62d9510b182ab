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

The logic lives in parts, each importing only the ones before it: ``keys`` (keys and reads),
``scheduling`` (the policy over plain data), ``state`` (the env, queues, placing a replica),
``settlement`` (quorum, pay, slash, expiry), ``placement`` (end_block's budgeted placing),
``checks`` (stateless) and ``handlers``. This file keeps the queries and the ``Module`` that
wires them.
"""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.modules.compute.checks import (
    _validate_commits,
    _validate_post,
    _validate_register,
    _validate_releases,
    _validate_reveal,
    _validate_reveals,
    check_module,
)
from smartchain.modules.compute.handlers import (
    _handle_cancel,
    _handle_commit,
    _handle_commits,
    _handle_deregister,
    _handle_post,
    _handle_register,
    _handle_release,
    _handle_reveal,
    _handle_reveals,
)
from smartchain.modules.compute.invariants import invariants
from smartchain.modules.compute.keys import (
    _split_jt,
    effective_capability,
    get_job,
    get_module,
    get_provider,
    get_task,
    job_outputs,
    network_group,
    placing,
    task_input,
)
from smartchain.modules.compute.placement import (
    _place_pending,
)
from smartchain.modules.compute.scheduling import Slot, swrr_pick
from smartchain.modules.compute.settlement import (
    _expire,
)
from smartchain.modules.compute.state import (
    _Env,
)
from smartchain.modules.compute.types import (
    _U32,
    _U64,
    ASSIGNED_PREFIX,
    JOB_STATUS,
    OWE_COMMIT,
    OWE_NOTHING,
    OWE_RELEASE,
    OWE_REVEAL,
    PROVIDER_PREFIX,
    REPLICA_STATUS,
    TASK_STATUS,
    Assignment,
    CancelJob,
    CommitResult,
    CommitResults,
    Deregister,
    Job,
    JobView,
    PostJob,
    Provider,
    ProviderView,
    RegisterProvider,
    ReleaseOutputs,
    ReplicaView,
    RevealResult,
    RevealResults,
    Task,
    TaskView,
    digest_commitment,
    job_escrow,
    round_salt,
)
from smartchain.state.module import BlockInfo, Module, Msg, Query
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.store import Overlay
from smartchain.types.tx import Event

# What other layers import from here (the parts hold the logic).
__all__ = [
    "Assignment",
    "Compute",
    "JobView",
    "Provider",
    "Slot",
    "assignments",
    "check_module",
    "digest_commitment",
    "effective_capability",
    "get_module",
    "get_provider",
    "job_outputs",
    "job_view",
    "list_providers",
    "network_group",
    "placing",
    "provider_view",
    "swrr_pick",
]


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

    def invariants(self, view: Any) -> list[str]:
        return invariants(view)
