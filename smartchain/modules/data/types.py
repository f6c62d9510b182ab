"""The data module's wire types: assets, batches, consents, purchases, shares; signed bytes.

Importable on their own (codec, crypto, PyNaCl), so an owner's agent, a buyer's wallet or a
device builds and checks everything here without the node.

How a buyer gets a file key, and how a wrong one is proven on chain:

- When the owner registers a batch it commits to the batch's file key:
  ``key_commitment(file_id, key) = h256_tagged("smart/data/key", file_id || key)``.
- A buyer names, per batch bought, a fresh X25519 public key derived from its own account
  seed and the purchase (``box_secret(seed, label)``), so it keeps no new secret and each
  key opens exactly one sealed box.
- The owner (or its agent) delivers each file key as a libsodium sealed box to that key.
- If a box does not open to a key matching the commitment, the buyer reveals *that batch's*
  X25519 secret. The chain checks it is the secret of the key the buyer named, opens the box
  itself (``crypto_box_seal_open`` is deterministic) and compares with the commitment: a
  proof anyone can re-run, that reveals only a one-use secret and the wrong key it opened.

What it cannot prove: that the committed key decrypts the stored file to records under the
batch's signed root (that needs the ciphertext on chain). The buyer's client checks it after
download (docs/data.md says so).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from nacl.bindings import crypto_box_seal, crypto_box_seal_open, crypto_scalarmult_base
from nacl.exceptions import CryptoError

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
from smartchain.crypto.merkle import leaf_hash, root_of_hashes

MODULE_ACCOUNT = h256_tagged(b"smart/module", b"data")[:20]  # escrows and owners' bonds
HPC = "HPC"

BATCH_TAG = b"smart/data/batch"
KEY_TAG = b"smart/data/key"
ASSET_TAG = b"smart/data/asset"
BOX_PERSON = b"smart/data/box"

SEALED_SIZE = 32 + 48  # a 32-byte file key in a sealed box: ephemeral key, MAC, key
MAX_NAME = 64
MAX_LIST = 32  # devices of an asset, assets or buyers of a consent, purpose tags
MAX_SEALED_SHARE = SEALED_SIZE
TAG_RE = re.compile(r"[a-z][a-z0-9_.\-]{0,31}")  # schema names, regions, purposes
SEAL_GAS = 10_000  # opening a sealed box on chain (X25519 + XSalsa20-Poly1305)
SIGNATURE_GAS = 5_000

# purchase status
WAITING, DELIVERED, SETTLED, REFUNDED = 0, 1, 2, 3
STATUS_NAMES = {WAITING: "waiting", DELIVERED: "delivered", SETTLED: "settled",
                REFUNDED: "refunded"}

ASSET_PREFIX = b"data/asset/"  # + asset id -> Asset
OWNER_PREFIX = b"data/owner/"  # + owner + asset id -> MARK
BATCH_PREFIX = b"data/batch/"  # + asset id + u32 index -> Batch
CONSENT_PREFIX = b"data/consent/"  # + u64 id -> Consent
ASSET_CONSENT_PREFIX = b"data/asset_consent/"  # + asset id + u64 consent id -> MARK
PURCHASE_PREFIX = b"data/purchase/"  # + u64 id -> Purchase
BUYER_PREFIX = b"data/buyer/"  # + buyer + u64 id -> MARK
SELLER_PREFIX = b"data/seller/"  # + owner + u64 id -> MARK (waiting ones only)
DUE_PREFIX = b"data/due/"  # + u64 height + u64 purchase id -> MARK (deadline or release)
BOXKEY_PREFIX = b"data/boxkey/"  # + address -> X25519 public key (for shares)
SHARE_PREFIX = b"data/share/"  # + file id + recipient -> Share
NEXT_CONSENT = b"data/next/consent"
NEXT_PURCHASE = b"data/next/purchase"
MARK = b"\x01"


# --- keys, seals, commitments ---------------------------------------------------------------


def asset_id_of(owner: bytes, name: str) -> bytes:
    """An asset's id: one name per owner."""
    return h256_tagged(ASSET_TAG, owner, name.encode())


def key_commitment(file_id: bytes, file_key: bytes) -> bytes:
    """What an owner commits to when it registers a batch stored as ``file_id``."""
    return h256_tagged(KEY_TAG, file_id, file_key)


def box_secret(seed: bytes, label: bytes) -> bytes:
    """An X25519 secret derived from an account seed: ``label`` names its one use (a
    purchase's batch, or b"share"), so revealing it reveals nothing else."""
    return hashlib.blake2b(label, key=seed, person=BOX_PERSON, digest_size=32).digest()


def box_public(secret: bytes) -> bytes:
    return crypto_scalarmult_base(secret)


def purchase_label(purchase_nonce: bytes, batch: int) -> bytes:
    """The label of the box key for batch ``batch`` of a purchase (``nonce``: 16 bytes the
    buyer picks and keeps in the purchase)."""
    return b"buy" + purchase_nonce + batch.to_bytes(4, "big")


SHARE_LABEL = b"share"


def seal(box_key: bytes, file_key: bytes) -> bytes:
    """``file_key`` sealed to the X25519 public key ``box_key`` (libsodium sealed box)."""
    return crypto_box_seal(file_key, box_key)


def open_sealed(secret: bytes, sealed: bytes) -> bytes | None:
    """The plaintext of a sealed box, or None when ``secret`` does not open it."""
    try:
        return crypto_box_seal_open(sealed, box_public(secret), secret)
    except (CryptoError, ValueError, TypeError):
        return None


def account_box_secret(key: PrivateKey) -> bytes:
    """The account's long-lived X25519 secret for shares (registered with ``SetBoxKey``)."""
    return box_secret(key.seed, SHARE_LABEL)


# --- device-signed batches ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchHeader(Struct):
    """What a device signs about a run of its records: the Merkle root over the records'
    wire bytes (``records_root``), their count and the time range they cover."""

    device: Fixed32
    schema: Str
    start_ms: U64
    end_ms: U64
    count: U64
    root: Fixed32


def batch_bytes(header: BatchHeader) -> bytes:
    return h256_tagged(BATCH_TAG, header.encode())


def sign_batch(device: PrivateKey, header: BatchHeader) -> bytes:
    return device.sign(batch_bytes(header))


def records_root(records: list[bytes]) -> bytes:
    """The Merkle root a device signs over its records (each leaf: one record's wire bytes)."""
    return root_of_hashes([leaf_hash(r) for r in records])


@dataclass(frozen=True, slots=True)
class BatchFile(Struct):
    """The plaintext of a stored batch: the signed header, the device's certificate (its
    manufacturer's signature: a buyer checks it against the chain's device record) and the
    records it covers."""

    header: BatchHeader
    signature: Fixed64
    certificate: Fixed64
    records: list_of[Bytes]


# --- stored records -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asset(Struct):
    owner: Fixed20
    name: Str
    schema: Str
    region: Str
    devices: list_of[Fixed32]
    bond: U128  # HPC locked: a proven wrong key costs the owner part of it
    batches: U32
    start_ms: U64  # earliest record of any batch (0 while it has none)
    end_ms: U64
    records: U64
    height: U64


@dataclass(frozen=True, slots=True)
class Batch(Struct):
    asset: Fixed32
    index: U32
    header: BatchHeader
    signature: Fixed64  # the device's, over ``batch_bytes(header)``
    file_id: Fixed32  # the storage deal holding the encrypted ``BatchFile``
    key_commitment: Fixed32
    height: U64


@dataclass(frozen=True, slots=True)
class Consent(Struct):
    id: U64
    owner: Fixed20
    assets: list_of[Fixed32]
    buyers: list_of[Fixed20]  # empty: anyone
    purposes: list_of[Str]
    price: U128  # per batch, in base units of ``token``
    token: Str
    expiry: U64  # last height a purchase is accepted at
    withdrawn: Bool
    withdrawn_height: U64
    height: U64


@dataclass(frozen=True, slots=True)
class Purchase(Struct):
    id: U64
    buyer: Fixed20
    owner: Fixed20
    consent: U64
    asset: Fixed32
    batches: list_of[U32]
    purpose: Str
    token: Str
    price: U128  # per batch
    nonce: Fixed16  # the buyer's: derives its box keys
    box_keys: list_of[Fixed32]  # one per batch
    escrow: U128  # still held
    status: U8
    deadline: U64  # no key by this height: refunded
    release: U64  # delivered: paid to the owner at this height unless proven wrong
    sealed: list_of[Bytes]  # the delivered sealed keys, one per batch
    proven: list_of[U32]  # positions proven wrong (refunded)
    height: U64


@dataclass(frozen=True, slots=True)
class Share(Struct):
    file_id: Fixed32
    owner: Fixed20
    recipient: Fixed20
    sealed: Bytes
    height: U64


# --- payloads -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreateAsset(Struct):
    """A data asset of the sender's devices, with ``bond`` HPC locked (at least
    ``data_asset_bond``); again with the same name adds ``bond`` (a top-up)."""

    name: Str
    schema: Str
    region: Str
    devices: list_of[Fixed32]
    bond: U128


@dataclass(frozen=True, slots=True)
class AddBatch(Struct):
    asset: Fixed32
    header: BatchHeader
    signature: Fixed64
    file_id: Fixed32
    key_commitment: Fixed32


@dataclass(frozen=True, slots=True)
class GiveConsent(Struct):
    assets: list_of[Fixed32]
    buyers: list_of[Fixed20]
    purposes: list_of[Str]
    price: U128
    token: Str
    expiry: U64


@dataclass(frozen=True, slots=True)
class WithdrawConsent(Struct):
    consent: U64


@dataclass(frozen=True, slots=True)
class Buy(Struct):
    consent: U64
    asset: Fixed32
    batches: list_of[U32]
    purpose: Str
    token: Str
    max_total: U128  # the most the buyer agrees to pay: the consent's price x batches
    nonce: Fixed16
    box_keys: list_of[Fixed32]


@dataclass(frozen=True, slots=True)
class Deliver(Struct):
    """The file keys of a purchase, sealed to the keys the buyer named (repeated here, with
    the buyer, so a key sealed for another purchase is refused rather than paid)."""

    purchase: U64
    buyer: Fixed20
    box_keys: list_of[Fixed32]
    sealed: list_of[Bytes]


@dataclass(frozen=True, slots=True)
class ProveWrongKey(Struct):
    purchase: U64
    position: U32  # which batch of the purchase
    box_secret: Fixed32  # that batch's one-use X25519 secret


@dataclass(frozen=True, slots=True)
class SetBoxKey(Struct):
    box_key: Fixed32


@dataclass(frozen=True, slots=True)
class ShareFile(Struct):
    file_id: Fixed32
    recipient: Fixed20
    sealed: Bytes


PAYLOADS: dict[str, type[Struct]] = {
    "data/create_asset": CreateAsset,
    "data/add_batch": AddBatch,
    "data/consent": GiveConsent,
    "data/withdraw_consent": WithdrawConsent,
    "data/buy": Buy,
    "data/deliver": Deliver,
    "data/prove_wrong_key": ProveWrongKey,
    "data/set_box_key": SetBoxKey,
    "data/share": ShareFile,
}
