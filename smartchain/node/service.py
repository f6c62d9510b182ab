"""What the node's resource services (compute worker, storage provider) share: they act once
per new block, read the node's own state in-process and send transactions signed by the
node's key."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from smartchain.codec import Struct
from smartchain.node.node import Node
from smartchain.types.errors import TxError

POLL_S = 0.05  # how often a service looks for a new block


class BlockService:
    """Subclasses implement ``on_block(height)`` (plain or async) and name themselves in
    ``what`` (the log prefix)."""

    what = "service"
    log = logging.getLogger("smartchain.node")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.key = node.key
        self.address = node.key.address

    def on_block(self, height: int) -> Any:
        raise NotImplementedError

    async def run_blocks(self) -> None:
        """Call ``on_block`` for each new height; a failing pass is logged, never fatal."""
        seen = -1
        while True:
            height = self.node.chain.height
            if height != seen and height > 0:
                seen = height
                try:
                    done = self.on_block(height)
                    if inspect.isawaitable(done):
                        await done
                except Exception:  # a bug here must not kill the node; say it loudly
                    self.log.exception("%s: pass at height %d failed", self.what, height)
            await asyncio.sleep(POLL_S)

    def read(self, fn: Any, *args: Any) -> Any:
        with self.node.chain.reader() as reader:
            return fn(reader, *args)

    def send(self, kind: str, msg: Struct, gas_limit: int) -> bytes | None:
        """Admit a transaction; ``None`` (logged) when the mempool refuses it: the caller
        retries at a later block."""
        try:
            return self.node.submit_own(kind, msg, gas_limit)
        except TxError as exc:
            self.refused(kind, exc)
            return None

    def tx_state(self, tx_hash: bytes | None) -> str:
        """'none' (never sent, or dropped from the mempool), 'pending' or 'committed'."""
        if tx_hash is None:
            return "none"
        if tx_hash in self.node.mempool:
            return "pending"
        if self.node.chain.has_tx(tx_hash):
            return "committed"
        return "none"

    def refused(self, kind: str, exc: TxError) -> None:
        self.log.info("%s: %s not admitted (%s); will retry", self.what, kind, exc.message)
