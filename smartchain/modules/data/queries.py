"""The data module's HTTP queries: assets and their batches, discovery, consents,
purchases (a buyer's, an owner's waiting sales), box keys and shares."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.data.module import (
    all_assets,
    assets_of,
    batches_of,
    consent_open,
    consents_for,
    get_asset,
    get_box_key,
    get_consent,
    get_purchase,
    get_share,
    purchases_of_buyer,
    waiting_sales,
)
from smartchain.modules.data.types import (
    STATUS_NAMES,
    TAG_RE,
    Asset,
    Batch,
    Consent,
    Purchase,
    asset_id_of,
)
from smartchain.modules.devices.module import get_device
from smartchain.modules.query import (
    ADDRESS,
    HEX32,
    U64,
    U64_INT,
    UNITS,
    HttpQuery,
    ModuleApi,
    Param,
    QueryError,
    parse_address,
    parse_hex32,
    parse_u64,
    ref,
)
from smartchain.state.store import StateReader

TAG = "data"
MAX_RESULTS = 100


def asset_json(reader: StateReader, a: Asset) -> dict[str, Any]:
    models = sorted({d.model for pk in a.devices if (d := get_device(reader, pk))})
    return {"id": asset_id_of(a.owner, a.name).hex(), "owner": to_bech32(a.owner),
            "name": a.name, "schema": a.schema, "region": a.region,
            "devices": [d.hex() for d in a.devices], "models": models, "bond": str(a.bond),
            "batches": a.batches, "start_ms": str(a.start_ms), "end_ms": str(a.end_ms),
            "records": str(a.records), "height": str(a.height)}


def batch_json(b: Batch) -> dict[str, Any]:
    h = b.header
    return {"asset": b.asset.hex(), "index": b.index, "device": h.device.hex(),
            "schema": h.schema, "start_ms": str(h.start_ms), "end_ms": str(h.end_ms),
            "count": str(h.count), "root": h.root.hex(), "signature": b.signature.hex(),
            "file_id": b.file_id.hex(), "key_commitment": b.key_commitment.hex(),
            "height": str(b.height)}


def consent_json(c: Consent) -> dict[str, Any]:
    return {"id": str(c.id), "owner": to_bech32(c.owner), "assets": [a.hex() for a in c.assets],
            "buyers": [to_bech32(b) for b in c.buyers], "purposes": list(c.purposes),
            "price": str(c.price), "token": c.token, "expiry": str(c.expiry),
            "withdrawn": c.withdrawn, "withdrawn_height": str(c.withdrawn_height),
            "height": str(c.height)}


def purchase_json(p: Purchase) -> dict[str, Any]:
    return {"id": str(p.id), "buyer": to_bech32(p.buyer), "owner": to_bech32(p.owner),
            "consent": str(p.consent), "asset": p.asset.hex(), "batches": list(p.batches),
            "purpose": p.purpose, "token": p.token, "price": str(p.price),
            "nonce": p.nonce.hex(), "box_keys": [k.hex() for k in p.box_keys],
            "escrow": str(p.escrow), "status": STATUS_NAMES[p.status],
            "deadline": str(p.deadline), "release": str(p.release),
            "sealed": [s.hex() for s in p.sealed], "proven": list(p.proven),
            "height": str(p.height)}


def _asset(reader: StateReader, args: dict[str, Any]) -> Any:
    a = get_asset(reader, args["id"])
    if a is None:
        raise QueryError(404, "not_found", f"no data asset {args['id'].hex()}")
    return {**asset_json(reader, a), "batch_list": [batch_json(b)
                                                    for b in batches_of(reader, args["id"])],
            "consents": [consent_json(c) for c in consents_for(reader, args["id"])]}


def _tag(name: str) -> Param:
    def parse(text: str) -> str:
        if text and not TAG_RE.fullmatch(text):
            raise QueryError(400, "malformed", f"{name} is a lower-case tag")
        return text
    return Param(name, {"type": "string", "pattern": f"^(?:{TAG_RE.pattern})?$"}, parse, "query",
                 "", description=f"{name} to match")


# An optional 64-bit filter: up to 19 digits always fits (2^64 has 20).
_QUERY_U64 = {"type": "string", "pattern": "^[0-9]{0,19}$"}


def _optional_u64(name: str, description: str) -> Param:
    parse = parse_u64(name)
    return Param(name, _QUERY_U64, lambda t: parse(t) if t else None, "query", "",
                 description=description)


def matches(reader: StateReader, asset_id: bytes, a: Asset, args: dict[str, Any],
            height: int) -> dict[str, Any] | None:
    """The asset's JSON with its open offers if it matches the search, else None."""
    if args["schema"] and a.schema != args["schema"]:
        return None
    if args["region"] and a.region != args["region"]:
        return None
    if a.batches == 0:
        return None
    if args["from_ms"] is not None and a.end_ms < args["from_ms"]:
        return None
    if args["to_ms"] is not None and a.start_ms > args["to_ms"]:
        return None
    doc = asset_json(reader, a)
    if args["model"] and args["model"] not in doc["models"]:
        return None
    offers = [c for c in consents_for(reader, asset_id) if consent_open(c, height)
              and (args["max_price"] is None or c.price <= args["max_price"])]
    if not offers:
        return None
    return {**doc, "offers": [consent_json(c) for c in offers]}


def _search(reader: StateReader, args: dict[str, Any]) -> Any:
    height = args["height"] if args["height"] is not None else 0
    found = []
    for asset_id, a in all_assets(reader):
        if (doc := matches(reader, asset_id, a, args, height)) is not None:
            found.append(doc)
            if len(found) >= args["limit"]:
                break
    return {"assets": found}


def _owned(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"assets": [asset_json(reader, a) for a in assets_of(reader, args["address"])]}


def _consent(reader: StateReader, args: dict[str, Any]) -> Any:
    c = get_consent(reader, args["id"])
    if c is None:
        raise QueryError(404, "not_found", f"no consent {args['id']}")
    return consent_json(c)


def _purchase(reader: StateReader, args: dict[str, Any]) -> Any:
    p = get_purchase(reader, args["id"])
    if p is None:
        raise QueryError(404, "not_found", f"no purchase {args['id']}")
    return purchase_json(p)


def _bought(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"purchases": [purchase_json(p) for p in purchases_of_buyer(reader,
                                                                       args["address"])]}


def _waiting(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"purchases": [purchase_json(p) for p in waiting_sales(reader, args["address"])]}


def _box_key(reader: StateReader, args: dict[str, Any]) -> Any:
    key = get_box_key(reader, args["address"])
    if key is None:
        raise QueryError(404, "not_found", f"{to_bech32(args['address'])} has no box key")
    return {"address": to_bech32(args["address"]), "box_key": key.hex()}


def _share(reader: StateReader, args: dict[str, Any]) -> Any:
    s = get_share(reader, args["file_id"], args["address"])
    if s is None:
        raise QueryError(404, "not_found", "the file is not shared with that account")
    return {"file_id": s.file_id.hex(), "owner": to_bech32(s.owner),
            "recipient": to_bech32(s.recipient), "sealed": s.sealed.hex(),
            "height": str(s.height)}


def _limit(text: str) -> int:
    n = parse_u64("limit")(text)
    if not 1 <= n <= MAX_RESULTS:
        raise QueryError(400, "malformed", f"limit must be 1-{MAX_RESULTS}")
    return n


_ADDRESS = Param("address", ADDRESS, parse_address)
_ASSET = Param("id", HEX32, parse_hex32("asset id"))
_ID = Param("id", U64_INT, parse_u64("id"))
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_PURCHASES = {"type": "object", "required": ["purchases"],
              "properties": {"purchases": {"type": "array", "items": ref("DataPurchase")}}}
_ASSET_PROPS = {"id": HEX32, "owner": ADDRESS, "name": _STR, "schema": _STR, "region": _STR,
                "devices": {"type": "array", "items": HEX32}, "models": _STRS, "bond": UNITS,
                "batches": {"type": "integer"}, "start_ms": U64, "end_ms": U64,
                "records": U64, "height": U64}

API = ModuleApi(
    queries=(
        HttpQuery("/v1/data/assets", "searchDataAssets", TAG,
                  "Data assets on offer: by schema, device model, region, time range, price",
                  _search, {"type": "object", "required": ["assets"],
                            "properties": {"assets": {"type": "array",
                                                      "items": ref("DataAssetOffer")}}},
                  "matching assets with their open consents",
                  (_tag("schema"), _tag("region"),
                   Param("model", _STR, str, "query", "", description="device model"),
                   _optional_u64("from_ms", "records at or after (ms)"),
                   _optional_u64("to_ms", "records at or before (ms)"),
                   _optional_u64("max_price", "price per batch at most"),
                   _optional_u64("height", "skip consents expired before this height"),
                   Param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_RESULTS,
                                   "default": 50}, _limit, "query", "50")),
                  {400: "malformed filter"}),
        HttpQuery("/v1/data/assets/{id}", "getDataAsset", TAG,
                  "A data asset: its batches (device-signed roots, files) and consents",
                  _asset, ref("DataAssetDetail"), "the asset", (_ASSET,),
                  {400: "malformed id", 404: "no such asset"}),
        HttpQuery("/v1/data/owners/{address}/assets", "listOwnedDataAssets", TAG,
                  "The data assets an account owns", _owned,
                  {"type": "object", "required": ["assets"],
                   "properties": {"assets": {"type": "array", "items": ref("DataAsset")}}},
                  "assets", (_ADDRESS,), {400: "malformed address"}),
        HttpQuery("/v1/data/consents/{id}", "getDataConsent", TAG,
                  "A consent: assets, buyers, purposes, price, expiry, withdrawal",
                  _consent, ref("DataConsent"), "the consent", (_ID,),
                  {400: "malformed id", 404: "no such consent"}),
        HttpQuery("/v1/data/purchases/{id}", "getDataPurchase", TAG,
                  "A purchase: escrow, status, deadline, the sealed keys delivered",
                  _purchase, ref("DataPurchase"), "the purchase", (_ID,),
                  {400: "malformed id", 404: "no such purchase"}),
        HttpQuery("/v1/data/buyers/{address}/purchases", "listDataPurchases", TAG,
                  "An account's purchases", _bought, _PURCHASES, "purchases", (_ADDRESS,),
                  {400: "malformed address"}),
        HttpQuery("/v1/data/owners/{address}/waiting", "listDataWaitingSales", TAG,
                  "Purchases of an owner's data waiting for their keys", _waiting,
                  _PURCHASES, "purchases", (_ADDRESS,), {400: "malformed address"}),
        HttpQuery("/v1/data/box_keys/{address}", "getDataBoxKey", TAG,
                  "The X25519 key an account registered for shared files", _box_key,
                  {"type": "object", "required": ["address", "box_key"],
                   "properties": {"address": ADDRESS, "box_key": HEX32}},
                  "the key", (_ADDRESS,), {400: "malformed address", 404: "none registered"}),
        HttpQuery("/v1/data/shares/{file_id}/{address}", "getDataShare", TAG,
                  "A stored file's key sealed to an account it is shared with", _share,
                  {"type": "object",
                   "required": ["file_id", "owner", "recipient", "sealed", "height"],
                   "properties": {"file_id": HEX32, "owner": ADDRESS, "recipient": ADDRESS,
                                  "sealed": _STR, "height": U64}},
                  "the share", (Param("file_id", HEX32, parse_hex32("file id")), _ADDRESS),
                  {400: "malformed file id or address", 404: "not shared"}),
    ),
    schemas={
        "DataAsset": {"type": "object", "required": list(_ASSET_PROPS),
                      "properties": _ASSET_PROPS},
        "DataAssetOffer": {"type": "object", "required": [*_ASSET_PROPS, "offers"],
                           "properties": {**_ASSET_PROPS, "offers": {
                               "type": "array", "items": ref("DataConsent")}}},
        "DataAssetDetail": {"type": "object", "required": [*_ASSET_PROPS, "batch_list",
                                                           "consents"],
                            "properties": {**_ASSET_PROPS,
                                           "batch_list": {"type": "array",
                                                          "items": ref("DataBatch")},
                                           "consents": {"type": "array",
                                                        "items": ref("DataConsent")}}},
        "DataBatch": {"type": "object", "required": [
            "asset", "index", "device", "schema", "start_ms", "end_ms", "count", "root",
            "signature", "file_id", "key_commitment", "height"],
            "properties": {"asset": HEX32, "index": {"type": "integer"}, "device": HEX32,
                           "schema": _STR, "start_ms": U64, "end_ms": U64, "count": U64,
                           "root": HEX32, "signature": _STR, "file_id": HEX32,
                           "key_commitment": HEX32, "height": U64}},
        "DataConsent": {"type": "object", "required": [
            "id", "owner", "assets", "buyers", "purposes", "price", "token", "expiry",
            "withdrawn", "withdrawn_height", "height"],
            "properties": {"id": U64, "owner": ADDRESS,
                           "assets": {"type": "array", "items": HEX32},
                           "buyers": {"type": "array", "items": ADDRESS}, "purposes": _STRS,
                           "price": UNITS, "token": _STR, "expiry": U64,
                           "withdrawn": {"type": "boolean"}, "withdrawn_height": U64,
                           "height": U64}},
        "DataPurchase": {"type": "object", "required": [
            "id", "buyer", "owner", "consent", "asset", "batches", "purpose", "token", "price",
            "nonce", "box_keys", "escrow", "status", "deadline", "release", "sealed",
            "proven", "height"],
            "properties": {"id": U64, "buyer": ADDRESS, "owner": ADDRESS, "consent": U64,
                           "asset": HEX32, "batches": {"type": "array",
                                                       "items": {"type": "integer"}},
                           "purpose": _STR, "token": _STR, "price": UNITS, "nonce": _STR,
                           "box_keys": {"type": "array", "items": HEX32}, "escrow": UNITS,
                           "status": {"enum": list(STATUS_NAMES.values())},
                           "deadline": U64, "release": U64, "sealed": _STRS,
                           "proven": {"type": "array", "items": {"type": "integer"}},
                           "height": U64}},
    },
)
