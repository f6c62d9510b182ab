"""Tendermint BFT consensus as a pure, event-driven state machine.

This follows Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon, Milosevic,
2018); comments name its line numbers. The engine does no I/O and reads no clock: the host
feeds it messages and fired timeouts and carries out the actions it returns (send, arm a
timer, commit a block, report evidence). That keeps it deterministic, so a simulated network
with a virtual clock can test it exhaustively, and the node can drive it from any event loop.

Beyond the paper, the engine
- counts an equivocator's votes for every block a proposal carries (the paper counts all
  signed messages; counting only the first vote can leave locked validators stuck forever);
- retransmits when it has made no progress for a whole gossip interval, because the paper
  assumes every message is eventually delivered and real networks lose some; and if that
  does not help for ``stall_ticks`` intervals, precommits nil or moves to the next round
  (always safe), since the votes it waits for may have died with their senders' memory;
- sends the proof-of-lock prevotes along with a proposal that re-proposes a locked block;
- skips to a higher round when validators with more than 1/3 of the power are above us,
  even if spread over several rounds (the paper's rule counts one round at a time);
- goes to the next round at once, without the precommit timeout, when +2/3 prevoted nil
  and +2/3 precommitted nil in the round (a dead proposer's round: nothing is left to wait
  for in it);
- answers messages for the height it just decided with that decision (proposal and
  precommits), so a node one height behind catches up without block sync;
- resumes after a restart at its signer's last round, with its lock and its last vote;
- buffers a bounded number of messages for the next height and for a few future rounds per
  validator, and ignores older heights;
- never calls the application to build or execute a block: it asks with ``BuildProposal``
  and ``ValidateBlock`` actions and goes on (its timeouts stay armed), and the host answers
  with ``on_block_built`` and ``on_block_validated`` when the work is done. A block that
  takes long to execute therefore never holds up timers, votes or the node's other work,
  and an application that fails to answer only costs the round (its timeout moves on).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Protocol

from smartchain.consensus.signer import DoubleSignError, LockRecord, SignState, SignStep
from smartchain.consensus.validators import ValidatorSet
from smartchain.consensus.votes import InvalidVote, VoteSet
from smartchain.types.consensus import (
    NIL,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Proposal,
    ProposalMessage,
    Step,
    Vote,
)

__all__ = [
    "Action",
    "Application",
    "Broadcast",
    "BuildProposal",
    "ConsensusEngine",
    "Decide",
    "EngineConfig",
    "EvidenceFound",
    "InvalidMessage",
    "Message",
    "RoundStep",
    "ScheduleTimeout",
    "Signer",
    "Timeout",
    "TimeoutStep",
    "ValidateBlock",
]

Message = Vote | ProposalMessage


class InvalidMessage(ValueError):
    """The message is malformed or forged (not merely late or duplicate): the host should
    lower the sending peer's score. The engine's state is unchanged."""


class RoundStep(IntEnum):
    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


class TimeoutStep(IntEnum):
    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2
    GOSSIP = 3  # periodic retransmission check


@dataclass(frozen=True, slots=True)
class Timeout:
    height: int
    round: int
    step: TimeoutStep


# -- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``message`` to all peers. ``retransmit`` marks a resend of something already
    sent (own or relayed), which the transport may skip for peers known to have it."""

    message: Message
    retransmit: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Call ``on_timeout(self.timeout)`` after ``delay_ms``; stale timeouts are harmless."""

    height: int
    round: int
    step: TimeoutStep
    delay_ms: int

    @property
    def timeout(self) -> Timeout:
        return Timeout(self.height, self.round, self.step)


@dataclass(frozen=True, slots=True)
class Decide:
    """``block`` is final at ``height``; ``commit`` proves it. The host applies the block,
    then calls ``start(height + 1)``."""

    height: int
    block: bytes
    commit: Commit


@dataclass(frozen=True, slots=True)
class EvidenceFound:
    evidence: DuplicateVoteEvidence


@dataclass(frozen=True, slots=True)
class BuildProposal:
    """We propose in this round: build a block and answer with ``on_block_built`` (or
    ``None`` if none can be built). The round's propose timeout is already armed."""

    height: int
    round: int


@dataclass(frozen=True, slots=True)
class ValidateBlock:
    """valid(v) of the paper: execute ``block`` and answer with ``on_block_validated``.
    Asked once per block and height; until the answer, rules that need it wait."""

    height: int
    block_hash: bytes
    block: bytes


Action = Broadcast | ScheduleTimeout | Decide | EvidenceFound | BuildProposal | ValidateBlock


# -- injected parts -----------------------------------------------------------------------


class Application(Protocol):
    """What consensus reads from the chain synchronously: cheap and deterministic across
    nodes. Building and executing blocks are actions (``BuildProposal``, ``ValidateBlock``)."""

    def block_hash(self, block: bytes) -> bytes: ...

    def validators_at(self, height: int) -> ValidatorSet: ...


class Signer(Protocol):
    """``DurableSigner`` in production; raises ``DoubleSignError`` to refuse."""

    @property
    def public_key(self) -> bytes: ...

    @property
    def last(self) -> SignState | None: ...

    def sign_vote(self, vote: Vote) -> Vote: ...

    def sign_proposal(self, proposal: Proposal) -> Proposal: ...

    def save_lock(self, record: LockRecord) -> None: ...

    def lock_record(self, height: int) -> LockRecord | None: ...


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Timeouts grow linearly with the round, so after GST some round is long enough for
    everyone to hear the proposal and the votes (the liveness argument of the paper)."""

    timeout_propose_ms: int = 3000
    timeout_propose_delta_ms: int = 500
    timeout_prevote_ms: int = 1000
    timeout_prevote_delta_ms: int = 500
    timeout_precommit_ms: int = 1000
    timeout_precommit_delta_ms: int = 500
    gossip_interval_ms: int = 2000
    stall_ticks: int = 3  # intervals without progress before the liveness backstop acts
    max_future_rounds: int = 2  # distinct future rounds tracked per validator
    max_proposal_rounds_ahead: int = 8  # proposals further ahead wait for a retransmission
    max_buffered_votes: int = 4096  # next-height votes held until start(height + 1)
    max_buffered_proposals: int = 4

    def timeout_ms(self, step: TimeoutStep, round: int) -> int:
        if step == TimeoutStep.PROPOSE:
            return self.timeout_propose_ms + round * self.timeout_propose_delta_ms
        if step == TimeoutStep.PREVOTE:
            return self.timeout_prevote_ms + round * self.timeout_prevote_delta_ms
        if step == TimeoutStep.PRECOMMIT:
            return self.timeout_precommit_ms + round * self.timeout_precommit_delta_ms
        return self.gossip_interval_ms


@dataclass(slots=True)
class _Decision:
    """What a node one height behind needs to decide too."""

    height: int
    commit: Commit
    proposal: ProposalMessage | None
    precommits: list[Vote] = field(default_factory=list)
    tick: int = 0  # gossip ticks counted when it was decided


# -- the engine ---------------------------------------------------------------------------


class ConsensusEngine:
    """One node's view of consensus. Not thread-safe: drive it from one task or thread.

    Every public method returns the actions to carry out, in order. Without a signer (or
    with a key outside the height's validator set) the engine only observes, and still
    decides from the others' votes.
    """

    # per-height state, set by _reset_height() (typed here: start() assigns them first)
    _me: int | None
    _locked_hash: bytes | None
    _valid_hash: bytes | None

    def __init__(self, chain_id: str, app: Application, signer: Signer | None = None,
                 config: EngineConfig | None = None) -> None:
        self.chain_id = chain_id
        self.app = app
        self.signer = signer
        self.config = config or EngineConfig()
        self.height = 0
        self.round = 0
        self.step = RoundStep.PROPOSE
        self.decided = True  # nothing to do until start()
        self.refused_signatures = 0  # DoubleSignError count (e.g. after a restart)
        self.valset: ValidatorSet | None = None
        self._out: list[Action] = []
        self._buffer: list[Message] = []
        self._buffer_keys: set[bytes] = set()
        self._buffer_counts: dict[bytes, int] = {}
        self._last: _Decision | None = None
        self._ticks = 0  # gossip ticks ever fired (all heights)
        self._served_tick = -1
        self._reset_height()

    # -- public API -------------------------------------------------------------------

    def start(self, height: int, last_commit: Commit | None = None) -> list[Action]:
        """Begin ``height`` (after the previous block was applied, or at boot).

        At boot, pass the stored commit of ``height - 1``: peers still on that height get
        its precommits from us. A validator that signed in ``height`` before a restart
        resumes where its signer stopped (see ``_resume``); otherwise round 0.
        """
        if height <= self.height:
            raise ValueError(f"cannot start height {height}: already at {self.height}")
        if last_commit is not None and (self._last is None or self._last.height != height - 1):
            self._last = self._decision_from_commit(height - 1, last_commit)
        self.height = height
        self._reset_height()
        self.valset = self.app.validators_at(height)
        me = self.signer.public_key if self.signer is not None else None
        self._me = None if me is None else self.valset.index_of(me)
        self.decided = False
        buffered = [m for m in self._buffer if _height_of(m) == height]
        self._buffer, self._buffer_keys, self._buffer_counts = [], set(), {}
        self._schedule(0, TimeoutStep.GOSSIP)
        last = self.signer.last if self.signer is not None and self._me is not None else None
        if last is not None and last.height == height:
            self._resume(last)
        else:
            self._start_round(0)
        for msg in buffered:
            try:
                self._ingest(msg)
            except InvalidMessage:
                pass  # its sender cannot be blamed any more; just drop it
        self._run_rules()
        return self._flush()

    def _decision_from_commit(self, height: int, commit: Commit) -> _Decision:
        if commit.height != height:
            raise ValueError(f"last_commit is for height {commit.height}, not {height}")
        vals = self.app.validators_at(height).validators
        votes = [commit.vote_for(self.chain_id, vals[s.validator_index].public_key, s)
                 for s in commit.signatures if s.validator_index < len(vals)]
        return _Decision(height, commit, None, votes, self._ticks)

    def _resume(self, last: SignState) -> None:
        """Restarted in the middle of a height: go back to the round and step of our last
        signature, with its lock (and the locked block and its proof, if saved), and resend
        that vote. Starting over at round 0 instead, the signer would (rightly) refuse every
        vote up to where we were, and if all validators restarted at once nobody could vote
        and no timeout would ever fire."""
        assert self.signer is not None
        self.round = last.round
        if last.locked_round >= 0:
            self._locked_round, self._locked_hash = last.locked_round, last.locked_hash
            rec = self.signer.lock_record(self.height)
            if (rec is not None and rec.round == last.locked_round
                    and self.app.block_hash(rec.block) == last.locked_hash):
                self._add_block(last.locked_hash, rec.block)
                for v in rec.prevotes:
                    try:
                        self._add_vote(v)
                    except InvalidMessage:
                        pass
                self._valid_hash, self._valid_round = last.locked_hash, last.locked_round
        self._start_round(last.round)
        vote = last.vote()
        if vote is None:
            return
        self.step = RoundStep.PREVOTE if last.step == SignStep.PREVOTE else RoundStep.PRECOMMIT
        try:
            self._add_vote(vote)
        except InvalidMessage:
            return
        self._out.append(Broadcast(vote, True))

    def on_message(self, message: Message) -> list[Action]:
        if isinstance(message, ProposalMessage):
            return self.on_proposal(message.proposal, message.block)
        return self.on_vote(message)

    def on_proposal(self, proposal: Proposal, block: bytes) -> list[Action]:
        """Raises ``InvalidMessage`` for a forged or malformed proposal."""
        return self._receive(ProposalMessage(proposal, block))

    def on_vote(self, vote: Vote) -> list[Action]:
        """Raises ``InvalidMessage`` for a forged or malformed vote."""
        return self._receive(vote)

    def on_timeout(self, timeout: Timeout) -> list[Action]:
        if timeout.height != self.height or self.decided:
            return []
        step, r = timeout.step, timeout.round
        if step == TimeoutStep.GOSSIP:
            self._gossip_tick()
        elif step == TimeoutStep.PROPOSE:  # line 57
            if r == self.round and self.step == RoundStep.PROPOSE:
                self._vote(Step.PREVOTE, NIL)
                self.step = RoundStep.PREVOTE
        elif step == TimeoutStep.PREVOTE:  # line 61
            if r == self.round and self.step == RoundStep.PREVOTE:
                self._vote(Step.PRECOMMIT, NIL)
                self.step = RoundStep.PRECOMMIT
        elif step == TimeoutStep.PRECOMMIT and r == self.round:  # line 65
            self._start_round(r + 1)
        self._run_rules()
        return self._flush()

    def on_decided_block(self, height: int, block: bytes, commit: Commit) -> list[Action]:
        """Catch up from a block and its commit certificate (block sync): decide the
        current height without having seen its rounds. Raises ``InvalidMessage``."""
        if height != self.height or self.decided or self.valset is None:
            return []
        block_hash = self.app.block_hash(block)
        try:
            self.valset.verify_commit(self.chain_id, commit, block_hash, height)
        except ValueError as exc:
            raise InvalidMessage(f"bad commit: {exc}") from exc
        self._add_block(block_hash, block)
        self._decide(commit, block, None, self._decision_from_commit(height, commit).precommits)
        return self._flush()

    def on_block_built(self, height: int, round: int, block: bytes | None) -> list[Action]:
        """The answer to ``BuildProposal``. Ignored if the round moved on meanwhile (its
        propose timeout fired): the block would come too late to help."""
        if (height != self.height or round != self.round or self.decided
                or self.step != RoundStep.PROPOSE or round in self._proposals):
            return []
        if block is not None:
            block_hash = self.app.block_hash(block)
            self._validity[block_hash] = True  # we built it on our committed state
            self._send_proposal(round, block, block_hash, -1)
            self._run_rules()
        return self._flush()

    def on_block_validated(self, height: int, block_hash: bytes, ok: bool) -> list[Action]:
        """The answer to ``ValidateBlock``; rules that waited for it run now."""
        if height != self.height or self.decided or block_hash not in self._validating:
            return []
        self._validating.discard(block_hash)
        self._validity[block_hash] = bool(ok)
        self._run_rules()
        return self._flush()

    @property
    def last_commit(self) -> Commit | None:
        """The certificate of the last decided height, with the precommits that arrived
        after the decision (what the next block should carry as its last commit)."""
        return self._last.commit if self._last is not None else None

    @property
    def locked_round(self) -> int:
        return self._locked_round

    @property
    def valid_round(self) -> int:
        return self._valid_round

    # -- per-height state -------------------------------------------------------------

    def _reset_height(self) -> None:
        self.round = 0
        self.step = RoundStep.PROPOSE
        self._me = None
        self._locked_hash = None
        self._locked_round = -1
        self._valid_hash = None
        self._valid_round = -1
        self._proposals: dict[int, ProposalMessage] = {}
        self._blocks: dict[bytes, bytes] = {}
        self._alternates: dict[bytes, ProposalMessage] = {}  # equivocated, but voted for
        self._validity: dict[bytes, bool] = {}
        self._validating: set[bytes] = set()  # ValidateBlock asked, no answer yet
        self._prevotes: dict[int, VoteSet] = {}
        self._precommits: dict[int, VoteSet] = {}
        self._senders: dict[int, set[int]] = {}  # round -> validator indices heard from
        self._lock_rule_done: set[int] = set()  # rounds where line 36 fired
        self._prevote_timeout_armed: set[int] = set()
        self._precommit_timeout_armed: set[int] = set()
        self._seen_evidence: set[bytes] = set()
        self._tick_snapshot: tuple[int, int] | None = None
        self._stalled_ticks = 0

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _schedule(self, round: int, step: TimeoutStep) -> None:
        self._out.append(ScheduleTimeout(self.height, round, step,
                                         self.config.timeout_ms(step, round)))

    # -- receiving --------------------------------------------------------------------

    def _receive(self, msg: Message) -> list[Action]:
        if _chain_of(msg) != self.chain_id:
            raise InvalidMessage("message for another chain")
        h = _height_of(msg)
        if h == self.height and not self.decided:
            self._ingest(msg)
            self._run_rules()
        elif h == self.height + 1:
            self._buffer_message(msg)
        elif self._last is not None and h == self._last.height:
            if isinstance(msg, Vote):
                self._add_late_precommit(msg)
            self._serve_last_decision()
        return self._flush()

    def _add_late_precommit(self, vote: Vote) -> None:
        """A precommit for the block we decided, arriving after the decision: it joins
        ``last_commit``, as CometBFT gathers them while it waits to start the next height,
        so the next block credits every signer that was on time (the staking module
        jails a director by its absences from those commits)."""
        last = self._last
        assert last is not None
        c = last.commit
        if (vote.step != Step.PRECOMMIT or vote.round != c.round
                or vote.block_hash != c.block_hash):
            return
        idx = self.app.validators_at(last.height).index_of(vote.validator)
        if idx is None or any(s.validator_index == idx for s in c.signatures):
            return
        if not vote.verify():
            raise InvalidMessage("bad vote signature")
        sigs = sorted((*c.signatures, CommitSig(idx, vote.signature)),
                      key=lambda s: s.validator_index)
        last.commit = replace(c, signatures=tuple(sigs))
        last.precommits.append(vote)

    def _buffer_message(self, msg: Message) -> None:
        """Hold a next-height message: it cannot be checked before that height's validator
        set is known. Bounded, so a flood costs memory only up to the caps."""
        if isinstance(msg, ProposalMessage):
            key, cap = b"p" + msg.proposal.encode(), self.config.max_buffered_proposals
        else:
            key, cap = b"v" + msg.encode(), self.config.max_buffered_votes
        kind = key[:1]
        if key in self._buffer_keys or self._buffer_counts.get(kind, 0) >= cap:
            return
        self._buffer_keys.add(key)
        self._buffer_counts[kind] = self._buffer_counts.get(kind, 0) + 1
        self._buffer.append(msg)

    def _ingest(self, msg: Message) -> None:
        if isinstance(msg, ProposalMessage):
            self._add_proposal(msg)
        else:
            self._add_vote(msg)

    def _round_allowed(self, idx: int, round: int) -> bool:
        """A validator may occupy only a few rounds beyond ours: a byzantine one could sign
        messages for millions of rounds, an honest one is never that far ahead."""
        if round <= self.round or idx in self._senders.get(round, ()):
            return True
        ahead = sum(1 for r, who in self._senders.items() if r > self.round and idx in who)
        return ahead < self.config.max_future_rounds

    def _add_vote(self, vote: Vote) -> None:
        assert self.valset is not None
        if vote.step not in (Step.PREVOTE, Step.PRECOMMIT):
            raise InvalidMessage(f"unknown vote step {vote.step}")
        idx = self.valset.index_of(vote.validator)
        if idx is None:
            raise InvalidMessage("vote from a non-validator")
        if not self._round_allowed(idx, vote.round):
            return
        votes = self._votes(vote.round, Step(vote.step))
        known = len(votes.evidence)
        try:
            added = votes.add(vote)
        except InvalidVote as exc:
            raise InvalidMessage(str(exc)) from exc
        for ev in votes.evidence[known:]:
            key = ev.encode()
            if key not in self._seen_evidence:
                self._seen_evidence.add(key)
                self._out.append(EvidenceFound(ev))
        if added:
            self._senders.setdefault(vote.round, set()).add(idx)

    def _add_proposal(self, msg: ProposalMessage) -> None:
        assert self.valset is not None
        p = msg.proposal
        if not -1 <= p.pol_round < p.round:
            raise InvalidMessage(f"pol_round {p.pol_round} not below round {p.round}")
        if p.round > self.round + self.config.max_proposal_rounds_ahead:
            return  # finding its proposer means stepping the rotation that far: not yet
        idx = self.valset.proposer_index(p.height, p.round)
        if p.proposer != self.valset.validators[idx].public_key:
            raise InvalidMessage("proposal not from the round's proposer")
        have = self._proposals.get(p.round)
        if have is not None and (have.proposal == p or p.block_hash in self._blocks):
            return
        if have is None and not self._round_allowed(idx, p.round):
            return
        if p.block_hash == NIL or self.app.block_hash(msg.block) != p.block_hash:
            raise InvalidMessage("block does not match the proposal's hash")
        if not p.verify():
            raise InvalidMessage("bad proposal signature")
        if have is not None:
            # The proposer equivocated. The first proposal stands for this round, but the
            # other block is kept if an honest validator (more than 1/3 of the power) voted
            # for it: it may be what the others decide, and we need its bytes to follow.
            # Blocks nobody honest voted for are dropped, so a flood of them costs nothing.
            if self._support(p.block_hash) >= self.valset.skip_power:
                self._alternates[p.block_hash] = msg
                self._add_block(p.block_hash, msg.block)
            return
        self._proposals[p.round] = msg
        self._add_block(p.block_hash, msg.block)
        self._senders.setdefault(p.round, set()).add(idx)

    def _support(self, block_hash: bytes) -> int:
        """The most power seen voting for ``block_hash`` in any one round and step."""
        return max((vs.power_for(block_hash) for table in (self._prevotes, self._precommits)
                    for vs in table.values()), default=0)

    def _votes(self, round: int, step: Step) -> VoteSet:
        table = self._prevotes if step == Step.PREVOTE else self._precommits
        vs = table.get(round)
        if vs is None:
            assert self.valset is not None
            vs = table[round] = VoteSet(self.chain_id, self.height, round, step, self.valset,
                                        self._blocks)
        return vs

    def _add_block(self, block_hash: bytes, block: bytes) -> None:
        """A proposal made ``block`` a candidate: equivocators' votes for it now count."""
        if block_hash in self._blocks:
            return
        self._blocks[block_hash] = block
        for table in (self._prevotes, self._precommits):
            for vs in table.values():
                vs.track(block_hash)

    def _is_valid(self, block_hash: bytes) -> bool | None:
        """valid(v) of the paper, asked of the host once per block (validation can be
        expensive); ``None`` until it answers."""
        ok = self._validity.get(block_hash)
        if ok is None and block_hash not in self._validating:
            self._validating.add(block_hash)
            self._out.append(ValidateBlock(self.height, block_hash, self._blocks[block_hash]))
        return ok

    # -- acting -----------------------------------------------------------------------

    def _vote(self, step: Step, block_hash: bytes) -> None:
        """Sign, count and send our vote (if we are a validator and the signer agrees)."""
        if self.signer is None or self._me is None:
            return
        unsigned = Vote(self.chain_id, self.height, self.round, int(step), block_hash,
                        self.signer.public_key, bytes(64))
        try:
            vote = self.signer.sign_vote(unsigned)
        except DoubleSignError:
            self.refused_signatures += 1
            return
        self._add_vote(vote)
        self._out.append(Broadcast(vote))

    def _start_round(self, round: int) -> None:
        """StartRound (line 11)."""
        assert self.valset is not None
        self.round = round
        self.step = RoundStep.PROPOSE
        # Armed even when we propose: if our signer refuses, the round must still move on.
        self._schedule(round, TimeoutStep.PROPOSE)
        if self.signer is None or self._me is None:
            return
        if self.valset.proposer_index(self.height, round) != self._me:
            return
        if self._valid_hash is None:
            self._out.append(BuildProposal(self.height, round))  # -> on_block_built
            return
        if self._valid_round >= round:
            return  # resumed in the round we locked in: its proposal is already out
        self._send_proposal(round, self._blocks[self._valid_hash], self._valid_hash,
                            self._valid_round)

    def _send_proposal(self, round: int, block: bytes, block_hash: bytes, pol: int) -> None:
        """Sign and send our proposal of ``block`` for ``round`` (lines 16-19)."""
        assert self.signer is not None and self._me is not None
        unsigned = Proposal(self.chain_id, self.height, round, pol, block_hash,
                            self.signer.public_key, bytes(64))
        try:
            proposal = self.signer.sign_proposal(unsigned)
        except DoubleSignError:
            self.refused_signatures += 1
            return
        msg = ProposalMessage(proposal, block)
        self._proposals[round] = msg
        self._add_block(block_hash, block)
        self._senders.setdefault(round, set()).add(self._me)
        self._out.append(Broadcast(msg))
        if pol >= 0:  # the proof of lock, so others can accept the re-proposal (line 28)
            self._out.extend(Broadcast(v, True)
                             for v in self._votes(pol, Step.PREVOTE).votes(block_hash))

    def _decide(self, commit: Commit, block: bytes, proposal: ProposalMessage | None,
                precommits: list[Vote]) -> None:
        self.decided = True
        self._last = _Decision(self.height, commit, proposal, precommits, self._ticks)
        self._out.append(Decide(self.height, block, commit))

    # -- the rules --------------------------------------------------------------------

    def _run_rules(self) -> None:
        """Apply the paper's upon-rules until none fires (each firing may enable another)."""
        while not self.decided:
            if (self._rule_decide() or self._rule_skip_round() or self._rule_nil_round()
                    or self._rules_current_round()):
                continue
            break

    def _rule_decide(self) -> bool:
        """Line 49: a proposal's block with +2/3 precommits in any round is decided."""
        for r in sorted(self._precommits):
            votes = self._precommits[r]
            maj = votes.two_thirds_majority()
            if (maj is None or maj == NIL or maj not in self._blocks
                    or self._is_valid(maj) is not True):
                continue
            proposal = next((pm for pm in self._proposals.values()
                             if pm.proposal.block_hash == maj), self._alternates.get(maj))
            precommits = votes.votes(maj)
            self._decide(votes.make_commit(), self._blocks[maj], proposal, precommits)
            return True
        return False

    def _rule_skip_round(self) -> bool:
        """Line 55, generalised: if validators with more than 1/3 of the power have sent
        messages from rounds above ours, an honest one is at least at the lowest of their
        highest rounds: go there. With all of them in one round this is the paper's rule;
        the general form also gathers validators spread over several higher rounds (as
        after everyone restarts at once), where the per-round count could deadlock."""
        assert self.valset is not None
        highest: dict[int, int] = {}  # validator -> its highest round above ours
        for r, who in self._senders.items():
            if r > self.round:
                for i in who:
                    if r > highest.get(i, -1):
                        highest[i] = r
        power = 0
        for i, r in sorted(highest.items(), key=lambda x: -x[1]):
            power += self.valset.validators[i].power
            if power >= self.valset.skip_power:
                self._start_round(r)
                return True
        return False

    def _rule_nil_round(self) -> bool:
        """+2/3 prevoted nil and +2/3 precommitted nil in our round: go to the next one now.

        A block would need +2/3 of the same prevotes to be locked or become valid, and +2/3
        of the same precommits to be decided, so nothing can come of this round any more;
        waiting out its precommit timeout (line 47) only delays the next proposer. With a
        dead proposer that wait was a quarter of the round's cost. (With precommits nil but
        no nil polka, a block may have had its polka here: then the timeout still runs, so
        late prevotes can still make it the valid value of the next proposer.)
        """
        r = self.round
        prevotes, precommits = self._prevotes.get(r), self._precommits.get(r)
        if (prevotes is None or precommits is None or prevotes.two_thirds_majority() != NIL
                or precommits.two_thirds_majority() != NIL):
            return False
        self._start_round(r + 1)
        return True

    def _rules_current_round(self) -> bool:
        assert self.valset is not None
        r = self.round
        pm = self._proposals.get(r)
        prevotes = self._prevotes.get(r)
        fired = False
        if pm is not None and self.step == RoundStep.PROPOSE:
            p = pm.proposal
            v = p.block_hash
            if p.pol_round == -1:  # line 22
                valid = self._is_valid(v)
                if valid is None:
                    return False  # wait for the host's answer
                ok = valid and (self._locked_round == -1 or self._locked_hash == v)
                self._vote(Step.PREVOTE, v if ok else NIL)
                self.step = RoundStep.PREVOTE
                return True
            pol = self._prevotes.get(p.pol_round)
            if pol is not None and pol.power_for(v) >= self.valset.quorum:  # line 28
                valid = self._is_valid(v)
                if valid is None:
                    return False
                ok = valid and (self._locked_round <= p.pol_round or self._locked_hash == v)
                self._vote(Step.PREVOTE, v if ok else NIL)
                self.step = RoundStep.PREVOTE
                return True
        if prevotes is not None:
            maj = prevotes.two_thirds_majority()
            if (self.step == RoundStep.PREVOTE and prevotes.has_two_thirds_any()
                    and r not in self._prevote_timeout_armed):  # line 34
                self._prevote_timeout_armed.add(r)
                self._schedule(r, TimeoutStep.PREVOTE)
            if (pm is not None and maj == pm.proposal.block_hash and r not in self._lock_rule_done
                    and self.step >= RoundStep.PREVOTE and self._is_valid(maj) is True):  # l. 36
                self._lock_rule_done.add(r)
                if self.step == RoundStep.PREVOTE:
                    self._locked_hash, self._locked_round = maj, r
                    if self.signer is not None and self._me is not None:
                        self.signer.save_lock(LockRecord(self.height, r, self._blocks[maj],
                                                         tuple(prevotes.votes(maj))))
                    self._vote(Step.PRECOMMIT, maj)
                    self.step = RoundStep.PRECOMMIT
                self._valid_hash, self._valid_round = maj, r
                fired = True
            elif self.step == RoundStep.PREVOTE and maj == NIL:  # line 44
                self._vote(Step.PRECOMMIT, NIL)
                self.step = RoundStep.PRECOMMIT
                fired = True
        precommits = self._precommits.get(r)
        if (precommits is not None and precommits.has_two_thirds_any()
                and r not in self._precommit_timeout_armed):  # line 47
            self._precommit_timeout_armed.add(r)
            self._schedule(r, TimeoutStep.PRECOMMIT)
        return fired

    # -- retransmission ---------------------------------------------------------------

    def _gossip_tick(self) -> None:
        """If (round, step) did not move for a whole interval, some message was probably
        lost: resend what this round (and any proof of lock) needs.

        If it still does not move for ``stall_ticks`` intervals, the missing messages may
        exist nowhere any more (their senders crashed and restarted without them), and
        the paper's timeouts, which wait for +2/3 of *some* votes, would never fire. Then
        precommit nil, or go to the next round: both are always safe (neither can help a
        block be decided), and they restore the vote counts the timeouts wait for.
        """
        snapshot = (self.round, int(self.step))
        if snapshot == self._tick_snapshot:
            self._stalled_ticks += 1
            self._retransmit()
            if self._stalled_ticks >= self.config.stall_ticks:
                self._stalled_ticks = 0
                if self.step == RoundStep.PREVOTE:
                    self._vote(Step.PRECOMMIT, NIL)
                    self.step = RoundStep.PRECOMMIT
                elif self.step == RoundStep.PRECOMMIT:
                    self._start_round(self.round + 1)
        else:
            self._stalled_ticks = 0
        self._tick_snapshot = (self.round, int(self.step))
        self._ticks += 1
        self._schedule(self.round, TimeoutStep.GOSSIP)

    def _retransmit(self) -> None:
        rounds = {self.round, self.round - 1, self._locked_round, self._valid_round}
        pm = self._proposals.get(self.round)
        if pm is not None:
            rounds.add(pm.proposal.pol_round)
        for r in sorted(x for x in rounds if x >= 0):
            if r in self._proposals:
                self._out.append(Broadcast(self._proposals[r], True))
            for table in (self._prevotes, self._precommits):
                if r in table:
                    self._out.extend(Broadcast(v, True) for v in table[r].votes())

    def _serve_last_decision(self) -> None:
        """A peer is still on the height we decided: send it what decided it.

        Late votes for that height are normal for a moment after deciding, so only messages
        arriving a full gossip interval later count as a peer that is stuck; and we answer
        at most once per interval however many of its messages arrive.
        """
        last = self._last
        if last is None or self._ticks < last.tick + 2 or self._served_tick == self._ticks:
            return
        self._served_tick = self._ticks
        if last.proposal is not None:
            self._out.append(Broadcast(last.proposal, True))
        self._out.extend(Broadcast(v, True) for v in last.precommits)


def _height_of(msg: Message) -> int:
    return msg.proposal.height if isinstance(msg, ProposalMessage) else msg.height


def _chain_of(msg: Message) -> str:
    return msg.proposal.chain_id if isinstance(msg, ProposalMessage) else msg.chain_id
