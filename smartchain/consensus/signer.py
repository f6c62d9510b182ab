"""The double-sign guard: a signer that remembers, on disk, the last thing it signed.

Double signing is the one fault that gets a validator slashed and banned, and the classic
way to commit it is a crash at the wrong instant: sign a vote, die before remembering it,
restart and sign a different vote for the same round. So the record of a signature reaches
the disk (written to a temporary file, fsynced, renamed over the old one, directory fsynced)
*before* the signature leaves this object. A crash at any point leaves either the old record
or the new one, never a torn file, and never a released signature without its record.

Next to it, the signer keeps the *lock record*: the block this validator last locked on and
the prevotes that justified the lock. Without it, a network whose validators all crash
after locking on a block (a devnet on one machine, a power cut) would come back locked on
a block nobody holds, and halt for good; with it, the lock can still be re-proposed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

from smartchain.codec import (
    I64,
    U8,
    U32,
    U64,
    Bytes,
    CodecError,
    Fixed32,
    Fixed64,
    Struct,
    list_of,
)
from smartchain.crypto.hashing import h256, h256_tagged
from smartchain.crypto.keys import PrivateKey
from smartchain.durable import write_durably
from smartchain.types.consensus import NIL, VOTE_DOMAIN, Proposal, Step, Vote

__all__ = ["DoubleSignError", "DurableSigner", "LockRecord", "SignState", "SignStep",
           "SignerStateError"]

_MAGIC = b"smartchain/sign-state/v1\n"
_LOCK_MAGIC = b"smartchain/lock-record/v1\n"
_CHECK_TAG = b"smart/signstate"


class DoubleSignError(Exception):
    """Signing this would contradict something already signed (or go back in time)."""


class SignerStateError(Exception):
    """The state file is unreadable or belongs to another key: refuse to sign at all rather
    than guess (an operator must look)."""


class SignStep(IntEnum):
    """Order of signatures within a round: proposal, then prevote, then precommit."""

    PROPOSAL = 0
    PREVOTE = int(Step.PREVOTE)
    PRECOMMIT = int(Step.PRECOMMIT)


@dataclass(frozen=True, slots=True)
class SignState(Struct):
    """The last signature released: its position, what was signed, and the signature.

    It also keeps the signed bytes themselves and this height's lock (the last non-nil
    precommit: a precommit for a block *is* the lock of the paper's line 36), so a
    restarted engine can resend its last vote and keep its lock instead of forgetting both.
    """

    public_key: Fixed32
    height: U64
    round: U32
    step: U8
    sign_bytes_hash: Fixed32
    signature: Fixed64
    sign_bytes: Bytes
    locked_round: I64  # -1: not locked at ``height``
    locked_hash: Fixed32

    @property
    def hrs(self) -> tuple[int, int, int]:
        return (self.height, self.round, self.step)

    def vote(self) -> Vote | None:
        """The signed vote, if the last signature was a vote."""
        if self.step == SignStep.PROPOSAL or not self.sign_bytes.startswith(VOTE_DOMAIN):
            return None
        return Vote.decode(self.sign_bytes[len(VOTE_DOMAIN):] + self.signature)


@dataclass(frozen=True, slots=True)
class LockRecord(Struct):
    """A locked block with its proof of lock (+2/3 prevotes for it in ``round``)."""

    height: U64
    round: U32
    block: Bytes
    prevotes: list_of[Vote]


def _seal(magic: bytes, body: bytes) -> bytes:
    return magic + body + h256_tagged(_CHECK_TAG, magic + body)


def _unseal(magic: bytes, data: bytes) -> bytes | None:
    body = data[len(magic):-32]
    if len(data) < len(magic) + 32 or not data.startswith(magic) \
            or h256_tagged(_CHECK_TAG, magic + body) != data[-32:]:
        return None
    return body


class DurableSigner:
    """Signs proposals and votes for one key, never twice differently at one (h, r, step).

    Re-signing identical bytes at the last position returns the same signature (a node that
    restarts mid-round may legitimately redo its last vote). Thread-safe.
    """

    def __init__(self, key: PrivateKey, path: Path | str) -> None:
        self._key = key
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._mutex = threading.Lock()
        self._state = self._load()

    @property
    def public_key(self) -> bytes:
        return self._key.public_key

    @property
    def last(self) -> SignState | None:
        """The last signature released (None: this key never signed anything)."""
        return self._state

    def sign_vote(self, vote: Vote) -> Vote:
        """``vote`` signed by this key (its validator and signature fields are replaced)."""
        if vote.step not in (SignStep.PREVOTE, SignStep.PRECOMMIT):
            raise ValueError(f"unknown vote step {vote.step}")
        unsigned = replace(vote, validator=self._key.public_key, signature=bytes(64))
        lock = None
        if vote.step == SignStep.PRECOMMIT and vote.block_hash != NIL:
            lock = (vote.round, vote.block_hash)
        sig = self.sign(unsigned.height, unsigned.round, vote.step, unsigned.sign_bytes(), lock)
        return replace(unsigned, signature=sig)

    def sign_proposal(self, proposal: Proposal) -> Proposal:
        unsigned = replace(proposal, proposer=self._key.public_key, signature=bytes(64))
        sig = self.sign(unsigned.height, unsigned.round, SignStep.PROPOSAL,
                        unsigned.sign_bytes())
        return replace(unsigned, signature=sig)

    def sign(self, height: int, round: int, step: int, sign_bytes: bytes,
             lock: tuple[int, bytes] | None = None) -> bytes:
        """Signature of ``sign_bytes`` at position (height, round, step), or DoubleSignError.
        ``lock`` is set when this signature locks a block (a non-nil precommit)."""
        digest = h256(sign_bytes)
        with self._mutex:
            last = self._state
            if last is not None:
                if (height, round, step) < last.hrs:
                    raise DoubleSignError(f"already signed at {last.hrs}, refusing to sign at "
                                          f"{(height, round, step)}")
                if (height, round, step) == last.hrs:
                    if digest == last.sign_bytes_hash:
                        return last.signature
                    raise DoubleSignError(f"already signed different bytes at {last.hrs}")
            if lock is None:
                lock = (-1, NIL)
                if last is not None and last.height == height:
                    lock = (last.locked_round, last.locked_hash)
            sig = self._key.sign(sign_bytes)
            new = SignState(self._key.public_key, height, round, int(step), digest, sig,
                            sign_bytes, lock[0], lock[1])
            self._persist(new)  # raises: the signature is not released
            self._state = new
            return sig

    # -- the file ---------------------------------------------------------------------

    def save_lock(self, record: LockRecord) -> None:
        """Durably remember a lock before the precommit that takes it is signed."""
        with self._mutex:
            write_durably(self.lock_path, _seal(_LOCK_MAGIC, record.encode()))

    def lock_record(self, height: int) -> LockRecord | None:
        """The saved lock of ``height``, if any. A damaged record reads as none: the lock
        itself (round and hash) is in the sign state, so safety does not depend on it."""
        try:
            body = _unseal(_LOCK_MAGIC, self.lock_path.read_bytes())
            record = LockRecord.decode(body) if body is not None else None
        except (OSError, CodecError):
            return None
        return record if record is not None and record.height == height else None

    def _load(self) -> SignState | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        body = _unseal(_MAGIC, data)
        if body is None:
            raise SignerStateError(f"{self.path}: corrupt sign-state file")
        try:
            state = SignState.decode(body)
        except CodecError as exc:
            raise SignerStateError(f"{self.path}: corrupt sign-state file: {exc}") from exc
        if state.public_key != self._key.public_key:
            raise SignerStateError(f"{self.path}: sign state belongs to another key")
        return state

    def _persist(self, state: SignState) -> None:
        write_durably(self.path, _seal(_MAGIC, state.encode()))
