"""The rewards module's chain parameters (one group of ``smartchain.state.params.Params``).

Importable on its own (codec only), like ``types``. docs/rewards.md explains each; the rules
between them (a rising curve with a falling reward per unit, parts adding up to at most the
whole) are in ``bounds.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64


@dataclass(frozen=True)
class RewardsParams:
    """The utilisation curve, the split of an epoch's mint, and validators' commission."""

    # The curve: the part of the epoch's schedule minted (bps) at 0, 30, 50 and 100 %
    # utilisation, linear in between (the paper's thresholds, Smart Chain §4.3).
    rewards_curve_0_bps: U32 = 4_000  # an idle network still pays its signers something
    rewards_curve_30_bps: U32 = 6_000
    rewards_curve_50_bps: U32 = 7_500
    rewards_curve_100_bps: U32 = 10_000
    # Weights of verified compute, audited storage and paid bandwidth in the utilisation
    # figure and in the providers' part.
    rewards_compute_weight: U32 = 1
    rewards_storage_weight: U32 = 1
    rewards_bandwidth_weight: U32 = 1
    # A storage provider's bandwidth capacity per storage epoch: this part of its capacity.
    rewards_bandwidth_capacity_bps: U32 = 10_000
    # The split of an epoch's mint (bps of it; what no one earns is never minted).
    rewards_proposer_bps: U32 = 500  # by blocks proposed
    rewards_director_bps: U32 = 2_500  # by signatures in the commits of the epoch's blocks
    rewards_standby_bps: U32 = 1_000  # standby signers, by liveness attestations
    rewards_provider_bps: U32 = 6_000  # resource providers, by verified work
    # Commission a validator keeps of its reward before its delegators share the rest.
    rewards_default_commission_bps: U32 = 1_000
    rewards_max_commission_bps: U32 = 5_000
    rewards_commission_max_change_bps: U32 = 100  # per change
    rewards_commission_change_blocks: U64 = 86_400  # blocks between two changes
