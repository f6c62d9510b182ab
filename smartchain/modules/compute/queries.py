"""The compute module's HTTP queries: providers, their assignments, jobs, results, modules."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.compute.module import (
    assignments,
    get_module,
    job_view,
    list_providers,
    provider_view,
)
from smartchain.modules.compute.types import TASK_STATUS, JobView, ProviderView, TaskView
from smartchain.modules.query import (
    ADDRESS,
    FLAG,
    HEX32,
    U64,
    U64_INT,
    UNITS,
    HttpQuery,
    ModuleApi,
    Param,
    QueryError,
    parse_address,
    parse_flag,
    parse_hex32,
    parse_u64,
    ref,
)
from smartchain.state.store import StateReader
from smartchain.types.amount import format_hpc

TAG = "compute"
TASK_STATES = ("pending", "assigned", "committed", "verified", "failed", "cancelled",
               "agreed")


def u64_value(data: bytes) -> int | None:
    """An 8-byte output read as the little-endian integer the example modules produce."""
    return int.from_bytes(data, "little") if len(data) == 8 else None


def compute_provider_json(v: ProviderView) -> dict[str, Any]:
    p = v.provider
    return {
        "address": to_bech32(v.address), "active": p.active,
        "capability": str(p.capability), "effective_capability": str(v.effective_capability),
        "stake": str(p.stake), "stake_hpc": format_hpc(p.stake),
        "reputation": str(p.reputation), "load": p.load, "reserved": str(p.reserved),
        "verified_fuel": str(p.verified_fuel), "verified_ms": str(p.verified_ms),
        "slashed": str(p.slashed), "misses": p.misses, "registered": str(p.registered),
        "owner": to_bech32(p.owner), "network": p.network, "bonded": str(p.bonded),
    }


def _task_json(t: TaskView) -> dict[str, Any]:
    return {
        "index": t.index, "status": t.status, "want": t.want,
        "replicas": [{"provider": to_bech32(r.provider), "status": r.status,
                      "deadline": str(r.deadline), "fuel_used": str(r.fuel_used),
                      "error": r.error} for r in t.replicas],
        "output_size": len(t.output), "error": t.error, "fuel_used": str(t.fuel_used),
        "deadline": str(t.deadline), "round": t.round,
    }


def compute_job_json(v: JobView, with_tasks: bool = True) -> dict[str, Any]:
    """A job's status: its terms, money, and (``with_tasks``) each task's state with counts
    per state."""
    j = v.job
    out: dict[str, Any] = {
        "id": str(v.id), "status": v.status, "requester": to_bech32(j.requester),
        "module_hash": j.module_hash.hex(),
        "reduce_hash": j.reduce_hash.hex() if j.reduce_hash is not None else None,
        "tasks": j.tasks, "redundancy": j.redundancy, "fuel_per_task": str(j.fuel_per_task),
        "price_per_fuel": str(j.price_per_fuel), "deadline_blocks": str(j.deadline_blocks),
        "escrow": str(j.escrow), "escrow_hpc": format_hpc(j.escrow),
        "paid": str(j.paid), "paid_hpc": format_hpc(j.paid),
        "verified": j.verified, "failed": j.failed, "cancelled": j.cancelled,
        "height": str(j.height), "finished": str(j.finished),
    }
    if with_tasks:
        counts = dict.fromkeys(TASK_STATUS, 0)
        for t in v.tasks:
            counts[t.status] += 1
        out["counts"] = counts
        out["task_states"] = [_task_json(t) for t in v.tasks]
    return out


def compute_result_json(v: JobView) -> dict[str, Any]:
    """The verified outputs in task order (hex, and the integer when 8 bytes); tasks not
    verified have no output and say why."""
    outputs = []
    for t in v.tasks:
        item: dict[str, Any] = {"index": t.index, "status": t.status}
        if t.status == "verified":
            item["output"] = t.output.hex()
            value = u64_value(t.output)
            if value is not None:
                item["value"] = str(value)
            if t.error:
                item["error"] = t.error  # a verified runner error (out of fuel, a trap)
        elif t.error:
            item["error"] = t.error
        outputs.append(item)
    return {"id": str(v.id), "status": v.status, "module_hash": v.job.module_hash.hex(),
            "reduce_hash": v.job.reduce_hash.hex() if v.job.reduce_hash is not None else None,
            "complete": all(t.status == "verified" and not t.error for t in v.tasks),
            "outputs": outputs}


def _providers(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"providers": [compute_provider_json(p) for p in list_providers(reader)]}


def _provider(reader: StateReader, args: dict[str, Any]) -> Any:
    view = provider_view(reader, args["address"])
    if view is None:
        raise QueryError(404, "not_found", f"no compute provider {to_bech32(args['address'])}")
    return compute_provider_json(view)


def _assignments(reader: StateReader, args: dict[str, Any]) -> Any:
    address = args["address"]
    return {"address": to_bech32(address), "assignments": [
        {"job": str(a.job), "task": a.task, "module_hash": a.module_hash.hex(),
         "input": a.input.hex(), "fuel": str(a.fuel), "deadline": str(a.deadline),
         "action": a.action, "salt": a.salt.hex()} for a in assignments(reader, address)]}


def _job_view(reader: StateReader, job_id: int, with_tasks: bool = True) -> JobView:
    view = job_view(reader, job_id, with_tasks=with_tasks)
    if view is None:
        raise QueryError(404, "not_found", f"no compute job {job_id}")
    return view


def _job(reader: StateReader, args: dict[str, Any]) -> Any:
    with_tasks = args["tasks"]
    return compute_job_json(_job_view(reader, args["id"], with_tasks), with_tasks)


def _result(reader: StateReader, args: dict[str, Any]) -> Any:
    return compute_result_json(_job_view(reader, args["id"]))


def _module(reader: StateReader, args: dict[str, Any]) -> Any:
    digest = args["hash"]
    module = get_module(reader, digest)
    if module is None:
        raise QueryError(404, "not_found", f"no compute module {digest.hex()}")
    out: dict[str, Any] = {"hash": digest.hex(), "size": len(module)}
    if args["bytes"]:
        out["hex"] = module.hex()
    return out


_ADDRESS = Param("address", ADDRESS, parse_address)
_JOB_ID = Param("id", U64_INT, parse_u64("job id"))

API = ModuleApi(
    queries=(
        HttpQuery("/v1/compute/providers", "listComputeProviders", TAG,
                  "Registered compute providers, in address order", _providers,
                  {"type": "object", "required": ["providers"], "properties": {
                      "providers": {"type": "array", "items": ref("ComputeProvider")}}},
                  "all providers"),
        HttpQuery("/v1/compute/providers/{address}", "getComputeProvider", TAG,
                  "One compute provider: capability, stake, reputation, load", _provider,
                  ref("ComputeProvider"), "provider", (_ADDRESS,),
                  {400: "invalid address", 404: "not a provider"}),
        HttpQuery("/v1/compute/providers/{address}/assignments", "listComputeAssignments", TAG,
                  "What a provider must run or answer now, in (job, task) order: the task's "
                  "input, fuel and deadline, and commit, reveal or wait", _assignments,
                  {"type": "object", "required": ["assignments"],
                   "properties": {"address": ADDRESS, "assignments": {
                       "type": "array", "items": ref("ComputeAssignment")}}},
                  "assignments (empty for an address that holds none)", (_ADDRESS,),
                  {400: "invalid address"}),
        HttpQuery("/v1/compute/jobs/{id}", "getComputeJob", TAG,
                  "A compute job: terms, escrow, and each task's state with counts "
                  "(?tasks=0: the job alone, no counts or task_states)", _job,
                  ref("ComputeJob"), "job",
                  (Param("tasks", FLAG, parse_flag("tasks"), "query", "1"), _JOB_ID),
                  {400: "malformed job id", 404: "no such job"}),
        HttpQuery("/v1/compute/jobs/{id}/result", "getComputeResult", TAG,
                  "A compute job's verified outputs in task order", _result,
                  ref("ComputeResult"), "outputs", (_JOB_ID,),
                  {400: "malformed job id", 404: "no such job"}),
        HttpQuery("/v1/compute/modules/{hash}", "getComputeModule", TAG,
                  "A task or reduce module kept on chain: its size, and its bytes with "
                  "?bytes=1", _module, ref("ComputeModule"), "module",
                  (Param("hash", HEX32, parse_hex32("hash")),
                   Param("bytes", FLAG, parse_flag("bytes"), "query", "0")),
                  {400: "malformed hash or flag", 404: "no such module"}),
    ),
    schemas={
        "ComputeProvider": {
            "type": "object", "required": ["address", "active", "capability", "stake"],
            "properties": {
                "address": ADDRESS, "active": {"type": "boolean"},
                "capability": {**U64, "description": "declared fuel/s"},
                "effective_capability": {**U64, "description": "its scheduling weight: "
                                         "probation plus verified fuel, capped by capability "
                                         "and stake"},
                "stake": UNITS, "stake_hpc": {"type": "string"}, "reputation": U64,
                "load": {"type": "integer", "description": "replicas it holds"},
                "reserved": U64, "verified_fuel": U64, "verified_ms": U64, "slashed": UNITS,
                "misses": {"type": "integer"}, "registered": U64, "owner": ADDRESS,
                "network": {"type": "string", "description": "declared network (/24, /48), "
                            "or empty"},
                "bonded": {**UNITS, "description": "stake backing the pay of replicas it "
                           "holds"},
            },
        },
        "ComputeJob": {
            "type": "object", "required": ["id", "status", "tasks", "verified", "failed"],
            "properties": {
                "id": U64, "status": {"enum": ["open", "done", "cancelled", "cancelling"]},
                "requester": ADDRESS, "module_hash": HEX32,
                "reduce_hash": {"oneOf": [HEX32, {"type": "null"}]},
                "tasks": {"type": "integer"}, "redundancy": {"type": "integer"},
                "fuel_per_task": U64, "price_per_fuel": UNITS, "deadline_blocks": U64,
                "escrow": UNITS, "escrow_hpc": {"type": "string"}, "paid": UNITS,
                "paid_hpc": {"type": "string"}, "verified": {"type": "integer"},
                "failed": {"type": "integer"}, "height": U64, "finished": U64,
                "counts": {"type": "object", "description": "tasks per state",
                           "additionalProperties": {"type": "integer"},
                           "properties": {s: {"type": "integer"} for s in TASK_STATES}},
                "task_states": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"}, "status": {"enum": list(TASK_STATES)},
                        "want": {"type": "integer"}, "output_size": {"type": "integer"},
                        "error": {"type": "string"}, "fuel_used": U64,
                        "deadline": {**U64, "description": "placement or release deadline"},
                        "round": {"type": "integer", "description":
                                  "commit round: replicas commit to digests salted for it"},
                        "replicas": {"type": "array", "items": {
                            "type": "object", "properties": {
                                "provider": ADDRESS, "status": {"type": "string"},
                                "deadline": U64, "fuel_used": U64,
                                "error": {"type": "string"}}}},
                    }}},
            },
        },
        "ComputeResult": {
            "type": "object", "required": ["id", "status", "complete", "outputs"],
            "properties": {
                "id": U64, "status": {"enum": ["open", "done", "cancelled", "cancelling"]},
                "module_hash": HEX32, "reduce_hash": {"oneOf": [HEX32, {"type": "null"}]},
                "complete": {"type": "boolean",
                             "description": "every task verified without a runner error"},
                "outputs": {"type": "array", "items": {
                    "type": "object", "required": ["index", "status"],
                    "properties": {
                        "index": {"type": "integer"}, "status": {"enum": list(TASK_STATES)},
                        "output": {"type": "string",
                                   "description": "hex, verified tasks only"},
                        "value": {**U64, "description": "the output as a little-endian "
                                  "integer, when it is 8 bytes"},
                        "error": {"type": "string"},
                    }}},
            },
        },
        "ComputeAssignment": {
            "type": "object", "required": ["job", "task", "action"],
            "properties": {
                "job": U64, "task": {"type": "integer"}, "module_hash": HEX32,
                "input": {"type": "string", "description": "hex"}, "fuel": U64,
                "deadline": {**U64, "description": "last height to act; 0 while waiting"},
                "action": {"enum": ["commit", "reveal", "release", "wait"]},
                "salt": {"type": "string", "description": "hex; digest the output with it "
                         "to commit and reveal (empty in a task's first round)"},
            },
        },
        "ComputeModule": {
            "type": "object", "required": ["hash", "size"],
            "properties": {"hash": HEX32, "size": {"type": "integer"},
                           "hex": {"type": "string",
                                   "description": "the module, with ?bytes=1"}},
        },
    },
)
