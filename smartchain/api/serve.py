"""Serve the HTTP API of a node (the node process itself is assembled in smartchain/daemon.py)."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from smartchain.api.server import create_app
from smartchain.node.config import ApiSettings
from smartchain.node.node import Node


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


class ApiServer:
    """The node's HTTP API on ``settings.host:settings.port`` (port 0: any free one)."""

    def __init__(self, node: Node, settings: ApiSettings) -> None:
        self.settings = settings
        logging.getLogger("aiohttp.server").addFilter(UnparsableRequests())
        self.runner = web.AppRunner(create_app(node, settings), access_log=None)

    async def start(self) -> str:
        """Listen; returns the API's URL (with the port actually bound)."""
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.settings.host, self.settings.port,
                           reuse_address=True)
        await site.start()
        # the site started above, so it has its server and socket
        # the site started above, so it has its server and socket
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://{self.settings.host}:{port}"

    async def stop(self) -> None:
        if self.runner.server is not None:  # set up (else there is nothing to clean)
            await self.runner.cleanup()
