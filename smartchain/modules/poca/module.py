"""POCA: signers earn their seat by proven competence and holders' votes (Smart Chain §3.3,
Smartshare ch. II §3); docs/poca.md is the operator's account.

- **Candidates** bind a consensus key to an account and lock a self stake; holders delegate
  (shares, so a slash costs O(1) whatever the number of delegators). Stake leaving waits
  ``poca_unbonding_blocks`` in a queue that double-sign evidence still slashes.
- **Every epoch** each candidate is scored from what the chain verified (compute fuel,
  audited storage, uptime); those that qualify are ranked by voting power into directors
  (the BFT set, from h+2), standby signers and standby compute; the rest are ordinary.
- **Every block** the last commit is read: a director missing ``poca_downtime_missed`` of
  the last ``poca_downtime_window`` heights is jailed, slashed and its seat goes to the best
  standby from h+2. Only changed liveness bits are written: an honest director costs reads.
- **Evidence** of a double sign slashes 5 % and tombstones; an **elimination vote** of
  more than 2/3 of director power removes and bars; in ``approval`` admission mode more
  than 1/2 of director power admits a new candidate. Slashed HPC goes to the community pool.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from smartchain.crypto.address import address_of
from smartchain.modules.bank.module import get_account, mint_hpc
from smartchain.modules.poca.handlers import (
    handle_approve,
    handle_attest,
    handle_delegate,
    handle_eliminate,
    handle_register,
    handle_undelegate,
    handle_unjail,
    handle_unregister,
    handle_vote_eliminate,
    validate_amount,
    validate_eliminate,
    validate_register,
)
from smartchain.modules.poca.sets import validator_set_at
from smartchain.modules.poca.state import (
    U32_BE,
    Env,
    community_pool,
    get_candidate,
    get_liveness,
    get_ranking,
    operator_of_key,
    tokens_of,
)
from smartchain.modules.poca.types import (
    ACTIVE,
    ADMISSION_APPROVAL,
    ADMISSION_OPEN,
    CANDIDATE_PREFIX,
    DELEGATION_PREFIX,
    HELD_PREFIX,
    JAILED,
    KEY_PREFIX,
    LIVENESS_PREFIX,
    MARK,
    MODULE_ACCOUNT,
    RANKED_PREFIX,
    TOMBSTONED,
    UNBONDING_COUNT,
    UNBONDING_PREFIX,
    ApproveCandidate,
    Attest,
    Candidate,
    Delegate,
    Delegation,
    Eliminate,
    Liveness,
    Ranking,
    Register,
    Unbonding,
    Undelegate,
    Unjail,
    Unregister,
    VoteEliminate,
)
from smartchain.state.module import BlockInfo, Module, Msg, Query
from smartchain.state.store import Overlay
from smartchain.types.amount import UNITS_PER_HPC
from smartchain.types.consensus import DuplicateVoteEvidence
from smartchain.types.tx import Event

__all__ = ["Poca"]


# --- block hooks -------------------------------------------------------------------------------


def _punish_double_sign(env: Env, ev: DuplicateVoteEvidence) -> None:
    """Slash and tombstone the signer of ``ev``: ignored when its key did not sign that
    height (the node refuses such blocks), when it is already tombstoned, or when the
    offence is older than the unbonding period (its stake may have left)."""
    vote = ev.vote_a
    try:
        valset = validator_set_at(env.store, vote.height)
    except LookupError:
        return
    if valset.index_of(vote.validator) is None:
        return
    if vote.height + env.params.poca_unbonding_blocks < env.height:
        return
    op = operator_of_key(env.store, vote.validator)
    c = env.provider(op) if op is not None else None
    if op is None or c is None or c.status == TOMBSTONED:
        return
    env.slash(op, env.params.poca_double_sign_slash_bps, vote.height)
    env.put_provider(op, replace(env.candidate(op), status=TOMBSTONED))
    env.delete(RANKED_PREFIX + op)
    env.delete(LIVENESS_PREFIX + c.pubkey)
    env.leave_ranking(op)
    env.emit("poca_tombstone", operator=op.hex(), height=vote.height)


def _jail(env: Env, op: bytes, c: Candidate) -> None:
    p = env.params
    env.slash(op, p.poca_downtime_slash_bps)
    env.put_provider(op, replace(env.candidate(op), status=JAILED,
                                 jailed_until=env.height + p.poca_jail_blocks))
    env.delete(LIVENESS_PREFIX + c.pubkey)
    env.leave_ranking(op)
    env.emit("poca_jail", operator=op.hex(), until=env.height + p.poca_jail_blocks)


def _fit(live: Liveness, window: int) -> Liveness:
    """``live`` as a record of ``window`` slots: governance may have changed the window
    since it was written (a wider one would index past its bitmap, a narrower one would keep
    misses in slots no height clears). The misses in slots that still exist are kept."""
    size = (window + 7) // 8
    spare = size * 8 - window  # unused high bits of the last byte
    if len(live.bitmap) == size and not (spare and live.bitmap[-1] >> (8 - spare)):
        return live
    bits = int.from_bytes(live.bitmap[:size], "little") & ((1 << window) - 1)
    return Liveness(live.since, bits.to_bytes(size, "little"), bits.bit_count())


def _track_liveness(env: Env) -> None:
    """Record who signed the previous height (``last_commit``) and jail a director that
    missed too many. Costs a read per director; a write only when its bit changes."""
    commit, h = env.block.last_commit, env.height - 1
    if h < 1 or commit.height != h or not commit.signatures:
        return  # the first block, or a chain of one signer building its own (no commits)
    valset = validator_set_at(env.store, h)
    previous = validator_set_at(env.store, h - 1) if valset.start_height == h > 1 else None
    signed = {s.validator_index for s in commit.signatures}
    window = max(1, env.params.poca_downtime_window)
    slot = h % window
    for i, v in enumerate(valset.validators):
        key = LIVENESS_PREFIX + v.public_key
        live = get_liveness(env.store, v.public_key)
        if live is not None and previous is not None \
                and previous.index_of(v.public_key) is None:
            env.delete(key)  # back in the set after a gap: its old misses do not count
            live = None
        missed = i not in signed
        if live is None:
            if not missed:
                continue
            live = Liveness(h, bytes((window + 7) // 8), 0)
        fitted = _fit(live, window)
        if fitted is not live:
            live = fitted
            env.set(key, live.encode())
        was = bool(live.bitmap[slot // 8] >> (slot % 8) & 1)
        if was == missed:
            continue
        bitmap = bytearray(live.bitmap)
        bitmap[slot // 8] ^= 1 << (slot % 8)
        live = Liveness(live.since, bytes(bitmap), live.missed + (1 if missed else -1))
        env.set(key, live.encode())
        if missed and live.missed >= env.params.poca_downtime_missed:
            op = operator_of_key(env.store, v.public_key)
            c = env.provider(op) if op is not None else None
            if op is not None and c is not None and c.status == ACTIVE:
                _jail(env, op, c)


# --- genesis --------------------------------------------------------------------------------


def _init_genesis(store: Overlay, genesis: Any) -> None:
    """Genesis validators become candidates whose stake (``power`` HPC) is minted locked,
    ranked at once: the top ``poca_max_directors`` sign from height 1."""
    params = genesis.params
    if params.poca_signer_admission not in (ADMISSION_OPEN, ADMISSION_APPROVAL):
        raise ValueError(f"poca_signer_admission must be {ADMISSION_OPEN} (open) or "
                         f"{ADMISSION_APPROVAL} (approval), not {params.poca_signer_admission}")
    block = BlockInfo(genesis.chain_id, 0, genesis.time_ms, bytes(20), params)
    env = Env(store, block, None, [])
    total = 0
    for v in genesis.validators:
        op = address_of(v.public_key)
        if env.provider(op) is not None:
            raise ValueError(f"genesis validator {v.public_key.hex()} is listed twice")
        stake = v.power * UNITS_PER_HPC
        total += stake
        env.put_provider(op, Candidate(v.public_key, v.name, stake, 0, 0, ACTIVE, 0, 0, True,
                                       True, True, 0, 0, 0, 0, 0, 0, 0))
        store.set(KEY_PREFIX + v.public_key, op)
        store.set(RANKED_PREFIX + op, MARK)
    mint_hpc(store, MODULE_ACCOUNT, total)
    ranking = env.rank(0, 0)
    env.flush()
    env.put_ranking(ranking)
    env.schedule(list(ranking.directors), start=1)


# --- invariants -----------------------------------------------------------------------------


def _money_violations(view: Any) -> list[str]:
    locked = 0
    shares: dict[bytes, int] = {}
    wrong: list[str] = []
    holding = set()
    for key, raw in view.iter_prefix(CANDIDATE_PREFIX):
        c = Candidate.decode(raw)
        op = key[len(CANDIDATE_PREFIX):]
        locked += tokens_of(c)
        if tokens_of(c):
            holding.add(op)
        shares[op] = c.shares
        if operator_of_key(view, c.pubkey) != op:
            wrong.append(f"candidate {op.hex()}'s key is not bound to it")
    if holding != {k[len(HELD_PREFIX):] for k, _v in view.iter_prefix(HELD_PREFIX)}:
        wrong.append("the index of candidates holding HPC is not the candidates holding HPC")
    held: dict[bytes, int] = {}
    for key, raw in view.iter_prefix(DELEGATION_PREFIX):
        op = key[len(DELEGATION_PREFIX) + 20:]
        held[op] = held.get(op, 0) + Delegation.decode(raw).shares
    wrong += [f"candidate {op.hex()} has {shares.get(op, 0)} shares, delegators hold "
              f"{held.get(op, 0)}" for op in sorted(shares.keys() | held.keys())
              if shares.get(op, 0) != held.get(op, 0)]
    unbonding = 0
    waiting: dict[bytes, int] = {}
    for key, raw in view.iter_prefix(UNBONDING_PREFIX):
        entry = Unbonding.decode(raw)
        unbonding += entry.amount
        pair = key[len(UNBONDING_PREFIX):-8] + entry.owner
        waiting[pair] = waiting.get(pair, 0) + 1
    counted = {key[len(UNBONDING_COUNT):]: U32_BE.unpack(raw)[0]
               for key, raw in view.iter_prefix(UNBONDING_COUNT)}
    if counted != waiting:
        wrong.append("the unbonding counts per (candidate, owner) are not the entries waiting")
    pool = community_pool(view)
    balance = get_account(view, MODULE_ACCOUNT).balance
    if locked + unbonding + pool != balance:
        wrong.append(f"stake and delegations {locked} + unbonding {unbonding} + community "
                     f"pool {pool} != the module's balance {balance}")
    return wrong


def _set_violations(view: Any) -> list[str]:
    r: Ranking = get_ranking(view)
    if not r.directors:
        return []
    wrong = []
    members = r.directors + r.standbys + r.compute
    if len(set(members)) != len(members):
        wrong.append("a candidate holds two tiers")
    keys = []
    for op in r.directors:
        c = get_candidate(view, op)
        if c is None:
            return [f"director {op.hex()} is not a candidate"]
        keys.append(c.pubkey)
    last = validator_set_at(view, 1 << 62)
    if sorted(v.public_key for v in last.validators) != sorted(keys):
        wrong.append("the last scheduled signer set is not the ranking's directors")
    return wrong


class Poca(Module):
    name = "poca"

    def messages(self) -> dict[str, Msg]:
        return {
            "poca/register": Msg(Register, handle_register, validate_register,
                                 spend=lambda m: m.stake),
            "poca/delegate": Msg(Delegate, handle_delegate, validate_amount,
                                 spend=lambda m: m.amount),
            "poca/undelegate": Msg(Undelegate, handle_undelegate, validate_amount),
            "poca/unregister": Msg(Unregister, handle_unregister),
            "poca/unjail": Msg(Unjail, handle_unjail),
            "poca/eliminate": Msg(Eliminate, handle_eliminate, validate_eliminate),
            "poca/vote_eliminate": Msg(VoteEliminate, handle_vote_eliminate),
            "poca/approve": Msg(ApproveCandidate, handle_approve),
            "poca/attest": Msg(Attest, handle_attest),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "ranking": lambda view, args: get_ranking(view),
            "pool": lambda view, args: community_pool(view),
        }

    def init_genesis(self, store: Overlay, genesis: Any) -> None:
        _init_genesis(store, genesis)

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        """Punish evidence, pay matured unbonding (after: evidence accepted in its last
        block still slashes the entries completing in it), punish downtime, and at an
        epoch's last height rank everyone for the next (its set from h+2)."""
        events: list[Event] = []
        env = Env(store, block, None, events)
        for ev in block.evidence:  # first: it may still slash stake completing now
            _punish_double_sign(env, ev)
        env.complete_unbonding()
        _track_liveness(env)
        env.flush()
        if (block.height + 1) % max(1, block.params.poca_epoch_blocks) == 0:
            env.run_epoch()
        env.flush()
        return events

    def invariants(self, view: Any) -> list[str]:
        return _money_violations(view) + _set_violations(view)

