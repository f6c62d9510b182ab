"""The storage module's books: what must hold after every block."""

from __future__ import annotations

from typing import Any

from smartchain.modules.bank.module import get_account
from smartchain.modules.storage.types import (
    DEAL_PREFIX,
    MODULE_ACCOUNT,
    PROVIDER_PREFIX,
    Deal,
    StorageProvider,
)


def invariants(view: Any) -> list[str]:
    """The module account holds exactly the providers' collateral and, per deal, its escrow,
    its repair budget and the repair rewards held for columns not yet audited."""
    collateral = sum(StorageProvider.decode(raw).collateral
                     for _key, raw in view.iter_prefix(PROVIDER_PREFIX))
    deals = [Deal.decode(raw) for _key, raw in view.iter_prefix(DEAL_PREFIX)]
    locked = sum(d.escrow + d.repair_budget + sum(c.bounty for c in d.columns) for d in deals)
    held = get_account(view, MODULE_ACCOUNT).balance
    if held == collateral + locked:
        return []
    return [f"module account holds {held} != collateral {collateral} + deals' locked {locked}"]
