"""Block sync's transport: ranges of certified blocks, fetched from several peers at once.

A node that is behind asks every peer for its status (height, and the lowest block it
still holds: a pruned node serves no older one), then requests ranges of blocks
(``RangeRequest``: a start, at most ``RANGE_BLOCKS`` blocks, at most ``max_bytes`` bytes
past the first) from the peers that hold them, round robin, ``WINDOW`` ranges in flight.
Each range is handed to ``check`` as soon as it arrives (its blocks decoded, their
commit certificates and proposer signatures verified in one batch of worker processes),
then to ``apply`` in height order, which executes and commits it in one store
transaction (``Chain.batch``): downloading and checking the next ranges overlaps
executing this one. A peer that fails a request is dropped from this round; one that
serves a malformed range or a block that does not verify is penalised and dropped, and
its range is asked of another peer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from smartchain.codec import U32, U64, Bytes, CodecError, Struct, list_of
from smartchain.p2p import BadRequest

if TYPE_CHECKING:
    from smartchain.p2p.peers import P2P
    from smartchain.state.chain import Chain

log = logging.getLogger("smartchain.sync")

REQ_BLOCKS = "sync/blocks"
REQ_STATUS = "sync/status"
RANGE_BLOCKS = 512  # most blocks one request may ask for
RANGE_BYTES = 2 * 1024 * 1024  # what we ask a range to stay under (past its first block)
RANGE_ROOM = 64 * 1024  # envelope and list overhead kept free in a response frame
WINDOW = 8  # ranges in flight at once, over all peers
STATUS_TIMEOUT_S = 2.0
RANGE_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class SyncStatus(Struct):
    height: U64
    base: U64  # the lowest block this node serves (1 unless pruned or restored)


@dataclass(frozen=True, slots=True)
class RangeRequest(Struct):
    start: U64
    count: U32
    max_bytes: U32


@dataclass(frozen=True, slots=True)
class BlockRange(Struct):
    """Encoded blocks from the request's start on, each with the commit that finalised it."""

    blocks: list_of[Bytes]
    commits: list_of[Bytes]


def serve_range(chain: Chain, payload: bytes, max_frame: int) -> bytes:
    """The answer to a ``RangeRequest``: as many blocks as asked and held, within the
    bytes asked and one frame; at least the first (a block always fits in a frame)."""
    try:
        req = RangeRequest.decode(payload)
    except CodecError as exc:
        raise BadRequest(f"malformed range request: {exc}") from exc
    if not 1 <= req.count <= RANGE_BLOCKS:
        raise BadRequest(f"a range is 1..{RANGE_BLOCKS} blocks, not {req.count}")
    limit = min(req.max_bytes, max_frame - RANGE_ROOM)
    pairs = chain.raw_range(req.start, req.count, limit)
    if not pairs:
        raise LookupError(f"no committed block at height {req.start}")
    return BlockRange(tuple(b for b, _ in pairs), tuple(c for _, c in pairs)).encode()


T = TypeVar("T")
# check(range, first height) -> the range checked (signatures), whatever ``apply`` takes
Check = Callable[[BlockRange, int], Awaitable[T]]
# apply(checked range, peer) -> None, or why the peer's range is bad
Apply = Callable[[T, bytes], Awaitable[str | None]]


class _BadRange(Exception):
    """A range its peer is to blame for (malformed, or not what was asked)."""


@dataclass(slots=True)
class _Range(Generic[T]):
    start: int
    count: int
    peer: bytes
    task: asyncio.Task[T]


@dataclass(slots=True)
class RangeFetcher(Generic[T]):
    """One round of block sync: from ``chain.height + 1`` to the best peer's height."""

    p2p: P2P
    chain: Chain
    check: Check[T]
    apply: Apply[T]
    range_bytes: int = RANGE_BYTES
    window: int = WINDOW
    peers: dict[bytes, tuple[int, int]] = field(default_factory=dict)  # id -> height, base
    _turn: int = 0

    async def statuses(self) -> dict[bytes, tuple[int, int]]:
        """Every connected peer's (height, base), asked at once; silent peers left out."""
        async def ask(peer: bytes) -> tuple[bytes, tuple[int, int]] | None:
            try:
                raw = await self.p2p.request(peer, REQ_STATUS, b"", timeout=STATUS_TIMEOUT_S)
                status = SyncStatus.decode(raw)
            except Exception as exc:  # a peer that cannot answer is simply skipped
                log.debug("status from %s failed: %s", peer.hex()[:16], exc)
                return None
            return peer, (status.height, status.base)

        answers = await asyncio.gather(*(ask(p) for p in self.p2p.connected_peers()))
        return dict(a for a in answers if a is not None)

    async def run(self) -> bool:
        """Fetch and apply up to the best height our peers reported; False when no
        block could be applied (nobody serves what we need)."""
        self.peers = await self.statuses()
        target = max((h for h, _ in self.peers.values()), default=0)
        progressed = False
        inflight: list[_Range[T]] = []
        try:
            while self.chain.height < target and self.peers:
                self._fill(inflight, target)
                head = self._head(inflight)
                if head is None:
                    if not inflight:
                        log.warning("no peer holds block %d (pruned everywhere?): a "
                                    "snapshot or an archive peer is needed",
                                    self.chain.height + 1)
                        break
                    self._cancel(inflight)
                    continue
                inflight.remove(head)
                before = self.chain.height
                why = await self._take(head)
                progressed |= self.chain.height > before
                end = head.start + head.count
                if why is not None:
                    self.peers.pop(head.peer, None)
                    self._cancel(inflight)  # later ranges are asked again, in order
                elif self.chain.height + 1 < end:  # a short answer (bytes bound): the rest
                    self._ask(inflight, self.chain.height + 1, end - self.chain.height - 1)
        finally:
            self._cancel(inflight)
        return progressed

    def _fill(self, inflight: list[_Range[T]], target: int) -> None:
        start = max((r.start + r.count for r in inflight), default=self.chain.height + 1)
        while len(inflight) < self.window and start <= target:
            peer = self._pick(start)
            if peer is None:
                return
            count = min(RANGE_BLOCKS, self.peers[peer][0] - start + 1)
            self._ask(inflight, start, count, peer)
            start += count

    def _ask(self, inflight: list[_Range[T]], start: int, count: int,
             peer: bytes | None = None) -> None:
        peer = peer or self._pick(start)
        if peer is None:
            return
        task = asyncio.ensure_future(self._fetch(peer, start, count))
        task.add_done_callback(_retrieved)
        inflight.append(_Range(start, count, peer, task))

    async def _fetch(self, peer: bytes, start: int, count: int) -> T:
        """Ask ``peer`` for a range and check it as soon as it arrives."""
        req = RangeRequest(start, count, self.range_bytes).encode()
        raw = await self.p2p.request(peer, REQ_BLOCKS, req, timeout=RANGE_TIMEOUT_S)
        try:
            blocks = BlockRange.decode(raw)
        except CodecError as exc:
            raise _BadRange(f"malformed block range: {exc}") from exc
        n = len(blocks.blocks)
        if n != len(blocks.commits) or not 1 <= n <= count:
            raise _BadRange(f"{n} blocks for a range of {count}")
        return await self.check(blocks, start)

    def _pick(self, height: int) -> bytes | None:
        """The next peer, round robin, among those holding ``height``."""
        holders = [p for p, (h, base) in self.peers.items() if base <= height <= h]
        if not holders:
            return None
        self._turn += 1
        return holders[self._turn % len(holders)]

    def _head(self, inflight: list[_Range[T]]) -> _Range[T] | None:
        """The range in flight holding our next height (consensus may have moved it)."""
        nxt = self.chain.height + 1
        return next((r for r in inflight if r.start <= nxt < r.start + r.count), None)

    async def _take(self, rng: _Range[T]) -> str | None:
        """Await one range (fetched and checked) and apply it; why it was refused, if it
        was."""
        try:
            checked = await rng.task
        except _BadRange as exc:
            return self._bad(rng.peer, str(exc))
        except Exception as exc:  # timeouts, disconnects, errors: another peer next round
            log.info("range %d+%d from %s failed: %s", rng.start, rng.count,
                     rng.peer.hex()[:16], exc)
            return str(exc) or type(exc).__name__
        why = await self.apply(checked, rng.peer)
        return None if why is None else self._bad(rng.peer, why)

    def _bad(self, peer: bytes, why: str) -> str:
        self.p2p.penalize(peer, 50, f"block sync: {why}")
        return why

    @staticmethod
    def _cancel(inflight: list[_Range[T]]) -> None:
        for rng in inflight:
            rng.task.cancel()
        inflight.clear()


def _retrieved(task: asyncio.Future[T]) -> None:
    """A range nobody awaits any more (cancelled round) fails quietly."""
    if not task.cancelled():
        task.exception()
