"""The rewards module's HTTP queries: an account's rewards (accrued and per delegation, its
commission if it is a validator), and the epochs' figures."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.bank.module import emission_of, total_minted
from smartchain.modules.poca.state import get_candidate
from smartchain.modules.query import (
    ADDRESS,
    U64_INT,
    UNITS,
    HttpQuery,
    ModuleApi,
    Param,
    parse_address,
    ref,
)
from smartchain.modules.rewards.epoch import curve_bps, get_summary, get_tally
from smartchain.modules.rewards.handlers import delegations_of
from smartchain.modules.rewards.state import accrued, commission_of, pending
from smartchain.state.emission import emitted_through
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.store import StateReader

TAG = "rewards"
_BPS = {"type": "integer", "minimum": 0, "maximum": 10_000, "description": "basis points"}


def rewards_of(reader: StateReader, who: bytes) -> dict[str, Any]:
    """What ``who`` may withdraw now: its own accrued rewards and each delegation's."""
    own = accrued(reader, who)
    dels = [{"validator": to_bech32(op), "shares": str(shares),
             "amount": str(pending(reader, who, op, shares))}
            for op, shares in delegations_of(reader, who)]
    doc: dict[str, Any] = {
        "address": to_bech32(who), "accrued": str(own), "delegations": dels,
        "total": str(own + sum(int(d["amount"]) for d in dels)), "commission": None}
    raw = reader.get(PARAMS_KEY)
    if get_candidate(reader, who) is not None and raw is not None:
        c = commission_of(reader, who, Params.decode(raw))
        doc["commission"] = {"rate_bps": c.rate_bps, "changed_at": c.changed}
    return doc


def _rewards(reader: StateReader, args: dict[str, Any]) -> Any:
    return rewards_of(reader, args["address"])


def _epochs(reader: StateReader, args: dict[str, Any]) -> Any:
    """The epoch running, the last one settled, and the totals against the schedule."""
    tally = get_tally(reader)
    em = emission_of(reader)
    last = get_summary(reader)
    raw = reader.get(PARAMS_KEY)
    params = Params.decode(raw) if raw is not None else Params()
    return {
        "epoch_start": tally.start,
        "minted": str(total_minted(reader)),
        "schedule_so_far": str(emitted_through(em, tally.start - 1)),
        "pool": str(em.pool),
        "curve": [{"utilisation_bps": u, "minted_bps": curve_bps(params, u)}
                  for u in range(0, 10_001, 1_000)],
        "last": None if last is None else {
            "start": last.start, "end": last.end, "schedule": str(last.schedule),
            "compute_bps": last.compute_bps, "storage_bps": last.storage_bps,
            "bandwidth_bps": last.bandwidth_bps, "utilisation_bps": last.utilisation_bps,
            "curve_bps": last.curve_bps, "minted": str(last.minted),
            "to_providers": str(last.to_providers)},
    }


_ADDRESS = Param("address", ADDRESS, parse_address)

API = ModuleApi(
    queries=(
        HttpQuery("/v1/rewards", "getRewardsEpochs", TAG,
                  "The epoch running, the last one settled (utilisation, curve, minted) "
                  "and the total minted against the schedule", _epochs, ref("RewardsEpochs"),
                  "the figures"),
        HttpQuery("/v1/rewards/{address}", "getRewards", TAG,
                  "What an account may withdraw: its accrued rewards and each delegation's, "
                  "and its commission if it is a validator", _rewards, ref("Rewards"),
                  "the account's rewards (zeros if none)", (_ADDRESS,),
                  {400: "malformed address"}),
    ),
    schemas={
        "Rewards": {
            "type": "object",
            "required": ["address", "accrued", "delegations", "total", "commission"],
            "properties": {
                "address": ADDRESS, "accrued": UNITS, "total": UNITS,
                "delegations": {"type": "array", "items": {
                    "type": "object", "required": ["validator", "shares", "amount"],
                    "properties": {"validator": ADDRESS, "shares": UNITS, "amount": UNITS}}},
                "commission": {"oneOf": [{"type": "null"}, {
                    "type": "object", "required": ["rate_bps", "changed_at"],
                    "properties": {"rate_bps": _BPS, "changed_at": U64_INT}}]},
            },
        },
        "RewardsEpochs": {
            "type": "object",
            "required": ["epoch_start", "minted", "schedule_so_far", "pool", "curve", "last"],
            "properties": {
                "epoch_start": U64_INT, "minted": UNITS, "schedule_so_far": UNITS,
                "pool": UNITS,
                "curve": {"type": "array", "items": {
                    "type": "object", "properties": {"utilisation_bps": _BPS,
                                                     "minted_bps": _BPS}}},
                "last": {"oneOf": [{"type": "null"}, {"type": "object", "properties": {
                    "start": U64_INT, "end": U64_INT, "schedule": UNITS,
                    "compute_bps": _BPS, "storage_bps": _BPS, "bandwidth_bps": _BPS,
                    "utilisation_bps": _BPS, "curve_bps": _BPS, "minted": UNITS,
                    "to_providers": UNITS}}]},
            },
        },
    },
)
