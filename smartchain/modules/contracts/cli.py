"""``smart contract``: deploy Lua contracts, call them in transactions, query them for free.

Arguments are typed by their look: ``42`` and ``-7`` are integers, ``@alice`` is the
address of key ``alice``, anything else is a string; ``str:42``, ``int:7``,
``bool:true`` and ``nil:`` say the type outright. Values (``--value``) are HPC, exact
decimals, as for ``smart tx transfer``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from smartchain.cli.common import (
    OPTS,
    CliError,
    DryRun,
    Gas,
    GasPrice,
    PassFile,
    Wait,
    committed_line,
    dry_run_report,
    emit,
    load_key,
    out,
    require_ok,
    resolve_address,
    sending,
)
from smartchain.client import deployed_address
from smartchain.types.amount import format_hpc, parse_hpc

contract_app = typer.Typer(help="Deploy, call and query Lua smart contracts.",
                           no_args_is_help=True)
# A negative integer argument (-7) is not an option: unknown options reach the arguments,
# where parse_args refuses any that is not a number (so a mistyped option is still an error).
_ARGS_CONTEXT = {"ignore_unknown_options": True}

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]
Address = Annotated[str, typer.Argument(help="Contract address.")]
Function = Annotated[str, typer.Argument(help="Function to call.")]
Args = Annotated[list[str] | None, typer.Argument(
    help="Arguments: 42 is an integer, @name a key's address, text a string; "
         "str:/int:/bool:/nil: force the type.")]
Value = Annotated[str | None, typer.Option(help="HPC sent to the contract (exact decimal).")]

_INT = re.compile(r"-?[0-9]+")
INT64 = 1 << 63


def parse_arg(text: str) -> Any:
    """One command-line argument as the contract will see it."""
    kind, sep, rest = text.partition(":")
    if sep and kind in ("str", "int", "bool", "nil"):
        if kind == "str":
            return rest
        if kind == "nil":
            if rest:
                raise CliError(f"nil: takes nothing after the colon, got {rest!r}")
            return None
        if kind == "bool":
            if rest not in ("true", "false"):
                raise CliError(f"bool: takes true or false, got {rest!r}")
            return rest == "true"
        text = rest
        if not _INT.fullmatch(text):
            raise CliError(f"int: takes a decimal integer, got {rest!r}")
    if _INT.fullmatch(text):
        n = int(text)
        if not -INT64 <= n < INT64:
            raise CliError(f"integer {text} does not fit in 64 bits")
        return n
    if text.startswith("@"):
        return resolve_address(text[1:])
    return text


def parse_args(items: list[str] | None, *, positional: bool = True) -> list[Any]:
    """``positional``: the items are command-line words, where ``-x`` is an option typed
    wrong rather than an argument (``str:-x`` passes it as a string)."""
    values = []
    for a in items or []:
        if positional and a.startswith("-") and not _INT.fullmatch(a):
            raise CliError(f"no such option: {a} (to pass it as a string argument, write "
                           f"str:{a})", "usage")
        values.append(parse_arg(a))
    return values


def _value(text: str | None) -> int:
    return parse_hpc(text) if text is not None else 0


def show_value(v: Any) -> str:
    """A result as the API gives it: null, a boolean, an integer, text or {"hex": ...}."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, dict) and "hex" in v:
        return f"0x{v['hex']}"
    return str(v)


def check_source(name: str, source: bytes) -> None:
    """The chain's own compile-time check, before a key is opened or a fee is risked."""
    from smartchain.modules.contracts.module import check_source as chain_check
    from smartchain.types.errors import TxError  # only deploy needs the Lua checker

    try:
        chain_check(source)
    except TxError as exc:
        raise CliError(f"{name}: {exc.message}", "invalid_payload") from exc


@contract_app.command("deploy")
def deploy(
    file: Annotated[Path, typer.Argument(help="Lua source file.", exists=True, dir_okay=False)],
    sender: From,
    init: Annotated[str | None, typer.Option(
        help="Arguments for init(...), space-separated, e.g. --init 'PARK 5'.")] = None,
    value: Value = None,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Deploy a contract: the source is kept on chain and init(...) runs once."""
    source = file.read_bytes()
    check_source(file.name, source)
    try:
        words = shlex.split(init) if init else []
    except ValueError as exc:
        raise CliError(f"--init: {exc}") from exc
    args = parse_args(words, positional=False)
    amount = _value(value)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.deploy_contract(key, source, args, value=amount, wait=wait,
                                         gas_price=gas_price, **sending(gas, dry_run))
    if dry_run:
        dry_run_report(result)
        return
    if not wait:
        emit(result, f"submitted {result['hash']}")
        return
    require_ok(result)
    address = result["contract"] = deployed_address(result)
    emit(result, lambda: out.print(
        f"deployed {escape(file.name)} at [bold]{address}[/]"
        + (f" with {format_hpc(amount)} HPC" if amount else "")
        + f"\n{committed_line(result)}"))


@contract_app.command("call", context_settings=_ARGS_CONTEXT)
def call(
    address: Address,
    function: Function,
    sender: From,
    args: Args = None,
    value: Value = None,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Call a contract function in a transaction (it changes state and pays gas).

    With --gas auto (the default) the call is simulated first and not sent if it would fail.
    """
    address = resolve_address(address)
    values = parse_args(args)
    amount = _value(value)
    how = sending(gas, dry_run)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.call_contract(key, address, function, values, value=amount,
                                       wait=wait, gas_price=gas_price, **how)
    if dry_run:
        dry_run_report(result)
        return
    if not wait:
        emit(result, f"submitted {result['hash']}")
        return
    require_ok(result)
    receipt = result["receipt"]

    def human() -> None:
        out.print(f"called {function} on {address}" +
                  (f" with {format_hpc(amount)} HPC" if amount else ""), markup=False,
                  highlight=False)
        for e in receipt["events"]:  # contract events: text the contract chose, not markup
            attrs = " ".join(f"{k}={v}" for k, v in e["attributes"].items() if k != "contract")
            out.print(f"  event {e['kind']} {attrs}", markup=False, highlight=False)
        out.print(f"gas used {receipt['gas_used']}\n{committed_line(result)}")

    emit(result, human)


@contract_app.command("query", context_settings=_ARGS_CONTEXT)
def query(
    address: Address,
    function: Function,
    args: Args = None,
    caller: Annotated[str | None, typer.Option(
        "--from", help="Address or key name the call appears to come from (ctx.caller).")
    ] = None,
    value: Annotated[str | None, typer.Option(
        help="HPC the call appears to carry (ctx.value); nothing moves.")] = None,
) -> None:
    """Run a function read-only on the latest state: free, not in a block, nothing kept.

    Results are printed space-separated: nil, true/false, integers, text, 0x… for bytes
    that are not UTF-8.
    """
    address = resolve_address(address)
    values = parse_args(args)
    who = resolve_address(caller) if caller else None
    result = OPTS.client.query_contract(address, function, values, caller=who,
                                        value=_value(value))
    emit(result, lambda: out.print(
        " ".join(show_value(v) for v in result["results"]) or "(no results)",
        markup=False, highlight=False))


@contract_app.command("info")
def info(
    address: Address,
    source: Annotated[bool, typer.Option(help="Print the contract's source too.")] = False,
) -> None:
    """Who deployed a contract, when, its code hash and HPC balance."""
    doc = OPTS.client.contract(resolve_address(address))
    if not source:
        doc.pop("source", None)

    def human() -> None:
        rows = [("address", doc["address"]), ("creator", doc["creator"]),
                ("deployed at", f"height {doc['height']}"), ("code hash", doc["code_hash"]),
                ("code size", f"{doc['code_size']} bytes"),
                ("balance", f"{doc['balance_hpc']} HPC ({doc['balance']} units)")]
        for k, v in rows:
            out.print(f"{k + ':':<12} {v}", highlight=False)
        if source:
            out.print(doc["source"].rstrip("\n"), markup=False, highlight=False)

    emit(doc, human)
