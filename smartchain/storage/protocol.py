"""The piece protocol between clients (uploaders, downloaders, repairers) and providers.

Request kinds on the ordinary P2P transport (``p2p.peers.P2P.request``), so pieces travel in
the same authenticated, encrypted frames as blocks. A client is any process with a ``P2P``
instance dialing the provider's address from its on-chain record. Answers a provider gives
for what it does not hold are ``LookupError`` on its side, "not found: …" on the client's.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64, Bytes, Fixed32, Fixed64, Struct, list_of
from smartchain.crypto.merkle import MerkleProof

PUT = "store/put"
ACCEPT = "store/accept"
GET = "store/get"
RECEIPT = "store/receipt"  # payload: the chain's ``storage.Receipt`` encoding; reply b""

MAX_PIECE = 3 * 1024 * 1024  # a full segment's piece is 2 MiB + pyeclib's 80-byte header


@dataclass(frozen=True, slots=True)
class PutPiece(Struct):
    file_id: Fixed32
    frag_index: U32
    segment: U32
    piece: Bytes


@dataclass(frozen=True, slots=True)
class PutAck(Struct):
    piece_root: Fixed32


@dataclass(frozen=True, slots=True)
class AcceptColumn(Struct):
    """Asks the provider to sign that it holds a whole column (pieces already put)."""

    file_id: Fixed32
    frag_index: U32
    segments: U32
    piece_roots: list_of(Fixed32)


@dataclass(frozen=True, slots=True)
class Acceptance(Struct):
    root: Fixed32  # column root
    column_bytes: U64
    signature: Fixed64  # over storage.acceptance_bytes(...): goes into the deal transaction


@dataclass(frozen=True, slots=True)
class GetPiece(Struct):
    file_id: Fixed32
    frag_index: U32
    segment: U32


@dataclass(frozen=True, slots=True)
class PieceReply(Struct):
    piece: Bytes
    column_path: MerkleProof  # piece root -> column root on chain (index = segment)
