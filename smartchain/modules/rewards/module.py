"""Rewards that follow real work (Smart Chain §3.2.6, §4.2, §4.3); docs/rewards.md.

- **Every block** one record counts who proposed it and who signed the previous block.
- **Every epoch** (the staking module's) the halving schedule gives the most these heights
  may mint; utilisation of the declared capacity (verified compute fuel, audited storage,
  paid bandwidth) picks a part of it through the curve; proposers, signing directors,
  attesting standbys and providers (by verified work) earn it. What no one earns is never
  minted, so the cap proof of ``smartchain.state.emission`` still holds.
- **Delegators** share their validator's reward minus its commission, F1-style (no loop over
  delegators); poca pays a delegation what it earned before changing it.
- ``rewards/withdraw`` pays everything accrued; ``rewards/set_commission`` changes a
  validator's commission within bounds, at a limited rate.
"""

from __future__ import annotations

from typing import Any

from smartchain.modules.bank.module import (
    _decode_account,
    emission_of,
    get_account,
    total_minted,
)
from smartchain.modules.bank.types import ACCOUNT_PREFIX
from smartchain.modules.poca.state import community_pool, tokens_of
from smartchain.modules.poca.types import (
    CANDIDATE_PREFIX,
    DELEGATION_PREFIX,
    UNBONDING_PREFIX,
    Candidate,
    Delegation,
    Unbonding,
)
from smartchain.modules.poca.types import MODULE_ACCOUNT as POCA_ACCOUNT
from smartchain.modules.rewards.epoch import count_block, get_tally, settle, start_tally
from smartchain.modules.rewards.handlers import (
    handle_set_commission,
    handle_withdraw,
    validate_commission,
)
from smartchain.modules.rewards.state import pending
from smartchain.modules.rewards.types import (
    ACCRUED_PREFIX,
    MODULE_ACCOUNT,
    POOL_PREFIX,
    Pool,
    SetCommission,
    Withdraw,
)
from smartchain.state.emission import emitted_through
from smartchain.state.module import BlockInfo, Module, Msg
from smartchain.state.store import Overlay
from smartchain.types.tx import Event


def unwithdrawn(view: Any) -> tuple[int, dict[bytes, int]]:
    """(rewards accrued to accounts, what each validator's delegators are owed)."""
    own = sum(int.from_bytes(raw, "big") for _k, raw in view.iter_prefix(ACCRUED_PREFIX))
    owed = {k[len(POOL_PREFIX):]: Pool.decode(raw).owed
            for k, raw in view.iter_prefix(POOL_PREFIX)}
    return own, owed


def _books_violations(view: Any) -> list[str]:
    """The module account holds exactly what is unwithdrawn, and no validator's delegators
    have earned more than their pool was given."""
    own, owed = unwithdrawn(view)
    wrong = []
    held = get_account(view, MODULE_ACCOUNT).balance
    if held != own + sum(owed.values()):
        wrong.append(f"module account holds {held} != accrued {own} + delegators owed "
                     f"{sum(owed.values())}")
    earned: dict[bytes, int] = {}
    for key, raw in view.iter_prefix(DELEGATION_PREFIX):
        delegator, op = key[len(DELEGATION_PREFIX):-20], key[-20:]
        earned[op] = earned.get(op, 0) + pending(view, delegator, op,
                                                 Delegation.decode(raw).shares)
    wrong += [f"delegators of {op.hex()} earned {n} > owed {owed.get(op, 0)}"
              for op, n in sorted(earned.items()) if n > owed.get(op, 0)]
    return wrong


def supply_breakdown(view: Any) -> tuple[int, int, int, int]:
    """(free balances, locked stake with unbonding, unwithdrawn rewards, community pool):
    their sum is the supply. The invariants prove it in parts (the bank: supply = every
    balance; poca's and this module's accounts hold exactly their books), so a broken part
    is reported once, by its module; tests add the parts up too."""
    free = sum(_decode_account(raw)[0] for k, raw in view.iter_prefix(ACCOUNT_PREFIX)
               if k[len(ACCOUNT_PREFIX):] not in (POCA_ACCOUNT, MODULE_ACCOUNT))
    locked = sum(tokens_of(Candidate.decode(raw)) for _k, raw in view.iter_prefix(CANDIDATE_PREFIX))
    locked += sum(Unbonding.decode(raw).amount for _k, raw in view.iter_prefix(UNBONDING_PREFIX))
    own, owed = unwithdrawn(view)
    return free, locked, own + sum(owed.values()), community_pool(view)


def _schedule_violations(view: Any) -> list[str]:
    """Minted never passes what the schedule allowed the epochs settled so far."""
    em, minted = emission_of(view), total_minted(view)
    allowed = emitted_through(em, get_tally(view).start - 1)
    if minted <= allowed <= em.pool:
        return []
    return [f"minted {minted} passes the schedule so far {allowed} (pool {em.pool})"]


class Rewards(Module):
    name = "rewards"

    def messages(self) -> dict[str, Msg]:
        return {
            "rewards/withdraw": Msg(Withdraw, handle_withdraw),
            "rewards/set_commission": Msg(SetCommission, handle_set_commission,
                                          validate_commission),
        }

    def init_genesis(self, store: Overlay, genesis: Any) -> None:
        start_tally(store, 1)

    def begin_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        count_block(store, block)
        return []

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        """Settle the epoch at its last height (after poca ranked the next one)."""
        if (block.height + 1) % max(1, block.params.poca_epoch_blocks):
            return []
        return settle(store, block)

    def invariants(self, view: Any) -> list[str]:
        return _books_violations(view) + _schedule_violations(view)
