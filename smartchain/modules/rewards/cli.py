"""``smart rewards``: what an account has accrued, withdrawing it, a validator's commission.

Amounts are shown in HPC. ``smart rewards show`` without an address prints the epochs'
figures (utilisation, the curve, minted against the schedule).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

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
    load_key,
    out,
    require_ok,
    resolve_address,
    sending,
)
from smartchain.crypto.address import to_bech32
from smartchain.types.amount import format_hpc

rewards_app = typer.Typer(help="Block rewards: show what is accrued, withdraw it, set a "
                               "validator's commission.", no_args_is_help=True)

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]


def _pct(bps: int) -> str:
    return f"{bps / 100:.2f} %"


def _show_epochs(doc: dict[str, Any]) -> None:
    out.print(f"epoch running since height {doc['epoch_start']}; minted "
              f"{format_hpc(int(doc['minted']))} HPC of {format_hpc(int(doc['schedule_so_far']))}"
              f" the schedule allowed so far", highlight=False)
    last = doc["last"]
    if last is None:
        out.print("no epoch settled yet")
        return
    out.print(f"last epoch {last['start']}..{last['end']}: utilisation "
              f"{_pct(last['utilisation_bps'])} (compute {_pct(last['compute_bps'])}, storage "
              f"{_pct(last['storage_bps'])}, bandwidth {_pct(last['bandwidth_bps'])}), curve "
              f"{_pct(last['curve_bps'])} of {format_hpc(int(last['schedule']))} HPC: minted "
              f"{format_hpc(int(last['minted']))} HPC ({format_hpc(int(last['to_providers']))} "
              f"to providers)", highlight=False)


def _show_account(doc: dict[str, Any]) -> None:
    out.print(f"{doc['address']}: {format_hpc(int(doc['total']))} HPC to withdraw",
              highlight=False)
    out.print(f"  accrued directly: {format_hpc(int(doc['accrued']))} HPC", highlight=False)
    for d in doc["delegations"]:
        out.print(f"  from the delegation to {d['validator']}: "
                  f"{format_hpc(int(d['amount']))} HPC", highlight=False)
    if doc["commission"] is not None:
        out.print(f"  commission: {_pct(doc['commission']['rate_bps'])}", highlight=False)


@rewards_app.command("show")
def show(address: Annotated[str | None, typer.Argument(
        help="Account (or key name); without it, the epochs' figures.")] = None) -> None:
    """What an account may withdraw, or (no address) the epochs' utilisation and mint."""
    if address is None:
        doc = OPTS.client.rewards_epochs()
        emit(doc, lambda: _show_epochs(doc))
        return
    doc = OPTS.client.rewards(resolve_address(address))
    emit(doc, lambda: _show_account(doc))


def _sent(result: dict[str, Any], summary: str) -> None:
    if result["status"] == "simulated":
        dry_run_report(result)
        return
    require_ok(result)
    emit(result, lambda: out.print(f"{summary}\n{committed_line(result)}", highlight=False))


@rewards_app.command("withdraw")
def withdraw(sender: From, gas: Gas = "auto", gas_price: GasPrice = None,
             dry_run: DryRun = False, passphrase_file: PassFile = None) -> None:
    """Withdraw every reward accrued to the account and to its delegations."""
    key = load_key(sender, passphrase_file)
    total = int(OPTS.client.rewards(to_bech32(key.address))["total"])
    if total == 0:
        raise CliError(f"{to_bech32(key.address)} has no rewards accrued to withdraw")
    result = OPTS.client.withdraw_rewards(key, gas_price=gas_price, **sending(gas, dry_run))
    _sent(result, f"withdrew {format_hpc(total)} HPC (what accrued until the block)")


@rewards_app.command("commission")
def commission(
    rate_bps: Annotated[int, typer.Argument(help="New commission, basis points (100 = 1 %).",
                                            min=0, max=10_000)],
    sender: From, gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    passphrase_file: PassFile = None,
) -> None:
    """Set your validator's commission (bounded; a limited change, at a limited rate)."""
    key = load_key(sender, passphrase_file)
    result = OPTS.client.set_commission(key, rate_bps, gas_price=gas_price,
                                        **sending(gas, dry_run))
    _sent(result, f"commission set to {_pct(rate_bps)}")
