"""Keys of the compute module's state, and the reads any module or query may use."""

from __future__ import annotations

import ipaddress
from typing import Any

from smartchain.modules.compute.types import (
    _U32,
    _U64,
    ASSIGNED_PREFIX,
    DEADLINE_PREFIX,
    INPUT_PREFIX,
    JOB_PREFIX,
    JOB_QUEUE_PREFIX,
    MODULE_PREFIX,
    PLACING_KEY,
    PROVIDER_PREFIX,
    STARTED_PREFIX,
    TASK_PREFIX,
    VERIFIED,
    Job,
    Placing,
    Provider,
    Task,
    _jt,
)
from smartchain.state.params import Params
from smartchain.state.store import StateView
from smartchain.types.amount import UNITS_PER_HPC

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
