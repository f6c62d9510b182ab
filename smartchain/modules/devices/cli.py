"""``smart device``: manufacturers, certificates, device registration, transfer, revocation.

``certify`` and ``pop`` sign offline (no node): a factory certifies a device key, a device
proves it holds its key; ``register`` sends both to the chain.
"""

from __future__ import annotations

from typing import Annotated

import typer

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
from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.modules.devices.module import validate_register_device
from smartchain.modules.devices.types import RegisterDevice, sign_certificate, sign_pop
from smartchain.types.amount import parse_hpc
from smartchain.types.errors import TxError

device_app = typer.Typer(help="Certified IoT device identities: manufacturers certify, owners "
                              "register and transfer, manufacturers revoke.",
                         no_args_is_help=True)

From = Annotated[str, typer.Option("--from", help="Key name in the keyring.")]
DeviceKey = Annotated[str, typer.Argument(help="Device public key (64 hex characters).")]
Caps = Annotated[list[str] | None, typer.Option(
    "--cap", help="A capability (repeat), e.g. --cap weather.readings.")]


def hex_bytes(text: str, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise CliError(f"{what} must be {2 * size} hex characters", "malformed")
    return raw


@device_app.command("register-manufacturer")
def register_manufacturer(
    sender: From,
    name: Annotated[str, typer.Option(help="The manufacturer's name.")],
    deposit: Annotated[str, typer.Option(help="HPC to lock (at least the chain's minimum; "
                                               "again to top up).")],
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Register --from as a manufacturer: its key signs device certificates."""
    units = parse_hpc(deposit)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.register_manufacturer(key, name, units, wait=wait,
                                               gas_price=gas_price, **sending(gas, dry_run))
    _finish(result, wait, f"{to_bech32(key.address)} is manufacturer {name!r}")


@device_app.command("certify")
def certify(
    sender: From,
    device: DeviceKey,
    model: Annotated[str, typer.Option(help="Model name.")],
    serial: Annotated[str, typer.Option(help="Serial number.")],
    cap: Caps = None,
    passphrase_file: PassFile = None,
) -> None:
    """Sign a device's certificate with the manufacturer key --from (offline)."""
    pubkey = hex_bytes(device, 32, "device key")
    key = load_key(sender, passphrase_file)
    caps = tuple(cap or ())
    _check(RegisterDevice(pubkey, key.address, model, serial, caps, bytes(64), key.address,
                          bytes(64)))
    cert = sign_certificate(key, pubkey, model, serial, caps).hex()
    emit({"manufacturer": to_bech32(key.address), "device": device, "model": model,
          "serial": serial, "capabilities": list(caps), "certificate": cert}, cert)


def _check(msg: RegisterDevice) -> None:
    try:
        validate_register_device(msg)
    except TxError as exc:
        raise CliError(exc.message, "invalid_payload") from exc


@device_app.command("register")
def register(
    sender: From,
    device_key: Annotated[str, typer.Option(
        help="Key name of the device in the keyring (it signs the proof of possession).")],
    manufacturer: Annotated[str, typer.Option(help="Manufacturer address or key name.")],
    model: Annotated[str, typer.Option(help="Model, as certified.")],
    serial: Annotated[str, typer.Option(help="Serial, as certified.")],
    certificate: Annotated[str, typer.Option(help="The certificate (128 hex characters).")],
    cap: Caps = None,
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Register a certified device owned by --from."""
    cert = hex_bytes(certificate, 64, "certificate")
    mfr = resolve_address(manufacturer)
    key = load_key(sender, passphrase_file)
    device = load_key(device_key, passphrase_file)
    caps = tuple(cap or ())
    chain_id = OPTS.client.status()["chain_id"]
    pop = sign_pop(device, chain_id, key.address)
    _check(RegisterDevice(device.public_key, from_bech32(mfr), model, serial, caps, cert,
                          key.address, pop))
    result = OPTS.client.register_device(key, device.public_key, mfr, model, serial, caps,
                                         cert, pop, wait=wait, gas_price=gas_price,
                                         **sending(gas, dry_run))
    _finish(result, wait, f"device {device.public_key.hex()} registered to "
                          f"{to_bech32(key.address)}")


@device_app.command("transfer")
def transfer(
    sender: From, device: DeviceKey,
    to: Annotated[str, typer.Option("--to", help="New owner (address or key name).")],
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Give a device to another account."""
    pubkey = hex_bytes(device, 32, "device key")
    owner = resolve_address(to)
    key = load_key(sender, passphrase_file)
    result = OPTS.client.transfer_device(key, pubkey, owner, wait=wait, gas_price=gas_price,
                                         **sending(gas, dry_run))
    _finish(result, wait, f"device {device} now belongs to {owner}")


@device_app.command("revoke")
def revoke(
    sender: From, device: DeviceKey,
    gas: Gas = "auto", gas_price: GasPrice = None, dry_run: DryRun = False,
    wait: Wait = True, passphrase_file: PassFile = None,
) -> None:
    """Revoke a device's certificate for ever (its manufacturer only)."""
    pubkey = hex_bytes(device, 32, "device key")
    key = load_key(sender, passphrase_file)
    result = OPTS.client.revoke_device(key, pubkey, wait=wait, gas_price=gas_price,
                                       **sending(gas, dry_run))
    _finish(result, wait, f"device {device} revoked")


@device_app.command("show")
def show(device: DeviceKey) -> None:
    """A device's owner, manufacturer, certificate fields and revocation."""
    doc = OPTS.client.device(hex_bytes(device, 32, "device key").hex())

    def human() -> None:
        for k in ("pubkey", "owner", "manufacturer", "model", "serial", "capabilities",
                  "registered_height", "revoked"):
            value = ", ".join(doc[k]) if k == "capabilities" else doc[k]
            out.print(f"{k + ':':<18} {value}", highlight=False)
    emit(doc, human)


@device_app.command("list")
def list_devices(owner: Annotated[str, typer.Argument(help="Address or key name.")]) -> None:
    """The devices an account owns."""
    devices = OPTS.client.devices_of(resolve_address(owner))

    def human() -> None:
        if not devices:
            out.print("no devices")
        for d in devices:
            state = "REVOKED" if d["revoked"] else "ok"
            out.print(f"{d['pubkey']} {d['model']} {d['serial']} {state}", highlight=False)
    emit({"owner": resolve_address(owner), "devices": devices}, human)


@device_app.command("manufacturer")
def manufacturer(address: Annotated[str, typer.Argument(help="Address or key name.")]) -> None:
    """A manufacturer's name, deposit and device count."""
    doc = OPTS.client.manufacturer(resolve_address(address))
    emit(doc, lambda: out.print(f"{doc['name']}: deposit {doc['deposit']} units, "
                                f"{doc['devices']} devices", highlight=False))
