"""The rewards module on a real chain: each epoch mints what the utilisation curve says of
what the halving schedule allows, and pays it to proposers, signing directors, attesting
standbys and providers by verified work; delegators share their validator's reward minus its
commission (F1, withdraw-on-change); withdrawals pay once; bad input changes nothing.

Every block checks every module's invariants (supply = genesis + minted - burned, minted <=
schedule so far, each module account = its books) and adds up supply = free balances +
locked stake + unwithdrawn rewards + community pool.

Verified work reaches the rewards module through one hook, ``record_work``, which the compute
module calls when a result is verified and the storage module when an audit passes or is
missed and when a bandwidth receipt is paid. Most tests script that work through the same
hook (``ScriptedWork``, a module placed where those calls happen: before the rewards
module's end_block) against capacities declared by real registrations; one test pays a real
bandwidth receipt.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from framework.chain import ChainKit, ChainNet
from framework.checks import assert_invariants
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartchain.app import default_modules
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import (
    Bank,
    add_balance,
    get_account,
    total_minted,
    total_supply,
)
from smartchain.modules.compute.types import RegisterProvider as ComputeRegister
from smartchain.modules.poca.sets import validator_set_at
from smartchain.modules.poca.state import get_ranking
from smartchain.modules.poca.types import Attest, Delegate, Register, Undelegate
from smartchain.modules.rewards.epoch import KNOTS, curve_bps, get_summary, get_tally, measure
from smartchain.modules.rewards.module import supply_breakdown
from smartchain.modules.rewards.state import Env, accrued, get_pool, pending, record_work
from smartchain.modules.rewards.types import BPS, MODULE_ACCOUNT, SetCommission, Withdraw
from smartchain.modules.storage.types import ClaimBandwidth, bandwidth_amount, sign_receipt
from smartchain.modules.storage.types import RegisterProvider as StorageRegister
from smartchain.state.chain import Chain
from smartchain.state.emission import HALVING_MS, emitted_through, schedule, total_emission
from smartchain.state.genesis import GenesisValidator
from smartchain.state.module import BlockInfo, Module
from smartchain.state.params import Params
from smartchain.state.params.bounds import ParamsError, check
from smartchain.state.store import Overlay
from smartchain.types.consensus import EMPTY_COMMIT, Commit, CommitSig, Step, Vote
from smartchain.types.errors import Code
from smartchain.types.tx import Event, Receipt

HPC = 10**8
EPOCH = 10
GIB = 1 << 30


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


V1, V2 = key(60), key(61)  # genesis validators: V1 proposes every block
ALICE, BOB, CAROL = key(62), key(63), key(64)
CPU1, CPU2, DISK1, DISK2 = key(70), key(71), key(72), key(73)
CLIENT = key(74)
S1, S2 = key(75), key(76)  # candidates that rank as standby signers
CAPABILITY = 1_000_000  # fuel/s each compute provider declares
CAPACITY = 10**9  # bytes each storage provider declares
_NAMES = itertools.count()


def params(**kw: Any) -> Params:
    base: dict[str, Any] = dict(poca_epoch_blocks=EPOCH, storage_epoch_blocks=EPOCH,
                                storage_audit_window=5, poca_max_directors=2,
                                poca_min_competence=0, poca_min_uptime_bps=0,
                                poca_min_self_stake=HPC,
                                rewards_commission_change_blocks=5)
    base.update(kw)
    return Params(**base)


class ScriptedWork(Module):
    """Verified work by height, recorded through the hook compute and storage call."""

    name = "scripted_work"

    def __init__(self) -> None:
        self.script: dict[int, list[tuple[bytes, dict[str, Any]]]] = {}

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        for provider, work in self.script.pop(block.height, []):
            record_work(Env(store, block, None, []), provider, **work)
        return []


class Net(ChainNet):
    """Blocks proposed by V1 that carry the previous block's commit, signed for real by the
    signers not ``down``."""

    gas_limit = 5_000_000

    def __init__(self, kit: ChainKit, chain: Chain, work: ScriptedWork) -> None:
        super().__init__(kit, chain, V1)
        self.work = work
        self.signers = {k.public_key: k for k in (V1, V2, S1, S2)}
        self.down: set[bytes] = set()

    def last_commit(self) -> Commit:
        if not self.blocks:
            return EMPTY_COMMIT
        prev = self.blocks[-1]
        h = prev.header.height
        sigs = []
        for i, v in enumerate(self.read(validator_set_at, h).validators):
            k = self.signers.get(v.public_key)
            if k is not None and v.public_key not in self.down:
                vote = Vote(self.kit.chain_id, h, 0, int(Step.PRECOMMIT), prev.hash(),
                            v.public_key, bytes(64)).signed_by(k)
                sigs.append(CommitSig(i, vote.signature))
        return Commit(h, 0, prev.hash(), tuple(sigs))

    def block(self, *raws: bytes) -> list[Receipt]:
        checked = [self.kit.check(self.chain, raw) for raw in raws]
        time_ms = self.kit.genesis_time_ms + self.block_ms * (self.chain.height + 1)
        staged = self.chain.stage_proposal(checked, time_ms, self.proposer,
                                           last_commit=self.last_commit())
        assert not staged.skipped
        self.chain.commit(staged)
        self.blocks.append(staged.block)
        assert_invariants(self.chain)
        free, locked, unwithdrawn, pool = self.read(supply_breakdown)
        assert free + locked + unwithdrawn + pool == self.read(total_supply)
        em = self.chain.genesis.emission()
        assert self.read(total_minted) <= emitted_through(em, self.chain.height) <= em.pool
        return staged.receipts

    def until(self, height: int) -> None:
        while self.chain.height < height:
            self.block()

    def next_epoch(self) -> Any:
        """Run to the end of the epoch running; its summary."""
        self.until(((self.chain.height + 1) // EPOCH + 1) * EPOCH - 1)
        return self.read(get_summary)

    def balance(self, k: PrivateKey | bytes) -> int:
        return self.read(get_account, k if isinstance(k, bytes) else k.address).balance

    def accrued(self, k: PrivateKey) -> int:
        return self.read(accrued, k.address)

    def plan(self, height: int, provider: PrivateKey, **work: Any) -> None:
        self.work.script.setdefault(height, []).append((provider.address, work))


def open_net(kit: ChainKit, p: Params | None = None) -> Net:
    funded = {k: 10_000 * HPC for k in (V1, V2, ALICE, BOB, CAROL, CPU1, CPU2, DISK1, DISK2,
                                           CLIENT, S1, S2)}
    gen = kit.genesis(funded, params=p or params(), validator=V1)
    gen = dataclasses.replace(gen, validators=(GenesisValidator(V1.public_key, 10, "v1"),
                                               GenesisValidator(V2.public_key, 8, "v2")))
    work = ScriptedWork()
    modules = default_modules()
    modules.insert(len(modules) - 1, work)  # the rewards module stays last
    chain = Chain(kit.root / f"rewards{next(_NAMES)}", gen, modules)
    kit._chains.append(chain)
    return Net(kit, chain, work)


@pytest.fixture
def net(chainkit: ChainKit) -> Net:
    return open_net(chainkit)


def with_providers(net: Net, cpus: tuple[PrivateKey, ...] = (CPU1, CPU2),
                   disks: tuple[PrivateKey, ...] = (DISK1, DISK2)) -> None:
    """Declare capacity by real registrations."""
    for k in cpus:
        net.ok(k, ComputeRegister(CAPABILITY, 10 * HPC))
    for k in disks:
        net.ok(k, StorageRegister(CAPACITY, 1_000, GIB, 10 * HPC, "/ip4/127.0.0.1/tcp/1",
                                  k.public_key))


def refused(r: Receipt, *words: str) -> None:
    assert not r.ok and r.code == Code.FAILED, r.log
    for w in words:
        assert w in r.log, r.log


# --- the curve ---------------------------------------------------------------------------------


def test_the_default_curve_mints_more_in_total_but_less_per_unit_as_utilisation_rises() -> None:
    p = Params()
    table = [(u, curve_bps(p, u)) for u in range(500, 10_001, 500)]
    assert [m for _u, m in table] == sorted(m for _u, m in table)  # the total rises
    per_unit = [m * BPS // u for u, m in table]
    assert per_unit == sorted(per_unit, reverse=True) and per_unit[0] > per_unit[-1]
    # the paper's example: 10 % of capacity earns more per unit than 50 %, and 100 % less again
    assert curve_bps(p, 1_000) * 5 > curve_bps(p, 5_000) > curve_bps(p, 1_000)
    assert curve_bps(p, 10_000) * 5_000 < curve_bps(p, 5_000) * 10_000
    assert [curve_bps(p, x) for x in KNOTS] == [4_000, 6_000, 7_500, 10_000]


@pytest.mark.parametrize(("changes", "words"), [
    ({"rewards_curve_30_bps": 3_000}, "must not fall"),  # below the 0 % point
    ({"rewards_curve_0_bps": 0, "rewards_curve_30_bps": 1_000}, "per unit"),
    ({"rewards_provider_bps": 9_000}, "must not exceed 10000"),
    ({"rewards_default_commission_bps": 6_000}, "rewards_max_commission_bps"),
])
def test_params_that_break_the_curves_shape_or_the_split_are_refused(
        changes: dict[str, int], words: str) -> None:
    with pytest.raises(ParamsError, match=words):
        check(dataclasses.replace(Params(), **changes))  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(block_time_ms=st.integers(1, 600_000), genesis=st.integers(0, 209_000_000 * HPC),
       epochs=st.lists(st.tuples(st.integers(1, 1 << 22), st.integers(0, BPS)), min_size=1,
                       max_size=60))
def test_the_total_minted_over_any_epochs_never_passes_the_cap(
        block_time_ms: int, genesis: int, epochs: list[tuple[int, int]]) -> None:
    """The settlement's arithmetic over the whole schedule: epochs of any length (to the
    last era and past it), at any utilisation, mint at most the curve's part of what the
    schedule allows them, so in all at most the schedule, which is under the pool."""
    em, p = schedule(block_time_ms, genesis), Params()
    scale = max(1, HALVING_MS // block_time_ms * 130 // sum(n for n, _u in epochs))
    end, minted = 0, 0
    for blocks, utilisation in epochs:
        start, end = end + 1, end + blocks * scale
        allowed = emitted_through(em, end) - emitted_through(em, start - 1)
        minted += allowed * curve_bps(p, utilisation) // BPS
        assert minted <= emitted_through(em, end)
    assert minted <= total_emission(em) <= em.pool


# --- epochs on a chain -------------------------------------------------------------------------


def test_an_epoch_mints_the_curves_part_of_the_schedule_and_pays_it_out(net: Net) -> None:
    with_providers(net)
    net.next_epoch()  # the first epoch is heights 1..9
    start = net.read(get_tally).start
    net.plan(start + 1, CPU1, fuel=CAPABILITY)  # 5 % of the compute capacity of 10 blocks
    net.plan(start + 2, DISK1, storage=CAPACITY // 2)  # 25 % of the storage byte-epochs
    net.plan(start + 3, DISK2, bandwidth=CAPACITY // 5)  # 10 % of the bandwidth
    last = net.next_epoch()
    em = net.chain.genesis.emission()
    assert (last.start, last.end) == (start, 2 * EPOCH - 1)
    assert last.schedule == emitted_through(em, 2 * EPOCH - 1) - emitted_through(em, EPOCH - 1)
    assert (last.compute_bps, last.storage_bps, last.bandwidth_bps) == (500, 2_500, 1_000)
    assert last.utilisation_bps == (500 + 2_500 + 1_000) // 3
    assert last.curve_bps == curve_bps(net.chain.params, last.utilisation_bps)
    mint = last.schedule * last.curve_bps // BPS
    paid = mint * 9_000 // BPS  # no standby is ranked: their part is never minted
    assert paid - 10 <= last.minted <= paid  # nor what rounding down leaves
    assert net.read(total_minted) == net.balance(MODULE_ACCOUNT)
    providers = [net.accrued(k) for k in (CPU1, DISK1, DISK2)]
    assert sum(providers) == last.to_providers
    assert mint * 6_000 // BPS - 3 <= last.to_providers <= mint * 6_000 // BPS
    # providers' kinds share as they made the utilisation figure: storage 2500 of 4000
    assert providers[1] == mint * 6_000 // BPS * 2_500 // 4_000
    assert net.accrued(CPU2) == 0  # declared, did nothing verified


def test_an_idle_chain_still_pays_its_signers_the_curves_floor(net: Net) -> None:
    last = net.next_epoch()
    assert last.utilisation_bps == 0 and last.curve_bps == 4_000
    mint = last.schedule * 4_000 // BPS
    assert last.to_providers == 0  # nobody worked: the providers' part is never minted
    signers = mint * (500 + 2_500) // BPS  # no standbys ranked: their part is not minted
    assert signers - 3 <= last.minted <= signers
    assert net.read(total_minted) == last.minted


def test_directors_earn_by_the_commits_they_signed(net: Net) -> None:
    net.next_epoch()  # heights 1..9; V2 signs all
    net.down = {V2.public_key}
    v1, v2 = net.accrued(V1), net.accrued(V2)
    last = net.next_epoch()
    mint = last.schedule * last.curve_bps // BPS
    got1, got2 = net.accrued(V1) - v1, net.accrued(V2) - v2
    assert got2 == 0  # signed nothing this epoch (the commit of block 9 is in block 10)
    # V1: the whole proposer bonus and the whole signers' part
    assert got1 == mint * 500 // BPS + mint * 2_500 // BPS


def test_providers_with_more_verified_work_get_proportionally_more(net: Net) -> None:
    with_providers(net)
    h = net.chain.height + 1
    net.plan(h, CPU1, fuel=1_000_000)
    net.plan(h, CPU2, fuel=3_000_000)
    net.plan(h, DISK1, storage=4 * 2**20)
    net.plan(h + 1, DISK1, storage=4 * 2**20)
    net.plan(h, DISK2, storage=2 * 2**20)
    net.next_epoch()
    cpu1, cpu2, disk1, disk2 = (net.accrued(k) for k in (CPU1, CPU2, DISK1, DISK2))
    assert cpu1 > 0 and disk2 > 0
    assert abs(cpu2 - 3 * cpu1) <= 3 and abs(disk1 - 4 * disk2) <= 4


def test_a_provider_that_missed_an_audit_gets_nothing_that_epoch(net: Net) -> None:
    with_providers(net)
    h = net.chain.height + 1
    for k in (DISK1, DISK2):
        net.plan(h, k, storage=2**20, bandwidth=2**20)
    net.plan(h + 1, DISK1, failed=True)
    last = net.next_epoch()
    assert net.accrued(DISK1) == 0 and net.accrued(DISK2) > 0
    # its portion is not minted, nor handed to the others
    assert net.accrued(DISK2) * 2 <= last.to_providers * 2 <= net.accrued(DISK2) * 2 + 4
    net.plan(net.chain.height + 1, DISK1, storage=2**20)
    net.next_epoch()
    assert net.accrued(DISK1) > 0  # the next epoch it earns again


def test_a_bandwidth_receipt_paid_on_chain_counts_as_the_providers_work(net: Net) -> None:
    with_providers(net, cpus=(), disks=(DISK1,))
    net.next_epoch()
    nbytes = CAPACITY // 4
    r = sign_receipt(CLIENT, net.kit.chain_id, DISK1.address, bytes(32), nbytes,
                     bandwidth_amount(nbytes, GIB), net.chain.height, bytes(16))
    net.ok(DISK1, ClaimBandwidth((r,)))
    last = net.next_epoch()
    assert last.bandwidth_bps == 2_500 and last.storage_bps == 0
    assert net.accrued(DISK1) == last.to_providers > 0


def test_a_standby_that_stops_attesting_stops_earning(chainkit: ChainKit) -> None:
    net = open_net(chainkit, params(poca_max_directors=1))
    net.ok(S1, Register(S1.public_key, 5 * HPC, "s1"))
    net.ok(S2, Register(S2.public_key, 5 * HPC, "s2"))
    net.next_epoch()  # ranked at the epoch's end: V1 directs, V2, S1 and S2 stand by
    assert {S1.address, S2.address} <= set(net.read(get_ranking).standbys)
    for k in (S1, S2):
        net.ok(k, Attest(net.chain.height))
    net.next_epoch()
    s1, s2 = net.accrued(S1), net.accrued(S2)
    assert s1 > 0 and s2 > 0 and net.accrued(V2) == 0  # V2 never attested
    net.ok(S1, Attest(net.chain.height))  # S2 stops
    net.next_epoch()
    assert net.accrued(S1) > s1 and net.accrued(S2) == s2


# --- delegators, commission, withdrawals -------------------------------------------------------


def test_delegators_receive_their_share_minus_the_commission(net: Net) -> None:
    net.ok(ALICE, Delegate(V1.address, 30 * HPC))  # V1: 10 HPC own + 30 delegated
    net.ok(V1, SetCommission(1_100))  # 10 % -> 11 %
    net.next_epoch()
    v1, pool = net.accrued(V1), net.read(get_pool, V1.address)
    reward = v1 + pool.owed
    delegators = (reward - reward * 1_100 // BPS) * 30 // 40
    assert abs(pool.owed - delegators) <= 2  # two payments (proposer, signer), each rounded
    alice = net.read(pending, ALICE.address, V1.address, 30 * HPC)
    assert pool.owed - 1 <= alice <= pool.owed
    before = net.balance(ALICE)
    r = net.ok(ALICE, Withdraw())
    assert net.balance(ALICE) == before - r.fee + alice


def test_changing_a_delegation_pays_what_it_earned_first(net: Net) -> None:
    net.ok(ALICE, Delegate(V1.address, 30 * HPC))
    net.next_epoch()
    earned = net.read(pending, ALICE.address, V1.address, 30 * HPC)
    assert earned > 0
    before = net.balance(ALICE)
    r = net.ok(ALICE, Delegate(V1.address, 10 * HPC))
    assert net.balance(ALICE) == before - r.fee - 10 * HPC + earned
    assert net.read(pending, ALICE.address, V1.address, 40 * HPC) == 0
    net.next_epoch()
    earned = net.read(pending, ALICE.address, V1.address, 40 * HPC)
    before = net.balance(ALICE)
    r = net.ok(ALICE, Undelegate(V1.address, 40 * HPC))  # all of it: unbonding, paid first
    assert net.balance(ALICE) == before - r.fee + earned > before - r.fee


def test_withdrawing_twice_pays_once(net: Net) -> None:
    net.ok(ALICE, Delegate(V1.address, 30 * HPC))
    net.next_epoch()
    owed = net.read(pending, ALICE.address, V1.address, 30 * HPC)
    assert owed > 0
    before = net.balance(ALICE)
    r = net.ok(ALICE, Withdraw())
    assert net.balance(ALICE) == before - r.fee + owed
    before = net.balance(ALICE)
    r = net.send(ALICE, Withdraw())  # no epoch ended since: nothing new accrued
    refused(r, "no rewards accrued")
    assert net.balance(ALICE) == before - r.fee


def test_a_withdrawal_with_nothing_accrued_is_refused_and_changes_nothing(net: Net) -> None:
    net.ok(BOB, Delegate(V1.address, 5 * HPC))

    def books(view: Any) -> list[tuple[bytes, bytes]]:
        return [kv for kv in view.iter_prefix(b"rewards/") if kv[0] != b"rewards/tally"]

    before, balance = net.read(books), net.balance(BOB)
    r = net.send(BOB, Withdraw())
    refused(r, "has no rewards accrued to withdraw")
    assert net.read(books) == before and net.balance(BOB) == balance - r.fee


@pytest.mark.parametrize(("who", "rate", "words"), [
    (ALICE, 1_000, "not a registered validator candidate"),
    (V1, 5_001, "over the most allowed"),
    (V1, 1_500, "changes by more than"),
    (V1, 1_000, "already 1000 bps"),
])
def test_a_bad_commission_change_is_refused(net: Net, who: PrivateKey, rate: int,
                                            words: str) -> None:
    refused(net.send(who, SetCommission(rate)), words)


def test_a_commission_changes_at_most_once_per_period(net: Net) -> None:
    net.ok(V1, SetCommission(1_100))
    refused(net.send(V1, SetCommission(1_200)), "next change is accepted from height")
    net.until(net.chain.height + 5)
    net.ok(V1, SetCommission(1_200))


def test_a_commission_over_100_percent_is_refused_before_the_mempool(net: Net) -> None:
    from smartchain.types.errors import TxError
    with pytest.raises(TxError) as err:
        net.kit.check(net.chain, net.sign(V1, SetCommission(10_001)))
    assert err.value.code == Code.INVALID_PAYLOAD


# --- supply --------------------------------------------------------------------------------------


def test_supply_is_genesis_plus_minted_minus_burned_without_the_staking_module(
        chainkit: ChainKit) -> None:
    gen = chainkit.genesis({ALICE: 10 * HPC})
    chain = Chain(chainkit.root / "bank-only", gen, [Bank()])
    try:
        with chain.reader() as reader:
            assert chain.check_invariants(reader) == []
            store = Overlay(reader)
            add_balance(store, ALICE.address, 1)  # HPC from nowhere, supply raised to match
            store.set(b"bank/supply", (total_supply(store) + 1).to_bytes(16, "big"))
            assert chain.check_invariants(store) == [
                f"bank: supply {10 * HPC + 1} != genesis {10 * HPC} + minted 0 - burned 0"]
    finally:
        chain.close()


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=st.lists(st.tuples(st.integers(0, 3 * CAPABILITY * EPOCH),
                                  st.integers(0, 3 * CAPACITY), st.integers(0, 3 * CAPACITY),
                                  st.booleans()),
                        min_size=2, max_size=3))
def test_minted_per_epoch_follows_the_curve_and_stays_under_the_schedule(
        chainkit: ChainKit, history: list[tuple[int, int, int, bool]]) -> None:
    net = open_net(chainkit)
    with_providers(net)
    em = net.chain.genesis.emission()
    minted = net.read(total_minted)
    for fuel, stored, served, fails in history:
        h = net.chain.height + 1
        net.plan(h, CPU1, fuel=fuel)
        net.plan(h, DISK1, storage=stored, bandwidth=served, failed=fails)
        net.plan(h, DISK2, storage=stored // 2)
        last = net.next_epoch()
        p = net.chain.params
        util = measure(p, last.end - last.start + 1, (fuel, stored + stored // 2, served),
                       (2 * CAPABILITY, 2 * CAPACITY))
        assert last.utilisation_bps == util.total
        assert last.curve_bps == curve_bps(p, util.total)
        assert last.schedule == emitted_through(em, last.end) - emitted_through(em, last.start - 1)
        most = last.schedule * last.curve_bps // BPS
        assert last.minted <= most
        # minted: the proposer's and signers' parts (no standby is ranked), the providers'
        # unless nobody worked, less the failed provider's portion and rounding
        paid_bps = 3_000 + (6_000 if any(util.contributions) and not fails else 0)
        assert last.minted >= most * paid_bps // BPS - 20
        assert net.read(total_minted) == minted + last.minted
        minted += last.minted
        assert minted <= emitted_through(em, last.end)
    net.chain.close()
    chainkit._chains.remove(net.chain)
