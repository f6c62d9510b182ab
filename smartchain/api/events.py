"""``GET /v1/subscribe``: blocks, an account's transactions and events, pushed over a websocket.

The client sends one JSON request::

    {"subscribe": "blocks"}
    {"subscribe": "txs", "account": ADDR}
    {"subscribe": "events", "kind": KIND, "where": {ATTR: VALUE}}

with an optional ``"from_height": H``, and receives ``{"type": "subscribed", "height": H}``
(the last block committed when it joined), then one JSON message per block, transaction or
event, in chain order, each carrying its ``height`` (and ``tx_index``, ``event_index``): a
client that reconnects with ``from_height`` set to the last height it saw, skipping what it
already has, misses nothing.

The node never waits for a subscriber: each committed block is matched once, on the event
loop, and what a subscriber wants is put in its own queue of at most
``[api] subscriber_queue`` messages; a subscriber whose queue is full is closed with code
``CLOSE_TOO_SLOW``. History (``from_height`` below the live height) is read from the store by
the subscriber's own task, before it joins the live feed: the switch happens on the event
loop between two blocks, so there is no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from smartchain.api.views import block_items, block_row, tx_summary
from smartchain.crypto.address import AddressError, from_bech32, to_bech32
from smartchain.node.config import ApiSettings
from smartchain.node.index import event_attrs, event_value, parties
from smartchain.node.node import Node
from smartchain.state.chain import StagedBlock
from smartchain.types.block import Block
from smartchain.types.tx import Receipt, Transaction

log = logging.getLogger("smartchain.api")
CLOSE_TOO_SLOW = 4001  # the subscriber fell more than its queue behind
CLOSE_BAD_REQUEST = 4400  # the subscription request was refused (the last message says why)
CLOSE_GONE = 4410  # from_height is below the oldest block this node holds (pruned)
REQUEST_TIMEOUT_S = 30.0  # to send the subscription request after connecting
MAX_REQUEST = 4096  # bytes of a subscription request
MAX_WHERE = 8  # attributes one event filter may name
CLOSE_TIMEOUT_S = 5.0  # for a dropped subscriber to take its close frame


@dataclass(frozen=True, slots=True)
class Filter:
    """What one subscriber wants: every block, the transactions touching ``account``, or the
    events of ``kind`` whose attributes include ``where``."""

    what: str
    account: str = ""
    kind: str = ""
    where: tuple[tuple[str, str], ...] = ()


def parse_request(doc: Any) -> tuple[Filter, int | None]:
    """A subscription request, or ``ValueError`` saying what is wrong with it."""
    if not isinstance(doc, dict) or not isinstance(doc.get("subscribe"), str):
        raise ValueError('expected {"subscribe": "blocks" | "txs" | "events", ...}')
    what = doc["subscribe"]
    allowed = {"blocks": {"subscribe", "from_height"},
               "txs": {"subscribe", "from_height", "account"},
               "events": {"subscribe", "from_height", "kind", "where"}}.get(what)
    if allowed is None:
        raise ValueError(f'unknown subscription {what[:40]!r}: "blocks", "txs" or "events"')
    extra = set(doc) - allowed
    if extra:
        raise ValueError(f"unexpected field(s) for {what}: {', '.join(sorted(extra))[:200]}")
    start = doc.get("from_height")
    if start is not None and not (isinstance(start, int) and not isinstance(start, bool)
                                  and 1 <= start < 1 << 64):
        raise ValueError("from_height must be a positive integer (a block height)")
    if what == "blocks":
        return Filter("blocks"), start
    if what == "txs":
        account = doc.get("account")
        try:
            address = from_bech32(account) if isinstance(account, str) else None
        except AddressError as exc:
            raise ValueError(f"account: {exc}") from exc
        if address is None:
            raise ValueError('"account" (a bech32 address) is required')
        return Filter("txs", account=to_bech32(address)), start
    kind, where = doc.get("kind"), doc.get("where", {})
    if not isinstance(kind, str) or not kind or len(kind) > 128:
        raise ValueError('"kind" (an event kind, e.g. token_transfer) is required')
    if not isinstance(where, dict) or len(where) > MAX_WHERE or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in where.items()):
        raise ValueError(f'"where" is an object of at most {MAX_WHERE} string attributes')
    return Filter("events", kind=kind, where=tuple(sorted(
        (k, event_value(v)) for k, v in where.items()))), start


class BlockFeed:
    """One committed block, matched against every subscriber once: its message, its
    transactions by the accounts they touch, its events by kind."""

    def __init__(self, node: Node, block: Block,
                 items: list[tuple[Transaction, Receipt, bytes]]) -> None:
        self.height = block.header.height
        summaries = [tx_summary(tx, r, self.height, i, h)
                     for i, (tx, r, h) in enumerate(items)]
        self.block = {"type": "block", **block_row(block), "transactions": summaries}
        payload_types = node.index.payload_types if node.index is not None else \
            {kind: msg.payload for kind, msg in node.chain.executor.msgs.items()}
        self.by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.by_kind: dict[str, list[tuple[dict[str, str], dict[str, Any]]]] = defaultdict(list)
        for i, (tx, receipt, _) in enumerate(items):
            summary = summaries[i]
            for address in sorted(parties(tx, receipt, payload_types)):
                self.by_account[to_bech32(address)].append({"type": "tx", **summary})
            for n, event in enumerate(receipt.events):
                msg = {"type": "event", **event.to_json(), "height": str(self.height),
                       "tx_hash": summary["hash"], "tx_index": i, "event_index": n}
                self.by_kind[event.kind].append((event_attrs(event), msg))

    def matching(self, f: Filter) -> list[dict[str, Any]]:
        if f.what == "blocks":
            return [self.block]
        if f.what == "txs":
            return self.by_account.get(f.account, [])
        return [msg for attrs, msg in self.by_kind.get(f.kind, ())
                if all(attrs.get(k) == v for k, v in f.where)]


@dataclass(eq=False)
class Subscriber:
    filter: Filter
    queue: asyncio.Queue[str]
    too_slow: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, messages: list[str]) -> None:
        if self.too_slow.is_set():
            return
        for text in messages:
            try:
                self.queue.put_nowait(text)
            except asyncio.QueueFull:
                self.too_slow.set()
                return


class EventHub:
    """The node's live feed: told of each committed block (``Node.commit_listeners``)."""

    def __init__(self, node: Node, settings: ApiSettings) -> None:
        self.node = node
        self.settings = settings
        self.subscribers: set[Subscriber] = set()
        self.sockets: set[web.WebSocketResponse] = set()  # open, subscribed or not yet
        self.published = node.chain.height  # the last block the live feed has handled

    def start(self) -> None:
        self.published = self.node.chain.height
        self.node.commit_listeners.append(self.on_commit)

    def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.node.commit_listeners.remove(self.on_commit)

    def on_commit(self, staged: StagedBlock) -> None:
        block = staged.block
        self.published = block.header.height
        if not self.subscribers:
            return
        items = [(c.tx, r, c.hash) for c, r in zip(staged.included, staged.receipts,
                                                    strict=True)]
        feed = BlockFeed(self.node, block, items)
        texts: dict[Filter, list[str]] = {}
        for sub in list(self.subscribers):
            if sub.filter not in texts:
                texts[sub.filter] = [json.dumps(m) for m in feed.matching(sub.filter)]
            if texts[sub.filter]:
                sub.offer(texts[sub.filter])

    def stored_feed(self, height: int) -> BlockFeed | None:
        """A block already committed, read back from the store (history for a subscriber)."""
        block = self.node.chain.get_block(height)
        if block is None:
            return None
        return BlockFeed(self.node, block, block_items(self.node, block))


HUB = web.AppKey("event_hub", EventHub)


async def subscribe(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB]
    if len(hub.sockets) >= hub.settings.max_subscribers:
        return web.json_response({"error": {
            "code": "too_many_subscribers",
            "message": f"this node serves at most {hub.settings.max_subscribers} "
                       "subscribers; retry later or ask another node"}}, status=503)
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_REQUEST)
    if not ws.can_prepare(request).ok:
        return web.json_response({"error": {
            "code": "websocket_required",
            "message": "GET /v1/subscribe is a websocket: connect with a websocket client "
                       "(docs/api.md)"}}, status=400)
    await ws.prepare(request)
    hub.sockets.add(ws)
    try:
        await _serve(hub, ws, request.transport)
    finally:
        hub.sockets.discard(ws)
    return ws


async def _refuse(ws: web.WebSocketResponse, code: str, message: str, close: int) -> None:
    await ws.send_json({"type": "error", "error": {"code": code, "message": message}})
    await ws.close(code=close, message=message[:100].encode())


async def _serve(hub: EventHub, ws: web.WebSocketResponse,
                 transport: asyncio.BaseTransport | None) -> None:
    try:
        first = await asyncio.wait_for(ws.receive(), REQUEST_TIMEOUT_S)
    except TimeoutError:
        await _refuse(ws, "timeout", "no subscription request in time", CLOSE_BAD_REQUEST)
        return
    if first.type != WSMsgType.TEXT:
        if first.type in (WSMsgType.BINARY, WSMsgType.ERROR):
            await _refuse(ws, "malformed", "send the subscription request as JSON text",
                          CLOSE_BAD_REQUEST)
        return
    try:
        filt, start = parse_request(json.loads(first.data))
    except ValueError as exc:  # JSONDecodeError too
        await _refuse(ws, "malformed", str(exc), CLOSE_BAD_REQUEST)
        return
    chain = hub.node.chain
    if start is not None and start < chain.base:
        await _refuse(ws, "pruned", f"from_height {start} is below the oldest block this "
                      f"node holds ({chain.base})", CLOSE_GONE)
        return
    await ws.send_json({"type": "subscribed", "height": str(hub.published)})
    sub = Subscriber(filt, asyncio.Queue(hub.settings.subscriber_queue))
    reader = asyncio.create_task(_drain_incoming(ws))
    try:
        if start is not None and not await _replay(hub, ws, sub, start):
            return
        hub.subscribers.add(sub)
        await _pump(ws, sub, reader, transport)
    finally:
        hub.subscribers.discard(sub)
        reader.cancel()


async def _replay(hub: EventHub, ws: web.WebSocketResponse, sub: Subscriber,
                  height: int) -> bool:
    """Send history from ``height`` until the live feed's height, then return with no
    await between the last check and the caller joining the feed (no gap). False when
    the connection went away."""
    while height <= hub.published:
        feed = await asyncio.to_thread(hub.stored_feed, height)
        if feed is None:  # pruned meanwhile
            await _refuse(ws, "pruned", f"block {height} is no longer held", CLOSE_GONE)
            return False
        for msg in feed.matching(sub.filter):
            if ws.closed:
                return False
            await ws.send_str(json.dumps(msg))
        height += 1
    return not ws.closed


async def _pump(ws: web.WebSocketResponse, sub: Subscriber, reader: asyncio.Task[None],
                transport: asyncio.BaseTransport | None) -> None:
    """Send what the feed queues until the client leaves or falls too far behind; then it
    is closed with ``CLOSE_TOO_SLOW`` (or, if it does not even read the close frame, its
    connection is cut)."""
    sender = asyncio.create_task(_send_queued(ws, sub.queue))
    slow = asyncio.create_task(sub.too_slow.wait())
    try:
        await asyncio.wait({sender, reader, slow}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sender.cancel()
        slow.cancel()
    if sub.too_slow.is_set() and not ws.closed:
        try:
            await asyncio.wait_for(ws.close(code=CLOSE_TOO_SLOW, message=b"subscriber too "
                                            b"slow: reconnect with from_height to resume"),
                                   CLOSE_TIMEOUT_S)
        except TimeoutError:
            if transport is not None:
                transport.close()


async def _send_queued(ws: web.WebSocketResponse, queue: asyncio.Queue[str]) -> None:
    while not ws.closed:
        await ws.send_str(await queue.get())


async def _drain_incoming(ws: web.WebSocketResponse) -> None:
    """After the request the client has nothing to say: read (and ignore) until it closes,
    so its close frame and pings are answered."""
    async for _ in ws:
        pass
