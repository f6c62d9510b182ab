"""The consensus engine while the signer set changes from one height to the next.

The staking module decides a new set in a block and schedules it two heights later; the
engine reads the set of each height from its application and must follow: a node whose key
leaves the set stops signing at that height, one whose key enters starts, voting power and
proposer turns follow the new powers, and every commit is checked against the set of its
own height. Same simulated network as ``test_consensus.py`` (virtual clock, seeded delays);
every node has its key and its durable signer, as real nodes do.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from test_consensus import (
    CHAIN,
    KEYS,
    FakeApp,
    Network,
    lone_engine,
    make_valset,
    proposer_of,
    vote,
)

from smartchain.consensus import (
    ConsensusEngine,
    Decide,
    DurableSigner,
    InvalidMessage,
    Validator,
    ValidatorSet,
)
from smartchain.crypto.hashing import h256
from smartchain.types.consensus import NIL, Commit, Proposal, ProposalMessage, Step, Vote

# The "module": sees each decided block and its commit, may schedule a set from h + 2.
Decider = Callable[["ChangingNetwork", int, Commit], dict[int, int] | None]


def members(powers: dict[int, int], start: int) -> ValidatorSet:
    """The set of keys ``powers`` (key index -> power), in key order, from ``start``."""
    return ValidatorSet([Validator(KEYS[i].public_key, p, f"v{i}")
                         for i, p in sorted(powers.items())], start)


class SetsApp(FakeApp):
    """The fake chain, whose signer set is the network's schedule at each height."""

    def __init__(self, name: str, net: ChangingNetwork) -> None:
        super().__init__(name, net.set_at(1))
        self.net = net

    def validators_at(self, height: int) -> ValidatorSet:
        return self.net.set_at(height)


class ChangingNetwork(Network):
    """Nodes 0..nodes-1, each with key i and its signer; the set of height h is the last
    one scheduled from h or before. ``decider`` plays the staking module: called once per
    decided height with its commit, it may return the powers of the set from h + 2."""

    def __init__(self, root: Path, first: dict[int, int], nodes: int, *,
                 decider: Decider | None = None, **kwargs: object) -> None:
        self.schedule: dict[int, ValidatorSet] = {1: members(first, 1)}
        self.decider = decider
        self.sent: list[tuple[int, Vote | ProposalMessage]] = []
        self.verified: dict[int, ValidatorSet] = {}  # height -> the set its commit passed
        super().__init__(root, powers=(1,) * len(first), observers=nodes - len(first),
                         **kwargs)  # type: ignore[arg-type]

    def set_at(self, height: int) -> ValidatorSet:
        return self.schedule[max(s for s in self.schedule if s <= height)]

    def schedule_from(self, start: int, powers: dict[int, int]) -> None:
        assert start > max(self.schedule), "sets are scheduled in height order"
        self.schedule[start] = members(powers, start)

    def _new_engine(self, i: int) -> ConsensusEngine:
        signer = DurableSigner(KEYS[i], self.root / f"node{i}" / "sign_state")
        return ConsensusEngine(CHAIN, SetsApp(f"v{i}", self), signer, self.config)

    def _record(self, i: int, d: Decide) -> None:
        assert d.height not in self.decisions[i], "decided a height twice"
        valset = self.set_at(d.height)
        valset.verify_commit(CHAIN, d.commit, h256(d.block), d.height)
        self.verified[d.height] = valset
        first = not any(d.height in dec for dec in self.decisions)
        self.decisions[i][d.height] = d.block
        self.commits[i][d.height] = d.commit
        if first and self.decider is not None:
            powers = self.decider(self, d.height, d.commit)
            if powers is not None:
                self.schedule_from(d.height + 2, powers)
        self._push(0, "start", i, d.height + 1)

    def _send(self, i: int, msg: Vote | ProposalMessage) -> None:  # type: ignore[override]
        if i not in self.down:
            self.sent.append((i, msg))
        super()._send(i, msg)

    # -- what a node did ----------------------------------------------------------------

    def signed_heights(self, i: int) -> set[int]:
        """Heights at which node ``i`` sent a vote or a proposal under its own key."""
        key = KEYS[i].public_key
        out = set()
        for sender, msg in self.sent:
            if sender != i:
                continue
            if isinstance(msg, Vote) and msg.validator == key:
                out.add(msg.height)
            elif isinstance(msg, ProposalMessage) and msg.proposal.proposer == key:
                out.add(msg.proposal.height)
        return out

    def commit_signers(self, height: int) -> set[int]:
        """Key indices whose precommit is in the commit of ``height``."""
        commit = next(c[height] for c in self.commits if height in c)
        vals = self.set_at(height).validators
        keys = [k.public_key for k in KEYS]
        return {keys.index(vals[s.validator_index].public_key) for s in commit.signatures}


def test_a_leaving_member_stops_signing_and_a_joining_one_starts_at_the_change_height(
        tmp_path: Path) -> None:
    net = ChangingNetwork(tmp_path, {0: 1, 1: 1, 2: 1, 3: 1}, nodes=5)
    net.schedule_from(8, {0: 1, 1: 1, 2: 1, 4: 1})  # 3 leaves, 4 joins at height 8
    assert net.run(net.reached(16), max_ms=300_000)
    net.assert_safe()
    assert max(net.signed_heights(3)) == 7
    assert min(net.signed_heights(4)) == 8
    assert set(range(8, 17)) <= net.signed_heights(4)
    for h in range(1, 17):  # each commit passed its own height's set, with the right signers
        assert net.verified[h] == net.set_at(h)
        assert net.commit_signers(h) <= ({0, 1, 2, 3} if h < 8 else {0, 1, 2, 4})
    assert any(4 in net.commit_signers(h) for h in range(8, 17))
    assert {proposer_of(net.decisions[0][h]) for h in range(8, 17)} <= {"v0", "v1", "v2", "v4"}
    assert net.rejected == 0 and not net.evidence


def test_a_whole_new_set_takes_over_and_the_old_one_falls_silent(tmp_path: Path) -> None:
    net = ChangingNetwork(tmp_path, {0: 1, 1: 1, 2: 1, 3: 1}, nodes=8)
    net.schedule_from(6, {4: 1, 5: 1, 6: 1, 7: 1})
    assert net.run(net.reached(14), max_ms=300_000)
    net.assert_safe()
    for i in range(4):
        assert max(net.signed_heights(i)) == 5
    for i in range(4, 8):
        assert min(net.signed_heights(i)) == 6
    for h in range(6, 15):
        assert net.commit_signers(h) <= {4, 5, 6, 7}
    # the old signers are observers now: they still decide every height
    assert all(set(range(1, 15)) <= set(net.decisions[i]) for i in range(4))


def test_new_powers_decide_quorums_and_proposer_turns_from_the_change_height(
        tmp_path: Path) -> None:
    net = ChangingNetwork(tmp_path, {0: 1, 1: 1, 2: 1, 3: 1}, nodes=4)
    net.schedule_from(6, {0: 5, 1: 1, 2: 1, 3: 1})  # total 8, quorum 6: v0 + any one
    assert net.run(net.reached(8), max_ms=300_000)
    net.crash(1)
    net.crash(2)  # 2 of 4 down: a halt with equal powers, not with v0 holding 5 of 8
    top = max(net.decisions[0])
    assert net.run(net.reached(top + 10, [0, 3]), max_ms=600_000)
    net.assert_safe([0, 3])
    for h in range(top + 2, top + 11):  # (top + 1 may hold precommits sent before)
        assert net.commit_signers(h) == {0, 3}
    proposers = Counter(proposer_of(net.decisions[0][h]) for h in range(top + 1, top + 11))
    assert proposers["v0"] > proposers["v3"]  # 5 turns to 1 in the rotation


def downtime_takeover(window: int) -> Decider:
    """A tiny staking module: a director absent from the last ``window`` commits gives
    its seat to the first standby (the keys after the directors), from h + 2."""

    def decide(net: ChangingNetwork, height: int, commit: Commit) -> dict[int, int] | None:
        if height < window:
            return None
        current = net.set_at(height + 1)
        keys = [k.public_key for k in KEYS]
        seated = [keys.index(v.public_key) for v in current.validators]
        if any(s > height + 1 for s in net.schedule):  # a change already under way
            return None
        recent = range(height - window + 1, height + 1)
        absent = [i for i in seated  # in the set at each of those heights, in no commit
                  if all(net.set_at(h).index_of(KEYS[i].public_key) is not None
                         and i not in net.commit_signers(h) for h in recent)]
        standbys = [i for i in range(len(net.engines)) if i not in seated and i not in
                    net.retired]
        if not absent or not standbys:
            return None
        net.retired.add(absent[0])
        return {**{i: 1 for i in seated if i != absent[0]}, standbys[0]: 1}

    return decide


WINDOW = 6


class TakeoverNetwork(ChangingNetwork):
    retired: set[int]

    def __init__(self, root: Path, **kwargs: object) -> None:
        self.retired = set()
        super().__init__(root, {0: 1, 1: 1, 2: 1, 3: 1}, nodes=7,
                         decider=downtime_takeover(WINDOW), **kwargs)  # type: ignore[arg-type]


def test_standbys_take_the_seats_of_three_directors_killed_one_after_another(
        tmp_path: Path) -> None:
    """4 directors, 3 standbys: each killed director is replaced before the next dies, so
    the chain survives losing three of its four original signers (a static set halts at
    the second)."""
    net = TakeoverNetwork(tmp_path, sync=True)
    assert net.run(net.reached(4), max_ms=60_000)
    for victim, standby in ((3, 4), (2, 5), (1, 6)):
        net.crash(victim)
        killed_at = max(max(d, default=0) for d in net.decisions)

        def seated(s: int = standby) -> bool:
            top = max(max(d, default=0) for d in net.decisions)
            return net.set_at(top + 1).index_of(KEYS[s].public_key) is not None

        assert net.run(seated, max_ms=600_000), f"v{standby} never took v{victim}'s seat"
        took = min(s for s, vs in net.schedule.items()
                   if vs.index_of(KEYS[standby].public_key) is not None)
        assert took <= killed_at + WINDOW + 3  # the window, then the two heights ahead
        live = [i for i in range(7) if i not in net.down]
        top = max(net.decisions[0])
        assert net.run(net.reached(top + 3, live), max_ms=600_000)
    net.assert_safe()
    assert net.set_at(max(net.decisions[0]) + 1) == members({0: 1, 4: 1, 5: 1, 6: 1},
                                                            max(net.schedule))
    for s in (4, 5, 6):
        assert net.signed_heights(s)


def test_precommits_arriving_after_the_decision_join_the_last_commit(tmp_path: Path) -> None:
    """The staking module jails a director by its absences from last commits: a director
    whose precommit arrives just after the quorum must still be credited."""
    vs = make_valset()
    eng = lone_engine(1, vs, tmp_path)
    eng.start(1)
    block = b"h=1|x"
    proposal = Proposal(CHAIN, 1, 0, -1, h256(block), bytes(32), bytes(64)).signed_by(KEYS[0])
    eng.on_proposal(proposal, block)
    for i in (0, 2):
        eng.on_vote(vote(i, Step.PREVOTE, h256(block), height=1))
    out = [a for i in (0, 2) for a in eng.on_vote(vote(i, Step.PRECOMMIT, h256(block),
                                                           height=1))]
    assert [a.commit for a in out if isinstance(a, Decide)] == [eng.last_commit]
    assert [s.validator_index for s in eng.last_commit.signatures] == [0, 1, 2]
    with pytest.raises(InvalidMessage):  # a forged late precommit is still a forgery
        eng.on_vote(replace(vote(3, Step.PRECOMMIT, h256(block), height=1),
                            signature=bytes(64)))
    eng.on_vote(vote(3, Step.PRECOMMIT, NIL, height=1))  # not for the block: not counted
    eng.on_vote(vote(3, Step.PRECOMMIT, h256(block), height=1, round=1))  # another round
    assert [s.validator_index for s in eng.last_commit.signatures] == [0, 1, 2]
    eng.on_vote(vote(3, Step.PRECOMMIT, h256(block), height=1))
    eng.on_vote(vote(3, Step.PRECOMMIT, h256(block), height=1))  # a resend: once
    assert [s.validator_index for s in eng.last_commit.signatures] == [0, 1, 2, 3]
    vs.verify_commit(CHAIN, eng.last_commit, h256(block), 1)
    eng.start(2)  # still gathered once the next height runs (until our proposal is built)
    assert len(eng.last_commit.signatures) == 4
