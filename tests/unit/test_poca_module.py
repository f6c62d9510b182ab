"""The poca (staking) module on a real chain: candidates, delegations, unbonding, tiers by
verified competence and votes, downtime jail and standby takeover, double-sign slashing,
elimination and admission votes, and two chains fed the same blocks agreeing.

Blocks carry real commit certificates: the test holds the signers' keys and signs the
precommits of every block (``PocaNet.down`` says who stays silent), so liveness is judged
from the same ``last_commit`` a node hands the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framework.chain import ChainKit, ChainNet
from framework.checks import assert_invariants

from smartchain.app import open_chain
from smartchain.compute import TaskRunner
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.modules.compute.module import assignments, get_module, job_view
from smartchain.modules.compute.types import (
    CommitResult,
    PostJob,
    RegisterProvider,
    RevealResult,
    commitment,
    output_digest,
)
from smartchain.modules.poca import queries as pq
from smartchain.modules.poca.sets import validator_set_at
from smartchain.modules.poca.state import (
    community_pool,
    get_candidate,
    get_liveness,
    get_ranking,
)
from smartchain.modules.poca.types import (
    MODULE_ACCOUNT,
    ApproveCandidate,
    Attest,
    Delegate,
    Eliminate,
    Register,
    Undelegate,
    Unjail,
    Unregister,
    VoteEliminate,
    register_proof_bytes,
)
from smartchain.state.chain import Chain
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisValidator
from smartchain.state.params import Params
from smartchain.types.consensus import (
    EMPTY_COMMIT,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Step,
    Vote,
)
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt

HPC = 10**8
EPOCH = 10
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "compute"


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


GENESIS = [key(100 + i) for i in range(3)]  # three genesis directors, power 10 each
ALICE, BOB, CAROL, HOLDER, REQUESTER, PROPOSER = (key(i) for i in (110, 111, 112, 113, 114, 115))
STANDBY = key(116)
NODE_KEY = key(117)  # a consensus key held apart from its operator account


def params(**kw: Any) -> Params:
    base: dict[str, Any] = dict(
        poca_epoch_blocks=EPOCH, poca_max_directors=3, poca_max_standby=2,
        poca_min_self_stake=100 * HPC, poca_unbonding_blocks=20, poca_downtime_window=10,
        poca_downtime_missed=5, poca_jail_blocks=5, poca_attest_interval=2,
        poca_min_uptime_bps=5_000, poca_compute_weight=10**6, poca_eliminate_window=10,
        poca_eliminate_epochs=2, compute_min_stake=10 * HPC)
    base.update(kw)
    return Params(**base)


class PocaNet(ChainNet):
    """A chain whose blocks carry the commit of the previous block, signed for real by the
    keys of its signer set except those in ``down``."""

    gas_limit = 20_000_000

    def __init__(self, kit: ChainKit, chain: Chain, signers: list[PrivateKey]) -> None:
        super().__init__(kit, chain, PROPOSER)
        self.signers = {k.public_key: k for k in signers}
        self.down: set[bytes] = set()

    def last_commit(self) -> Commit:
        if not self.blocks:
            return EMPTY_COMMIT
        prev = self.blocks[-1]
        h = prev.header.height
        valset = self.read(validator_set_at, h)
        sigs = []
        for i, v in enumerate(valset.validators):
            k = self.signers.get(v.public_key)
            if k is None or v.public_key in self.down:
                continue
            vote = Vote(self.kit.chain_id, h, 0, int(Step.PRECOMMIT), prev.hash(), v.public_key,
                        bytes(64)).signed_by(k)
            sigs.append(CommitSig(i, vote.signature))
        return Commit(h, 0, prev.hash(), tuple(sigs))

    def block(self, *raws: bytes, evidence: tuple[DuplicateVoteEvidence, ...] = ()
              ) -> list[Receipt]:
        checked = [self.kit.check(self.chain, raw) for raw in raws]
        time_ms = self.kit.genesis_time_ms + self.block_ms * (self.chain.height + 1)
        staged = self.chain.stage_proposal(checked, time_ms, self.proposer,
                                           last_commit=self.last_commit(), evidence=evidence)
        assert not staged.skipped
        self.chain.commit(staged)
        self.blocks.append(staged.block)
        assert_invariants(self.chain)
        return staged.receipts

    def until(self, height: int, *raws_each: Any) -> None:
        while self.chain.height < height:
            self.block()

    def fail(self, k: PrivateKey, msg: Any, text: str) -> None:
        """The transaction fails with ``text`` in its log and changes nothing of poca's
        (but the liveness bits the block itself records)."""
        before = self.poca_state(liveness=False)
        r = self.send(k, msg)
        assert r.code == Code.FAILED and text in r.log, r.log
        assert self.poca_state(liveness=False) == before

    def poca_state(self, *, liveness: bool = True) -> list[tuple[bytes, bytes]]:
        with self.chain.reader() as reader:
            return [(k, v) for k, v in reader.iter_prefix(b"poca/")
                    if liveness or not k.startswith(b"poca/live/")]

    def set_keys(self, height: int | None = None) -> list[bytes]:
        h = self.chain.height + 2 if height is None else height
        return [v.public_key for v in self.read(validator_set_at, h).validators]

    def cand(self, k: PrivateKey) -> Any:
        return self.read(get_candidate, k.address)

    def tier(self, k: PrivateKey) -> str:
        r = self.read(get_ranking)
        return ("director" if k.address in r.directors else "standby" if k.address in r.standbys
                else "compute" if k.address in r.compute else "ordinary")

    def attest(self, *keys: PrivateKey) -> list[bytes]:
        return [self.sign(k, Attest(self.chain.height + 1)) for k in keys]


def make_genesis(**kw: Any) -> Genesis:
    funded = [ALICE, BOB, CAROL, HOLDER, REQUESTER, STANDBY, *GENESIS]
    return Genesis(ChainKit.chain_id, ChainKit.genesis_time_ms, params(**kw),
                   tuple(GenesisAccount(k.address, 100_000 * HPC) for k in funded),
                   tuple(GenesisValidator(k.public_key, 10, f"g{i}")
                         for i, k in enumerate(GENESIS)))


@pytest.fixture
def make_net(chainkit: ChainKit) -> Iterator[Any]:
    def make(name: str = "a", **kw: Any) -> PocaNet:
        chain = chainkit.open(make_genesis(**kw), chainkit.root / name)
        return PocaNet(chainkit, chain, [*GENESIS, ALICE, BOB, CAROL, STANDBY, NODE_KEY])
    yield make


@pytest.fixture
def net(make_net: Any) -> PocaNet:
    return make_net()


def run_compute_job(net: PocaNet, worker: PrivateKey, other: PrivateKey) -> None:
    """``worker`` earns verified fuel: a real wordcount job run on two providers."""
    net.block(*(net.sign(k, RegisterProvider(10**9, 10 * HPC)) for k in (worker, other)))
    module = (EXAMPLES / "wordcount.wasm").read_bytes()
    tasks = tuple(b"the quick brown fox jumps " * 40 for _ in range(4))
    receipt = net.ok(REQUESTER, PostJob(module, tasks, 1_000_000, 3, 5, 2, b""))
    (event,) = [e.to_json() for e in receipt.events if e.kind == "compute_job_post"]
    job = int(event["attributes"]["job"])
    runner = TaskRunner()
    results: dict[Any, Any] = {}
    for _ in range(30):
        raws = []
        for k in (worker, other):
            for a in net.read(assignments, k.address):
                if a.action == "commit":
                    res = runner.run(net.read(get_module, a.module_hash), a.input, fuel=a.fuel)
                    results[(k.address, a.job, a.task)] = res
                    raws.append(net.sign(k, CommitResult(a.job, a.task, commitment(
                        res.output, res.error, res.fuel_used, k.address, a.salt))))
                elif a.action == "reveal":
                    res = results[(k.address, a.job, a.task)]
                    raws.append(net.sign(k, RevealResult(
                        a.job, a.task, output_digest(res.output, a.salt), res.error,
                        res.fuel_used)))
        net.block(*raws)
        if net.read(job_view, job).status == "done":
            return
    raise AssertionError("the job did not finish")


# --- genesis ---------------------------------------------------------------------------------


def test_genesis_validators_are_directors_from_height_one_with_their_stake_locked(
        net: PocaNet) -> None:
    assert net.set_keys(1) == sorted(k.public_key for k in GENESIS)
    assert [v.power for v in net.read(validator_set_at, 1).validators] == [10, 10, 10]
    assert net.read(get_account, MODULE_ACCOUNT).balance == 30 * HPC
    for k in GENESIS:
        c = net.cand(k)
        assert c.self_stake == 10 * HPC and c.genesis and net.tier(k) == "director"


def test_the_validators_query_lists_tier_status_power_and_stake(net: PocaNet) -> None:
    net.block()
    with net.chain.reader() as reader:
        doc = pq._validators(reader, {})
    assert doc["height"] == 1 and doc["epoch"] == 0
    row = doc["validators"][0]
    assert set(row) >= {"address", "pubkey", "moniker", "tier", "status", "power", "stake",
                        "delegated", "competence", "uptime", "missed_blocks"}
    assert {(v["tier"], v["status"], v["power"]) for v in doc["validators"]} == {
        ("director", "active", 10)}


# --- candidates, stake and bad input -----------------------------------------------------------


def test_register_binds_a_key_proven_by_its_signature_and_locks_the_stake(net: PocaNet) -> None:
    before = net.read(get_account, BOB.address).balance
    proof = NODE_KEY.sign(register_proof_bytes(net.kit.chain_id, BOB.address))
    r = net.ok(BOB, Register(NODE_KEY.public_key, 200 * HPC, "bob", proof))
    assert net.read(get_account, BOB.address).balance == before - 200 * HPC - r.fee
    assert net.cand(BOB).pubkey == NODE_KEY.public_key and net.cand(BOB).self_stake == 200 * HPC


def test_bad_registrations_are_refused_and_change_nothing(net: PocaNet) -> None:
    net.fail(CAROL, Register(NODE_KEY.public_key, 200 * HPC, "x", bytes(64)),
             "only the key's holder")
    net.fail(CAROL, Register(CAROL.public_key, 99 * HPC, "x"), "under the minimum self stake")
    net.fail(CAROL, Register(GENESIS[0].public_key, 200 * HPC, "x",
                             GENESIS[0].sign(register_proof_bytes(net.kit.chain_id,
                                                                  CAROL.address))),
             "already bound")
    net.ok(CAROL, Register(CAROL.public_key, 200 * HPC, "carol"))
    net.fail(CAROL, Register(CAROL.public_key, 200 * HPC, "carol"), "already has a candidate")
    with pytest.raises(TxError) as err:
        net.kit.check(net.chain, net.sign(ALICE, Register(ALICE.public_key, 0, "a")))
    assert err.value.code == Code.INVALID_PAYLOAD


def test_delegation_bad_input_is_refused_and_changes_nothing(net: PocaNet) -> None:
    net.fail(HOLDER, Delegate(ALICE.address, 10 * HPC), "not a registered candidate")
    net.fail(HOLDER, Delegate(GENESIS[0].address, HPC // 2), "under the minimum")
    net.fail(HOLDER, Undelegate(GENESIS[0].address, HPC), "no delegation")
    net.ok(HOLDER, Delegate(GENESIS[0].address, 5 * HPC))
    net.fail(HOLDER, Undelegate(GENESIS[0].address, 6 * HPC), "worth")


def test_undelegated_stake_waits_the_unbonding_period_then_is_paid(net: PocaNet) -> None:
    net.ok(HOLDER, Delegate(GENESIS[0].address, 5 * HPC))
    assert net.cand(GENESIS[0]).delegated == 5 * HPC
    start = net.read(get_account, HOLDER.address).balance
    r = net.ok(HOLDER, Undelegate(GENESIS[0].address, 5 * HPC))
    done = net.chain.height + 20
    assert net.cand(GENESIS[0]).delegated == 0
    net.until(done - 1)
    assert net.read(get_account, HOLDER.address).balance == start - r.fee
    net.block()
    assert net.read(get_account, HOLDER.address).balance == start - r.fee + 5 * HPC


# --- tiers by competence and votes ---------------------------------------------------------------


def test_a_candidate_with_the_most_votes_but_no_competence_never_becomes_a_director(
        net: PocaNet) -> None:
    net.ok(ALICE, Register(ALICE.public_key, 5_000 * HPC, "rich"))
    for _ in range(3 * EPOCH):
        net.block(*net.attest(ALICE)) if net.chain.height % 2 == 0 else net.block()
    c = net.cand(ALICE)
    assert c.uptime_bps >= 5_000 and c.competence == 0
    assert net.tier(ALICE) == "ordinary" and ALICE.public_key not in net.set_keys()


def test_a_competent_candidate_with_enough_votes_becomes_a_director_at_the_next_epoch(
        net: PocaNet) -> None:
    run_compute_job(net, BOB, CAROL)
    net.ok(BOB, Register(BOB.public_key, 200 * HPC, "bob"))
    net.until(EPOCH * (net.chain.height // EPOCH + 1))  # a fresh epoch: attest through it
    boundary = net.chain.height + EPOCH - 1  # the last height of this epoch
    while net.chain.height < boundary - 1:
        net.block(*net.attest(BOB)) if net.chain.height % 2 == 0 else net.block()
    assert BOB.public_key not in net.set_keys()
    net.block()  # the epoch's last height: ranked, the set from h+2
    assert net.cand(BOB).competence > 0 and net.tier(BOB) == "director"
    assert BOB.public_key not in net.set_keys(boundary + 1)
    assert net.set_keys(boundary + 2)[0] == BOB.public_key  # most power: first in the set
    assert len(net.set_keys(boundary + 2)) == 3  # a genesis director stepped down to standby
    assert sum(net.tier(k) == "standby" for k in GENESIS) == 1


def test_a_delegation_changes_the_order_at_the_next_epoch(net: PocaNet) -> None:
    last = sorted(GENESIS, key=lambda k: k.public_key)[-1]
    net.ok(HOLDER, Delegate(last.address, 50 * HPC))
    assert net.set_keys()[0] != last.public_key  # not before the epoch
    net.until(EPOCH - 1)
    assert net.set_keys()[0] == last.public_key
    assert net.read(validator_set_at, EPOCH + 1).validators[0].power == 60


# --- downtime, takeover, unjail ----------------------------------------------------------------


def register_standby(net: PocaNet) -> None:
    """A standby signer: STANDBY, ranked after the three genesis directors (bootstrap keeps
    the genesis ones qualified; STANDBY qualifies on competence and attestations)."""
    run_compute_job(net, STANDBY, CAROL)
    net.ok(STANDBY, Register(STANDBY.public_key, 100 * HPC, "standby"))
    net.until(EPOCH * (net.chain.height // EPOCH + 1))
    while net.tier(STANDBY) != "director" and net.read(get_ranking).epoch < 3:
        net.block(*net.attest(STANDBY)) if net.chain.height % 2 == 0 else net.block()


def test_a_silent_director_is_jailed_slashed_and_the_standby_signs_from_two_heights_later(
        make_net: Any) -> None:
    net = make_net(poca_max_directors=2)
    register_standby(net)
    # STANDBY (100 HPC) leads; the two genesis directors follow; one genesis is standby
    directors = net.read(get_ranking).directors
    silent = next(k for k in GENESIS if k.address in directors)
    first = net.read(get_ranking).standbys[0]  # the best standby takes the seat
    waiting = next(k for k in GENESIS if k.address == first)
    net.until(net.chain.height + 2)
    stake = net.cand(silent).self_stake
    net.down = {silent.public_key}
    while net.cand(silent).status == 0:
        net.block()
    h = net.chain.height
    assert h <= (EPOCH * (h // EPOCH)) + 12  # within the window, not at an epoch
    c = net.cand(silent)
    assert (c.status, c.jailed_until) == (1, h + 5)
    assert c.self_stake == stake - stake * 10 // 10_000
    assert net.read(community_pool) == stake * 10 // 10_000
    assert silent.public_key in net.set_keys(h + 1)
    assert silent.public_key not in net.set_keys(h + 2)
    assert waiting.public_key in net.set_keys(h + 2)
    # the jailed one cannot come back early, then unjails and takes its seat at the epoch
    net.fail(silent, Unjail(), "jailed until")
    net.down = set()
    net.until(h + 5)
    net.ok(silent, Unjail())
    net.fail(silent, Unjail(), "not jailed")
    net.until(EPOCH * (net.chain.height // EPOCH + 1) + EPOCH - 1)
    # ranked again (genesis bootstrap), but the slash left it 9 HPC of power: a standby
    assert net.tier(silent) == "standby" and silent.public_key not in net.set_keys()
    net.ok(HOLDER, Delegate(silent.address, 2 * HPC))  # ranks above the one that replaced it
    net.until(EPOCH * (net.chain.height // EPOCH + 1) + EPOCH - 1)
    assert net.tier(silent) == "director" and silent.public_key in net.set_keys()
    assert net.tier(waiting) == "standby"


def test_evidence_of_a_double_sign_slashes_five_percent_and_tombstones_for_good(
        net: PocaNet) -> None:
    net.ok(HOLDER, Delegate(GENESIS[1].address, 20 * HPC))
    net.ok(HOLDER, Undelegate(GENESIS[1].address, 10 * HPC))  # unbonding: still slashable
    bad = GENESIS[1]
    h = net.chain.height
    votes = sorted((Vote(net.kit.chain_id, h, 0, int(Step.PREVOTE), bytes([n]) * 32,
                         bad.public_key, bytes(64)).signed_by(bad) for n in (1, 2)),
                   key=lambda v: v.encode())
    ev = DuplicateVoteEvidence(*votes)
    net.block(evidence=(ev,))
    c = net.cand(bad)
    assert c.status == 2  # tombstoned
    assert c.self_stake == 10 * HPC * 95 // 100 and c.delegated == 10 * HPC * 95 // 100
    assert net.read(community_pool) == (10 + 10 + 10) * HPC * 5 // 100
    assert bad.public_key in net.set_keys(net.chain.height + 1)
    assert bad.public_key not in net.set_keys(net.chain.height + 2)
    net.until(3 * EPOCH)
    assert bad.public_key not in net.set_keys() and net.tier(bad) == "ordinary"
    net.fail(HOLDER, Delegate(bad.address, 5 * HPC), "tombstoned")


def test_evidence_for_a_key_that_did_not_sign_that_height_is_ignored(net: PocaNet) -> None:
    h = net.chain.height + 1
    votes = sorted((Vote(net.kit.chain_id, h, 0, int(Step.PREVOTE), bytes([n]) * 32,
                         ALICE.public_key, bytes(64)).signed_by(ALICE) for n in (1, 2)),
                   key=lambda v: v.encode())
    before = net.poca_state()
    net.block(evidence=(DuplicateVoteEvidence(*votes),))
    assert net.poca_state() == before


# --- elimination and admission -----------------------------------------------------------------


def test_an_elimination_with_more_than_two_thirds_removes_and_bars_the_target(
        net: PocaNet) -> None:
    g0, g1, g2 = sorted(GENESIS, key=lambda k: k.public_key)
    net.ok(g0, Eliminate(g2.address, "never upgrades"))
    net.fail(g0, VoteEliminate(g2.address), "already voted")
    net.fail(HOLDER, VoteEliminate(g2.address), "only a director")
    assert net.cand(g2).status == 0  # 10 of 30: not yet
    net.ok(g1, VoteEliminate(g2.address))  # 20 of 30 is exactly 2/3: not more
    assert net.cand(g2).status == 0
    net.ok(g2, VoteEliminate(g2.address))  # 30 of 30
    h = net.chain.height
    assert net.cand(g2).status == 3
    assert g2.public_key not in net.set_keys(h + 2)
    net.until(2 * EPOCH)
    assert g2.public_key not in net.set_keys()  # barred for two epochs
    net.until(4 * EPOCH)
    assert g2.public_key in net.set_keys()


def test_an_elimination_without_two_thirds_lapses_after_its_window(net: PocaNet) -> None:
    g0, g1, g2 = sorted(GENESIS, key=lambda k: k.public_key)
    net.ok(g0, Eliminate(g2.address, "slow"))
    net.fail(g0, Eliminate(g2.address, "again"), "already open")
    net.until(net.chain.height + 11)
    net.fail(g1, VoteEliminate(g2.address), "no elimination")
    assert net.cand(g2).status == 0 and g2.public_key in net.set_keys()


def test_in_approval_mode_a_candidate_ranks_only_after_half_the_directors_approve(
        make_net: Any) -> None:
    net = make_net(poca_signer_admission=1, poca_max_directors=4)
    run_compute_job(net, BOB, CAROL)
    net.ok(BOB, Register(BOB.public_key, 200 * HPC, "bob"))
    net.fail(HOLDER, ApproveCandidate(BOB.address), "only a director")
    g0, g1, _ = GENESIS
    net.ok(g0, ApproveCandidate(BOB.address))
    net.fail(g0, ApproveCandidate(BOB.address), "already approved")
    assert not net.cand(BOB).approved  # 10 of 30
    for _ in range(2 * EPOCH):
        net.block(*net.attest(BOB)) if net.chain.height % 2 == 0 else net.block()
    assert BOB.public_key not in net.set_keys()
    net.ok(g1, ApproveCandidate(BOB.address))  # 20 of 30 > 1/2
    assert net.cand(BOB).approved
    net.until(EPOCH * (net.chain.height // EPOCH + 1))
    for _ in range(EPOCH):
        net.block(*net.attest(BOB)) if net.chain.height % 2 == 0 else net.block()
    assert BOB.public_key in net.set_keys()


def test_approving_in_open_mode_is_refused(net: PocaNet) -> None:
    net.fail(GENESIS[0], ApproveCandidate(ALICE.address), "admission is open")


# --- attacks -------------------------------------------------------------------------------


def test_attestations_are_refused_more_often_than_the_interval_or_for_old_heights(
        net: PocaNet) -> None:
    net.ok(ALICE, Register(ALICE.public_key, 200 * HPC, "a"))
    net.ok(ALICE, Attest(net.chain.height + 1))
    net.fail(ALICE, Attest(net.chain.height + 1), "next is accepted from")
    net.until(net.chain.height + 3)
    net.fail(ALICE, Attest(net.chain.height - 2), "not recent")
    net.fail(HOLDER, Attest(net.chain.height + 1), "not a registered candidate")


def test_unregistering_cannot_escape_a_double_sign_slash(net: PocaNet) -> None:
    bad = GENESIS[0]
    h = net.chain.height + 1
    votes = sorted((Vote(net.kit.chain_id, h, 0, int(Step.PREVOTE), bytes([n]) * 32,
                         bad.public_key, bytes(64)).signed_by(bad) for n in (1, 2)),
                   key=lambda v: v.encode())
    net.block()
    net.ok(bad, Unregister())  # leaves after the offence: its unbonding stake is slashed
    net.block(evidence=(DuplicateVoteEvidence(*votes),))
    assert net.read(community_pool) == 10 * HPC * 5 // 100
    net.until(net.chain.height + 25)
    assert net.read(get_account, bad.address).balance < 100_000 * HPC + 10 * HPC * 95 // 100


def test_end_block_writes_nothing_for_directors_that_sign(make_net: Any) -> None:
    net = make_net(poca_max_directors=3)
    net.until(3)
    before = net.poca_state()
    net.block()
    assert net.poca_state() == before


def test_two_chains_fed_the_same_blocks_agree_on_state_and_sets_at_every_height(
        make_net: Any, chainkit: ChainKit) -> None:
    net = make_net("a", poca_max_directors=2)
    register_standby(net)
    net.ok(HOLDER, Delegate(GENESIS[0].address, 7 * HPC))
    net.down = {GENESIS[0].public_key}
    net.until(net.chain.height + 8)
    other = open_chain(chainkit.root / "b", net.chain.genesis)
    try:
        for block in net.blocks:
            other.apply_block(block, chainkit.checked_of_block(other, block.txs))
            h = block.header.height
            with other.reader() as r1, net.chain.reader() as r2:  # sets keep their history
                assert validator_set_at(r1, h + 2) == validator_set_at(r2, h + 2)
            assert other.state_root == block.header.state_root
        assert net.read(get_ranking).epoch >= 3 and net.cand(GENESIS[0]).status == 1
    finally:
        other.close()


def test_ninety_nine_directors_cost_one_write_per_block_only_for_the_silent_one(
        chainkit: ChainKit) -> None:
    keys = [key(i) for i in range(1, 100)]
    gen = Genesis(ChainKit.chain_id, ChainKit.genesis_time_ms,
                  params(poca_max_directors=99),
                  (GenesisAccount(HOLDER.address, 1000 * HPC),),
                  tuple(GenesisValidator(k.public_key, 10, "") for k in keys))
    chain = chainkit.open(gen, chainkit.root / "big")
    net = PocaNet(chainkit, chain, keys)
    assert len(net.set_keys(1)) == 99
    net.until(2)
    before = net.poca_state()
    net.block()
    assert net.poca_state() == before  # 99 signatures judged, nothing written
    net.down = {keys[5].public_key}
    net.block()
    changed = {k for k, v in net.poca_state()} ^ {k for k, v in before}
    assert len(changed) == 1  # one silent director: one liveness record written


# --- params changed by governance while the module runs --------------------------------------


def pass_params(net: PocaNet, *changes: tuple[str, str],
                voters: tuple[PrivateKey, ...] = tuple(GENESIS)) -> None:
    """``voters`` (every genesis director) vote yes on ``changes``: they apply from the
    block after the tally (gov in 5-block periods, ``GOV_FAST``)."""
    from smartchain.modules.gov.types import NO_ADDRESS, PARAM, YES, ParamChange, Propose
    from smartchain.modules.gov.types import Vote as GovVote
    net.ok(HOLDER, Propose(PARAM, "t", "", tuple(ParamChange(k, v) for k, v in changes),
                           NO_ADDRESS, 0, 10 * HPC))
    net.block(*(net.sign(k, GovVote(1, YES)) for k in voters))
    net.until(net.chain.height + 6)
    for name, value in changes:
        assert str(getattr(net.chain.params, name)).lower() == value, name


GOV_FAST = dict(gov_min_deposit=10 * HPC, gov_min_initial_deposit=10 * HPC,
                gov_deposit_blocks=5, gov_voting_blocks=5)


@pytest.mark.parametrize("window", ["40", "3"])
def test_a_downtime_window_changed_while_a_director_has_misses_keeps_the_chain_going(
        make_net: Any, window: str) -> None:
    """A director with a liveness record when governance changes ``poca_downtime_window``:
    the record fits the new window (a wider one used to index past its bitmap in end_block,
    halting every node; a narrower one kept misses no slot would ever clear)."""
    net = make_net(poca_epoch_blocks=1000, poca_downtime_missed=8, **GOV_FAST)
    net.until(2)
    net.down = {GENESIS[2].public_key}
    net.block(), net.block()
    net.down = set()
    pass_params(net, ("poca_downtime_window", window), ("poca_downtime_missed", "3"))
    net.until(net.chain.height + 45)  # it signs every block from now on
    assert net.cand(GENESIS[2]).status == 0
    live = net.read(get_liveness, GENESIS[2].public_key)
    assert live is None or live.missed == 0  # a whole window signed: no miss is left


def test_evidence_in_the_last_block_it_is_accepted_still_slashes_the_stake_leaving_then(
        net: PocaNet) -> None:
    """Evidence of height h is accepted up to h + poca_unbonding_blocks, and stake that
    left at h completes then: end_block used to pay the unbonding before it judged the
    evidence, so an offender who unregistered in the block it double-signed kept it all
    when the evidence came in that last block."""
    bad = GENESIS[0]
    h = net.chain.height + 1
    votes = sorted((Vote(net.kit.chain_id, h, 0, int(Step.PREVOTE), bytes([n]) * 32,
                         bad.public_key, bytes(64)).signed_by(bad) for n in (1, 2)),
                   key=lambda v: v.encode())
    balance = net.read(get_account, bad.address).balance
    r = net.send(bad, Unregister())  # block h: the unbonding completes at h + 20
    assert net.chain.height == h
    net.until(h + 19)
    net.block(evidence=(DuplicateVoteEvidence(*votes),))  # block h + 20: still accepted
    assert net.cand(bad).status == 2  # tombstoned: the evidence counted
    assert net.read(community_pool) == 10 * HPC * 5 // 100
    assert net.read(get_account, bad.address).balance == balance - r.fee + 10 * HPC * 95 // 100


def test_a_candidate_waiting_for_approval_ranks_once_governance_opens_admission(
        make_net: Any) -> None:
    """Registered in approval mode, not yet approved, when governance sets admission open:
    approvals are refused from then on, and it used to stay unapproved for good (nor can its
    key or account register again)."""
    net = make_net(poca_signer_admission=1, poca_max_directors=4, poca_min_competence=0,
                   poca_min_uptime_bps=0, **GOV_FAST)
    net.ok(ALICE, Register(ALICE.public_key, 200 * HPC, "alice"))
    assert not net.cand(ALICE).approved
    pass_params(net, ("poca_signer_admission", "0"), voters=(*GENESIS, ALICE))
    net.fail(GENESIS[0], ApproveCandidate(ALICE.address), "admission is open")
    net.until(EPOCH * (net.chain.height // EPOCH + 2))
    assert net.tier(ALICE) == "director" and ALICE.public_key in net.set_keys()


def test_one_delegator_filling_the_unbonding_queue_cannot_lock_the_others_in(
        make_net: Any) -> None:
    """``poca_max_unbonding`` counted every delegator's entries of a candidate together:
    one holder undelegating 1 HPC at a time filled it, and no other delegator (nor the
    candidate itself) could leave until it let them, which it need never do. The bound
    is per delegator of a candidate."""
    net = make_net(poca_max_unbonding=3, poca_min_delegation=HPC)
    target = GENESIS[0]
    net.ok(BOB, Delegate(target.address, 5 * HPC))
    net.ok(HOLDER, Delegate(target.address, 4 * HPC))
    for _ in range(3):
        net.ok(HOLDER, Undelegate(target.address, HPC))
    net.fail(HOLDER, Undelegate(target.address, HPC), "unbonding entries waiting")
    net.ok(BOB, Undelegate(target.address, 2 * HPC))
    net.ok(target, Unregister())
    net.until(net.chain.height + 21)  # every entry paid: the holder may leave again
    net.ok(HOLDER, Undelegate(target.address, HPC))
