"""The HPC emission schedule: capped, halving, eventually zero."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartchain.crypto.keys import PrivateKey
from smartchain.state.emission import (
    HALVING_MS,
    MAX_SUPPLY,
    UNITS_PER_HPC,
    Emission,
    block_reward,
    emitted_through,
    schedule,
    total_emission,
)
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisError, GenesisValidator
from smartchain.state.params import Params
from smartchain.types.amount import UNITS_PER_HPC as HPC


def test_constants() -> None:
    assert MAX_SUPPLY == 210_000_000 * 10**8
    assert UNITS_PER_HPC == 10**8
    assert HALVING_MS == int(4 * 365.25 * 24 * 3600 * 1000)


def closed_form_total(em: Emission) -> int:
    """sum_e floor(R0 / 2^e) == 2*R0 - popcount(R0), so the total needs no loop at all."""
    r0 = em.initial_reward
    return em.blocks_per_halving * (2 * r0 - bin(r0).count("1"))


@pytest.mark.parametrize("block_time_ms", [1000, 500, 6000, 1, 7919])
@pytest.mark.parametrize("genesis_supply", [0, MAX_SUPPLY // 10, MAX_SUPPLY - 1, MAX_SUPPLY])
def test_total_emission_within_pool_and_cap(block_time_ms: int, genesis_supply: int) -> None:
    em = schedule(block_time_ms, genesis_supply)
    assert em.blocks_per_halving == HALVING_MS // block_time_ms
    assert em.pool == MAX_SUPPLY - genesis_supply
    total = total_emission(em)
    assert total == closed_form_total(em)
    assert total <= em.pool
    assert genesis_supply + total <= MAX_SUPPLY
    # and the schedule does not leave much on the table: less than 2 eras' rounding
    assert em.pool - total < em.blocks_per_halving * (2 + bin(em.initial_reward).count("1"))
    # emitted_through far past the last era is the whole schedule
    last_era = em.initial_reward.bit_length()
    assert emitted_through(em, em.blocks_per_halving * (last_era + 5)) == total


def test_schedule_values_at_one_second_blocks() -> None:
    em = schedule(1000, 0)
    assert em.blocks_per_halving == 126_230_400
    assert em.initial_reward == MAX_SUPPLY // (2 * 126_230_400)
    # ~0.83 HPC per block in the first era
    assert em.initial_reward == 83_181_230
    assert UNITS_PER_HPC * 83 // 100 < em.initial_reward < UNITS_PER_HPC * 84 // 100
    # half the pool (minus rounding) is emitted in the first four years
    first_era = emitted_through(em, em.blocks_per_halving)
    assert first_era == em.initial_reward * em.blocks_per_halving
    assert abs(first_era - MAX_SUPPLY // 2) < em.blocks_per_halving


def test_faster_blocks_do_not_emit_more() -> None:
    totals = {bt: total_emission(schedule(bt, 0)) for bt in (500, 1000, 6000)}
    for total in totals.values():
        assert MAX_SUPPLY - MAX_SUPPLY // 1000 < total <= MAX_SUPPLY


def brute_force_through(em: Emission, height: int) -> int:
    return sum(block_reward(em, h) for h in range(1, height + 1))


@settings(max_examples=150, deadline=None)
@given(
    r0=st.integers(min_value=0, max_value=5_000),
    bph=st.integers(min_value=1, max_value=40),
    height=st.integers(min_value=0, max_value=800),
)
def test_emitted_through_matches_brute_force(r0: int, bph: int, height: int) -> None:
    em = Emission(r0, bph, 10**30)
    assert emitted_through(em, height) == brute_force_through(em, height)


@pytest.mark.parametrize(("r0", "bph"), [(1000, 10), (37, 3), (1, 5), (1 << 10, 1)])
def test_emitted_through_crosses_halvings(r0: int, bph: int) -> None:
    em = Emission(r0, bph, 10**30)
    eras = r0.bit_length() + 2
    running = 0
    for h in range(1, bph * eras + 1):
        running += block_reward(em, h)
        assert emitted_through(em, h) == running
    assert running == total_emission(em) == closed_form_total(em)


def test_reward_halves_at_boundary() -> None:
    em = Emission(initial_reward=1_000_003, blocks_per_halving=100, pool=10**20)
    assert block_reward(em, 1) == 1_000_003
    assert block_reward(em, 100) == 1_000_003
    assert block_reward(em, 101) == 1_000_003 >> 1
    assert block_reward(em, 200) == 1_000_003 >> 1
    assert block_reward(em, 201) == 1_000_003 >> 2
    real = schedule(1000, 0)
    b = real.blocks_per_halving
    assert block_reward(real, b) == real.initial_reward
    assert block_reward(real, b + 1) == real.initial_reward // 2
    assert block_reward(real, 2 * b + 1) == real.initial_reward // 4


def test_reward_eventually_zero() -> None:
    em = schedule(1000, 0)
    last_era = em.initial_reward.bit_length()  # R0 >> last_era == 0
    b = em.blocks_per_halving
    assert block_reward(em, (last_era - 1) * b + 1) == 1
    assert block_reward(em, last_era * b) == 1
    assert block_reward(em, last_era * b + 1) == 0
    assert block_reward(em, 10**18) == 0
    # 128 eras or more is zero even for the largest possible reward
    huge = Emission((1 << 128) - 1, 1, (1 << 128) - 1)
    assert block_reward(huge, 128) == 1
    assert block_reward(huge, 129) == 0
    assert block_reward(schedule(1000, MAX_SUPPLY), 1) == 0


def test_schedule_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError):
        schedule(1000, MAX_SUPPLY + 1)
    with pytest.raises(ValueError):
        schedule(1000, -1)
    with pytest.raises(ValueError):
        schedule(0, 0)
    with pytest.raises(ValueError):
        schedule(-5, 0)


def make_genesis(balances: list[int]) -> Genesis:
    keys = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(len(balances))]
    return Genesis(
        "emission-test", 0, Params(),
        tuple(GenesisAccount(k.address, b) for k, b in zip(keys, balances, strict=True)),
        (GenesisValidator(keys[0].public_key, 1, "v"),),
    )


def test_genesis_allocations_above_cap_rejected() -> None:
    stake = HPC  # the genesis validator's self-stake (power 1) counts in the supply
    ok = make_genesis([MAX_SUPPLY // 2, MAX_SUPPLY - MAX_SUPPLY // 2 - stake])
    ok.validate()
    assert ok.supply() == MAX_SUPPLY
    assert ok.emission().pool == 0

    over = make_genesis([MAX_SUPPLY // 2, MAX_SUPPLY - MAX_SUPPLY // 2 - stake + 1])
    with pytest.raises(GenesisError):
        over.validate()
    with pytest.raises(ValueError):
        over.emission()
    with pytest.raises(GenesisError):
        Genesis.from_json(over.to_json())
    with pytest.raises(GenesisError):
        make_genesis([MAX_SUPPLY + 1]).validate()


def test_genesis_json_round_trip_keeps_emission() -> None:
    gen = make_genesis([MAX_SUPPLY // 10, 5])
    back = Genesis.from_json(gen.to_json())
    assert back == gen
    assert back.hash() == gen.hash()
    assert back.emission() == schedule(1000, MAX_SUPPLY // 10 + 5 + HPC)  # + validator stake
