"""The poca module's message handlers and their stateless checks.

Each handler checks everything before it writes (a ``TxError`` reverts the transaction's
writes anyway); candidates are cached in the ``Env`` and written once at ``flush``.
"""

from __future__ import annotations

from dataclasses import replace

from smartchain.crypto.address import address_of
from smartchain.crypto.keys import verify
from smartchain.modules.poca.sets import validator_set_at
from smartchain.modules.poca.state import (
    Env,
    delegation_value,
    fail,
    get_candidate,
    operator_of_key,
    ranked_count,
)
from smartchain.modules.poca.types import (
    ACTIVE,
    ADMISSION_APPROVAL,
    APPROVAL_PREFIX,
    DELEGATION_PREFIX,
    ELIMINATED,
    ELIMINATION_PREFIX,
    JAILED,
    KEY_PREFIX,
    LIVENESS_PREFIX,
    MARK,
    MAX_MONIKER,
    MAX_REASON,
    MODULE_ACCOUNT,
    RANKED_PREFIX,
    STATUS,
    TOMBSTONED,
    Approval,
    ApproveCandidate,
    Attest,
    Candidate,
    Delegate,
    Delegation,
    Eliminate,
    Elimination,
    Register,
    Undelegate,
    Unjail,
    Unregister,
    VoteEliminate,
    register_proof_bytes,
)
from smartchain.modules.rewards.state import settle_delegation
from smartchain.state.module import TxContext
from smartchain.types.errors import Code, TxError

SIGNATURE_GAS = 5_000


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


def _env(ctx: TxContext) -> Env:
    return Env(ctx.store, ctx.block, ctx.gas, ctx.events)


# --- stateless checks --------------------------------------------------------------------


def validate_register(msg: Register) -> None:
    if msg.stake <= 0:
        raise _invalid("stake must be a positive number of base units")
    if len(msg.moniker) > MAX_MONIKER or not msg.moniker.isprintable():
        raise _invalid(f"moniker must be at most {MAX_MONIKER} printable characters")


def validate_amount(msg: Delegate | Undelegate) -> None:
    if msg.amount <= 0:
        raise _invalid("amount must be a positive number of base units")


def validate_eliminate(msg: Eliminate) -> None:
    if not msg.reason.strip() or len(msg.reason) > MAX_REASON or not msg.reason.isprintable():
        raise _invalid(f"an elimination needs a reason: 1-{MAX_REASON} printable characters")


# --- who is a director -----------------------------------------------------------------------


def _director(env: Env, operator: bytes, what: str) -> None:
    """Refuse unless ``operator``'s key signs the current height."""
    c = get_candidate(env.store, operator)
    valset = validator_set_at(env.store, env.height)
    if c is None or valset.index_of(c.pubkey) is None:
        raise fail(f"only a director can {what}: {operator.hex()} is not in the signer set "
                   f"of height {env.height}")


def _power_of(env: Env, operators: tuple[bytes, ...]) -> tuple[int, int]:
    """(power of ``operators`` in the current set, the set's total power)."""
    valset = validator_set_at(env.store, env.height)
    power = 0
    for op in operators:
        c = get_candidate(env.store, op)
        if c is not None:
            power += valset.power_of(c.pubkey)
    return power, valset.total_power


# --- handlers --------------------------------------------------------------------------------


def handle_register(ctx: TxContext, msg: Register) -> None:
    env = _env(ctx)
    p = env.params
    if get_candidate(env.store, ctx.sender) is not None:
        raise fail(f"account {ctx.sender.hex()} already has a candidate (one per account)")
    bound = operator_of_key(env.store, msg.pubkey)
    if bound is not None:
        raise fail(f"consensus key {msg.pubkey.hex()} is already bound to {bound.hex()}")
    if address_of(msg.pubkey) != ctx.sender:
        env.charge(SIGNATURE_GAS)
        if not verify(msg.pubkey, register_proof_bytes(env.block.chain_id, ctx.sender),
                      msg.proof):
            raise fail("the proof is not the consensus key's signature of (chain id, sender): "
                       "only the key's holder can bind it")
    if msg.stake < p.poca_min_self_stake:
        raise fail(f"stake {msg.stake} is under the minimum self stake "
                   f"{p.poca_min_self_stake}")
    count = ranked_count(env.store)
    if count >= p.poca_max_candidates:
        raise fail(f"the chain has {count} candidates, the most poca_max_candidates allows")
    env.move(ctx.sender, MODULE_ACCOUNT, msg.stake)
    approved = p.poca_signer_admission != ADMISSION_APPROVAL
    env.put_provider(ctx.sender, Candidate(
        msg.pubkey, msg.moniker, msg.stake, 0, 0, ACTIVE, 0, 0, approved, False, True,
        0, 0, 0, 0, 0, 0, 0))
    env.set(KEY_PREFIX + msg.pubkey, ctx.sender)
    env.set(RANKED_PREFIX + ctx.sender, MARK)
    env.flush()
    env.emit("poca_register", operator=ctx.sender.hex(), pubkey=msg.pubkey.hex(),
             stake=msg.stake, approved=str(approved).lower())


def handle_delegate(ctx: TxContext, msg: Delegate) -> None:
    env = _env(ctx)
    c = env.candidate(msg.validator)
    if not c.registered or c.status == TOMBSTONED:
        raise fail(f"candidate {msg.validator.hex()} takes no delegations "
                   f"({'unregistered' if not c.registered else STATUS[c.status]})")
    if msg.amount < env.params.poca_min_delegation:
        raise fail(f"delegation {msg.amount} is under the minimum "
                   f"{env.params.poca_min_delegation}")
    if c.shares and not c.delegated:
        raise fail(f"delegations to {msg.validator.hex()} were slashed to nothing")
    shares = msg.amount * c.shares // c.delegated if c.shares else msg.amount
    if shares <= 0:
        raise fail(f"delegation {msg.amount} is worth no share of {msg.validator.hex()}")
    env.move(ctx.sender, MODULE_ACCOUNT, msg.amount)
    key = DELEGATION_PREFIX + ctx.sender + msg.validator
    raw = env.store.get(key)
    held = Delegation.decode(raw).shares if raw is not None else 0
    settle_delegation(env, ctx.sender, msg.validator, held, held + shares)  # F1: pay first
    env.set(key, Delegation(held + shares).encode())
    env.put_provider(msg.validator, replace(c, delegated=c.delegated + msg.amount,
                                            shares=c.shares + shares))
    env.flush()
    env.emit("poca_delegate", delegator=ctx.sender.hex(), validator=msg.validator.hex(),
             amount=msg.amount)


def handle_undelegate(ctx: TxContext, msg: Undelegate) -> None:
    env = _env(ctx)
    key = DELEGATION_PREFIX + ctx.sender + msg.validator
    raw = env.store.get(key)
    if raw is None:
        raise fail(f"{ctx.sender.hex()} has no delegation to {msg.validator.hex()}")
    held = Delegation.decode(raw).shares
    c = env.candidate(msg.validator)
    value = delegation_value(c, held)
    if msg.amount > value:
        raise fail(f"undelegating {msg.amount} but the delegation is worth {value}")
    if msg.amount < value and msg.amount < env.params.poca_min_delegation:
        raise fail(f"undelegating {msg.amount} is under the minimum "
                   f"{env.params.poca_min_delegation} (or take it all: {value})")
    if msg.amount == value:
        shares, amount = held, value
    else:  # round the shares up: the delegators who stay are never diluted
        shares, amount = min(held, -(-msg.amount * c.shares // c.delegated)), msg.amount
    if shares == c.shares:  # the last shares take what rounding left
        amount = c.delegated
    completion = env.start_unbonding(msg.validator, ctx.sender, amount)
    settle_delegation(env, ctx.sender, msg.validator, held, held - shares)  # F1: pay first
    if shares == held:
        env.delete(key)
    else:
        env.set(key, Delegation(held - shares).encode())
    env.put_provider(msg.validator, replace(c, delegated=c.delegated - amount,
                                            shares=c.shares - shares))
    env.flush()
    env.emit("poca_undelegate", delegator=ctx.sender.hex(), validator=msg.validator.hex(),
             amount=amount, completion=completion)


def handle_unregister(ctx: TxContext, msg: Unregister) -> None:
    env = _env(ctx)
    c = env.candidate(ctx.sender)
    if not c.registered:
        raise fail(f"candidate {ctx.sender.hex()} is already unregistered")
    completion = env.start_unbonding(ctx.sender, ctx.sender, c.self_stake) \
        if c.self_stake else env.height
    env.put_provider(ctx.sender, replace(c, self_stake=0, registered=False))
    env.delete(RANKED_PREFIX + ctx.sender)
    env.leave_ranking(ctx.sender)
    env.flush()
    env.emit("poca_unregister", operator=ctx.sender.hex(), amount=c.self_stake,
             completion=completion)


def handle_unjail(ctx: TxContext, msg: Unjail) -> None:
    env = _env(ctx)
    c = env.candidate(ctx.sender)
    if c.status != JAILED:
        raise fail(f"candidate {ctx.sender.hex()} is not jailed (it is {STATUS[c.status]})")
    if env.height < c.jailed_until:
        raise fail(f"candidate {ctx.sender.hex()} is jailed until height {c.jailed_until} "
                   f"(now {env.height})")
    env.put_provider(ctx.sender, replace(c, status=ACTIVE))
    env.delete(LIVENESS_PREFIX + c.pubkey)
    env.flush()
    env.emit("poca_unjail", operator=ctx.sender.hex())


def _open_elimination(env: Env, target: bytes) -> Elimination | None:
    raw = env.store.get(ELIMINATION_PREFIX + target)
    if raw is None:
        return None
    e = Elimination.decode(raw)
    return e if env.height <= e.start + env.params.poca_eliminate_window else None


def _tally_elimination(env: Env, target: bytes, e: Elimination) -> None:
    yes, total = _power_of(env, e.voters)
    if yes * 3 <= total * 2:
        env.set(ELIMINATION_PREFIX + target, e.encode())
        return
    env.delete(ELIMINATION_PREFIX + target)
    c = env.candidate(target)
    barred = env.epoch + 1 + env.params.poca_eliminate_epochs
    env.put_provider(target, replace(c, status=ELIMINATED, barred_until=barred))
    env.leave_ranking(target)
    env.emit("poca_eliminated", target=target.hex(), yes_power=yes, total_power=total,
             barred_until_epoch=barred)


def handle_eliminate(ctx: TxContext, msg: Eliminate) -> None:
    env = _env(ctx)
    _director(env, ctx.sender, "propose an elimination")
    c = env.candidate(msg.target)
    if not c.registered or c.status in (TOMBSTONED, ELIMINATED):
        raise fail(f"candidate {msg.target.hex()} is already out "
                   f"({'unregistered' if not c.registered else STATUS[c.status]})")
    if _open_elimination(env, msg.target) is not None:
        raise fail(f"an elimination of {msg.target.hex()} is already open: vote on it")
    env.emit("poca_eliminate", target=msg.target.hex(), proposer=ctx.sender.hex(),
             reason=msg.reason)
    _tally_elimination(env, msg.target, Elimination(ctx.sender, msg.reason, env.height,
                                                    (ctx.sender,)))
    env.flush()


def handle_vote_eliminate(ctx: TxContext, msg: VoteEliminate) -> None:
    env = _env(ctx)
    _director(env, ctx.sender, "vote on an elimination")
    e = _open_elimination(env, msg.target)
    if e is None:
        raise fail(f"no elimination of {msg.target.hex()} is open (proposals last "
                   f"{env.params.poca_eliminate_window} blocks)")
    if ctx.sender in e.voters:
        raise fail(f"{ctx.sender.hex()} already voted to eliminate {msg.target.hex()}")
    env.emit("poca_vote_eliminate", target=msg.target.hex(), voter=ctx.sender.hex())
    _tally_elimination(env, msg.target, replace(e, voters=(*e.voters, ctx.sender)))
    env.flush()


def handle_approve(ctx: TxContext, msg: ApproveCandidate) -> None:
    env = _env(ctx)
    if env.params.poca_signer_admission != ADMISSION_APPROVAL:
        raise fail("signer admission is open: candidates need no approval")
    _director(env, ctx.sender, "approve a candidate")
    c = env.candidate(msg.candidate)
    if c.approved:
        raise fail(f"candidate {msg.candidate.hex()} is already approved")
    key = APPROVAL_PREFIX + msg.candidate
    raw = env.store.get(key)
    voters = Approval.decode(raw).voters if raw is not None else ()
    if ctx.sender in voters:
        raise fail(f"{ctx.sender.hex()} already approved {msg.candidate.hex()}")
    voters = (*voters, ctx.sender)
    yes, total = _power_of(env, voters)
    if yes * 2 > total:
        env.delete(key)
        env.put_provider(msg.candidate, replace(c, approved=True))
    else:
        env.set(key, Approval(voters).encode())
    env.flush()
    env.emit("poca_approve", candidate=msg.candidate.hex(), voter=ctx.sender.hex(),
             yes_power=yes, total_power=total, approved=str(yes * 2 > total).lower())


def handle_attest(ctx: TxContext, msg: Attest) -> None:
    env = _env(ctx)
    c = env.candidate(ctx.sender)
    interval = max(1, env.params.poca_attest_interval)
    if not env.height - interval < msg.height <= env.height:
        raise fail(f"attestation of height {msg.height} is not recent: heights "
                   f"{max(0, env.height - interval + 1)}..{env.height} are accepted now")
    if not c.registered or c.status == TOMBSTONED:
        raise fail(f"candidate {ctx.sender.hex()} cannot attest "
                   f"({'unregistered' if not c.registered else STATUS[c.status]})")
    if c.last_attest and env.height < c.last_attest + interval:
        raise fail(f"candidate {ctx.sender.hex()} attested at height {c.last_attest}: the "
                   f"next is accepted from height {c.last_attest + interval}")
    epoch = env.epoch
    attests = c.attests + 1 if c.attest_epoch == epoch else 1
    env.put_provider(ctx.sender, replace(c, attest_epoch=epoch, attests=attests,
                                         last_attest=env.height))
    env.flush()
