"""The poca module's HTTP queries: the validators and their tiers, one validator, an
account's delegations and unbonding stake, the community pool."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.poca.state import (
    community_pool,
    delegation_value,
    get_candidate,
    get_liveness,
    get_ranking,
    tokens_of,
)
from smartchain.modules.poca.types import (
    CANDIDATE_PREFIX,
    DELEGATION_PREFIX,
    DIRECTOR,
    ORDINARY,
    STANDBY_COMPUTE,
    STANDBY_SIGNER,
    STATUS,
    TIERS,
    UNBONDING_PREFIX,
    Candidate,
    Delegation,
    Ranking,
    Unbonding,
    epoch_of,
    power_of,
)
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
    ref,
)
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.store import StateReader

TAG = "poca"
HEIGHT_KEY = b"height"


def _tier(r: Ranking, op: bytes) -> int:
    if op in r.directors:
        return DIRECTOR
    if op in r.standbys:
        return STANDBY_SIGNER
    if op in r.compute:
        return STANDBY_COMPUTE
    return ORDINARY


def validator_json(view: Any, op: bytes, c: Candidate, r: Ranking) -> dict[str, Any]:
    live = get_liveness(view, c.pubkey)
    return {
        "address": to_bech32(op), "pubkey": c.pubkey.hex(), "moniker": c.moniker,
        "tier": TIERS[_tier(r, op)], "status": STATUS[c.status],
        "power": str(power_of(tokens_of(c))), "stake": str(c.self_stake),
        "delegated": str(c.delegated), "competence": c.competence, "uptime": c.uptime_bps,
        "missed_blocks": live.missed if live is not None else 0,
        "registered": c.registered, "approved": c.approved,
        "jailed_until": str(c.jailed_until),
    }


def _height(reader: StateReader) -> int:
    """The committed height of this snapshot (kept in the ``meta`` table, not in state)."""
    raw = reader.txn.get(HEIGHT_KEY, db=reader.store.dbs["meta"])
    return int.from_bytes(raw, "big") if raw else 0


def _validators(reader: StateReader, args: dict[str, Any]) -> Any:
    r = get_ranking(reader)
    rows = [validator_json(reader, k[len(CANDIDATE_PREFIX):], Candidate.decode(v), r)
            for k, v in reader.iter_prefix(CANDIDATE_PREFIX)]
    rows.sort(key=lambda v: (TIERS.index(v["tier"]), -int(v["power"]), v["pubkey"]))
    height = _height(reader)
    raw = reader.get(PARAMS_KEY)
    blocks = Params.decode(raw).poca_epoch_blocks if raw is not None else 1
    return {"epoch": str(epoch_of(height, blocks)), "height": str(height), "validators": rows}


def _validator(reader: StateReader, args: dict[str, Any]) -> Any:
    op = args["address"]
    c = get_candidate(reader, op)
    if c is None:
        raise QueryError(404, "not_found", f"{to_bech32(op)} is not a candidate")
    return validator_json(reader, op, c, get_ranking(reader))


def _delegations(reader: StateReader, args: dict[str, Any]) -> Any:
    who = args["address"]
    out = []
    for key, raw in reader.iter_prefix(DELEGATION_PREFIX + who):
        op = key[len(DELEGATION_PREFIX) + 20:]
        shares = Delegation.decode(raw).shares
        c = get_candidate(reader, op)
        value = delegation_value(c, shares) if c is not None else 0
        out.append({"validator": to_bech32(op), "shares": str(shares), "amount": str(value)})
    unbonding = []
    for key, raw in reader.iter_prefix(UNBONDING_PREFIX):
        e = Unbonding.decode(raw)
        if e.owner == who:
            op = key[len(UNBONDING_PREFIX):len(UNBONDING_PREFIX) + 20]
            unbonding.append({"validator": to_bech32(op), "amount": str(e.amount),
                              "completion": str(e.completion)})
    return {"address": to_bech32(who), "delegations": out, "unbonding": unbonding}


def _pool(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"community_pool": str(community_pool(reader))}


_ADDRESS = Param("address", ADDRESS, parse_address)
_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}

API = ModuleApi(
    queries=(
        HttpQuery("/v1/validators", "listValidators", TAG,
                  "Every signer candidate with its tier, status, power and competence",
                  _validators, ref("Validators"), "the candidates, directors first"),
        HttpQuery("/v1/validators/{address}", "getValidator", TAG,
                  "One candidate, by its operator address", _validator, ref("Validator"),
                  "candidate", (_ADDRESS,),
                  {400: "malformed address", 404: "not a candidate"}),
        HttpQuery("/v1/delegations/{address}", "getDelegations", TAG,
                  "An account's delegations and the stake it has unbonding", _delegations,
                  ref("Delegations"), "delegations (empty if none)", (_ADDRESS,),
                  {400: "malformed address"}),
        HttpQuery("/v1/poca/pool", "getCommunityPool", TAG,
                  "The community pool: HPC slashed from misbehaving signers", _pool,
                  {"type": "object", "required": ["community_pool"],
                   "properties": {"community_pool": UNITS}}, "the pool"),
    ),
    schemas={
        "Validator": {
            "type": "object",
            "required": ["address", "pubkey", "moniker", "tier", "status", "power", "stake",
                         "delegated", "competence", "uptime", "missed_blocks"],
            "properties": {
                "address": ADDRESS, "pubkey": HEX32, "moniker": _STR,
                "tier": {"enum": list(TIERS)}, "status": {"enum": list(STATUS)},
                "power": U64, "stake": UNITS, "delegated": UNITS,
                "competence": {**_INT, "description": "score from verified work (docs/poca.md)"},
                "uptime": {**_INT, "description": "basis points (10000 = always up)"},
                "missed_blocks": _INT, "registered": {"type": "boolean"},
                "approved": {"type": "boolean"}, "jailed_until": U64,
            },
        },
        "Validators": {
            "type": "object", "required": ["epoch", "height", "validators"],
            "properties": {"epoch": U64, "height": U64,
                           "validators": {"type": "array", "items": ref("Validator")}},
        },
        "Delegations": {
            "type": "object", "required": ["address", "delegations", "unbonding"],
            "properties": {
                "address": ADDRESS,
                "delegations": {"type": "array", "items": {
                    "type": "object", "required": ["validator", "shares", "amount"],
                    "properties": {"validator": ADDRESS, "shares": UNITS, "amount": UNITS}}},
                "unbonding": {"type": "array", "items": {
                    "type": "object", "required": ["validator", "amount", "completion"],
                    "properties": {"validator": ADDRESS, "amount": UNITS,
                                   "completion": U64}}},
            },
        },
    },
)
