"""The storage message handlers."""

from __future__ import annotations

from dataclasses import replace

from smartchain.crypto.address import address_of
from smartchain.crypto.keys import verify
from smartchain.crypto.merkle import leaf_hash, verify_proof
from smartchain.modules.bank.module import get_account
from smartchain.modules.rewards.state import record_work
from smartchain.modules.storage.keys import (
    _challenge_key,
    _claimed_key,
    _column_index,
    _column_prefix,
    _hold_key,
    deal_key,
    get_deal,
    healthy_count,
    required_collateral,
)
from smartchain.modules.storage.state import (
    _accepting_provider,
    _close_deal,
    _Env,
    _fail,
    _keys,
    _pay_bounty,
    _pay_column,
    _release,
    _take,
    _with_column,
)
from smartchain.modules.storage.types import (
    ACTIVE,
    CANCELLED,
    DEAL_STATUS,
    HASH_GAS,
    INITIAL_REPUTATION,
    LEAF_SIZE,
    LIVE_PREFIX,
    MARK,
    MODULE_ACCOUNT,
    OWNER_PREFIX,
    SIGNATURE_GAS,
    AuditProof,
    CancelDeal,
    Challenge,
    ClaimBandwidth,
    Column,
    CreateDeal,
    Deal,
    DeregisterProvider,
    Prove,
    Receipt,
    RegisterProvider,
    Repair,
    StorageProvider,
    bandwidth_amount,
    climb,
    column_bytes,
    deal_column_bytes,
    deal_cost,
    file_id_of,
    leaf_count,
    piece_length,
    receipt_bytes,
)
from smartchain.state.emission import MAX_SUPPLY
from smartchain.state.module import TxContext
from smartchain.state.params import Params

# --- handlers ----------------------------------------------------------------------------------


def _env(ctx: TxContext) -> _Env:
    return _Env(ctx.store, ctx.block, ctx.gas, ctx.events)


def _handle_register(ctx: TxContext, msg: RegisterProvider) -> None:
    env = _env(ctx)
    params = env.params
    if address_of(msg.pubkey) != ctx.sender:
        raise _fail("pubkey is not the sender's public key")
    if msg.price < params.storage_min_price:
        raise _fail(f"price {msg.price} below the minimum {params.storage_min_price}")
    p = env.provider(ctx.sender)
    if p is None:
        p = StorageProvider(msg.pubkey, msg.capacity, 0, msg.price, msg.bandwidth_price,
                            msg.collateral, INITIAL_REPUTATION, msg.p2p, True, 0)
    else:
        if msg.capacity < p.used:
            raise _fail(f"capacity {msg.capacity} below the {p.used} bytes already held")
        p = replace(p, capacity=msg.capacity, price=msg.price,
                    bandwidth_price=msg.bandwidth_price, collateral=p.collateral + msg.collateral,
                    p2p=msg.p2p, active=True)
    need = required_collateral(params, p.used)
    if p.collateral < need:
        raise _fail(f"collateral {p.collateral} below the {need} required (minimum "
                    f"{params.storage_min_collateral}, {params.storage_collateral_per_gib} per "
                    f"GiB of the {p.used} bytes held)")
    env.move(ctx.sender, MODULE_ACCOUNT, msg.collateral)
    env.put_provider(ctx.sender, p)
    env.flush()
    env.emit("storage_provider_register", address=ctx.sender.hex(), capacity=p.capacity,
             price=p.price, collateral=p.collateral)


def _handle_deregister(ctx: TxContext, msg: DeregisterProvider) -> None:
    env = _env(ctx)
    p = env.provider(ctx.sender)
    if p is None or (not p.active and p.collateral == 0):
        raise _fail("not a registered storage provider")
    if p.used:
        raise _fail(f"provider still holds {p.used} bytes of live deals")
    env.move(MODULE_ACCOUNT, ctx.sender, p.collateral)
    env.put_provider(ctx.sender, replace(p, collateral=0, active=False))
    env.flush()
    env.emit("storage_provider_deregister", address=ctx.sender.hex(), collateral=p.collateral)


def _handle_create(ctx: TxContext, msg: CreateDeal) -> None:
    env = _env(ctx)
    params = env.params
    if msg.code_n > params.storage_max_columns:
        raise _fail(f"code_n {msg.code_n} above the limit {params.storage_max_columns}")
    if msg.segments > params.storage_max_segments:
        raise _fail(f"{msg.segments} segments, the limit is {params.storage_max_segments}")
    file_id = file_id_of(ctx.sender, msg.salt)
    if env.store.get(deal_key(file_id)) is not None:
        raise _fail(f"a deal for file {file_id.hex()} exists: choose another salt")
    nbytes = column_bytes(msg.segments, msg.piece_size, msg.last_piece_size)
    columns = []
    for col in msg.columns:
        p = _accepting_provider(env, file_id, col, nbytes, msg.segments, 0, ctx.sender)
        columns.append(Column(col.provider, col.frag_index, col.root, True, p.price))
    escrow, budget = deal_cost([c.price for c in columns], nbytes, msg.epochs,
                               params.storage_repair_bps)
    if escrow + budget > MAX_SUPPLY:
        raise _fail("the deal costs more than the HPC supply cap")
    if msg.max_cost and escrow + budget > msg.max_cost:
        raise _fail(f"the deal costs {escrow + budget}, above max_cost {msg.max_cost}")
    env.move(ctx.sender, MODULE_ACCOUNT, escrow + budget)
    start = env.epoch + 1
    deal = Deal(ctx.sender, msg.salt, msg.size, msg.k, msg.code_n, msg.segments, msg.piece_size,
                msg.last_piece_size, start, start + msg.epochs, msg.repair_threshold, escrow,
                budget, tuple(columns), ACTIVE)
    for c in columns:
        _take(env, c.provider, nbytes)
        env.set(_hold_key(c.provider, file_id, c.frag_index), MARK)
    env.put_deal(file_id, deal)
    env.set(OWNER_PREFIX + ctx.sender + file_id, MARK)
    env.set(LIVE_PREFIX + file_id, MARK)
    env.flush()
    env.emit("storage_deal_create", file_id=file_id.hex(), owner=ctx.sender.hex(),
             columns=len(columns), column_bytes=nbytes, escrow=escrow, repair_budget=budget,
             start_epoch=start, end_epoch=deal.end_epoch)


def _active_deal(env: _Env, file_id: bytes, cache: dict[bytes, Deal] | None = None) -> Deal:
    deal = cache.get(file_id) if cache is not None else None
    if deal is None:
        deal = get_deal(env.store, file_id)
    if deal is None:
        raise _fail(f"no deal {file_id.hex()}")
    if deal.status != ACTIVE:
        raise _fail(f"deal {file_id.hex()} is {DEAL_STATUS[deal.status]}")
    return deal


def _check_proof(env: _Env, deal: Deal, column: Column, proof: AuditProof,
                 challenge: Challenge) -> None:
    """The chunk is the challenged leaf of the challenged piece of this column."""
    where = f"segment {proof.segment} of column {proof.frag_index}"
    size = piece_length(deal, proof.segment)
    leaves = leaf_count(size)
    pp, cp = proof.piece_path, proof.column_path
    if (pp.index, pp.size) != (challenge.leaf, leaves):
        raise _fail(f"{where}: leaf {challenge.leaf} of {leaves} was challenged, the proof is "
                    f"for leaf {pp.index} of {pp.size}")
    if (cp.index, cp.size) != (proof.segment, deal.segments):
        raise _fail(f"{where}: the column path is not for piece {proof.segment} of "
                    f"{deal.segments}")
    want = min(LEAF_SIZE, size - LEAF_SIZE * challenge.leaf)
    if len(proof.chunk) != want:
        raise _fail(f"{where}: the chunk is {len(proof.chunk)} bytes, leaf {challenge.leaf} "
                    f"has {want}")
    env.charge(HASH_GAS * (1 + len(pp.path) + len(cp.path)))
    piece_root = climb(leaf_hash(proof.chunk), pp)
    if piece_root is None or not verify_proof(column.root, piece_root, cp):
        raise _fail(f"{where}: the proof does not lead to the column root")


def _handle_prove(ctx: TxContext, msg: Prove) -> None:
    env = _env(ctx)
    deals: dict[bytes, Deal] = {}
    touched: list[tuple[bytes, int]] = []
    for proof in msg.proofs:
        deal = deals[proof.file_id] = _active_deal(env, proof.file_id, deals)
        i = _column_index(deal, proof.frag_index)
        if i is None or deal.columns[i].provider != ctx.sender:
            raise _fail(f"the sender holds no column {proof.frag_index} of deal "
                        f"{proof.file_id.hex()}")
        key = _challenge_key(ctx.sender, proof.file_id, proof.frag_index, proof.segment,
                             proof.piece_path.index)
        raw = env.store.get(key)
        if raw is None:
            raise _fail(f"no open challenge for leaf {proof.piece_path.index} of segment "
                        f"{proof.segment} of column {proof.frag_index} of deal "
                        f"{proof.file_id.hex()}")
        challenge = Challenge.decode(raw)
        if ctx.block.height > challenge.deadline:
            raise _fail(f"the challenge closed at height {challenge.deadline}")
        _check_proof(env, deal, deal.columns[i], proof, challenge)
        env.delete(key)
        if (proof.file_id, i) not in touched:
            touched.append((proof.file_id, i))
    for file_id, i in touched:
        c = deals[file_id].columns[i]
        if next(env.store.iter_prefix(_column_prefix(c.provider, file_id, c.frag_index)),
                None) is None:
            record_work(env, c.provider, storage=deal_column_bytes(deals[file_id]))
            deals[file_id] = _pay_bounty(env, file_id,
                                         _pay_column(env, file_id, deals[file_id], i), i)
            env.put_deal(file_id, deals[file_id])
    env.flush()
    env.emit("storage_prove", address=ctx.sender.hex(), proofs=len(msg.proofs))


def _handle_repair(ctx: TxContext, msg: Repair) -> None:
    env = _env(ctx)
    deal = _active_deal(env, msg.file_id)
    i = _column_index(deal, msg.frag_index)
    if i is None:
        raise _fail(f"deal {msg.file_id.hex()} has no column {msg.frag_index}")
    old = deal.columns[i]
    if old.healthy:
        raise _fail(f"column {msg.frag_index} is healthy")
    if healthy_count(deal) >= deal.repair_threshold:
        raise _fail(f"{healthy_count(deal)} healthy columns, repairs open below "
                    f"{deal.repair_threshold}")
    new = msg.new
    if (new.frag_index, new.root) != (old.frag_index, old.root):
        raise _fail("the new column must have the old column's fragment index and root")
    # Back onto the provider that lost it is allowed (it re-stores and re-signs the column;
    # with no spare provider that is the only way back to n); onto another column's is not.
    if any(c.provider == new.provider for j, c in enumerate(deal.columns) if j != i):
        raise _fail(f"provider {new.provider.hex()} already holds a column of this deal")
    nbytes = deal_column_bytes(deal)
    _release(env, old.provider, nbytes)  # first: the lost provider may take it back
    env.delete(_hold_key(old.provider, msg.file_id, old.frag_index))
    p = _accepting_provider(env, msg.file_id, new, nbytes, deal.segments, old.round + 1,
                            ctx.sender)
    _take(env, new.provider, nbytes)
    env.set(_hold_key(new.provider, msg.file_id, new.frag_index), MARK)
    # The reward leaves the budget now but is paid only once the new column passes an
    # audit: a provider that signed for data it never got earns its accomplice nothing.
    reward = min(deal.repair_budget, -(-deal.repair_budget // len(deal.columns)))
    column = Column(new.provider, new.frag_index, new.root, True, min(old.price, p.price),
                    old.round + 1, ctx.sender, reward)
    deal = replace(_with_column(deal, i, column), repair_budget=deal.repair_budget - reward)
    env.put_deal(msg.file_id, deal)
    env.flush()
    env.emit("storage_repair", file_id=msg.file_id.hex(), frag_index=msg.frag_index,
             old=old.provider.hex(), new=new.provider.hex(), repairer=ctx.sender.hex(),
             reward=reward, round=old.round + 1)


def _handle_cancel(ctx: TxContext, msg: CancelDeal) -> None:
    """Stop a deal: the current epoch is paid to the columns still owed it (healthy, with
    challenges open), the rest goes back to the owner."""
    env = _env(ctx)
    deal = _active_deal(env, msg.file_id)
    if deal.owner != ctx.sender:
        raise _fail("only the owner can cancel a deal")
    # The owner simulates a cancel moments before a block runs it: what it costs must not
    # depend on whether this epoch's audit has opened meanwhile. So the most it can write
    # is charged, and the work below is not charged again.
    env.charge(cancel_gas(env.params, len(deal.columns)))
    meter, env.gas = env.gas, None
    try:
        for i, c in enumerate(deal.columns):
            keys = _keys(env.store, _column_prefix(c.provider, msg.file_id, c.frag_index))
            for key in keys:
                env.delete(key)
            if keys:
                deal = _pay_column(env, msg.file_id, deal, i)
        deal = _close_deal(env, msg.file_id, deal, CANCELLED)
        env.put_deal(msg.file_id, replace(deal, end_epoch=min(deal.end_epoch, env.epoch + 1)))
        env.flush()
    finally:
        env.gas = meter


def cancel_gas(params: Params, columns: int) -> int:
    """The most cancelling a deal of ``columns`` columns writes: per column its open
    challenges, its payment (two balances), its hold and its provider's record; then the
    deal's live mark, the owner's refund (two balances) and the deal itself."""
    per_column = max(1, params.storage_audit_segments) + 4
    return (columns * per_column + 4) * params.gas_per_write


def _claim_one(env: _Env, sender: bytes, p: StorageProvider, r: Receipt) -> int:
    """Pay one receipt; returns the amount (0 when the client could not pay)."""
    height, ttl = env.block.height, env.params.storage_receipt_ttl
    if r.provider != sender:
        raise _fail("a receipt names another provider")
    if not r.height <= height < r.height + ttl:
        raise _fail(f"a receipt of height {r.height} is claimable in heights "
                    f"{r.height}..{r.height + ttl - 1}")
    rid = receipt_bytes(env.block.chain_id, r)
    key = _claimed_key(r.height, rid)
    if env.store.get(key) is not None:
        raise _fail(f"receipt {rid.hex()} was already claimed")
    want = bandwidth_amount(r.bytes, p.bandwidth_price)
    if r.amount != want:
        raise _fail(f"receipt {rid.hex()} asks {r.amount}, {r.bytes} bytes cost {want}")
    env.charge(SIGNATURE_GAS)
    if not verify(r.client, rid, r.signature):
        raise _fail(f"receipt {rid.hex()} is not signed by its client")
    client = address_of(r.client)
    if get_account(env.store, client).balance < r.amount:
        env.emit("storage_receipt_unpaid", client=client.hex(), receipt=rid.hex(),
                 amount=r.amount)
        return 0
    env.move(client, sender, r.amount)
    env.set(key, MARK)
    record_work(env, sender, bandwidth=r.bytes)  # the epoch's rewards (docs/rewards.md)
    return r.amount


def _handle_claim(ctx: TxContext, msg: ClaimBandwidth) -> None:
    env = _env(ctx)
    p = env.provider(ctx.sender)
    if p is None:
        raise _fail("not a registered storage provider")
    total = sum(_claim_one(env, ctx.sender, p, r) for r in msg.receipts)
    env.emit("storage_bandwidth_claim", address=ctx.sender.hex(), receipts=len(msg.receipts),
             amount=total)
