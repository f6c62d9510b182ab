"""The node process: assembles the node, its P2P network, consensus, the compute and storage
providers and the HTTP API from the home's config.toml, and runs them on one event loop.

When the API is listening the process writes ``HOME/node.json`` (pid, API URL, P2P address),
which the CLI, the devnet and the tests (smartchain/launcher.py) read to find it; SIGTERM or
SIGINT stop it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from smartchain.api.serve import ApiServer
from smartchain.consensus.signer import DurableSigner
from smartchain.crypto.keys import PrivateKey
from smartchain.node.attester import Attester
from smartchain.node.bft import ConsensusService
from smartchain.node.compute_worker import ComputeWorker
from smartchain.node.config import RUNTIME_FILE, NodeConfig
from smartchain.node.join import check_seeds, refuse_wrong_network
from smartchain.node.node import Node, tune_gc
from smartchain.node.storage_provider import StorageProvider
from smartchain.p2p import P2P, P2PError
from smartchain.p2p.dht import DhtError, DhtNode

SIGNER_STATE_FILE = "signer_state.json"
log = logging.getLogger("smartchain.daemon")


class Daemon:
    """The sub-systems of one node process, built from its config (nothing runs yet)."""

    def __init__(self, home: Path, key: PrivateKey, config: NodeConfig) -> None:
        self.home, self.key, self.config = home, key, config
        self.node = Node(home, key, config)
        # The network id is the genesis hash: nodes of another chain (even one reusing our
        # chain id) fail the handshake instead of feeding us foreign blocks. The signers
        # are protected peers, always accepted and never evicted: the consensus service
        # keeps that list to the signer sets of the coming heights.
        self.p2p = P2P(key, self.node.genesis.hash().hex(), config.p2p.host, config.p2p.port,
                       config.p2p.seeds, config=config.p2p.transport)
        # Every node has its signer: one outside the signer set only observes, and signs
        # from the height its key enters the set (a standby taking a seat).
        self.signer = DurableSigner(key, home / SIGNER_STATE_FILE)
        self.consensus = ConsensusService(self.node, self.p2p, self.signer,
                                          config.consensus.engine,
                                          test_equivocate_every=config.faults.equivocate_every)
        c = config.compute
        self.worker = (ComputeWorker(self.node, cores=c.cores, stake_hpc=c.stake,
                                     capability_override=c.capability_override,
                                     cheat=config.faults.cheat_compute)
                       if c.cores > 0 else None)
        s = config.storage
        self.storage = (StorageProvider(self.node, self.p2p, capacity=s.capacity, price=s.price,
                                        bandwidth_price=s.bandwidth_price,
                                        collateral_hpc=s.collateral,
                                        storage_dir=home / s.dir if s.dir else None,
                                        min_free=s.min_free, gc_grace_s=s.gc_grace_s,
                                        client_quota=s.client_quota)
                        if s.capacity > 0 else None)
        self.attester = Attester(self.node)  # acts only while we hold a standby seat
        self.api = ApiServer(self.node, config.api)

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, write node.json, run until ``stop`` is set, shut down."""
        runtime = self.home / RUNTIME_FILE
        discovery: asyncio.Task[None] | None = None
        try:
            await self._check_seeds()
            await self.p2p.start()
            url = await self.api.start()
            self._write_runtime(runtime, url)
            dht = DhtNode(self.p2p, self.key.public_key, self.p2p.address)
            self.node.peer_count = lambda: len(self.p2p.connected_peers())
            # pex = false means seeds only: no DHT discovery either (lookups dial the
            # addresses peers advertise); the DHT still answers others' requests.
            if self.config.p2p.transport.pex:
                discovery = asyncio.create_task(_discover(dht, self.config.p2p.seeds))
            await self.consensus.start()
            await self.attester.start()
            if self.worker is not None:
                await self.worker.start()
            if self.storage is not None:
                await self.storage.start(dht)
            await stop.wait()
        finally:
            if discovery is not None:
                discovery.cancel()
            with contextlib.suppress(FileNotFoundError):
                runtime.unlink()
            await self._shutdown()

    async def _check_seeds(self) -> None:
        """Refuse to run on a genesis our seeds do not share: the handshake would refuse
        every peer, and the node would sit (or, as a sole signer, build) on a chain of its
        own. A seed that is down only gets a log line: networks restart."""
        seeds = [s for s in self.config.p2p.seeds if not s.startswith(self.key.public_key.hex())]
        if not seeds:
            return
        ours = self.node.genesis.hash().hex()
        checks = await check_seeds(seeds, ours)
        for check in checks:
            if not check.ok and not check.wrong_network:
                log.warning("seed %s: %s", check.seed, check.error)
        refuse_wrong_network(checks, ours)

    def _write_runtime(self, runtime: Path, url: str) -> None:
        node = self.node
        tmp = runtime.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "api_url": url,
                                   "p2p_address": self.p2p.address,
                                   "chain_id": node.chain.chain_id}))
        tmp.replace(runtime)
        log.info("node %s: API %s, P2P %s (chain %s, height %d, %s)", self.config.moniker, url,
                 self.p2p.address, node.chain.chain_id, node.chain.height,
                 "signer" if node.is_signer else "follower")

    async def _shutdown(self) -> None:
        await self.attester.stop()
        if self.worker is not None:
            await self.worker.stop()
        if self.storage is not None:
            await self.storage.stop()
        await self.consensus.stop()
        await self.p2p.stop()
        if self.storage is not None:
            self.storage.close()  # after P2P: no request handler can still reach the disk
        await self.api.stop()
        self.node.close()


async def _discover(dht: DhtNode, seeds: list[str]) -> None:
    """Join the DHT through the seeds (retrying until one answers), then refresh hourly."""
    delay = 1.0
    while True:
        try:
            await dht.bootstrap(seeds)
            log.info("DHT joined: %d contacts", len(dht.table))
            break
        except (DhtError, OSError, TimeoutError, P2PError) as exc:
            log.info("DHT bootstrap: %s; retrying in %.0fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
    while True:
        await asyncio.sleep(3600)
        with contextlib.suppress(DhtError, OSError, TimeoutError, P2PError):
            await dht.refresh()


async def serve(home: Path, key: PrivateKey, config: NodeConfig) -> None:
    """Run the node process until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(home, key, config)
    tune_gc()
    await daemon.run(stop)


def run(home: Path, key: PrivateKey, config: NodeConfig) -> None:
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(home, key, config))
    else:
        uvloop.run(serve(home, key, config))
