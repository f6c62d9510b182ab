"""The gov module on a real chain: proposals made, funded, voted on by locked HPC and tallied
once at the end of their voting period; param changes taking effect the block after;
deposits returned or burned as the params say; bad input refused with nothing changed.

Every module's invariants (the gov module account holds exactly the open proposals'
deposits, supply = genesis + minted - burned) are checked after every block.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest
from framework.chain import ChainKit, ChainNet

from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account, total_burned, total_supply
from smartchain.modules.bank.types import MINTED_KEY
from smartchain.modules.gov.state import get_proposal, open_count
from smartchain.modules.gov.tally import Ballot, Bond, Validator, count
from smartchain.modules.gov.types import (
    ABSTAIN,
    MODULE_ACCOUNT,
    NEXT_ID_KEY,
    NO,
    NO_ADDRESS,
    PARAM,
    STATUS,
    TEXT,
    VETO,
    YES,
    Deposit,
    ParamChange,
    Propose,
    Vote,
)
from smartchain.state.genesis import GenesisError
from smartchain.state.params import Params
from smartchain.state.params.bounds import BOUNDS
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt

HPC = 10**8
MIN_DEPOSIT = 100 * HPC
VOTING = 10
DEPOSITING = 8


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


ALICE, BOB, CAROL, DAVE = key(40), key(41), key(42), key(43)
PROPOSER = key(49)


def params(**kw: Any) -> Params:
    base: dict[str, Any] = dict(gov_min_deposit=MIN_DEPOSIT, gov_min_initial_deposit=10 * HPC,
                                gov_deposit_blocks=DEPOSITING, gov_voting_blocks=VOTING)
    base.update(kw)
    return Params(**base)


class Net(ChainNet):
    def balance(self, k: PrivateKey | bytes) -> int:
        return self.read(get_account, k if isinstance(k, bytes) else k.address).balance

    def status(self, pid: int) -> str:
        p = self.read(get_proposal, pid)
        return STATUS[p.status]

    def until(self, height: int) -> None:
        while self.chain.height < height:
            self.block()

    def propose_params(self, who: PrivateKey, *changes: tuple[str, str],
                       deposit: int = MIN_DEPOSIT) -> Receipt:
        msg = Propose(PARAM, "change params", "", tuple(ParamChange(k, v) for k, v in changes),
                      NO_ADDRESS, 0, deposit)
        return self.send(who, msg)

    def propose_text(self, who: PrivateKey, deposit: int = MIN_DEPOSIT) -> int:
        self.ok(who, Propose(TEXT, "a text", "we agree", (), NO_ADDRESS, 0, deposit))
        return self.last_id()

    def last_id(self) -> int:
        return int(self.read(lambda v: int.from_bytes(v.get(NEXT_ID_KEY), "big"))) - 1

    def minted(self) -> int:
        return int(self.read(lambda v: int.from_bytes(v.get(MINTED_KEY), "big")))


@pytest.fixture
def net(chainkit: ChainKit) -> Net:
    chain = chainkit.open(chainkit.genesis(
        {ALICE: 10**6 * HPC, BOB: 10**6 * HPC, CAROL: 10**6 * HPC, DAVE: 10**6 * HPC},
        params=params(), validator=PROPOSER))
    return Net(chainkit, chain, PROPOSER)


def refused(receipt: Receipt, code: Code, *words: str) -> None:
    assert not receipt.ok and receipt.code == code, receipt.log
    for w in words:
        assert w in receipt.log, receipt.log


# --- bad input -------------------------------------------------------------------------------


def test_a_param_proposal_with_an_unknown_key_is_refused_and_nothing_changes(net: Net) -> None:
    before = net.balance(ALICE)
    r = net.propose_params(ALICE, ("min_gas_prize", "5"))
    refused(r, Code.INVALID_PAYLOAD, "unknown parameter 'min_gas_prize'")
    assert net.balance(ALICE) == before - r.fee
    assert net.read(open_count) == 0 and net.read(get_proposal, 1) is None


def test_a_param_proposal_with_a_value_of_the_wrong_type_is_refused(net: Net) -> None:
    refused(net.propose_params(ALICE, ("min_gas_price", "five")), Code.INVALID_PAYLOAD,
            "min_gas_price takes a non-negative integer")
    refused(net.propose_params(ALICE, ("gov_burn_vetoed", "maybe")), Code.INVALID_PAYLOAD,
            "true or false")


def test_a_param_proposal_outside_a_fields_bounds_is_refused(net: Net) -> None:
    refused(net.propose_params(ALICE, ("storage_epoch_blocks", "0")), Code.INVALID_PAYLOAD,
            "storage_epoch_blocks must be between")
    refused(net.propose_params(ALICE, ("compute_slash_bps", "10001")), Code.INVALID_PAYLOAD,
            "compute_slash_bps")


def test_a_param_proposal_that_breaks_a_rule_between_fields_is_refused(net: Net) -> None:
    # the default audit window is 50 blocks: a 40-block epoch could not hold it
    refused(net.propose_params(ALICE, ("storage_epoch_blocks", "40")), Code.INVALID_PAYLOAD,
            "storage_audit_window must be shorter than storage_epoch_blocks")
    # ... unless the same proposal shortens the window too
    assert net.propose_params(ALICE, ("storage_epoch_blocks", "40"),
                              ("storage_audit_window", "20")).ok


def test_a_proposal_whose_deposit_is_below_the_minimum_initial_deposit_is_refused(
        net: Net) -> None:
    before = net.balance(ALICE)
    r = net.send(ALICE, Propose(TEXT, "cheap", "", (), NO_ADDRESS, 0, 10 * HPC - 1))
    refused(r, Code.FAILED, "below the minimum initial deposit")
    assert net.balance(ALICE) == before - r.fee
    assert net.balance(MODULE_ACCOUNT) == 0


def test_a_vote_on_an_unknown_proposal_is_refused(net: Net) -> None:
    refused(net.send(ALICE, Vote(7, YES)), Code.FAILED, "no proposal 7")


def test_a_vote_on_a_proposal_still_in_its_deposit_period_or_expired_is_refused(
        net: Net) -> None:
    pid = net.propose_text(ALICE, deposit=10 * HPC)
    refused(net.send(ALICE, Vote(pid, YES)), Code.FAILED, "not open to votes (it is deposit)")
    net.until(net.read(get_proposal, pid).deposit_end)
    assert net.status(pid) == "expired"
    refused(net.send(ALICE, Vote(pid, YES)), Code.FAILED, "not open to votes (it is expired)")
    refused(net.send(BOB, Deposit(pid, MIN_DEPOSIT)), Code.FAILED, "not in its deposit period")


def test_a_vote_from_an_account_with_nothing_locked_is_refused(net: Net) -> None:
    pid = net.propose_text(ALICE)
    assert net.status(pid) == "voting"
    refused(net.send(BOB, Vote(pid, YES)), Code.FAILED, "no HPC locked")
    assert net.read(get_proposal, pid).votes == 0


def test_a_malformed_proposal_is_refused_before_the_mempool(net: Net) -> None:
    bad = [Propose("law", "t", "", (), NO_ADDRESS, 0, MIN_DEPOSIT),
           Propose(PARAM, "t", "", (), NO_ADDRESS, 0, MIN_DEPOSIT),
           Propose(TEXT, "", "", (), NO_ADDRESS, 0, MIN_DEPOSIT),
           Propose(TEXT, "t", "", (), ALICE.address, 5, MIN_DEPOSIT),
           Propose("spend", "t", "", (), NO_ADDRESS, 5, MIN_DEPOSIT)]
    for msg in bad:
        with pytest.raises(TxError) as err:
            net.kit.check(net.chain, net.sign(ALICE, msg))
        assert err.value.code == Code.INVALID_PAYLOAD
        net.nonces[ALICE.address] -= 1
    with pytest.raises(TxError):
        net.kit.check(net.chain, net.sign(ALICE, Vote(1, 4)))


# --- deposits ----------------------------------------------------------------------------------


def test_deposits_reaching_the_minimum_open_the_voting_period(net: Net) -> None:
    pid = net.propose_text(ALICE, deposit=40 * HPC)
    assert net.status(pid) == "deposit"
    net.ok(BOB, Deposit(pid, 50 * HPC))
    assert net.status(pid) == "deposit"
    net.ok(CAROL, Deposit(pid, 10 * HPC))
    p = net.read(get_proposal, pid)
    assert net.status(pid) == "voting" and p.voting_start == net.chain.height
    assert p.voting_end == net.chain.height + VOTING
    assert p.total_deposit == MIN_DEPOSIT and p.depositors == 3
    assert net.balance(MODULE_ACCOUNT) == MIN_DEPOSIT
    net.until(p.deposit_end + 1)  # the deposit deadline passes: it stays open to votes
    assert net.status(pid) == "voting"


def test_an_unfunded_proposal_expires_and_its_deposits_return(net: Net) -> None:
    pid = net.propose_text(ALICE, deposit=40 * HPC)
    net.ok(BOB, Deposit(pid, 20 * HPC))
    alice, bob = net.balance(ALICE), net.balance(BOB)
    net.until(net.read(get_proposal, pid).deposit_end)
    assert net.status(pid) == "expired"
    assert net.balance(ALICE) == alice + 40 * HPC and net.balance(BOB) == bob + 20 * HPC
    assert net.balance(MODULE_ACCOUNT) == 0 and net.read(open_count) == 0


def test_an_unfunded_proposal_s_deposits_are_burned_when_the_params_say_so(
        chainkit: ChainKit) -> None:
    chain = chainkit.open(chainkit.genesis({ALICE: 10**6 * HPC},
                                           params=params(gov_burn_expired=True),
                                           validator=PROPOSER))
    net = Net(chainkit, chain, PROPOSER)
    pid = net.propose_text(ALICE, deposit=40 * HPC)
    supply, minted, alice = net.read(total_supply), net.minted(), net.balance(ALICE)
    net.until(net.read(get_proposal, pid).deposit_end)
    assert net.status(pid) == "expired"
    assert net.balance(ALICE) == alice and net.balance(MODULE_ACCOUNT) == 0
    assert net.read(total_burned) == 40 * HPC
    assert net.read(total_supply) == supply + (net.minted() - minted) - 40 * HPC


def test_open_proposals_are_bounded_by_gov_max_open(chainkit: ChainKit) -> None:
    chain = chainkit.open(chainkit.genesis({ALICE: 10**6 * HPC},
                                           params=params(gov_max_open=2), validator=PROPOSER))
    net = Net(chainkit, chain, PROPOSER)
    net.propose_text(ALICE)
    net.propose_text(ALICE)
    refused(net.send(ALICE, Propose(TEXT, "3rd", "", (), NO_ADDRESS, 0, MIN_DEPOSIT)),
            Code.FAILED, "gov_max_open")


# --- the tally's arithmetic ----------------------------------------------------------------------


V1, V2 = b"\x01" * 20, b"\x02" * 20
D1, D2 = b"\x11" * 20, b"\x12" * 20


def test_a_validator_s_vote_carries_its_own_stake_and_its_silent_delegators() -> None:
    vals = {V1: Validator(100, 300, 300), V2: Validator(50, 0, 0)}
    t = count(vals, [Ballot(V1, YES, ())])
    assert (t.yes, t.no, t.locked) == (400, 0, 450)


def test_a_delegator_s_vote_overrides_its_validator_s_for_its_share() -> None:
    vals = {V1: Validator(100, 300, 300)}
    t = count(vals, [Ballot(V1, YES, ()), Ballot(D1, NO, (Bond(V1, 200),))])
    assert (t.yes, t.no) == (200, 200)
    # the delegator alone: its validator did not vote, so the rest counts for nobody
    t = count(vals, [Ballot(D1, VETO, (Bond(V1, 200),))])
    assert (t.yes, t.veto, t.locked) == (0, 200, 400)


def test_a_slashed_validator_s_delegations_count_at_their_value_not_their_shares() -> None:
    vals = {V1: Validator(100, 150, 300)}  # delegations lost half their tokens
    t = count(vals, [Ballot(V1, ABSTAIN, ()), Ballot(D1, YES, (Bond(V1, 100),)),
                     Ballot(D2, NO, (Bond(V1, 100),))])
    assert (t.yes, t.no, t.abstain) == (50, 50, 150)


# --- params and bounds ---------------------------------------------------------------------------


def test_a_genesis_with_params_outside_their_bounds_is_refused(chainkit: ChainKit) -> None:
    with pytest.raises(GenesisError, match="storage_epoch_blocks must be between"):
        chainkit.genesis({ALICE: HPC}, params=replace(Params(), storage_epoch_blocks=0))
    with pytest.raises(GenesisError, match="gov_min_initial_deposit must not exceed"):
        chainkit.genesis({ALICE: HPC}, params=Params(gov_min_deposit=5,
                                                     gov_min_initial_deposit=6))


def test_every_param_has_bounds() -> None:
    assert [f.name for f in fields(Params) if f.name not in BOUNDS] == []
