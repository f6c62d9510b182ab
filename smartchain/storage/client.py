"""The storage client: upload a file to providers, download it back, check its health.

Everything here runs in any process that has a ``P2P`` endpoint and a ``ChainView`` (the CLI
over the HTTP API, a node over its own state): the chain is only read for provider records and
deals and written through ``ChainView.submit``, so the same code serves ``smart store``, the
node's repairer and the benchmark.

Upload (``put``)::

    plaintext ─segment─▶ ChaCha20-Poly1305 ─▶ pyeclib k-of-code_n ─▶ piece (s, j)
              ─▶ the provider of column j

* **Placement** is weighted rendezvous hashing (``place``): every client computes the same
  ranking of providers for a file id, without coordination, and a provider's share of files
  follows its weight (free capacity × cheapness × reputation). Removing a provider moves only
  the columns that were on it.
* **Long tail, hedged**: we code ``code_n = n + extra`` columns (``extra`` up to 2, as
  providers allow) but upload only ``n`` of them while they keep pace. A column that has
  moved ``LAG`` segments less than the leader since it started is a straggler: it is paused
  (long-tail cancellation) and a reserve column starts on another provider in its place; the
  first ``n`` columns that hold every segment and sign for it are kept. Storj starts 110
  uploads to keep 80 and so sends about 2.7× the file; a hedge costs bytes only when a
  provider is actually slow, so a healthy upload sends ``n / k`` (1.5× at 4-of-6) and a slow
  disk still never holds the file back.
* **Streaming**: segments are encoded just ahead of the uploads (a window of a few segments),
  so a 256 MiB file never sits in memory.
* A provider that fails, times out or acknowledges a piece with the wrong root is dropped; its
  column is given to a spare placed provider when fewer than ``n`` columns would be left.
* Each column starts with a signed upload intent (``store/intent``): a provider takes
  pieces only from a funded account that booked the column, and its acceptance names that
  account, the only one that may post it.
* Only once ``n`` providers have *signed* that they hold their whole column does the client
  post ``storage/create_deal``: a deal never names a provider that has not proved custody.

Download (``get``) asks ``k`` providers per segment and one more whenever a piece is late
(a hedge), keeps the first ``k`` pieces whose Merkle path climbs to the column root *on
chain* (so a lying provider is caught with no trust in it), reports corrupt ones, retries
elsewhere on failure, and pays every provider that served a verified piece with a signed
bandwidth receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import tempfile
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from smartchain.codec import CodecError, Struct
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey, verify
from smartchain.modules.storage.module import required_collateral
from smartchain.modules.storage.types import (
    SIGNATURE_GAS,
    CancelDeal,
    CreateDeal,
    Deal,
    NewColumn,
    StorageProvider,
    acceptance_bytes,
    bandwidth_amount,
    cancel_writes,
    deal_cost,
    piece_length,
    sign_receipt,
)
from smartchain.p2p.framing import P2PError
from smartchain.p2p.peers import P2P
from smartchain.state.params import Params
from smartchain.storage import layout
from smartchain.storage.protocol import (
    ACCEPT,
    GET,
    INTENT,
    PUT,
    RECEIPT,
    Acceptance,
    AcceptColumn,
    GetPiece,
    PieceReply,
    PutAck,
    PutPiece,
    intent_expiry,
    sign_intent,
)

log = logging.getLogger("smartchain.storage.client")

GiB = 1024 ** 3
MAX_EXTRA = 2  # long-tail columns beyond n (Storj uploads 110 pieces to keep 80: ~1.4x)
# A download asks k providers per segment and hedges: a piece later than HEDGE_FACTOR times
# the typical one so far (HEDGE_FIRST_S before any) sends one more request, so a slow
# provider costs one extra piece, and a healthy download moves the file's size, not more.
HEDGE_FACTOR = 3
HEDGE_FIRST_S = 1.0
HEDGE_MIN_S = 0.05
PIPELINE = 3  # pieces in flight to one provider (each is fsync'd before it is answered)
LAG = 2  # a column that moved this many segments less than the leader is a straggler
# segments encoded ahead of the slowest running column (the memory bound: WINDOW x code_n
# pieces). With WINDOW >= PIPELINE + LAG a column that holds the others back is always far
# enough behind to be cut as a straggler when there are spare columns.
WINDOW = PIPELINE + LAG
FETCH_WINDOW = 3  # segments downloaded at once
REQUEST_TIMEOUT = 30.0  # one piece over loopback takes milliseconds; a WAN a few seconds
DIAL_TIMEOUT = 5.0
MAX_STRIKES = 2  # failures after which a column is no longer asked during a download
REP_BASE = 100  # reputation a new provider is treated as having, so it can win placements
DEFAULT_EPOCHS = 30

# the state writes a transaction of each kind may make (gas = writes x gas_per_write + size)
DEAL_WRITES = 12  # escrow moves, file id, deal; plus two per column (provider's ``used``)
REPAIR_WRITES = 12
TX_OVERHEAD = 512

Progress = Callable[[str, int, int], None]  # (stage, done, total): "upload" bytes, ...


# --- errors ------------------------------------------------------------------------------


class StorageError(Exception):
    """A storage operation failed; the message says what to do about it."""


class NotEnoughProviders(StorageError):
    pass


class UploadFailed(StorageError):
    pass


class DealNotFound(StorageError, LookupError):
    pass


class NotOwner(StorageError):
    pass


class SegmentUnavailable(StorageError):
    """Fewer than ``k`` verified pieces of a segment could be fetched: the file (or this part
    of it) cannot be rebuilt now."""


class ProviderFault(StorageError):
    """A provider answered, but wrongly (a piece root or signature that does not match)."""


# --- the chain, as the storage code sees it -------------------------------------------------


class ChainView(Protocol):
    """The few chain reads and writes the storage code needs (HTTP API or in-process).

    The async functions here call every method through ``asyncio.to_thread``: a view may
    block (HTTP, or waiting for a block the caller's own event loop must produce).
    Optional extras, used when present: ``params() -> Params`` (gas and cost estimates;
    defaults otherwise) and ``all_providers()`` (inactive ones too: a provider deactivated
    by a slash still holds, and serves, the columns it had; without it downloads and
    repairs use only active providers)."""

    chain_id: str

    def height(self) -> int: ...

    def providers(self) -> list[tuple[bytes, StorageProvider]]: ...  # active ones

    def deal(self, file_id: bytes) -> Deal | None: ...

    def submit(self, kind: str, payload: Struct, gas_limit: int) -> str: ...

    def wait(self, tx_hash: str, timeout: float) -> None: ...


def tx_gas(view: Any, payload: Struct, writes: int, signatures: int = 0) -> int:
    """A gas limit for a storage transaction: its size, writes and signature checks priced
    with the chain's parameters, with half again as margin. A limit only reserves: the fee
    is the gas actually used."""
    p = chain_params(view)
    gas = (p.tx_base_gas + p.gas_per_tx_byte * (len(payload.encode()) + TX_OVERHEAD)
           + p.gas_per_write * writes + SIGNATURE_GAS * signatures)
    return min(gas * 3 // 2, p.max_tx_gas)


class ApiChainView:
    """A ``ChainView`` over a node's HTTP API (``smartchain.client.Client``), signing with
    ``key`` (needed only to submit)."""

    def __init__(self, client: Any, key: PrivateKey | None = None,
                 status: dict[str, Any] | None = None) -> None:
        self.client = client
        self.key = key
        self.status = status if status is not None else client.status()
        self.chain_id: str = self.status["chain_id"]
        self.network_id: str = self.status["genesis_hash"]  # what a P2P endpoint must use

    def height(self) -> int:
        return int(self.client.status()["height"])

    def providers(self) -> list[tuple[bytes, StorageProvider]]:
        return [(a, p) for a, p in self.client.storage_provider_records() if p.active]

    def all_providers(self) -> list[tuple[bytes, StorageProvider]]:
        return self.client.storage_provider_records()

    def deal(self, file_id: bytes) -> Deal | None:
        return self.client.storage_deal_record(file_id)

    def params(self) -> Params:
        """The parameters ``/v1/status`` shows (the rest at their defaults)."""
        known: dict[str, Any] = {f: int(self.status[f]) for f in Params.__dataclass_fields__
                 if isinstance(self.status.get(f), int | str)
                 and str(self.status[f]).isdigit()}
        return Params(**known)

    def submit(self, kind: str, payload: Struct, gas_limit: int) -> str:
        if self.key is None:
            raise StorageError("this chain view has no key to sign with")
        tx = self.client.build_tx(self.key, kind, payload, gas_limit=gas_limit,
                                  chain_id=self.chain_id)
        return self.client.submit(tx.encode())

    def wait(self, tx_hash: str, timeout: float) -> None:
        doc = self.client.wait_tx(tx_hash, timeout=timeout)
        receipt = doc["receipt"]
        if not receipt["ok"]:
            raise StorageError(f"transaction {tx_hash} failed: {receipt['log']}")


# --- placement -----------------------------------------------------------------------------


def provider_weight(p: StorageProvider, cheapest: int) -> float:
    """Free capacity (GiB) × cheapness (cheapest price / this price) × reputation factor: a
    provider with twice the room, or half the price, gets about twice the columns."""
    free = max(0, p.capacity - p.used) / GiB
    price = max(1, p.price)
    return free * (max(1, cheapest) / price) * ((REP_BASE + p.reputation) / REP_BASE)


def _hash_fraction(file_id: bytes, address: bytes) -> float:
    """A uniform number in (0, 1) from (file, provider): the same for every client."""
    h = hashlib.blake2b(file_id + address, person=b"smart/place", digest_size=8).digest()
    return ((int.from_bytes(h, "big") >> 11) + 0.5) / (1 << 53)


def place(providers: Sequence[tuple[bytes, StorageProvider]], file_id: bytes, count: int,
          exclude: Collection[bytes] = (), column_bytes: int = 0,
          params: Params | None = None) -> list[tuple[bytes, StorageProvider]]:
    """The ``count`` best providers for ``file_id`` by weighted rendezvous hashing.

    Each provider's score is ``weight / -ln(u)`` with ``u`` a hash of (file, provider): the
    maximum of these is won by each provider with probability proportional to its weight
    (the exponential-race form of weighted rendezvous hashing), and the ranking depends
    only on that provider's own record, so adding or removing one moves few files.
    Providers in ``exclude``, inactive ones, those without ``column_bytes`` free and (given
    the chain's ``params``) those whose collateral does not cover the column too are left
    out. Ties (equal scores) are broken by address, so the result is deterministic."""
    eligible = [(a, p) for a, p in providers
                if a not in exclude and p.active and p.capacity - p.used >= max(1, column_bytes)
                and (params is None
                     or p.collateral >= required_collateral(params, p.used + column_bytes))]
    if not eligible:
        return []
    cheapest = min(max(1, p.price) for _, p in eligible)
    scored = []
    for a, p in eligible:
        w = provider_weight(p, cheapest)
        score = w / -math.log(_hash_fraction(file_id, a)) if w > 0 else 0.0
        scored.append((-score, a, p))
    scored.sort(key=lambda t: (t[0], t[1]))
    return [(a, p) for _, a, p in scored[:count]]


# --- shared helpers ------------------------------------------------------------------------


def column_bytes_of(size: int, k: int, code_n: int) -> tuple[int, int, int]:
    """(segments, piece_size, column_bytes) of a ``size``-byte file coded k-of-code_n."""
    segments = layout.segment_count(size, k)
    piece, last = layout.piece_sizes(size, k, code_n)
    return segments, piece, (segments - 1) * piece + last


def chain_params(view: Any) -> Params:
    """The chain's parameters when the view can read them, else the defaults (used only
    for estimates; the chain itself checks every amount)."""
    fn = getattr(view, "params", None)
    p = fn() if callable(fn) else fn
    return p if isinstance(p, Params) else Params()


def estimate_cost(providers: Sequence[StorageProvider], size: int, k: int, n: int, epochs: int,
                  params: Params) -> int:
    """Escrow plus repair budget a deal for ``size`` bytes on the ``n`` dearest of
    ``providers`` would lock: an upper bound to check a balance against before uploading."""
    _, _, nbytes = column_bytes_of(size, k, n + MAX_EXTRA)
    prices = sorted((p.price for p in providers), reverse=True)[:n]
    escrow, budget = deal_cost(prices, nbytes, epochs, params.storage_repair_bps)
    return escrow + budget


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """A ``ChainView`` method, off the event loop (it may block; see ``ChainView``)."""
    return await asyncio.to_thread(fn, *args)


def _all_providers(view: ChainView) -> list[tuple[bytes, StorageProvider]]:
    fn = getattr(view, "all_providers", None)
    return fn() if callable(fn) else view.providers()


async def _need_deal_async(view: ChainView, file_id: bytes) -> Deal:
    deal = await _call(view.deal, file_id)
    if deal is None:
        raise DealNotFound(f"no storage deal for file {file_id.hex()}")
    return deal


async def _dial(p2p: P2P, address: str, timeout: float = DIAL_TIMEOUT) -> bytes:
    return await asyncio.wait_for(p2p.connect(address), timeout)


async def send_intent(p2p: P2P, view: ChainView, key: PrivateKey, peer: bytes,
                      provider: bytes, file_id: bytes, frag_index: int, segments: int,
                      column_bytes: int, timeout: float, *, salt: bytes = bytes(32),
                      epochs: int = 0) -> None:
    """Book the upload of one column with its provider (``store/intent``), good for as
    long as the chain lets an acceptance live: the provider takes no piece without it."""
    expires = intent_expiry(await _call(view.height), chain_params(view).storage_accept_ttl)
    intent = sign_intent(key, view.chain_id, provider=provider, peer=p2p.peer_id,
                         file_id=file_id, frag_index=frag_index, segments=segments,
                         column_bytes=column_bytes, salt=salt, epochs=epochs, expires=expires)
    await p2p.request(peer, INTENT, intent.encode(), timeout)


_FAULTS = (P2PError, OSError, TimeoutError, CodecError, ValueError, ProviderFault)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def check_acceptance(chain_id: str, rec: StorageProvider, file_id: bytes, frag_index: int,
                     piece_roots: list[bytes], column_bytes: int, reply: bytes, *,
                     round: int, uploader: bytes) -> Acceptance:
    """The provider's answer to ``store/accept``, checked as the chain will check it (for
    placement ``round`` of the column, uploaded by ``uploader``): a signature that would make
    the deal (or repair) transaction fail is caught here, while another provider can still
    take the column."""
    acc = Acceptance.decode(reply)
    root = layout.column_root(piece_roots)
    if acc.root != root or acc.column_bytes != column_bytes:
        raise ProviderFault("signed an acceptance for another column")
    msg = acceptance_bytes(chain_id, file_id, frag_index, root, column_bytes, len(piece_roots),
                           round, acc.height, uploader)
    if not verify(rec.pubkey, msg, acc.signature):
        raise ProviderFault("acceptance signature does not verify")
    return acc


# --- upload --------------------------------------------------------------------------------


@dataclass
class PlacedColumn:
    frag_index: int
    provider: bytes
    root: bytes


@dataclass
class PutResult:
    file_id: bytes
    salt: bytes
    size: int
    k: int
    n: int
    code_n: int
    segments: int
    column_bytes: int
    columns: list[PlacedColumn]
    bytes_sent: int  # piece bytes sent to providers, all columns (the expansion factor)
    tx_hash: str
    failed: list[bytes] = field(default_factory=list)  # providers that failed or lied
    paused: int = 0  # straggler columns cut (long tail)

    @property
    def expansion(self) -> float:
        return self.bytes_sent / max(1, self.size)


class _Source:
    """Plaintext segments from bytes or a file (read with ``pread``: several threads may
    rebuild segments at once), sealed and erasure-coded on demand.

    A segment is coded only as wide as the columns being uploaded need (``n``, or up to the
    highest running reserve column): the pieces of a k-of-m code are the first m of any
    wider code's (``layout.Codec``), so the reserve columns' parity is computed only for
    the segments a hedge actually uploads."""

    def __init__(self, data: bytes | Path, key: bytes, file_id: bytes, k: int, n: int,
                 code_n: int) -> None:
        self.key, self.file_id, self.k, self.n = key, file_id, k, n
        self.codecs = {m: layout.Codec(k, m) for m in range(n, code_n + 1)}
        self.data: memoryview | None = None
        self.fd: int | None = None
        if isinstance(data, bytes | bytearray | memoryview):
            self.data = memoryview(data)
            self.size = len(self.data)
        else:
            self.fd = os.open(data, os.O_RDONLY)
            self.size = os.fstat(self.fd).st_size

    def plain(self, s: int) -> bytes:
        start, end = layout.segment_bounds(self.size, self.k, s)
        if self.data is not None:
            return bytes(self.data[start:end])
        assert self.fd is not None
        try:
            chunk = os.pread(self.fd, end - start, start)
        except OSError as exc:  # ours, not a provider's fault
            raise UploadFailed(f"cannot read the file: {exc.strerror or exc}") from exc
        if len(chunk) != end - start:
            raise UploadFailed("the file changed size while it was being uploaded")
        return chunk

    def pieces(self, s: int, hashed: Collection[int]) -> tuple[list[bytes], list[bytes | None]]:
        """Segment ``s``'s pieces up to the widest column in ``hashed`` (at least ``n``), and
        the piece roots of the columns in ``hashed`` (None for the others: a reserve column
        may never be uploaded). Runs in a thread."""
        sealed = layout.encrypt_segment(self.key, self.file_id, s, self.plain(s))
        pieces = self.codecs[max(self.n, max(hashed, default=0) + 1)].encode(sealed)
        return pieces, [layout.piece_root(p) if j in hashed else None
                        for j, p in enumerate(pieces)]

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Upload:
    """One file's uploads: a task per column, a shared window of encoded segments."""

    def __init__(self, p2p: P2P, view: ChainView, source: _Source, file_id: bytes, k: int,
                 n: int, code_n: int, segments: int, column_bytes: int,
                 placed: list[tuple[bytes, StorageProvider]], progress: Progress | None,
                 timeout: float, key: PrivateKey, salt: bytes, epochs: int) -> None:
        self.p2p, self.view, self.source = p2p, view, source
        self.key, self.salt, self.epochs = key, salt, epochs
        self.file_id, self.k, self.n, self.code_n = file_id, k, n, code_n
        self.segments, self.column_bytes = segments, column_bytes
        self.progress, self.timeout = progress, timeout
        self.primary = placed[:code_n]
        self.reserve = list(range(n, code_n))  # long-tail columns, started only as hedges
        self.spares = list(placed[code_n:])
        self.assigned: dict[int, tuple[bytes, StorageProvider]] = {}
        self.done: dict[int, int] = {}  # column -> segments its provider holds
        # column -> (leader's segment, its own) when it last (re)started: its pace is judged
        # from there, so a hedge starting at segment 0 is not a straggler by birth
        self.since: dict[int, tuple[int, int]] = {}
        self.sent_bytes: dict[int, int] = {}  # column -> piece bytes its provider holds
        self.running: dict[int, asyncio.Task[Acceptance]] = {}
        self.paused: list[int] = []
        self.pause_count = 0
        self.accepted: dict[int, Acceptance] = {}
        self.failed: list[bytes] = []  # providers that failed a column
        self.why_failed: list[str] = []  # "provider: why", one per failed column
        self.piece_roots: dict[int, dict[int, bytes]] = {}  # column -> segment -> root
        self.cache: dict[int, asyncio.Future[tuple[list[bytes], list[bytes | None]]]] = {}
        self.cond = asyncio.Condition()
        self.bytes_sent = 0

    # the window -----------------------------------------------------------------------

    def _low(self) -> int:
        live = [self.done[j] for j in self.running]
        return min(live) if live else self.segments

    def _leader(self) -> int:
        return max(self.done.values(), default=0)

    def _hedge(self) -> None:
        """Pause the slowest column if it has moved ``LAG`` segments less than the leader
        since it started, and start a reserve column in its place (one per call)."""
        if not self.reserve:
            return
        leader = self._leader()
        for j in sorted(self.running, key=lambda j: self.done[j]):
            lead_at, own_at = self.since[j]
            if (leader - lead_at) - (self.done[j] - own_at) < LAG:
                continue
            r = self.reserve.pop(0)
            log.info("column %d (provider %s) is a straggler at segment %d/%d: paused, "
                     "column %d starts on provider %s", j, self.assigned[j][0].hex()[:12],
                     self.done[j], self.segments, r, self.primary[r][0].hex()[:12])
            task = self.running.pop(j)
            task.cancel("straggler")  # cut, not failed: ``_replace`` may resume it
            self.paused.append(j)
            self.pause_count += 1
            self.assigned[r] = self.primary[r]
            self._start(r)
            return

    def _encode(self, s: int) -> asyncio.Future[tuple[list[bytes], list[bytes | None]]]:
        """Segment ``s``'s pieces, encoded (and hashed for the running columns) in a thread."""
        fut = self.cache.get(s)
        if fut is None:
            fut = asyncio.ensure_future(asyncio.to_thread(self.source.pieces, s,
                                                          frozenset(self.running)))
            self.cache[s] = fut
        return fut

    async def _segment(self, j: int, s: int) -> tuple[bytes, bytes]:
        """Column ``j``'s piece of segment ``s`` and its root. The next segment starts
        encoding now (within the window), so coding overlaps the uploads of this one."""
        async with self.cond:
            while s >= self._low() + WINDOW:
                self._hedge()
                if s < self._low() + WINDOW:
                    break
                await self.cond.wait()
            fut = self._encode(s)
            if s + 1 < min(self.segments, self._low() + WINDOW):
                self._encode(s + 1)
        pieces, roots = await asyncio.shield(fut)
        if j >= len(pieces):  # a reserve column: this segment was coded without its piece
            fut = self.cache[s] = asyncio.ensure_future(asyncio.to_thread(
                self.source.pieces, s, frozenset(self.running) | {j}))
            pieces, roots = await asyncio.shield(fut)
        known = roots[j]  # None: a column started after this segment was encoded
        root = known if known is not None else await asyncio.to_thread(layout.piece_root,
                                                                       pieces[j])
        roots[j] = root
        self.piece_roots.setdefault(j, {})[s] = root
        return pieces[j], root

    async def _advance(self, j: int, s: int, nbytes: int) -> None:
        async with self.cond:
            self.done[j] = s + 1
            self.sent_bytes[j] = self.sent_bytes.get(j, 0) + nbytes
            low = self._low()
            for old in [x for x in self.cache if x < low]:
                del self.cache[old]  # no running column needs it: free the memory
            self.cond.notify_all()
        self._report()

    def _report(self) -> None:
        if self.progress is None:
            return
        best = sorted(self.sent_bytes.values(), reverse=True)[:self.n]
        self.progress("upload", min(sum(best), self.n * self.column_bytes),
                      self.n * self.column_bytes)

    # one column -----------------------------------------------------------------------

    async def _put(self, peer: bytes, j: int, s: int, piece: bytes, root: bytes) -> int:
        self.bytes_sent += len(piece)  # counted when sent, even if cut before the answer
        reply = await self.p2p.request(
            peer, PUT, PutPiece(self.file_id, j, s, piece).encode(), self.timeout)
        if PutAck.decode(reply).piece_root != root:
            raise ProviderFault(f"acknowledged segment {s} with a wrong piece root")
        return len(piece)

    async def _column(self, j: int) -> Acceptance:
        """Upload column ``j`` to its provider, ``PIPELINE`` pieces in flight: a provider
        fsyncs each piece before answering, and waiting for every answer before sending
        the next piece would leave the link idle for that long."""
        address, rec = self.assigned[j]
        peer = await _dial(self.p2p, rec.p2p)
        await send_intent(self.p2p, self.view, self.key, peer, address, self.file_id, j,
                          self.segments, self.column_bytes, self.timeout, salt=self.salt,
                          epochs=self.epochs)
        inflight: deque[tuple[int, asyncio.Future[int]]] = deque()
        try:
            s = self.done[j]
            while s < self.segments or inflight:
                while s < self.segments and len(inflight) < PIPELINE:
                    piece, root = await self._segment(j, s)
                    inflight.append((s, asyncio.ensure_future(
                        self._put(peer, j, s, piece, root))))
                    s += 1
                first, fut = inflight[0]
                nbytes = await fut
                inflight.popleft()
                await self._advance(j, first, nbytes)
        finally:
            for _, fut in inflight:
                fut.cancel()
            if inflight:
                await asyncio.gather(*(f for _, f in inflight), return_exceptions=True)
        # every segment was sent above, so all its roots are known
        piece_roots = tuple(self.piece_roots[j][s] for s in range(self.segments))
        reply = await self.p2p.request(
            peer, ACCEPT, AcceptColumn(self.file_id, j, self.segments, piece_roots).encode(),
            self.timeout)
        return check_acceptance(self.view.chain_id, rec, self.file_id, j, list(piece_roots),
                                self.column_bytes, reply, round=0, uploader=self.key.address)

    def _start(self, j: int) -> None:
        self.done.setdefault(j, 0)
        self.since[j] = (self._leader(), self.done[j])
        self.running[j] = asyncio.ensure_future(self._column(j))

    def _replace(self) -> None:
        """Fewer than ``n`` columns are alive: resume a paused straggler (it keeps what it
        stored), else start a reserve column, else give a failed column's index to a spare
        provider (from segment 0)."""
        while len(self.running) + len(self.accepted) < self.n:
            if self.paused:
                j = self.paused.pop(0)
                log.info("resuming paused column %d", j)
                self._start(j)
                continue
            if self.reserve:
                j = self.reserve.pop(0)
                self.assigned[j] = self.primary[j]
                self._start(j)
                continue
            free = [j for j in range(self.code_n)
                    if j not in self.running and j not in self.accepted]
            if not self.spares or not free:
                return
            j = free[0]
            self.assigned[j] = self.spares.pop(0)
            self.done[j] = 0
            self.sent_bytes.pop(j, None)
            log.info("column %d moves to spare provider %s", j,
                     self.assigned[j][0].hex()[:12])
            self._start(j)

    async def run(self) -> dict[int, Acceptance]:
        for j in range(self.n):
            self.assigned[j] = self.primary[j]
            self._start(j)
        try:
            while len(self.accepted) < self.n:
                if not self.running:
                    raise UploadFailed(
                        f"only {len(self.accepted)} of {self.n} providers accepted the file "
                        f"({'; '.join(self.why_failed)}); nothing was paid")
                tasks = {t: j for j, t in self.running.items()}
                finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    j = tasks[task]
                    if self.running.get(j) is not task:
                        continue  # paused meanwhile (its cancellation is not a failure)
                    del self.running[j]
                    if task.cancelled():
                        self.paused.append(j)
                        continue
                    exc = task.exception()
                    if exc is None:
                        self.accepted[j] = task.result()
                        continue
                    if not isinstance(exc, _FAULTS):
                        raise exc
                    address = self.assigned[j][0]
                    log.warning("provider %s failed column %d: %s", address.hex()[:12], j,
                                _describe(exc))
                    self.failed.append(address)
                    self.why_failed.append(f"{to_bech32(address)}: {_describe(exc)}")
                    async with self.cond:
                        self.cond.notify_all()  # the window may have been waiting on it
                self._replace()
            return dict(sorted(self.accepted.items())[:self.n])
        finally:
            for task in self.running.values():
                task.cancel()  # long-tail cancellation: the slowest never finish
            if self.running:
                await asyncio.gather(*self.running.values(), return_exceptions=True)
            for fut in self.cache.values():
                fut.cancel()


async def put(p2p: P2P, view: ChainView, key: PrivateKey, data: bytes | Path, *, k: int = 4,
              n: int = 6, epochs: int = DEFAULT_EPOCHS, repair_threshold: int | None = None,
              progress: Progress | None = None, timeout: float = REQUEST_TIMEOUT,
              tx_timeout: float = 60.0, max_columns: int = 32,
              extra: int = MAX_EXTRA) -> PutResult:
    """Encrypt, erasure-code and upload ``data`` (bytes or a file), then post its deal.

    ``key`` is the owner: its seed derives the file key (so only its keystore decrypts) and
    ``view`` signs the deal with it. Nothing is paid unless ``n`` providers have accepted
    their columns; pieces of a failed upload are garbage-collected by the providers. The
    repair threshold (the chain repairs while fewer columns than it are healthy) defaults
    to ``n``: any lost column is rebuilt, paid from the repair budget, long before the file
    is at risk. A lower threshold (down to ``k + 1``) saves repairs and risks more.

    ``extra`` long-tail columns (at most, as providers allow) are coded beyond ``n`` and
    uploaded only as hedges for stragglers: ``expansion`` is ``n / k`` when no provider
    lags, plus what a paused straggler had sent when one does."""
    if not 1 <= k < n <= max_columns:
        raise StorageError(f"redundancy must satisfy 1 <= k < n <= {max_columns}, got {k}/{n}")
    if epochs <= 0:
        raise StorageError("epochs must be a positive integer")
    source_size = len(data) if isinstance(data, bytes) else Path(data).stat().st_size
    candidates = await _call(view.providers)
    # every candidate must have room for a column; extra columns are cheap insurance
    _, _, need = column_bytes_of(source_size, k, n + max(0, extra))
    params = chain_params(view)
    roomy = place(candidates, bytes(32), len(candidates), column_bytes=need, params=params)
    if len(roomy) < n:
        raise NotEnoughProviders(
            f"{k}-of-{n} needs {n} storage providers with {need} bytes free (and collateral "
            f"for them); the chain has {len(roomy)} (of {len(candidates)} active)")
    code_n = min(n + min(max(0, extra), len(roomy) - n), max_columns)
    segments, piece_size, column_bytes = column_bytes_of(source_size, k, code_n)
    last_piece = column_bytes - (segments - 1) * piece_size
    salt = os.urandom(32)
    file_id = layout.file_id_of(key.address, salt)
    placed = place(roomy, file_id, len(roomy), column_bytes=column_bytes, params=params)
    source = _Source(data, layout.file_key(key.seed, salt), file_id, k, n, code_n)
    try:
        if source.size != source_size:
            raise UploadFailed("the file changed size while it was being uploaded")
        up = _Upload(p2p, view, source, file_id, k, n, code_n, segments, column_bytes, placed,
                     progress, timeout, key, salt, epochs)
        accepted = await up.run()
    finally:
        source.close()
    if progress is not None:
        progress("deal", 0, 1)
    columns = tuple(NewColumn(up.assigned[j][0], j, acc.root, acc.height, acc.signature)
                    for j, acc in accepted.items())
    threshold = repair_threshold if repair_threshold is not None else n
    prices = [up.assigned[j][1].price for j in accepted]
    escrow, budget = deal_cost(prices, column_bytes, epochs, params.storage_repair_bps)
    # max_cost: the chain refuses (before the mempool, fee and all) an owner who cannot pay,
    # and never charges more than the terms we saw, even if a provider re-priced meanwhile
    payload = CreateDeal(salt, source_size, k, code_n, segments, piece_size, last_piece, epochs,
                         threshold, columns, escrow + budget)
    tx_hash = await _call(view.submit, "storage/create_deal", payload,
                          tx_gas(view, payload, DEAL_WRITES + 2 * n, signatures=n))
    await _call(view.wait, tx_hash, tx_timeout)
    if progress is not None:
        progress("deal", 1, 1)
    return PutResult(file_id, salt, source_size, k, n, code_n, segments, column_bytes,
                     [PlacedColumn(c.frag_index, c.provider, c.root) for c in columns],
                     up.bytes_sent, tx_hash, up.failed, up.pause_count)


# --- download ------------------------------------------------------------------------------


@dataclass
class CorruptPiece:
    provider: bytes
    frag_index: int
    segment: int


@dataclass
class GetResult:
    file_id: bytes
    size: int
    path: Path
    bytes_received: int = 0
    pieces: int = 0
    corrupt: list[CorruptPiece] = field(default_factory=list)
    failures: int = 0  # requests that failed or timed out (and were retried elsewhere)
    receipts: int = 0  # bandwidth receipts delivered
    hedges: int = 0  # extra requests sent because a piece was late


@dataclass
class _Col:
    frag_index: int
    provider: bytes
    root: bytes
    healthy: bool
    record: StorageProvider | None
    strikes: int = 0
    corrupt: bool = False
    peer: bytes | None = None


class _Fetcher:
    """Pieces of one deal's segments from its columns, each checked against the chain."""

    def __init__(self, p2p: P2P, view: ChainView, deal: Deal, file_id: bytes,
                 providers: list[tuple[bytes, StorageProvider]], exclude: Collection[int] = (),
                 timeout: float = REQUEST_TIMEOUT, key: PrivateKey | None = None,
                 height: int = 0) -> None:
        self.p2p, self.view, self.deal, self.file_id = p2p, view, deal, file_id
        self.timeout, self.key, self.height = timeout, key, height
        records = dict(providers)
        self.cols = [_Col(c.frag_index, c.provider, c.root, c.healthy, records.get(c.provider))
                     for c in deal.columns if c.frag_index not in exclude]
        # Healthy columns first, data fragments (index < k) before parity: pyeclib rebuilds a
        # segment from its k data fragments 1.5x faster than from parity (measured: 14 vs
        # 20 ms per 8 MiB), and parity providers serve only when a data one is missing.
        self.cols.sort(key=lambda c: (not c.healthy, c.record is None, c.frag_index))
        self.corrupt: list[CorruptPiece] = []
        self.failures = 0
        self.bytes_received = 0
        self.pieces = 0
        self.receipt_tasks: set[asyncio.Task[bool]] = set()
        self.receipts = 0
        self.latencies: deque[float] = deque(maxlen=32)  # seconds per verified piece
        self.hedges = 0

    def _hedge_after(self) -> float:
        """How long to wait for a segment's next piece before asking one more provider."""
        if not self.latencies:
            return HEDGE_FIRST_S
        typical = sorted(self.latencies)[len(self.latencies) // 2]
        return max(HEDGE_MIN_S, HEDGE_FACTOR * typical)

    async def piece(self, col: _Col, s: int) -> bytes:
        """Piece ``s`` of ``col``, verified; raises ``ProviderFault`` if it is not the one the
        chain has the root of, and a P2P error if the provider cannot be reached."""
        if col.record is None:
            raise LookupError("provider is not an active storage provider")
        if col.peer is None:
            col.peer = await _dial(self.p2p, col.record.p2p)
        started = asyncio.get_running_loop().time()
        reply = PieceReply.decode(await self.p2p.request(
            col.peer, GET, GetPiece(self.file_id, col.frag_index, s).encode(), self.timeout))
        piece = reply.piece
        self.bytes_received += len(piece)
        if len(piece) != piece_length(self.deal, s) or not await asyncio.to_thread(
                layout.verify_piece, piece, col.root, s, self.deal.segments, reply.column_path):
            raise ProviderFault(f"piece ({s}, {col.frag_index}) fails its Merkle check")
        self.latencies.append(asyncio.get_running_loop().time() - started)
        return piece

    def _usable(self, tried: set[int]) -> list[_Col]:
        cols = [c for c in self.cols if c.frag_index not in tried and not c.corrupt
                and c.record is not None and c.strikes < MAX_STRIKES]
        return sorted(cols, key=lambda c: c.strikes)  # stable: keeps the preferred order

    def _report_corrupt(self, col: _Col, s: int, exc: BaseException) -> None:
        col.corrupt = True
        self.corrupt.append(CorruptPiece(col.provider, col.frag_index, s))
        log.warning("provider %s served a corrupt piece (segment %d, column %d): %s; it will "
                    "not be asked again", col.provider.hex()[:12], s, col.frag_index, exc)
        if col.peer is not None:
            self.p2p.penalize(col.peer, 50, "corrupt storage piece")

    async def segment(self, s: int, want: int, extra: int = 0) -> dict[int, bytes]:
        """``want`` verified pieces of segment ``s``: ``want + extra`` asked at once, one
        more each time none arrives within ``_hedge_after`` (long-tail hedging), another for
        each failure."""
        got: dict[int, bytes] = {}
        tried: set[int] = set()
        pending: dict[asyncio.Task[bytes], _Col] = {}

        def launch() -> bool:
            usable = self._usable(tried)
            if not usable:
                return False
            col = usable[0]
            tried.add(col.frag_index)
            pending[asyncio.ensure_future(self.piece(col, s))] = col
            return True

        try:
            while len(got) + len(pending) < want + extra and launch():
                pass
            while len(got) < want:
                if not pending:
                    unknown = sum(c.record is None for c in self.cols)
                    raise SegmentUnavailable(
                        f"segment {s}: only {len(got)} of the {want} pieces needed could be "
                        f"fetched and verified ({len(self.cols)} columns"
                        + (f", {unknown} on providers no longer registered" if unknown else "")
                        + f"; {self.failures} requests failed, {len(self.corrupt)} corrupt)")
                finished, _ = await asyncio.wait(pending, timeout=self._hedge_after(),
                                                 return_when=asyncio.FIRST_COMPLETED)
                if not finished:  # late: hedge with one more provider (if any is left)
                    if launch():
                        self.hedges += 1
                    continue
                for task in finished:
                    col = pending.pop(task)
                    exc = task.exception()
                    if exc is None:
                        got[col.frag_index] = task.result()
                        self.pieces += 1
                        self._pay(col, len(got[col.frag_index]))
                    elif isinstance(exc, ProviderFault):
                        self._report_corrupt(col, s, exc)
                    elif isinstance(exc, (*_FAULTS, LookupError)):
                        col.strikes += 1
                        col.peer = None  # dial again next time: it may have restarted
                        self.failures += 1
                        log.info("segment %d: provider %s failed (%s); trying another", s,
                                 col.provider.hex()[:12], _describe(exc))
                    else:
                        raise exc
                    while len(got) + len(pending) < want and launch():
                        pass
            return got
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    def _pay(self, col: _Col, nbytes: int) -> None:
        """A signed receipt for a verified piece: the provider claims it on chain later. Sent
        in the background; a receipt lost is a provider unpaid for one piece, not an error."""
        if self.key is None or col.record is None or col.peer is None:
            return
        amount = bandwidth_amount(nbytes, col.record.bandwidth_price)
        if amount == 0:
            return  # nothing to claim: spare the provider a transaction
        raw = sign_receipt(self.key, self.view.chain_id, col.provider, self.file_id, nbytes,
                           amount, self.height, os.urandom(16)).encode()
        task = asyncio.ensure_future(self._send_receipt(col.peer, raw))
        self.receipt_tasks.add(task)
        task.add_done_callback(self.receipt_tasks.discard)

    async def _send_receipt(self, peer: bytes, raw: bytes) -> bool:
        try:
            await self.p2p.request(peer, RECEIPT, raw, self.timeout)
        except _FAULTS as exc:
            log.info("bandwidth receipt not delivered: %s", _describe(exc))
            return False
        self.receipts += 1
        return True

    async def flush_receipts(self, timeout: float = 10.0) -> None:
        if self.receipt_tasks:
            await asyncio.wait(list(self.receipt_tasks), timeout=timeout)


def _check_owner(deal: Deal, key: PrivateKey) -> None:
    if deal.owner != key.address:
        raise NotOwner("this file belongs to another account: only its owner's key can "
                       "decrypt it")


def _need_deal(view: ChainView, file_id: bytes) -> Deal:
    deal = view.deal(file_id)
    if deal is None:
        raise DealNotFound(f"no storage deal for file {file_id.hex()}")
    return deal


async def get(p2p: P2P, view: ChainView, key: PrivateKey, file_id: bytes, out_path: Path, *,
              progress: Progress | None = None, timeout: float = REQUEST_TIMEOUT,
              extra: int = 0, file_key: bytes | asyncio.Future[bytes] | None = None,
              prefetch_bytes: int = 0,
              sink: Callable[[bytes], None] | None = None) -> GetResult:
    """Fetch, verify, decode and decrypt a file into ``out_path``.

    Each segment asks ``k + extra`` columns at once (and hedges a late piece either way):
    ``extra`` 0 moves the file's size, each extra column one more ``1/k`` of it for less
    waiting on a provider that turns out slow.

    The file is written to a temporary name beside ``out_path`` and renamed only when every
    segment decrypted (ChaCha20-Poly1305 authenticates each segment, its position and the
    file id) and the total size matches the deal: a failed download leaves no partial file.

    ``file_key``: the key a buyer or a share recipient was given (``storage/datasets.py``);
    without it ``key`` must be the owner's, whose seed derives the key. A future for it lets
    a buyer download while its key is still on the way: up to ``prefetch_bytes`` of
    segments are fetched and erasure-decoded ahead of the one being written (at most
    ``FETCH_WINDOW`` at once), and decrypted once the future resolves (its exception fails
    the download).

    ``sink``, when given, sees each decrypted segment in order as it is written (a reader
    that checks the plaintext while the rest still arrives)."""
    deal = await _need_deal_async(view, file_id)
    if file_key is None:
        _check_owner(deal, key)
    fkey = file_key if file_key is not None else layout.file_key(key.seed, deal.salt)
    fetcher = _Fetcher(p2p, view, deal, file_id, await _call(_all_providers, view),
                       timeout=timeout, key=key, height=await _call(view.height))
    codec = layout.Codec(deal.k, deal.code_n)
    result = GetResult(file_id, deal.size, Path(out_path))
    out_path = Path(out_path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".part",
                                    dir=out_path.parent)
    written = 0
    fetching = asyncio.Semaphore(FETCH_WINDOW)
    ahead_n = max(FETCH_WINDOW, -(-prefetch_bytes // layout.segment_size(deal.k)))

    async def segment(s: int) -> bytes:
        async with fetching:
            pieces = await fetcher.segment(s, deal.k, extra)
        if isinstance(fkey, bytes):  # decode and decrypt in one hop off the loop
            return await asyncio.to_thread(_open_segment, codec, fkey, file_id, s,
                                           list(pieces.values()), deal.size, deal.k)
        cipher = await asyncio.to_thread(_decode_segment, codec, s, list(pieces.values()))
        return await asyncio.to_thread(_decrypt_segment, await fkey, file_id, s, cipher,
                                       deal.size, deal.k)

    try:
        with os.fdopen(fd, "wb") as f:
            ahead: dict[int, asyncio.Task[bytes]] = {}
            try:
                for s in range(deal.segments):
                    for t in range(s, min(deal.segments, s + ahead_n)):
                        if t not in ahead:
                            ahead[t] = asyncio.ensure_future(segment(t))
                    plain = await ahead.pop(s)
                    # off the event loop, which meanwhile receives and decrypts the next pieces
                    await asyncio.to_thread(f.write, plain)
                    if sink is not None:
                        sink(plain)
                    written += len(plain)
                    if progress is not None:
                        progress("download", written, deal.size)
            finally:
                for task in ahead.values():
                    task.cancel()
                if ahead:
                    await asyncio.gather(*ahead.values(), return_exceptions=True)
            if written != deal.size:
                raise StorageError(f"rebuilt {written} bytes, the deal says {deal.size}")
            f.flush()
            await asyncio.to_thread(os.fsync, f.fileno())
        os.replace(tmp_name, out_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    finally:
        await fetcher.flush_receipts()
    result.bytes_received, result.pieces = fetcher.bytes_received, fetcher.pieces
    result.corrupt, result.failures = fetcher.corrupt, fetcher.failures
    result.receipts, result.hedges = fetcher.receipts, fetcher.hedges
    return result


def _open_segment(codec: layout.Codec, fkey: bytes, file_id: bytes, s: int,
                  pieces: list[bytes], size: int, k: int) -> bytes:
    return _decrypt_segment(fkey, file_id, s, _decode_segment(codec, s, pieces), size, k)


def _decode_segment(codec: layout.Codec, s: int, pieces: list[bytes]) -> bytes:
    try:
        return codec.decode(pieces)
    except ValueError as exc:
        raise StorageError(f"segment {s}: {exc}") from exc


def _decrypt_segment(fkey: bytes, file_id: bytes, s: int, cipher: bytes, size: int,
                     k: int) -> bytes:
    try:
        plain = layout.decrypt_segment(fkey, file_id, s, cipher)
    except ValueError as exc:
        raise StorageError(f"segment {s}: {exc}") from exc
    start, end = layout.segment_bounds(size, k, s)
    if len(plain) != end - start:
        raise StorageError(f"segment {s} decrypted to {len(plain)} bytes, expected "
                           f"{end - start}")
    return plain


# --- health --------------------------------------------------------------------------------


@dataclass
class ColumnHealth:
    frag_index: int
    provider: bytes
    healthy_on_chain: bool
    alive: int = 0  # pieces fetched and verified
    corrupt: int = 0
    missing: int = 0  # not served: not found, unreachable, timed out
    error: str = ""  # the last failure, for the human


@dataclass
class Health:
    file_id: bytes
    k: int
    segments: list[int]  # verified pieces alive per segment
    columns: list[ColumnHealth]

    @property
    def recoverable(self) -> bool:
        return all(a >= self.k for a in self.segments)


async def health(view: ChainView, p2p: P2P, file_id: bytes, *,
                 timeout: float = REQUEST_TIMEOUT, parallel: int = 8) -> Health:
    """Ask every column's provider for every piece and verify each against the chain: the
    honest answer to "how many pieces of each segment are really there" (the chain's
    ``healthy`` flag only knows about audits, which sample). Costs the column bytes in
    traffic; no receipts are sent (a status check is not a retrieval the owner pays for)."""
    deal = await _need_deal_async(view, file_id)
    fetcher = _Fetcher(p2p, view, deal, file_id, await _call(_all_providers, view),
                       timeout=timeout)
    alive = [0] * deal.segments
    report = {c.frag_index: ColumnHealth(c.frag_index, c.provider, c.healthy)
              for c in deal.columns}
    gate = asyncio.Semaphore(parallel)

    async def check(col: _Col, s: int) -> None:
        h = report[col.frag_index]
        async with gate:
            if h.missing and col.peer is None:  # unreachable once: do not wait on it again
                h.missing += 1
                return
            try:
                await fetcher.piece(col, s)
            except ProviderFault as exc:
                h.corrupt += 1
                h.error = str(exc)
                return
            except (*_FAULTS, LookupError) as exc:
                h.missing += 1
                h.error = _describe(exc)
                return
        h.alive += 1
        alive[s] += 1

    await asyncio.gather(*(check(c, s) for c in fetcher.cols for s in range(deal.segments)))
    return Health(file_id, deal.k, alive, sorted(report.values(), key=lambda h: h.frag_index))


# --- cancel --------------------------------------------------------------------------------


def cancel(view: ChainView, key: PrivateKey, file_id: bytes, tx_timeout: float = 60.0) -> str:
    """End a deal early (owner only): the current epoch stays payable, the rest comes back."""
    deal = _need_deal(view, file_id)
    _check_owner(deal, key)
    payload = CancelDeal(file_id)
    tx_hash = view.submit("storage/cancel_deal", payload,
                          tx_gas(view, payload, cancel_writes(
                              chain_params(view).storage_audit_segments, len(deal.columns))))
    view.wait(tx_hash, tx_timeout)
    return tx_hash
