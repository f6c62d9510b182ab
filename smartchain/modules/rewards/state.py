"""The rewards module's books: accrued rewards, the validators' delegator pools (F1-style
lazy accounting), commission, and the work ledger the resource modules write to.

**F1 in one paragraph.** A validator's delegators share its reward by delegation shares
(poca's shares: a slash lowers what a share is worth, never the shares, so no slash events
are needed). The pool keeps the reward per share so far; each delegation keeps the value it
had when the delegation last changed (its *mark*). What a delegation has earned is
``shares x (per_share - mark) / SCALE``: nothing loops over delegators when a reward comes
in, and a delegation that changes (delegate, undelegate) is paid first, then marked again
(withdraw-on-change, the hook poca calls).
"""

from __future__ import annotations

from typing import Any

from smartchain.modules.env import ModuleEnv
from smartchain.modules.rewards.types import (
    ACCRUED_PREFIX,
    COMMISSION_PREFIX,
    MARK_PREFIX,
    MODULE_ACCOUNT,
    POOL_PREFIX,
    SCALE,
    WORK_PREFIX,
    Commission,
    Pool,
    Work,
)
from smartchain.state.params import Params
from smartchain.state.store import Overlay

ZERO32 = bytes(32)


class Env(ModuleEnv[Pool]):
    """``ModuleEnv`` over the validators' pools (block hooks and handlers alike)."""

    __slots__ = ()

    def provider_key(self, address: bytes) -> bytes:
        return POOL_PREFIX + address

    def load_provider(self, address: bytes) -> Pool | None:
        return get_pool(self.store, address)


def _u128(raw: bytes | None) -> int:
    return int.from_bytes(raw, "big") if raw else 0


# --- reads -----------------------------------------------------------------------------------


def accrued(view: Any, address: bytes) -> int:
    """Rewards ``address`` earned directly (as a proposer, signer, standby or provider, its
    commission and its own stake's part) and has not withdrawn."""
    return _u128(view.get(ACCRUED_PREFIX + address))


def get_pool(view: Any, operator: bytes) -> Pool | None:
    raw = view.get(POOL_PREFIX + operator)
    return Pool.decode(raw) if raw is not None else None


def per_share(pool: Pool | None) -> int:
    return int.from_bytes(pool.per_share, "big") if pool is not None else 0


def mark_of(view: Any, delegator: bytes, operator: bytes) -> int:
    raw = view.get(MARK_PREFIX + delegator + operator)
    return int.from_bytes(raw, "big") if raw else 0


def pending(view: Any, delegator: bytes, operator: bytes, shares: int) -> int:
    """What ``shares`` of ``operator`` held by ``delegator`` earned since they last changed."""
    gained = per_share(get_pool(view, operator)) - mark_of(view, delegator, operator)
    return shares * gained // SCALE


def commission_of(view: Any, operator: bytes, params: Params) -> Commission:
    """The validator's commission (the default until it sets one)."""
    raw = view.get(COMMISSION_PREFIX + operator)
    if raw is None:
        return Commission(params.rewards_default_commission_bps, 0)
    return Commission.decode(raw)


def work_of(view: Any, provider: bytes) -> Work:
    raw = view.get(WORK_PREFIX + provider)
    return Work.decode(raw) if raw is not None else Work(0, 0, 0, False)


# --- writes ----------------------------------------------------------------------------------


def record_work(env: ModuleEnv[Any], provider: bytes, *, fuel: int = 0, storage: int = 0,
                bandwidth: int = 0, failed: bool = False) -> None:
    """Add verified work to ``provider``'s ledger of the epoch running (the compute module
    when a result is verified, the storage module when an audit passes or fails and when a
    bandwidth receipt is paid). One key per provider; the epoch's settlement clears them."""
    w = work_of(env.store, provider)
    env.set(WORK_PREFIX + provider, Work(w.fuel + fuel, w.storage + storage,
                                         w.bandwidth + bandwidth, w.failed or failed).encode())


def accrue(store: Overlay, address: bytes, amount: int) -> None:
    if amount:
        store.set(ACCRUED_PREFIX + address, (accrued(store, address) + amount).to_bytes(16, "big"))


def add_to_pool(store: Overlay, operator: bytes, amount: int, shares: int) -> None:
    """``amount`` for the delegators of ``operator``, who hold ``shares`` in all."""
    pool = get_pool(store, operator)
    value = per_share(pool) + amount * SCALE // shares
    owed = (pool.owed if pool is not None else 0) + amount
    store.set(POOL_PREFIX + operator, Pool(value.to_bytes(32, "big"), owed).encode())


def settle_delegation(env: ModuleEnv[Any], delegator: bytes, operator: bytes,
                      shares_before: int, shares_after: int) -> int:
    """Pay ``delegator`` what its ``shares_before`` of ``operator`` earned and mark the
    delegation afresh for ``shares_after`` (forgotten at 0). Poca calls it before every
    change of a delegation's shares; ``withdraw`` with the shares unchanged. Returns the
    amount paid."""
    pool = get_pool(env.store, operator)
    amount = shares_before * (per_share(pool) - mark_of(env.store, delegator, operator)) // SCALE
    if amount:
        assert pool is not None and pool.owed >= amount, "a delegation earned more than owed"
        env.move(MODULE_ACCOUNT, delegator, amount)
        env.set(POOL_PREFIX + operator, Pool(pool.per_share, pool.owed - amount).encode())
    key = MARK_PREFIX + delegator + operator
    if shares_after:
        mark = pool.per_share if pool is not None else ZERO32
        if (env.store.get(key) or ZERO32) != mark:
            env.set(key, mark)
    else:
        env.delete(key)
    return amount
