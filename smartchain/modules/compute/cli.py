"""``smart compute``: post WebAssembly jobs, follow them, fetch and reduce their results.

A job spec is TOML or JSON (paths in it are relative to the spec's own directory)::

    module = "wordcount.wasm"            # the task module: WebAssembly, or Lua source whose
                                         # first line is --!lua ("wordcount.lua"); validated
                                         # here before anything is sent
    input_file = "text.txt"              # or input = "inline text", or
                                         # input_stored = "FILE_ID" (`smart store put`)
    slice = { by = "bytes", size = 4096 }   # or { by = "records", separator = "\\n",
                                            #      per_task = 100 }
                                            # or { by = "params", values = [1, 2, [3, 4]] }
    redundancy = 2                       # replicas that must agree per task
    fuel_per_task = 10_000_000
    max_price_per_fuel = 1               # base units of HPC per fuel unit
    deadline_blocks = 20
    reduce = "sum_u64.wasm"              # optional, run here over the verified outputs

Slices are contiguous: joined back they are the input. Byte slices end at whitespace, so no
word is split between tasks. A ``params`` value is one 8-byte little-endian integer, or a
list of them packed one after another (``pi.wasm`` takes [seed, samples]).

Outputs of 8 bytes are shown as the little-endian integers the examples produce.

A stored input is downloaded here, with the sender's key (files are encrypted for their
owner), and sliced like a local file: the tasks carry their slices, so workers need neither
the file key nor the storage network.
"""

from __future__ import annotations

import json
import struct
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from smartchain.cli.common import (
    OPTS,
    CliError,
    DryRun,
    Gas,
    GasPrice,
    PassFile,
    committed_line,
    dry_run_report,
    emit,
    err,
    load_key,
    out,
    parse_size,
    require_ok,
    sending,
)
from smartchain.client import posted_job_id
from smartchain.codec import Struct
from smartchain.types.amount import format_hpc
from smartchain.types.tx import Transaction

compute_app = typer.Typer(help="Run WebAssembly jobs on the network's compute providers.",
                          no_args_is_help=True)

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
POLL_S = 0.5


class SpecError(CliError):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}", "invalid_spec")


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
        raise CliError(f"cannot read job spec {path}: {exc}") from exc
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CliError(f"{path}: {exc}", "invalid_spec") from exc
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
                raise CliError(f"{name}: {problem}; nothing was sent", "invalid_module")


# --- results ------------------------------------------------------------------------------


def u64_text(data: bytes) -> str:
    return str(int.from_bytes(data, "little")) if len(data) == 8 else f"0x{data.hex()}"


def verified_outputs(result: dict[str, Any]) -> list[bytes]:
    """Every task's output in task order; a task that is not verified (or verified as a
    runner error) is an error: no result can be put together without it."""
    outputs = []
    bad = [o for o in result["outputs"] if o["status"] != "verified" or o.get("error")]
    if bad:
        first = bad[0]
        why = first.get("error") or first["status"]
        raise CliError(f"job {result['id']} is {result['status']}: {len(bad)} of "
                       f"{len(result['outputs'])} tasks have no verified output (task "
                       f"{first['index']}: {why})", "incomplete")
    for o in result["outputs"]:
        outputs.append(bytes.fromhex(o["output"]))
    return outputs


def reduce_outputs(reduce: bytes, outputs: list[bytes], fuel: int) -> bytes:
    res = runner().run(reduce, b"".join(outputs), fuel=fuel)
    if res.error:
        raise CliError(f"reduce failed: {res.error}", "reduce_failed")
    return res.output


def deliver(job_id: int | str, result: dict[str, Any], reduce: bytes, reduce_fuel: int,
            out_file: Path | None) -> None:
    """Print or write the job's result: reduced when there is a reduce module, else one
    output per task. 8-byte outputs are integers; ``--out`` gets the same text, or the raw
    bytes when an output is not an integer."""
    outputs = verified_outputs(result)
    doc: dict[str, Any] = {"job": str(job_id), "status": result["status"]}
    if reduce:
        value = reduce_outputs(reduce, outputs, reduce_fuel)
        doc["result"] = value.hex()
        if len(value) == 8:
            doc["value"] = str(int.from_bytes(value, "little"))
        text = u64_text(value) + "\n"
        raw = (text.encode() if len(value) == 8 else value)
    else:
        doc["outputs"] = [{"index": i, "output": o.hex(),
                           **({"value": u64_text(o)} if len(o) == 8 else {})}
                          for i, o in enumerate(outputs)]
        text = "".join(f"{i} {u64_text(o)}\n" for i, o in enumerate(outputs))
        all_ints = all(len(o) == 8 for o in outputs)
        raw = "".join(f"{u64_text(o)}\n" for o in outputs).encode() if all_ints \
            else b"".join(outputs)
    if out_file is not None:
        try:
            out_file.write_bytes(raw)
        except OSError as exc:
            raise CliError(f"cannot write {out_file}: {exc.strerror or exc}") from exc
        doc["out"] = str(out_file)
        emit(doc, lambda: out.print(f"job {job_id}: result written to {escape(str(out_file))} "
                                    f"({len(raw)} bytes)", highlight=False))
        return
    emit(doc, lambda: out.print(text.rstrip("\n"), markup=False, highlight=False))


def _counts(job: dict[str, Any]) -> tuple[int, int, int]:
    """Tasks assigned (ever placed), committed (or decided) and verified."""
    c = job["counts"]
    decided = c["verified"] + c["failed"] + c["cancelled"] + c["agreed"]
    return job["tasks"] - c["pending"], c["committed"] + decided, c["verified"]


def follow(job_id: int, timeout: float | None) -> dict[str, Any]:
    """Poll the job with a progress bar (on stderr) until it is no longer open."""
    client = OPTS.client
    deadline = None if timeout is None else time.monotonic() + timeout
    job = client.compute_job(job_id)
    total = job["tasks"]
    columns = (TextColumn("{task.description:>9}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, disable=OPTS.json, transient=False) as bar:
        rows = [bar.add_task(name, total=total) for name in ("assigned", "committed",
                                                             "verified")]
        while True:
            for row, n in zip(rows, _counts(job), strict=True):
                bar.update(row, completed=n)
            if job["status"] not in ("open", "cancelling"):
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise CliError(f"job {job_id} still open after {timeout:g}s (it goes on; "
                               f"`smart compute status {job_id}`)", "timeout")
            time.sleep(POLL_S)
            job = client.compute_job(job_id)


def _reduce_for(job: dict[str, Any], path: Path | None) -> bytes:
    """The reduce module: the file given, else the one posted with the job (on chain)."""
    if path is not None:
        try:
            module = path.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from exc
        problem = module_problem(module, path.name)
        if problem:
            raise CliError(f"{path}: {problem}", "invalid_module")
        return module
    if job.get("reduce_hash"):
        return bytes.fromhex(OPTS.client.compute_module(job["reduce_hash"],
                                                        with_bytes=True)["hex"])
    return b""


def _job_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > U64_MAX:
        raise CliError(f"job id must be a non-negative integer, got {text!r}", "usage")
    return int(text)


# --- commands -----------------------------------------------------------------------------

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]
Out = Annotated[Path | None, typer.Option("--out", help="Write the result to this file.")]
JobId = Annotated[str, typer.Argument(help="Job id.")]


def _tx_size(chain_id: str, payload: Struct) -> int:
    """The bytes of the transaction carrying ``payload`` (its other fields are fixed-size)."""
    return len(Transaction(chain_id, bytes(32), 0, 0, 0, "compute/post_job", payload.encode(),
                           bytes(64)).encode())


@compute_app.command("run")
def run(
    spec_file: Annotated[Path, typer.Argument(help="Job spec (.toml or .json).", exists=True,
                                              dir_okay=False)],
    sender: From,
    out_file: Out = None,
    wait: Annotated[bool, typer.Option(help="Follow the job and fetch its result.")] = True,
    timeout: Annotated[float | None, typer.Option(
        help="Give up following after this many seconds (the job goes on).")] = None,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    passphrase_file: PassFile = None,
) -> None:
    """Post a job (its escrow locked), follow its tasks, reduce and print the result."""
    def fetch(file_id: bytes) -> bytes:
        from smartchain.modules.storage.cli import download

        with tempfile.TemporaryDirectory(prefix="smart-input-") as tmp:
            path = Path(tmp) / "input"
            download(file_id, path, sender, passphrase_file)
            return path.read_bytes()

    spec = load_spec(spec_file, fetch)
    check_modules(spec)
    from smartchain.modules.compute.types import PostJob  # the encoding tells the size

    how = sending(gas, dry_run)
    client = OPTS.client
    st = client.status()
    payload = PostJob(spec.module, tuple(spec.inputs), spec.fuel_per_task, spec.price_per_fuel,
                      spec.deadline_blocks, spec.redundancy, spec.reduce)
    size, limit = _tx_size(st["chain_id"], payload), int(st.get("max_tx_bytes", 65536))
    if size > limit:
        raise CliError(f"the job is {size} bytes with its module and inputs; a transaction "
                       f"carries at most {limit}: use a smaller input", "tx_too_large")
    max_tasks = int(st.get("compute_max_tasks", 4096))
    if len(spec.inputs) > max_tasks:
        raise CliError(f"{len(spec.inputs)} tasks; a job has at most {max_tasks}: use "
                       "larger slices", "too_many_tasks")
    key = load_key(sender, passphrase_file)
    result = client.send_tx(key, "compute/post_job", payload, gas_price=gas_price, **how)
    if dry_run:
        dry_run_report(result)
        return
    require_ok(result)
    job_id = posted_job_id(result)
    if not OPTS.json:
        err.print(f"job [bold]{job_id}[/]: {len(spec.inputs)} tasks × {spec.redundancy}, "
                  f"escrow {format_hpc(spec.escrow)} HPC\n{committed_line(result)}",
                  highlight=False)
    if not wait:
        emit({"job": str(job_id), "hash": result["hash"], "tasks": len(spec.inputs),
              "escrow": str(spec.escrow)}, lambda: out.print(str(job_id)))
        return
    try:
        follow(job_id, timeout)
    except KeyboardInterrupt:
        raise CliError(f"stopped following job {job_id} (it goes on; `smart compute status "
                       f"{job_id}`)", "aborted", 130) from None
    deliver(job_id, client.compute_result(job_id), spec.reduce, spec.reduce_fuel, out_file)


@compute_app.command("status")
def status(job_id: JobId) -> None:
    """A job's state: tasks pending, assigned, committed, verified, failed; escrow and pay."""
    job = OPTS.client.compute_job(_job_id(job_id))

    def human() -> None:
        c = job["counts"]
        lines = [
            ("job", f"{job['id']} ({job['status']})"), ("requester", job["requester"]),
            ("module", job["module_hash"]),
            ("tasks", f"{job['tasks']} × {job['redundancy']} replicas, "
                      f"{job['fuel_per_task']} fuel at {job['price_per_fuel']} per fuel"),
            ("states", ", ".join(f"{k} {v}" for k, v in c.items() if v) or "none"),
            ("escrow", f"{job['escrow_hpc']} HPC left, {job['paid_hpc']} HPC paid"),
        ]
        for k, v in lines:
            out.print(f"{k + ':':<10} {v}", highlight=False, markup=False)
        for t in job["task_states"]:
            if t["error"]:
                out.print(f"task {t['index']}: {t['status']}: {t['error']}", markup=False,
                          highlight=False)

    emit(job, human)


@compute_app.command("result")
def result(
    job_id: JobId,
    reduce: Annotated[Path | None, typer.Option(
        "--reduce", help="Reduce module to run over the outputs (default: the job's own).",
        exists=True, dir_okay=False)] = None,
    out_file: Out = None,
    reduce_fuel: Annotated[int, typer.Option(help="Fuel for the reduce.")] = DEFAULT_REDUCE_FUEL,
    raw: Annotated[bool, typer.Option(help="One output per task, without the reduce.")
                   ] = False,
) -> None:
    """A job's verified outputs, reduced (by --reduce or the job's reduce module)."""
    jid = _job_id(job_id)
    doc = OPTS.client.compute_result(jid)
    module = b"" if raw else _reduce_for(doc, reduce)
    deliver(jid, doc, module, reduce_fuel, out_file)


@compute_app.command("cancel")
def cancel(job_id: JobId, sender: From, gas: Gas = "auto", gas_price: GasPrice = None,
           dry_run: DryRun = False, passphrase_file: PassFile = None) -> None:
    """Stop a job you posted: tasks nobody has committed to are dropped and their escrow
    returns; tasks with a commitment run to their end and are paid."""
    jid = _job_id(job_id)
    how = sending(gas, dry_run)
    OPTS.client.compute_job(jid)  # an unknown job is reported before a key is opened
    key = load_key(sender, passphrase_file)
    res = OPTS.client.cancel_job(key, jid, gas_price=gas_price, **how)
    if dry_run:
        dry_run_report(res)
        return
    require_ok(res)
    job = OPTS.client.compute_job(jid, tasks=False)
    if job["status"] == "cancelling":
        running = job["tasks"] - job["verified"] - job["failed"] - job["cancelled"]
        what = (f"job {jid} cancelling: {running} task(s) already committed to run to their "
                "end and are paid; the others' escrow is back")
    else:
        what = f"job {jid} cancelled"
    emit(res, lambda: out.print(f"{what}\n{committed_line(res)}", highlight=False))


@compute_app.command("providers")
def providers() -> None:
    """Registered compute providers: capability, stake, reputation, load."""
    docs = OPTS.client.compute_providers()

    def human() -> None:
        if not docs:
            out.print("no compute providers")
            return
        for p in docs:
            state = "active" if p["active"] else "inactive"
            out.print(f"{p['address']} {state} capability {p['effective_capability']}/"
                      f"{p['capability']} fuel/s, stake {p['stake_hpc']} HPC, reputation "
                      f"{p['reputation']}, load {p['load']}", highlight=False, markup=False)

    emit({"providers": docs}, human)


# --- smart node start --provide -------------------------------------------------------------


def parse_provide(items: list[str] | None) -> dict[str, int]:
    """``--provide compute=N`` (cores) and ``--provide storage=SIZE`` (bytes: 50GiB, 500GB…);
    repeatable, or comma-separated (``storage=50GiB,compute=2``)."""
    offers: dict[str, int] = {}
    for item in (part for arg in items or [] for part in arg.split(",") if part.strip()):
        kind, sep, amount = item.partition("=")
        kind = kind.strip().lower()
        if kind == "storage" and sep:
            try:
                size = parse_size(amount)
            except ValueError as exc:
                raise CliError(f"--provide {item}: {exc}", "usage") from None
            if size <= 0:
                raise CliError(f"--provide {item}: the size must be positive", "usage")
            offers["storage"] = size
            continue
        if kind != "compute" or not sep:
            raise CliError(f"--provide {item}: expected compute=N (N cores) or storage=SIZE "
                           f"(e.g. storage=50GiB)", "usage")
        if not amount.strip().isdigit() or int(amount) <= 0:
            raise CliError(f"--provide {item}: N must be a positive number of cores", "usage")
        offers["compute"] = int(amount)
    return offers
