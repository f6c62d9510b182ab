"""Holders govern the chain (Smart Chain §4.4): proposals, deposits, votes by locked HPC.

A proposal changes params (any field of ``Params``: every module's are governable), spends
from the staking module's community pool, or only says something (text). It opens with a
deposit; once deposits reach ``gov_min_deposit`` it is open to votes for
``gov_voting_blocks``, then tallied ONCE, in the end_block of its last voting height (work
bounded by ``gov_max_votes`` and the staking module's candidates). A passing param change is
written to state there, so it takes effect from the next block (the chain re-reads params
when a block writes them). Deposits go back, or are burned, as the params say.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from smartchain.modules.bank.module import get_account
from smartchain.modules.gov import stake
from smartchain.modules.gov.handlers import (
    handle_deposit,
    handle_propose,
    handle_vote,
    validate_deposit,
    validate_propose,
    validate_vote,
)
from smartchain.modules.gov.state import (
    HookWriter,
    all_proposals,
    due,
    get_proposal,
    held_for_open,
    open_count,
    put_proposal,
    record_changes,
    set_open_count,
    settle_deposits,
    votes_of,
)
from smartchain.modules.gov.tally import Ballot, count, outcome
from smartchain.modules.gov.types import (
    DEPOSIT_QUEUE,
    EXPIRED,
    FAILED,
    MODULE_ACCOUNT,
    NO_QUORUM,
    OPEN,
    PARAM,
    PASSED,
    REJECTED,
    SPEND,
    STATUS,
    VETOED,
    VOTING_QUEUE,
    Deposit,
    Proposal,
    Propose,
    Vote,
)
from smartchain.state.module import BlockInfo, Module, Msg
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.params.bounds import ParamsError, with_changes
from smartchain.state.store import Overlay
from smartchain.types.errors import TxError
from smartchain.types.tx import Event


def _current_params(store: Overlay) -> Params:
    """Params as this block left them so far (an earlier tally of the block may have
    changed them): what the next change builds on."""
    raw = store.get(PARAMS_KEY)
    if raw is None:
        raise RuntimeError("state holds no chain parameters")
    return Params.decode(raw)


def _execute(store: Overlay, p: Proposal, height: int) -> str:
    """Carry out a passed proposal; the reason it could not be ("" when done)."""
    if p.kind == PARAM:
        try:
            new = with_changes(_current_params(store),
                               [(c.key, c.value) for c in p.changes])
        except ParamsError as exc:  # an earlier change made this one invalid
            return f"not applied: {exc}"
        store.set(PARAMS_KEY, new.encode())
        record_changes(store, [c.key for c in p.changes], height + 1)
    elif p.kind == SPEND:
        try:
            stake.pay_from_pool(store, p.recipient, p.amount)
        except TxError as exc:
            return f"not paid: {exc.message}"
    return ""


def _burns(status: int, params: Params) -> bool:
    return {VETOED: params.gov_burn_vetoed, NO_QUORUM: params.gov_burn_no_quorum,
            REJECTED: params.gov_burn_rejected, EXPIRED: params.gov_burn_expired
            }.get(status, False)


def _close(store: Overlay, p: Proposal, status: int, note: str, params: Params) -> Event:
    burn = _burns(status, params)
    settle_deposits(store, p, burn)
    w = HookWriter(store)
    put_proposal(w, replace(p, status=status, note=note))
    set_open_count(w, open_count(store) - 1)
    return Event.of("gov_close", proposal=p.id, status=STATUS[status],
                    deposit="burned" if burn else "returned", note=note)


def _expire(store: Overlay, pid: int, params: Params) -> Event:
    p = get_proposal(store, pid)
    assert p is not None
    return _close(store, p, EXPIRED, "the deposit period ended below gov_min_deposit", params)


def tally_of(view: Any, pid: int) -> Any:
    """The count of a proposal's votes as they stand (the tally at its end)."""
    ballots = [Ballot(voter, option, stake.bonds_of(view, voter))
               for voter, option in votes_of(view, pid)]
    return count(stake.validators(view), ballots)


def _conclude(store: Overlay, pid: int, height: int, params: Params) -> Event:
    p = get_proposal(store, pid)
    assert p is not None
    result = tally_of(store, pid)
    status = outcome(result, params)
    p = replace(p, tally=result)
    note = {PASSED: "passed", REJECTED: "the threshold was not reached",
            VETOED: "vetoed", NO_QUORUM: "the quorum was not reached"}[status]
    if status == PASSED:
        why_not = _execute(store, p, height)
        if why_not:
            status, note = FAILED, why_not
    return _close(store, p, status, note, params)


class Gov(Module):
    name = "gov"

    def messages(self) -> dict[str, Msg]:
        return {
            "gov/propose": Msg(Propose, handle_propose, validate_propose,
                               spend=lambda m: m.deposit),
            "gov/deposit": Msg(Deposit, handle_deposit, validate_deposit,
                               spend=lambda m: m.amount),
            "gov/vote": Msg(Vote, handle_vote, validate_vote),
        }

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        """Expire the unfunded proposals and tally the ones whose voting ends here."""
        events = [_expire(store, pid, block.params)
                  for pid in due(store, DEPOSIT_QUEUE, block.height)]
        events += [_conclude(store, pid, block.height, block.params)
                   for pid in due(store, VOTING_QUEUE, block.height)]
        return events

    def invariants(self, view: Any) -> list[str]:
        """The module account holds exactly the deposits of open proposals, and the open
        count is the number of proposals open."""
        out = []
        held = get_account(view, MODULE_ACCOUNT).balance
        owed = held_for_open(view, lambda p: p.status in OPEN)
        if held != owed:
            out.append(f"module account holds {held} != open proposals' deposits {owed}")
        opened = sum(1 for p in all_proposals(view) if p.status in OPEN)
        if opened != open_count(view):
            out.append(f"open count {open_count(view)} != {opened} open proposals")
        return out
