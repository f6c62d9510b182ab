"""Gossip: topics, publish/subscribe, de-duplication, merit, and direct messages.

A gossip message goes to every connected peer, and each relays it onwards once (its id,
``gossip_id(topic, payload)``, is remembered in a bounded cache of ``seen_cache`` ids) if
our topic handlers accepted it. A peer that is first to deliver a message our handlers
accept earns a point of merit (``PeerBook.credit``); a handler that raises costs the
sender score. Direct messages (``send``) reach one peer's topic handlers and are never
relayed.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable

from smartchain.p2p.config import Penalty
from smartchain.p2p.connections import Connection, Connections, Penalize, check_topic
from smartchain.p2p.messages import Envelope, Kind, gossip_id
from smartchain.p2p.peerbook import PeerBook

__all__ = ["Gossip", "GossipHandler"]

GossipHandler = Callable[[bytes, bytes], Awaitable[bool | None]]


class Gossip:
    """Topic handlers and the de-duplication cache of gossip ids."""

    def __init__(self, connections: Connections, book: PeerBook, stats: Counter[str],
                 penalize: Penalize) -> None:
        self.connections = connections
        self.book = book
        self.stats = stats
        self.penalize = penalize
        self._topics: dict[str, list[GossipHandler]] = {}
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def subscribe(self, topic: str, handler: GossipHandler) -> None:
        """``handler(peer_id, payload)`` for gossip and direct messages on ``topic``.

        Return ``False`` to stop a gossip message from being relayed (e.g. invalid or
        not useful to others); raising penalises the sender.
        """
        check_topic(topic)
        self._topics.setdefault(topic, []).append(handler)

    async def publish(self, topic: str, payload: bytes, *, priority: bool = False) -> None:
        """Gossip to every connected peer (they relay onwards). Not delivered locally."""
        kind = Kind.GOSSIP_PRIORITY if priority else Kind.GOSSIP
        frame = self.connections.message(kind, topic, 0, payload)
        self._mark_seen(gossip_id(topic, payload))
        self.stats["published"] += 1
        await self.connections.broadcast(frame, None, priority)

    async def send(self, peer_id: bytes, topic: str, payload: bytes, *,
                   priority: bool = False) -> None:
        """A message for one peer's ``topic`` handlers; never relayed, never dropped
        (waits for queue space; raises ``PeerNotConnected`` if the peer goes away)."""
        conns = self.connections
        peer = conns.peer(peer_id)
        await conns.enqueue(peer, conns.message(Kind.DIRECT, topic, 0, payload),
                            priority=priority, droppable=False)

    async def on_gossip(self, peer: Connection, env: Envelope, frame: bytes) -> None:
        mid = gossip_id(env.topic, env.payload)
        seen = self._seen
        if mid in seen:
            self.stats["gossip_duplicates"] += 1
            return
        seen[mid] = None
        if len(seen) > self.connections.config.seen_cache:
            seen.popitem(last=False)
        self.stats["gossip_received"] += 1
        if await self.deliver(peer, env):
            self.book.credit(peer.peer_id)
            await self.connections.broadcast(frame, peer.peer_id,
                                             env.kind == Kind.GOSSIP_PRIORITY)

    async def deliver(self, peer: Connection, env: Envelope) -> bool:
        """Run the topic's handlers; True when the message may be relayed."""
        handlers = self._topics.get(env.topic)
        if not handlers:
            self.stats["unknown_topic"] += 1
            return False
        relay = True
        for handler in handlers:
            try:
                if await handler(peer.peer_id, env.payload) is False:
                    relay = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats["handler_errors"] += 1
                self.penalize(peer.peer_id, Penalty.HANDLER_ERROR,
                              f"handler for {env.topic!r} rejected a message: {exc!r}")
                return False
        return relay

    def _mark_seen(self, mid: bytes) -> None:
        self._seen[mid] = None
        if len(self._seen) > self.connections.config.seen_cache:
            self._seen.popitem(last=False)
