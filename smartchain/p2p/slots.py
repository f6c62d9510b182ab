"""Slots: who may connect, so that cheap connections and fresh identities cannot lock
honest peers out.

* **Handshakes.** Each must finish within ``handshake_timeout``. At most
  ``max_inbound_per_ip`` inbound connections (handshaking or connected) come from one IP
  and ``max_inbound_per_subnet`` from one /24 (IPv4) or /48 (IPv6); loopback is exempt
  unless ``limit_loopback`` (a devnet runs every node on 127.0.0.1). Once
  ``ip_ban_after`` identities from one IP have been banned, the IP itself is (fresh
  identities are free, addresses are not). When all
  ``max_pending_handshakes`` are taken, a new connection evicts the oldest handshake of
  the subnet holding the most, rather than being refused.
* **Inbound and outbound.** Inbound peers take at most ``max_inbound`` of the
  ``max_peers`` slots, so our own dials always find room. Seeds and ``protected`` peers
  (the validators) are outside both limits and never evicted.
* **Eviction.** Peers earn merit (one point per gossip message they are first to deliver
  and our handlers accept, up to ``max_merit``); rank = merit + penalty score. With the
  inbound slots full, a newcomer ranked above the worst inbound peer (lowest rank, then
  most crowded subnet, then youngest) takes its slot, so a fresh identity (rank 0) can
  only replace a misbehaving one and never a proven peer (``PeerBook.evictee``).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from smartchain.p2p.config import P2PConfig
from smartchain.p2p.peerbook import PeerBook, subnet_of

if TYPE_CHECKING:
    from smartchain.p2p.connections import Connection

__all__ = ["Slots"]


class Slots:
    """The handshakes in flight, and the verdicts on who may take a slot. Reads the
    live ``peers`` and ``dialing`` tables of ``Connections`` (which owns them) and ends
    an evicted connection through ``disconnect``."""

    def __init__(self, config: P2PConfig, max_peers: int, protected: frozenset[bytes],
                 stats: Counter[str], book: PeerBook, peers: dict[bytes, Connection],
                 dialing: dict[bytes, asyncio.Task[bytes]], *,
                 disconnect: Callable[[Connection, str], None]) -> None:
        self.config = config
        self.max_peers = max_peers
        self.protected = protected
        self.stats = stats
        self.book = book
        self.peers = peers
        self.dialing = dialing
        self.disconnect = disconnect
        # inbound connections not yet admitted: (host, subnet), oldest first
        self._handshaking: dict[asyncio.Task[Any], tuple[str, str]] = {}

    def used(self) -> int:
        """Connections and dials in flight that count against ``max_peers``."""
        protected = self.protected
        return (sum(1 for pid in self.peers if pid not in protected)
                + sum(1 for pid in self.dialing if pid not in protected))

    def host_allowed(self, host: str) -> bool:
        """IP bans, and per-IP and per-subnet limits on inbound connections, checked
        before the handshake so that one address cannot hold every handshake slot."""
        cfg = self.config
        if not self.book.limited(host):
            return True
        if self.book.ip_banned(host):
            return False
        subnet = subnet_of(host)
        places = [(p.host, p.subnet) for p in self.peers.values() if not p.outbound]
        places += self._handshaking.values()
        same_ip = sum(1 for h, _ in places if h == host)
        same_net = sum(1 for _, n in places if n == subnet)
        return same_ip < cfg.max_inbound_per_ip and same_net < cfg.max_inbound_per_subnet

    def begin_handshake(self, task: asyncio.Task[Any], host: str) -> None:
        """Take a handshake slot for ``task``, evicting one if all are taken."""
        if self._handshaking and len(self._handshaking) >= self.config.max_pending_handshakes:
            self._evict_handshake()
        self._handshaking[task] = (host, subnet_of(host))

    def end_handshake(self, task: asyncio.Task[Any]) -> None:
        self._handshaking.pop(task, None)

    def _evict_handshake(self) -> None:
        """All handshake slots taken: drop the oldest handshake of the most crowded
        subnet, so a flood of half-open connections makes room instead of blocking."""
        crowd = Counter(n for _, n in self._handshaking.values())
        top = max(crowd.values())
        victim = next(t for t, (_, n) in self._handshaking.items() if crowd[n] == top)
        del self._handshaking[victim]
        victim.cancel()
        self.stats["handshakes_evicted"] += 1

    def inbound_room(self, pid: bytes) -> bool:
        """Whether an authenticated inbound ``pid`` may stay, evicting a worse inbound
        peer if that is what it takes (module docstring)."""
        if pid in self.protected:
            return True
        inbound = [p for p in self.peers.values()
                   if not p.outbound and p.peer_id not in self.protected]
        limit = min(self.config.max_inbound, self.max_peers)
        if len(inbound) < limit and self.used() < self.max_peers:
            return True
        worst = self.book.evictee(pid, inbound)
        if worst is None:
            return False
        self.stats["evictions"] += 1
        self.disconnect(worst, "evicted for a better-ranked peer")
        return True
