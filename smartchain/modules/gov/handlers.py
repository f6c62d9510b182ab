"""The gov module's messages: propose, deposit, vote.

A proposal is checked in full when it is made: a param change with an unknown key, a value
that does not parse, or one that would leave params outside their bounds
(``smartchain/state/params/bounds.py``) is refused then, not discovered at the tally.
"""

from __future__ import annotations

from dataclasses import replace

from smartchain.modules.gov import stake
from smartchain.modules.gov.state import (
    add_deposit,
    fail,
    next_id,
    open_count,
    put_proposal,
    queue,
    require_proposal,
    set_open_count,
    start_voting,
    vote_of,
)
from smartchain.modules.gov.types import (
    DEPOSIT,
    DEPOSIT_QUEUE,
    EMPTY_TALLY,
    KINDS,
    MAX_CHANGES,
    MAX_DESCRIPTION,
    MAX_KEY,
    MAX_TITLE,
    MAX_VALUE,
    NO_ADDRESS,
    OPTIONS,
    PARAM,
    SPEND,
    STATUS,
    VOTE_PREFIX,
    VOTING,
    Deposit,
    Proposal,
    Propose,
    Vote,
    be64,
)
from smartchain.state.module import TxContext
from smartchain.state.params import Params
from smartchain.state.params.bounds import ParamsError, with_changes
from smartchain.types.errors import Code, TxError


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


def validate_propose(msg: Propose) -> None:
    """What a proposal must be whatever the state: its kind's fields and no others."""
    if msg.kind not in KINDS:
        raise _invalid(f"a proposal is one of {', '.join(KINDS)}, not {msg.kind!r}")
    if not 0 < len(msg.title) <= MAX_TITLE:
        raise _invalid(f"a proposal's title is 1 to {MAX_TITLE} characters")
    if len(msg.description) > MAX_DESCRIPTION:
        raise _invalid(f"a proposal's description is at most {MAX_DESCRIPTION} characters")
    if msg.kind == PARAM:
        if not 0 < len(msg.changes) <= MAX_CHANGES:
            raise _invalid(f"a param proposal changes 1 to {MAX_CHANGES} parameters")
        for c in msg.changes:
            if not 0 < len(c.key) <= MAX_KEY or not 0 < len(c.value) <= MAX_VALUE:
                raise _invalid(f"a change is KEY=VALUE, the key up to {MAX_KEY} and the "
                               f"value up to {MAX_VALUE} characters")
    elif msg.changes:
        raise _invalid(f"only a param proposal carries changes, not a {msg.kind} one")
    if msg.kind == SPEND:
        if msg.amount <= 0 or msg.recipient == NO_ADDRESS:
            raise _invalid("a spend proposal names a recipient and a positive amount")
    elif msg.amount or msg.recipient != NO_ADDRESS:
        raise _invalid(f"only a spend proposal carries a recipient and amount, not a "
                       f"{msg.kind} one")


def check_changes(params: Params, msg: Propose) -> None:
    """Refuse a param change the chain could not take (``TxError``, nothing written)."""
    try:
        with_changes(params, [(c.key, c.value) for c in msg.changes])
    except ParamsError as exc:
        raise _invalid(f"invalid param change: {exc}") from exc


def handle_propose(ctx: TxContext, msg: Propose) -> None:
    params, height = ctx.block.params, ctx.block.height
    if msg.kind == PARAM:
        check_changes(params, msg)
    if msg.deposit < params.gov_min_initial_deposit:
        raise fail(f"deposit {msg.deposit} is below the minimum initial deposit "
                   f"{params.gov_min_initial_deposit} base units (gov_min_initial_deposit)")
    opened = open_count(ctx.store)
    if opened >= params.gov_max_open:
        raise fail(f"{opened} proposals are open, the most gov_max_open allows: wait for one "
                   "to close")
    pid = next_id(ctx)
    p = Proposal(pid, msg.kind, msg.title, msg.description, ctx.sender, msg.changes,
                 msg.recipient, msg.amount, DEPOSIT, height, height + params.gov_deposit_blocks,
                 0, 0, 0, 0, 0, EMPTY_TALLY, "")
    p = add_deposit(ctx, p, ctx.sender, msg.deposit, params)
    if p.total_deposit >= params.gov_min_deposit:
        p = start_voting(ctx, p, height, params, queued=False)
    else:
        queue(ctx, DEPOSIT_QUEUE, p.deposit_end, pid)
    put_proposal(ctx, p)
    set_open_count(ctx, opened + 1)
    ctx.emit("gov_propose", proposal=pid, content=msg.kind, proposer=ctx.sender.hex(),
             deposit=msg.deposit, status=STATUS[p.status])


def validate_deposit(msg: Deposit) -> None:
    if msg.amount <= 0:
        raise _invalid("a deposit is a positive amount")


def handle_deposit(ctx: TxContext, msg: Deposit) -> None:
    params, height = ctx.block.params, ctx.block.height
    p = require_proposal(ctx.store, msg.proposal)
    if p.status != DEPOSIT:
        raise fail(f"proposal {p.id} is not in its deposit period (it is {STATUS[p.status]})")
    p = add_deposit(ctx, p, ctx.sender, msg.amount, params)
    if p.total_deposit >= params.gov_min_deposit:
        p = start_voting(ctx, p, height, params, queued=True)
    put_proposal(ctx, p)
    ctx.emit("gov_deposit", proposal=p.id, depositor=ctx.sender.hex(), amount=msg.amount,
             status=STATUS[p.status])


def validate_vote(msg: Vote) -> None:
    if msg.option >= len(OPTIONS):
        raise _invalid(f"a vote is one of {', '.join(OPTIONS)} (0-{len(OPTIONS) - 1})")


def handle_vote(ctx: TxContext, msg: Vote) -> None:
    p = require_proposal(ctx.store, msg.proposal)
    if p.status != VOTING:
        raise fail(f"proposal {p.id} is not open to votes (it is {STATUS[p.status]})")
    if stake.locked_of(ctx.store, ctx.sender) <= 0:
        raise fail("the voter has no HPC locked (own stake or delegations): voting power "
                   "is locked HPC, see `smart stake delegate`")
    votes = p.votes
    if vote_of(ctx.store, p.id, ctx.sender) is None:
        if votes >= ctx.block.params.gov_max_votes:
            raise fail(f"proposal {p.id} already counts {votes} voters, the most gov_max_votes "
                       "allows")
        votes += 1
        put_proposal(ctx, replace(p, votes=votes))
    ctx.write(VOTE_PREFIX + be64(p.id) + ctx.sender, bytes([msg.option]))
    ctx.emit("gov_vote", proposal=p.id, voter=ctx.sender.hex(), option=OPTIONS[msg.option])
