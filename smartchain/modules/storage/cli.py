"""``smart store``: put files on the network's storage providers and get them back.

A file is encrypted here with a key derived from the owner's keystore seed and the deal's
public salt (nothing secret leaves this machine or goes on chain), erasure-coded k-of-n and
uploaded straight to the providers over the P2P transport; the node's HTTP API is only used
to read the chain (providers, deals) and to post the deal. So ``get`` works from any machine
that has the owner's key, and with any ``n - k`` of the providers gone.

Every check that can fail (file, redundancy, providers, balance, ownership) runs before a
byte is uploaded or a key is opened, so a refused command changes nothing.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from smartchain.cli import keyring, local_names
from smartchain.cli.common import (
    OPTS,
    CliError,
    DryRun,
    Gas,
    PassFile,
    committed_line,
    dry_run_report,
    emit,
    err,
    load_key,
    out,
    require_ok,
    resolve_address,
    sending,
)
from smartchain.client import ApiError, Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.p2p.peers import P2P, P2PConfig
from smartchain.types.amount import format_hpc

store_app = typer.Typer(help="Store files on the network's storage providers (encrypted, "
                             "erasure-coded, paid from escrow).", no_args_is_help=True)

DEFAULT_REDUNDANCY = "4/6"
FEE_MARGIN = 1_000_000  # base units kept aside for the deal transaction's fee

_ERROR_CODES = {
    "NotEnoughProviders": "not_enough_providers",
    "UploadFailed": "upload_failed",
    "DealNotFound": "not_found",
    "NotOwner": "not_owner",
    "SegmentUnavailable": "unavailable",
    "RepairFailed": "repair_failed",
}

if TYPE_CHECKING:  # the storage client (pyeclib) loads only for commands that need it
    from smartchain.storage.client import GetResult


# --- helpers ------------------------------------------------------------------------------


def parse_redundancy(text: str, max_columns: int = 32) -> tuple[int, int]:
    """``k/n``: any k of the n pieces of a segment rebuild it (1 <= k < n <= max)."""
    k_text, sep, n_text = text.partition("/")
    if not sep or not k_text.strip().isdigit() or not n_text.strip().isdigit():
        raise CliError(f"--redundancy takes k/n (e.g. 4/6), got {text!r}", "usage")
    k, n = int(k_text), int(n_text)
    if not 1 <= k < n:
        raise CliError(f"--redundancy {text}: need 1 <= k < n (k pieces of n rebuild the "
                       "file)", "usage")
    if n > max_columns:
        raise CliError(f"--redundancy {text}: n is at most {max_columns} on this chain",
                       "usage")
    return k, n


def parse_file_id(text: str) -> bytes:
    try:
        raw = binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise CliError(f"a file id is 64 hex characters, got {text!r}", "usage")
    return raw


def _storage_error(exc: Exception) -> CliError:
    return CliError(str(exc), _ERROR_CODES.get(type(exc).__name__, "storage_error"))


def _quiet_logs() -> None:
    """The library logs each retry; the command reports outcomes itself (one line each)."""
    logging.getLogger("smartchain").setLevel(logging.ERROR)
    logging.getLogger("smartchain").addHandler(logging.NullHandler())


@contextlib.asynccontextmanager
async def client_p2p(network_id: str) -> AsyncIterator[P2P]:
    """A P2P endpoint with a throwaway identity: it dials providers, relays nothing, and
    learns no peers (providers know a client only by its requests and signed receipts)."""
    p2p = P2P(PrivateKey.generate(), network_id, "127.0.0.1", 0, max_peers=256,
              config=P2PConfig(pex=False))
    await p2p.start()
    try:
        yield p2p
    finally:
        await p2p.stop()


def _deal_doc(client: Client, file_id: bytes) -> dict[str, Any]:
    try:
        return client.storage_deal(file_id)
    except ApiError as exc:
        if exc.code == "not_found":
            raise CliError(f"no storage deal for file {file_id.hex()}", "not_found") from None
        raise


def _key_address(name: str) -> str:
    """The address of a keyring key, without opening it (no passphrase needed yet)."""
    return keyring.read_doc(name)["address"]


def _progress() -> Progress:
    return Progress(TextColumn("{task.description:>10}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeElapsedColumn(), console=err,
                    disable=OPTS.json, transient=False)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _tracker(bar: Progress, labels: dict[str, str]) -> Callable[[str, int, int], None]:
    """Progress callback: a byte bar per stage named in ``labels``; any other stage (the
    deal transaction) only renames the last bar while it runs."""
    rows: dict[str, Any] = {}
    last: list[Any] = []

    def update(stage: str, done: int, total: int) -> None:
        if stage not in labels:
            if last:
                bar.update(last[0], description=stage if done < total else labels["done"])
            return
        if stage not in rows:
            rows[stage] = bar.add_task(labels[stage], total=total)
            last[:] = [rows[stage]]
        bar.update(rows[stage], completed=done, total=total)

    return update


# --- commands -----------------------------------------------------------------------------

From = Annotated[str, typer.Option("--from", help="Key name in the keyring (the owner).")]
FileIdArg = Annotated[str, typer.Argument(help="File id (64 hex characters).")]


@store_app.command("put")
def put(
    file: Annotated[Path, typer.Argument(help="The file to store ('-': standard input).")],
    sender: From,
    redundancy: Annotated[str, typer.Option(
        help="k/n: n pieces per segment on n providers, any k rebuild it.")
    ] = DEFAULT_REDUNDANCY,
    epochs: Annotated[int, typer.Option(help="Epochs the deal runs (and is paid for).")] = 30,
    repair_threshold: Annotated[int | None, typer.Option(
        help="Repair while fewer than this many columns are healthy (k+1..n; default n).")
    ] = None,
    long_tail: Annotated[int, typer.Option(
        help="Reserve columns beyond n: one replaces a provider that falls behind (its "
             "partial upload is the only extra cost).", min=0, max=8)] = 2,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one provider request.")
                       ] = 30.0,
    passphrase_file: PassFile = None,
) -> None:
    """Encrypt, erasure-code and upload FILE, then post its storage deal (escrow locked)."""
    from smartchain.storage import client as sc

    data: bytes | Path = file
    if str(file) == "-":  # a pipe: read it all (the file is encrypted and coded in memory)
        data = sys.stdin.buffer.read()
        size = len(data)
    elif not file.is_file():
        raise CliError(f"{file}: no such file" if not file.exists() else f"{file}: not a "
                       "regular file", "not_found")
    else:
        size = file.stat().st_size
    client = OPTS.client
    st = client.status()
    k, n = parse_redundancy(redundancy, int(st.get("storage_max_columns", 32)))
    if epochs <= 0:
        raise CliError("--epochs must be a positive integer", "usage")
    if repair_threshold is not None and not k < repair_threshold <= n:
        raise CliError(f"--repair-threshold must be between {k + 1} and {n} for {k}-of-{n}",
                       "usage")
    owner = _key_address(sender)
    view = sc.ApiChainView(client, None, st)
    providers = view.providers()
    _, _, column_bytes = sc.column_bytes_of(size, k, n + sc.MAX_EXTRA)
    roomy = [p for _, p in providers if p.capacity - p.used >= column_bytes]
    if len(roomy) < n:
        raise CliError(f"{k}-of-{n} needs {n} storage providers with "
                       f"{_human_bytes(column_bytes)} free; the chain has {len(roomy)}"
                       + (f" (of {len(providers)} active)" if len(providers) != len(roomy)
                          else ""), "not_enough_providers")
    cost = sc.estimate_cost(roomy, size, k, n, epochs, view.params())
    balance = client.balance(owner)
    if balance < cost + FEE_MARGIN:
        raise CliError(f"insufficient balance: storing {_human_bytes(size)} {k}-of-{n} for "
                       f"{epochs} epochs locks up to {format_hpc(cost)} HPC (escrow and repair "
                       f"budget) plus the fee; {sender} has {format_hpc(balance)} HPC",
                       "insufficient_funds")
    key = load_key(sender, passphrase_file)
    view.key = key
    _quiet_logs()

    async def run() -> sc.PutResult:
        async with client_p2p(view.network_id) as p2p:
            with _progress() as bar:
                track = _tracker(bar, {"upload": "uploading", "done": "stored"})
                return await sc.put(p2p, view, key, data, k=k, n=n, epochs=epochs,
                                    repair_threshold=repair_threshold, progress=track,
                                    timeout=timeout, extra=long_tail,
                                    max_columns=int(st.get("storage_max_columns", 32)))

    try:
        res = asyncio.run(run())
    except sc.StorageError as exc:
        raise _storage_error(exc) from None
    name = "(stdin)" if isinstance(data, bytes) else file.name
    local_names.remember(res.file_id.hex(), name)
    tx = client.tx(res.tx_hash)
    terms: dict[str, Any] = next((e["attributes"] for e in tx["receipt"]["events"]
                                  if e["kind"] == "storage_deal_create"), {})
    doc = {
        "file_id": res.file_id.hex(), "name": name, "size": res.size, "k": res.k, "n": res.n,
        "code_n": res.code_n, "segments": res.segments, "bytes_sent": res.bytes_sent,
        "expansion_permille": res.bytes_sent * 1000 // max(res.size, 1),
        "hash": res.tx_hash, "height": tx.get("height"),
        "escrow": str(terms.get("escrow", "")),
        "repair_budget": str(terms.get("repair_budget", "")),
        "columns": [{"frag_index": c.frag_index, "provider": to_bech32(c.provider)}
                    for c in res.columns],
        "failed_providers": [to_bech32(a) for a in res.failed],
    }

    def human() -> None:
        err.print(f"stored {escape(str(file))}: {_human_bytes(res.size)} in {res.segments} "
                  f"segment(s), {k}-of-{n} on {len(res.columns)} providers; sent "
                  f"{_human_bytes(res.bytes_sent)} ({res.expansion:.2f}x)", highlight=False)
        if terms:
            err.print(f"escrow {format_hpc(int(terms['escrow']))} HPC + repair budget "
                      f"{format_hpc(int(terms['repair_budget']))} HPC, epochs "
                      f"{terms.get('start_epoch')}..{terms.get('end_epoch')}", highlight=False)
        if res.failed:
            err.print(f"{len(res.failed)} provider(s) failed and were replaced", highlight=False)
        err.print(committed_line(tx), highlight=False)
        out.print(res.file_id.hex(), highlight=False)

    emit(doc, human)


@store_app.command("get")
def get(
    file_id: FileIdArg,
    out_file: Annotated[Path, typer.Option(
        "--out", "-o", help="Where to write the file ('-': standard output).")],
    sender: From,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")
                     ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one provider request.")
                       ] = 30.0,
    parallel_extra: Annotated[int, typer.Option(
        help="Columns asked beyond k per segment at once (a late piece is hedged anyway; "
             "each costs 1/k of the file in transfer).", min=0, max=8)] = 0,
    passphrase_file: PassFile = None,
) -> None:
    """Fetch, verify, decode and decrypt a stored file (any n - k providers may be gone)."""

    fid = parse_file_id(file_id)
    if str(out_file) == "-":
        _get_to_stdout(fid, sender, passphrase_file, timeout, parallel_extra)
        return
    if out_file.is_dir():
        raise CliError(f"{out_file} is a directory: give the output file's path", "usage")
    if not out_file.parent.is_dir():
        raise CliError(f"{out_file.parent}: no such directory", "not_found")
    if out_file.exists() and not force:
        raise CliError(f"{out_file} exists: --force overwrites it", "file_exists")
    res = download(fid, out_file, sender, passphrase_file, timeout, parallel_extra)
    doc = {"file_id": fid.hex(), "out": str(out_file), "size": res.size,
           "bytes_received": res.bytes_received, "pieces": res.pieces,
           "failures": res.failures, "receipts": res.receipts,
           "corrupt": [{"provider": to_bech32(c.provider), "frag_index": c.frag_index,
                        "segment": c.segment} for c in res.corrupt]}

    def human() -> None:
        for c in res.corrupt:
            err.print(f"warning: provider {to_bech32(c.provider)} served a corrupt piece "
                      f"(segment {c.segment}, column {c.frag_index}); it was not used",
                      highlight=False)
        out.print(f"wrote {escape(str(out_file))} ({res.size} bytes, verified)",
                  highlight=False)

    emit(doc, human)


def _get_to_stdout(fid: bytes, sender: str, passphrase_file: Path | None, timeout: float,
                   extra: int) -> None:
    """``-o -``: the verified file to standard output (for a pipe); nothing else is printed
    there. It is decoded into a private temporary directory first, since only a file
    whose every segment verified may be handed on."""
    with tempfile.TemporaryDirectory(prefix="smart-get-") as tmp:
        path = Path(tmp) / "file"
        download(fid, path, sender, passphrase_file, timeout, extra)
        with path.open("rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def download(fid: bytes, out_file: Path, sender: str, passphrase_file: Path | None,
             timeout: float = 30.0, extra: int = 0) -> GetResult:
    """Fetch a stored file into ``out_file`` with the owner's key (a progress bar on the
    terminal); also how ``smart compute run`` reads a job's stored input."""
    from smartchain.storage import client as sc

    client = OPTS.client
    deal = _deal_doc(client, fid)
    owner = _key_address(sender)
    shared = deal["owner"] != owner and _is_shared(client, fid, owner)
    if deal["owner"] != owner and not shared:
        raise CliError(f"file {fid.hex()} belongs to {deal['owner']}, not {sender} ({owner}), "
                       "and is not shared with it: only the owner's key can decrypt it",
                       "not_owner")
    key = load_key(sender, passphrase_file)
    file_key = _shared_key(client, key, fid, owner) if shared else None
    view = sc.ApiChainView(client, key)
    _quiet_logs()

    async def run() -> sc.GetResult:
        async with client_p2p(view.network_id) as p2p:
            with _progress() as bar:
                track = _tracker(bar, {"download": "downloading", "done": "written"})
                return await sc.get(p2p, view, key, fid, out_file, progress=track,
                                    timeout=timeout, extra=extra, file_key=file_key)

    try:
        return asyncio.run(run())
    except sc.StorageError as exc:
        raise _storage_error(exc) from None


def _is_shared(client: Client, fid: bytes, address: str) -> bool:
    try:
        client.data_share(fid, address)
    except ApiError as exc:
        if exc.code == "not_found":
            return False
        raise
    return True


def _shared_key(client: Client, key: PrivateKey, fid: bytes, address: str) -> bytes:
    from smartchain.storage.datasets import DataError, shared_key

    try:
        return shared_key(client, key, fid, address)
    except DataError as exc:
        raise CliError(str(exc), "storage_error") from None


@store_app.command("share")
def share(
    file_id: FileIdArg, sender: From,
    with_: Annotated[str, typer.Option("--with", help="The account to share with (address "
                                                      "or key name).")],
    passphrase_file: PassFile = None,
) -> None:
    """Let another account read a stored file: its key sealed to that account's box key
    (it registered one with `smart data register-box-key`); it then runs `smart store get`."""
    from smartchain.modules.data.cli import share as share_file

    share_file(parse_file_id(file_id), sender, with_, passphrase_file)


@store_app.command("ls")
def ls(
    sender: Annotated[str | None, typer.Option("--from", help="Key name: list its files.")
                      ] = None,
    owner: Annotated[str | None, typer.Option(help="Address (or key name) whose files to "
                                                   "list.")] = None,
) -> None:
    """The storage deals of an owner: file id, size, redundancy, health, status."""
    if (sender is None) == (owner is None):
        raise CliError("give --from KEY or --owner ADDRESS", "usage")
    address = _key_address(sender) if sender is not None else resolve_address(owner or "")
    names = local_names.load()
    deals = [{**d, "name": names.get(d["file_id"])} for d in OPTS.client.storage_deals(address)]

    def human() -> None:
        if not deals:
            out.print(f"no files stored by {address}", highlight=False)
            return
        for d in deals:  # one line each, never wrapped: the id is for copying
            out.print(f"{d['file_id']}  {d['name'] or '-':<20}  "
                      f"{_human_bytes(int(d['size'])):>10}  "
                      f"{d['k']}/{d['n']}  healthy {d['healthy']}/{d['n']}  epochs "
                      f"{d['start_epoch']}..{d['end_epoch']}  {d['status']}",
                      highlight=False, markup=False)

    emit({"owner": address, "deals": deals}, human)


@store_app.command("rm")
def rm(file_id: FileIdArg, sender: From, gas: Gas = "auto", dry_run: DryRun = False,
       passphrase_file: PassFile = None) -> None:
    """End a deal early: the current epoch stays payable, the rest of the escrow returns."""
    how = sending(gas, dry_run)
    fid = parse_file_id(file_id)
    client = OPTS.client
    deal = _deal_doc(client, fid)
    owner = _key_address(sender)
    if deal["owner"] != owner:
        raise CliError(f"file {fid.hex()} belongs to {deal['owner']}, not {sender}: only the "
                       "owner can end its deal", "not_owner")
    if deal["status"] != "active":
        raise CliError(f"the deal for file {fid.hex()} is already {deal['status']}",
                       "not_active")
    key = load_key(sender, passphrase_file)
    res = client.cancel_storage_deal(key, fid, **how)
    if dry_run:
        dry_run_report(res)
        return
    require_ok(res)
    after = client.storage_deal(fid)
    doc = {"file_id": fid.hex(), "status": after["status"], "hash": res["hash"],
           "height": res["height"]}
    emit(doc, lambda: out.print(f"deal for {fid.hex()} cancelled\n{committed_line(res)}",
                                highlight=False))


@store_app.command("status")
def status(
    file_id: FileIdArg,
    check: Annotated[bool, typer.Option(
        "--check/--no-check", help="Ask the providers for every piece and verify it.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one provider request.")
                       ] = 10.0,
) -> None:
    """A deal's terms and health: verified pieces per segment, asked of every provider."""
    from smartchain.storage import client as sc

    fid = parse_file_id(file_id)
    client = OPTS.client
    deal = _deal_doc(client, fid)
    doc: dict[str, Any] = {"deal": deal}
    if check and deal["status"] == "active":
        view = sc.ApiChainView(client)
        _quiet_logs()

        async def run() -> sc.Health:
            async with client_p2p(view.network_id) as p2p:
                return await sc.health(view, p2p, fid, timeout=timeout)

        try:
            h = asyncio.run(run())
        except sc.StorageError as exc:
            raise _storage_error(exc) from None
        doc["health"] = {
            "segments": h.segments, "recoverable": h.recoverable,
            "columns": [{"frag_index": c.frag_index, "provider": to_bech32(c.provider),
                         "healthy_on_chain": c.healthy_on_chain, "alive": c.alive,
                         "corrupt": c.corrupt, "missing": c.missing, "error": c.error}
                        for c in h.columns]}

    def human() -> None:
        d = deal
        lines = [
            ("file", f"{d['file_id']} ({d['status']})"), ("owner", d["owner"]),
            ("size", f"{_human_bytes(int(d['size']))} ({d['size']} bytes) in "
                     f"{d['segments']} segment(s)"),
            ("coding", f"{d['k']}-of-{d['n']} (coded {d['code_n']}), repair below "
                       f"{d['repair_threshold']} healthy"),
            ("epochs", f"{d['start_epoch']}..{d['end_epoch']}"),
            ("escrow", f"{d['escrow_hpc']} HPC left, repair budget {d['repair_budget_hpc']} "
                       "HPC"),
            ("healthy", f"{d['healthy']}/{d['n']} columns pass their audits"),
        ]
        for k, v in lines:
            out.print(f"{k + ':':<9} {v}", highlight=False, markup=False)
        health = doc.get("health")
        for c in d["columns"]:
            extra = ""
            if health is not None:
                hc = next(x for x in health["columns"] if x["frag_index"] == c["frag_index"])
                extra = f", {hc['alive']}/{d['segments']} pieces verified"
                if hc["corrupt"]:
                    extra += f", {hc['corrupt']} CORRUPT"
                if hc["missing"]:
                    extra += f", {hc['missing']} missing ({hc['error']})"
            state = "healthy" if c["healthy"] else "UNHEALTHY"
            out.print(f"  column {c['frag_index']:>2} on {c['provider']}: {state}{extra}",
                      highlight=False, markup=False)
        if health is not None:
            segs = health["segments"]
            if len(segs) <= 16:
                for s, alive in enumerate(segs):
                    out.print(f"  segment {s:>2}: {alive}/{d['n']} pieces alive",
                              highlight=False)
            else:
                low = [s for s, a in enumerate(segs) if a < d["n"]]
                out.print(f"  segments: {min(segs)}..{max(segs)} of {d['n']} pieces alive; "
                          f"{len(low)} below {d['n']}", highlight=False)
            verdict = "recoverable" if health["recoverable"] else \
                f"NOT recoverable (a segment has fewer than {d['k']} pieces)"
            out.print(f"  file is {verdict}", highlight=False)

    emit(doc, human)
