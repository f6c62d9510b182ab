"""The signer set of a height: voting power, quorums, proposer rotation, commit checks.

Proposer selection is CometBFT's proposer-priority algorithm (weighted round-robin): on each
step every priority grows by its validator's power, the highest priority proposes and pays
back the total power. Over ``total_power`` steps a validator proposes exactly ``power`` times,
interleaved as smoothly as possible. Everything is integer arithmetic on the set alone, so
every node derives the same proposer for (height, round).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from smartchain.codec import U64, Fixed32, Str, Struct, list_of
from smartchain.crypto.hashing import h256_tagged
from smartchain.crypto.keys import PUBLIC_KEY_SIZE, verify_many
from smartchain.types.consensus import NIL, Commit

__all__ = ["MAX_TOTAL_POWER", "Validator", "ValidatorSet", "ValidatorSetData"]

# CometBFT's bound: priorities stay within int64 however the set evolves, so another
# implementation with fixed-width integers computes the same rotation.
MAX_TOTAL_POWER = ((1 << 63) - 1) // 8
PRIORITY_WINDOW_FACTOR = 2  # rescale when max - min priority exceeds 2 * total power
_CHECKPOINT_EVERY = 1024  # cached priority snapshots, so going back costs < 1024 steps
_MAX_CHECKPOINTS = 64

Verifier = Callable[[list[tuple[bytes, bytes, bytes]]], list[bool]]


@dataclass(frozen=True, slots=True)
class Validator(Struct):
    public_key: Fixed32
    power: U64
    name: Str


@dataclass(frozen=True, slots=True)
class ValidatorSetData(Struct):
    """Canonical form of a set: what is hashed, stored and sent."""

    start_height: U64
    validators: list_of[Validator]


def _div_trunc(a: int, b: int) -> int:
    """Integer division rounding toward zero, as Go's ``/`` does (CometBFT rescaling)."""
    q = abs(a) // b
    return q if a >= 0 else -q


class ValidatorSet:
    """An ordered, immutable set of validators, valid from ``start_height`` on.

    Order is as given and is part of the identity: commit signatures refer to validators by
    index. ``start_height`` anchors the proposer rotation: a set installed at an epoch
    boundary starts its rotation there, so finding the proposer never replays the chain's
    whole history.
    """

    __slots__ = ("_by_key", "_checkpoints", "_cursor", "_encoded", "_lock", "_powers",
                 "_total", "start_height", "validators")

    def __init__(self, validators: Iterable[Validator], start_height: int = 1) -> None:
        vals = tuple(validators)
        if not vals:
            raise ValueError("a validator set needs at least one validator")
        if type(start_height) is not int or start_height < 1:
            raise ValueError("start_height must be a positive integer")
        by_key: dict[bytes, int] = {}
        for i, v in enumerate(vals):
            if not isinstance(v, Validator):
                raise ValueError(f"not a Validator: {v!r}")
            if len(v.public_key) != PUBLIC_KEY_SIZE:
                raise ValueError(f"validator {i}: public key must be {PUBLIC_KEY_SIZE} bytes")
            if type(v.power) is not int or v.power <= 0:
                raise ValueError(f"validator {i}: power must be a positive integer")
            if v.public_key in by_key:
                raise ValueError(f"validator {i}: duplicate public key")
            by_key[v.public_key] = i
        total = sum(v.power for v in vals)
        if total > MAX_TOTAL_POWER:
            raise ValueError(f"total power {total} exceeds {MAX_TOTAL_POWER}")
        self.validators = vals
        self.start_height = start_height
        self._by_key = by_key
        self._powers = tuple(v.power for v in vals)
        self._total = total
        self._encoded = ValidatorSetData(start_height, vals).encode()
        zeros = (0,) * len(vals)
        self._cursor: tuple[int, tuple[int, ...]] = (0, zeros)
        self._checkpoints: dict[int, tuple[int, ...]] = {0: zeros}
        self._lock = threading.Lock()

    # -- identity ---------------------------------------------------------------------

    def encode(self) -> bytes:
        return self._encoded

    @classmethod
    def decode(cls, data: bytes) -> ValidatorSet:
        d = ValidatorSetData.decode(data)
        return cls(d.validators, d.start_height)

    def hash(self) -> bytes:
        """Commits to members, powers, order and rotation anchor (all of them decide votes)."""
        return h256_tagged(b"smart/valset", self._encoded)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ValidatorSet) and other._encoded == self._encoded

    def __hash__(self) -> int:
        return hash(self._encoded)

    def __len__(self) -> int:
        return len(self.validators)

    def __iter__(self) -> Iterator[Validator]:
        return iter(self.validators)

    def __repr__(self) -> str:
        names = ", ".join(f"{v.name}:{v.power}" for v in self.validators)
        return f"ValidatorSet(start={self.start_height}, [{names}])"

    # -- power ------------------------------------------------------------------------

    @property
    def total_power(self) -> int:
        return self._total

    @property
    def quorum(self) -> int:
        """Smallest power strictly above 2/3: two quorums always share an honest validator."""
        return self._total * 2 // 3 + 1

    @property
    def skip_power(self) -> int:
        """Smallest power strictly above 1/3: such a group holds at least one honest member,
        so its messages from a higher round justify skipping there."""
        return self._total // 3 + 1

    def index_of(self, public_key: bytes) -> int | None:
        return self._by_key.get(public_key)

    def get(self, index: int) -> Validator:
        if not 0 <= index < len(self.validators):
            raise IndexError(f"validator index {index} out of range")
        return self.validators[index]

    def power_of(self, public_key: bytes) -> int:
        i = self._by_key.get(public_key)
        return 0 if i is None else self._powers[i]

    # -- proposer rotation ------------------------------------------------------------

    def _step(self, prios: tuple[int, ...]) -> tuple[tuple[int, ...], int]:
        """One CometBFT ``IncrementProposerPriority(1)``: rescale, centre, add, pick."""
        total, powers = self._total, self._powers
        diff = max(prios) - min(prios)
        window = PRIORITY_WINDOW_FACTOR * total
        if diff > window:
            ratio = (diff + window - 1) // window
            prios = tuple(_div_trunc(p, ratio) for p in prios)
        avg = sum(prios) // len(prios)  # big.Int Div: floor for a positive divisor
        new = [p - avg + w for p, w in zip(prios, powers, strict=True)]
        best = 0
        for i in range(1, len(new)):
            if new[i] > new[best]:  # ties go to the lowest index
                best = i
        new[best] -= total
        return tuple(new), best

    def _priorities_at(self, k: int) -> tuple[int, ...]:
        """Priorities after ``k`` steps from the all-zero start (cached, incremental)."""
        start_k, prios = self._cursor
        if k < start_k:
            base = max(c for c in self._checkpoints if c <= k)
            start_k, prios = base, self._checkpoints[base]
        for j in range(start_k, k):
            prios, _ = self._step(prios)
            if (j + 1) % _CHECKPOINT_EVERY == 0:
                self._checkpoints[j + 1] = prios
                if len(self._checkpoints) > _MAX_CHECKPOINTS:
                    del self._checkpoints[min(c for c in self._checkpoints if c > 0)]
        self._cursor = (k, prios)
        return prios

    def proposer_index(self, height: int, round: int) -> int:
        """The proposer of (height, round): pick number (height - start) + round."""
        if height < self.start_height or round < 0:
            raise ValueError(f"no proposer for height {height} round {round} "
                             f"(set starts at {self.start_height})")
        k = height - self.start_height + round
        with self._lock:
            return self._step(self._priorities_at(k))[1]

    def proposer(self, height: int, round: int) -> Validator:
        return self.validators[self.proposer_index(height, round)]

    # -- commit certificates ----------------------------------------------------------

    def verify_commit(self, chain_id: str, commit: Commit, block_hash: bytes, height: int,
                      verifier: Verifier | None = None) -> None:
        """Raise ``ValueError`` unless ``commit`` proves > 2/3 of the power precommitted
        ``block_hash`` at ``height``.

        Signatures must be listed by strictly increasing validator index (the form
        ``VoteSet.make_commit`` produces), so a signer cannot be counted twice. Every listed
        signature must verify, not only a quorum of them: a certificate is stored and relayed,
        and must not carry garbage. ``verifier`` lets a node batch the checks in workers.
        """
        items = self.commit_checks(chain_id, commit, block_hash, height)
        results = (verifier or verify_many)(items)
        for sig, ok in zip(commit.signatures, results, strict=True):
            if not ok:
                raise ValueError(f"invalid signature from validator {sig.validator_index}")

    def commit_checks(self, chain_id: str, commit: Commit, block_hash: bytes, height: int
                      ) -> list[tuple[bytes, bytes, bytes]]:
        """``verify_commit`` but for the signatures: raise ``ValueError`` unless the commit
        is well formed and holds a quorum; return its (key, message, signature) triples,
        one per listed signature, every one of which must verify (block sync checks a
        whole range of commits in one batch of the parallel verifier)."""
        if commit.height != height:
            raise ValueError(f"commit is for height {commit.height}, expected {height}")
        if commit.block_hash != block_hash:
            raise ValueError("commit is for a different block")
        if block_hash == NIL:
            raise ValueError("a commit cannot be for nil")
        items: list[tuple[bytes, bytes, bytes]] = []
        power = 0
        prev = -1
        for sig in commit.signatures:
            idx = sig.validator_index
            if idx <= prev:
                raise ValueError(f"duplicate or unordered signer index {idx}")
            if idx >= len(self.validators):
                raise ValueError(f"signer index {idx} out of range")
            prev = idx
            v = self.validators[idx]
            vote = commit.vote_for(chain_id, v.public_key, sig)
            items.append((v.public_key, vote.sign_bytes(), sig.signature))
            power += v.power
        if power < self.quorum:
            raise ValueError(f"commit power {power} below quorum {self.quorum} "
                             f"of {self._total}")
        return items
