"""Request/response: one handler per request kind, answers matched to questions by id.

A request waits for queue space like any message that must not be lost, then for its
answer, all within its ``timeout``; a disconnect fails it at once. Served requests run
as tasks, at most ``max_inbound_requests`` per peer at a time (beyond that the peer is
told "too many concurrent requests"). How a handler ends decides the answer and whether
the requester pays: ``BadRequest`` costs it score, ``LookupError`` ("not found") and
``Refused`` are ordinary answers, anything else is our failure, logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from smartchain.p2p.config import Penalty
from smartchain.p2p.connections import Connection, Connections, Penalize, check_topic
from smartchain.p2p.errors import (
    BadRequest,
    PeerNotConnected,
    Refused,
    RequestError,
    RequestTimeout,
)
from smartchain.p2p.messages import Envelope, Kind

__all__ = ["RequestHandler", "Requests"]

log = logging.getLogger("smartchain.p2p")

RequestHandler = Callable[[bytes, bytes], Awaitable[bytes]]

_MAX_ERROR_LEN = 1000


class Requests:
    """Request handlers by kind, and our own requests awaiting an answer."""

    def __init__(self, connections: Connections, stats: Counter[str],
                 penalize: Penalize) -> None:
        self.connections = connections
        self.stats = stats
        self.penalize = penalize
        self._handlers: dict[str, RequestHandler] = {}
        self._pending: dict[int, tuple[Connection, asyncio.Future[bytes]]] = {}
        self._next_req = 1

    def register(self, kind: str, handler: RequestHandler) -> None:
        """``handler(peer_id, payload) -> response``; one handler per kind (two
        subsystems answering the same kind would be a bug, so it raises)."""
        check_topic(kind)
        if kind in self._handlers:
            raise ValueError(f"request kind {kind!r} already has a handler")
        self._handlers[kind] = handler

    async def request(self, peer_id: bytes, kind: str, payload: bytes,
                      timeout: float = 5.0) -> bytes:
        """Ask one peer; returns its response payload.

        Raises ``RequestTimeout`` (a ``TimeoutError``) after ``timeout`` seconds,
        ``RequestError`` when the peer answers with an error or disconnects, and
        ``PeerNotConnected`` when it is not connected.
        """
        conns = self.connections
        peer = conns.peer(peer_id)
        req_id = self._next_req
        self._next_req += 1
        frame = conns.message(Kind.REQUEST, kind, req_id, payload)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = (peer, fut)
        peer.pending.add(req_id)
        try:
            async with asyncio.timeout(timeout):
                await conns.enqueue(peer, frame, priority=False, droppable=False)
                return await fut
        except TimeoutError:
            self.stats["request_timeouts"] += 1
            raise RequestTimeout(
                f"no response to {kind!r} from {peer_id.hex()[:16]}… within {timeout}s"
            ) from None
        finally:
            self._pending.pop(req_id, None)
            peer.pending.discard(req_id)

    def fail_pending(self, peer: Connection, reason: str) -> None:
        """``peer`` disconnected: its unanswered requests fail now, not at their timeout."""
        for req_id in list(peer.pending):
            entry = self._pending.pop(req_id, None)
            if entry is not None and not entry[1].done():
                entry[1].set_exception(RequestError(
                    f"peer {peer.peer_id.hex()[:16]}… disconnected ({reason})"))
        peer.pending.clear()

    def fail_all(self) -> None:
        """Shutting down: every request still waiting fails."""
        for _, fut in self._pending.values():
            if not fut.done():
                fut.set_exception(RequestError("p2p stopped"))
        self._pending.clear()

    # ------------------------------------------------------------------ serving

    def on_request(self, peer: Connection, env: Envelope) -> None:
        handler = self._handlers.get(env.topic)
        if handler is None:
            self._reply_nowait(peer, Envelope(Kind.ERROR, "", env.req_id,
                                              f"unknown request kind {env.topic!r}".encode()))
            return
        if peer.inflight >= self.connections.config.max_inbound_requests:
            self.stats["requests_refused_busy"] += 1
            self._reply_nowait(peer, Envelope(Kind.ERROR, "", env.req_id,
                                              b"too many concurrent requests"))
            return
        peer.inflight += 1
        task = asyncio.get_running_loop().create_task(self._serve(peer, handler, env))
        peer_tasks = self.connections.peer_tasks
        peer.tasks.add(task)
        peer_tasks.add(task)
        task.add_done_callback(peer.tasks.discard)
        task.add_done_callback(peer_tasks.discard)

    async def _serve(self, peer: Connection, handler: RequestHandler, env: Envelope) -> None:
        pid = peer.peer_id
        try:
            try:
                result = await handler(pid, env.payload)
                if not isinstance(result, bytes):
                    raise TypeError(f"request handler returned {type(result).__name__}, "
                                    "not bytes")
                reply = Envelope(Kind.RESPONSE, "", env.req_id, result)
                if len(result) > self.connections.max_frame - 64:
                    reply = Envelope(Kind.ERROR, "", env.req_id, b"response too large")
            except BadRequest as exc:
                self.stats["bad_requests"] += 1
                self.penalize(pid, Penalty.BAD_REQUEST, f"bad {env.topic!r} request: {exc}")
                reply = Envelope(Kind.ERROR, "", env.req_id,
                                 _error_text(f"bad request: {exc}"))
            except asyncio.CancelledError:
                raise
            except LookupError as exc:  # "not here": an ordinary answer, not a fault
                reply = Envelope(Kind.ERROR, "", env.req_id, _error_text(f"not found: {exc}"))
            except Refused as exc:
                reply = Envelope(Kind.ERROR, "", env.req_id, _error_text(f"refused: {exc}"))
            except Exception as exc:
                log.warning("request handler %r failed", env.topic, exc_info=True)
                reply = Envelope(Kind.ERROR, "", env.req_id,
                                 _error_text(f"{env.topic} failed: {type(exc).__name__}: {exc}"))
            if not peer.closed:
                await self.connections.enqueue(peer, reply.encode(), priority=False,
                                               droppable=False)
        except PeerNotConnected:
            pass
        finally:
            peer.inflight -= 1

    def _reply_nowait(self, peer: Connection, env: Envelope) -> None:
        """Immediate error replies from the reader: dropped if the lane is full (the
        requester times out) rather than letting a flood of requests block the reader."""
        if not self.connections.queue_nowait(peer, env.encode()):
            self.stats["dropped_replies"] += 1

    def on_response(self, peer: Connection, env: Envelope) -> None:
        entry = self._pending.get(env.req_id)
        if entry is None or entry[0] is not peer:
            self.stats["unmatched_responses"] += 1  # late (after a timeout) or bogus
            return
        fut = entry[1]
        if fut.done():
            return
        if env.kind == Kind.RESPONSE:
            fut.set_result(env.payload)
        else:
            text = env.payload[:_MAX_ERROR_LEN].decode("utf-8", "replace")
            fut.set_exception(RequestError(f"peer {peer.peer_id.hex()[:16]}… answered: {text}"))


def _error_text(text: str) -> bytes:
    return text.encode("utf-8")[:_MAX_ERROR_LEN]
