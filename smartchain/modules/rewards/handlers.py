"""The rewards module's message handlers: withdraw, and a validator's commission."""

from __future__ import annotations

from smartchain.modules.poca.state import get_candidate
from smartchain.modules.poca.types import DELEGATION_PREFIX, Delegation
from smartchain.modules.rewards.state import (
    Env,
    accrued,
    commission_of,
    pending,
    settle_delegation,
)
from smartchain.modules.rewards.types import (
    ACCRUED_PREFIX,
    BPS,
    COMMISSION_PREFIX,
    MODULE_ACCOUNT,
    Commission,
    SetCommission,
    Withdraw,
)
from smartchain.state.module import TxContext
from smartchain.types.errors import Code, TxError


def _fail(message: str) -> TxError:
    return TxError(Code.FAILED, message)


def _env(ctx: TxContext) -> Env:
    return Env(ctx.store, ctx.block, ctx.gas, ctx.events)


def delegations_of(view: object, delegator: bytes) -> list[tuple[bytes, int]]:
    """(operator, shares) of every delegation ``delegator`` holds, in key order."""
    prefix = DELEGATION_PREFIX + delegator
    return [(k[len(prefix):], Delegation.decode(raw).shares)
            for k, raw in view.iter_prefix(prefix)]  # type: ignore[attr-defined]


def handle_withdraw(ctx: TxContext, msg: Withdraw) -> None:
    """Pay the sender its accrued rewards and what each of its delegations earned."""
    env = _env(ctx)
    own = accrued(env.store, ctx.sender)
    held = delegations_of(env.store, ctx.sender)
    owed = sum(pending(env.store, ctx.sender, op, shares) for op, shares in held)
    if own + owed == 0:
        raise _fail(f"{ctx.sender.hex()} has no rewards accrued to withdraw")
    if own:
        env.delete(ACCRUED_PREFIX + ctx.sender)
        env.move(MODULE_ACCOUNT, ctx.sender, own)
    for op, shares in held:
        settle_delegation(env, ctx.sender, op, shares, shares)
    env.emit("rewards_withdraw", address=ctx.sender.hex(), amount=own + owed)


def validate_commission(msg: SetCommission) -> None:
    if msg.rate_bps > BPS:
        raise TxError(Code.INVALID_PAYLOAD, f"commission {msg.rate_bps} bps is over 10000")


def handle_set_commission(ctx: TxContext, msg: SetCommission) -> None:
    """A validator changes its commission: at most ``rewards_max_commission_bps``, by at
    most ``rewards_commission_max_change_bps`` per change, once per
    ``rewards_commission_change_blocks``."""
    env = _env(ctx)
    p, h = env.params, env.block.height
    c = get_candidate(env.store, ctx.sender)
    if c is None or not c.registered:
        raise _fail(f"{ctx.sender.hex()} is not a registered validator candidate")
    if msg.rate_bps > p.rewards_max_commission_bps:
        raise _fail(f"commission {msg.rate_bps} bps is over the most allowed, "
                    f"rewards_max_commission_bps={p.rewards_max_commission_bps}")
    now = commission_of(env.store, ctx.sender, p)
    if msg.rate_bps == now.rate_bps:
        raise _fail(f"the commission is already {now.rate_bps} bps")
    if abs(msg.rate_bps - now.rate_bps) > p.rewards_commission_max_change_bps:
        raise _fail(f"commission {now.rate_bps} -> {msg.rate_bps} bps changes by more than "
                    f"rewards_commission_max_change_bps={p.rewards_commission_max_change_bps}")
    ready = now.changed + p.rewards_commission_change_blocks
    if now.changed and h < ready:
        raise _fail(f"the commission last changed at height {now.changed}: the next change "
                    f"is accepted from height {ready}")
    env.set(COMMISSION_PREFIX + ctx.sender, Commission(msg.rate_bps, h).encode())
    env.emit("rewards_commission", validator=ctx.sender.hex(), rate_bps=msg.rate_bps,
             was_bps=now.rate_bps)
