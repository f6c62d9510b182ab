"""The gov module's chain parameters (one group of ``smartchain.state.params.Params``).

Importable on its own (codec only), like ``types``. These are governable like every other
field of ``Params``; docs/gov.md explains each.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64, U128, Bool


@dataclass(frozen=True)
class GovParams:
    """Deposits, periods, the tally's thresholds, what happens to deposits, and bounds."""

    gov_min_deposit: U128 = 1_000 * 10**8  # total deposit that opens the voting period
    gov_min_initial_deposit: U128 = 100 * 10**8  # what a proposer must put in (anti-spam)
    gov_deposit_blocks: U64 = 172_800  # blocks to reach gov_min_deposit (2 days at 1 s)
    gov_voting_blocks: U64 = 172_800  # blocks a proposal is open to votes
    gov_quorum_bps: U32 = 3_340  # locked HPC that must vote (abstain counts), of all locked
    gov_threshold_bps: U32 = 5_000  # yes must be MORE than this part of yes + no + veto
    gov_veto_bps: U32 = 3_340  # veto above this part of all votes cast: vetoed
    gov_burn_vetoed: Bool = True  # a vetoed proposal's deposits are burned (else returned)
    gov_burn_no_quorum: Bool = False  # ... of a proposal below quorum
    gov_burn_rejected: Bool = False  # ... of a proposal that did not pass the threshold
    gov_burn_expired: Bool = False  # ... of a proposal that never reached gov_min_deposit
    gov_max_votes: U32 = 10_000  # voters one proposal counts: bounds the tally's loop
    gov_max_open: U32 = 64  # proposals in their deposit or voting period at once
    gov_max_depositors: U32 = 100  # accounts depositing on one proposal (bounds the refund)
