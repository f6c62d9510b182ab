"""``smart data``: find device data on offer, consent to sell yours, buy, deliver keys,
download and verify what you bought, prove a wrong key.

Prices are integer base units of the consent's token (HPC: 10^8 per HPC). Every check the
chain would make is simulated before anything is sent (``--gas auto``), so a refused
purchase pays nothing, not even a fee.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from smartchain.cli.common import (
    OPTS,
    CliError,
    DryRun,
    Gas,
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
from smartchain.client import ApiError
from smartchain.crypto.address import to_bech32

data_app = typer.Typer(help="Device data sold only with its owner's consent: search, consent, "
                            "buy, deliver keys, fetch and verify.", no_args_is_help=True)

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]
AssetOpt = Annotated[str, typer.Option("--asset", help="Asset id (64 hex characters).")]


def _hex32(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise CliError(f"{what} must be 64 hex characters", "malformed")
    return raw


def _finish(result: dict[str, Any], summary: str) -> dict[str, Any]:
    if result["status"] == "simulated":
        dry_run_report(result)
        raise typer.Exit(0)
    require_ok(result)
    emit(result, lambda: out.print(f"{summary}\n{committed_line(result)}", highlight=False))
    return result


def _event(result: dict[str, Any], kind: str, name: str) -> str:
    for e in result["receipt"]["events"]:
        if e["kind"] == kind:
            return str(e["attributes"][name])
    raise CliError(f"no {kind} event in the receipt", "internal")


@data_app.command("search")
def search(
    schema: Annotated[str, typer.Option(help="Schema name, e.g. car.trips.")] = "",
    model: Annotated[str, typer.Option(help="Device model.")] = "",
    region: Annotated[str, typer.Option(help="Region tag.")] = "",
    from_ms: Annotated[int | None, typer.Option(help="Records at or after (ms).")] = None,
    to_ms: Annotated[int | None, typer.Option(help="Records at or before (ms).")] = None,
    max_price: Annotated[int | None, typer.Option(help="Price per batch at most.")] = None,
) -> None:
    """Data assets on offer now, with their open consents."""
    found = OPTS.client.data_search(schema=schema, model=model, region=region,
                                    from_ms=from_ms, to_ms=to_ms, max_price=max_price)

    def human() -> None:
        if not found:
            out.print("nothing on offer matches")
            return
        table = Table("asset", "schema", "models", "region", "batches", "records",
                      "consent", "price", "token", "purposes")
        for a in found:
            for c in a["offers"]:
                table.add_row(a["id"][:16], a["schema"], ",".join(a["models"]), a["region"],
                              str(a["batches"]), a["records"], c["id"], c["price"],
                              c["token"], ",".join(c["purposes"]))
        out.print(table)
    emit({"assets": found}, human)


@data_app.command("show")
def show(asset: Annotated[str, typer.Argument(help="Asset id.")]) -> None:
    """An asset, its batches and its consents."""
    doc = OPTS.client.data_asset(_hex32(asset, "asset id").hex())

    def human() -> None:
        out.print(f"{doc['name']} ({doc['schema']}, {doc['region']}) of {doc['owner']}: "
                  f"{doc['batches']} batches, {doc['records']} records", highlight=False)
        for b in doc["batch_list"]:
            out.print(f"  batch {b['index']}: {b['count']} records {b['start_ms']}.."
                      f"{b['end_ms']} file {b['file_id']}", highlight=False)
        for c in doc["consents"]:
            state = "withdrawn" if c["withdrawn"] else f"until height {c['expiry']}"
            out.print(f"  consent {c['id']}: {c['price']} {c['token']} per batch for "
                      f"{','.join(c['purposes'])} ({state})", highlight=False)
    emit(doc, human)


@data_app.command("consent")
def consent(
    sender: From,
    asset: Annotated[list[str], typer.Option("--asset", help="Asset id (repeat).")],
    purpose: Annotated[list[str], typer.Option("--purpose", help="Purpose tag (repeat).")],
    price: Annotated[int, typer.Option(help="Base units per batch.", min=0)],
    expiry_blocks: Annotated[int, typer.Option(help="Open for this many blocks.", min=1)
                             ] = 100_000,
    buyer: Annotated[list[str] | None, typer.Option(
        "--buyer", help="Only this buyer (repeat; none: anyone).")] = None,
    token: Annotated[str, typer.Option(help="HPC or an IOT_Coin symbol.")] = "HPC",
    gas: Gas = "auto", dry_run: DryRun = False, passphrase_file: PassFile = None,
) -> None:
    """Consent to sell assets: to whom, for what, at what price, until when."""
    assets = [_hex32(a, "asset id") for a in asset]
    buyers = [resolve_address(b) for b in buyer or ()]
    key = load_key(sender, passphrase_file)
    expiry = int(OPTS.client.status()["height"]) + expiry_blocks
    result = OPTS.client.give_consent(key, assets, purpose, price, expiry, buyers=buyers,
                                      token=token, **sending(gas, dry_run))
    _finish(result, f"consent {_event(result, 'data_consent', 'consent')} given until "
                    f"height {expiry}")


@data_app.command("withdraw")
def withdraw(sender: From, consent_id: Annotated[int, typer.Argument(help="Consent id.")],
             gas: Gas = "auto", dry_run: DryRun = False,
             passphrase_file: PassFile = None) -> None:
    """Withdraw a consent: no new sale from now on (buyers keep what they bought)."""
    key = load_key(sender, passphrase_file)
    result = OPTS.client.withdraw_consent(key, consent_id, **sending(gas, dry_run))
    _finish(result, f"consent {consent_id} withdrawn")


@data_app.command("buy")
def buy(
    sender: From,
    consent_id: Annotated[int, typer.Argument(help="Consent id.")],
    asset: AssetOpt,
    batch: Annotated[list[int], typer.Option("--batch", help="Batch index (repeat).")],
    purpose: Annotated[str, typer.Option(help="Your purpose (one the consent allows).")],
    gas: Gas = "auto", dry_run: DryRun = False, passphrase_file: PassFile = None,
) -> None:
    """Pay for batches into escrow: the owner's agent delivers their keys."""
    doc = OPTS.client.data_consent(consent_id)
    total = int(doc["price"]) * len(batch)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.buy_data(key, consent_id, _hex32(asset, "asset id"), batch, purpose,
                                  total, token=doc["token"], **sending(gas, dry_run))
    _finish(result, f"purchase {_event(result, 'data_buy', 'purchase')}: {total} "
                    f"{doc['token']} in escrow")


@data_app.command("deliver")
def deliver(sender: From, passphrase_file: PassFile = None) -> None:
    """Deliver the keys of every purchase of your data waiting for them."""
    from smartchain.storage.datasets import DataError, deliver_waiting

    key = load_key(sender, passphrase_file)
    try:
        done = deliver_waiting(OPTS.client, key, to_bech32(key.address))
    except DataError as exc:
        raise CliError(str(exc), "storage_error") from None
    emit({"delivered": [str(i) for i in done]}, f"delivered keys of {len(done)} purchase(s)")


@data_app.command("fetch")
def fetch(
    sender: From,
    purchase_id: Annotated[int, typer.Argument(help="Purchase id.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for the batch files.")],
    wait: Annotated[float, typer.Option(
        help="Seconds to wait for keys not delivered yet (the files download meanwhile).",
        min=0)] = 0.0,
    passphrase_file: PassFile = None,
) -> None:
    """Download a delivered purchase and verify every record, the certificate and the root."""
    from smartchain.modules.storage.cli import _quiet_logs
    from smartchain.sdkfiles import client_p2p
    from smartchain.storage import client as sc
    from smartchain.storage.datasets import DataError, WrongKey, fetch_purchase

    if not out_dir.is_dir():
        raise CliError(f"{out_dir}: no such directory", "not_found")
    key = load_key(sender, passphrase_file)
    view = sc.ApiChainView(OPTS.client, key)
    _quiet_logs()

    async def run() -> Any:
        async with client_p2p(view.network_id) as p2p:
            return await fetch_purchase(p2p, view, OPTS.client, key, purchase_id, out_dir,
                                        wait=wait)

    try:
        batches = asyncio.run(run())
    except WrongKey as exc:
        raise CliError(f"{exc}: prove it with `smart data prove {purchase_id} "
                       f"{exc.position} --from {sender}`", "storage_error",
                       details={"reason": "wrong_key", "purchase": str(purchase_id),
                                "position": exc.position}) from None
    except (DataError, sc.StorageError) as exc:
        raise CliError(str(exc), "storage_error") from None
    records = sum(len(b.records) for b in batches)
    emit({"purchase": str(purchase_id), "batches": len(batches), "records": records},
         f"{len(batches)} batch(es), {records} records: every signature, the certificate "
         "and the Merkle root verified")


@data_app.command("prove")
def prove(sender: From, purchase_id: Annotated[int, typer.Argument(help="Purchase id.")],
          position: Annotated[int, typer.Argument(help="Which batch of the purchase.")],
          gas: Gas = "auto", dry_run: DryRun = False,
          passphrase_file: PassFile = None) -> None:
    """Prove a delivered key wrong: refund of that batch and the owner's penalty."""
    key = load_key(sender, passphrase_file)
    purchase = OPTS.client.data_purchase(purchase_id)
    result = OPTS.client.prove_wrong_key(key, purchase, position, **sending(gas, dry_run))
    _finish(result, f"batch {position} of purchase {purchase_id} proven wrong: refunded")


@data_app.command("register-box-key")
def register_box_key(sender: From, gas: Gas = "auto", dry_run: DryRun = False,
                     passphrase_file: PassFile = None) -> None:
    """Publish your X25519 key (derived from your key) so files can be shared with you."""
    key = load_key(sender, passphrase_file)
    _finish(OPTS.client.register_box_key(key, **sending(gas, dry_run)), "box key registered")


def share(file_id: bytes, sender: str, recipient: str, passphrase_file: Path | None) -> None:
    """``smart store share``: seal a stored file's key to another account's box key."""
    from smartchain.storage.datasets import DataError, share_key

    address = resolve_address(recipient)
    key = load_key(sender, passphrase_file)
    try:
        result = share_key(OPTS.client, key, file_id, address)
    except DataError as exc:
        raise CliError(str(exc), "storage_error") from None
    except ApiError as exc:
        if exc.code == "not_found":
            raise CliError(f"{address} has no box key: it runs `smart data register-box-key`",
                           "not_found", details={"reason": "no_box_key"}) from None
        raise
    _finish(result, f"file {file_id.hex()} shared with {address}")
