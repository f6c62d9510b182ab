"""What we know about peers beyond one connection: scores, merit, bans and addresses.

Misbehaviour costs score (``penalize``): undecryptable, oversize or truncated frames,
malformed messages, handlers that raise, requests answered with ``BadRequest`` and
inbound floods beyond a per-peer token bucket. A negative score heals by
``score_recovery`` points per second. At ``ban_threshold`` the peer is disconnected and
banned (by id and by its dial address) for ``ban_seconds``; once ``ip_ban_after``
identities from one IP have been banned, the IP itself is (fresh identities are free,
addresses are not).

Peers also earn merit: one point per gossip message they are first to deliver and our
handlers accept, up to ``max_merit``. Rank = merit + score is what eviction compares
(``slots.py``).

Every table here is bounded (a multiple of ``max_known`` entries, oldest dropped), so a
stream of fresh identities cannot grow our memory.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from collections.abc import Container
from typing import TYPE_CHECKING

from smartchain.p2p.config import P2PConfig
from smartchain.p2p.messages import parse_address

if TYPE_CHECKING:
    from smartchain.p2p.connections import Connection

__all__ = ["PeerBook", "hostport", "subnet_of"]

log = logging.getLogger("smartchain.p2p")


class PeerBook:
    """Scores, merit, bans (peer ids, dial addresses, IPs) and known addresses."""

    def __init__(self, config: P2PConfig, stats: Counter[str]) -> None:
        self.config = config
        self.stats = stats
        self.known: dict[bytes, str] = {}  # peer id -> dialable address, oldest first
        self._scores: dict[bytes, tuple[float, float]] = {}
        self._merit: dict[bytes, float] = {}
        self._banned: dict[bytes, float] = {}
        self._banned_addrs: dict[str, float] = {}
        self._ip_bans: dict[str, list[float]] = {}  # host -> when its identities were banned
        self._banned_ips: dict[str, float] = {}

    # ------------------------------------------------------------------ scores

    def penalize(self, peer_id: bytes, points: int, reason: str, now: float) -> bool:
        """Lower a peer's score; True when it has reached ``ban_threshold`` (the caller
        bans it, since a ban also ends its connection)."""
        if points <= 0:
            return False
        score = self._score_at(peer_id, now) - points
        self._scores.pop(peer_id, None)
        self._scores[peer_id] = (score, now)
        if len(self._scores) > 10 * self.config.max_known:
            self._scores.pop(next(iter(self._scores)))  # oldest entry: bounded memory
        self.stats["penalties"] += 1
        log.info("peer %s penalised %d (%s); score %.0f",
                 peer_id.hex()[:16], points, reason, score)
        return score <= self.config.ban_threshold

    def peer_score(self, peer_id: bytes) -> float:
        """Current score: 0 for a well-behaved peer, negative after penalties."""
        return self._score_at(peer_id, time.monotonic())

    def peer_rank(self, peer_id: bytes) -> float:
        """What eviction compares: merit earned by useful gossip plus the penalty score."""
        return self._merit.get(peer_id, 0.0) + self.peer_score(peer_id)

    def credit(self, peer_id: bytes) -> None:
        """One point of merit for a useful first delivery (bounded memory, like scores)."""
        merit = self._merit
        merit[peer_id] = min(self.config.max_merit, merit.pop(peer_id, 0.0) + 1.0)
        if len(merit) > 10 * self.config.max_known:
            merit.pop(next(iter(merit)))

    def evictee(self, newcomer: bytes, inbound: list[Connection]) -> Connection | None:
        """The inbound peer ``newcomer`` may take the slot of: the lowest ranked (then the
        most crowded subnet, then the youngest), and only if ``newcomer`` outranks it, so
        a fresh identity (rank 0) can replace a misbehaving peer but never a proven one."""
        if not inbound:
            return None
        crowd = Counter(p.subnet for p in inbound)
        worst = min(inbound, key=lambda p: (self.peer_rank(p.peer_id), -crowd[p.subnet],
                                            -p.connected_at))
        if self.peer_rank(newcomer) <= self.peer_rank(worst.peer_id):
            return None
        return worst

    def _score_at(self, peer_id: bytes, now: float) -> float:
        entry = self._scores.get(peer_id)
        if entry is None:
            return 0.0
        score, at = entry
        return min(0.0, score + (now - at) * self.config.score_recovery)

    # ------------------------------------------------------------------ bans

    def ban(self, peer_id: bytes, reason: str, now: float, conn: Connection | None) -> None:
        """Ban ``peer_id`` (and what ``conn``, its live connection if any, tells us about
        its address); the caller then ends ``conn``."""
        until = now + self.config.ban_seconds
        self._banned[peer_id] = until
        self.known.pop(peer_id, None)
        if conn is not None and conn.outbound and conn.address:
            # Only an address we dialled and found this identity at: an inbound peer's
            # listen port is its own claim and could name somebody else's endpoint.
            self._banned_addrs[hostport(conn.address)] = until
        if conn is not None and not conn.outbound and self.limited(conn.host):
            self._note_ip_ban(conn.host, now)
        self.stats["bans"] += 1
        log.warning("banned peer %s for %.0fs: %s", peer_id.hex()[:16],
                    self.config.ban_seconds, reason)

    def is_banned(self, peer_id: bytes) -> bool:
        until = self._banned.get(peer_id)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._banned[peer_id]
            self._scores.pop(peer_id, None)
            return False
        return True

    def banned_until(self, peer_id: bytes) -> float:
        """When ``peer_id``'s ban ends (0.0 when it is not banned)."""
        return self._banned.get(peer_id, 0.0)

    def addr_banned(self, host_port: str) -> bool:
        until = self._banned_addrs.get(host_port)
        if until is None:
            return False
        if until <= time.monotonic():
            del self._banned_addrs[host_port]
            return False
        return True

    def ip_banned(self, host: str) -> bool:
        until = self._banned_ips.get(host)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._banned_ips[host]
        return False

    def limited(self, host: str) -> bool:
        """Whether per-IP limits and IP bans apply to ``host`` (not to loopback, unless
        ``limit_loopback``; not to a non-IP socket)."""
        try:
            return not _ip(host).is_loopback or self.config.limit_loopback
        except ValueError:
            return False

    def _note_ip_ban(self, host: str, now: float) -> None:
        """A fresh identity costs an attacker nothing; its IP does. After ``ip_ban_after``
        banned identities from one IP within ``ban_seconds``, refuse that IP outright."""
        cfg = self.config
        recent = [t for t in self._ip_bans.pop(host, []) if t > now - cfg.ban_seconds]
        recent.append(now)
        self._ip_bans[host] = recent
        if len(self._ip_bans) > 10 * cfg.max_known:
            self._ip_bans.pop(next(iter(self._ip_bans)))
        if len(recent) >= cfg.ip_ban_after:
            self._banned_ips[host] = now + cfg.ban_seconds
            self.stats["ip_bans"] += 1
            log.warning("banned IP %s for %.0fs: %d of its identities banned", host,
                        cfg.ban_seconds, len(recent))

    # ------------------------------------------------------------------ addresses

    def remember(self, key: bytes, address: str, connected: Container[bytes]) -> None:
        """Keep ``address`` for ``key``; when full, forget the oldest address we are not
        ``connected`` to (or, if we are connected to all, the new one)."""
        known = self.known
        if key not in known and len(known) >= self.config.max_known:
            for old in list(known):
                if old not in connected:
                    del known[old]
                    break
            else:
                return
        known[key] = address


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone index
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def subnet_of(host: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) a host is in: one operator's addresses, roughly."""
    try:
        ip = _ip(host)
    except ValueError:
        return host
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def hostport(address: str) -> str:
    """``host:port`` of an address, spelled as ``connect`` spells it for ban lookups."""
    _, host, port = parse_address(address)
    return f"{host}:{port}"
