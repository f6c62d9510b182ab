"""The double-sign guard: a signer that remembers, on disk, the last thing it signed.

Double signing is the one fault that gets a validator slashed and banned, and the classic
way to commit it is a crash at the wrong instant: sign a vote, die before remembering it,
restart and sign a different vote for the same round. So the record of a signature reaches
the disk (written to a temporary file, fsynced, renamed over the old one, directory fsynced)
*before* the signature leaves this object. A crash at any point leaves either the old record
or the new one, never a torn file, and never a released signature without its record.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace
from enum import IntEnum
from pathlib import Path

from smartchain.codec import U8, U32, U64, CodecError, Fixed32, Fixed64, Struct
from smartchain.crypto.hashing import h256, h256_tagged
from smartchain.crypto.keys import PrivateKey
from smartchain.types.consensus import Proposal, Step, Vote

__all__ = ["DoubleSignError", "DurableSigner", "SignState", "SignStep", "SignerStateError"]

_MAGIC = b"smartchain/sign-state/v1\n"
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
    """The last signature released: its position, what was signed, and the signature."""

    public_key: Fixed32
    height: U64
    round: U32
    step: U8
    sign_bytes_hash: Fixed32
    signature: Fixed64

    @property
    def hrs(self) -> tuple[int, int, int]:
        return (self.height, self.round, self.step)


class DurableSigner:
    """Signs proposals and votes for one key, never twice differently at one (h, r, step).

    Re-signing identical bytes at the last position returns the same signature (a node that
    restarts mid-round may legitimately redo its last vote). Thread-safe.
    """

    def __init__(self, key: PrivateKey, path: Path | str) -> None:
        self._key = key
        self.path = Path(path)
        self._lock = threading.Lock()
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
        sig = self.sign(unsigned.height, unsigned.round, vote.step, unsigned.sign_bytes())
        return replace(unsigned, signature=sig)

    def sign_proposal(self, proposal: Proposal) -> Proposal:
        unsigned = replace(proposal, proposer=self._key.public_key, signature=bytes(64))
        sig = self.sign(unsigned.height, unsigned.round, SignStep.PROPOSAL,
                        unsigned.sign_bytes())
        return replace(unsigned, signature=sig)

    def sign(self, height: int, round: int, step: int, sign_bytes: bytes) -> bytes:
        """Signature of ``sign_bytes`` at position (height, round, step), or DoubleSignError."""
        digest = h256(sign_bytes)
        with self._lock:
            last = self._state
            if last is not None:
                if (height, round, step) < last.hrs:
                    raise DoubleSignError(f"already signed at {last.hrs}, refusing to sign at "
                                          f"{(height, round, step)}")
                if (height, round, step) == last.hrs:
                    if digest == last.sign_bytes_hash:
                        return last.signature
                    raise DoubleSignError(f"already signed different bytes at {last.hrs}")
            sig = self._key.sign(sign_bytes)
            new = SignState(self._key.public_key, height, round, int(step), digest, sig)
            self._persist(new)  # raises: the signature is not released
            self._state = new
            return sig

    # -- the file ---------------------------------------------------------------------

    def _load(self) -> SignState | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        body = data[len(_MAGIC):-32]
        if not data.startswith(_MAGIC) or h256_tagged(_CHECK_TAG, body) != data[-32:]:
            raise SignerStateError(f"{self.path}: corrupt sign-state file")
        try:
            state = SignState.decode(body)
        except CodecError as exc:
            raise SignerStateError(f"{self.path}: corrupt sign-state file: {exc}") from exc
        if state.public_key != self._key.public_key:
            raise SignerStateError(f"{self.path}: sign state belongs to another key")
        return state

    def _persist(self, state: SignState) -> None:
        body = state.encode()
        data = _MAGIC + body + h256_tagged(_CHECK_TAG, body)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        if os.name == "posix":  # make the rename itself durable
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
