"""The SDK's side of ``GET /v1/subscribe``: an async iterator of blocks, transactions or events
that reconnects by itself and resumes where it stopped, with no gap and no repeat.

Separate from ``client.py`` so the synchronous SDK keeps to the standard library: aiohttp is
imported only by those who subscribe.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from smartchain.modules.sdk import ApiError

CLOSE_BAD_REQUEST = 4400  # the node refused the request: retrying would not help
CLOSE_GONE = 4410  # the resume height is pruned on this node
FATAL_CLOSES = (CLOSE_BAD_REQUEST, CLOSE_GONE)
MAX_BACKOFF_S = 10.0


def position(msg: dict[str, Any]) -> tuple[int, ...]:
    """Where a message sits in the chain: (height,) for a block, (height, index) for a
    transaction, (height, tx index, event index) for an event."""
    height = int(msg["height"])
    if msg["type"] == "block":
        return (height,)
    if msg["type"] == "tx":
        return (height, int(msg["index"]))
    return (height, int(msg["tx_index"]), int(msg["event_index"]))


def request_for(what: str, account: str | None, kind: str | None,
                where: dict[str, str] | None) -> dict[str, Any]:
    req: dict[str, Any] = {"subscribe": what}
    if account is not None:
        req["account"] = account
    if kind is not None:
        req["kind"] = kind
    if where:
        req["where"] = dict(where)
    return req


async def subscription(url: str, request: dict[str, Any], from_height: int | None = None, *,
                       reconnect: bool = True, retries: int = 10,
                       timeout: float = 10.0) -> AsyncIterator[dict[str, Any]]:
    """Yield each message the node pushes (``type`` "block", "tx" or "event"). A dropped
    connection (node restart, ``CLOSE_TOO_SLOW``) is reopened from the last height seen,
    skipping what was already yielded; ``retries`` failed attempts in a row give up with
    ``ApiError`` ("unreachable"). A refused request raises ``ApiError`` at once."""
    ws_url = url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1) \
        + "/v1/subscribe"
    last: tuple[int, ...] | None = None
    resume = from_height
    failures = 0
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(connect=timeout)) as session:
        while True:
            try:
                async with session.ws_connect(ws_url, heartbeat=30.0) as ws:
                    await ws.send_json({**request, **({"from_height": resume}
                                                      if resume is not None else {})})
                    async for frame in ws:
                        if frame.type != aiohttp.WSMsgType.TEXT:
                            break
                        msg = json.loads(frame.data)
                        kind = msg.get("type")
                        if kind == "error":
                            err = msg["error"]
                            raise ApiError(400, err["code"], err["message"])
                        if kind == "subscribed":
                            failures = 0
                            if resume is None:  # live from here: resume after this height
                                resume = int(msg["height"]) + 1
                            continue
                        pos = position(msg)
                        if last is not None and pos <= last:
                            continue  # seen before the reconnection
                        last = pos
                        resume = pos[0]
                        yield msg
                    if ws.close_code in FATAL_CLOSES:
                        raise ApiError(400, "subscription_refused",
                                       f"the node closed the subscription ({ws.close_code})")
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                failures += 1
                if not reconnect or failures > retries:
                    raise ApiError(0, "unreachable", f"cannot subscribe at {ws_url}: {exc}"
                                   ) from None
            else:
                if not reconnect:
                    return
            await asyncio.sleep(min(MAX_BACKOFF_S, 0.2 * 2 ** failures))
