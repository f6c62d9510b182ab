"""What governance reads from the staking module (poca): who has what locked, and the
community pool. The one place gov knows poca's state, so a change there changes one file.
"""

from __future__ import annotations

from typing import Any

from smartchain.modules.bank.module import move_hpc
from smartchain.modules.gov.tally import Bond, Validator
from smartchain.modules.poca.types import (
    CANDIDATE_PREFIX,
    DELEGATION_PREFIX,
    HELD_PREFIX,
    MODULE_ACCOUNT,
    POOL_KEY,
    Candidate,
    Delegation,
)
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError


def validators(view: Any) -> dict[bytes, Validator]:
    """The stake and delegations of every candidate holding HPC (the staking module's
    index): one that left with nothing weighs nothing, and its record stays for good."""
    out = {}
    for key, _mark in view.iter_prefix(HELD_PREFIX):
        op = key[len(HELD_PREFIX):]
        raw = view.get(CANDIDATE_PREFIX + op)
        if raw is not None:
            c = Candidate.decode(raw)
            out[op] = Validator(c.self_stake, c.delegated, c.shares)
    return out


def bonds_of(view: Any, delegator: bytes) -> list[Bond]:
    """``delegator``'s delegations, one per candidate it delegated to."""
    prefix = DELEGATION_PREFIX + delegator
    return [Bond(key[len(prefix):], Delegation.decode(raw).shares)
            for key, raw in view.iter_prefix(prefix)]


def locked_of(view: Any, address: bytes) -> int:
    """The HPC ``address`` has locked: its own stake as a candidate and its delegations'
    current value (what its vote weighs at most)."""
    raw = view.get(CANDIDATE_PREFIX + address)
    own = Candidate.decode(raw).self_stake if raw is not None else 0
    for bond in bonds_of(view, address):
        c_raw = view.get(CANDIDATE_PREFIX + bond.validator)
        if c_raw is not None:
            c = Candidate.decode(c_raw)
            own += Validator(c.self_stake, c.delegated, c.shares).value(bond.shares)
    return own


def pool_balance(view: Any) -> int:
    raw = view.get(POOL_KEY)
    return int.from_bytes(raw, "big") if raw else 0


def pay_from_pool(store: Overlay, to: bytes, amount: int) -> None:
    """Pay ``amount`` of the community pool to ``to``, or ``TxError`` if it holds less."""
    held = pool_balance(store)
    if held < amount:
        raise TxError(Code.FAILED, f"the community pool holds {held} < {amount} base units")
    store.set(POOL_KEY, (held - amount).to_bytes(16, "big"))
    move_hpc(store, MODULE_ACCOUNT, to, amount)
