"""Block headers and blocks.

The header commits to the transactions (``tx_root``), their receipts and the state after
executing them (``state_root``), so two nodes agree on a height exactly when they agree
on its header hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U64, Bytes, Fixed32, Fixed64, Str, Struct, list_of
from smartchain.crypto.hashing import h256_tagged
from smartchain.types.consensus import Commit, DuplicateVoteEvidence

HEADER_TAG = b"smart/header"
ZERO_HASH = bytes(32)


@dataclass(frozen=True, slots=True)
class BlockHeader(Struct):
    chain_id: Str
    height: U64
    time_ms: U64  # proposer's clock, strictly increasing; the only time the state machine sees
    prev_hash: Fixed32
    tx_root: Fixed32
    receipts_root: Fixed32
    state_root: Fixed32
    last_commit_hash: Fixed32  # hash of the previous block's commit certificate
    evidence_hash: Fixed32  # hash of the evidence list carried by this block
    proposer: Fixed32  # Ed25519 public key of the signer that made the block

    def hash(self) -> bytes:
        return h256_tagged(HEADER_TAG, self.encode())


@dataclass(frozen=True, slots=True)
class Block(Struct):
    header: BlockHeader
    txs: list_of[Bytes]  # canonical transaction encodings, in execution order
    last_commit: Commit  # +2/3 precommits for the previous block (empty at height 1)
    evidence: list_of[DuplicateVoteEvidence]  # double-signing seen by the proposer
    signature: Fixed64  # proposer's signature over the header hash

    def hash(self) -> bytes:
        return self.header.hash()


def commit_hash(commit: Commit) -> bytes:
    return h256_tagged(b"smart/commit", commit.encode())


def evidence_hash(evidence: tuple[DuplicateVoteEvidence, ...]) -> bytes:
    return h256_tagged(b"smart/evidence", *(e.encode() for e in evidence))
