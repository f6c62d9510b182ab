"""Stateless checks of the compute payloads (run before the mempool)."""

from __future__ import annotations

import threading
from typing import Any

from smartchain.compute.wasm import TaskRunner
from smartchain.modules.compute.keys import (
    network_group,
)
from smartchain.modules.compute.types import (
    EMPTY_DIGEST,
    MAX_BATCH,
    MAX_DEADLINE_BLOCKS,
    MAX_ERROR,
    MAX_NETWORK,
    MAX_REDUNDANCY,
    CommitResults,
    PostJob,
    RegisterProvider,
    ReleaseOutputs,
    RevealResult,
    RevealResults,
    job_escrow,
)
from smartchain.state.emission import MAX_SUPPLY
from smartchain.types.errors import Code, TxError

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
