"""``smart market``: service offers, asks and bids, agreements, usage receipts, closing.

Prices and amounts are integer base units of the offer's token (HPC: 10^8 per HPC; an
IOT_Coin token: its base units). ``sign-receipt`` signs one agent's half offline; two halves
make a receipt that ``submit-receipt`` posts.
"""

from __future__ import annotations

from collections.abc import Callable
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
    report_sent,
    resolve_address,
    sending,
)
from smartchain.modules.devices.cli import hex_bytes
from smartchain.modules.market.module import validate_bid, validate_offer
from smartchain.modules.market.sdk import agreement_ids, offer_id, order_id
from smartchain.modules.market.types import (
    CreateOffer,
    PlaceBid,
    Terms,
    UsageReceipt,
    sign_receipt,
)
from smartchain.types.errors import TxError

market_app = typer.Typer(help="Trade IoT services: offers, asks and bids matched on chain, "
                              "agreements settled from escrow against usage receipts. Prices "
                              "are integer base units of the token.", no_args_is_help=True)

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]
Id = Annotated[int, typer.Argument(help="Id.", min=1)]
Agent = Annotated[str | None, typer.Option(
    "--agent-key", help="Public key (hex) signing receipts for you: a device you own "
                        "(default: your own key).")]


def _finish(result: dict[str, Any], wait: bool,
            summary: str | Callable[[dict[str, Any]], str]) -> None:
    report_sent(result, wait, summary, highlight=False)


def _check(validate: Any, msg: Any) -> None:
    try:
        validate(msg)
    except TxError as exc:
        raise CliError(exc.message, "invalid_payload") from exc


def _agent(agent_key: str | None) -> bytes | None:
    return hex_bytes(agent_key, 32, "agent key") if agent_key else None


def _matched(result: dict[str, Any]) -> str:
    ids = agreement_ids(result)
    return f"order {order_id(result)} placed" + (
        f"; agreements {', '.join(map(str, ids))}" if ids else "; resting in the book")


@market_app.command("offer")
def offer(
    sender: From,
    service_type: Annotated[str, typer.Option("--type", help="e.g. weather.readings")],
    unit: Annotated[str, typer.Option(help="e.g. reading")],
    price: Annotated[int, typer.Option(help="List price per unit (base units).")],
    token: Annotated[str, typer.Option(help="HPC or an IOT_Coin token symbol.")] = "HPC",
    min_quantity: Annotated[int, typer.Option(help="Least units per agreement.")] = 1,
    max_quantity: Annotated[int, typer.Option(help="Most units per agreement.")] = 1_000_000,
    deposit_bps: Annotated[int, typer.Option(help="Deposit, share of the total (bps).")] = 0,
    instalment: Annotated[int, typer.Option(help="Units prepaid ahead of service.")] = 10,
    deadline: Annotated[int, typer.Option(help="Blocks to serve an agreement in.")] = 1_000,
    agent_key: Agent = None,
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Describe a service you provide."""
    key = load_key(sender, passphrase_file)
    terms = Terms(deposit_bps, instalment, deadline)
    agent = _agent(agent_key) or key.public_key
    _check(validate_offer, CreateOffer(service_type, unit, price, token, min_quantity,
                                       max_quantity, terms, agent))
    result = OPTS.client.create_offer(key, service_type, unit, price, token, min_quantity,
                                      max_quantity, terms, agent_key=agent, wait=wait,
                                      gas_price=gas_price, **sending(gas, dry_run))
    _finish(result, wait, lambda r: f"offer {offer_id(r)}: {service_type} at {price} {token}"
                                    f" per {unit}")


@market_app.command("ask")
def ask(
    sender: From, offer_id_: Annotated[int, typer.Argument(help="Your offer's id.", min=1)],
    price: Annotated[int, typer.Option(help="Limit price per unit (base units).")],
    quantity: Annotated[int, typer.Option(help="Units.")],
    expiry: Annotated[int, typer.Option(help="Last height it can match at.")],
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Quote a supply on one of your offers; it matches the best bids at once."""
    key = load_key(sender, passphrase_file)
    result = OPTS.client.place_ask(key, offer_id_, price, quantity, expiry, wait=wait,
                                   gas_price=gas_price, **sending(gas, dry_run))
    _finish(result, wait, _matched)


@market_app.command("bid")
def bid(
    sender: From,
    service_type: Annotated[str, typer.Option("--type", help="e.g. weather.readings")],
    price: Annotated[int, typer.Option(help="Limit price per unit (base units).")],
    quantity: Annotated[int, typer.Option(help="Units.")],
    expiry: Annotated[int, typer.Option(help="Last height it can match at.")],
    token: Annotated[str, typer.Option(help="HPC or an IOT_Coin token symbol.")] = "HPC",
    max_deposit_bps: Annotated[int, typer.Option(
        help="Match only offers asking at most this deposit share.")] = 10_000,
    agent_key: Agent = None,
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Quote a demand; it locks its budget and matches the best asks at once."""
    key = load_key(sender, passphrase_file)
    agent = _agent(agent_key) or key.public_key
    _check(validate_bid, PlaceBid(service_type, token, price, quantity, expiry,
                                  max_deposit_bps, agent))
    result = OPTS.client.place_bid(key, service_type, token, price, quantity, expiry,
                                   max_deposit_bps=max_deposit_bps, agent_key=agent,
                                   wait=wait, gas_price=gas_price, **sending(gas, dry_run))
    _finish(result, wait, _matched)


@market_app.command("cancel")
def cancel(sender: From, order: Id, gas: Gas = "auto", gas_price: GasPrice = None,
           dry_run: DryRun = False, wait: Wait = True, passphrase_file: PassFile = None) -> None:
    """Withdraw a resting order (a bid's lock comes back)."""
    key = load_key(sender, passphrase_file)
    result = OPTS.client.cancel_order(key, order, wait=wait, gas_price=gas_price,
                                      **sending(gas, dry_run))
    _finish(result, wait, f"order {order} cancelled")


@market_app.command("sign-receipt")
def sign_receipt_cmd(
    sender: From, agreement: Id,
    counter: Annotated[int, typer.Option(help="Cumulative units served.", min=0)],
    final: Annotated[bool, typer.Option(help="Settle and close with this counter.")] = False,
    passphrase_file: PassFile = None,
) -> None:
    """Sign your half of a usage receipt with the agent key --from (offline but for the
    chain id)."""
    key = load_key(sender, passphrase_file)
    chain_id = OPTS.client.status()["chain_id"]
    sig = sign_receipt(key, chain_id, agreement, counter, final).hex()
    emit({"agreement_id": agreement, "counter": counter, "final": final, "signer":
          key.public_key.hex(), "signature": sig}, sig)


@market_app.command("submit-receipt")
def submit_receipt(
    sender: From, agreement: Id,
    counter: Annotated[int, typer.Option(help="Cumulative units served.", min=0)],
    provider_sig: Annotated[str, typer.Option(help="Provider agent's signature (hex).")],
    consumer_sig: Annotated[str, typer.Option(help="Consumer agent's signature (hex).")],
    final: Annotated[bool, typer.Option(help="The receipt is final.")] = False,
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Post a receipt both agents signed: pays the units served, prepays the next
    instalment (or settles, if final)."""
    r = UsageReceipt(agreement, counter, final, hex_bytes(provider_sig, 64, "signature"),
                     hex_bytes(consumer_sig, 64, "signature"))
    key = load_key(sender, passphrase_file)
    result = OPTS.client.submit_receipts(key, [r], wait=wait, gas_price=gas_price,
                                         **sending(gas, dry_run))
    _finish(result, wait, f"agreement {agreement}: counter {counter} accepted")


@market_app.command("close")
def close(sender: From, agreement: Id, gas: Gas = "auto", gas_price: GasPrice = None,
          dry_run: DryRun = False, wait: Wait = True, passphrase_file: PassFile = None) -> None:
    """Close an agreement the other party abandoned (see docs/market.md for when)."""
    key = load_key(sender, passphrase_file)
    result = OPTS.client.close_agreement(key, agreement, wait=wait, gas_price=gas_price,
                                         **sending(gas, dry_run))
    _finish(result, wait, f"agreement {agreement} closed")


# --- queries -------------------------------------------------------------------------------


@market_app.command("offers")
def offers(
    service_type: Annotated[str | None, typer.Option("--type", help="Service type.")] = None,
    token: Annotated[str | None, typer.Option(help="Token.")] = None,
    max_price: Annotated[int | None, typer.Option(help="Highest unit price.")] = None,
) -> None:
    """Active offers (by type and token, cheapest first)."""
    found = OPTS.client.offers(service_type, token, max_price)

    def human() -> None:
        table = Table("id", "type", "unit", "price", "token", "deposit bps", "instalment")
        for o in found:
            table.add_row(o["id"], o["service_type"], o["unit"], o["unit_price"], o["token"],
                          str(o["terms"]["deposit_bps"]), o["terms"]["instalment_units"])
        out.print(table if found else "no offers")
    emit({"offers": found}, human)


@market_app.command("book")
def book(service_type: Annotated[str, typer.Argument(help="Service type.")],
         token: Annotated[str, typer.Option(help="Token.")] = "HPC") -> None:
    """The order book of a service type: asks lowest first, bids highest first."""
    doc = OPTS.client.order_book(service_type, token)

    def human() -> None:
        for side in ("asks", "bids"):
            out.print(f"{side}:")
            for o in doc[side]:
                out.print(f"  #{o['id']} {o['remaining']} @ {o['price']} (expires "
                          f"{o['expiry']})", highlight=False)
    emit(doc, human)


@market_app.command("agreements")
def agreements(party: Annotated[str, typer.Argument(help="Address or key name.")]) -> None:
    """The agreements an account is a party of."""
    found = OPTS.client.agreements(resolve_address(party))

    def human() -> None:
        table = Table("id", "type", "qty", "price", "token", "counter", "status")
        for a in found:
            table.add_row(a["id"], a["service_type"], a["quantity"], a["price"], a["token"],
                          a["counter"], a["status"])
        out.print(table if found else "no agreements")
    emit({"party": resolve_address(party), "agreements": found}, human)


@market_app.command("agreement")
def agreement(agreement_id: Id) -> None:
    """An agreement: parties, terms, counter, escrow, status."""
    doc = OPTS.client.agreement(agreement_id)

    def human() -> None:
        for k in ("id", "status", "service_type", "provider", "consumer", "quantity",
                  "price", "token", "counter", "coverage", "deposit", "escrow",
                  "deadline_height", "provider_paid", "consumer_refund"):
            out.print(f"{k + ':':<16} {doc[k]}", highlight=False)
    emit(doc, human)


@market_app.command("receipts")
def receipts(agreement_id: Id) -> None:
    """The usage receipts an agreement accepted."""
    found = OPTS.client.agreement_receipts(agreement_id)

    def human() -> None:
        for r in found:
            out.print(f"counter {r['counter']}{' final' if r['final'] else ''} at height "
                      f"{r['height']}: paid {r['paid']}", highlight=False)
        if not found:
            out.print("no receipts")
    emit({"agreement_id": str(agreement_id), "receipts": found}, human)
