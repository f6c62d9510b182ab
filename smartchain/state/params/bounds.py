"""Which values each chain parameter may take, and the rules between them.

Genesis is checked against this table, and so is every governance proposal to change
params, at the time it is proposed (and again when it passes): a chain whose params break
these (a zero epoch length, an audit window longer than its epoch, a gas limit no
transaction fits in) could stop or be stopped. Every field of ``Params`` has a line here
(``tests/unit/test_gov_module.py::test_every_param_has_bounds`` checks it), so a new
group adds its own.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from smartchain.state.params import Params

BPS = 10_000
HPC = 10**8


class ParamsError(ValueError):
    """An unknown parameter, a value that does not parse, or params outside their bounds."""


@dataclass(frozen=True, slots=True)
class Range:
    """An integer parameter: ``low <= value <= high`` (and within its codec width)."""

    low: int
    high: int


@dataclass(frozen=True, slots=True)
class Flag:
    """A boolean parameter: ``true`` or ``false``."""


Bound = Range | Flag

_BLOCKS = Range(1, 10**9)  # a length in blocks: never zero (a zero epoch divides by zero)
_SHARE = Range(0, BPS)  # a part in basis points
FLAG = Flag()

BOUNDS: dict[str, Bound] = {
    # core: fees, sizes, gas
    "min_gas_price": Range(1, 10**12),
    "tx_base_gas": Range(1, 10**9),
    "gas_per_tx_byte": Range(0, 10**6),
    "gas_per_write": Range(1, 10**9),
    "max_tx_bytes": Range(1024, 16 * 1024 * 1024),
    "max_tx_gas": Range(100_000, 10**13),  # below this no governance vote fits
    "max_block_bytes": Range(64 * 1024, 1024**3),
    "max_block_gas": Range(100_000, 10**13),
    "block_time_ms": Range(1, 600_000),
    # tokens, contracts
    "token_issue_gas": Range(0, 10**12),
    "contract_call_gas": Range(0, 10**9),
    "contract_code_byte_gas": Range(0, 10**9),
    # compute
    "compute_min_stake": Range(1, 10**9 * HPC),
    "compute_slash_bps": _SHARE,
    "compute_max_extra_replicas": Range(0, 64),
    "compute_max_reassign": Range(0, 1_000),
    "compute_reveal_blocks": _BLOCKS,
    "compute_max_misses": Range(1, 1_000_000),
    "compute_max_tasks": Range(1, 1_000_000),
    "compute_scan_gas": Range(0, 10**9),
    "compute_probation_weight": Range(1, 10**15),
    "compute_weight_per_hpc": Range(0, 10**15),
    "compute_miss_slash_bps": _SHARE,
    "compute_place_looks_per_block": Range(1, 10**9),
    "compute_place_wait_blocks": _BLOCKS,
    # storage
    "storage_epoch_blocks": Range(2, 10**9),  # the audit window must fit inside it
    "storage_min_price": Range(0, 10**15),
    "storage_min_collateral": Range(0, 10**9 * HPC),
    "storage_slash_bps": _SHARE,
    "storage_audit_segments": Range(1, 64),  # the chain answers at most 64 per column
    "storage_audit_window": _BLOCKS,
    "storage_repair_bps": _SHARE,
    "storage_receipt_ttl": _BLOCKS,
    "storage_max_columns": Range(1, 256),  # MAX_CODE_N: a deal's hard bound
    "storage_max_segments": Range(1, 10**7),
    "storage_accept_ttl": _BLOCKS,
    "storage_collateral_per_gib": Range(0, 10**9 * HPC),
    # poca
    "poca_epoch_blocks": _BLOCKS,
    "poca_max_directors": Range(1, 1_000),
    "poca_max_standby": Range(0, 1_000),
    "poca_max_candidates": Range(1, 100_000),  # bounds the epoch's ranking and the tally
    "poca_min_self_stake": Range(1, 10**9 * HPC),
    "poca_min_delegation": Range(1, 10**9 * HPC),
    "poca_unbonding_blocks": _BLOCKS,
    "poca_max_unbonding": Range(1, 100_000),
    "poca_downtime_window": Range(1, 100_000),
    "poca_downtime_missed": Range(1, 100_000),
    "poca_downtime_slash_bps": _SHARE,
    "poca_double_sign_slash_bps": _SHARE,
    "poca_jail_blocks": Range(0, 10**9),
    "poca_attest_interval": _BLOCKS,
    "poca_min_uptime_bps": _SHARE,
    "poca_min_competence": Range(0, 10**18),
    "poca_competence_epochs": Range(1, 10_000),
    "poca_compute_weight": Range(0, 10**9),
    "poca_storage_weight": Range(0, 10**9),
    "poca_eliminate_window": _BLOCKS,
    "poca_eliminate_epochs": Range(0, 10**6),
    "poca_signer_admission": Range(0, 1),  # 0 open, 1 approval
    "poca_bootstrap_epochs": Range(0, 10**9),
    # devices
    "devices_manufacturer_deposit": Range(0, 10**9 * HPC),
    "devices_register_gas": Range(0, 10**9),
    # market
    "market_max_fills_per_order": Range(1, 10_000),  # bounds matching's cost per order
    "market_fill_gas": Range(0, 10**9),
    "market_order_gas": Range(0, 10**9),
    "market_tombstone_gas": Range(0, 10**9),
    "market_receipt_grace": _BLOCKS,
    "market_max_expiry_blocks": _BLOCKS,
    # gov
    "gov_min_deposit": Range(1, 10**9 * HPC),
    "gov_min_initial_deposit": Range(0, 10**9 * HPC),
    "gov_deposit_blocks": _BLOCKS,
    "gov_voting_blocks": _BLOCKS,
    "gov_quorum_bps": _SHARE,
    "gov_threshold_bps": Range(1, BPS - 1),  # yes must be MORE than it: 10000 passes nothing
    "gov_veto_bps": Range(1, BPS),
    "gov_burn_vetoed": FLAG,
    "gov_burn_no_quorum": FLAG,
    "gov_burn_rejected": FLAG,
    "gov_burn_expired": FLAG,
    "gov_max_votes": Range(1, 1_000_000),
    "gov_max_open": Range(1, 10_000),
    "gov_max_depositors": Range(1, 10_000),
    # rewards
    "rewards_curve_0_bps": _SHARE,
    "rewards_curve_30_bps": _SHARE,
    "rewards_curve_50_bps": _SHARE,
    "rewards_curve_100_bps": _SHARE,
    "rewards_compute_weight": Range(0, 10_000),
    "rewards_storage_weight": Range(0, 10_000),
    "rewards_bandwidth_weight": Range(0, 10_000),
    "rewards_bandwidth_capacity_bps": Range(1, 100 * BPS),
    "rewards_proposer_bps": _SHARE,
    "rewards_director_bps": _SHARE,
    "rewards_standby_bps": _SHARE,
    "rewards_provider_bps": _SHARE,
    "rewards_default_commission_bps": _SHARE,
    "rewards_max_commission_bps": _SHARE,
    "rewards_commission_max_change_bps": Range(1, BPS),
    "rewards_commission_change_blocks": Range(0, 10**9),
}


VOTE_TX_BYTES = 512  # a signed gov/vote transaction is smaller (a test checks)
VOTE_WRITES = 2  # its ballot, and the proposal's voter count
VOTE_FEE_MOST = HPC  # what a vote may cost at the minimum gas price


def vote_gas(p: Params) -> int:
    """The most gas a governance vote needs under ``p``."""
    return p.tx_base_gas + p.gas_per_tx_byte * VOTE_TX_BYTES + p.gas_per_write * VOTE_WRITES


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule between fields: ``holds(params)`` or the sentence ``message``."""

    fields: tuple[str, ...]
    holds: Callable[[Params], bool]
    message: str


RULES: tuple[Rule, ...] = (
    Rule(("max_tx_bytes", "max_block_bytes"), lambda p: p.max_tx_bytes <= p.max_block_bytes,
         "max_tx_bytes must not exceed max_block_bytes (a transaction no block can carry)"),
    Rule(("storage_audit_window", "storage_epoch_blocks"),
         lambda p: p.storage_audit_window < p.storage_epoch_blocks,
         "storage_audit_window must be shorter than storage_epoch_blocks"),
    Rule(("poca_downtime_missed", "poca_downtime_window"),
         lambda p: p.poca_downtime_missed <= p.poca_downtime_window,
         "poca_downtime_missed must not exceed poca_downtime_window"),
    # Params change only by a vote: a change after which no vote fits a transaction and a
    # block, or costs more than VOTE_FEE_MOST, could never be undone (no transaction at all
    # would enter a block).
    Rule(("tx_base_gas", "gas_per_tx_byte", "gas_per_write", "max_tx_gas", "max_block_gas"),
         lambda p: vote_gas(p) <= min(p.max_tx_gas, p.max_block_gas),
         "a vote must fit max_tx_gas and max_block_gas (tx_base_gas + gas_per_tx_byte x "
         f"{VOTE_TX_BYTES} + gas_per_write x {VOTE_WRITES})"),
    Rule(("min_gas_price", "tx_base_gas", "gas_per_tx_byte", "gas_per_write"),
         lambda p: p.min_gas_price * vote_gas(p) <= VOTE_FEE_MOST,
         f"a vote must cost at most {VOTE_FEE_MOST} base units at min_gas_price"),
    Rule(("gov_min_initial_deposit", "gov_min_deposit"),
         lambda p: p.gov_min_initial_deposit <= p.gov_min_deposit,
         "gov_min_initial_deposit must not exceed gov_min_deposit"),
    Rule(("rewards_curve_0_bps", "rewards_curve_30_bps", "rewards_curve_50_bps",
          "rewards_curve_100_bps"),
         lambda p: (p.rewards_curve_0_bps <= p.rewards_curve_30_bps <= p.rewards_curve_50_bps
                    <= p.rewards_curve_100_bps),
         "the rewards curve must not fall: rewards_curve_0_bps <= _30 <= _50 <= _100"),
    Rule(("rewards_curve_30_bps", "rewards_curve_50_bps", "rewards_curve_100_bps"),
         lambda p: (5 * p.rewards_curve_30_bps >= 3 * p.rewards_curve_50_bps
                    and 2 * p.rewards_curve_50_bps >= p.rewards_curve_100_bps),
         "the reward per unit of service must not rise with utilisation: "
         "5 x rewards_curve_30_bps >= 3 x rewards_curve_50_bps and "
         "2 x rewards_curve_50_bps >= rewards_curve_100_bps"),
    Rule(("rewards_proposer_bps", "rewards_director_bps", "rewards_standby_bps",
          "rewards_provider_bps"),
         lambda p: (p.rewards_proposer_bps + p.rewards_director_bps + p.rewards_standby_bps
                    + p.rewards_provider_bps <= BPS),
         "rewards_proposer_bps + _director_bps + _standby_bps + _provider_bps must not "
         "exceed 10000"),
    Rule(("rewards_default_commission_bps", "rewards_max_commission_bps"),
         lambda p: p.rewards_default_commission_bps <= p.rewards_max_commission_bps,
         "rewards_default_commission_bps must not exceed rewards_max_commission_bps"),
)


def _kinds() -> dict[str, str]:
    """Each field's codec kind name (``u64``, ``bool``, ``str`` ...)."""
    hints = typing.get_type_hints(Params, include_extras=True)
    return {f.name: hints[f.name].__metadata__[0].name for f in dataclasses.fields(Params)}


KINDS = _kinds()


def _field_problem(name: str, value: Any) -> str | None:
    bound, kind = BOUNDS.get(name), KINDS[name]
    if bound is None:  # a new group not listed yet: its codec type bounds it (a test says so)
        return None
    if isinstance(bound, Flag):
        return None if isinstance(value, bool) else f"{name} must be true or false"
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be an integer"
    high = min(bound.high, (1 << int(kind[1:])) - 1)
    if not bound.low <= value <= high:
        return f"{name} must be between {bound.low} and {high}, not {value}"
    return None


def problems(params: Params) -> list[str]:
    """Every way ``params`` break the table or the rules, one sentence each."""
    out = [p for f in dataclasses.fields(Params)
           if (p := _field_problem(f.name, getattr(params, f.name))) is not None]
    if not out:  # the rules compare fields, so only once each is in range
        out = [r.message for r in RULES if not r.holds(params)]
    return out


def check(params: Params) -> None:
    """Raise ``ParamsError`` naming every broken bound or rule."""
    found = problems(params)
    if found:
        raise ParamsError("; ".join(found))


def parse_value(name: str, text: str) -> Any:
    """The value of parameter ``name`` written as ``text`` (the CLI's and proposals' form)."""
    kind = KINDS.get(name)
    if kind is None:
        raise ParamsError(f"unknown parameter {name!r}")
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise ParamsError(f"{name} takes true or false, not {text!r}")
        return text.lower() == "true"
    if not text.isascii() or not text.isdigit() or len(text) > 40:
        raise ParamsError(f"{name} takes a non-negative integer, not {text!r}")
    return int(text)


def format_value(value: Any) -> str:
    """The text ``parse_value`` reads back as ``value``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def with_changes(params: Params, changes: Iterable[tuple[str, str]]) -> Params:
    """``params`` with each ``(name, text)`` applied; ``ParamsError`` if a name is unknown or
    repeated, a value does not parse, or the result breaks a bound or a rule."""
    values: dict[str, Any] = {}
    for name, text in changes:
        if name in values:
            raise ParamsError(f"parameter {name} is changed twice")
        values[name] = parse_value(name, text)
    new = dataclasses.replace(params, **values)
    check(new)
    return new
