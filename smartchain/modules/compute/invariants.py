"""The compute module's books: what must hold after every block."""

from __future__ import annotations

from typing import Any

from smartchain.modules.bank.module import get_account
from smartchain.modules.compute.types import (
    JOB_PREFIX,
    MODULE_ACCOUNT,
    PROVIDER_PREFIX,
    Job,
    Provider,
)


def invariants(view: Any) -> list[str]:
    """The module account holds exactly the providers' stakes and the jobs' escrows."""
    stakes = sum(Provider.decode(raw).stake for _key, raw in view.iter_prefix(PROVIDER_PREFIX))
    escrows = sum(Job.decode(raw).escrow for _key, raw in view.iter_prefix(JOB_PREFIX))
    held = get_account(view, MODULE_ACCOUNT).balance
    if held == stakes + escrows:
        return []
    return [f"module account holds {held} != stakes {stakes} + job escrows {escrows}"]
