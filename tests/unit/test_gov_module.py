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
from framework.checks import assert_invariants

from smartchain.cli.main import main
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account, total_burned, total_supply
from smartchain.modules.bank.types import MINTED_KEY, Transfer
from smartchain.modules.gov.module import tally_of
from smartchain.modules.gov.state import changed_at, get_proposal, open_count
from smartchain.modules.gov.tally import Ballot, Bond, Validator, count
from smartchain.modules.gov.types import (
    ABSTAIN,
    MODULE_ACCOUNT,
    NEXT_ID_KEY,
    NO,
    NO_ADDRESS,
    PARAM,
    SPEND,
    STATUS,
    TEXT,
    VETO,
    YES,
    Deposit,
    ParamChange,
    Propose,
    Vote,
)
from smartchain.modules.poca.state import community_pool
from smartchain.modules.poca.types import Delegate, Register
from smartchain.state.genesis import GenesisError
from smartchain.state.params import Params
from smartchain.state.params.bounds import BOUNDS, VOTE_TX_BYTES, vote_gas
from smartchain.types.consensus import DuplicateVoteEvidence, Step
from smartchain.types.consensus import Vote as ConsensusVote
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


@pytest.mark.parametrize("change", [
    ("tx_base_gas", "1000000000"),  # above max_tx_gas: no transaction fits any more
    ("gas_per_tx_byte", "1000000"),  # a vote of a few hundred bytes needs 10^8 gas
    ("gas_per_write", "1000000000"),  # a vote writes its ballot
    ("min_gas_price", "1000000000000"),  # a vote's fee: more HPC than exists
])
def test_a_param_change_that_would_leave_no_vote_possible_is_refused(
        net: Net, change: tuple[str, str]) -> None:
    """Each passed the field's bounds, and once carried out no transaction (so no vote to
    undo it) could enter a block again: the chain's params were frozen for good."""
    refused(net.propose_params(ALICE, change), Code.INVALID_PAYLOAD, "a vote")


def test_a_vote_fits_what_the_params_rule_reserves_for_it(staked: Net) -> None:
    """The rule's stand-in for a vote (its bytes and writes) covers a real one."""
    pid = staked.propose_text(DAVE)
    raw = staked.sign(ALICE, Vote(pid, YES))
    assert len(raw) <= VOTE_TX_BYTES
    (r,) = staked.block(raw)
    assert r.ok and r.gas_used <= vote_gas(staked.chain.params)


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


# --- voting by locked HPC (the poca module's stake and delegations) ---------------------------


STAKE = 1_000 * HPC  # ALICE's own stake as a candidate
BOB_DELEGATES, CAROL_DELEGATES = 600 * HPC, 400 * HPC


@pytest.fixture
def staked(chainkit: ChainKit) -> Net:
    """ALICE a candidate with 1000 HPC of her own, BOB and CAROL delegating 600 and 400 HPC
    to her; the genesis validator (PROPOSER) has 1 HPC. 2001 HPC locked in all."""
    return stake_up(chainkit)


LOCKED = STAKE + BOB_DELEGATES + CAROL_DELEGATES + HPC


def voted(net: Net, pid: int, *votes: tuple[PrivateKey, int]) -> str:
    """Cast ``votes``, run to the end of the voting period, return the outcome."""
    for who, option in votes:
        net.ok(who, Vote(pid, option))
    net.until(net.read(get_proposal, pid).voting_end)
    return net.status(pid)


def test_a_validator_s_yes_carries_its_delegators_and_the_proposal_passes(staked: Net) -> None:
    pid = staked.propose_text(DAVE)
    assert voted(staked, pid, (ALICE, YES)) == "passed"
    t = staked.read(get_proposal, pid).tally
    assert (t.yes, t.no, t.locked) == (STAKE + BOB_DELEGATES + CAROL_DELEGATES, 0, LOCKED)


def test_delegators_voting_no_override_their_validator_and_the_proposal_is_rejected(
        staked: Net) -> None:
    pid = staked.propose_text(DAVE)
    dave = staked.balance(DAVE)
    assert voted(staked, pid, (ALICE, YES), (BOB, NO), (CAROL, NO)) == "rejected"
    t = staked.read(get_proposal, pid).tally
    assert (t.yes, t.no) == (STAKE, BOB_DELEGATES + CAROL_DELEGATES)  # 50 %: not MORE
    assert staked.balance(DAVE) == dave + MIN_DEPOSIT  # deposits returned by default


def test_one_delegator_s_no_takes_only_its_own_share_from_its_validator(staked: Net) -> None:
    pid = staked.propose_text(DAVE)
    assert voted(staked, pid, (ALICE, YES), (BOB, NO)) == "passed"
    t = staked.read(get_proposal, pid).tally
    assert (t.yes, t.no) == (STAKE + CAROL_DELEGATES, BOB_DELEGATES)


def test_a_vetoed_proposal_s_deposits_are_burned_and_the_bank_counts_the_burn(
        staked: Net) -> None:
    pid = staked.propose_text(DAVE, deposit=40 * HPC)
    staked.ok(BOB, Deposit(pid, MIN_DEPOSIT - 40 * HPC))
    dave, bob, burned = staked.balance(DAVE), staked.balance(BOB), staked.read(total_burned)
    supply, minted = staked.read(total_supply), staked.minted()
    assert voted(staked, pid, (ALICE, VETO)) == "vetoed"
    assert staked.balance(DAVE) == dave and staked.balance(BOB) == bob
    assert staked.read(total_burned) == burned + MIN_DEPOSIT
    assert staked.read(total_supply) == supply + (staked.minted() - minted) - MIN_DEPOSIT
    assert staked.balance(MODULE_ACCOUNT) == 0


def test_a_vetoed_proposal_s_deposits_return_when_the_params_say_so(
        chainkit: ChainKit) -> None:
    net = stake_up(chainkit, gov_burn_vetoed=False)
    pid = net.propose_text(DAVE)
    dave = net.balance(DAVE)
    assert voted(net, pid, (ALICE, VETO)) == "vetoed"
    assert net.balance(DAVE) == dave + MIN_DEPOSIT and net.read(total_burned) == 0


def test_a_proposal_below_quorum_fails_and_its_deposit_returns(staked: Net) -> None:
    pid = staked.propose_text(DAVE)
    dave = staked.balance(DAVE)
    # CAROL's 400 of 2001 locked is 20 %, under the 33.4 % quorum, though all of it is yes
    assert voted(staked, pid, (CAROL, YES)) == "no_quorum"
    assert staked.balance(DAVE) == dave + MIN_DEPOSIT and staked.read(total_burned) == 0


def test_a_proposal_below_quorum_has_its_deposit_burned_when_the_params_say_so(
        chainkit: ChainKit) -> None:
    net = stake_up(chainkit, gov_burn_no_quorum=True)
    pid = net.propose_text(DAVE)
    dave = net.balance(DAVE)
    assert voted(net, pid, (CAROL, YES)) == "no_quorum"
    assert net.balance(DAVE) == dave and net.read(total_burned) == MIN_DEPOSIT


def test_abstain_counts_for_the_quorum_but_not_for_the_threshold(staked: Net) -> None:
    pid = staked.propose_text(DAVE)
    # ALICE (1000 own + 600 of BOB's) abstains: quorum reached; CAROL's 400 yes decides
    assert voted(staked, pid, (ALICE, ABSTAIN), (CAROL, YES)) == "passed"
    t = staked.read(get_proposal, pid).tally
    assert (t.yes, t.abstain) == (CAROL_DELEGATES, STAKE + BOB_DELEGATES)


def test_a_passing_min_gas_price_change_takes_effect_the_block_after_the_tally(
        staked: Net) -> None:
    assert staked.propose_params(DAVE, ("min_gas_price", "5")).ok
    pid = staked.last_id()
    staked.ok(ALICE, Vote(pid, YES))
    end = staked.read(get_proposal, pid).voting_end
    staked.until(end - 2)
    staked.ok(BOB, Transfer(CAROL.address, 1), gas_price=1)  # height end - 1: the old price
    assert staked.status(pid) == "voting"
    staked.block()  # height `end`: tallied in its end_block
    assert staked.status(pid) == "passed" and staked.chain.params.min_gas_price == 5
    assert staked.read(changed_at, "min_gas_price") == end + 1
    assert staked.read(changed_at, "max_tx_gas") == 0
    with pytest.raises(TxError) as err:
        staked.kit.check(staked.chain, staked.sign(BOB, Transfer(CAROL.address, 1),
                                                   gas_price=1))
    assert err.value.code == Code.FEE_TOO_LOW
    staked.nonces[BOB.address] -= 1
    staked.ok(BOB, Transfer(CAROL.address, 1), gas_price=5)


def test_a_change_an_earlier_one_made_invalid_fails_at_the_tally_and_changes_nothing(
        staked: Net) -> None:
    # valid each on its own when proposed (default epoch 100, window 50) ...
    assert staked.propose_params(DAVE, ("storage_epoch_blocks", "40"),
                                 ("storage_audit_window", "20")).ok
    first = staked.last_id()
    assert staked.propose_params(DAVE, ("storage_audit_window", "45")).ok
    second = staked.last_id()
    staked.ok(ALICE, Vote(first, YES))
    staked.ok(ALICE, Vote(second, YES))
    staked.until(staked.read(get_proposal, second).voting_end)
    # ... but a 45-block window no longer fits the 40-block epoch the first one set
    assert staked.status(first) == "passed" and staked.status(second) == "failed"
    assert "storage_audit_window must be shorter" in staked.read(get_proposal, second).note
    assert (staked.chain.params.storage_epoch_blocks,
            staked.chain.params.storage_audit_window) == (40, 20)


def test_gov_params_are_governable_too(staked: Net) -> None:
    assert staked.propose_params(DAVE, ("gov_voting_blocks", "3")).ok
    pid = staked.last_id()
    assert voted(staked, pid, (ALICE, YES)) == "passed"
    nxt = staked.propose_text(DAVE)
    p = staked.read(get_proposal, nxt)
    assert p.voting_end - p.voting_start == 3


def test_a_spend_the_community_pool_cannot_cover_fails_and_returns_the_deposit(
        staked: Net) -> None:
    staked.ok(DAVE, Propose(SPEND, "pay me", "", (), DAVE.address, 10**6 * HPC, MIN_DEPOSIT))
    pid = staked.last_id()
    dave = staked.balance(DAVE)
    assert voted(staked, pid, (ALICE, YES)) == "failed"
    assert "community pool holds" in staked.read(get_proposal, pid).note
    assert staked.balance(DAVE) == dave + MIN_DEPOSIT


def test_a_vote_after_the_tally_is_refused(staked: Net) -> None:
    pid = staked.propose_text(DAVE)
    assert voted(staked, pid, (ALICE, YES)) == "passed"
    refused(staked.send(BOB, Vote(pid, NO)), Code.FAILED, "not open to votes (it is passed)")


def test_a_voter_may_change_its_vote_and_only_the_last_counts(staked: Net) -> None:
    pid = staked.propose_text(DAVE)
    staked.ok(ALICE, Vote(pid, NO))
    assert voted(staked, pid, (ALICE, YES)) == "passed"
    assert staked.read(get_proposal, pid).votes == 1


def test_the_voters_a_proposal_counts_are_bounded_by_gov_max_votes(chainkit: ChainKit) -> None:
    net = stake_up(chainkit, gov_max_votes=2)
    pid = net.propose_text(DAVE)
    net.ok(ALICE, Vote(pid, YES))
    net.ok(BOB, Vote(pid, YES))
    refused(net.send(CAROL, Vote(pid, YES)), Code.FAILED, "gov_max_votes")
    net.ok(BOB, Vote(pid, NO))  # a counted voter may still change its vote


def test_the_running_tally_shows_while_voting(staked: Net) -> None:
    pid = staked.propose_text(DAVE)
    staked.ok(BOB, Vote(pid, NO))
    t = staked.read(tally_of, pid)
    assert (t.yes, t.no, t.locked) == (0, BOB_DELEGATES, LOCKED)


def stake_up(chainkit: ChainKit, **kw: Any) -> Net:
    chain = chainkit.open(chainkit.genesis(
        {ALICE: 10**6 * HPC, BOB: 10**6 * HPC, CAROL: 10**6 * HPC, DAVE: 10**6 * HPC},
        params=params(**kw), validator=PROPOSER))
    net = Net(chainkit, chain, PROPOSER)
    net.ok(ALICE, Register(ALICE.public_key, STAKE, "alice"))
    net.ok(BOB, Delegate(ALICE.address, BOB_DELEGATES))
    net.ok(CAROL, Delegate(ALICE.address, CAROL_DELEGATES))
    return net


def test_a_transaction_admitted_at_the_old_price_is_left_out_of_blocks_after_the_change(
        staked: Net) -> None:
    assert staked.propose_params(DAVE, ("min_gas_price", "5")).ok
    pid = staked.last_id()
    staked.ok(ALICE, Vote(pid, YES))
    waiting = staked.kit.check(staked.chain, staked.sign(BOB, Transfer(CAROL.address, 1),
                                                         gas_price=1))  # in a mempool
    staked.until(staked.read(get_proposal, pid).voting_end)
    assert staked.chain.params.min_gas_price == 5
    proposed = staked.chain.stage_proposal([waiting], staked.chain.next_time(0), PROPOSER)
    assert proposed.block.txs == () and proposed.skipped == [waiting]


def test_the_cli_refuses_an_unknown_key_or_a_bad_value_before_signing_anything(
        capsys: pytest.CaptureFixture[str]) -> None:
    for change, says in (("min_gas_prize=5", "unknown parameter 'min_gas_prize'"),
                         ("min_gas_price=cheap", "min_gas_price takes a non-negative integer"),
                         ("min_gas_price", "a change is KEY=VALUE")):
        with pytest.raises(SystemExit) as exit_:
            main(["gov", "propose", "param", change, "--deposit", "1000", "--title", "t",
                  "--from", "nobody-in-the-keyring"])
        assert exit_.value.code == 1
        assert says in capsys.readouterr().err


def double_sign(net: Net, signer: PrivateKey) -> None:
    """A block recording ``signer``'s double prevote: poca slashes 5 % into the pool."""
    h = net.chain.height
    votes = sorted((ConsensusVote(net.kit.chain_id, h, 0, int(Step.PREVOTE), bytes([n]) * 32,
                                  signer.public_key, bytes(64)).signed_by(signer)
                    for n in (1, 2)), key=lambda v: v.encode())
    staged = net.chain.stage_proposal([], net.chain.next_time(0), net.proposer,
                                      evidence=(DuplicateVoteEvidence(*votes),))
    net.chain.commit(staged)
    assert_invariants(net.chain)


def test_a_passing_spend_is_paid_from_the_community_pool(staked: Net) -> None:
    double_sign(staked, PROPOSER)  # the genesis director: 5 % of its 1 HPC
    pool = staked.read(community_pool)
    assert pool == HPC * 5 // 100
    staked.ok(DAVE, Propose(SPEND, "pay carol", "", (), CAROL.address, pool, MIN_DEPOSIT))
    pid = staked.last_id()
    carol, dave = staked.balance(CAROL), staked.balance(DAVE)
    assert voted(staked, pid, (ALICE, YES)) == "passed"
    assert staked.balance(CAROL) == carol + pool and staked.read(community_pool) == 0
    assert staked.balance(DAVE) == dave + MIN_DEPOSIT


def test_candidates_that_left_for_good_cost_the_tally_nothing(chainkit: ChainKit) -> None:
    """The tally, run in an end_block, read every candidate record ever made, and a record
    stays when its candidate leaves: accounts registering and unregistering in turn (their
    stake back after the unbonding period) grew every later tally for ever. It reads the
    candidates holding HPC (what the count weighs), and counts alike."""
    from smartchain.modules.gov import stake
    from smartchain.modules.poca.types import Unregister

    net = stake_up(chainkit, poca_unbonding_blocks=2)
    pid = net.propose_text(DAVE)
    net.ok(ALICE, Vote(pid, YES))
    before = net.read(tally_of, pid)
    for i in range(5):
        k = key(60 + i)
        net.ok(DAVE, Transfer(k.address, 200 * HPC))
        net.ok(k, Register(k.public_key, 100 * HPC, f"c{i}"))
        net.ok(k, Unregister())
    net.until(net.chain.height + 3)
    assert sorted(net.read(stake.validators)) == sorted([ALICE.address, PROPOSER.address])
    assert net.read(tally_of, pid) == before
