"""Devices: manufacturers certify device keys; owners register, transfer; manufacturers revoke.

A manufacturer registers its account with a deposit (``devices_manufacturer_deposit`` HPC,
locked in the module account): its account key signs certificates. A device registers with
its certificate (the manufacturer's signature over its key, model, serial and capabilities:
``types.certificate_bytes``), an owner account (the sender) and a proof of possession (the
device key's signature over chain id, owner and key: ``types.pop_bytes``). One key is one
device for ever, and a manufacturer certifies one key per (model, serial): a second key for
the same serial is refused (a clone). A revoked device stays on record, revoked for ever:
``check_device_signature`` (what the market calls for device-signed data) refuses it.

The plain functions take any store view and raise ``TxError``; other modules call them.
"""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import address_of, from_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import verify
from smartchain.modules.bank.module import get_account, move_hpc
from smartchain.modules.devices.types import (
    CAPABILITY_RE,
    DEVICE_PREFIX,
    MANUFACTURER_PREFIX,
    MARK,
    MAX_CAPABILITIES,
    MAX_NAME,
    MODULE_ACCOUNT,
    OWNER_PREFIX,
    SERIAL_PREFIX,
    SIGNATURE_GAS,
    Device,
    Manufacturer,
    RegisterDevice,
    RegisterManufacturer,
    RevokeDevice,
    TransferDevice,
    certificate_bytes,
    pop_bytes,
)
from smartchain.state.emission import MAX_SUPPLY
from smartchain.state.module import Module, Msg, Query, TxContext
from smartchain.types.errors import Code, TxError

# --- keys and reads ------------------------------------------------------------------------


def manufacturer_key(address: bytes) -> bytes:
    return MANUFACTURER_PREFIX + address


def device_key(pubkey: bytes) -> bytes:
    return DEVICE_PREFIX + pubkey


def owner_key(owner: bytes, pubkey: bytes) -> bytes:
    return OWNER_PREFIX + owner + pubkey


def serial_key(manufacturer: bytes, model: str, serial: str) -> bytes:
    return SERIAL_PREFIX + manufacturer + h256(model.encode() + b"\0" + serial.encode())


def get_manufacturer(view: Any, address: bytes) -> Manufacturer | None:
    raw = view.get(manufacturer_key(address))
    return Manufacturer.decode(raw) if raw is not None else None


def get_device(view: Any, pubkey: bytes) -> Device | None:
    raw = view.get(device_key(pubkey))
    return Device.decode(raw) if raw is not None else None


def devices_of(view: Any, owner: bytes) -> list[Device]:
    """The devices ``owner`` holds (revoked ones too), in key order."""
    prefix = OWNER_PREFIX + owner
    out = []
    for k, _v in view.iter_prefix(prefix):
        device = get_device(view, k[len(prefix):])
        if device is not None:
            out.append(device)
    return out


def active_device(view: Any, pubkey: bytes) -> Device:
    """The registered, unrevoked device of ``pubkey``, or a ``TxError`` saying why not."""
    device = get_device(view, pubkey)
    if device is None:
        raise TxError(Code.FAILED, f"device {pubkey.hex()} is not registered")
    if device.revoked:
        raise TxError(Code.FAILED, f"device {pubkey.hex()} is revoked by its manufacturer "
                      f"(since height {device.revoked_height})")
    return device


def check_device_signature(view: Any, device_pubkey: bytes, message: bytes,
                           signature: bytes) -> Device:
    """The device, if it is registered, not revoked and signed ``message``; else a
    ``TxError``. What other modules accept device-signed data through (they charge
    ``SIGNATURE_GAS``)."""
    device = active_device(view, device_pubkey)
    if not verify(device_pubkey, message, signature):
        raise TxError(Code.FAILED, f"bad signature by device {device_pubkey.hex()}")
    return device


# --- stateless checks ------------------------------------------------------------------------


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


def _check_text(value: str, what: str) -> None:
    if not 1 <= len(value) <= MAX_NAME or not value.isprintable():
        raise _invalid(f"{what} must be 1-{MAX_NAME} printable characters")


def validate_register_manufacturer(msg: RegisterManufacturer) -> None:
    _check_text(msg.name, "manufacturer name")
    if not 0 < msg.deposit <= MAX_SUPPLY:
        raise _invalid("deposit must be a positive amount of HPC base units within the supply")


def validate_register_device(msg: RegisterDevice) -> None:
    _check_text(msg.model, "model")
    _check_text(msg.serial, "serial")
    if len(msg.capabilities) > MAX_CAPABILITIES:
        raise _invalid(f"at most {MAX_CAPABILITIES} capabilities")
    for cap in msg.capabilities:
        if not CAPABILITY_RE.fullmatch(cap):
            raise _invalid(f"invalid capability {cap!r}: 1-32 characters, a lower-case letter "
                           "then lower-case letters, digits, '_', '.' or '-'")
    if len(set(msg.capabilities)) != len(msg.capabilities):
        raise _invalid("capabilities must be distinct")


# --- handlers --------------------------------------------------------------------------------


def _writes(ctx: TxContext, n: int) -> None:
    """Charge ``n`` writes up front: a failed attempt costs what a good one would."""
    ctx.gas.consume(n * ctx.block.params.gas_per_write)


def _handle_register_manufacturer(ctx: TxContext, msg: RegisterManufacturer) -> None:
    _writes(ctx, 3)
    if address_of(msg.pubkey) != ctx.sender:
        raise TxError(Code.FAILED, "pubkey must be the sender's own key (it signs certificates)")
    old = get_manufacturer(ctx.store, ctx.sender)
    if old is None and msg.deposit < ctx.block.params.devices_manufacturer_deposit:
        raise TxError(Code.FAILED, f"deposit {msg.deposit} below the manufacturer deposit "
                      f"{ctx.block.params.devices_manufacturer_deposit}")
    move_hpc(ctx.store, ctx.sender, MODULE_ACCOUNT, msg.deposit)
    deposit = msg.deposit + (old.deposit if old else 0)
    record = Manufacturer(ctx.sender, msg.pubkey, msg.name, deposit,
                          old.height if old else ctx.block.height, old.devices if old else 0)
    ctx.store.set(manufacturer_key(ctx.sender), record.encode())
    ctx.emit("device_manufacturer", manufacturer=ctx.sender.hex(), name=msg.name,
             deposit=deposit)


def _handle_register_device(ctx: TxContext, msg: RegisterDevice) -> None:
    params = ctx.block.params
    _writes(ctx, 4)
    ctx.gas.consume(params.devices_register_gas + 2 * SIGNATURE_GAS)
    if msg.owner != ctx.sender:
        raise TxError(Code.FAILED, "a device is registered by its owner: owner must be the "
                      "sender")
    mfr = get_manufacturer(ctx.store, msg.manufacturer)
    if mfr is None:
        raise TxError(Code.FAILED, f"manufacturer {msg.manufacturer.hex()} is not registered")
    if get_device(ctx.store, msg.device_pubkey) is not None:
        raise TxError(Code.FAILED, f"device {msg.device_pubkey.hex()} is already registered")
    skey = serial_key(mfr.address, msg.model, msg.serial)
    if ctx.store.get(skey) is not None:
        raise TxError(Code.FAILED, f"{mfr.name} {msg.model} serial {msg.serial!r} is already "
                      "registered with another key (a clone?)")
    cert = certificate_bytes(mfr.address, msg.device_pubkey, msg.model, msg.serial,
                             msg.capabilities)
    if not verify(mfr.pubkey, cert, msg.certificate):
        raise TxError(Code.FAILED, f"certificate not signed by manufacturer {mfr.name}")
    if not verify(msg.device_pubkey, pop_bytes(ctx.block.chain_id, msg.owner,
                                               msg.device_pubkey), msg.pop):
        raise TxError(Code.FAILED, "proof of possession not signed by the device key")
    device = Device(msg.device_pubkey, mfr.address, msg.owner, msg.model, msg.serial,
                    msg.capabilities, ctx.block.height, False, 0)
    ctx.store.set(device_key(msg.device_pubkey), device.encode())
    ctx.store.set(owner_key(msg.owner, msg.device_pubkey), MARK)
    ctx.store.set(skey, msg.device_pubkey)
    ctx.store.set(manufacturer_key(mfr.address), Manufacturer(
        mfr.address, mfr.pubkey, mfr.name, mfr.deposit, mfr.height, mfr.devices + 1).encode())
    ctx.emit("device_register", device=msg.device_pubkey.hex(), owner=msg.owner.hex(),
             manufacturer=mfr.address.hex(), model=msg.model, serial=msg.serial)


def _replace(device: Device, **changes: Any) -> Device:
    fields = {name: getattr(device, name) for name in Device.__dataclass_fields__}
    fields.update(changes)
    return Device(**fields)


def _handle_transfer(ctx: TxContext, msg: TransferDevice) -> None:
    _writes(ctx, 3)
    device = active_device(ctx.store, msg.device_pubkey)
    if device.owner != ctx.sender:
        raise TxError(Code.FAILED, "only the device's owner can transfer it")
    if msg.new_owner == device.owner:
        raise TxError(Code.FAILED, "the device already belongs to that account")
    ctx.store.delete(owner_key(device.owner, device.pubkey))
    ctx.store.set(owner_key(msg.new_owner, device.pubkey), MARK)
    ctx.store.set(device_key(device.pubkey), _replace(device, owner=msg.new_owner).encode())
    ctx.emit("device_transfer", device=device.pubkey.hex(), **{"from": device.owner.hex()},
             to=msg.new_owner.hex())


def _handle_revoke(ctx: TxContext, msg: RevokeDevice) -> None:
    _writes(ctx, 1)
    device = get_device(ctx.store, msg.device_pubkey)
    if device is None:
        raise TxError(Code.FAILED, f"device {msg.device_pubkey.hex()} is not registered")
    if device.manufacturer != ctx.sender:
        raise TxError(Code.FAILED, "only the device's manufacturer can revoke it")
    if device.revoked:
        raise TxError(Code.FAILED, "the device is already revoked")
    revoked = _replace(device, revoked=True, revoked_height=ctx.block.height)
    ctx.store.set(device_key(device.pubkey), revoked.encode())
    ctx.emit("device_revoke", device=device.pubkey.hex(), manufacturer=ctx.sender.hex())


# --- invariants and module -------------------------------------------------------------------


def book_violations(view: Any) -> list[str]:
    """The module account holds exactly the manufacturers' deposits; every device is indexed
    under its owner and counted by its manufacturer."""
    problems = []
    mfrs = [Manufacturer.decode(v) for _k, v in view.iter_prefix(MANUFACTURER_PREFIX)]
    deposits = sum(m.deposit for m in mfrs)
    held = get_account(view, MODULE_ACCOUNT).balance
    if held != deposits:
        problems.append(f"devices module holds {held} HPC but deposits sum to {deposits}")
    counts: dict[bytes, int] = {}
    for _k, raw in view.iter_prefix(DEVICE_PREFIX):
        device = Device.decode(raw)
        counts[device.manufacturer] = counts.get(device.manufacturer, 0) + 1
        if view.get(owner_key(device.owner, device.pubkey)) is None:
            problems.append(f"device {device.pubkey.hex()} is not indexed under its owner")
    owned = sum(1 for _ in view.iter_prefix(OWNER_PREFIX))
    if owned != sum(counts.values()):
        problems.append(f"{owned} owner index entries for {sum(counts.values())} devices")
    problems += [f"manufacturer {m.address.hex()} counts {m.devices} devices, has "
                 f"{counts.get(m.address, 0)}" for m in mfrs
                 if m.devices != counts.get(m.address, 0)]
    return problems


class Devices(Module):
    name = "devices"

    def messages(self) -> dict[str, Msg]:
        return {
            "devices/register_manufacturer": Msg(
                RegisterManufacturer, _handle_register_manufacturer,
                validate_register_manufacturer, spend=lambda m: m.deposit),
            "devices/register": Msg(RegisterDevice, _handle_register_device,
                                    validate_register_device),
            "devices/transfer": Msg(TransferDevice, _handle_transfer),
            "devices/revoke": Msg(RevokeDevice, _handle_revoke),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "manufacturer": lambda view, args: get_manufacturer(
                view, from_bech32(args["address"])),
            "device": lambda view, args: get_device(view, bytes.fromhex(args["pubkey"])),
        }

    def invariants(self, view: Any) -> list[str]:
        return book_violations(view)
