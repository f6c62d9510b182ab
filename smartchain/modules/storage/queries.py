"""The storage module's HTTP queries: providers, their challenges, deals and repairs."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import AddressError, from_bech32, to_bech32
from smartchain.modules.query import (
    ADDRESS,
    FLAG,
    HEX32,
    U64,
    UNITS,
    HttpQuery,
    ModuleApi,
    Param,
    QueryError,
    parse_address,
    parse_flag,
    parse_hex32,
    ref,
)
from smartchain.modules.storage.module import (
    deal_view,
    deals_of,
    list_providers,
    open_challenges,
    provider_view,
    repairs,
)
from smartchain.modules.storage.types import DealView, OpenChallenge, ProviderView
from smartchain.state.store import StateReader
from smartchain.types.amount import format_hpc

TAG = "storage"


def storage_provider_json(v: ProviderView, raw: bool = False) -> dict[str, Any]:
    """A storage provider's terms and standing; ``raw`` adds the record's codec encoding
    (hex), which the SDK decodes back into the module's own record."""
    p = v.provider
    out: dict[str, Any] = {
        "address": to_bech32(v.address), "public_key": p.pubkey.hex(), "active": p.active,
        "capacity": str(p.capacity), "used": str(p.used),
        "free": str(max(0, p.capacity - p.used)),
        "price": str(p.price), "bandwidth_price": str(p.bandwidth_price),
        "collateral": str(p.collateral), "collateral_hpc": format_hpc(p.collateral),
        "reputation": str(p.reputation), "misses": p.misses, "p2p": p.p2p,
    }
    if raw:
        out["raw"] = v.encode().hex()
    return out


def storage_deal_json(v: DealView, raw: bool = False) -> dict[str, Any]:
    """A deal's terms, money and columns (who holds which fragment, and whether its audits
    pass); ``raw`` adds the codec encoding of the view."""
    d = v.deal
    out: dict[str, Any] = {
        "file_id": v.file_id.hex(), "status": v.status, "owner": to_bech32(d.owner),
        "salt": d.salt.hex(), "size": str(d.size), "k": d.k, "n": len(d.columns),
        "code_n": d.code_n, "segments": d.segments, "piece_size": str(d.piece_size),
        "last_piece_size": str(d.last_piece_size), "column_bytes": str(v.column_bytes),
        "start_epoch": str(d.start_epoch), "end_epoch": str(d.end_epoch),
        "repair_threshold": d.repair_threshold, "healthy": v.healthy,
        "escrow": str(d.escrow), "escrow_hpc": format_hpc(d.escrow),
        "repair_budget": str(d.repair_budget), "repair_budget_hpc": format_hpc(d.repair_budget),
        "columns": [{"frag_index": c.frag_index, "provider": to_bech32(c.provider),
                     "root": c.root.hex(), "healthy": c.healthy, "price": str(c.price)}
                    for c in d.columns],
    }
    if raw:
        out["raw"] = v.encode().hex()
    return out


def storage_challenge_json(c: OpenChallenge) -> dict[str, Any]:
    return {"file_id": c.file_id.hex(), "frag_index": c.frag_index, "segment": c.segment,
            "leaf": c.leaf, "deadline": str(c.deadline)}


def parse_owner(text: str) -> bytes:
    try:
        return from_bech32(text)
    except AddressError as exc:
        raise QueryError(400, "invalid_address", f"owner: {exc}") from exc


def _providers(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"providers": [storage_provider_json(p, args["raw"])
                          for p in list_providers(reader)]}


def _provider(reader: StateReader, args: dict[str, Any]) -> Any:
    view = provider_view(reader, args["address"])
    if view is None:
        raise QueryError(404, "not_found", f"no storage provider {to_bech32(args['address'])}")
    return storage_provider_json(view, args["raw"])


def _challenges(reader: StateReader, args: dict[str, Any]) -> Any:
    address = args["address"]
    return {"address": to_bech32(address),
            "challenges": [storage_challenge_json(c) for c in open_challenges(reader, address)]}


def _deal(reader: StateReader, args: dict[str, Any]) -> Any:
    view = deal_view(reader, args["file_id"])
    if view is None:
        raise QueryError(404, "not_found", f"no storage deal for file {args['file_id'].hex()}")
    return storage_deal_json(view, args["raw"])


def _deals(reader: StateReader, args: dict[str, Any]) -> Any:
    owner = args["owner"]
    return {"owner": to_bech32(owner),
            "deals": [storage_deal_json(v, args["raw"]) for v in deals_of(reader, owner)]}


def _repairs(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"deals": [storage_deal_json(v, args["raw"]) for v in repairs(reader)]}


_RAW = Param("raw", FLAG, parse_flag("raw"), "query", "0",
             description="add each record's codec encoding (hex)")
_ADDRESS = Param("address", ADDRESS, parse_address)
_DEALS = {"type": "array", "items": ref("StorageDeal")}

API = ModuleApi(
    queries=(
        HttpQuery("/v1/storage/providers", "listStorageProviders", TAG,
                  "Registered storage providers (active or not), in address order",
                  _providers, {"type": "object", "required": ["providers"], "properties": {
                      "providers": {"type": "array", "items": ref("StorageProvider")}}},
                  "all providers", (_RAW,), {400: "malformed flag"}),
        HttpQuery("/v1/storage/providers/{address}", "getStorageProvider", TAG,
                  "One storage provider: capacity, prices, collateral, reputation", _provider,
                  ref("StorageProvider"), "provider", (_ADDRESS, _RAW),
                  {400: "invalid address or flag", 404: "not a provider"}),
        HttpQuery("/v1/storage/providers/{address}/challenges", "listStorageChallenges", TAG,
                  "Audit challenges a provider must answer this epoch", _challenges,
                  {"type": "object", "required": ["challenges"],
                   "properties": {"address": ADDRESS, "challenges": {
                       "type": "array", "items": ref("StorageChallenge")}}},
                  "open challenges (empty when none)", (_ADDRESS,), {400: "invalid address"}),
        HttpQuery("/v1/storage/deals", "listStorageDeals", TAG,
                  "Every storage deal an owner made, in file id order", _deals,
                  {"type": "object", "required": ["deals"],
                   "properties": {"owner": ADDRESS, "deals": _DEALS}},
                  "deals (empty when none)",
                  (Param("owner", ADDRESS, parse_owner, "query",
                         missing="give ?owner=ADDRESS: deals are listed per owner"), _RAW),
                  {400: "owner missing or invalid, or malformed flag"}),
        HttpQuery("/v1/storage/deals/{file_id}", "getStorageDeal", TAG,
                  "A storage deal: terms, escrow and each column's provider and health",
                  _deal, ref("StorageDeal"), "deal",
                  (Param("file_id", HEX32, parse_hex32("file id")), _RAW),
                  {400: "malformed file id or flag", 404: "no such deal"}),
        HttpQuery("/v1/storage/repairs", "listStorageRepairs", TAG,
                  "Active deals that need repair (fewer healthy columns than their "
                  "threshold)", _repairs,
                  {"type": "object", "required": ["deals"], "properties": {"deals": _DEALS}},
                  "deals to repair", (_RAW,), {400: "malformed flag"}),
    ),
    schemas={
        "StorageProvider": {
            "type": "object",
            "required": ["address", "active", "capacity", "used", "price", "p2p"],
            "properties": {
                "address": ADDRESS, "public_key": HEX32, "active": {"type": "boolean"},
                "capacity": {**U64, "description": "bytes offered"},
                "used": {**U64, "description": "bytes of the columns it holds"}, "free": U64,
                "price": {**UNITS, "description": "base units per GiB per epoch"},
                "bandwidth_price": {**UNITS, "description": "base units per GiB served"},
                "collateral": UNITS, "collateral_hpc": {"type": "string"}, "reputation": U64,
                "misses": {"type": "integer"},
                "p2p": {"type": "string",
                        "description": "dialable P2P address, pubkeyhex@host:port"},
                "raw": {"type": "string", "description": "codec encoding (hex), with ?raw=1"},
            },
        },
        "StorageDeal": {
            "type": "object",
            "required": ["file_id", "status", "owner", "size", "k", "columns"],
            "properties": {
                "file_id": HEX32, "status": {"enum": ["active", "ended", "cancelled"]},
                "owner": ADDRESS, "salt": HEX32,
                "size": {**U64, "description": "plaintext bytes"},
                "k": {"type": "integer", "description": "pieces needed to rebuild a segment"},
                "n": {"type": "integer", "description": "columns stored"},
                "code_n": {"type": "integer",
                           "description": "fragments the file was coded into"},
                "segments": {"type": "integer"}, "piece_size": U64, "last_piece_size": U64,
                "column_bytes": U64, "start_epoch": U64, "end_epoch": U64,
                "repair_threshold": {"type": "integer"},
                "healthy": {"type": "integer", "description": "columns whose audits pass"},
                "escrow": UNITS, "escrow_hpc": {"type": "string"}, "repair_budget": UNITS,
                "repair_budget_hpc": {"type": "string"},
                "columns": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"frag_index": {"type": "integer"}, "provider": ADDRESS,
                                   "root": HEX32, "healthy": {"type": "boolean"},
                                   "price": UNITS}}},
                "raw": {"type": "string", "description": "codec encoding (hex), with ?raw=1"},
            },
        },
        "StorageChallenge": {
            "type": "object",
            "required": ["file_id", "frag_index", "segment", "leaf", "deadline"],
            "properties": {"file_id": HEX32, "frag_index": {"type": "integer"},
                           "segment": {"type": "integer"}, "leaf": {"type": "integer"},
                           "deadline": {**U64, "description": "last height a proof is "
                                        "accepted"}},
        },
    },
)
