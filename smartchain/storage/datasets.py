"""Data sets on the storage engine: an owner publishes device-signed batches and delivers
their keys; a buyer (or a share recipient) opens its keys, downloads and verifies.

A batch is a ``BatchFile`` (the device-signed header, the device's certificate, its
records), stored like any file (``client.put``: encrypted with the key the owner's seed and
the deal's salt derive) and registered on chain with a commitment to that key. Nothing
here trusts the owner: a buyer's ``verify_batch`` checks the header against the chain's
batch record, the device's signature of it, the manufacturer's certificate against the
chain's device and manufacturer records (registered, not revoked), every record's device
signature and the Merkle root over them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartchain.agent.messages import BadMessage, DeviceMessage, open_message
from smartchain.client import SimulationFailed
from smartchain.codec import CodecError
from smartchain.crypto.address import from_bech32
from smartchain.crypto.keys import PrivateKey, verify
from smartchain.modules.data.sdk import purchase_secret
from smartchain.modules.data.types import (
    BatchFile,
    BatchHeader,
    account_box_secret,
    batch_bytes,
    key_commitment,
    open_sealed,
    records_root,
    seal,
)
from smartchain.modules.devices.types import certificate_bytes
from smartchain.p2p.peers import P2P
from smartchain.storage import client as sc
from smartchain.storage import layout


class DataError(Exception):
    """A batch, key or share that does not check out; the message says which and why."""


class WrongKey(DataError):
    """A delivered key that does not open or does not match the owner's commitment: the
    buyer can prove it on chain (``Client.prove_wrong_key``) for batch ``position``."""

    def __init__(self, position: int, message: str) -> None:
        super().__init__(message)
        self.position = position


# --- owner side -------------------------------------------------------------------------------


def batch_header(batch: dict[str, Any]) -> BatchHeader:
    """The header of a batch as the chain's API shows it."""
    return BatchHeader(bytes.fromhex(batch["device"]), batch["schema"], int(batch["start_ms"]),
                       int(batch["end_ms"]), int(batch["count"]), bytes.fromhex(batch["root"]))


async def publish_batch(p2p: P2P, view: sc.ChainView, client: Any, owner: PrivateKey,
                        asset_id: bytes, header: BatchHeader, signature: bytes,
                        certificate: bytes, records: list[bytes], *, k: int = 2, n: int = 3,
                        epochs: int = sc.DEFAULT_EPOCHS) -> bytes:
    """Store a device-signed batch and register it under ``asset_id``; its file id."""
    if records_root(records) != header.root or len(records) != header.count:
        raise DataError("the records are not the ones the device signed the header for")
    plain = BatchFile(header, signature, certificate, tuple(records)).encode()
    put = await sc.put(p2p, view, owner, plain, k=k, n=n, epochs=epochs)
    commitment = key_commitment(put.file_id, layout.file_key(owner.seed, put.salt))
    result = client.add_data_batch(owner, asset_id, header, signature, put.file_id, commitment)
    if not result["receipt"]["ok"]:
        raise DataError(f"batch not registered: {result['receipt']['log']}")
    return put.file_id


def sealed_keys(client: Any, owner: PrivateKey, purchase: dict[str, Any]) -> list[bytes]:
    """Each batch's file key sealed to the buyer's box key for it, checked against the
    owner's own commitment first (never deliver a key the buyer could prove wrong)."""
    asset = client.data_asset(purchase["asset"])
    sealed = []
    for i, index in enumerate(purchase["batches"]):
        batch = asset["batch_list"][index]
        file_id = bytes.fromhex(batch["file_id"])
        deal = client.storage_deal_record(file_id)
        if deal is None:
            raise DataError(f"batch {index}'s file {file_id.hex()} has no storage deal")
        fkey = layout.file_key(owner.seed, deal.salt)
        if key_commitment(file_id, fkey) != bytes.fromhex(batch["key_commitment"]):
            raise DataError(f"batch {index} was registered with another key's commitment")
        sealed.append(seal(bytes.fromhex(purchase["box_keys"][i]), fkey))
    return sealed


def deliver_waiting(client: Any, owner: PrivateKey, address: str, *,
                    skip: Callable[[dict[str, Any], Exception], None] | None = None
                    ) -> list[int]:
    """Deliver the keys of every purchase of ``address``'s data still waiting for them (what
    an owner's agent runs while the owner is offline: the consent on chain is the policy).
    ``skip``: told of a purchase whose keys cannot be delivered (and why) while the others
    still are; without it, the first such error is raised."""
    done = []
    for purchase in client.data_waiting_sales(address):
        try:
            result = client.deliver_data_keys(owner, purchase,
                                              sealed_keys(client, owner, purchase))
        except (DataError, SimulationFailed) as exc:
            if skip is None:
                raise
            skip(purchase, exc)
            continue
        if result["receipt"]["ok"]:
            done.append(int(purchase["id"]))
    return done


def share_key(client: Any, owner: PrivateKey, file_id: bytes, recipient: str
              ) -> dict[str, Any]:
    """Give ``recipient`` the key of an owned file: sealed to its registered box key."""
    deal = client.storage_deal_record(file_id)
    if deal is None:
        raise DataError(f"no storage deal for file {file_id.hex()}")
    if deal.owner != owner.address:
        raise DataError("only a file's owner can share it")
    box_key = client.data_box_key(recipient)
    return client.share_file_key(owner, file_id, recipient,
                                 seal(box_key, layout.file_key(owner.seed, deal.salt)))


# --- buyer side -------------------------------------------------------------------------------


def purchase_keys(buyer: PrivateKey, purchase: dict[str, Any], asset: dict[str, Any]
                  ) -> list[tuple[bytes, bytes]]:
    """(file id, file key) per batch of a delivered purchase; ``WrongKey`` for the first one
    that does not open or does not match the owner's commitment."""
    if not purchase["sealed"]:
        raise DataError(f"purchase {purchase['id']} has no keys yet ({purchase['status']})")
    nonce = bytes.fromhex(purchase["nonce"])
    out = []
    for i, index in enumerate(purchase["batches"]):
        batch = asset["batch_list"][index]
        file_id = bytes.fromhex(batch["file_id"])
        fkey = open_sealed(purchase_secret(buyer, nonce, i), bytes.fromhex(purchase["sealed"][i]))
        if fkey is None:
            raise WrongKey(i, f"the key of batch {index} does not open with this account's "
                              "box key")
        if key_commitment(file_id, fkey) != bytes.fromhex(batch["key_commitment"]):
            raise WrongKey(i, f"the key of batch {index} is not the one the owner committed to")
        out.append((file_id, fkey))
    return out


def shared_key(client: Any, recipient: PrivateKey, file_id: bytes, address: str) -> bytes:
    share = client.data_share(file_id, address)
    fkey = open_sealed(account_box_secret(recipient), bytes.fromhex(share["sealed"]))
    if fkey is None:
        raise DataError("the shared key does not open with this account's box key")
    return fkey


@dataclass(frozen=True, slots=True)
class VerifiedBatch:
    header: BatchHeader
    records: list[DeviceMessage]


def verify_batch(plain: bytes, batch: dict[str, Any], device: dict[str, Any],
                 manufacturer: dict[str, Any]) -> VerifiedBatch:
    """The batch's records, once every check passes; ``DataError`` naming the first that
    fails. ``batch``, ``device`` and ``manufacturer`` are the chain's records (API JSON)."""
    try:
        f = BatchFile.decode(plain)
    except CodecError as exc:
        raise DataError(f"not a batch file: {exc}") from None
    if f.header != batch_header(batch) or f.signature.hex() != batch["signature"]:
        raise DataError("the file's header is not the batch registered on chain")
    if device["pubkey"] != f.header.device.hex() or device["revoked"]:
        raise DataError(f"device {f.header.device.hex()} is not a registered, unrevoked device")
    if not verify(f.header.device, batch_bytes(f.header), f.signature):
        raise DataError("the batch header is not signed by its device")
    cert = certificate_bytes(from_bech32(manufacturer["address"]), f.header.device,
                             device["model"], device["serial"], device["capabilities"])
    if not verify(bytes.fromhex(manufacturer["pubkey"]), cert, f.certificate):
        raise DataError(f"the device's certificate is not {manufacturer['name']}'s signature")
    records = []
    for n, raw in enumerate(f.records):
        try:
            msg = open_message(raw)
        except BadMessage as exc:
            raise DataError(f"record {n}: {exc}") from None
        if msg.device != f.header.device:
            raise DataError(f"record {n} is signed by another device")
        records.append(msg)
    if len(records) != f.header.count or records_root(list(f.records)) != f.header.root:
        raise DataError("the records do not hash to the Merkle root the device signed")
    return VerifiedBatch(f.header, records)


async def fetch_batch(p2p: P2P, view: sc.ChainView, client: Any, key: PrivateKey,
                      batch: dict[str, Any], file_key: bytes, out: Path) -> VerifiedBatch:
    """Download one batch with a key we were given, verify it, keep the file at ``out``."""
    file_id = bytes.fromhex(batch["file_id"])
    await sc.get(p2p, view, key, file_id, out, file_key=file_key)
    device = client.device(batch["device"])
    manufacturer = client.manufacturer(device["manufacturer"])
    return verify_batch(out.read_bytes(), batch, device, manufacturer)


async def fetch_purchase(p2p: P2P, view: sc.ChainView, client: Any, buyer: PrivateKey,
                         purchase_id: int, out_dir: Path) -> list[VerifiedBatch]:
    """Every batch of a delivered purchase, downloaded and verified into ``out_dir``."""
    purchase = client.data_purchase(purchase_id)
    asset = client.data_asset(purchase["asset"])
    keys = purchase_keys(buyer, purchase, asset)
    out = []
    for (_file_id, fkey), index in zip(keys, purchase["batches"], strict=True):
        batch = asset["batch_list"][index]
        out.append(await fetch_batch(p2p, view, client, buyer, batch, fkey,
                                     out_dir / f"batch-{index}.bin"))
    return out
