"""``smart token``: issue and move IoT firms' own tokens (IOT_Coin).

Amounts are whole tokens by default, as exact decimals with at most the token's
``decimals`` places (``12.34`` of a 2-decimal token is 1234 base units); ``--units`` says
the figures are integer base units instead. Either way the chain only ever sees base units.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from smartchain.cli.common import (
    OPTS,
    CliError,
    DryRun,
    Gas,
    GasPrice,
    PassFile,
    Wait,
    emit,
    load_key,
    out,
    resolve_address,
    sending,
)
from smartchain.cli.common import (
    report_sent as _finish,
)
from smartchain.crypto.address import to_bech32
from smartchain.modules.tokens.module import symbol_error, validate_issue
from smartchain.modules.tokens.types import MAX_AMOUNT, Issue
from smartchain.types.amount import AmountError, format_units, parse_decimal, parse_units
from smartchain.types.errors import TxError

token_app = typer.Typer(
    help="Issue and move tokens of IoT firms (IOT_Coin). Amounts are whole tokens (exact "
         "decimals, up to the token's decimals) unless --units says base units.",
    no_args_is_help=True)

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]
Symbol = Annotated[str, typer.Argument(help="Token symbol, e.g. PARK.")]
Amount = Annotated[str, typer.Argument(
    help="Whole tokens, exact decimal (e.g. 12.34); base units with --units.")]
Units = Annotated[bool, typer.Option(
    "--units", help="Amounts are integer base units instead of whole tokens.")]


# --- helpers ---------------------------------------------------------------------------


def check_symbol(symbol: str) -> str:
    problem = symbol_error(symbol)
    if problem:
        raise CliError(problem, "invalid_symbol")
    return symbol


def parse_token_amount(text: str, decimals: int, symbol: str, *, units: bool,
                       allow_zero: bool = False) -> int:
    """Base units from the command line, within what the chain accepts (0 < n <= 2^63-1)."""
    if not units:
        return parse_decimal(text, decimals, unit=symbol, max_units=MAX_AMOUNT,
                             allow_zero=allow_zero)
    n = parse_units(text)
    if n == 0 and not allow_zero:
        raise AmountError(f"amount must be positive: {text!r}")
    if n > MAX_AMOUNT:
        raise AmountError(f"amount too large: {text!r} (at most {MAX_AMOUNT} base units)")
    return n


def _token(symbol: str) -> dict[str, Any]:
    """The token's record (decimals are needed to read amounts); fails early if unknown."""
    return OPTS.client.token(check_symbol(symbol))


def _require_tokens(t: dict[str, Any], holder: str, who: str, value: int) -> None:
    """Refuse, before any passphrase prompt or simulation, to move more than ``holder``
    has: the common mistake gets a plain answer and nothing is sent."""
    have = OPTS.client.token_balance(t["symbol"], holder)
    if have < value:
        raise CliError(f"insufficient {t['symbol']}: {who} holds {_show(t, have)}, this needs "
                       f"{_show(t, value)}; nothing was sent", "insufficient_funds",
                       details={"symbol": t["symbol"], "balance": str(have),
                                "needed": str(value)})


def _require_allowance(t: dict[str, Any], owner: str, spender: str, value: int) -> None:
    allowed = OPTS.client.allowance(t["symbol"], owner, spender)
    if allowed < value:
        raise CliError(f"insufficient allowance: {owner} lets you move {_show(t, allowed)} "
                       f"of {t['symbol']}, this needs {_show(t, value)}; nothing was sent",
                       "insufficient_funds",
                       details={"symbol": t["symbol"], "allowance": str(allowed),
                                "needed": str(value)})


def _show(t: dict[str, Any], units: int) -> str:
    return f"{format_units(units, t['decimals'])} {t['symbol']}"


def holdings_lines(tokens: list[dict[str, Any]]) -> list[str]:
    """The token part of `smart query account`."""
    if not tokens:
        return []
    return ["tokens:"] + [f"  {t['amount']} {t['symbol']} ({t['balance']} units)"
                          for t in tokens]


# --- transactions ----------------------------------------------------------------------


@token_app.command("issue")
def issue(
    sender: From,
    symbol: Annotated[str, typer.Option(help="2-10 upper-case letters/digits, e.g. PARK.")],
    name: Annotated[str, typer.Option(help="Human name, e.g. 'Parking credit'.")],
    supply: Annotated[str, typer.Option(
        help="Initial supply in whole tokens (e.g. 1000000 or 12.34; base units with "
             "--units), credited to --from.")],
    decimals: Annotated[int, typer.Option(help="Decimal places of one token (0-18).")] = 0,
    mintable: Annotated[bool, typer.Option(help="The issuer may mint more later.")] = False,
    max_supply: Annotated[str | None, typer.Option(
        help="Cap on minting (with --mintable; default: no cap but 2^63-1 base units).")
    ] = None,
    units: Units = False,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Issue a new token; the symbol is yours for ever and the supply goes to --from."""
    check_symbol(symbol)
    if not 0 <= decimals <= 18:
        raise CliError(f"decimals must be 0-18, got {decimals}")
    if max_supply is not None and not mintable:
        raise CliError("--max-supply needs --mintable (a fixed token's supply is its maximum)")
    base = parse_token_amount(supply, decimals, symbol, units=units, allow_zero=mintable)
    cap = base if not mintable else MAX_AMOUNT if max_supply is None else \
        parse_token_amount(max_supply, decimals, symbol, units=units)
    try:
        validate_issue(Issue(symbol, name, decimals, base, mintable, cap))  # the chain's rules
    except TxError as exc:
        raise CliError(exc.message, "invalid_payload") from exc
    key = load_key(sender, passphrase_file)
    result = OPTS.client.issue_token(key, symbol, name, decimals, base, mintable=mintable,
                                     max_supply=cap, wait=wait, gas_price=gas_price,
                                     **sending(gas, dry_run))
    t = {"symbol": symbol, "decimals": decimals}
    _finish(result, wait, f"issued {_show(t, base)} ({name}) to {result.get('sender', '')}"
            + (f", mintable up to {_show(t, cap)}" if mintable else ""))


@token_app.command("transfer")
def transfer(
    sender: From,
    to: Annotated[str, typer.Option("--to", help="Recipient address (or key name).")],
    symbol: Symbol,
    amount: Amount,
    units: Units = False,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Send tokens from your own balance."""
    t = _token(symbol)
    value = parse_token_amount(amount, t["decimals"], symbol, units=units)
    recipient = resolve_address(to)
    _require_tokens(t, resolve_address(sender), sender, value)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.token_transfer(key, symbol, recipient, value, wait=wait,
                                        gas_price=gas_price, **sending(gas, dry_run))
    _finish(result, wait, f"sent {_show(t, value)} to {recipient}")


@token_app.command("approve")
def approve(
    sender: From,
    spender: Annotated[str, typer.Option(help="Who may spend (address or key name).")],
    symbol: Symbol,
    amount: Amount,
    units: Units = False,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Set what --spender may move from your balance (replaces any old allowance; 0 revokes)."""
    t = _token(symbol)
    value = parse_token_amount(amount, t["decimals"], symbol, units=units, allow_zero=True)
    who = resolve_address(spender)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.approve(key, symbol, who, value, wait=wait, gas_price=gas_price,
                                 **sending(gas, dry_run))
    _finish(result, wait, f"allowed {who} to spend {_show(t, value)}")


@token_app.command("transfer-from")
def transfer_from(
    sender: From,
    owner: Annotated[str, typer.Option(help="Whose tokens (address or key name).")],
    to: Annotated[str, typer.Option("--to", help="Recipient address (or key name).")],
    symbol: Symbol,
    amount: Amount,
    units: Units = False,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Move --owner's tokens within the allowance --owner gave you."""
    t = _token(symbol)
    value = parse_token_amount(amount, t["decimals"], symbol, units=units)
    frm, recipient = resolve_address(owner), resolve_address(to)
    _require_allowance(t, frm, resolve_address(sender), value)
    _require_tokens(t, frm, frm, value)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.transfer_from(key, symbol, frm, recipient, value, wait=wait,
                                       gas_price=gas_price, **sending(gas, dry_run))
    _finish(result, wait, f"sent {_show(t, value)} from {frm} to {recipient}")


@token_app.command("mint")
def mint(
    sender: From,
    symbol: Symbol,
    amount: Amount,
    to: Annotated[str | None, typer.Option(
        "--to", help="Recipient (address or key name; default: the issuer).")] = None,
    units: Units = False,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Create new tokens (issuer only, mintable tokens only, up to the max supply)."""
    t = _token(symbol)
    value = parse_token_amount(amount, t["decimals"], symbol, units=units)
    recipient = resolve_address(to) if to is not None else None
    key = load_key(sender, passphrase_file)
    recipient = recipient or to_bech32(key.address)
    result = OPTS.client.mint(key, symbol, recipient, value, wait=wait, gas_price=gas_price,
                              **sending(gas, dry_run))
    _finish(result, wait, f"minted {_show(t, value)} to {recipient}")


@token_app.command("burn")
def burn(
    sender: From,
    symbol: Symbol,
    amount: Amount,
    units: Units = False,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Destroy tokens from your own balance (the supply shrinks)."""
    t = _token(symbol)
    value = parse_token_amount(amount, t["decimals"], symbol, units=units)
    _require_tokens(t, resolve_address(sender), sender, value)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.burn(key, symbol, value, wait=wait, gas_price=gas_price,
                              **sending(gas, dry_run))
    _finish(result, wait, f"burned {_show(t, value)}")


# --- queries ---------------------------------------------------------------------------


@token_app.command("info")
def info(symbol: Symbol) -> None:
    """Issuer, decimals and supply of a token."""
    t = _token(symbol)
    rows = [("symbol", t["symbol"]), ("name", t["name"]), ("decimals", t["decimals"]),
            ("issuer", t["issuer"]), ("supply", f"{t['supply_amount']} ({t['supply']} units)"),
            ("mintable", "yes" if t["mintable"] else "no"),
            ("max supply", f"{t['max_supply_amount']} ({t['max_supply']} units)")]

    def human() -> None:
        for k, v in rows:
            out.print(f"{k + ':':<11} {v}", highlight=False)
    emit(t, human)


@token_app.command("list")
def list_tokens() -> None:
    """Every token on the chain."""
    tokens = OPTS.client.tokens()

    def human() -> None:
        if not tokens:
            out.print("no tokens issued yet")
            return
        # no issuer column: an address does not fit a piped 80-column table (see `info`)
        table = Table("symbol", "name", "decimals", "supply", "mintable")
        for t in tokens:
            table.add_row(t["symbol"], t["name"], str(t["decimals"]), t["supply_amount"],
                          "yes" if t["mintable"] else "no")
        out.print(table)

    emit({"tokens": tokens}, human)


@token_app.command("balance")
def balance(
    symbol: Symbol,
    address: Annotated[str, typer.Argument(help="Address or key name.")],
) -> None:
    """How much of a token an address holds."""
    check_symbol(symbol)
    doc = OPTS.client.token_balance_info(symbol, resolve_address(address))
    emit(doc, lambda: out.print(f"{doc['amount']} {symbol} ({doc['balance']} units)",
                                highlight=False))


@token_app.command("allowance")
def allowance(
    symbol: Symbol,
    owner: Annotated[str, typer.Argument(help="Owner address or key name.")],
    spender: Annotated[str, typer.Argument(help="Spender address or key name.")],
) -> None:
    """How much of owner's token the spender may still move."""
    check_symbol(symbol)
    doc = OPTS.client.allowance_info(symbol, resolve_address(owner), resolve_address(spender))
    emit(doc, lambda: out.print(f"{doc['amount']} {symbol} ({doc['allowance']} units)",
                                highlight=False))
