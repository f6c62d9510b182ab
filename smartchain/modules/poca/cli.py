"""``smart validator`` (candidates, tiers, the signers' votes) and ``smart stake`` (holders'
delegations). Amounts are HPC as exact decimals (``12.5``); the chain sees base units."""

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
from smartchain.modules.poca.types import MAX_MONIKER, MAX_REASON
from smartchain.types.amount import AmountError, format_hpc, parse_hpc

validator_app = typer.Typer(
    help="Signer candidates: register a node's consensus key, list the tiers, unjail, and "
         "the directors' elimination and admission votes.", no_args_is_help=True)
stake_app = typer.Typer(help="Delegate HPC to a candidate (holders' votes) and take it back.",
                        no_args_is_help=True)

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]
Address = Annotated[str, typer.Argument(help="A candidate's operator address (or key name).")]
Hpc = Annotated[str, typer.Argument(help="HPC, exact decimal (e.g. 12.5).")]


def _hpc(text: str) -> int:
    try:
        units = parse_hpc(text)
    except AmountError as exc:
        raise CliError(str(exc), "invalid_amount") from exc
    if units <= 0:
        raise CliError(f"amount must be positive: {text!r}", "invalid_amount")
    return units


# --- validator ----------------------------------------------------------------------------


@validator_app.command("register")
def register(
    sender: From,
    stake: Annotated[str, typer.Option(help="Self stake in HPC (at least the chain's "
                                            "poca_min_self_stake).")],
    moniker: Annotated[str, typer.Option(help="A name shown in the validator list.")] = "",
    consensus_key: Annotated[str | None, typer.Option(
        help="Keyring name of the node's consensus key (default: --from itself).")] = None,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Bind a node's consensus key to your account and lock a self stake."""
    if len(moniker) > MAX_MONIKER or not moniker.isprintable():
        raise CliError(f"--moniker must be at most {MAX_MONIKER} printable characters")
    units = _hpc(stake)
    key = load_key(sender, passphrase_file)
    ckey = key if consensus_key is None else load_key(consensus_key, passphrase_file)
    result = OPTS.client.register_validator(key, ckey, units, moniker=moniker, wait=wait,
                                            gas_price=gas_price, **sending(gas, dry_run))
    _finish(result, wait, f"registered {ckey.public_key.hex()} with {format_hpc(units)} HPC")


def _table(doc: dict[str, Any]) -> None:
    table = Table(title=f"epoch {doc['epoch']} at height {doc['height']}")
    for col in ("address", "moniker", "tier", "status", "power", "stake (HPC)",
                "delegated (HPC)", "competence", "uptime", "missed"):
        table.add_column(col)
    for v in doc["validators"]:
        table.add_row(v["address"], v["moniker"], v["tier"], v["status"], str(v["power"]),
                      format_hpc(int(v["stake"])), format_hpc(int(v["delegated"])),
                      str(v["competence"]), f"{v['uptime'] / 100:.2f}%",
                      str(v["missed_blocks"]))
    out.print(table)


@validator_app.command("list")
def list_validators() -> None:
    """Every candidate with its tier (director, standby_signer, standby_compute, ordinary)."""
    doc = OPTS.client.validators()
    emit(doc, lambda: _table(doc))


@validator_app.command("show")
def show(address: Address) -> None:
    """One candidate."""
    v = OPTS.client.validator(resolve_address(address))
    emit(v, lambda: out.print("\n".join(f"{k}: {val}" for k, val in v.items())))


@validator_app.command("unjail")
def unjail(sender: From, gas: Gas = "auto", gas_price: GasPrice = None,
           dry_run: DryRun = False, wait: Wait = True,
           passphrase_file: PassFile = None) -> None:
    """Back in the ranking after a downtime jail (once jail_blocks have passed)."""
    key = load_key(sender, passphrase_file)
    result = OPTS.client.unjail(key, wait=wait, gas_price=gas_price, **sending(gas, dry_run))
    _finish(result, wait, "unjailed: ranked again at the next epoch")


@validator_app.command("eliminate")
def eliminate(
    sender: From,
    target: Address,
    reason: Annotated[str, typer.Option(help="Why the target is unqualified.")],
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Propose (as a director) to eliminate a signer; your vote counts as yes."""
    if not reason.strip() or len(reason) > MAX_REASON:
        raise CliError(f"--reason must be 1-{MAX_REASON} characters")
    who = resolve_address(target)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.eliminate(key, who, reason, wait=wait, gas_price=gas_price,
                                   **sending(gas, dry_run))
    _finish(result, wait, f"proposed to eliminate {who}")


@validator_app.command("vote-eliminate")
def vote_eliminate(sender: From, target: Address, gas: Gas = "auto",
                   gas_price: GasPrice = None, dry_run: DryRun = False, wait: Wait = True,
                   passphrase_file: PassFile = None) -> None:
    """Vote yes (as a director) on an open elimination."""
    who = resolve_address(target)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.vote_eliminate(key, who, wait=wait, gas_price=gas_price,
                                        **sending(gas, dry_run))
    _finish(result, wait, f"voted to eliminate {who}")


@validator_app.command("approve")
def approve(sender: From, candidate: Address, gas: Gas = "auto", gas_price: GasPrice = None,
            dry_run: DryRun = False, wait: Wait = True,
            passphrase_file: PassFile = None) -> None:
    """Approve (as a director) a new candidate when admission is by approval."""
    who = resolve_address(candidate)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.approve_validator(key, who, wait=wait, gas_price=gas_price,
                                           **sending(gas, dry_run))
    _finish(result, wait, f"approved {who}")


# --- stake --------------------------------------------------------------------------------


@stake_app.command("delegate")
def delegate(sender: From, validator: Address, amount: Hpc, gas: Gas = "auto",
             gas_price: GasPrice = None, dry_run: DryRun = False, wait: Wait = True,
             passphrase_file: PassFile = None) -> None:
    """Lock HPC behind a candidate: it adds to its voting power from the next epoch."""
    units = _hpc(amount)
    who = resolve_address(validator)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.delegate(key, who, units, wait=wait, gas_price=gas_price,
                                  **sending(gas, dry_run))
    _finish(result, wait, f"delegated {format_hpc(units)} HPC to {who}")


@stake_app.command("undelegate")
def undelegate(sender: From, validator: Address, amount: Hpc, gas: Gas = "auto",
               gas_price: GasPrice = None, dry_run: DryRun = False, wait: Wait = True,
               passphrase_file: PassFile = None) -> None:
    """Take a delegation back: it is paid after the unbonding period (still slashable)."""
    units = _hpc(amount)
    who = resolve_address(validator)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.undelegate(key, who, units, wait=wait, gas_price=gas_price,
                                    **sending(gas, dry_run))
    _finish(result, wait, f"undelegating {format_hpc(units)} HPC from {who}")


@stake_app.command("show")
def show_stake(address: Annotated[str, typer.Argument(help="Account (or key name).")]) -> None:
    """An account's delegations and its stake unbonding."""
    doc = OPTS.client.delegations(resolve_address(address))

    def human() -> None:
        for d in doc["delegations"]:
            out.print(f"{format_hpc(int(d['amount']))} HPC delegated to {d['validator']}")
        for u in doc["unbonding"]:
            out.print(f"{format_hpc(int(u['amount']))} HPC unbonding from {u['validator']} "
                      f"until height {u['completion']}")
        if not doc["delegations"] and not doc["unbonding"]:
            out.print("no delegations")
    emit(doc, human)
