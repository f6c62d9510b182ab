"""The devices module's HTTP queries: manufacturers, devices by key and by owner."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.devices.module import devices_of, get_device, get_manufacturer
from smartchain.modules.devices.types import Device, Manufacturer
from smartchain.modules.query import (
    ADDRESS,
    HEX32,
    U64,
    UNITS,
    HttpQuery,
    ModuleApi,
    Param,
    QueryError,
    parse_address,
    parse_hex32,
    ref,
)
from smartchain.state.store import StateReader

TAG = "devices"


def manufacturer_json(m: Manufacturer) -> dict[str, Any]:
    return {"address": to_bech32(m.address), "pubkey": m.pubkey.hex(), "name": m.name,
            "deposit": str(m.deposit), "height": str(m.height), "devices": str(m.devices)}


def device_json(d: Device) -> dict[str, Any]:
    return {"pubkey": d.pubkey.hex(), "manufacturer": to_bech32(d.manufacturer),
            "owner": to_bech32(d.owner), "model": d.model, "serial": d.serial,
            "capabilities": list(d.capabilities), "registered_height": str(d.registered_height),
            "revoked": d.revoked, "revoked_height": str(d.revoked_height)}


def _manufacturer(reader: StateReader, args: dict[str, Any]) -> Any:
    m = get_manufacturer(reader, args["address"])
    if m is None:
        raise QueryError(404, "not_found", f"{to_bech32(args['address'])} is not a manufacturer")
    return manufacturer_json(m)


def _device(reader: StateReader, args: dict[str, Any]) -> Any:
    d = get_device(reader, args["pubkey"])
    if d is None:
        raise QueryError(404, "not_found", f"no device {args['pubkey'].hex()}")
    return device_json(d)


def _owned(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"owner": to_bech32(args["address"]),
            "devices": [device_json(d) for d in devices_of(reader, args["address"])]}


_ADDRESS = Param("address", ADDRESS, parse_address)

API = ModuleApi(
    queries=(
        HttpQuery("/v1/devices/manufacturers/{address}", "getManufacturer", TAG,
                  "A manufacturer: its certifying key, deposit and device count",
                  _manufacturer, ref("Manufacturer"), "manufacturer", (_ADDRESS,),
                  {400: "malformed address", 404: "not a manufacturer"}),
        HttpQuery("/v1/devices/keys/{pubkey}", "getDevice", TAG,
                  "A device by its public key: owner, certificate fields, revocation",
                  _device, ref("Device"), "device",
                  (Param("pubkey", HEX32, parse_hex32("device public key")),),
                  {400: "malformed key", 404: "no such device"}),
        HttpQuery("/v1/devices/owners/{address}", "listOwnedDevices", TAG,
                  "The devices an account owns (revoked ones too)", _owned,
                  {"type": "object", "required": ["owner", "devices"],
                   "properties": {"owner": ADDRESS,
                                  "devices": {"type": "array", "items": ref("Device")}}},
                  "devices", (_ADDRESS,), {400: "malformed address"}),
    ),
    schemas={
        "Manufacturer": {
            "type": "object",
            "required": ["address", "pubkey", "name", "deposit", "height", "devices"],
            "properties": {"address": ADDRESS, "pubkey": HEX32, "name": {"type": "string"},
                           "deposit": UNITS, "height": U64, "devices": U64},
        },
        "Device": {
            "type": "object",
            "required": ["pubkey", "manufacturer", "owner", "model", "serial", "capabilities",
                         "registered_height", "revoked", "revoked_height"],
            "properties": {"pubkey": HEX32, "manufacturer": ADDRESS, "owner": ADDRESS,
                           "model": {"type": "string"}, "serial": {"type": "string"},
                           "capabilities": {"type": "array", "items": {"type": "string"}},
                           "registered_height": U64, "revoked": {"type": "boolean"},
                           "revoked_height": U64},
        },
    },
)
