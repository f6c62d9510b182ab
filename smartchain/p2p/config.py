"""Tunables and penalty points of the P2P transport, shared by its parts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MiB", "P2PConfig", "Penalty"]

MiB = 1024 * 1024


class Penalty:
    """Score points per offence; the default ban threshold is -100."""

    CORRUPT_FRAME = 100  # failed authentication: a broken peer or tampering on the path
    OVERSIZE_FRAME = 100
    TRUNCATED_FRAME = 25
    STALLED_FRAME = 25
    MALFORMED_MESSAGE = 50
    UNKNOWN_KIND = 25
    HANDLER_ERROR = 10
    BAD_REQUEST = 20
    BAD_PEER_LIST = 20
    FLOOD = 100
    INVALID_TX = 25  # per gossiped transaction no honest relay would forward


@dataclass(frozen=True, slots=True)
class P2PConfig:
    """Tunables; the defaults suit a public network, tests shrink them."""

    handshake_timeout: float = 5.0
    frame_timeout: float = 30.0  # a frame whose body has started must finish within this
    idle_timeout: float = 90.0  # nothing received for this long => connection is dead
    keepalive_interval: float = 30.0  # send a PING when we have sent nothing for this long
    priority_queue_size: int = 1024
    normal_queue_size: int = 4096
    send_timeout: float = 10.0  # longest wait for queue/socket space before dropping a peer
    rate_frames: float = 5_000.0  # inbound token bucket per peer: frames per second...
    burst_frames: float = 10_000.0  # (an honest node sends tens to hundreds per second)
    rate_bytes: float = 256.0 * MiB  # ...and plaintext bytes per second
    burst_bytes: float = 512.0 * MiB
    ban_threshold: float = -100.0
    ban_seconds: float = 600.0
    score_recovery: float = 0.5  # points per second a negative score heals
    seen_cache: int = 100_000  # gossip ids remembered for de-duplication
    max_pending_handshakes: int = 64
    max_inbound: int = 40  # inbound peers; the rest of max_peers is kept for our own dials
    max_inbound_per_ip: int = 4  # inbound connections, handshaking or connected, per IP...
    max_inbound_per_subnet: int = 8  # ...and per /24 (IPv4) or /48 (IPv6)
    limit_loopback: bool = False  # apply the two above (and IP bans) to 127.0.0.0/8 and ::1
    ip_ban_after: int = 3  # identities from one IP banned within ban_seconds: ban the IP
    max_merit: float = 100.0  # cap on the points a peer earns by delivering gossip first
    max_inbound_requests: int = 64  # requests served concurrently per peer
    pex: bool = True  # peer exchange; False: send no addresses, dial none learned (seeds only)
    pex_interval: float = 30.0
    max_known: int = 1000
    seed_backoff_min: float = 0.1
    seed_backoff_max: float = 30.0
    write_batch_bytes: int = 256 * 1024
    advertise_host: str | None = None  # host put in our address when listening on 0.0.0.0
