"""A standby signer's liveness attestation (``poca/attest``), sent by its node.

Standby signers do not sign blocks, so the chain cannot see from commits whether they are
up; the staking module counts their attestations instead (their uptime, one of the
qualification thresholds). The node of a standby sends one every ``poca_attest_interval``
blocks, signed by its own key: that covers candidates whose operator account is the
node's key (every genesis validator; a candidate registered from another account attests
with ``smart validator attest`` or the SDK).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from smartchain.modules.poca.state import get_candidate, get_ranking
from smartchain.modules.poca.types import Attest, Candidate
from smartchain.node.node import Node
from smartchain.node.service import BlockService

# Intrinsic gas plus the candidate's one write, with room: unused gas is refunded.
ATTEST_GAS = 50_000


def _standby(view: Any, operator: bytes) -> Candidate | None:
    """The candidate ``operator`` while it holds a standby signer seat, else ``None``."""
    if operator not in get_ranking(view).standbys:
        return None
    return get_candidate(view, operator)


class Attester(BlockService):
    what = "attest"

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self._sent: bytes | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.run_blocks())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def on_block(self, height: int) -> None:
        if self.tx_state(self._sent) == "pending":
            return
        c = self.read(_standby, self.address)
        if c is None:
            return
        interval = max(1, self.node.chain.params.poca_attest_interval)
        if c.last_attest and height + 1 < c.last_attest + interval:
            return  # included at height + 1 at the earliest
        self._sent = self.send("poca/attest", Attest(height), ATTEST_GAS)
        if self._sent is not None:
            self.log.info("attest: standby signer, liveness attested at height %d", height)
