"""The storage module's wire types: payloads, stored records, views and constants.

Importable on their own (codec, crypto and shared types only), so an SDK or a device can
build and read storage transactions without the node.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from smartchain.codec import (
    U8,
    U32,
    U64,
    U128,
    Bool,
    Bytes,
    Fixed16,
    Fixed20,
    Fixed32,
    Fixed64,
    Str,
    Struct,
    list_of,
)
from smartchain.crypto.hashing import h256_tagged
from smartchain.crypto.keys import PrivateKey
from smartchain.crypto.merkle import MerkleProof, node_hash

MODULE_ACCOUNT = h256_tagged(b"smart/module", b"storage")[:20]

GIB = 1 << 30
LEAF_SIZE = 1024  # bytes of a piece one audit leaf covers
MAX_PIECE_SIZE = 64 * 1024 * 1024  # a piece travels as one codec ``Bytes``
MAX_CODE_N = 256  # hard bound before the ``storage_max_columns`` parameter is read
MAX_EPOCHS = 1_000_000
MAX_P2P = 256  # characters of a provider's P2P address
MAX_PROOFS = 1_024  # audit proofs in one transaction
MAX_RECEIPTS = 1_024  # bandwidth receipts in one transaction
MAX_AUDIT_LEAVES = 64  # challenges per column per epoch, whatever the parameter says

SIGNATURE_GAS = 5_000  # each Ed25519 verification (acceptances, receipts)
HASH_GAS = 50  # each hash of an audit proof (a leaf of <= 1 KiB, or an inner node)

INITIAL_REPUTATION = 1_000
MAX_REPUTATION = 1_000_000
REPUTATION_GAIN = 1  # per column-epoch proven
REPUTATION_SLASH = 100  # per column-epoch missed
BPS = 10_000

ACTIVE, ENDED, CANCELLED = range(3)
DEAL_STATUS = ("active", "ended", "cancelled")

PROVIDER_PREFIX = b"storage/prov/"  # + address -> StorageProvider
DEAL_PREFIX = b"storage/deal/"  # + file_id -> Deal
OWNER_PREFIX = b"storage/owner/"  # + owner + file_id: every deal an owner made
LIVE_PREFIX = b"storage/live/"  # + file_id: active deals, visited each epoch
HOLD_PREFIX = b"storage/hold/"  # + provider + file_id + frag: columns of active deals
CHALLENGE_PREFIX = b"storage/chal/"  # + provider + file_id + frag + segment + leaf
CLAIMED_PREFIX = b"storage/claimed/"  # + receipt height + receipt id: bandwidth claimed
MARK = b"\x01"

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")


# --- stored records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StorageProvider(Struct):
    pubkey: Fixed32  # signs acceptances
    capacity: U64  # bytes offered
    used: U64  # bytes of the columns it holds
    price: U64  # base units per GiB per epoch
    bandwidth_price: U64  # base units per GiB served
    collateral: U128  # locked in MODULE_ACCOUNT
    reputation: U64
    p2p: Str  # dialable P2P address, as ``P2P.address`` prints it
    active: Bool  # takes new columns
    misses: U32  # column-epochs missed, in total


@dataclass(frozen=True, slots=True)
class Column(Struct):
    provider: Fixed20
    frag_index: U32
    root: Fixed32  # root_of_hashes(piece roots of this fragment index, segment order)
    healthy: Bool
    price: U64  # per GiB per epoch this column is paid
    round: U32 = 0  # placements since the deal: 0, then one more per repair
    repairer: Fixed20 = bytes(20)  # who placed it by the last repair (zeros: none)
    bounty: U128 = 0  # repair reward held until the repaired column passes an audit


@dataclass(frozen=True, slots=True)
class Deal(Struct):
    owner: Fixed20
    salt: Fixed32
    size: U64  # plaintext bytes
    k: U32
    code_n: U32
    segments: U32
    piece_size: U64
    last_piece_size: U64
    start_epoch: U64  # first epoch audited and paid
    end_epoch: U64  # first epoch no longer paid: the deal ends at its start
    repair_threshold: U32  # repairs open when fewer columns than this are healthy
    escrow: U128  # storage payments left
    repair_budget: U128
    columns: list_of[Column]
    status: U8


@dataclass(frozen=True, slots=True)
class Challenge(Struct):
    leaf: U32
    deadline: U64  # last height a proof is accepted at


# --- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RegisterProvider(Struct):
    """Register, or update a registered provider's terms; ``collateral`` is added."""

    capacity: U64
    price: U64
    bandwidth_price: U64
    collateral: U128
    p2p: Str
    pubkey: Fixed32  # the sender's public key (its address is checked against it)


@dataclass(frozen=True, slots=True)
class DeregisterProvider(Struct):
    pass


@dataclass(frozen=True, slots=True)
class NewColumn(Struct):
    provider: Fixed20
    frag_index: U32
    root: Fixed32
    height: U64  # the chain height the provider signed at: good for ``storage_accept_ttl``
    signature: Fixed64  # provider's signature of ``acceptance_bytes``


@dataclass(frozen=True, slots=True)
class CreateDeal(Struct):
    salt: Fixed32
    size: U64
    k: U32
    code_n: U32
    segments: U32
    piece_size: U64
    last_piece_size: U64
    epochs: U64
    repair_threshold: U32
    columns: list_of[NewColumn]
    max_cost: U128 = 0  # escrow + repair budget the owner accepts at most; 0: no bound


@dataclass(frozen=True, slots=True)
class AuditProof(Struct):
    file_id: Fixed32
    frag_index: U32
    segment: U32
    chunk: Bytes  # the challenged leaf's bytes (1 KiB, the piece's last leaf may be shorter)
    piece_path: MerkleProof  # chunk leaf -> piece root
    column_path: MerkleProof  # piece root -> column root


@dataclass(frozen=True, slots=True)
class Prove(Struct):
    proofs: list_of[AuditProof]


@dataclass(frozen=True, slots=True)
class Repair(Struct):
    file_id: Fixed32
    frag_index: U32
    new: NewColumn


@dataclass(frozen=True, slots=True)
class CancelDeal(Struct):
    file_id: Fixed32


@dataclass(frozen=True, slots=True)
class Receipt(Struct):
    """A client's signed promise to pay a provider for bytes it served."""

    client: Fixed32  # public key; its address pays
    provider: Fixed20
    file_id: Fixed32
    bytes: U64
    amount: U128
    height: U64  # chain height when signed: claimable until height + storage_receipt_ttl
    nonce: Fixed16
    signature: Fixed64


@dataclass(frozen=True, slots=True)
class ClaimBandwidth(Struct):
    receipts: list_of[Receipt]


PAYLOADS: dict[str, type[Struct]] = {
    "storage/register_provider": RegisterProvider,
    "storage/deregister_provider": DeregisterProvider,
    "storage/create_deal": CreateDeal,
    "storage/prove": Prove,
    "storage/repair": Repair,
    "storage/cancel_deal": CancelDeal,
    "storage/claim_bandwidth": ClaimBandwidth,
}


# --- what clients and providers compute the same way ---------------------------------------


@dataclass(frozen=True, slots=True)
class _Acceptance(Struct):
    chain_id: Str
    file_id: Fixed32
    frag_index: U32
    root: Fixed32
    column_bytes: U64
    segments: U32
    round: U32  # 0 in the deal, the column's round + 1 in a repair: never valid twice
    height: U64
    uploader: Fixed20  # the account that sent the pieces: the only one that may post it


@dataclass(frozen=True, slots=True)
class _ReceiptBody(Struct):
    chain_id: Str
    client: Fixed32
    provider: Fixed20
    file_id: Fixed32
    bytes: U64
    amount: U128
    height: U64
    nonce: Fixed16


def file_id_of(owner: bytes, salt: bytes) -> bytes:
    """A deal's id, from the owner's address and a salt it chose: owners never collide, and
    an owner picks a fresh salt per deal (an id is never reused, even after its deal ends)."""
    return h256_tagged(b"smart/store/file", owner + salt)


def acceptance_bytes(chain_id: str, file_id: bytes, frag_index: int, root: bytes,
                     column_bytes: int, segments: int, round: int, height: int,
                     uploader: bytes) -> bytes:
    """What a provider signs to accept a column: placement ``round`` of it (0 in the deal),
    at chain ``height``, uploaded by (and only postable by) the account ``uploader``."""
    body = _Acceptance(chain_id, file_id, frag_index, root, column_bytes, segments, round,
                       height, uploader)
    return h256_tagged(b"smart/store/accept", body.encode())


def receipt_bytes(chain_id: str, r: Receipt) -> bytes:
    """What a client signs for a receipt (every field but the signature); also the id under
    which a claimed receipt is remembered."""
    body = _ReceiptBody(chain_id, r.client, r.provider, r.file_id, r.bytes, r.amount, r.height,
                        r.nonce)
    return h256_tagged(b"smart/store/receipt", body.encode())


def bandwidth_amount(nbytes: int, bandwidth_price: int) -> int:
    """What serving ``nbytes`` costs at a price per GiB (rounded up)."""
    return -(-nbytes * bandwidth_price // GIB)


def sign_receipt(key: PrivateKey, chain_id: str, provider: bytes, file_id: bytes, nbytes: int,
                 amount: int, height: int, nonce: bytes) -> Receipt:
    """A receipt signed by ``key`` (the client)."""
    r = Receipt(key.public_key, provider, file_id, nbytes, amount, height, nonce, bytes(64))
    return replace(r, signature=key.sign(receipt_bytes(chain_id, r)))


def column_bytes(segments: int, piece_size: int, last_piece_size: int) -> int:
    return (segments - 1) * piece_size + last_piece_size


def deal_column_bytes(deal: Deal) -> int:
    return column_bytes(deal.segments, deal.piece_size, deal.last_piece_size)


def piece_length(deal: Deal, segment: int) -> int:
    return deal.last_piece_size if segment == deal.segments - 1 else deal.piece_size


def leaf_count(piece_len: int) -> int:
    """Leaves of a piece's tree: its 1 KiB chunks (an empty piece has one empty leaf)."""
    return max(1, -(-piece_len // LEAF_SIZE))


def cancel_writes(audit_leaves: int, columns: int) -> int:
    """The most cancelling a deal of ``columns`` columns writes, charged whatever this
    epoch's audit holds: per column its open challenges (``audit_leaves``, the
    ``storage_audit_segments`` param), its payment (two balances), its hold and its
    provider's record; then the deal's live mark, the owner's refund (two balances) and
    the deal itself."""
    return columns * (max(1, audit_leaves) + 4) + 4


def epoch_fee(price: int, nbytes: int) -> int:
    """What one column earns per proven epoch (rounded up)."""
    return -(-price * nbytes // GIB)


def deal_cost(prices: list[int], nbytes: int, epochs: int, repair_bps: int) -> tuple[int, int]:
    """(escrow, repair budget) a deal with columns at ``prices`` locks from its owner."""
    escrow = epochs * sum(epoch_fee(p, nbytes) for p in prices)
    return escrow, escrow * repair_bps // BPS


def epoch_of(height: int, epoch_blocks: int) -> int:
    return height // max(1, epoch_blocks)


def column_leaves(deal: Deal) -> int:
    return (deal.segments - 1) * leaf_count(deal.piece_size) + leaf_count(deal.last_piece_size)


def audit_picks(beacon: bytes, file_id: bytes, frag_index: int, deal: Deal,
                count: int) -> list[tuple[int, int]]:
    """The distinct (segment, leaf) pairs a column is challenged on, all from the beacon:
    ``min(count, 64, leaves of the column)`` of them, on distinct segments while a segment
    is left (a drawn segment already taken moves to the next free one), then more leaves of
    the same segments (a taken leaf moves to the next free one). Leaves, not segments, are
    what a provider can drop: a one-segment file is challenged ``count`` times too."""
    segments = deal.segments
    taken: dict[int, set[int]] = {}
    picks = []
    for j in range(min(count, MAX_AUDIT_LEAVES, column_leaves(deal))):
        d = h256_tagged(b"smart/store/audit", beacon, file_id, _U32.pack(frag_index),
                        _U32.pack(j))
        s = int.from_bytes(d[:8], "big") % segments
        if len(taken) < segments:
            while s in taken:
                s = (s + 1) % segments
        else:
            while len(taken[s]) == leaf_count(piece_length(deal, s)):
                s = (s + 1) % segments
        leaves = leaf_count(piece_length(deal, s))
        used = taken.setdefault(s, set())
        leaf = int.from_bytes(d[8:16], "big") % leaves
        while leaf in used:
            leaf = (leaf + 1) % leaves
        used.add(leaf)
        picks.append((s, leaf))
    return picks


def climb(leaf: bytes, proof: MerkleProof) -> bytes | None:
    """The root ``leaf`` (already hashed) reaches along ``proof``, or None for a path of
    the wrong length: ``crypto.merkle``'s descent, returning the root instead of comparing
    it (the chain does not store piece roots)."""
    if not 0 <= proof.index < proof.size:
        return None
    sides: list[bool] = []  # True: our subtree is the left child
    lo, hi = 0, proof.size
    while hi - lo > 1:
        k = 1
        while k * 2 < hi - lo:
            k *= 2
        left = proof.index < lo + k
        sides.append(left)
        lo, hi = (lo, lo + k) if left else (lo + k, hi)
    if len(sides) != len(proof.path):
        return None
    acc = leaf
    for sibling, is_left in zip(proof.path, reversed(sides), strict=True):
        acc = node_hash(acc, sibling) if is_left else node_hash(sibling, acc)
    return acc


@dataclass(frozen=True, slots=True)
class ProviderView(Struct):
    address: Fixed20
    provider: StorageProvider


@dataclass(frozen=True, slots=True)
class DealView(Struct):
    file_id: Fixed32
    status: Str
    column_bytes: U64
    healthy: U32
    deal: Deal


@dataclass(frozen=True, slots=True)
class OpenChallenge(Struct):
    file_id: Fixed32
    frag_index: U32
    segment: U32
    leaf: U32
    deadline: U64


@dataclass(frozen=True, slots=True)
class ColumnRef(Struct):
    file_id: Fixed32
    frag_index: U32


