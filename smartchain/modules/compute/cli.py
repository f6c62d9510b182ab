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

import tempfile
import time
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
from smartchain.compute.jobspec import (
    DEFAULT_REDUCE_FUEL,
    U64_MAX,
    check_fits,
    check_modules,
    load_spec,
    module_problem,
    runner,
)
from smartchain.types.amount import format_hpc

compute_app = typer.Typer(help="Run WebAssembly jobs on the network's compute providers.",
                          no_args_is_help=True)

POLL_S = 0.5


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
    how = sending(gas, dry_run)
    client = OPTS.client
    payload = check_fits(spec, client.status())
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
