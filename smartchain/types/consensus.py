"""Consensus messages that blocks and the state machine must see: votes, proposals,
commit certificates and double-sign evidence. The consensus engine (``smartchain.consensus``)
produces and checks them; they live here because a block carries the previous block's
commit certificate and any evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from smartchain.codec import I64, U8, U32, U64, Bytes, Fixed32, Fixed64, Str, Struct, list_of
from smartchain.crypto.keys import PrivateKey, verify

VOTE_DOMAIN = b"smartchain/vote/v1\x00"
PROPOSAL_DOMAIN = b"smartchain/proposal/v1\x00"
NIL = bytes(32)  # block hash of a vote for nothing


class Step(IntEnum):
    PREVOTE = 1
    PRECOMMIT = 2


@dataclass(frozen=True, slots=True)
class Vote(Struct):
    chain_id: Str
    height: U64
    round: U32
    step: U8  # Step
    block_hash: Fixed32  # NIL for a nil vote
    validator: Fixed32  # Ed25519 public key
    signature: Fixed64

    def sign_bytes(self) -> bytes:
        return VOTE_DOMAIN + self.encode()[:-64]

    def signed_by(self, key: PrivateKey) -> Vote:
        unsigned = replace(self, validator=key.public_key, signature=bytes(64))
        return replace(unsigned, signature=key.sign(unsigned.sign_bytes()))

    def verify(self) -> bool:
        return verify(self.validator, self.sign_bytes(), self.signature)


@dataclass(frozen=True, slots=True)
class Proposal(Struct):
    """A proposer's signed claim: at (height, round) the block is ``block_hash``.

    ``pol_round`` is the round of the proof-of-lock the proposer re-proposes from (-1: none).
    """

    chain_id: Str
    height: U64
    round: U32
    pol_round: I64
    block_hash: Fixed32
    proposer: Fixed32
    signature: Fixed64

    def sign_bytes(self) -> bytes:
        return PROPOSAL_DOMAIN + self.encode()[:-64]

    def signed_by(self, key: PrivateKey) -> Proposal:
        unsigned = replace(self, proposer=key.public_key, signature=bytes(64))
        return replace(unsigned, signature=key.sign(unsigned.sign_bytes()))

    def verify(self) -> bool:
        return verify(self.proposer, self.sign_bytes(), self.signature)


@dataclass(frozen=True, slots=True)
class CommitSig(Struct):
    """One precommit in a certificate: the validator's index in the set and its signature."""

    validator_index: U32
    signature: Fixed64


@dataclass(frozen=True, slots=True)
class Commit(Struct):
    """Commit certificate: precommits for ``block_hash`` from more than 2/3 of the power."""

    height: U64
    round: U32
    block_hash: Fixed32
    signatures: list_of[CommitSig]

    def vote_for(self, chain_id: str, validator: bytes, sig: CommitSig) -> Vote:
        """The precommit a CommitSig stands for (to check its signature)."""
        return Vote(chain_id, self.height, self.round, int(Step.PRECOMMIT), self.block_hash,
                    validator, sig.signature)


EMPTY_COMMIT = Commit(0, 0, NIL, ())


@dataclass(frozen=True, slots=True)
class ProposalMessage(Struct):
    """A proposal on the wire travels with its block, so a receiver can check the hash and
    vote at once instead of fetching the block in a second round trip."""

    proposal: Proposal
    block: Bytes


@dataclass(frozen=True, slots=True)
class DuplicateVoteEvidence(Struct):
    """Two votes by one validator for the same (height, round, step) but different blocks."""

    vote_a: Vote
    vote_b: Vote

    def is_valid(self, chain_id: str) -> bool:
        a, b = self.vote_a, self.vote_b
        return (a.chain_id == b.chain_id == chain_id and a.validator == b.validator
                and (a.height, a.round, a.step) == (b.height, b.round, b.step)
                and a.block_hash != b.block_hash and a.encode() < b.encode()
                and a.verify() and b.verify())
