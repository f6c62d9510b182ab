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

from smartchain.api.server import create_app
from smartchain.crypto.keys import PrivateKey
from smartchain.node.config import NodeConfig
from smartchain.node.node import Node

RUNTIME_FILE = "node.json"
log = logging.getLogger("smartchain.serve")


async def serve(home: Path, key: PrivateKey, config: NodeConfig) -> None:
    node = Node(home, key, config)
    app = create_app(node)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.api_host, config.api_port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime = home / RUNTIME_FILE
    try:
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        url = f"http://{config.api_host}:{port}"
        tmp = runtime.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "api_url": url,
                                   "chain_id": node.chain.chain_id}))
        tmp.replace(runtime)
        log.info("node %s serving API on %s (chain %s, height %d)", config.moniker, url,
                 node.chain.chain_id, node.chain.height)
        await node.run(stop)
    finally:
        with contextlib.suppress(FileNotFoundError):
            runtime.unlink()
        await runner.cleanup()
        node.close()


def run(home: Path, key: PrivateKey, config: NodeConfig) -> None:
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(home, key, config))
    else:
        uvloop.run(serve(home, key, config))
