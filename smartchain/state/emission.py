"""The HPC emission schedule (Smart Chain paper, section 4.3).

210,000,000 HPC at most, 1 HPC = 10^8 base units, and a block reward that halves every
four years' worth of blocks at the chain's block time. The reward is an integer that
halves by right shift, so the sum of the whole schedule is
``sum_e B * (R0 >> e) <= B * 2 * R0 <= pool``: the cap can never be passed, whatever the
genesis allocations (the pool is what genesis leaves under the cap).
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U64, U128, Struct

UNITS_PER_HPC = 10**8
MAX_SUPPLY = 210_000_000 * UNITS_PER_HPC
HALVING_MS = 4 * 36525 * 24 * 3600 * 10  # four years of 365.25 days, in milliseconds


@dataclass(frozen=True, slots=True)
class Emission(Struct):
    initial_reward: U128  # base units per block in the first era
    blocks_per_halving: U64
    pool: U128  # what may ever be emitted: the cap minus the genesis supply


def schedule(block_time_ms: int, genesis_supply: int) -> Emission:
    """Fix the schedule at genesis, so later block-time changes cannot mint more."""
    if not 0 <= genesis_supply <= MAX_SUPPLY:
        raise ValueError("genesis allocations exceed the 210,000,000 HPC cap")
    if block_time_ms <= 0:
        raise ValueError("block time must be positive")
    blocks = HALVING_MS // block_time_ms
    pool = MAX_SUPPLY - genesis_supply
    return Emission(pool // (2 * blocks), blocks, pool)


def block_reward(em: Emission, height: int) -> int:
    """Reward minted by the block at ``height`` (>= 1)."""
    era = (height - 1) // em.blocks_per_halving
    if era >= 128:
        return 0
    return em.initial_reward >> era


def total_emission(em: Emission) -> int:
    """Everything the schedule will ever mint, summed era by era (exact, no floats)."""
    total, era = 0, 0
    while (reward := em.initial_reward >> era) > 0:
        total += reward * em.blocks_per_halving
        era += 1
    return total


def emitted_through(em: Emission, height: int) -> int:
    """Total minted by blocks 1..height, in closed form per era."""
    total, era = 0, 0
    while height > 0 and (reward := em.initial_reward >> era) > 0:
        n = min(height, em.blocks_per_halving)
        total += n * reward
        height -= n
        era += 1
    return total
