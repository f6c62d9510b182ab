"""The compute module's wire types: payloads, stored records, views and constants.

Importable on their own (codec, crypto and shared types only), so an SDK or a device can
build and read compute transactions without the node.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from smartchain.codec import (
    I64,
    U8,
    U32,
    U64,
    U128,
    Bool,
    Bytes,
    Fixed20,
    Fixed32,
    Str,
    Struct,
    list_of,
    optional,
)
from smartchain.crypto.hashing import h256_tagged

MODULE_ACCOUNT = h256_tagged(b"smart/module", b"compute")[:20]

PROVIDER_PREFIX = b"compute/prov/"
JOB_PREFIX = b"compute/job/"
TASK_PREFIX = b"compute/task/"
INPUT_PREFIX = b"compute/input/"
MODULE_PREFIX = b"compute/module/"
# Tasks short of replicas wait in two queues that ``end_block`` serves in turn (see
# ``_place_pending``). Started tasks (they hold or held replicas): the index
# STARTED + job + task -> kind + seq, and the queue TASK_QUEUE + kind + seq + job + task,
# short ones (holding live replicas) before those that lost them all. Fresh tasks (never
# placed) are the tasks from ``Job.fresh`` on that are still pending; their job waits in
# JOB_QUEUE + seq + job.
STARTED_PREFIX = b"compute/started/"
TASK_QUEUE_PREFIX = b"compute/taskq/"
JOB_QUEUE_PREFIX = b"compute/jobq/"
QUEUE_SEQ_KEY = b"compute/queue_seq"  # the next place at the back of either queue
PLACING_KEY = b"compute/placing"  # what the last end_block that placed did (``Placing``)
SHORT, RESTART = b"1", b"2"  # task queue kinds: holds live replicas / lost them all
DEADLINE_PREFIX = b"compute/deadline/"  # + height + job + task + provider
ASSIGNED_PREFIX = b"compute/assigned/"  # + provider + job + task -> what the worker owes
NEXT_JOB_KEY = b"compute/next_job"
MARK = b"\x01"  # the value of index keys
# The value of an ASSIGNED key: what the worker owes (commit, reveal or nothing yet) and by
# when, so a worker polling every block reads its to-do list without decoding any task.
OWE_COMMIT, OWE_REVEAL, OWE_NOTHING, OWE_RELEASE = b"c", b"r", b"w", b"o"
# The "provider" of a task's own deadline key: when a task short of replicas must be whole
# again (placement deadline) or its agreed output must be on chain (release deadline).
TASK_MARK = bytes(20)

MAX_REDUNDANCY = 16
MAX_DEADLINE_BLOCKS = 1_000_000
MAX_ERROR = 256
MAX_NETWORK = 255
MAX_REPLICAS = 255  # ``Task.want`` is a u8
MAX_BATCH = 1_024  # commits or reveals in one transaction
INITIAL_REPUTATION = 1_000
MAX_REPUTATION = 1_000_000
REPUTATION_GAIN = 1  # per verified result
REPUTATION_SLASH = 100  # per out-voted result
REPUTATION_MISS = 10  # per missed deadline
ABSTAIN_MARK = "machine-dependent"  # in a runner error that must not count as a vote
BPS = 10_000
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1

ASSIGNED, COMMITTED, REVEALED, EXPIRED, ABSTAINED = range(5)
REPLICA_STATUS = ("assigned", "committed", "revealed", "expired", "abstained")
LIVE = frozenset({ASSIGNED, COMMITTED, REVEALED})  # replicas that hold a provider's capacity

PENDING, T_ASSIGNED, T_COMMITTED, VERIFIED, FAILED, CANCELLED, AGREED = range(7)
TASK_STATUS = ("pending", "assigned", "committed", "verified", "failed", "cancelled",
               "agreed")
FINAL = frozenset({VERIFIED, FAILED, CANCELLED})

OPEN, DONE, JOB_CANCELLED, CANCELLING = range(4)
JOB_STATUS = ("open", "done", "cancelled", "cancelling")
RUNNING_JOB = frozenset({OPEN, CANCELLING})  # jobs whose tasks still take answers

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_ZERO32 = bytes(32)


# --- stored records -----------------------------------------------------------------------

_R = TypeVar("_R")
_UNSET: Any = object()
_EVOLVERS: dict[type, Callable[..., Any]] = {}


def _evolver(cls: type) -> Callable[..., Any]:
    """``replace`` compiled for one record class: keyword defaults, one slot store per field."""
    names = [f.name for f in fields(cls)]
    ns: dict[str, Any] = {"_UNSET": _UNSET, "_new": object.__new__, "cls": cls}
    ns.update({f"_set_{n}": getattr(cls, n).__set__ for n in names})
    src = (f"def evolve(o, *, {', '.join(f'{n}=_UNSET' for n in names)}):\n    new = _new(cls)\n"
           + "".join(f"    _set_{n}(new, o.{n} if {n} is _UNSET else {n})\n" for n in names)
           + "    return new\n")
    exec(src, ns)  # our own field names only
    return ns["evolve"]  # type: ignore[no-any-return]


def replace(obj: _R, **changes: Any) -> _R:
    """``dataclasses.replace`` for the frozen slotted records here, about 3x faster: the
    handlers rebuild 30-odd records per task, and the generic one scans the fields each
    time. Records have no ``__post_init__``, so skipping ``__init__`` skips nothing."""
    evolve = _EVOLVERS.get(type(obj))
    if evolve is None:
        evolve = _EVOLVERS[type(obj)] = _evolver(type(obj))
    return evolve(obj, **changes)  # type: ignore[no-any-return]



@dataclass(frozen=True, slots=True)
class Provider(Struct):
    capability: U64  # declared fuel/s
    stake: U128  # locked in MODULE_ACCOUNT
    reputation: U64
    verified_fuel: U128  # fuel of its verified results
    verified_ms: U64  # busy time of those results: measured speed = fuel / time
    load: U32  # replicas it holds (assigned, committed or revealed, not yet decided)
    reserved: U64  # fuel/s those replicas need to finish by their deadlines
    slashed: U128  # total stake lost
    active: Bool  # gets new replicas
    current: I64  # SWRR current weight
    last_commit_ms: U64
    misses: U32  # deadlines missed since its last commit (registering again keeps them)
    registered: U64  # height
    owner: Fixed20  # the account operating it (itself unless declared): replicas of one
    network: Str  # task never go to two providers sharing an owner or a network
    bonded: U128 = 0  # stake backing the pay of the replicas it holds or owes an output for


@dataclass(frozen=True, slots=True)
class Replica(Struct):
    provider: Fixed20
    status: U8
    assigned_height: U64
    assigned_ms: U64
    deadline: U64  # last height to commit (or to reveal once reveals open); 0: none running
    commitment: Fixed32
    digest: Fixed32  # revealed: the hash of its output (the output itself comes later)
    error: Str
    fuel_used: U64
    busy_ms: U64


@dataclass(frozen=True, slots=True)
class Task(Struct):
    status: U8
    want: U8  # live replicas the task needs now (redundancy, more after a disagreement)
    bonus: U128  # slashed stake added to this task's budget
    replicas: list_of[Replica]
    output: Bytes  # the verified result
    error: Str
    fuel_used: U64
    digest: Fixed32  # the output hash a quorum agreed on (paid for; output released later)
    deadline: U64  # placement deadline (short of replicas) or release deadline; 0: none
    round: U32 = 0  # bumped when replicas are added after a reveal was public (``round_salt``)


@dataclass(frozen=True, slots=True)
class Job(Struct):
    requester: Fixed20
    module_hash: Fixed32
    reduce_hash: optional[Fixed32]
    tasks: U32
    redundancy: U8
    fuel_per_task: U64
    price_per_fuel: U64
    deadline_blocks: U64
    rate: U64  # fuel/s one replica reserves on its provider
    escrow: U128  # still locked for this job
    paid: U128
    status: U8
    verified: U32
    failed: U32
    height: U64  # posted at
    finished: U64  # height it was done or cancelled at, 0 while open
    cancelled: U32  # tasks cancelled (only tasks no replica had committed to)
    queued: U64 = 0  # its place in the job queue (it may have fresh tasks); 0: not queued
    fresh: U32 = 0  # while queued: its tasks before this one are not fresh


@dataclass(frozen=True, slots=True)
class Placing(Struct):
    """What ``end_block`` did placing replicas in the last block it had any to place: kept
    in state so anyone can check the work stays within ``compute_place_looks_per_block``."""

    height: U64
    looks: U64  # provider records and slots looked at
    tried: U32  # tasks it tried to place
    placed: U32  # tasks that got replicas


@dataclass(frozen=True, slots=True)
class _Outcome(Struct):
    digest: Fixed32
    error: Str
    fuel_used: U64


# --- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterProvider(Struct):
    """Register, or update a registered provider: new capability, ``stake`` added."""

    capability: U64  # fuel/s
    stake: U128
    owner: Fixed20 = bytes(20)  # the operator's account; zero: the provider itself
    network: Str = ""  # the provider's public IP (or host name); "" or a private IP: none


@dataclass(frozen=True, slots=True)
class Deregister(Struct):
    pass


@dataclass(frozen=True, slots=True)
class PostJob(Struct):
    module: Bytes  # the WebAssembly task module
    tasks: list_of[Bytes]  # one input per task (the client slices)
    fuel_per_task: U64
    price_per_fuel: U64  # base units of HPC
    deadline_blocks: U64  # a replica commits within this many blocks of its assignment
    redundancy: U8 = 2
    reduce: Bytes = b""  # optional reduce module, kept for the client


@dataclass(frozen=True, slots=True)
class CommitResult(Struct):
    job: U64
    task: U32
    commitment: Fixed32


@dataclass(frozen=True, slots=True)
class RevealResult(Struct):
    """Opens a commitment with the output's hash, not the output: nobody, the requester
    included, learns the output before the quorum has paid for it."""

    job: U64
    task: U32
    digest: Fixed32  # output_digest(output)
    error: Str  # the runner's error, '' when the task ran to its end
    fuel_used: U64


@dataclass(frozen=True, slots=True)
class CommitResults(Struct):
    """Many commits in one transaction: a worker answers all it finished in one block, so
    the chain verifies one signature and charges one base fee instead of one per task."""

    commits: list_of[CommitResult]


@dataclass(frozen=True, slots=True)
class RevealResults(Struct):
    reveals: list_of[RevealResult]


@dataclass(frozen=True, slots=True)
class ReleaseOutput(Struct):
    """The output of a task whose hash a quorum agreed on (and was paid for)."""

    job: U64
    task: U32
    output: Bytes


@dataclass(frozen=True, slots=True)
class ReleaseOutputs(Struct):
    releases: list_of[ReleaseOutput]


# The gas limit a provider's answers are sent with. Simulating an answer cannot serve: the
# answer that completes a quorum settles the task (pays, slashes, may close the job), and
# which one that is depends on the other providers' answers in the same block. So answers
# go with these bounds, shared by the node's worker and the SDK.
ANSWER_GAS = 1_000_000  # a transaction of answers itself...
COMMIT_GAS = 200_000  # ...plus this per commit (writes, and a verification it may finish)
REVEAL_GAS = 300_000  # ...or per reveal
RELEASE_GAS = 100_000  # ...or per release, plus RELEASE_BYTE_GAS per byte of its output
RELEASE_BYTE_GAS = 20


def answer_gas_limit(msg: Struct, max_tx_gas: int) -> int:
    """The gas limit for a commit, reveal or release message (one or a batch)."""
    if isinstance(msg, CommitResult | RevealResult):
        items: tuple[Any, ...] = (msg,)
    elif isinstance(msg, CommitResults):
        items = msg.commits
    elif isinstance(msg, RevealResults):
        items = msg.reveals
    elif isinstance(msg, ReleaseOutputs):
        items = msg.releases
    else:
        raise TypeError(f"not an answer message: {type(msg).__name__}")
    gas = ANSWER_GAS + sum(
        COMMIT_GAS if isinstance(it, CommitResult) else REVEAL_GAS
        if isinstance(it, RevealResult) else RELEASE_GAS + RELEASE_BYTE_GAS * len(it.output)
        for it in items)
    return min(gas, max_tx_gas)


@dataclass(frozen=True, slots=True)
class CancelJob(Struct):
    job: U64


PAYLOADS: dict[str, type[Struct]] = {
    "compute/register_provider": RegisterProvider,
    "compute/deregister": Deregister,
    "compute/post_job": PostJob,
    "compute/commit_result": CommitResult,
    "compute/reveal_result": RevealResult,
    "compute/commit_results": CommitResults,
    "compute/reveal_results": RevealResults,
    "compute/release_outputs": ReleaseOutputs,
    "compute/cancel_job": CancelJob,
}


def _jt(job_id: int, idx: int) -> bytes:
    return _U64.pack(job_id) + _U32.pack(idx)


def round_salt(job_id: int, idx: int, rnd: int) -> bytes:
    """What a task's round ``rnd`` mixes into output digests (nothing in round 0): digests
    revealed in an earlier round say nothing about this round's."""
    return h256_tagged(b"smart/compute/round", _jt(job_id, idx), _U32.pack(rnd)) if rnd else b""


def output_digest(output: bytes, salt: bytes = b"") -> bytes:
    """What a reveal shows of an output: replicas are compared by it. An empty output (and
    a runner error, which has none) hides nothing, so it is never salted."""
    if salt and output:
        return h256_tagged(b"smart/compute/out-salted", salt, output)
    return h256_tagged(b"smart/compute/out", output)


EMPTY_DIGEST = output_digest(b"")


def digest_commitment(digest: bytes, error: str, fuel_used: int, provider: bytes) -> bytes:
    return h256_tagged(b"smart/compute/c", _Outcome(digest, error, fuel_used).encode(), provider)


def commitment(output: bytes, error: str, fuel_used: int, provider: bytes,
               salt: bytes = b"") -> bytes:
    """What a worker commits to: its result (digested with the task round's ``salt``, as
    its assignment says) bound to its own address."""
    return digest_commitment(output_digest(output, salt), error, fuel_used, provider)


def job_escrow(msg: PostJob) -> int:
    """What posting locks: every replica at its full fuel."""
    return len(msg.tasks) * msg.redundancy * msg.fuel_per_task * msg.price_per_fuel


@dataclass(frozen=True, slots=True)
class ProviderView(Struct):
    address: Fixed20
    provider: Provider
    effective_capability: U64  # its scheduling weight


@dataclass(frozen=True, slots=True)
class ReplicaView(Struct):
    provider: Fixed20
    status: Str
    deadline: U64
    digest: Fixed32
    error: Str
    fuel_used: U64


@dataclass(frozen=True, slots=True)
class TaskView(Struct):
    index: U32
    status: Str
    want: U8
    replicas: list_of[ReplicaView]
    output: Bytes
    error: Str
    fuel_used: U64
    digest: Fixed32
    deadline: U64
    round: U32 = 0  # a replica added after a public reveal starts a new (salted) round


@dataclass(frozen=True, slots=True)
class JobView(Struct):
    id: U64
    status: Str
    job: Job
    tasks: list_of[TaskView]


@dataclass(frozen=True, slots=True)
class Assignment(Struct):
    """One replica a worker holds, with what it needs to run it and what to do next."""

    job: U64
    task: U32
    module_hash: Fixed32
    input: Bytes  # empty unless a commit is owed: nothing to run
    fuel: U64
    deadline: U64  # 0 while waiting for the other replicas
    action: Str  # "commit", "reveal", "release" (the output, once paid) or "wait"
    salt: Bytes = b""  # digest the output with it (``output_digest``) to commit and reveal


