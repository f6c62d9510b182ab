"""The storage provider: a node that offers disk (``[storage] capacity`` bytes) keeps pieces of
clients' files, serves them over its P2P transport, answers the chain's audits, claims its
bandwidth receipts, and repairs other providers' lost columns.

How it works:

- **Identity.** The provider is the node's own key (``Node.key``), as for the compute
  worker: its address is the on-chain provider, it signs acceptances with it, and the key's
  account locks the collateral and pays the fees (so it must be funded; the devnet and the
  tests fund it in genesis).
- **Registration.** Until the chain shows this address as an active storage provider with
  the configured terms (capacity, price, bandwidth price, the node's dialable P2P address,
  collateral at least ``[storage] collateral`` HPC), the service sends
  ``storage/register_provider`` (topping the collateral up), retrying each few blocks. An
  unfunded key gets one clear warning per attempt, no traceback. A node restarted with new
  terms, or on a new port, registers again: clients dial the address on chain.
- **Pieces** live in a ``PieceStore`` (``storage/piecestore.py``; ``HOME/storage`` or
  ``[storage] dir``): content-addressed, fsync'd before ``store/put`` answers, checksummed
  on every read. Disk work runs on a small thread pool, never on the event loop that also
  runs consensus.
- **Requests** (``storage/protocol.py``): ``store/intent`` books an upload of one column
  by a funded account (``storage/admission.py``: signed, bound to this provider and to the
  sending peer, within the account's quota of pending bytes, expiring soon);
  ``store/put`` stores a piece of a booked column (refused without an intent, beyond the
  bytes declared, and with "over capacity"/"disk full" when it does not fit);
  ``store/accept`` signs ``acceptance_bytes`` (the next placement round of the column, the
  current height, the booking account as uploader) only when every piece of the column
  is held with the given roots;
  ``store/get`` returns a piece with its column Merkle path ("not found" when not held, or
  when the bytes on disk are damaged: a provider never serves what it cannot vouch for);
  ``store/receipt`` keeps a client's signed bandwidth receipt (checked: ours, signed,
  priced at our on-chain bandwidth price, still claimable) in an LMDB book.
- **Each new block** (read in-process from the node's state): the columns the chain lists
  for this provider in active deals are pinned, the pieces of an upload whose intent (or
  acceptance) ran out without a deal are deleted at once, everything else is garbage after
  ``[storage] gc_grace_s`` (ended deals, columns repaired away, uploads from before a
  restart);
  open audit challenges are answered in one batched ``storage/prove`` transaction, each
  proof checked locally against the deal's column root first (a wrong proof would fail the
  whole batch; a piece that is corrupt or missing is skipped and logged, and the chain
  counts it as missed, which is the truth); kept receipts are claimed in batches with
  ``storage/claim_bandwidth`` well before their ``storage_receipt_ttl`` runs out; pinned
  columns are announced in the Kademlia DHT (``layout.column_dht_key``), again every 12
  hours, so any peer can find who holds a column without reading the chain. Nonces
  come from ``Node.pending_nonce``; a transaction the mempool refuses is retried at the
  next block, one committed but failed is not retried.
- **Repairer.** A second loop reads the deals the chain says need repair and calls
  ``storage.repair.repair_column`` (the same code as a client's) for one unhealthy column
  per deal at a time, with a ``NodeChainView`` (chain reads in-process, transactions through
  the node's mempool) and a ``LoopbackP2P`` (requests to this node itself reach its own
  handlers: a repairer fetches its own pieces and may take the rebuilt column itself).
  Every provider can repair, so they stagger: for each column the providers are ranked by
  a hash of (column, address) and a node starts only after ``rank × REPAIR_STAGGER_S``
  seconds, so usually one node repairs and the next takes over when the first is dead. A
  failed repair backs off exponentially per column. The provider that lost the column does
  not repair it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from smartchain.codec import CodecError, Struct
from smartchain.crypto.address import address_of, to_bech32
from smartchain.crypto.hashing import h256_tagged
from smartchain.crypto.keys import verify
from smartchain.crypto.merkle import leaf_hash, verify_proof
from smartchain.modules.bank.module import get_account
from smartchain.modules.storage import module as sm
from smartchain.modules.storage import types as st
from smartchain.node.node import Node
from smartchain.node.service import BlockService
from smartchain.p2p import P2P
from smartchain.p2p.dht import DhtError, DhtNode
from smartchain.p2p.messages import parse_address
from smartchain.p2p.peers import (
    BadRequest,
    Refused,
    RequestError,
    RequestHandler,
    RequestTimeout,
)
from smartchain.state.chain import TxRecord
from smartchain.state.params import Params
from smartchain.storage import layout
from smartchain.storage.admission import Reservations
from smartchain.storage.piecestore import PieceConflict, PieceCorrupt, PieceNotFound, PieceStore
from smartchain.storage.protocol import (
    ACCEPT,
    GET,
    INTENT,
    MAX_PIECE,
    PUT,
    RECEIPT,
    Acceptance,
    AcceptColumn,
    GetPiece,
    PieceReply,
    PutAck,
    PutPiece,
    UploadIntent,
)
from smartchain.storage.repair import repair_column
from smartchain.types.amount import UNITS_PER_HPC, format_hpc
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt

log = logging.getLogger("smartchain.storage")

STORAGE_DIR = "storage"  # under HOME unless ``[storage] dir`` says otherwise
RECEIPTS_DIR = "receipts"  # LMDB of kept bandwidth receipts, inside the storage dir
POLL_S = 0.05  # how often a wait looks for its transaction
IO_THREADS = 8  # concurrent piece reads/writes (each fsyncs: I/O bound, not CPU bound)
REGISTER_GAS = 2_000_000
REGISTER_RETRY_BLOCKS = 5
PROVE_BATCH = 24  # audit proofs per transaction (<= 1.9 KiB each, under max_tx_bytes)
PROVE_GAS = 1_000_000
PROVE_GAS_PER_PROOF = 100_000
CLAIM_BATCH = 200  # receipts per transaction (~200 bytes each)
CLAIM_GAS = 1_000_000
CLAIM_GAS_PER_RECEIPT = 30_000
CLAIM_AFTER_BLOCKS = 50  # claim once the oldest kept receipt is this old (or ttl/4)
RECEIPT_FUTURE_BLOCKS = 10  # a receipt may be dated this far ahead (clients lag or lead)
GC_EVERY_BLOCKS = 10
ANNOUNCE_TTL_S = 24 * 3600  # how long DHT nodes keep our provider records...
ANNOUNCE_EVERY_S = ANNOUNCE_TTL_S // 2  # ...so we announce again well before that
ANNOUNCE_BATCH = 32  # columns announced per background pass
REPAIR_POLL_S = 1.0
REPAIR_STAGGER_S = 3.0  # per rank: the best-ranked provider repairs, the next after this
REPAIR_BACKOFF_S = (5.0, 300.0)  # first and longest wait after a failed repair of a column
REPAIR_TIMEOUT_S = 600.0
QUOTA_FLOOR = 64 * 1024 * 1024  # default per-account quota of pending upload bytes, at least


def default_quota(capacity: int) -> int:
    """Bytes one account may have pending here (uploaded, not yet in a deal) by default: a
    quarter of the disk (at least 64 MiB, at most all of it)."""
    return min(capacity, max(capacity // 4, QUOTA_FLOOR))

T = TypeVar("T")


def committed_receipt(node: Node, tx_hash: bytes) -> Receipt | None:
    """The receipt of a committed transaction, from the node's own tx index."""
    raw = node.chain.store.get("txs", tx_hash)
    return TxRecord.decode(raw).receipt if raw is not None else None


class TxFailed(RuntimeError):
    """A transaction was committed but did nothing (its receipt's log says why)."""


# --- the ChainView of code running inside the node ------------------------------------------


class NodeChainView:
    """``ChainView`` (see ``storage/client.py``) for the node itself: state read in-process,
    transactions signed with the node key and admitted by its own mempool.

    Build it on the node's event loop thread. ``submit`` and the reads may be called from
    the loop or from a worker thread; ``wait`` blocks, so it refuses to run on the loop
    (blocking it would stop consensus, and so the very block being waited for). The shared
    client code calls every ``ChainView`` method through ``asyncio.to_thread``."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.key = node.key
        self.address = node.key.address
        self.chain_id = node.chain.chain_id
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def params(self) -> Params:
        return self.node.chain.params

    def height(self) -> int:
        return self.node.chain.height

    def providers(self) -> list[tuple[bytes, st.StorageProvider]]:
        return [(a, p) for a, p in self.all_providers() if p.active]

    def all_providers(self) -> list[tuple[bytes, st.StorageProvider]]:
        """Inactive ones too: a slashed provider still holds and serves its columns."""
        with self.node.chain.reader() as reader:
            return [(v.address, v.provider) for v in sm.list_providers(reader)]

    def deal(self, file_id: bytes) -> st.Deal | None:
        with self.node.chain.reader() as reader:
            return sm.get_deal(reader, file_id)

    def submit(self, kind: str, payload: Struct, gas_limit: int) -> str:
        """Sign and admit; returns the hash (hex). Raises ``TxError`` when refused."""
        if threading.get_ident() == self._loop_thread:
            return self._submit(kind, payload, gas_limit)

        async def hop() -> str:  # the mempool is only touched from the loop thread
            return self._submit(kind, payload, gas_limit)

        return asyncio.run_coroutine_threadsafe(hop(), self._loop).result()

    def _submit(self, kind: str, payload: Struct, gas_limit: int) -> str:
        return self.node.submit_own(kind, payload, gas_limit).hex()

    def _check(self, tx_hash: str) -> bool:
        receipt = committed_receipt(self.node, bytes.fromhex(tx_hash))
        if receipt is None:
            return False
        if not receipt.ok:
            raise TxFailed(f"transaction {tx_hash} failed: {receipt.log}")
        return True

    def wait(self, tx_hash: str, timeout: float) -> None:
        """Until committed (raises ``TxFailed`` if it failed, ``TimeoutError``). Not on the
        event loop thread: see the class docstring."""
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError("NodeChainView.wait would block the node's event loop (and "
                               "with it the block it waits for); call it through "
                               "asyncio.to_thread")
        deadline = time.monotonic() + timeout
        while not self._check(tx_hash):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"transaction {tx_hash} not committed within {timeout}s")
            time.sleep(POLL_S)


class LoopbackP2P:
    """The node's ``P2P`` as storage client code sees it inside the node: a request to this
    node itself goes straight to its own handler (a ``P2P`` cannot dial itself), with the
    errors a remote peer's answer would raise. So a repairer fetches its own pieces like
    anyone's, and may place the rebuilt column on itself without a network round trip."""

    def __init__(self, p2p: P2P, handlers: dict[str, RequestHandler]) -> None:
        self.p2p = p2p
        self.peer_id = p2p.peer_id
        self.handlers = handlers

    async def connect(self, address: str) -> bytes:
        key, _, _ = parse_address(address)
        return key if key == self.peer_id else await self.p2p.connect(address)

    async def request(self, peer_id: bytes, kind: str, payload: bytes,
                      timeout: float = 5.0) -> bytes:
        if peer_id != self.peer_id:
            return await self.p2p.request(peer_id, kind, payload, timeout)
        handler = self.handlers.get(kind)
        if handler is None:
            raise RequestError(f"unknown request kind {kind!r}")
        try:
            async with asyncio.timeout(timeout):
                return await handler(peer_id, payload)
        except TimeoutError:
            raise RequestTimeout(f"no response to {kind!r} from ourselves within "
                                 f"{timeout}s") from None
        except BadRequest as exc:
            raise RequestError(f"bad request: {exc}") from None
        except LookupError as exc:
            raise RequestError(f"not found: {exc}") from None
        except Refused as exc:
            raise RequestError(f"refused: {exc}") from None
        except Exception as exc:
            raise RequestError(f"{kind} failed: {type(exc).__name__}: {exc}") from None

    def penalize(self, peer_id: bytes, points: int, reason: str) -> None:
        if peer_id != self.peer_id:
            self.p2p.penalize(peer_id, points, reason)
        else:
            log.error("storage: our own piece store failed a check (%s)", reason)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.p2p, name)


# --- kept bandwidth receipts ------------------------------------------------------------------


class ReceiptBook:
    """Receipts clients signed for bytes we served, kept (durably: they are money) until
    claimed or expired. Key: receipt height + receipt id, so the oldest come first."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), map_size=1 << 30, max_dbs=1, sync=True, metasync=True)

    @staticmethod
    def key(rid: bytes, r: st.Receipt) -> bytes:
        return r.height.to_bytes(8, "big") + rid

    def add(self, key: bytes, r: st.Receipt) -> bool:
        """False when the receipt was kept already."""
        with self.env.begin(write=True) as txn:
            return bool(txn.put(key, r.encode(), overwrite=False))

    def all(self) -> list[tuple[bytes, st.Receipt]]:
        with self.env.begin() as txn:
            return [(bytes(k), st.Receipt.decode(v)) for k, v in txn.cursor()]

    def delete(self, keys: list[bytes]) -> None:
        with self.env.begin(write=True) as txn:
            for k in keys:
                txn.delete(k)

    def __len__(self) -> int:
        return int(self.env.stat()["entries"])

    def close(self) -> None:
        self.env.close()


# --- the service ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Terms:
    capacity: int
    price: int
    bandwidth_price: int
    collateral: int  # base units, at least this much locked
    p2p: str


class StorageProvider(BlockService):
    """See the module docstring. ``start``/``stop`` from the node's event loop."""

    what = "storage"
    log = log

    def __init__(self, node: Node, p2p: P2P, *, capacity: int, price: int = 0,
                 bandwidth_price: int = 0, collateral_hpc: int = 10,
                 storage_dir: Path | None = None, min_free: int = 256 * 1024 * 1024,
                 gc_grace_s: int = 3_600, client_quota: int = 0) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        super().__init__(node)
        self.p2p = p2p
        self.chain_id = node.chain.chain_id
        self.capacity = capacity
        self.price = price
        self.bandwidth_price = bandwidth_price
        self.collateral = collateral_hpc * UNITS_PER_HPC
        self.gc_grace_ms = gc_grace_s * 1000
        self.dir = storage_dir or node.home / STORAGE_DIR
        self.store = PieceStore(self.dir, capacity, min_free=min_free)
        self.book = ReceiptBook(self.dir / RECEIPTS_DIR)
        self.reservations = Reservations(self.address, self.chain_id,
                                         client_quota or default_quota(capacity))
        self.io = ThreadPoolExecutor(IO_THREADS, thread_name_prefix="storage-io")
        self.view: NodeChainView | None = None
        self.loopback: LoopbackP2P | None = None
        self.registered = False
        self.record: st.StorageProvider | None = None  # ours on chain, as of the last block
        self._register_at = -1
        self._register_tx: bytes | None = None
        self._pinned: set[tuple[bytes, int]] | None = None
        self._missing_logged: set[tuple[bytes, int]] = set()
        # (file_id, frag, segment, leaf, deadline) -> hash of the prove tx with its answer
        self.sent: dict[tuple[bytes, int, int, int, int], bytes] = {}
        self.given_up: set[tuple[bytes, int, int, int, int]] = set()
        self._claims: dict[bytes, list[bytes]] = {}  # claim tx hash -> receipt keys in it
        self._repair_at: dict[tuple[bytes, int], float] = {}  # column -> earliest next try
        self._repair_wait: dict[tuple[bytes, int], float] = {}  # column -> backoff now
        self._repair_seen: dict[tuple[bytes, int], float] = {}  # column -> first seen broken
        self._tasks: list[asyncio.Task[None]] = []
        self.dht: DhtNode | None = None
        self._announced: dict[tuple[bytes, int], float] = {}  # column -> when (monotonic)
        self._announcing: asyncio.Task[None] | None = None
        self.stats = {"puts": 0, "gets": 0, "accepts": 0, "proofs": 0, "receipts": 0,
                      "claimed": 0, "repairs": 0, "gc_removed": 0}

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self, dht: DhtNode | None = None) -> None:
        self.dht = dht
        self.view = NodeChainView(self.node)
        handlers: dict[str, RequestHandler] = {INTENT: self._on_intent, PUT: self._on_put,
                                               ACCEPT: self._on_accept, GET: self._on_get,
                                               RECEIPT: self._on_receipt}
        for kind, handler in handlers.items():
            self.p2p.register_request(kind, handler)
        self.loopback = LoopbackP2P(self.p2p, handlers)
        log.info("storage: providing %s bytes (%s) as %s at %s, %d bytes held%s",
                 self.capacity, _human(self.capacity), to_bech32(self.address),
                 self.p2p.address, self.store.used,
                 f"; removed {self.store.removed_orphans} unindexed files"
                 if self.store.removed_orphans else "")
        self._tasks = [asyncio.create_task(self.run_blocks()),
                       asyncio.create_task(self._repair_forever())]

    async def stop(self) -> None:
        """Stop the per-block and repair loops. The handlers keep serving until the P2P
        layer stops; ``close`` (after it) releases the disk."""
        tasks = [*self._tasks, *([self._announcing] if self._announcing else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def close(self) -> None:
        self.io.shutdown(wait=True, cancel_futures=True)
        self.store.close()
        self.book.close()
        log.info("storage: stopped (%s)",
                 ", ".join(f"{v} {k}" for k, v in self.stats.items()))

    async def _disk(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    def refused(self, kind: str, exc: TxError) -> None:
        if exc.code == Code.INSUFFICIENT_FUNDS:
            log.warning("storage: %s refused: %s (fund %s)", kind, exc.message,
                        to_bech32(self.address))
        else:
            super().refused(kind, exc)

    # --- registration --------------------------------------------------------------------

    def terms(self) -> Terms:
        params = self.node.chain.params
        price = self.price or params.storage_min_price
        # enough to fill the disk offered: the chain checks it whenever we take a column
        collateral = max(self.collateral, sm.required_collateral(params, self.capacity))
        used = self.record.used if self.record is not None else 0
        return Terms(max(self.capacity, used), max(price, params.storage_min_price),
                     self.bandwidth_price, collateral, self.p2p.address)

    def _mismatch(self, p: st.StorageProvider | None, t: Terms) -> str:
        """Why the on-chain record is not this node's terms ("" when it is)."""
        if p is None:
            return "not registered"
        if not p.active:
            return "inactive (deregistered, or slashed below the minimum collateral)"
        if p.collateral < t.collateral:
            return f"collateral {format_hpc(p.collateral)} HPC below {format_hpc(t.collateral)}"
        for name in ("capacity", "price", "bandwidth_price", "p2p"):
            if getattr(p, name) != getattr(t, name):
                return f"{name} is {getattr(p, name)!r} on chain, {getattr(t, name)!r} here"
        return ""

    def _ensure_registered(self, height: int) -> None:
        t = self.terms()
        why = self._mismatch(self.record, t)
        if not why:
            if not self.registered:
                p = self.record
                assert p is not None
                log.info("storage: registered on chain (capacity %d, price %d per GiB per "
                         "epoch, bandwidth %d per GiB, collateral %s HPC, p2p %s)",
                         p.capacity, p.price, p.bandwidth_price, format_hpc(p.collateral),
                         p.p2p)
            self.registered = True
            return
        if self.registered:
            log.warning("storage: on-chain registration no longer matches (%s); registering "
                        "again", why)
            self.registered = False
        if self._register_tx is not None:
            state = self.tx_state(self._register_tx)
            if state == "pending":
                return
            if state == "committed":
                receipt = committed_receipt(self.node, self._register_tx)
                if receipt is not None and not receipt.ok:
                    log.warning("storage: registration failed on chain: %s", receipt.log)
                self._register_tx = None
        if self._register_at >= 0 and height < self._register_at + REGISTER_RETRY_BLOCKS:
            return
        self._register_at = height
        if self.price and self.price < t.price:
            log.warning("storage: [storage] price %d is below the chain's minimum %d; asking %d",
                        self.price, t.price, t.price)
        have = self.record.collateral if self.record is not None else 0
        msg = st.RegisterProvider(t.capacity, t.price, t.bandwidth_price,
                                  max(0, t.collateral - have), t.p2p, self.key.public_key)
        self._register_tx = self.send("storage/register_provider", msg, REGISTER_GAS)
        if self._register_tx is not None:
            log.info("storage: registering (capacity %d, price %d, bandwidth price %d, "
                     "collateral +%s HPC, p2p %s)", t.capacity, t.price, t.bandwidth_price,
                     format_hpc(msg.collateral), t.p2p)

    # --- the per-block pass --------------------------------------------------------------

    async def on_block(self, height: int) -> None:
        self.record = self.read(sm.get_provider, self.address)
        self._ensure_registered(height)
        await self._sync_pins()
        await self._drop_lapsed(height)
        if height % GC_EVERY_BLOCKS == 0:
            removed, freed = await self._disk(self.store.gc, self.gc_grace_ms)
            if removed:
                self.stats["gc_removed"] += removed
                log.info("storage: garbage-collected %d pieces outside active deals "
                         "(%d bytes freed)", removed, freed)
        if self.record is not None:
            await self._prove(height)
            self._claim(height)
        self._announce()

    # --- DHT announcements ---------------------------------------------------------------

    def _announce(self) -> None:
        """Announce the pinned columns not yet announced (or due again) in the DHT, one
        batch at a time in the background: the chain says who must hold a column, the DHT
        lets any peer find who does without reading the chain."""
        if self.dht is None or self._pinned is None or (
                self._announcing is not None and not self._announcing.done()):
            return
        now = time.monotonic()
        for gone in set(self._announced) - self._pinned:
            del self._announced[gone]
        due = sorted(c for c in self._pinned
                     if now - self._announced.get(c, -ANNOUNCE_EVERY_S) >= ANNOUNCE_EVERY_S)
        if due:
            self._announcing = asyncio.create_task(self._provide(due[:ANNOUNCE_BATCH]))

    async def _provide(self, columns: list[tuple[bytes, int]]) -> None:
        assert self.dht is not None
        for file_id, frag in columns:
            try:
                stored = await self.dht.provide(layout.column_dht_key(file_id, frag),
                                                ANNOUNCE_TTL_S)
            except (DhtError, OSError, TimeoutError) as exc:  # retried at a later block
                log.info("storage: DHT announcement of column %d of %s failed: %s", frag,
                         file_id.hex()[:16], exc)
                return
            self._announced[(file_id, frag)] = time.monotonic()
            log.info("storage: announced column %d of deal %s in the DHT (%d nodes)", frag,
                     file_id.hex()[:16], stored)

    async def _drop_lapsed(self, height: int) -> None:
        """Delete the pieces of uploads whose intent or acceptance ran out without a deal
        (after ``_sync_pins``: a column the chain just put in a deal is pinned by now)."""
        ttl = self.node.chain.params.storage_accept_ttl
        for file_id, frag in self.reservations.settle(height, ttl, self._pinned or set()):
            removed, freed = await self._disk(self.store.discard, file_id, frag)
            if removed:
                self.stats["gc_removed"] += removed
                log.info("storage: dropped %d pieces (%d bytes) of column %d of %s: its upload "
                         "lapsed without a deal", removed, freed, frag, file_id.hex()[:16])

    async def _sync_pins(self) -> None:
        refs = {(c.file_id, c.frag_index) for c in self.read(sm.columns_of, self.address)}
        if refs == self._pinned:
            return
        missing = await self._disk(self.store.set_pinned, refs)
        self._pinned = refs
        for file_id, frag in missing:
            if (file_id, frag) not in self._missing_logged:
                self._missing_logged.add((file_id, frag))
                log.warning("storage: the chain lists column %d of deal %s for this provider "
                            "but it is not here; its audits will be missed", frag,
                            file_id.hex())
        log.info("storage: %d columns in active deals pinned", len(refs))

    # --- audits --------------------------------------------------------------------------

    async def _prove(self, height: int) -> None:
        todo: list[tuple[st.OpenChallenge, bytes]] = []
        deals: dict[bytes, st.Deal | None] = {}
        for c in self.read(sm.open_challenges, self.address):
            key = (c.file_id, c.frag_index, c.segment, c.leaf, c.deadline)
            if key in self.given_up or height > c.deadline:
                continue
            state = self.tx_state(self.sent.get(key))
            if state == "pending":
                continue
            if state == "committed":  # included, yet the challenge is still open: it failed
                log.warning("storage: the proof for segment %d of column %d of deal %s was "
                            "included but did not take effect; not retrying it", c.segment,
                            c.frag_index, c.file_id.hex())
                self.given_up.add(key)
                continue
            if c.file_id not in deals:
                deals[c.file_id] = self.read(sm.get_deal, c.file_id)
            deal = deals[c.file_id]
            root = next((col.root for col in deal.columns if col.frag_index == c.frag_index
                         and col.provider == self.address), None) if deal else None
            if root is None:
                continue
            todo.append((c, root))
        # Challenges past their deadline are settled on chain: forget them.
        self.sent = {k: v for k, v in self.sent.items() if k[4] >= height}
        self.given_up = {k for k in self.given_up if k[4] >= height}
        if not todo:
            return
        built = await self._disk(self._build_proofs, todo)
        proofs: list[tuple[tuple[bytes, int, int, int, int], st.AuditProof]] = []
        for c, proof, why in built:
            key = (c.file_id, c.frag_index, c.segment, c.leaf, c.deadline)
            if proof is None:
                log.warning("storage: cannot answer the audit of segment %d of column %d of "
                            "deal %s: %s; skipping it (it will count as missed)", c.segment,
                            c.frag_index, c.file_id.hex(), why)
                self.given_up.add(key)
            else:
                proofs.append((key, proof))
        for i in range(0, len(proofs), PROVE_BATCH):
            batch = proofs[i:i + PROVE_BATCH]
            tx_hash = self.send("storage/prove", st.Prove(tuple(p for _, p in batch)),
                                 PROVE_GAS + PROVE_GAS_PER_PROOF * len(batch))
            if tx_hash is None:
                break  # the nonce after a refused one would be a gap: next block
            for key, _ in batch:
                self.sent[key] = tx_hash
            self.stats["proofs"] += len(batch)
            log.info("storage: sent %d audit proofs", len(batch))

    def _build_proofs(self, todo: list[tuple[st.OpenChallenge, bytes]]
                      ) -> list[tuple[st.OpenChallenge, st.AuditProof | None, str]]:
        """Worker thread: read each challenged piece once (however many of its leaves are
        challenged) and build the proofs, checked here against the column root on chain so
        that one bad piece cannot sink the batch."""
        groups: dict[tuple[bytes, int, int], list[tuple[st.OpenChallenge, bytes]]] = {}
        for c, root in todo:
            groups.setdefault((c.file_id, c.frag_index, c.segment), []).append((c, root))
        out: list[tuple[st.OpenChallenge, st.AuditProof | None, str]] = []
        for group in groups.values():
            out += self._piece_proofs(group)
        return out

    def _piece_proofs(self, group: list[tuple[st.OpenChallenge, bytes]]
                      ) -> list[tuple[st.OpenChallenge, st.AuditProof | None, str]]:
        """The proofs of the challenges of one piece (same column root, same segment)."""
        first, root = group[0]
        col = self.store.column(first.file_id, first.frag_index)
        why = ""
        if col is None:
            why = "the column is not held here"
        elif col.root != root or first.segment >= col.segments:
            why = "the column held here is not the one in the deal"
        else:
            try:
                piece = self.store.get(first.file_id, first.frag_index, first.segment)
            except (PieceNotFound, PieceCorrupt) as exc:
                why = str(exc)
        if why:
            return [(c, None, why) for c, _ in group]
        assert col is not None
        count = layout.leaf_count(len(piece))
        wanted = [c.leaf for c, _ in group if c.leaf < count]
        built = dict(zip(wanted, layout.leaf_proofs(piece, wanted), strict=True))
        column_path = layout.column_proof(list(col.piece_roots), first.segment)
        piece_root = col.piece_roots[first.segment]
        out: list[tuple[st.OpenChallenge, st.AuditProof | None, str]] = []
        for c, _ in group:
            if c.leaf not in built:
                out.append((c, None, f"leaf {c.leaf} is past the piece's end"))
                continue
            chunk, piece_path = built[c.leaf]
            if not (verify_proof(piece_root, leaf_hash(chunk), piece_path)
                    and verify_proof(root, piece_root, column_path)):
                out.append((c, None, "its proof does not verify against the column root"))
                continue
            out.append((c, st.AuditProof(c.file_id, c.frag_index, c.segment, chunk,
                                         piece_path, column_path), ""))
        return out

    # --- bandwidth receipts --------------------------------------------------------------

    def _claim(self, height: int) -> None:
        for tx_hash, keys in list(self._claims.items()):
            receipt = committed_receipt(self.node, tx_hash)
            if receipt is not None:
                del self._claims[tx_hash]
                self.book.delete(keys)
                if receipt.ok:
                    self.stats["claimed"] += len(keys)
                    log.info("storage: claimed %d bandwidth receipts", len(keys))
                else:
                    log.warning("storage: a bandwidth claim of %d receipts failed (%s); "
                                "dropping them", len(keys), receipt.log)
            elif tx_hash not in self.node.mempool:
                del self._claims[tx_hash]  # dropped: its receipts are claimable again
        in_flight = {k for keys in self._claims.values() for k in keys}
        ttl = self.node.chain.params.storage_receipt_ttl
        expired: list[bytes] = []
        ready: list[tuple[bytes, st.Receipt]] = []
        for key, r in self.book.all():
            if key in in_flight:
                continue
            if r.height + ttl <= height + 1:  # could not be included in time any more
                expired.append(key)
            elif r.height <= height:
                ready.append((key, r))
        if expired:
            self.book.delete(expired)
            log.warning("storage: %d bandwidth receipts expired unclaimed", len(expired))
        after = max(1, min(CLAIM_AFTER_BLOCKS, ttl // 4))
        if not ready or (len(ready) < CLAIM_BATCH and height - ready[0][1].height < after):
            return
        for i in range(0, len(ready), CLAIM_BATCH):
            batch = ready[i:i + CLAIM_BATCH]
            msg = st.ClaimBandwidth(tuple(r for _, r in batch))
            claim_hash = self.send("storage/claim_bandwidth", msg,
                                    CLAIM_GAS + CLAIM_GAS_PER_RECEIPT * len(batch))
            if claim_hash is None:
                break
            self._claims[claim_hash] = [k for k, _ in batch]

    # --- request handlers ----------------------------------------------------------------

    async def _on_intent(self, peer: bytes, payload: bytes) -> bytes:
        intent = _decode(UploadIntent, payload)
        chain = self.node.chain
        price = self.record.price if self.record is not None else self.terms().price
        with chain.reader() as reader:
            balance = get_account(reader, address_of(intent.client)).balance
            deal = sm.get_deal(reader, intent.file_id)
        r = self.reservations.admit(peer, intent, height=chain.height, params=chain.params,
                                    price=price, balance=balance, deal=deal)
        log.info("storage: upload of column %d of %s booked for %s (%d bytes, until height "
                 "%d)", intent.frag_index, intent.file_id.hex()[:16], to_bech32(r.account),
                 intent.column_bytes, intent.expires)
        return b""

    async def _on_put(self, peer: bytes, payload: bytes) -> bytes:
        msg = _decode(PutPiece, payload)
        if len(msg.piece) > MAX_PIECE:
            raise BadRequest(f"a piece is at most {MAX_PIECE} bytes, got {len(msg.piece)}")
        booked = self.reservations.for_put(peer, msg.file_id, msg.frag_index, msg.segment,
                                           len(msg.piece), self.node.chain.height)
        try:
            root = await self._disk(self.store.put, msg.file_id, msg.frag_index, msg.segment,
                                    msg.piece)
        except PieceConflict as exc:
            self.reservations.undo_put(booked, msg.segment)
            raise BadRequest(str(exc)) from None
        except BaseException:
            self.reservations.undo_put(booked, msg.segment)
            raise
        self.stats["puts"] += 1
        return PutAck(root).encode()

    async def _on_accept(self, peer: bytes, payload: bytes) -> bytes:
        msg = _decode(AcceptColumn, payload)
        chain = self.node.chain
        limit = chain.params.storage_max_segments
        if not 1 <= msg.segments == len(msg.piece_roots) <= limit:
            raise BadRequest(f"{msg.segments} segments and {len(msg.piece_roots)} piece roots: "
                             f"they must match and be 1..{limit}")
        height = chain.height
        booked = self.reservations.accept(peer, msg.file_id, msg.frag_index, msg.segments,
                                          height)
        try:
            meta = await self._disk(self.store.accept, msg.file_id, msg.frag_index,
                                    list(msg.piece_roots))
        except PieceConflict as exc:
            raise BadRequest(str(exc)) from None
        round = self._next_round(msg.file_id, msg.frag_index)
        signature = self.key.sign(st.acceptance_bytes(
            self.chain_id, msg.file_id, msg.frag_index, meta.root, meta.column_bytes,
            meta.segments, round, height, booked.account))
        self.stats["accepts"] += 1
        log.info("storage: accepted column %d of file %s (%d segments, %d bytes, round %d)",
                 msg.frag_index, msg.file_id.hex()[:16], meta.segments, meta.column_bytes,
                 round)
        return Acceptance(meta.root, meta.column_bytes, height, signature).encode()

    def _next_round(self, file_id: bytes, frag: int) -> int:
        """The placement round an acceptance of this column is for: 0 for a new deal, the
        column's round + 1 for a repair."""
        deal = self.read(sm.get_deal, file_id)
        col = next((c for c in deal.columns if c.frag_index == frag), None) if deal else None
        return 0 if col is None else col.round + 1

    async def _on_get(self, peer: bytes, payload: bytes) -> bytes:
        msg = _decode(GetPiece, payload)
        col = self.store.column(msg.file_id, msg.frag_index)
        if col is None or msg.segment >= col.segments:
            raise LookupError(f"piece {msg.segment} of column {msg.file_id.hex()[:16]}…/"
                              f"{msg.frag_index} is not held here")
        try:
            piece = await self._disk(self.store.get, msg.file_id, msg.frag_index, msg.segment)
        except PieceCorrupt as exc:
            log.warning("storage: not serving a damaged piece: %s", exc)
            raise
        self.stats["gets"] += 1
        return PieceReply(piece, layout.column_proof(list(col.piece_roots),
                                                     msg.segment)).encode()

    async def _on_receipt(self, peer: bytes, payload: bytes) -> bytes:
        r = _decode(st.Receipt, payload)
        if r.provider != self.address:
            raise BadRequest("the receipt names another provider")
        rid = st.receipt_bytes(self.chain_id, r)
        if not verify(r.client, rid, r.signature):
            raise BadRequest("the receipt is not signed by its client")
        price = self.record.bandwidth_price if self.record is not None else self.bandwidth_price
        want = st.bandwidth_amount(r.bytes, price)
        if r.amount != want:
            raise BadRequest(f"the receipt asks {r.amount} for {r.bytes} bytes; at "
                             f"{price} per GiB they cost {want}")
        height, ttl = self.node.chain.height, self.node.chain.params.storage_receipt_ttl
        if not height + 1 - ttl < r.height <= height + RECEIPT_FUTURE_BLOCKS:
            raise BadRequest(f"a receipt of height {r.height} is not claimable around height "
                             f"{height}")
        if r.amount == 0:
            return b""  # nothing to claim
        if await self._disk(self.book.add, ReceiptBook.key(rid, r), r):
            self.stats["receipts"] += 1
        return b""

    # --- repairs -------------------------------------------------------------------------

    async def _repair_forever(self) -> None:
        while True:
            await asyncio.sleep(REPAIR_POLL_S)
            try:
                await self._repair_pass()
            except Exception:
                log.exception("storage: repair pass failed")

    def _rank(self, file_id: bytes, frag: int, exclude: bytes) -> int:
        """Our place among active providers for repairing this column (0: first)."""
        with self.node.chain.reader() as reader:
            views = sm.list_providers(reader)
        column = file_id + frag.to_bytes(4, "big")
        order = sorted((h256_tagged(b"smart/store/repairer", column, v.address), v.address)
                       for v in views if v.provider.active and v.address != exclude)
        return next((i for i, (_, a) in enumerate(order) if a == self.address), len(order))

    async def _repair_pass(self) -> None:
        if not self.registered or self.view is None:
            return
        deals = self.read(sm.repairs)
        now = time.monotonic()
        broken = {(d.file_id, c.frag_index) for d in deals for c in d.deal.columns
                  if not c.healthy}
        for key in list(self._repair_seen):
            if key not in broken:
                for book in (self._repair_seen, self._repair_at, self._repair_wait):
                    book.pop(key, None)
        for d in deals:
            for c in d.deal.columns:
                key = (d.file_id, c.frag_index)
                if c.healthy or c.provider == self.address:
                    continue
                first = self._repair_seen.setdefault(key, now)
                if now < self._repair_at.get(key, 0.0):
                    continue
                if now - first < self._rank(d.file_id, c.frag_index, c.provider) \
                        * REPAIR_STAGGER_S:
                    continue
                await self._repair_one(d.file_id, c.frag_index)
                break  # one column per deal per pass: the chain stops repairs at threshold

    async def _repair_one(self, file_id: bytes, frag: int) -> None:
        key = (file_id, frag)
        log.info("storage: repairing column %d of deal %s", frag, file_id.hex())
        try:
            async with asyncio.timeout(REPAIR_TIMEOUT_S):
                # loopback: set when the provider starts, before any repair runs
                ok = await repair_column(self.loopback, self.view, file_id, frag,  # type: ignore[arg-type]
                                         key=self.key)
            why = "" if ok else "not possible now"
        except Exception as exc:  # network, chain and data errors alike: back off
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if ok:
            self.stats["repairs"] += 1
            log.info("storage: repaired column %d of deal %s", frag, file_id.hex())
            for book in (self._repair_seen, self._repair_at, self._repair_wait):
                book.pop(key, None)
            return
        wait = min(REPAIR_BACKOFF_S[1], self._repair_wait.get(key, REPAIR_BACKOFF_S[0] / 2) * 2)
        self._repair_wait[key] = wait
        self._repair_at[key] = time.monotonic() + wait
        log.warning("storage: repair of column %d of deal %s failed (%s); retrying in %.0fs",
                    frag, file_id.hex(), why, wait)


S = TypeVar("S", bound=Struct)


def _decode(cls: type[S], payload: bytes) -> S:
    try:
        return cls.decode(payload)
    except CodecError as exc:
        raise BadRequest(f"malformed {cls.__name__}: {exc}") from None


def _human(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"
