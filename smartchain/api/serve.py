"""Run a node process: the node, its block loop and its HTTP API on one event loop.

When the API is listening the node writes ``HOME/node.json`` (pid and API URL), which
the CLI, the devnet and the tests read to find it; SIGTERM or SIGINT stop it cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from smartchain.api.server import create_app
from smartchain.consensus.engine import EngineConfig
from smartchain.consensus.signer import DurableSigner
from smartchain.crypto.keys import PrivateKey
from smartchain.node.bft import ConsensusService
from smartchain.node.compute_worker import ComputeWorker
from smartchain.node.config import NodeConfig
from smartchain.node.node import Node
from smartchain.node.storage_provider import StorageProvider
from smartchain.p2p import P2P, P2PConfig, P2PError
from smartchain.p2p.dht import DhtError, DhtNode

RUNTIME_FILE = "node.json"
SIGNER_STATE_FILE = "signer_state.json"
log = logging.getLogger("smartchain.serve")


class UnparsableRequests(logging.Filter):
    """aiohttp answers a request it cannot parse (bad header, chunk size, line too long) with
    400 but logs it as an ERROR with a traceback: that is the client's error, not ours, and
    any client could fill the log with it. A DEBUG line instead, as aiohttp does for
    non-HTTP traffic."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        record.msg, record.args = "refused an unparsable HTTP request (%d): %s", (
            exc.code, exc.message.splitlines()[0] if exc.message else "")
        record.exc_info, record.exc_text = None, None
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


async def serve(home: Path, key: PrivateKey, config: NodeConfig) -> None:
    node = Node(home, key, config)
    # The network id is the genesis hash: nodes of another chain (even one reusing our
    # chain id) fail the handshake instead of feeding us foreign blocks.
    p2p_config = P2PConfig(pex=config.pex, rate_frames=float(config.p2p_rate_frames),
                           burst_frames=float(config.p2p_burst_frames),
                           max_inbound=config.p2p_max_inbound,
                           max_inbound_per_ip=config.p2p_inbound_per_ip,
                           max_inbound_per_subnet=config.p2p_inbound_per_subnet,
                           limit_loopback=config.p2p_limit_loopback)
    # The validators are protected peers: always dialled and accepted, never evicted.
    p2p = P2P(key, node.genesis.hash().hex(), config.p2p_host, config.p2p_port, config.seeds,
              config=p2p_config, protected=[v.public_key for v in node.genesis.validators])
    signer = DurableSigner(key, home / SIGNER_STATE_FILE) if node.is_signer else None
    engine_config = EngineConfig(
        timeout_propose_ms=config.timeout_propose_ms,
        timeout_prevote_ms=config.timeout_vote_ms,
        timeout_precommit_ms=config.timeout_vote_ms,
    )
    service = ConsensusService(node, p2p, signer, engine_config,
                               test_equivocate_every=config.test_equivocate_every)
    worker = (ComputeWorker(node, cores=config.provide_compute, stake_hpc=config.compute_stake,
                            capability_override=config.compute_capability_override,
                            cheat=config.test_cheat_compute)
              if config.provide_compute > 0 else None)
    storage = (StorageProvider(node, p2p, capacity=config.provide_storage,
                               price=config.storage_price,
                               bandwidth_price=config.storage_bandwidth_price,
                               collateral_hpc=config.storage_collateral,
                               storage_dir=home / config.storage_dir if config.storage_dir
                               else None,  # relative: to the node's home
                               min_free=config.storage_min_free,
                               gc_grace_s=config.storage_gc_grace_s,
                               client_quota=config.storage_client_quota)
               if config.provide_storage > 0 else None)
    app = create_app(node)
    logging.getLogger("aiohttp.server").addFilter(UnparsableRequests())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.api_host, config.api_port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime = home / RUNTIME_FILE
    try:
        await p2p.start()
        await site.start()
        # the site started above, so it has its server and socket
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://{config.api_host}:{port}"
        tmp = runtime.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "api_url": url,
                                   "p2p_address": p2p.address,
                                   "chain_id": node.chain.chain_id}))
        tmp.replace(runtime)
        log.info("node %s: API %s, P2P %s (chain %s, height %d, %s)", config.moniker, url,
                 p2p.address, node.chain.chain_id, node.chain.height,
                 "signer" if signer else "follower")
        dht = DhtNode(p2p, key.public_key, p2p.address)
        node.peer_count = lambda: len(p2p.connected_peers())
        # pex = false means seeds only: no DHT discovery either (lookups dial the
        # addresses peers advertise); the DHT still answers others' requests.
        discovery = (asyncio.create_task(_discover(dht, config.seeds)) if config.pex
                     else None)
        await service.start()
        if worker is not None:
            await worker.start()
        if storage is not None:
            await storage.start(dht)
        await stop.wait()
        if discovery is not None:
            discovery.cancel()
    finally:
        with contextlib.suppress(FileNotFoundError):
            runtime.unlink()
        if worker is not None:
            await worker.stop()
        if storage is not None:
            await storage.stop()
        await service.stop()
        await p2p.stop()
        if storage is not None:
            storage.close()  # after P2P: no request handler can still reach the disk
        await runner.cleanup()
        node.close()


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


def run(home: Path, key: PrivateKey, config: NodeConfig) -> None:
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(home, key, config))
    else:
        uvloop.run(serve(home, key, config))
