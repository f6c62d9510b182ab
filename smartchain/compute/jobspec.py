"""Compute job specs: what a job runs, on which inputs (sliced into tasks), for how much.

One spec format (TOML or JSON, documented in ``smart compute``'s help, paths relative to
the spec's own directory) for the CLI (``smart compute run``) and the SDK
(``client.compute.submit``): both parse, check and post it with the code here. Nothing here
talks to the node; a bad spec raises ``SpecError`` (an ``ApiError`` with code
``invalid_spec``) before anything is signed.
"""

from __future__ import annotations

import json
import struct
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartchain.modules.compute.types import PostJob
from smartchain.modules.sdk import ApiError
from smartchain.types.tx import Transaction

DEFAULT_REDUNDANCY = 2
DEFAULT_FUEL = 10_000_000
DEFAULT_PRICE = 1
DEFAULT_DEADLINE = 20
DEFAULT_REDUCE_FUEL = 1_000_000_000
WHITESPACE = b" \t\n\v\f\r"  # what wordcount.wasm (and bytes.split) call whitespace
U64_MAX = (1 << 64) - 1
SPEC_KEYS = {"module", "input", "input_file", "input_stored", "slice", "redundancy",
             "fuel_per_task",
             "max_price_per_fuel", "deadline_blocks", "reduce", "reduce_fuel"}


class JobError(ApiError):
    """A job refused here, before anything is signed or sent (``status`` 0): ``code`` is
    the contract's (``invalid_spec``, ``invalid_module``, ``tx_too_large``, ...)."""

    def __init__(self, message: str, code: str = "invalid_spec") -> None:
        super().__init__(0, code, message)


class SpecError(JobError):
    """A job spec that does not hold together; the message says where."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


# --- slicers ------------------------------------------------------------------------------


def slice_records(data: bytes, separator: bytes, per_task: int) -> list[bytes]:
    """``per_task`` records per task; each record keeps its separator, so the slices joined
    are the input. A trailing separator does not make an empty record."""
    if not separator:
        raise ValueError("the separator must not be empty")
    if per_task <= 0:
        raise ValueError("per_task must be a positive integer")
    records: list[bytes] = []
    start = 0
    while start < len(data):
        end = data.find(separator, start)
        end = len(data) if end < 0 else end + len(separator)
        records.append(data[start:end])
        start = end
    return [b"".join(records[i:i + per_task]) for i in range(0, len(records), per_task)]


def slice_bytes(data: bytes, size: int) -> list[bytes]:
    """Slices of about ``size`` bytes, each ending just after whitespace (or at the end of
    the input): at the last whitespace within ``size`` bytes, or, for a longer word, at the
    first whitespace after it. No word is split; the slices joined are the input."""
    if size <= 0:
        raise ValueError("size must be a positive integer")
    out: list[bytes] = []
    start, n = 0, len(data)
    while start < n:
        limit = start + size
        if limit >= n:
            out.append(data[start:])
            break
        cut = max(data.rfind(bytes([c]), start, limit) for c in WHITESPACE)
        if cut < 0:  # a word longer than size: end after it
            later = [i for i in (data.find(bytes([c]), limit) for c in WHITESPACE) if i >= 0]
            cut = min(later) if later else n - 1
        out.append(data[start:cut + 1])
        start = cut + 1
    return out


def _u64(v: Any, where: str) -> bytes:
    if type(v) is not int or not 0 <= v <= U64_MAX:
        raise SpecError(where, f"{v!r} is not an unsigned 64-bit integer")
    return struct.pack("<Q", v)


def slice_params(values: Any) -> list[bytes]:
    """One task per value: an integer as 8 bytes little-endian, a list of integers packed."""
    if not isinstance(values, list) or not values:
        raise SpecError("slice.values", "a non-empty list of integers (or of lists of them)")
    tasks = []
    for i, v in enumerate(values):
        if isinstance(v, list):
            tasks.append(b"".join(_u64(x, f"slice.values[{i}]") for x in v))
        else:
            tasks.append(_u64(v, f"slice.values[{i}]"))
    return tasks


# --- the job spec -------------------------------------------------------------------------


@dataclass
class JobSpec:
    module: bytes
    module_name: str
    inputs: list[bytes]
    redundancy: int = DEFAULT_REDUNDANCY
    fuel_per_task: int = DEFAULT_FUEL
    price_per_fuel: int = DEFAULT_PRICE
    deadline_blocks: int = DEFAULT_DEADLINE
    reduce: bytes = b""
    reduce_name: str = ""
    reduce_fuel: int = DEFAULT_REDUCE_FUEL

    @property
    def escrow(self) -> int:
        return len(self.inputs) * self.redundancy * self.fuel_per_task * self.price_per_fuel

    def payload(self) -> PostJob:
        """The ``compute/post_job`` message that posts this job."""
        return PostJob(self.module, tuple(self.inputs), self.fuel_per_task,
                       self.price_per_fuel, self.deadline_blocks, self.redundancy,
                       self.reduce)


def _read(base: Path, name: Any, where: str) -> tuple[bytes, str]:
    if not isinstance(name, str) or not name:
        raise SpecError(where, "a file path")
    path = base / name
    try:
        return path.read_bytes(), str(path)
    except OSError as exc:
        raise SpecError(where, f"cannot read {path}: {exc.strerror or exc}") from exc


def _int(doc: dict[str, Any], name: str, default: int, lo: int = 1) -> int:
    v = doc.get(name, default)
    if type(v) is not int or v < lo:
        raise SpecError(name, f"must be an integer >= {lo}, got {v!r}")
    return v


def _slice(data: bytes | None, how: Any) -> list[bytes]:
    if how is None:
        if data is None:
            raise SpecError("spec", "give input, input_file or slice = {by = \"params\", ...}")
        return [data]
    if not isinstance(how, dict) or how.get("by") not in ("records", "bytes", "params"):
        raise SpecError("slice", 'a table with by = "records", "bytes" or "params"')
    by = how["by"]
    allowed = {"records": {"by", "separator", "per_task"}, "bytes": {"by", "size"},
               "params": {"by", "values"}}[by]
    unknown = set(how) - allowed
    if unknown:
        raise SpecError("slice", f"unknown keys {sorted(unknown)} for by = {by!r}")
    if by == "params":
        if data is not None:
            raise SpecError("slice", 'by = "params" makes the inputs: give no input')
        return slice_params(how.get("values"))
    if data is None:
        raise SpecError("spec", "input or input_file is missing")
    if by == "records":
        sep = how.get("separator", "\n")
        if not isinstance(sep, str) or not sep:
            raise SpecError("slice.separator", "a non-empty string")
        tasks = slice_records(data, sep.encode(), _int(how, "per_task", 1))
    else:
        if "size" not in how:
            raise SpecError("slice.size", "missing")
        tasks = slice_bytes(data, _int(how, "size", 0))
    if not tasks:
        raise SpecError("input", "is empty: nothing to slice")
    return tasks


def _stored(file_id: Any, fetch: Callable[[bytes], bytes] | None) -> bytes:
    try:
        raw = bytes.fromhex(file_id) if isinstance(file_id, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise SpecError("input_stored", "a stored file's id: 64 hex digits")
    if fetch is None:
        raise SpecError("input_stored", "stored inputs are read when the job is run")
    return fetch(raw)


def parse_spec(doc: Any, base: Path,
               fetch: Callable[[bytes], bytes] | None = None) -> JobSpec:
    """A job spec from its parsed TOML/JSON document; paths are relative to ``base``;
    ``fetch(file_id)`` reads an ``input_stored`` file."""
    if not isinstance(doc, dict):
        raise SpecError("spec", "must be a table (TOML) or an object (JSON)")
    unknown = set(doc) - SPEC_KEYS
    if unknown:
        raise SpecError("spec", f"unknown keys {sorted(unknown)} (known: {sorted(SPEC_KEYS)})")
    if "module" not in doc:
        raise SpecError("module", "missing: the path of the task's .wasm or .lua")
    module, module_name = _read(base, doc["module"], "module")
    if sum(k in doc for k in ("input", "input_file", "input_stored")) > 1:
        raise SpecError("spec", "give one of input, input_file and input_stored")
    data: bytes | None = None
    if "input" in doc:
        if not isinstance(doc["input"], str):
            raise SpecError("input", "an inline string (or use input_file)")
        data = doc["input"].encode()
    elif "input_file" in doc:
        data, _ = _read(base, doc["input_file"], "input_file")
    elif "input_stored" in doc:
        data = _stored(doc["input_stored"], fetch)
    inputs = _slice(data, doc.get("slice"))
    reduce, reduce_name = b"", ""
    if doc.get("reduce") is not None:
        reduce, reduce_name = _read(base, doc["reduce"], "reduce")
    return JobSpec(module, module_name, inputs,
                   redundancy=_int(doc, "redundancy", DEFAULT_REDUNDANCY),
                   fuel_per_task=_int(doc, "fuel_per_task", DEFAULT_FUEL),
                   price_per_fuel=_int(doc, "max_price_per_fuel", DEFAULT_PRICE),
                   deadline_blocks=_int(doc, "deadline_blocks", DEFAULT_DEADLINE),
                   reduce=reduce, reduce_name=reduce_name,
                   reduce_fuel=_int(doc, "reduce_fuel", DEFAULT_REDUCE_FUEL))


def load_spec(path: Path, fetch: Callable[[bytes], bytes] | None = None) -> JobSpec:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"cannot read job spec {path}: {exc}", "io_error") from exc
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise JobError(f"{path}: {exc}") from exc
    return parse_spec(doc, path.parent, fetch)


_runner: Any = None


def runner() -> Any:
    """One TaskRunner (wasmtime is imported only by the commands that need it)."""
    global _runner
    if _runner is None:
        from smartchain.compute.wasm import TaskRunner

        _runner = TaskRunner()
    return _runner


def module_problem(module: bytes, name: str) -> str:
    """Why a task module (WebAssembly, or Lua with its ``--!lua`` first line) cannot run."""
    from smartchain.compute.lua import MARKER, is_lua

    if name.lower().endswith(".lua") and not is_lua(module):
        return f"a Lua task's first line must start with {MARKER.decode()}"
    return runner().check(module)


def check_modules(spec: JobSpec) -> None:
    """A module that cannot run as a task is refused here: nothing is signed or paid."""
    for module, name in ((spec.module, spec.module_name), (spec.reduce, spec.reduce_name)):
        if module:
            problem = module_problem(module, name)
            if problem:
                raise JobError(f"{name}: {problem}; nothing was sent", "invalid_module")


def tx_size(chain_id: str, payload: PostJob) -> int:
    """The bytes of the transaction carrying ``payload`` (its other fields are fixed-size)."""
    return len(Transaction(chain_id, bytes(32), 0, 0, 0, "compute/post_job", payload.encode(),
                           bytes(64)).encode())


def check_fits(spec: JobSpec, status: dict[str, Any]) -> PostJob:
    """The job's message, once it is known to fit in a transaction and a job on this chain
    (``status``: ``/v1/status``); ``JobError`` otherwise."""
    payload = spec.payload()
    size, limit = tx_size(status["chain_id"], payload), int(status.get("max_tx_bytes", 65536))
    if size > limit:
        raise JobError(f"the job is {size} bytes with its module and inputs; a transaction "
                       f"carries at most {limit}: use a smaller input", "tx_too_large")
    max_tasks = int(status.get("compute_max_tasks", 4096))
    if len(spec.inputs) > max_tasks:
        raise JobError(f"{len(spec.inputs)} tasks; a job has at most {max_tasks}: use "
                       "larger slices", "too_many_tasks")
    return payload
