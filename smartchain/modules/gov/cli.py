"""``smart gov``: propose param changes, community-pool spends or text; deposit; vote; read.

Amounts (deposits, spends) are HPC, exact decimals with up to 8 places. A param proposal
names fields of the chain's params as ``KEY=VALUE`` (``smart gov params`` lists them with
their values); the chain refuses an unknown key, a bad value or a change that would leave
params invalid when the proposal is made.
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
    committed_line,
    dry_run_report,
    emit,
    load_key,
    out,
    require_ok,
    resolve_address,
    sending,
)
from smartchain.modules.gov.sdk import proposal_id
from smartchain.modules.gov.types import OPTIONS
from smartchain.state.params.bounds import parse_value
from smartchain.types.amount import format_hpc, parse_hpc

gov_app = typer.Typer(help="Govern the chain: proposals, deposits and votes by locked HPC.",
                      no_args_is_help=True)
propose_app = typer.Typer(help="Make a proposal (its first deposit with --deposit).",
                          no_args_is_help=True)
gov_app.add_typer(propose_app, name="propose")

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]
Title = Annotated[str, typer.Option(help="One line saying what the proposal does.")]
Description = Annotated[str, typer.Option(help="Why (up to 4000 characters).")]
DepositHpc = Annotated[str, typer.Option("--deposit", help="First deposit, HPC (e.g. 1000).")]
ProposalId = Annotated[int, typer.Argument(help="Proposal id.", min=1)]


def parse_changes(items: list[str]) -> list[tuple[str, str]]:
    """``KEY=VALUE`` items, each key a param and each value of its type (checked here so a
    typo fails before anything is signed; the chain checks the bounds)."""
    changes = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise CliError(f"a change is KEY=VALUE, got {item!r}")
        parse_value(key, value)  # ParamsError (a ValueError): unknown key or bad value
        changes.append((key, value))
    return changes


def _propose_done(result: dict[str, Any]) -> None:
    if result["status"] == "simulated":
        dry_run_report(result)
        return
    require_ok(result)
    doc = {**OPTS.client.proposal(proposal_id(result)), "tx": result["hash"]}
    emit(doc, lambda: out.print(
        f"proposal {doc['id']} ({doc['kind']}): {doc['status']}, deposit "
        f"{format_hpc(int(doc['total_deposit']))} HPC"
        + (f", voting ends at height {doc['voting_end']}" if doc["status"] == "voting"
           else f", deposit period ends at height {doc['deposit_end']}")
        + f"\n{committed_line(result)}", highlight=False))


@propose_app.command("param")
def propose_param(
    changes: Annotated[list[str], typer.Argument(help="KEY=VALUE changes, e.g. "
                                                      "min_gas_price=5.")],
    sender: From,
    title: Title,
    deposit: DepositHpc,
    description: Description = "",
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    passphrase_file: PassFile = None,
) -> None:
    """Propose changing chain params; a passing change takes effect after the tally."""
    parsed = parse_changes(changes)
    key = load_key(sender, passphrase_file)
    _propose_done(OPTS.client.propose_params(
        key, parsed, title=title, description=description, deposit=parse_hpc(deposit),
        gas_price=gas_price, **sending(gas, dry_run)))


@propose_app.command("spend")
def propose_spend(
    sender: From,
    to: Annotated[str, typer.Option("--to", help="Recipient address (or key name).")],
    amount: Annotated[str, typer.Option(help="HPC the community pool pays.")],
    title: Title,
    deposit: DepositHpc,
    description: Description = "",
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    passphrase_file: PassFile = None,
) -> None:
    """Propose paying HPC from the community pool (paid at the tally, if it holds enough)."""
    recipient, units = resolve_address(to), parse_hpc(amount)
    key = load_key(sender, passphrase_file)
    _propose_done(OPTS.client.propose_spend(
        key, recipient, units, title=title, description=description,
        deposit=parse_hpc(deposit), gas_price=gas_price, **sending(gas, dry_run)))


@propose_app.command("text")
def propose_text(
    sender: From,
    title: Title,
    deposit: DepositHpc,
    description: Description = "",
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    passphrase_file: PassFile = None,
) -> None:
    """Propose a text: the chain records the holders' answer and does nothing else."""
    key = load_key(sender, passphrase_file)
    _propose_done(OPTS.client.propose_text(
        key, title=title, description=description, deposit=parse_hpc(deposit),
        gas_price=gas_price, **sending(gas, dry_run)))


def _sent(result: dict[str, Any], summary: str) -> None:
    if result["status"] == "simulated":
        dry_run_report(result)
        return
    require_ok(result)
    emit(result, lambda: out.print(f"{summary}\n{committed_line(result)}", highlight=False))


@gov_app.command("deposit")
def deposit(
    pid: ProposalId,
    amount: Annotated[str, typer.Argument(help="HPC to add to the proposal's deposit.")],
    sender: From,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    passphrase_file: PassFile = None,
) -> None:
    """Add to a proposal's deposit (in its deposit period); it opens to votes once funded."""
    units = parse_hpc(amount)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.deposit(key, pid, units, gas_price=gas_price, **sending(gas, dry_run))
    _sent(result, f"deposited {format_hpc(units)} HPC on proposal {pid}")


@gov_app.command("vote")
def vote(
    pid: ProposalId,
    option: Annotated[str, typer.Argument(help="yes, no, abstain or veto.")],
    sender: From,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    passphrase_file: PassFile = None,
) -> None:
    """Vote with your locked HPC (a later vote replaces yours; as a delegator, your vote
    overrides your validator's for your share)."""
    if option.lower() not in OPTIONS:
        raise CliError(f"a vote is one of {', '.join(OPTIONS)}, not {option!r}")
    key = load_key(sender, passphrase_file)
    result = OPTS.client.vote(key, pid, option, gas_price=gas_price, **sending(gas, dry_run))
    _sent(result, f"voted {option.lower()} on proposal {pid}")


@gov_app.command("list")
def list_proposals(
    status: Annotated[str, typer.Option(help="all, deposit, voting, passed, rejected, "
                                             "vetoed, no_quorum, failed or expired.")] = "all",
) -> None:
    """Proposals, newest first."""
    found = OPTS.client.proposals(status)

    def human() -> None:
        if not found:
            out.print("no proposals")
            return
        table = Table("id", "kind", "status", "title", "ends")
        for p in found:
            ends = p["voting_end"] if p["status"] == "voting" else p["deposit_end"] \
                if p["status"] == "deposit" else "-"
            table.add_row(str(p["id"]), p["kind"], p["status"], p["title"], str(ends))
        out.print(table)

    emit({"proposals": found}, human)


@gov_app.command("show")
def show(pid: ProposalId) -> None:
    """A proposal: what it does, deposits, ballots and the tally."""
    p = OPTS.client.proposal(pid)

    def human() -> None:
        rows = [("id", p["id"]), ("kind", p["kind"]), ("title", p["title"]),
                ("status", p["status"] + (f" ({p['note']})" if p["note"] else "")),
                ("proposer", p["proposer"]),
                ("deposit", f"{format_hpc(int(p['total_deposit']))} HPC from "
                            f"{p['depositors']} account(s)")]
        rows += [("change", f"{c['key']}={c['value']}") for c in p["changes"]]
        if p["kind"] == "spend":
            rows.append(("spend", f"{format_hpc(int(p['amount']))} HPC to {p['recipient']}"))
        if p["voting_start"]:
            rows.append(("voting", f"heights {p['voting_start']}..{p['voting_end']}"))
        t = p["tally"]
        rows.append(("tally", ", ".join(f"{o} {format_hpc(int(t[o]))}" for o in OPTIONS)
                     + f" of {format_hpc(int(t['locked']))} HPC locked"))
        for k, v in rows:
            out.print(f"{k + ':':<10} {v}", highlight=False)
        if p["description"]:
            out.print(p["description"], highlight=False)

    emit(p, human)


@gov_app.command("params")
def params() -> None:
    """Every chain param, its value and the height its last change took effect."""
    found = OPTS.client.governed_params()

    def human() -> None:
        table = Table("param", "value", "changed at")
        for name, v in found.items():
            since = v["changed_at"] if v["changed_at"] != "0" else "genesis"
            table.add_row(name, v["value"], since)
        out.print(table)

    emit(found, human)
