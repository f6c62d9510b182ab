"""The gov module's HTTP queries: proposals (with deposits, votes and the running tally) and
the chain's params with the height each last changed."""

from __future__ import annotations

import dataclasses
from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.gov.module import tally_of
from smartchain.modules.gov.state import (
    all_proposals,
    changed_at,
    deposits_of,
    get_proposal,
    votes_of,
)
from smartchain.modules.gov.types import (
    KINDS,
    NO_ADDRESS,
    OPTIONS,
    STATUS,
    VOTING,
    Proposal,
    Tally,
)
from smartchain.modules.query import (
    ADDRESS,
    U64,
    U64_INT,
    UNITS,
    HttpQuery,
    ModuleApi,
    Param,
    QueryError,
    parse_u64,
    ref,
)
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.params.bounds import format_value
from smartchain.state.store import StateReader

TAG = "gov"
MAX_LIST = 100


def tally_json(t: Tally) -> dict[str, str]:
    return {"yes": str(t.yes), "no": str(t.no), "abstain": str(t.abstain),
            "veto": str(t.veto), "locked": str(t.locked)}


def proposal_json(p: Proposal) -> dict[str, Any]:
    return {
        "id": str(p.id), "kind": p.kind, "title": p.title, "description": p.description,
        "proposer": to_bech32(p.proposer),
        "changes": [{"key": c.key, "value": c.value} for c in p.changes],
        "recipient": to_bech32(p.recipient) if p.recipient != NO_ADDRESS else None,
        "amount": str(p.amount), "status": STATUS[p.status],
        "submit_height": str(p.submit_height), "deposit_end": str(p.deposit_end),
        "voting_start": str(p.voting_start), "voting_end": str(p.voting_end),
        "total_deposit": str(p.total_deposit), "depositors": p.depositors, "votes": p.votes,
        "tally": tally_json(p.tally), "note": p.note,
    }


def _require(reader: StateReader, pid: int) -> Proposal:
    p = get_proposal(reader, pid)
    if p is None:
        raise QueryError(404, "not_found", f"no proposal {pid}")
    return p


def _proposals(reader: StateReader, args: dict[str, Any]) -> Any:
    """Newest first, at most ``MAX_LIST``, optionally of one status."""
    wanted = args["status"]
    if wanted not in ("all", *STATUS):
        raise QueryError(400, "malformed", f"status is all or one of {', '.join(STATUS)}")
    found = [p for p in reversed(all_proposals(reader))
             if wanted == "all" or STATUS[p.status] == wanted]
    return {"proposals": [proposal_json(p) for p in found[:MAX_LIST]]}


def _proposal(reader: StateReader, args: dict[str, Any]) -> Any:
    """The proposal, its deposits and votes; while voting, the tally as it stands."""
    p = _require(reader, args["id"])
    doc = proposal_json(p)
    if p.status == VOTING:
        doc["tally"] = tally_json(tally_of(reader, p.id))
    doc["deposits"] = [{"depositor": to_bech32(a), "amount": str(n)}
                       for a, n in deposits_of(reader, p.id)]
    doc["ballots"] = [{"voter": to_bech32(a), "option": OPTIONS[o]}
                      for a, o in votes_of(reader, p.id)]
    return doc


def _params(reader: StateReader, args: dict[str, Any]) -> Any:
    raw = reader.get(PARAMS_KEY)
    if raw is None:
        raise QueryError(404, "not_found", "state holds no params")
    params = Params.decode(raw)
    return {"params": {f.name: {"value": format_value(getattr(params, f.name)),
                                "changed_at": str(changed_at(reader, f.name))}
                       for f in dataclasses.fields(Params)}}


_ID = Param("id", U64_INT, parse_u64("proposal id"))
_TALLY = {"type": "object", "required": ["yes", "no", "abstain", "veto", "locked"],
          "properties": {k: UNITS for k in ("yes", "no", "abstain", "veto", "locked")}}

API = ModuleApi(
    queries=(
        HttpQuery("/v1/gov/proposals", "listProposals", TAG,
                  f"Proposals, newest first (at most {MAX_LIST})", _proposals,
                  {"type": "object", "required": ["proposals"],
                   "properties": {"proposals": {"type": "array", "items": ref("Proposal")}}},
                  "proposals",
                  (Param("status", {"enum": ["all", *STATUS]}, str, "query", "all"),),
                  {400: "unknown status"}),
        HttpQuery("/v1/gov/proposals/{id}", "getProposal", TAG,
                  "A proposal with its deposits, votes and tally", _proposal,
                  ref("ProposalDetail"), "proposal", (_ID,),
                  {400: "malformed id", 404: "no such proposal"}),
        HttpQuery("/v1/gov/params", "getGovernedParams", TAG,
                  "Every chain parameter with the height its last change took effect "
                  "(0: as in genesis)", _params,
                  {"type": "object", "required": ["params"],
                   "properties": {"params": {"type": "object", "additionalProperties": {
                       "type": "object", "required": ["value", "changed_at"],
                       "properties": {"value": {"type": "string"},
                                      "changed_at": U64}}}}},
                  "params"),
    ),
    schemas={
        "Proposal": {
            "type": "object",
            "required": ["id", "kind", "title", "proposer", "status", "total_deposit",
                         "tally"],
            "properties": {
                "id": U64, "kind": {"enum": list(KINDS)}, "title": {"type": "string"},
                "description": {"type": "string"}, "proposer": ADDRESS,
                "changes": {"type": "array", "items": {
                    "type": "object", "properties": {"key": {"type": "string"},
                                                     "value": {"type": "string"}}}},
                "recipient": {"oneOf": [ADDRESS, {"type": "null"}]}, "amount": UNITS,
                "status": {"enum": list(STATUS)}, "submit_height": U64,
                "deposit_end": U64, "voting_start": U64, "voting_end": U64,
                "total_deposit": UNITS, "depositors": {"type": "integer"},
                "votes": {"type": "integer"}, "tally": _TALLY, "note": {"type": "string"},
            },
        },
        "ProposalDetail": {"allOf": [ref("Proposal"), {
            "type": "object", "required": ["deposits", "ballots"],
            "properties": {
                "deposits": {"type": "array", "items": {
                    "type": "object", "properties": {"depositor": ADDRESS, "amount": UNITS}}},
                "ballots": {"type": "array", "items": {
                    "type": "object", "properties": {"voter": ADDRESS,
                                                     "option": {"enum": list(OPTIONS)}}}},
            }}]},
    },
)
