"""Votes of one (height, round, step): who voted for what, and whether a quorum formed."""

from __future__ import annotations

from collections.abc import Iterable

from smartchain.consensus.validators import ValidatorSet
from smartchain.types.consensus import (
    NIL,
    Commit,
    CommitSig,
    DuplicateVoteEvidence,
    Step,
    Vote,
)

__all__ = ["InvalidVote", "VoteSet", "make_evidence"]


class InvalidVote(ValueError):
    """The vote can never count here: wrong chain/height/round/step, non-member, bad signature.
    (A *conflicting* vote is not invalid: it is evidence.)"""


def make_evidence(a: Vote, b: Vote) -> DuplicateVoteEvidence:
    """Evidence in its one canonical order, so every node submits identical bytes."""
    return DuplicateVoteEvidence(a, b) if a.encode() < b.encode() else DuplicateVoteEvidence(b, a)


class VoteSet:
    """Votes of one (height, round, step), tallied per block as the paper counts them.

    A validator's first vote counts towards "+2/3 of anything" (timeouts) once. A second,
    different vote is evidence, and also counts towards its own block if that block is
    *tracked* (NIL or a block some proposal at this height carries): the paper counts every
    signed message for a value, and liveness needs it. Honest validators locked on a block
    whose proof of lock includes an equivocator's vote can only be unlocked by others that
    count that vote, even if they first saw the equivocator vote otherwise. Votes for
    untracked blocks are parked (two per validator) until a proposal makes them relevant,
    so a byzantine validator cannot grow the tally without bound. One piece of evidence is
    kept per validator: one is enough to punish.
    """

    MAX_PARKED = 2

    def __init__(self, chain_id: str, height: int, round: int, step: Step | int,
                 valset: ValidatorSet, tracked: Iterable[bytes] = ()) -> None:
        self.chain_id = chain_id
        self.height = height
        self.round = round
        self.step = Step(step)
        self.valset = valset
        self._first: dict[int, Vote] = {}
        self._tally: dict[bytes, dict[int, Vote]] = {}
        self._power: dict[bytes, int] = {}
        self._sum = 0
        self._maj: bytes | None = None
        self._tracked: set[bytes] = {NIL, *tracked}
        self._parked: dict[int, list[Vote]] = {}
        self._evidence_from: set[int] = set()
        self.evidence: list[DuplicateVoteEvidence] = []

    def add(self, vote: Vote) -> bool:
        """Count ``vote``; True if a tally changed. Raises ``InvalidVote`` for a vote that
        can never count here. A conflicting vote is also appended to ``self.evidence``."""
        if (vote.chain_id != self.chain_id or vote.height != self.height
                or vote.round != self.round or vote.step != self.step):
            raise InvalidVote(f"vote for {vote.chain_id}/{vote.height}/{vote.round}/"
                              f"{vote.step} does not belong to this vote set")
        idx = self.valset.index_of(vote.validator)
        if idx is None:
            raise InvalidVote("vote from a non-validator")
        first = self._first.get(idx)
        if first is None:
            if not vote.verify():
                raise InvalidVote("bad vote signature")
            self._first[idx] = vote
            self._sum += self.valset.validators[idx].power
            self._count(idx, vote)
            return True
        # Already counted or parked for this block: a retransmission (or a re-encoded
        # signature of the same vote), nothing new either way.
        if idx in self._tally.get(vote.block_hash, ()):
            return False
        parked = self._parked.setdefault(idx, [])
        if any(p.block_hash == vote.block_hash for p in parked):
            return False
        if not vote.verify():
            raise InvalidVote("bad vote signature")
        if idx not in self._evidence_from:
            self._evidence_from.add(idx)
            self.evidence.append(make_evidence(first, vote))
        if vote.block_hash in self._tracked:
            self._count(idx, vote)
            return True
        if len(parked) < self.MAX_PARKED:
            parked.append(vote)
        return False

    def _count(self, idx: int, vote: Vote) -> None:
        self._tally.setdefault(vote.block_hash, {})[idx] = vote
        tally = self._power.get(vote.block_hash, 0) + self.valset.validators[idx].power
        self._power[vote.block_hash] = tally
        if self._maj is None and tally >= self.valset.quorum:
            self._maj = vote.block_hash

    def track(self, block_hash: bytes) -> bool:
        """Make votes for ``block_hash`` count even from equivocators (a proposal carries it).
        True if parked votes were counted."""
        if block_hash in self._tracked:
            return False
        self._tracked.add(block_hash)
        changed = False
        for idx, parked in self._parked.items():
            for v in [p for p in parked if p.block_hash == block_hash]:
                parked.remove(v)
                self._count(idx, v)
                changed = True
        return changed

    def two_thirds_majority(self) -> bytes | None:
        """The block hash (or NIL) holding more than 2/3 of the power, if any."""
        return self._maj

    def has_two_thirds_any(self) -> bool:
        """More than 2/3 of the power voted, whatever for: the round can time out."""
        return self._sum >= self.valset.quorum

    def power_for(self, block_hash: bytes) -> int:
        return self._power.get(block_hash, 0)

    @property
    def voted_power(self) -> int:
        """Power of the validators that voted at all (each once)."""
        return self._sum

    def get(self, index: int) -> Vote | None:
        """The first vote of validator ``index``."""
        return self._first.get(index)

    def votes(self, block_hash: bytes | None = None) -> list[Vote]:
        """Counted votes (for ``block_hash`` only, if given) by validator index."""
        if block_hash is not None:
            tally = self._tally.get(block_hash, {})
            return [tally[i] for i in sorted(tally)]
        found = [(i, h, v) for h, t in self._tally.items() for i, v in t.items()]
        return [v for _, _, v in sorted(found, key=lambda x: (x[0], x[1]))]

    def __len__(self) -> int:
        """Number of validators that voted."""
        return len(self._first)

    def make_commit(self) -> Commit:
        """The certificate for this round's decided block: its precommits by validator index."""
        if self.step != Step.PRECOMMIT:
            raise ValueError("a commit is made from precommits")
        maj = self._maj
        if maj is None or maj == NIL:
            raise ValueError("no +2/3 precommits for a block")
        tally = self._tally[maj]
        sigs = tuple(CommitSig(i, tally[i].signature) for i in sorted(tally))
        return Commit(self.height, self.round, maj, sigs)
