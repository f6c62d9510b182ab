"""What governance reads from the staking module (poca): who has what locked, and the
community pool. The one place gov knows poca's state, so a change there changes one file.

Until the poca module is merged nothing is locked and the pool is empty: nobody can vote
and no spend can be paid (a passing spend fails, its deposits returned).
"""

from __future__ import annotations

from typing import Any

from smartchain.modules.gov.tally import Bond, Validator
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError


def validators(view: Any) -> dict[bytes, Validator]:
    """Every candidate's stake and delegations."""
    return {}


def bonds_of(view: Any, delegator: bytes) -> list[Bond]:
    """``delegator``'s delegations, one per candidate it delegated to."""
    return []


def locked_of(view: Any, address: bytes) -> int:
    """The HPC ``address`` has locked: own stake and delegations."""
    return 0


def pool_balance(view: Any) -> int:
    return 0


def pay_from_pool(store: Overlay, to: bytes, amount: int) -> None:
    """Pay ``amount`` of the community pool to ``to``, or ``TxError`` if it holds less."""
    raise TxError(Code.FAILED, f"the community pool holds 0 < {amount} base units")
