"""Finding peers: seeds kept connected, and addresses learned by peer exchange dialled.

Connected peers send each other the addresses of their own peers (``Connections``
sends ours on connect and every ``pex_interval``); what we learn is kept in the
``PeerBook`` and dialled while ``max_peers`` leaves room. With ``pex`` off we neither
keep nor dial learned addresses: seeds only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter

from smartchain.p2p.config import Penalty
from smartchain.p2p.connections import Connection, Connections, Penalize
from smartchain.p2p.framing import P2PError
from smartchain.p2p.messages import MAX_PEX_ADDRESSES, Envelope, PeerList, parse_address
from smartchain.p2p.peerbook import PeerBook

__all__ = ["Discovery"]

log = logging.getLogger("smartchain.p2p")


class Discovery:
    """Seed loops and the dials of addresses learned from peers."""

    def __init__(self, connections: Connections, book: PeerBook, seeds: list[str],
                 stats: Counter[str], penalize: Penalize) -> None:
        self.connections = connections
        self.book = book
        self.seeds = seeds
        self.stats = stats
        self.penalize = penalize

    def start(self) -> None:
        """Keep every seed (but ourselves) connected, each with its own backoff."""
        conns = self.connections
        for seed in self.seeds:
            key, _, _ = parse_address(seed)
            if key != conns.peer_id:
                self.book.known.setdefault(key, seed)
                conns.spawn(self._seed_loop(seed), f"seed {seed}")

    def on_peer_list(self, peer: Connection, env: Envelope) -> None:
        conns = self.connections
        if not conns.config.pex:
            return  # seeds only: learned addresses are neither kept nor dialled
        book = self.book
        try:
            addresses = PeerList.decode(env.payload).addresses
            if len(addresses) > MAX_PEX_ADDRESSES:
                raise ValueError("too many addresses")
        except ValueError as exc:  # CodecError is a ValueError
            self.penalize(peer.peer_id, Penalty.BAD_PEER_LIST, f"bad peer list: {exc}")
            return
        fresh: list[str] = []
        for address in addresses:
            try:
                key, host, port = parse_address(address)
            except ValueError:
                self.stats["bad_peer_addresses"] += 1
                continue
            if (key == conns.peer_id or key in conns.peers or key in conns.dialing
                    or key in book.known or book.is_banned(key)
                    or book.addr_banned(f"{host}:{port}")):
                continue
            book.remember(key, address, conns.peers)
            fresh.append(address)
        room = conns.max_peers - conns.slots.used()
        for address in fresh[:max(0, room)]:
            conns.spawn(self._dial_discovered(address), f"dial {address}")

    async def _dial_discovered(self, address: str) -> None:
        key, _, _ = parse_address(address)
        try:
            await self.connections.connect(address)
            self.stats["pex_dials"] += 1
        except (P2PError, OSError, ValueError) as exc:
            self.stats["pex_dial_failures"] += 1
            log.debug("could not dial discovered peer %s: %s", address, exc)
            if self.book.known.get(key) == address:  # unreachable or not who it claimed
                del self.book.known[key]

    async def _seed_loop(self, seed: str) -> None:
        """Keep one seed connected: retry with exponential backoff (with jitter), and
        count a connection that dies within a second as a failure too."""
        conns = self.connections
        cfg = conns.config
        key, _, _ = parse_address(seed)
        backoff = cfg.seed_backoff_min
        while not conns.closing:
            peer = conns.peers.get(key)
            if peer is None:
                if self.book.is_banned(key):
                    await asyncio.sleep(max(cfg.seed_backoff_min,
                                            self.book.banned_until(key) - time.monotonic()))
                    continue
                try:
                    await conns.connect(seed)
                except asyncio.CancelledError:
                    raise
                except (P2PError, OSError, RuntimeError) as exc:  # RuntimeError: uvloop
                    log.debug("seed %s unreachable: %s", seed, exc)
                    await asyncio.sleep(backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, cfg.seed_backoff_max)
                    continue
                peer = conns.peers.get(key)
                if peer is None:
                    continue
            await asyncio.shield(peer.closed_fut)
            if time.monotonic() - peer.connected_at < 1.0:
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, cfg.seed_backoff_max)
            else:
                backoff = cfg.seed_backoff_min
