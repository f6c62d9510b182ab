"""Audit epochs: opening challenges, settling the epoch that ended, opening repairs."""

from __future__ import annotations

from dataclasses import replace

from smartchain.modules.rewards.state import record_work
from smartchain.modules.storage.keys import (
    _challenge_key,
    _column_index,
    _split_challenge,
    column_collateral,
    get_deal,
    required_collateral,
)
from smartchain.modules.storage.state import (
    _close_deal,
    _Env,
    _keys,
    _with_column,
)
from smartchain.modules.storage.types import (
    _U64,
    ACTIVE,
    BPS,
    CHALLENGE_PREFIX,
    CLAIMED_PREFIX,
    ENDED,
    LIVE_PREFIX,
    REPUTATION_SLASH,
    Challenge,
    Deal,
    audit_picks,
    deal_column_bytes,
)

# --- epochs ------------------------------------------------------------------------------------


def _slash_column(env: _Env, file_id: bytes, frag: int) -> None:
    """A challenge of the column was left open: unhealthy, and the collateral the column's
    bytes call for (``storage_slash_bps`` of it) goes into the repair budget, with the reward
    held for the repair that placed it (that repair was not real)."""
    deal = get_deal(env.store, file_id)
    assert deal is not None, "a challenge names no deal"
    i = _column_index(deal, frag)
    assert i is not None, "a challenge names no column"
    c = deal.columns[i]
    p = env.need_provider(c.provider)
    share = column_collateral(env.params, deal_column_bytes(deal))
    amount = min(p.collateral, share * env.params.storage_slash_bps // BPS)
    collateral = p.collateral - amount
    env.put_provider(c.provider, replace(
        p, collateral=collateral, reputation=max(0, p.reputation - REPUTATION_SLASH),
        misses=p.misses + 1,
        active=p.active and collateral >= required_collateral(env.params, p.used)))
    env.put_deal(file_id, replace(_with_column(deal, i, replace(c, healthy=False, bounty=0)),
                                  repair_budget=deal.repair_budget + amount + c.bounty))
    record_work(env, c.provider, failed=True)  # no rewards this epoch (docs/rewards.md)
    env.emit("storage_slash", file_id=file_id.hex(), frag_index=frag,
             provider=c.provider.hex(), amount=amount, bounty_returned=c.bounty)


def _settle_epoch(env: _Env) -> None:
    """Every challenge still open missed its deadline: one slash per column."""
    missed: list[tuple[bytes, int]] = []
    for key in _keys(env.store, CHALLENGE_PREFIX):
        _provider, file_id, frag, _segment = _split_challenge(key)
        if not missed or missed[-1] != (file_id, frag):
            missed.append((file_id, frag))
        env.delete(key)
    for file_id, frag in missed:
        _slash_column(env, file_id, frag)


def _open_challenges(env: _Env, file_id: bytes, deal: Deal, deadline: int) -> None:
    count = max(1, env.params.storage_audit_segments)  # a column is paid once proven
    for c in deal.columns:
        if not c.healthy:
            continue
        for segment, leaf in audit_picks(env.block.beacon, file_id, c.frag_index, deal, count):
            env.set(_challenge_key(c.provider, file_id, c.frag_index, segment, leaf),
                    Challenge(leaf, deadline).encode())


def _run_epoch(env: _Env) -> None:
    epoch = env.epoch
    _settle_epoch(env)
    blocks = max(1, env.params.storage_epoch_blocks)
    deadline = env.block.height + min(env.params.storage_audit_window, blocks - 1)
    for key in _keys(env.store, LIVE_PREFIX):
        file_id = key[len(LIVE_PREFIX):]
        deal = get_deal(env.store, file_id)
        assert deal is not None and deal.status == ACTIVE, "a live key names no active deal"
        if deal.end_epoch <= epoch:
            env.put_deal(file_id, _close_deal(env, file_id, deal, ENDED))
        elif deal.start_epoch <= epoch:
            _open_challenges(env, file_id, deal, deadline)
    env.flush()


def _prune_claims(env: _Env) -> None:
    """Forget claimed receipts that are past their claim window anyway."""
    horizon = env.block.height - env.params.storage_receipt_ttl  # height <= horizon: expired
    due = []
    for key, _ in env.store.iter_prefix(CLAIMED_PREFIX):  # in height order: stop at the first
        if _U64.unpack_from(key, len(CLAIMED_PREFIX))[0] > horizon:  # one still claimable
            break
        due.append(key)
    for key in due:
        env.delete(key)
