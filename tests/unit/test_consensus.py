"""Consensus engine tests on a simulated network.

The engines are pure state machines, so a deterministic scheduler drives them: one queue of
message deliveries and timer expiries ordered by a virtual clock, random delays, loss and
reordering from a seeded RNG. The application is a tiny fake (a block is bytes naming its
height, round and proposer): these are unit tests of the engine, the real chain drives it in
the integration tests.
"""

from __future__ import annotations

import heapq
import os
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from smartchain.consensus import (
    Action,
    Broadcast,
    BuildProposal,
    ConsensusEngine,
    Decide,
    DoubleSignError,
    DurableSigner,
    EngineConfig,
    EvidenceFound,
    InvalidMessage,
    InvalidVote,
    LockRecord,
    Message,
    ScheduleTimeout,
    SignerStateError,
    SignStep,
    Timeout,
    TimeoutStep,
    ValidateBlock,
    Validator,
    ValidatorSet,
    VoteSet,
)
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.types.consensus import (
    NIL,
    Commit,
    CommitSig,
    Proposal,
    ProposalMessage,
    Step,
    Vote,
)

CHAIN = "smart-consensus-test"
KEYS = [PrivateKey.from_seed(bytes([0x40 + i]) * 32) for i in range(8)]
FAST = EngineConfig(timeout_propose_ms=1000, timeout_propose_delta_ms=500,
                    timeout_prevote_ms=500, timeout_prevote_delta_ms=250,
                    timeout_precommit_ms=500, timeout_precommit_delta_ms=250,
                    gossip_interval_ms=1000)


def make_valset(powers: tuple[int, ...] = (1, 1, 1, 1), start_height: int = 1) -> ValidatorSet:
    return ValidatorSet([Validator(KEYS[i].public_key, p, f"v{i}") for i, p in enumerate(powers)],
                        start_height)


class FakeApp:
    """Blocks are ``h=<height>|r=<round>|by=<name>``: enough to see who proposed what."""

    def __init__(self, name: str, valset: ValidatorSet) -> None:
        self.name = name
        self.valset = valset

    def propose(self, height: int, round: int) -> bytes:
        return f"h={height}|r={round}|by={self.name}".encode()

    def block_hash(self, block: bytes) -> bytes:
        return h256(block)

    def validate(self, height: int, block: bytes) -> bool:
        return block.startswith(f"h={height}|".encode())

    def validators_at(self, height: int) -> ValidatorSet:
        return self.valset


def proposer_of(block: bytes) -> str:
    return block.decode().rsplit("by=", 1)[1].split("|")[0]


@dataclass(order=True)
class _Event:
    time: int
    seq: int
    kind: str = field(compare=False)
    node: int = field(compare=False)
    payload: object = field(compare=False)
    epoch: int = field(compare=False, default=0)


Transform = Callable[[Message], list[tuple[int, Message]]]


class Network:
    """Engines 0..n-1 are the validators (key i); further nodes only observe."""

    def __init__(self, root: Path, powers: tuple[int, ...] = (1, 1, 1, 1), *, observers: int = 0,
                 seed: int = 0, delay: tuple[int, int] = (5, 50), loss: float = 0.0,
                 gst_ms: int = 0, sync: bool = False,
                 config: EngineConfig = FAST, down: tuple[int, ...] = (),
                 exec_ms: int = 1) -> None:
        """``exec_ms``: how long building or validating a block takes (off the engine)."""
        self.root = root
        self.exec_ms = exec_ms
        self.valset = make_valset(powers)
        self.n = len(powers) + observers
        self.rng = random.Random(seed)
        self.delay, self.loss, self.gst_ms = delay, loss, gst_ms
        self.sync, self.config = sync, config
        self.now = 0
        self._queue: list[_Event] = []
        self._seq = 0
        self.engines: list[ConsensusEngine] = []
        self.epochs = [0] * self.n
        self.down: set[int] = set(down)
        self.decisions: list[dict[int, bytes]] = [{} for _ in range(self.n)]
        self.commits: list[dict[int, Commit]] = [{} for _ in range(self.n)]
        self.evidence: list[tuple[int, EvidenceFound]] = []
        self.rejected = 0
        self.byzantine: dict[int, Transform] = {}
        for i in range(self.n):
            self.engines.append(self._new_engine(i))
        for i in range(self.n):
            if i not in self.down:
                self._handle(i, self.engines[i].start(1))
        if sync:
            self._push(1000, "sync", -1, None)

    # -- plumbing -----------------------------------------------------------------------

    def _new_engine(self, i: int) -> ConsensusEngine:
        signer = None
        if i < len(self.valset):
            signer = DurableSigner(KEYS[i], self.root / f"node{i}" / "sign_state")
        return ConsensusEngine(CHAIN, FakeApp(f"v{i}", self.valset), signer, self.config)

    def _push(self, delay: int, kind: str, node: int, payload: object) -> None:
        self._seq += 1
        epoch = self.epochs[node] if node >= 0 else 0
        heapq.heappush(self._queue, _Event(self.now + delay, self._seq, kind, node, payload,
                                           epoch))

    def _handle(self, i: int, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Broadcast):
                self._send(i, a.message)
            elif isinstance(a, ScheduleTimeout):
                self._push(a.delay_ms, "timeout", i, a.timeout)
            elif isinstance(a, Decide):
                self._record(i, a)
            elif isinstance(a, EvidenceFound):
                self.evidence.append((i, a))
            elif isinstance(a, (BuildProposal, ValidateBlock)):
                self._push(self.exec_ms, "app", i, a)  # the chain works off the engine
            else:  # pragma: no cover
                raise AssertionError(f"unknown action {a!r}")

    def _record(self, i: int, d: Decide) -> None:
        assert d.height not in self.decisions[i], "decided a height twice"
        self.valset.verify_commit(CHAIN, d.commit, h256(d.block), d.height)
        self.decisions[i][d.height] = d.block
        self.commits[i][d.height] = d.commit
        self._push(0, "start", i, d.height + 1)  # the chain goes on past any test's target

    def _send(self, i: int, msg: Message) -> None:
        if i in self.down:
            return
        transform = self.byzantine.get(i)
        if transform is not None:
            outgoing = transform(msg)
        else:
            outgoing = [(j, msg) for j in range(self.n) if j != i]
        for j, m in outgoing:
            if self.now < self.gst_ms and self.rng.random() < self.loss:
                continue
            self._push(self.rng.randint(*self.delay), "deliver", j, m)

    def _sync_tick(self) -> None:
        """Block sync stand-in: a node two or more heights behind fetches a block+commit."""
        live = [i for i in range(self.n) if i not in self.down]
        for i in live:
            eng = self.engines[i]
            h = eng.height
            if eng.decided:
                continue
            for j in live:
                if h in self.commits[j] and h + 1 in self.commits[j]:
                    self._handle(i, eng.on_decided_block(h, self.decisions[j][h],
                                                         self.commits[j][h]))
                    break
        self._push(1000, "sync", -1, None)

    def step(self) -> bool:
        if not self._queue:
            return False
        ev = heapq.heappop(self._queue)
        self.now = ev.time
        if ev.kind == "sync":
            self._sync_tick()
            return True
        i = ev.node
        if i in self.down or (ev.epoch != self.epochs[i] and ev.kind != "deliver"):
            return True
        eng = self.engines[i]
        if ev.kind == "deliver":
            assert isinstance(ev.payload, (Vote, ProposalMessage))
            try:
                actions = eng.on_message(ev.payload)
            except InvalidMessage:
                self.rejected += 1
                return True
        elif ev.kind == "timeout":
            assert isinstance(ev.payload, Timeout)
            actions = eng.on_timeout(ev.payload)
        elif ev.kind == "app":
            actions = self._answer(eng, ev.payload)
        else:  # start
            assert isinstance(ev.payload, int)
            actions = eng.start(ev.payload)
        self._handle(i, actions)
        return True

    def _answer(self, eng: ConsensusEngine, request: object) -> list[Action]:
        app = eng.app  # type: ignore[attr-defined]
        assert isinstance(app, FakeApp)
        if isinstance(request, BuildProposal):
            return eng.on_block_built(request.height, request.round,
                                      app.propose(request.height, request.round))
        assert isinstance(request, ValidateBlock)
        return eng.on_block_validated(request.height, request.block_hash,
                                      app.validate(request.height, request.block))

    def run(self, until: Callable[[], bool], max_ms: int) -> bool:
        deadline = self.now + max_ms
        while not until():
            if not self._queue or self._queue[0].time > deadline:
                return until()
            self.step()
        return True

    def run_for(self, ms: int) -> None:
        deadline = self.now + ms
        while self._queue and self._queue[0].time <= deadline:
            self.step()
        self.now = deadline

    # -- faults -------------------------------------------------------------------------

    def crash(self, i: int) -> None:
        self.down.add(i)
        self.epochs[i] += 1

    def drop_in_flight(self) -> None:
        self._queue = [e for e in self._queue if e.kind != "deliver"]
        heapq.heapify(self._queue)

    def restart(self, i: int) -> None:
        """A new process: fresh engine, signer reloaded from its file, next undecided height."""
        self.down.discard(i)
        self.epochs[i] += 1
        self.engines[i] = self._new_engine(i)
        top = max(self.decisions[i], default=0)
        self._handle(i, self.engines[i].start(top + 1, self.commits[i].get(top)))

    # -- checks -------------------------------------------------------------------------

    def reached(self, height: int, nodes: list[int] | None = None) -> Callable[[], bool]:
        nodes = [i for i in range(self.n) if i not in self.down] if nodes is None else nodes
        return lambda: all(height in self.decisions[i] for i in nodes)

    def assert_safe(self, nodes: list[int] | None = None) -> None:
        """No two nodes decided different blocks at one height."""
        nodes = list(range(self.n)) if nodes is None else nodes
        seen: dict[int, bytes] = {}
        for i in nodes:
            for h, block in self.decisions[i].items():
                assert seen.setdefault(h, block) == block, f"fork at height {h}"


def split_halves(b: int, n: int) -> tuple[list[int], list[int]]:
    others = [j for j in range(n) if j != b]
    return others[: len(others) // 2], others[len(others) // 2:]


def equivocating_proposer(b: int, n: int) -> Transform:
    """Proposes block X to one half and X' to the other, and votes along with each half."""
    half_a, half_b = split_halves(b, n)
    alt: dict[bytes, bytes] = {}

    def transform(msg: Message) -> list[tuple[int, Message]]:
        if isinstance(msg, ProposalMessage):
            block2 = msg.block + b"|evil"
            alt[msg.proposal.block_hash] = h256(block2)
            p2 = replace(msg.proposal, block_hash=h256(block2)).signed_by(KEYS[b])
            return [(j, msg) for j in half_a] + [(j, ProposalMessage(p2, block2)) for j in half_b]
        if msg.block_hash in alt:
            v2 = replace(msg, block_hash=alt[msg.block_hash]).signed_by(KEYS[b])
            return [(j, msg) for j in half_a] + [(j, v2) for j in half_b]
        return [(j, msg) for j in range(n) if j != b]

    return transform


def equivocating_voter(b: int, n: int, split: bool = True) -> Transform:
    """Every vote also goes out contradicted: to the other half, or (split=False) to all."""
    half_a, half_b = split_halves(b, n)

    def transform(msg: Message) -> list[tuple[int, Message]]:
        everyone = [j for j in range(n) if j != b]
        if isinstance(msg, ProposalMessage):
            return [(j, msg) for j in everyone]
        other = h256(b"evil" + msg.encode()) if msg.block_hash == NIL else NIL
        v2 = replace(msg, block_hash=other).signed_by(KEYS[b])
        if split:
            return [(j, msg) for j in half_a] + [(j, v2) for j in half_b]
        return [(j, msg) for j in everyone] + [(j, v2) for j in everyone]

    return transform


# == validator set ==========================================================================


def _reference_proposers(powers: list[int], steps: int) -> list[int]:
    """CometBFT's algorithm written out naively, no caching."""
    total = sum(powers)
    prios = [0] * len(powers)
    out = []
    for _ in range(steps):
        diff = max(prios) - min(prios)
        if diff > 2 * total:
            ratio = -(-diff // (2 * total))
            prios = [abs(p) // ratio * (1 if p >= 0 else -1) for p in prios]  # Go's "/"
        avg = sum(prios) // len(prios)
        prios = [p - avg + w for p, w in zip(prios, powers, strict=True)]
        best = max(range(len(prios)), key=lambda i: (prios[i], -i))
        prios[best] -= total
        out.append(best)
    return out


def test_weighted_round_robin_twice_the_power_twice_the_turns() -> None:
    vs = make_valset((2, 1, 1, 1))
    counts = Counter(vs.proposer_index(h, 0) for h in range(1, 501))
    assert counts == {0: 200, 1: 100, 2: 100, 3: 100}
    # Smooth, not bursty: every window of 5 turns gives the heavy validator exactly 2.
    seq = [vs.proposer_index(h, 0) for h in range(1, 51)]
    assert all(seq[k: k + 5].count(0) == 2 for k in range(0, 50, 5))


def test_proposer_is_a_pure_function_of_set_height_round() -> None:
    rng = random.Random(7)
    for _ in range(8):
        powers = [rng.randint(1, 50) for _ in range(rng.randint(1, 7))]
        ref = _reference_proposers(powers, 300)
        a = make_valset(tuple(powers))
        queries = [(h, r) for h in range(1, 150) for r in range(0, 5)]
        rng.shuffle(queries)
        for h, r in queries:  # queried in any order, the cached set gives the same answers
            assert a.proposer_index(h, r) == ref[h - 1 + r]
        b = make_valset(tuple(powers))
        assert [b.proposer_index(h, 0) for h in range(1, 300)] == ref[:299]


def test_proposer_rotation_far_and_back_and_with_start_height() -> None:
    vs = make_valset((5, 3, 1))
    ref = _reference_proposers([5, 3, 1], 5000)
    assert vs.proposer_index(4001, 0) == ref[4000]
    assert vs.proposer_index(17, 2) == ref[18]  # back below a checkpoint
    later = make_valset((5, 3, 1), start_height=100)
    assert later.proposer_index(100, 0) == ref[0] and later.proposer_index(105, 3) == ref[8]
    with pytest.raises(ValueError):
        later.proposer_index(99, 0)


def test_extreme_powers_and_priority_rescaling() -> None:
    powers = [10**15, 1, 7]
    vs = make_valset(tuple(powers))
    ref = _reference_proposers(powers, 200)
    assert [vs.proposer_index(h, 0) for h in range(1, 201)] == ref
    # From the all-zero start priorities never spread beyond 2 * total; CometBFT's rescaling
    # (Go's truncating division) only acts on wider ones, as a set with carried-over
    # priorities could have.
    eq = make_valset((1, 1, 1))
    assert eq._step((10**6, -(10**6) - 1, 1)) == ((0, -1, 1), 0)  # floor: (1, -1, 2)


def test_validator_set_identity_and_thresholds() -> None:
    vs = make_valset((1, 1, 1, 1))
    assert (vs.total_power, vs.quorum, vs.skip_power) == (4, 3, 2)
    assert make_valset((2, 1, 1, 1)).quorum == 4
    assert make_valset((1, 1, 1)).quorum == 3
    back = ValidatorSet.decode(vs.encode())
    assert back == vs and back.hash() == vs.hash()
    assert make_valset((1, 1, 1, 2)).hash() != vs.hash()
    assert vs.index_of(KEYS[2].public_key) == 2 and vs.index_of(KEYS[7].public_key) is None
    assert vs.get(1).name == "v1"
    with pytest.raises(IndexError):
        vs.get(4)
    with pytest.raises(ValueError):
        ValidatorSet([])
    with pytest.raises(ValueError):
        ValidatorSet([Validator(KEYS[0].public_key, 0, "zero")])
    with pytest.raises(ValueError):
        ValidatorSet([Validator(KEYS[0].public_key, 1, "a"), Validator(KEYS[0].public_key, 1, "b")])


# == votes and commits ======================================================================


def vote(i: int, step: Step, block_hash: bytes, height: int = 3, round: int = 0) -> Vote:
    return Vote(CHAIN, height, round, int(step), block_hash, KEYS[i].public_key,
                bytes(64)).signed_by(KEYS[i])


BLOCK = h256(b"block")


def real_commit(signers: range = range(4)) -> Commit:
    vs = VoteSet(CHAIN, 3, 0, Step.PRECOMMIT, make_valset())
    for i in signers:
        vs.add(vote(i, Step.PRECOMMIT, BLOCK))
    return vs.make_commit()


def test_vote_set_counts_majorities_and_records_evidence() -> None:
    vs = VoteSet(CHAIN, 3, 0, Step.PREVOTE, make_valset())
    assert vs.add(vote(0, Step.PREVOTE, BLOCK))
    assert not vs.add(vote(0, Step.PREVOTE, BLOCK))  # exact duplicate
    assert vs.add(vote(1, Step.PREVOTE, NIL))
    assert vs.two_thirds_majority() is None and not vs.has_two_thirds_any()
    assert vs.add(vote(2, Step.PREVOTE, BLOCK))
    assert vs.has_two_thirds_any() and vs.two_thirds_majority() is None
    assert (vs.power_for(BLOCK), vs.power_for(NIL)) == (2, 1)
    assert not vs.add(vote(1, Step.PREVOTE, BLOCK))  # conflicts with its nil vote
    assert len(vs.evidence) == 1
    ev = vs.evidence[0]
    assert ev.is_valid(CHAIN) and ev.vote_a.encode() < ev.vote_b.encode()
    assert vs.power_for(BLOCK) == 2  # the first vote stands
    assert vs.add(vote(3, Step.PREVOTE, BLOCK))
    assert vs.two_thirds_majority() == BLOCK
    with pytest.raises(ValueError):
        vs.make_commit()  # prevotes make no commit
    with pytest.raises(InvalidVote):
        vs.add(vote(4, Step.PREVOTE, BLOCK))  # not a member
    with pytest.raises(InvalidVote):
        vs.add(vote(0, Step.PREVOTE, BLOCK, round=1))
    forged = replace(vote(1, Step.PREVOTE, BLOCK, height=3), signature=bytes(64))
    fresh = VoteSet(CHAIN, 3, 0, Step.PREVOTE, make_valset())
    with pytest.raises(InvalidVote):
        fresh.add(forged)
    assert len(fresh) == 0


def test_vote_set_nil_majority_and_commit() -> None:
    vs = VoteSet(CHAIN, 3, 0, Step.PRECOMMIT, make_valset())
    for i in range(3):
        vs.add(vote(i, Step.PRECOMMIT, NIL))
    assert vs.two_thirds_majority() == NIL
    with pytest.raises(ValueError):
        vs.make_commit()
    commit = real_commit(range(3, -1, -1))
    assert [s.validator_index for s in commit.signatures] == [0, 1, 2, 3]


def test_verify_commit_accepts_a_real_commit() -> None:
    vs = make_valset()
    vs.verify_commit(CHAIN, real_commit(), BLOCK, 3)
    vs.verify_commit(CHAIN, real_commit(range(1, 4)), BLOCK, 3)  # 3 of 4 is > 2/3


def test_verify_commit_rejects_forgeries() -> None:
    vs = make_valset()
    good = real_commit()
    sigs = good.signatures
    cases = {
        "too little power": replace(good, signatures=sigs[:2]),
        "duplicate signer": replace(good, signatures=(sigs[0], sigs[1], sigs[1])),
        "unordered": replace(good, signatures=(sigs[1], sigs[0], sigs[2])),
        "bad signature": replace(good, signatures=(
            sigs[0], sigs[1], CommitSig(2, bytes([sigs[2].signature[0] ^ 1])
                                        + sigs[2].signature[1:]))),
        "out of range": replace(good, signatures=(*sigs[:3], CommitSig(9, sigs[3].signature))),
    }
    for name, commit in cases.items():
        with pytest.raises(ValueError):
            vs.verify_commit(CHAIN, commit, BLOCK, 3)
            pytest.fail(name)
    with pytest.raises(ValueError):
        vs.verify_commit(CHAIN, good, h256(b"other"), 3)  # wrong block hash
    with pytest.raises(ValueError):
        vs.verify_commit(CHAIN, replace(good, block_hash=h256(b"other")), h256(b"other"), 3)
    with pytest.raises(ValueError):
        vs.verify_commit(CHAIN, good, BLOCK, 4)  # wrong height
    with pytest.raises(ValueError):
        vs.verify_commit("another-chain", good, BLOCK, 3)
    weighted = make_valset((4, 1, 1, 1))  # total 7, quorum 5: three light signers are not enough
    with pytest.raises(ValueError):
        weighted.verify_commit(CHAIN, real_commit(range(1, 4)), BLOCK, 3)


# == durable signer =========================================================================


def test_signer_refuses_conflicts_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "signer" / "state"
    s1 = DurableSigner(KEYS[0], path)
    assert s1.last is None
    v = Vote(CHAIN, 5, 1, int(Step.PREVOTE), BLOCK, bytes(32), bytes(64))
    signed = s1.sign_vote(v)
    assert signed.verify() and signed.validator == KEYS[0].public_key

    s2 = DurableSigner(KEYS[0], path)  # "restart"
    assert s2.last is not None and s2.last.hrs == (5, 1, SignStep.PREVOTE)
    assert s2.sign_vote(v) == signed  # same bytes: the same signature again
    with pytest.raises(DoubleSignError):
        s2.sign_vote(replace(v, block_hash=NIL))  # same HRS, different vote
    with pytest.raises(DoubleSignError):
        s2.sign_vote(replace(v, round=0, step=int(Step.PRECOMMIT)))  # lower round
    with pytest.raises(DoubleSignError):
        s2.sign_proposal(Proposal(CHAIN, 5, 1, -1, BLOCK, bytes(32), bytes(64)))  # lower step
    with pytest.raises(DoubleSignError):
        s2.sign_vote(replace(v, height=4, round=9))
    pc = s2.sign_vote(replace(v, step=int(Step.PRECOMMIT)))
    assert pc.verify()
    s3 = DurableSigner(KEYS[0], path)
    assert s3.last is not None and s3.last.hrs == (5, 1, SignStep.PRECOMMIT)
    p = s3.sign_proposal(Proposal(CHAIN, 6, 0, -1, BLOCK, bytes(32), bytes(64)))
    assert p.verify()
    with pytest.raises(SignerStateError):
        DurableSigner(KEYS[1], path)  # another key's state file


def test_signer_write_is_atomic_and_durable(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state"
    signer = DurableSigner(KEYS[0], path)
    v = Vote(CHAIN, 1, 0, int(Step.PREVOTE), BLOCK, bytes(32), bytes(64))
    signer.sign_vote(v)
    before = path.read_bytes()

    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace_(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        calls.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace_)
    signer.sign_vote(replace(v, step=int(Step.PRECOMMIT)))
    if os.path.isdir("/proc/self/fd"):
        assert calls == ["fsync-file", "rename", "fsync-dir"]

    # A crash between writing the temporary file and the rename: the old record survives
    # intact, and the signature never left the signer.
    after_first = path.read_bytes()

    def crash(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        signer.sign_vote(replace(v, height=2))
    assert path.read_bytes() == after_first != before
    monkeypatch.undo()
    assert (tmp_path / "state.tmp").exists()  # the torn temporary is simply ignored
    reloaded = DurableSigner(KEYS[0], path)
    assert reloaded.last is not None and reloaded.last.hrs == (1, 0, SignStep.PRECOMMIT)
    assert reloaded.sign_vote(replace(v, height=2)).verify()

    path.write_bytes(path.read_bytes()[:-1] + b"\x00")  # bit rot
    with pytest.raises(SignerStateError):
        DurableSigner(KEYS[0], path)


# == engine on the simulated network ========================================================


def test_four_validators_and_an_observer_decide_twenty_heights(tmp_path: Path) -> None:
    net = Network(tmp_path, observers=1)
    assert net.run(net.reached(20), max_ms=120_000)
    net.assert_safe()
    for h in range(1, 21):
        blocks = {net.decisions[i][h] for i in range(5)}
        assert len(blocks) == 1
        block = blocks.pop()
        assert block.startswith(f"h={h}|r=0|".encode())  # no round was lost
        assert proposer_of(block) == net.valset.proposer(h, 0).name
    assert net.rejected == 0 and not net.evidence


def test_proposers_rotate_by_weighted_round_robin(tmp_path: Path) -> None:
    net = Network(tmp_path, powers=(2, 1, 1, 1))
    assert net.run(net.reached(20), max_ms=120_000)
    net.assert_safe()
    counts = Counter(proposer_of(net.decisions[0][h]) for h in range(1, 21))
    assert counts == {"v0": 8, "v1": 4, "v2": 4, "v3": 4}


def test_one_silent_validator_does_not_stop_the_chain(tmp_path: Path) -> None:
    net = Network(tmp_path, down=(3,))
    assert net.run(net.reached(8, [0, 1, 2]), max_ms=120_000)
    net.assert_safe()
    # Heights whose round-0 proposer was the silent node were decided in a later round.
    for h in range(1, 9):
        if net.valset.proposer(h, 0).name == "v3":
            assert net.commits[0][h].round > 0


def test_blocks_slower_to_execute_than_every_timeout_still_get_decided(tmp_path: Path) -> None:
    # Building and validating a block takes 2.5 s, longer than the first rounds' propose
    # and prevote timeouts: the engine keeps its timers running meanwhile (the work is off
    # the engine), rounds move on, and the growing timeouts soon leave room for a decision.
    net = Network(tmp_path, exec_ms=2_500)
    assert net.run(net.reached(3), max_ms=300_000)
    net.assert_safe()
    assert any(net.commits[0][h].round > 0 for h in (1, 2, 3))


class CannotBuild(FakeApp):
    """An application that fails to build any block (e.g. a failing module)."""

    def propose(self, height: int, round: int) -> bytes | None:  # type: ignore[override]
        return None


def test_a_proposer_whose_chain_cannot_build_a_block_only_costs_its_rounds(
        tmp_path: Path) -> None:
    net = Network(tmp_path)
    net.engines[0].app = CannotBuild("v0", net.valset)
    assert net.run(net.reached(6), max_ms=120_000)
    net.assert_safe()
    assert all(proposer_of(net.decisions[1][h]) != "v0" for h in range(1, 7))


def test_two_silent_validators_halt_then_recover(tmp_path: Path) -> None:
    net = Network(tmp_path)
    assert net.run(net.reached(4), max_ms=60_000)
    net.crash(2)
    net.crash(3)
    net.run_for(10_000)  # whatever was in flight settles
    frozen = [dict(d) for d in net.decisions]
    net.run_for(120_000)
    assert net.decisions == frozen, "decided without a quorum"
    for i in (0, 1):  # still on the next height, waiting for votes that cannot come
        assert not net.engines[i].decided
        assert net.engines[i].height == max(net.decisions[i]) + 1
    net.restart(2)
    net.restart(3)
    assert net.run(net.reached(10), max_ms=300_000)
    net.assert_safe()
    for i in (2, 3):  # no equivocation by the restarted nodes
        assert all(e.evidence.vote_a.validator != KEYS[i].public_key for _, e in net.evidence)


def test_everyone_crashing_at_once_mid_height_resumes(tmp_path: Path) -> None:
    """Restarted validators resume at their last signed round, lock and vote: starting over
    at round 0 their signers would refuse every vote and nothing could time out."""
    for k, pause in enumerate(range(0, 1500, 97)):
        net = Network(tmp_path / f"run{k}", seed=k, delay=(100, 400), sync=True,
                      config=replace(FAST, timeout_propose_ms=300, timeout_propose_delta_ms=100,
                                     timeout_prevote_ms=100, timeout_precommit_ms=100))
        assert net.run(net.reached(2), max_ms=60_000)
        net.run_for(pause)
        for i in range(4):
            net.crash(i)
        net.drop_in_flight()  # lost with the processes
        for i in range(4):
            net.restart(i)
        assert net.run(net.reached(5), max_ms=120_000)
        net.assert_safe()
        assert not net.evidence


def test_equivocating_proposer_cannot_fork(tmp_path: Path) -> None:
    for b in range(4):
        net = Network(tmp_path / f"b{b}", seed=b)
        net.byzantine[b] = equivocating_proposer(b, 4)
        honest = [i for i in range(4) if i != b]
        assert net.run(net.reached(8, honest), max_ms=300_000)
        net.assert_safe(honest)


def test_equivocating_voter_is_reported(tmp_path: Path) -> None:
    net = Network(tmp_path)
    net.byzantine[3] = equivocating_voter(3, 4, split=False)
    assert net.run(net.reached(4, [0, 1, 2]), max_ms=120_000)
    net.assert_safe([0, 1, 2])
    assert net.evidence
    reporters = {i for i, _ in net.evidence}
    assert reporters == {0, 1, 2}
    for _, found in net.evidence:
        ev = found.evidence
        assert ev.is_valid(CHAIN)
        assert ev.vote_a.validator == KEYS[3].public_key


FAULTS = ["none", "silent", "crash_restart", "equivocate_proposals", "equivocate_votes"]


@pytest.mark.parametrize(("n", "seed"), [(4, s) for s in range(15)] + [(7, s) for s in range(6)])
def test_random_schedules_are_safe_and_live(tmp_path: Path, n: int, seed: int) -> None:
    """Random delays (reordering), 25% loss until GST, up to f faulty validators (silent,
    crashing and restarting, equivocating proposals or votes) with random powers: no two
    correct nodes ever decide differently, and after GST every live node keeps deciding."""
    rng = random.Random(seed * 1000 + n)
    f = (n - 1) // 3
    bad = rng.sample(range(n), f)
    modes = [FAULTS[(seed + k) % len(FAULTS)] for k in range(f)]
    powers = tuple([1] * n)
    if n > 4:  # uneven powers, faulty ones still below 1/3 in total
        while True:
            powers = tuple(rng.choice((1, 1, 2)) for _ in range(n))
            if sum(powers[b] for b in bad) * 3 < sum(powers):
                break
    net = Network(tmp_path, powers=powers, seed=seed, delay=(1, 400), loss=0.25,
                  gst_ms=20_000, sync=True,
                  down=tuple(b for b, m in zip(bad, modes, strict=True) if m == "silent"))
    for b, m in zip(bad, modes, strict=True):
        if m == "equivocate_proposals":
            net.byzantine[b] = equivocating_proposer(b, n)
        elif m == "equivocate_votes":
            net.byzantine[b] = equivocating_voter(b, n, split=rng.random() < 0.5)
    crashing = [b for b, m in zip(bad, modes, strict=True) if m == "crash_restart"]
    correct = [i for i in range(n) if i not in bad or i in crashing]
    if crashing:
        net.run_for(rng.randint(500, 15_000))
        for b in crashing:
            net.crash(b)
        net.run_for(rng.randint(1_000, 20_000))
        net.assert_safe()
        for b in crashing:
            net.restart(b)
    live = [i for i in range(n) if i not in net.down]
    assert net.run(net.reached(6, live), max_ms=600_000), (modes, [
        (e.height, e.round, e.step) for e in net.engines])
    net.assert_safe(correct)
    for i in correct:
        assert all(e.evidence.vote_a.validator != KEYS[i].public_key for _, e in net.evidence)


# == engine details =========================================================================


def answer_at_once(eng: ConsensusEngine, actions: list[Action]) -> list[Action]:
    """Carry out the engine's block requests at once, as a host with an instant chain would,
    and return every action, the answers' included."""
    app = eng.app
    assert isinstance(app, FakeApp)
    out: list[Action] = []
    for a in actions:
        out.append(a)
        if isinstance(a, BuildProposal):
            out += answer_at_once(eng, eng.on_block_built(a.height, a.round,
                                                          app.propose(a.height, a.round)))
        elif isinstance(a, ValidateBlock):
            out += answer_at_once(eng, eng.on_block_validated(
                a.height, a.block_hash, app.validate(a.height, a.block)))
    return out


class LoneEngine:
    """One engine fed by hand, whose block requests are answered at once."""

    _DRIVEN = frozenset({"start", "on_vote", "on_proposal", "on_timeout", "on_message",
                         "on_decided_block"})

    def __init__(self, engine: ConsensusEngine) -> None:
        self.engine = engine

    def __getattr__(self, name: str) -> object:
        attr = getattr(self.engine, name)
        if name not in self._DRIVEN:
            return attr

        def driven(*args: object) -> list[Action]:
            return answer_at_once(self.engine, attr(*args))
        return driven


def lone_engine(i: int, valset: ValidatorSet, tmp_path: Path) -> LoneEngine:
    """One engine fed by hand, as validator ``i``."""
    return LoneEngine(ConsensusEngine(CHAIN, FakeApp(f"v{i}", valset),
                                      DurableSigner(KEYS[i], tmp_path / f"s{i}"), FAST))


def test_timeouts_grow_with_the_round(tmp_path: Path) -> None:
    vs = make_valset()
    eng = lone_engine(1, vs, tmp_path)  # v1 is not the proposer of (1, 0)
    actions = eng.start(1)
    timers = {a.step: a for a in actions if isinstance(a, ScheduleTimeout)}
    assert timers[TimeoutStep.PROPOSE].delay_ms == 1000
    delays = []
    for r in range(4):
        # propose timeout -> prevote nil; no quorum, so skip ahead by the precommit timeout
        eng.on_timeout(Timeout(1, r, TimeoutStep.PROPOSE))
        out = eng.on_timeout(Timeout(1, r, TimeoutStep.PRECOMMIT))
        delays += [a.delay_ms for a in out if isinstance(a, ScheduleTimeout)
                   and a.step == TimeoutStep.PROPOSE]
    assert delays == [1500, 2000, 2500, 3000]
    assert eng.round == 4


def test_a_dead_proposers_round_moves_on_without_waiting_out_the_precommit_timeout(
        tmp_path: Path) -> None:
    # Nobody heard the proposer of (1, 0): everyone prevotes and precommits nil. Nothing can
    # come of the round any more, so the next one starts as the last nil precommit arrives.
    vs = make_valset()
    eng = lone_engine(1, vs, tmp_path)
    eng.start(1)
    eng.on_timeout(Timeout(1, 0, TimeoutStep.PROPOSE))  # our prevote nil
    for i in (0, 2):
        eng.on_vote(vote(i, Step.PREVOTE, NIL, height=1))  # nil polka: we precommit nil
    assert eng.on_vote(vote(0, Step.PRECOMMIT, NIL, height=1)) == []
    out = eng.on_vote(vote(2, Step.PRECOMMIT, NIL, height=1))
    assert eng.round == 1
    timers = [a for a in out if isinstance(a, ScheduleTimeout)]
    assert [(t.round, t.step) for t in timers] == [(1, TimeoutStep.PROPOSE)]


def test_precommits_nil_after_a_blocks_polka_still_wait_out_the_precommit_timeout(
        tmp_path: Path) -> None:
    # Two prevoted the block, two nil (no nil polka): a late prevote could still make the
    # block the valid value, so the round waits for its timeout as the paper says.
    vs = make_valset()
    eng = lone_engine(1, vs, tmp_path)
    eng.start(1)
    p0 = vs.proposer(1, 0)
    key0 = KEYS[vs.index_of(p0.public_key) or 0]
    block = b"h=1|x"
    eng.on_proposal(Proposal(CHAIN, 1, 0, -1, h256(block), bytes(32), bytes(64))
                    .signed_by(key0), block)  # our prevote for it
    others = [i for i in (0, 2, 3) if KEYS[i].public_key != p0.public_key]
    eng.on_vote(vote(others[0], Step.PREVOTE, NIL, height=1))
    eng.on_vote(vote(others[1], Step.PREVOTE, NIL, height=1))
    eng.on_timeout(Timeout(1, 0, TimeoutStep.PREVOTE))  # no polka in time: precommit nil
    out = []
    for i in others:
        out += eng.on_vote(vote(i, Step.PRECOMMIT, NIL, height=1))
    assert eng.round == 0
    assert [(a.round, a.step) for a in out if isinstance(a, ScheduleTimeout)] == [
        (0, TimeoutStep.PRECOMMIT)]
    eng.on_timeout(Timeout(1, 0, TimeoutStep.PRECOMMIT))
    assert eng.round == 1


def test_engine_rejects_forgeries_and_ignores_stale_and_buffers_future(tmp_path: Path) -> None:
    vs = make_valset()
    eng = lone_engine(1, vs, tmp_path)
    eng.start(1)
    with pytest.raises(InvalidMessage):
        eng.on_vote(replace(vote(0, Step.PREVOTE, BLOCK, height=1), signature=bytes(64)))
    with pytest.raises(InvalidMessage):
        eng.on_vote(vote(5, Step.PREVOTE, BLOCK, height=1))  # not a validator
    with pytest.raises(InvalidMessage):
        eng.on_vote(replace(vote(0, Step.PREVOTE, BLOCK, height=1), chain_id="x"))
    wrong = Proposal(CHAIN, 1, 0, -1, h256(b"h=1|x"), bytes(32), bytes(64)).signed_by(KEYS[2])
    with pytest.raises(InvalidMessage):  # v2 is not the proposer of round 0
        eng.on_proposal(wrong, b"h=1|x")
    p0 = vs.proposer(1, 0)
    key0 = KEYS[vs.index_of(p0.public_key) or 0]
    right = Proposal(CHAIN, 1, 0, -1, h256(b"h=1|x"), bytes(32), bytes(64)).signed_by(key0)
    with pytest.raises(InvalidMessage):
        eng.on_proposal(right, b"h=1|tampered")
    out = eng.on_proposal(right, b"h=1|x")
    assert [a.message.block_hash for a in out if isinstance(a, Broadcast)] == [h256(b"h=1|x")]
    # Height 2 arrives early: held, then counted once height 2 starts.
    early = [vote(i, Step.PREVOTE, NIL, height=2) for i in (0, 2, 3)]
    for v in early:
        assert eng.on_vote(v) == []
    assert eng.on_vote(vote(0, Step.PREVOTE, NIL, height=7)) == []  # too far: dropped
    for i in (0, 2, 3):
        eng.on_vote(vote(i, Step.PREVOTE, h256(b"h=1|x"), height=1))
    out = []
    for i in (0, 2, 3):
        out += eng.on_vote(vote(i, Step.PRECOMMIT, h256(b"h=1|x"), height=1))
    decided = [a for a in out if isinstance(a, Decide)]
    assert len(decided) == 1 and decided[0].block == b"h=1|x"
    assert eng.on_vote(vote(0, Step.PREVOTE, NIL, height=1)) == []  # stale
    out = eng.start(2)
    # The buffered nil prevotes form a quorum at once: precommit nil without waiting.
    precommits = [a.message for a in out if isinstance(a, Broadcast)
                  and isinstance(a.message, Vote) and a.message.step == Step.PRECOMMIT]
    if vs.proposer(2, 0).public_key != KEYS[1].public_key:
        assert precommits and precommits[0].block_hash == NIL


def test_f_plus_one_from_a_higher_round_skips_ahead(tmp_path: Path) -> None:
    vs = make_valset()
    eng = lone_engine(1, vs, tmp_path)
    eng.start(1)
    eng.on_vote(vote(0, Step.PREVOTE, NIL, height=1, round=5))
    assert eng.round == 0  # one validator (1/4) could be lying
    eng.on_vote(vote(2, Step.PRECOMMIT, NIL, height=1, round=5))
    assert eng.round == 5
    # A byzantine validator cannot park votes in unlimited future rounds.
    for r in range(6, 20):
        eng.on_vote(vote(3, Step.PREVOTE, NIL, height=1, round=r))
    assert sum(1 for r in eng._prevotes if r > 5) == 2


def test_locked_validator_prevotes_nil_for_a_different_block(tmp_path: Path) -> None:
    vs = make_valset()
    eng = lone_engine(1, vs, tmp_path)
    eng.start(1)
    p0 = vs.proposer(1, 0)
    k0 = KEYS[vs.index_of(p0.public_key) or 0]
    x = b"h=1|X"
    eng.on_proposal(Proposal(CHAIN, 1, 0, -1, h256(x), bytes(32), bytes(64)).signed_by(k0), x)
    for i in (0, 2, 3):
        eng.on_vote(vote(i, Step.PREVOTE, h256(x), height=1))
    assert (eng.locked_round, eng.valid_round) == (0, 0)
    eng.on_timeout(Timeout(1, 0, TimeoutStep.PRECOMMIT))  # no precommit quorum formed
    # Round 1: a different block without proof of lock gets a nil prevote from us.
    p1 = vs.proposer(1, 1)
    if p1.public_key == KEYS[1].public_key:
        return  # we would re-propose X ourselves; covered by the network tests
    k1 = KEYS[vs.index_of(p1.public_key) or 0]
    y = b"h=1|Y"
    out = eng.on_proposal(Proposal(CHAIN, 1, 1, -1, h256(y), bytes(32),
                                   bytes(64)).signed_by(k1), y)
    prevote = next(a.message for a in out if isinstance(a, Broadcast))
    assert prevote.step == Step.PREVOTE and prevote.block_hash == NIL


def test_restarted_validator_resumes_round_lock_and_vote(tmp_path: Path) -> None:
    vs = make_valset()
    eng = lone_engine(3, vs, tmp_path)  # proposes neither round 0 nor 1
    eng.start(1)
    eng.on_timeout(Timeout(1, 0, TimeoutStep.PROPOSE))
    eng.on_timeout(Timeout(1, 0, TimeoutStep.PRECOMMIT))  # round 1
    p1 = vs.proposer(1, 1)
    assert p1.public_key != KEYS[3].public_key
    k1 = KEYS[vs.index_of(p1.public_key) or 0]
    x = b"h=1|X"
    eng.on_proposal(Proposal(CHAIN, 1, 1, -1, h256(x), bytes(32), bytes(64)).signed_by(k1), x)
    out = []
    for i in (0, 1, 2):
        out += eng.on_vote(vote(i, Step.PREVOTE, h256(x), height=1, round=1))
    precommit = next(a.message for a in out if isinstance(a, Broadcast)
                     and isinstance(a.message, Vote) and a.message.step == Step.PRECOMMIT)
    assert precommit.block_hash == h256(x) and eng.locked_round == 1

    again = lone_engine(3, vs, tmp_path)  # the process restarts; same signer file
    out = again.start(1)
    assert (again.round, again.locked_round, again.valid_round) == (1, 1, 1)
    resent = [a.message for a in out if isinstance(a, Broadcast)]
    assert precommit in resent  # the very same signed vote, not a new one
    assert again.refused_signatures == 0
    # Its proof of lock came back too: a later round can re-propose X and be accepted.
    assert again._prevotes[1].power_for(h256(x)) >= vs.quorum


def test_signer_keeps_lock_and_last_vote(tmp_path: Path) -> None:
    signer = DurableSigner(KEYS[0], tmp_path / "state")
    pc = signer.sign_vote(Vote(CHAIN, 9, 2, int(Step.PRECOMMIT), BLOCK, bytes(32), bytes(64)))
    nil = signer.sign_vote(Vote(CHAIN, 9, 3, int(Step.PREVOTE), NIL, bytes(32), bytes(64)))
    last = DurableSigner(KEYS[0], tmp_path / "state").last
    assert last is not None and last.vote() == nil
    assert (last.locked_round, last.locked_hash) == (2, BLOCK)  # a nil prevote keeps the lock
    assert pc.verify()
    signer.sign_vote(Vote(CHAIN, 10, 0, int(Step.PREVOTE), NIL, bytes(32), bytes(64)))
    assert signer.last is not None and signer.last.locked_round == -1  # new height, no lock
    rec = LockRecord(10, 0, b"h=10|...", (vote(1, Step.PREVOTE, BLOCK, height=10),))
    signer.save_lock(rec)
    assert signer.lock_record(10) == rec and signer.lock_record(11) is None
    signer.lock_path.write_bytes(b"garbage")
    assert signer.lock_record(10) is None


def test_conflicting_vote_counts_for_a_proposed_block(tmp_path: Path) -> None:
    vs = VoteSet(CHAIN, 3, 0, Step.PREVOTE, make_valset(), tracked=[BLOCK])
    other = h256(b"other")
    vs.add(vote(0, Step.PREVOTE, NIL))
    assert vs.add(vote(0, Step.PREVOTE, BLOCK))  # tracked: counts, and is evidence
    assert not vs.add(vote(0, Step.PREVOTE, other))  # untracked: parked
    assert (vs.power_for(NIL), vs.power_for(BLOCK), vs.power_for(other)) == (1, 1, 0)
    assert vs.voted_power == 1 and len(vs.evidence) == 1
    assert vs.track(other) and vs.power_for(other) == 1
    for k in range(5):  # a flood of distinct conflicting votes stays bounded
        vs.add(vote(0, Step.PREVOTE, h256(bytes([k]))))
    assert sum(len(p) for p in vs._parked.values()) <= VoteSet.MAX_PARKED


def test_spread_over_higher_rounds_still_gathers(tmp_path: Path) -> None:
    """Seven validators (f = 2): two are at round 9, one at round 8. No single round holds
    more than 1/3 of the power, but together they prove an honest one reached round 8."""
    vs = make_valset((1,) * 7)
    eng = lone_engine(0, vs, tmp_path)
    eng.start(1)
    eng.on_vote(vote(1, Step.PREVOTE, NIL, height=1, round=9))
    eng.on_vote(vote(2, Step.PREVOTE, NIL, height=1, round=9))
    assert eng.round == 0  # two of seven could both be faulty
    eng.on_vote(vote(3, Step.PREVOTE, NIL, height=1, round=8))
    assert eng.round == 8


def test_next_height_buffer_is_bounded(tmp_path: Path) -> None:
    vs = make_valset()
    eng = ConsensusEngine(CHAIN, FakeApp("v1", vs), DurableSigner(KEYS[1], tmp_path / "s"),
                          replace(FAST, max_buffered_votes=5))
    eng.start(1)
    for r in range(20):
        eng.on_vote(vote(0, Step.PREVOTE, NIL, height=2, round=r))
    assert len(eng._buffer) == 5


def test_follows_the_other_block_of_an_equivocating_proposer(tmp_path: Path) -> None:
    vs = make_valset()
    eng = lone_engine(3, vs, tmp_path)
    eng.start(1)
    k0 = KEYS[vs.index_of(vs.proposer(1, 0).public_key) or 0]
    x, y = b"h=1|X", b"h=1|Y"
    px = Proposal(CHAIN, 1, 0, -1, h256(x), bytes(32), bytes(64)).signed_by(k0)
    py = replace(px, block_hash=h256(y)).signed_by(k0)
    eng.on_proposal(px, x)
    assert eng.on_proposal(py, y) == []  # nobody voted for Y yet: dropped
    assert h256(y) not in eng._blocks
    out = []
    for i in (0, 1, 2):  # the others saw Y and precommit it
        out += eng.on_vote(vote(i, Step.PRECOMMIT, h256(y), height=1))
    assert not any(isinstance(a, Decide) for a in out)  # no block bytes for Y
    out = eng.on_proposal(py, y)  # served again by a peer: now it has honest support
    decided = [a for a in out if isinstance(a, Decide)]
    assert len(decided) == 1 and decided[0].block == y
