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

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartchain.agent.messages import (
    MAX_MESSAGE,
    SIGNATURE_SIZE,
    DeviceMessage,
)
from smartchain.client import SimulationFailed
from smartchain.crypto.address import from_bech32
from smartchain.crypto.keys import PrivateKey, verify
from smartchain.crypto.merkle import root_of_hashes
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
from smartchain.storage.recordcheck import CHUNK, OTHER_DEVICE, Checked, RecordPool, default_pool

COMMIT_POLL_S = 0.05  # how often a buyer asks whether its purchase is in a block yet


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


_SIGNATURES_AND_COUNT = 64 + 64 + 4  # the device's, the certificate; the records' count


class BatchReader:
    """Checks a batch file as its plaintext arrives (``feed``, segment by segment), and
    returns its records once every check passed (``finish``); ``DataError`` names the
    first that fails.

    The header, the device's signature of it and the manufacturer's certificate are checked
    against the chain's records (API JSON) as soon as the first bytes are in; records are
    cut out as they complete and checked in chunks on the worker processes of ``pool``
    while the rest still downloads (every record: its encoding, its device signature, that
    it is the batch's device, a JSON body; see ``recordcheck``); ``finish`` waits for them
    and checks their count and Merkle root against the signed header."""

    def __init__(self, batch: dict[str, Any], device: dict[str, Any],
                 manufacturer: dict[str, Any], pool: RecordPool | None = None) -> None:
        self.batch, self.device, self.manufacturer = batch, device, manufacturer
        self.pool = pool if pool is not None else default_pool()
        self.buf = bytearray()
        self.header: BatchHeader | None = None
        self.left = 0  # records the file still announces
        self.parallel = False
        self.chunk = CHUNK  # records per task on the workers
        self.pending: list[bytes] = []
        self.chunks: list[tuple[list[bytes], Future[Checked]]] = []

    def feed(self, data: bytes) -> None:
        self.buf += data
        if self.header is None and not self._read_head():
            return
        self._read_records()

    def _read_head(self) -> bool:
        """The header must be the chain's batch header, byte for byte (one encoding per
        value): no length the file claims is trusted before it matches."""
        header = batch_header(self.batch)
        expected = header.encode()
        end = len(expected)
        buf = self.buf
        if len(buf) < end + _SIGNATURES_AND_COUNT:
            return False
        signature, certificate = bytes(buf[end:end + 64]), bytes(buf[end + 64:end + 128])
        if buf[:end] != expected or signature.hex() != self.batch["signature"]:
            raise DataError("the file's header is not the batch registered on chain")
        self.left = int.from_bytes(buf[end + 128:end + 132], "big")
        del buf[:end + _SIGNATURES_AND_COUNT]
        self._check_head(header, signature, certificate)
        self.header = header
        self.parallel = self.pool.parallel(self.left)
        self.chunk = self.pool.chunk(self.left)
        return True

    def _check_head(self, header: BatchHeader, signature: bytes, certificate: bytes) -> None:
        """The device (registered, unrevoked), its signature of the header, its certificate."""
        device, manufacturer = self.device, self.manufacturer
        if device["pubkey"] != header.device.hex() or device["revoked"]:
            raise DataError(f"device {header.device.hex()} is not a registered, unrevoked "
                            "device")
        if not verify(header.device, batch_bytes(header), signature):
            raise DataError("the batch header is not signed by its device")
        cert = certificate_bytes(from_bech32(manufacturer["address"]), header.device,
                                 device["model"], device["serial"], device["capabilities"])
        if not verify(bytes.fromhex(manufacturer["pubkey"]), cert, certificate):
            raise DataError(f"the device's certificate is not {manufacturer['name']}'s "
                            "signature")

    def _read_records(self) -> None:
        buf, pos, end = self.buf, 0, len(self.buf)
        while self.left and end - pos >= 4:
            size = int.from_bytes(buf[pos:pos + 4], "big")
            if size > MAX_MESSAGE:
                raise DataError(f"record {self._seen()}: message of {size} bytes (at most "
                                f"{MAX_MESSAGE})")
            if end - pos - 4 < size:
                break
            self.pending.append(bytes(buf[pos + 4:pos + 4 + size]))
            pos += 4 + size
            self.left -= 1
            if self.parallel and len(self.pending) == self.chunk:
                self._submit()
        del buf[:pos]

    def _seen(self) -> int:
        return sum(len(raws) for raws, _ in self.chunks) + len(self.pending)

    def _submit(self) -> None:
        assert self.header is not None
        self.chunks.append((self.pending, self.pool.submit(self.header.device, self.pending,
                                                           self.parallel)))
        self.pending = []

    def finish(self) -> VerifiedBatch:
        """Blocks until the workers are done with every chunk (call it off an event loop)."""
        header = self.header
        if header is None or self.left:
            raise DataError("not a batch file: it ends before its last record")
        if self.buf:
            raise DataError("not a batch file: bytes after its last record")
        if self.pending or not self.chunks:
            self._submit()
        records: list[DeviceMessage] = []
        leaves: list[bytes] = []
        for raws, fut in self.chunks:
            checked = fut.result()
            if checked.error is not None:
                n, why = len(records) + checked.error[0], checked.error[1]
                raise DataError(f"record {n} is signed by another device"
                                if why == OTHER_DEVICE else f"record {n}: {why}")
            records.extend(DeviceMessage.decode(memoryview(raw)[SIGNATURE_SIZE:])
                           for raw in raws)  # opened on a worker already: cannot fail
            leaves.extend(checked.leaves[i:i + 32] for i in range(0, len(checked.leaves), 32))
        if len(records) != header.count or root_of_hashes(leaves) != header.root:
            raise DataError("the records do not hash to the Merkle root the device signed")
        return VerifiedBatch(header, records)


def verify_batch(plain: bytes, batch: dict[str, Any], device: dict[str, Any],
                 manufacturer: dict[str, Any], pool: RecordPool | None = None
                 ) -> VerifiedBatch:
    """The batch's records, once every check passes; ``DataError`` naming the first that
    fails. ``batch``, ``device`` and ``manufacturer`` are the chain's records (API JSON)."""
    reader = BatchReader(batch, device, manufacturer, pool)
    reader.feed(plain)
    return reader.finish()


PREFETCH_BYTES = 256 * 1024 * 1024  # ciphertext a buyer holds while its key is on the way


async def fetch_batch(p2p: P2P, view: sc.ChainView, client: Any, key: PrivateKey,
                      batch: dict[str, Any], file_key: bytes | asyncio.Future[bytes],
                      out: Path, pool: RecordPool | None = None) -> VerifiedBatch:
    """Download one batch with a key we were given (or are waiting for: the ciphertext is
    fetched meanwhile), verify it as it arrives, keep the file at ``out`` only if every
    check passed."""
    file_id = bytes.fromhex(batch["file_id"])
    device = await asyncio.to_thread(client.device, batch["device"])
    manufacturer = await asyncio.to_thread(client.manufacturer, device["manufacturer"])
    reader = BatchReader(batch, device, manufacturer, pool)
    warm = (asyncio.ensure_future(asyncio.to_thread(reader.pool.warm_up))
            if reader.pool.parallel(int(batch["count"])) else None)
    try:
        await sc.get(p2p, view, key, file_id, out, file_key=file_key, sink=reader.feed,
                     prefetch_bytes=PREFETCH_BYTES)
    finally:
        if warm is not None:
            await warm
    try:
        return await asyncio.to_thread(reader.finish)
    except DataError:
        out.unlink(missing_ok=True)
        raise


async def fetch_purchase(p2p: P2P, view: sc.ChainView, client: Any, buyer: PrivateKey,
                         purchase_id: int, out_dir: Path, *, wait: float = 0.0,
                         pool: RecordPool | None = None) -> list[VerifiedBatch]:
    """Every batch of a purchase, downloaded and verified into ``out_dir``. With ``wait``
    the keys may still be on the way: the files download meanwhile, and the keys are
    awaited that many seconds (``DataError`` if none came)."""
    purchase = await asyncio.to_thread(client.data_purchase, purchase_id)
    if not purchase["sealed"] and wait <= 0:
        raise DataError(f"purchase {purchase['id']} has no keys yet ({purchase['status']})")
    asset = await asyncio.to_thread(client.data_asset, purchase["asset"])
    keys = asyncio.ensure_future(_keys_when_delivered(client, buyer, purchase, asset, wait))
    try:
        return await _fetch_batches(p2p, view, client, buyer, asset, purchase["batches"],
                                    keys, out_dir, pool)
    finally:
        keys.cancel()
        await asyncio.gather(keys, return_exceptions=True)


async def buy_and_fetch(p2p: P2P, view: sc.ChainView, client: Any, buyer: PrivateKey,
                        consent_id: int, asset_id: bytes, batches: list[int], purpose: str,
                        max_total: int, out_dir: Path, *, token: str = "HPC",
                        wait: float = 60.0, pool: RecordPool | None = None
                        ) -> tuple[int, list[VerifiedBatch]]:
    """Buy batches of an asset and fetch them: (purchase id, verified batches).

    The purchase is simulated first (a refused one costs nothing, not even bandwidth);
    then, while it is committed and the owner's agent delivers the keys, the files already
    download, so the wait for the keys hides the transfer. ``wait``: seconds for the
    commit and the keys together."""
    asset = await asyncio.to_thread(client.data_asset, asset_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    sent = await asyncio.to_thread(client.buy_data, buyer, consent_id, asset_id, batches,
                                   purpose, max_total, token=token, wait=False)
    bought: asyncio.Future[dict[str, Any]] = loop.create_future()
    keys = asyncio.ensure_future(_keys_after(client, buyer, sent["hash"], asset, bought,
                                             deadline))
    try:
        verified = await _fetch_batches(p2p, view, client, buyer, asset, batches, keys,
                                        out_dir, pool)
    finally:
        keys.cancel()
        await asyncio.gather(keys, return_exceptions=True)
    return int(bought.result()["id"]), verified


async def _keys_after(client: Any, buyer: PrivateKey, tx_hash: str, asset: dict[str, Any],
                      bought: asyncio.Future[dict[str, Any]], deadline: float) -> list[bytes]:
    """The keys of the purchase ``tx_hash`` makes, once committed and delivered."""
    left = deadline - asyncio.get_running_loop().time()
    done = await asyncio.to_thread(client.wait_tx, tx_hash, max(0.0, left), COMMIT_POLL_S)
    if not done["receipt"]["ok"]:
        raise DataError(f"purchase transaction {tx_hash} failed: {done['receipt']['log']}")
    pid = next(int(e["attributes"]["purchase"]) for e in done["receipt"]["events"]
               if e["kind"] == "data_buy")
    purchase = await asyncio.to_thread(client.data_purchase, pid)
    bought.set_result(purchase)
    left = deadline - asyncio.get_running_loop().time()
    return await _keys_when_delivered(client, buyer, purchase, asset, left)


async def _keys_when_delivered(client: Any, buyer: PrivateKey, purchase: dict[str, Any],
                               asset: dict[str, Any], wait: float) -> list[bytes]:
    """The purchase's file keys, opened and checked (``WrongKey``), waiting up to ``wait``
    seconds for the owner's delivery (a ``data_deliver`` event) if they are not in yet."""
    if not purchase["sealed"] and purchase["status"] == "waiting" and wait > 0:
        events = client.subscribe("events", kind="data_deliver",
                                  where={"purchase": str(purchase["id"])},
                                  from_height=int(purchase["height"]))
        try:
            async with contextlib.aclosing(events):
                await asyncio.wait_for(anext(events), wait)
        except TimeoutError:
            raise DataError(f"purchase {purchase['id']}: no key delivered within "
                            f"{wait:g} s") from None
        purchase = await asyncio.to_thread(client.data_purchase, int(purchase["id"]))
    return [fkey for _, fkey in purchase_keys(buyer, purchase, asset)]


async def _fetch_batches(p2p: P2P, view: sc.ChainView, client: Any, key: PrivateKey,
                         asset: dict[str, Any], indices: list[int],
                         keys: asyncio.Future[list[bytes]], out_dir: Path,
                         pool: RecordPool | None) -> list[VerifiedBatch]:
    """Each batch in turn, its key taken from ``keys`` as soon as they are in."""
    loop = asyncio.get_running_loop()
    per_batch: list[asyncio.Future[bytes]] = [loop.create_future() for _ in indices]

    def hand_out(done: asyncio.Future[list[bytes]]) -> None:
        for i, fut in enumerate(per_batch):
            if fut.done():
                continue
            if done.cancelled():
                fut.cancel()
            elif (exc := done.exception()) is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(done.result()[i])

    keys.add_done_callback(hand_out)
    out = []
    try:
        for index, fkey in zip(indices, per_batch, strict=True):
            out.append(await fetch_batch(p2p, view, client, key, asset["batch_list"][index],
                                         fkey, out_dir / f"batch-{index}.bin", pool))
    finally:
        for fut in per_batch:  # the batches not reached: their error is already raised
            if fut.done() and not fut.cancelled():
                fut.exception()
    return out
