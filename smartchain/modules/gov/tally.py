"""Counting a proposal's votes by locked HPC, as Cosmos does: pure integer arithmetic.

A candidate's own stake and the delegations made to it vote as the candidate voted, except
the delegations whose delegators voted themselves: each of those counts for its delegator's
option instead (the delegator overrides its validator for its share). The work is one
step per bond of each voter plus one per candidate: bounded by ``gov_max_votes`` and the
staking module's bounds on candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from smartchain.modules.gov.types import BPS, NO_QUORUM, PASSED, REJECTED, VETOED, Tally
from smartchain.state.params import Params


@dataclass(frozen=True, slots=True)
class Validator:
    """A candidate as the tally sees it: its own stake, and its delegations' tokens and
    shares (a slash lowers the tokens behind the same shares)."""

    self_stake: int
    delegated: int
    shares: int

    def value(self, shares: int) -> int:
        return shares * self.delegated // self.shares if self.shares else 0


@dataclass(frozen=True, slots=True)
class Bond:
    """Shares of a delegation to ``validator`` (its operator address)."""

    validator: bytes
    shares: int


@dataclass(frozen=True, slots=True)
class Ballot:
    voter: bytes
    option: int
    bonds: Sequence[Bond]


def count(validators: Mapping[bytes, Validator], ballots: Sequence[Ballot]) -> Tally:
    """The locked HPC behind each option, and all locked HPC (the quorum's base)."""
    sums = [0, 0, 0, 0]
    deducted: dict[bytes, int] = {}
    own: dict[bytes, int] = {}
    for ballot in ballots:
        if ballot.voter in validators:
            own[ballot.voter] = ballot.option
        for bond in ballot.bonds:
            v = validators.get(bond.validator)
            if v is None:
                continue
            deducted[bond.validator] = deducted.get(bond.validator, 0) + bond.shares
            sums[ballot.option] += v.value(bond.shares)
    for operator in sorted(own):
        v = validators[operator]
        sums[own[operator]] += v.self_stake + v.value(v.shares - deducted.get(operator, 0))
    locked = sum(v.self_stake + v.delegated for v in validators.values())
    return Tally(sums[0], sums[1], sums[2], sums[3], locked)


def outcome(t: Tally, params: Params) -> int:
    """PASSED, REJECTED, VETOED or NO_QUORUM. Quorum counts every vote cast (abstain too)
    against all locked HPC; veto counts against all votes cast; the threshold against yes +
    no + veto (abstain is neither)."""
    cast = t.yes + t.no + t.abstain + t.veto
    if t.locked == 0 or cast == 0 or cast * BPS < params.gov_quorum_bps * t.locked:
        return NO_QUORUM
    if t.veto * BPS > params.gov_veto_bps * cast:
        return VETOED
    decisive = t.yes + t.no + t.veto
    if decisive and t.yes * BPS > params.gov_threshold_bps * decisive:
        return PASSED
    return REJECTED
