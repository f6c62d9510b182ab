"""The piece protocol between clients (uploaders, downloaders, repairers) and providers.

Request kinds on the ordinary P2P transport (``p2p.peers.P2P.request``), so pieces travel in
the same authenticated, encrypted frames as blocks. A client is any process with a ``P2P``
instance dialing the provider's address from its on-chain record. Answers a provider gives
for what it does not hold are ``LookupError`` on its side, "not found: …" on the client's.

An upload starts with ``store/intent``: an ``UploadIntent`` signed by a funded account (the
deal's owner, or a repairer) for one column, bound to this provider, to the P2P identity
that will send the pieces and to a height it expires at. Without one a provider takes no
piece (``storage/admission.py``), and the acceptance it signs names that account.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from smartchain.codec import U32, U64, Bytes, Fixed20, Fixed32, Fixed64, Str, Struct, list_of
from smartchain.crypto.hashing import h256_tagged
from smartchain.crypto.keys import PrivateKey
from smartchain.crypto.merkle import MerkleProof

INTENT = "store/intent"  # payload: ``UploadIntent``; reply b""
PUT = "store/put"
ACCEPT = "store/accept"
GET = "store/get"
RECEIPT = "store/receipt"  # payload: the chain's ``storage.Receipt`` encoding; reply b""

MAX_PIECE = 3 * 1024 * 1024  # a full segment's piece is 2 MiB + pyeclib's 80-byte header


@dataclass(frozen=True, slots=True)
class UploadIntent(Struct):
    """An account's signed request to upload one column to one provider."""

    client: Fixed32  # public key of the account: it pays (deal) or is paid (repair)
    provider: Fixed20
    peer: Fixed32  # the P2P identity that sends the pieces: a copied intent is useless
    file_id: Fixed32
    frag_index: U32
    segments: U32
    column_bytes: U64
    salt: Fixed32  # a new deal: file_id = file_id_of(client's address, salt); a repair: zeros
    epochs: U64  # a new deal's length (0 for a repair): the account must be able to pay it
    expires: U64  # last height pieces are taken under it
    signature: Fixed64


@dataclass(frozen=True, slots=True)
class _IntentBody(Struct):
    chain_id: Str
    intent: UploadIntent


def intent_bytes(chain_id: str, intent: UploadIntent) -> bytes:
    """What the account signs: the intent without its signature, on this chain."""
    body = _IntentBody(chain_id, replace(intent, signature=bytes(64)))
    return h256_tagged(b"smart/store/intent", body.encode())


# Blocks a provider's view of the chain may trail the client's: nodes commit the same block
# moments apart, and a provider busy storing pieces lags a little more.
PEER_LAG_BLOCKS = 16


def intent_expiry(height: int, accept_ttl: int) -> int:
    """The expiry height a client at ``height`` puts in its intents: far enough for the
    upload, near enough that a provider up to ``PEER_LAG_BLOCKS`` behind (which admits
    expiries up to its own height + ``accept_ttl``) still takes it."""
    return height + accept_ttl - min(PEER_LAG_BLOCKS, accept_ttl // 2)


def sign_intent(key: PrivateKey, chain_id: str, *, provider: bytes, peer: bytes,
                file_id: bytes, frag_index: int, segments: int, column_bytes: int,
                salt: bytes = bytes(32), epochs: int = 0, expires: int) -> UploadIntent:
    intent = UploadIntent(key.public_key, provider, peer, file_id, frag_index, segments,
                          column_bytes, salt, epochs, expires, bytes(64))
    return replace(intent, signature=key.sign(intent_bytes(chain_id, intent)))


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
    piece_roots: list_of[Fixed32]


@dataclass(frozen=True, slots=True)
class Acceptance(Struct):
    root: Fixed32  # column root
    column_bytes: U64
    height: U64  # the chain height it was signed at (NewColumn.height)
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
