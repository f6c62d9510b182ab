"""Storage deals on chain: providers, deals over erasure-coded columns, audits by challenge,
payment from escrow, slashing, repair and bandwidth receipts (Smart Chain 3.2.2; Filecoin,
Storj, Sia).

Why it is shaped this way:

- **The chain never sees a byte of the file.** A client encrypts and erasure-codes off
  chain (``smartchain/storage``, pyeclib); the chain keeps, per *column* (one fragment
  index across every segment, held by one provider), a Merkle root over the pieces' roots.
  That is enough to audit: a challenged provider answers with one 1 KiB chunk and two
  Merkle paths (chunk -> piece root -> column root), a few hundred bytes whatever the file
  size. The tree shapes are ``crypto.merkle``'s, so the client, the provider and the chain
  build the same roots from the same pieces without sharing code beyond ``crypto``.
- **A provider signs what it holds, once, for whoever uploaded it.** A deal names each
  column's provider, root and a signature of ``acceptance_bytes`` (chain id, file id,
  fragment index, root, bytes, segments, placement round, the height it was signed at, the
  uploader's address) by the provider's registered key: nobody can be made responsible
  for data it never received, and a provider cannot deny having accepted it. The round (0
  in the deal, one more per repair of the column) and the height (usable for
  ``storage_accept_ttl`` blocks) make every acceptance good once, soon; the uploader must
  be the transaction's sender, so an acceptance published in a deal or repair cannot be
  replayed by anyone to earn a repair reward. The registered key comes in the registration
  payload (the handler sees only the sender's address) and must hash to the sender's
  address.
- **Collateral follows the bytes.** A provider must lock ``storage_collateral_per_gib`` for
  every GiB it holds (at least ``storage_min_collateral``), checked whenever it takes a
  column (deal or repair). A missed audit costs ``storage_slash_bps`` of the collateral
  that column's bytes call for: slashing is proportional to the data lost.
- **Money stays in the bank.** Collaterals, escrows and repair budgets are HPC in one
  module account (``MODULE_ACCOUNT``), so the bank's supply check holds untouched: its
  balance is the sum of live collaterals, escrows and repair budgets. Slashed collateral is
  not burned: it moves into the failing deal's repair budget, pays whoever repairs the
  column, and what is left returns to the owner when the deal ends.
- **Escrow covers every payment it promises.** A deal locks ``epochs x`` each column's
  epoch fee, ``ceil(price x column_bytes / GiB)`` (rounded up per epoch, so the sum of the
  payments never exceeds the escrow), plus ``storage_repair_bps`` of that as repair budget.
  A repaired column keeps the price the owner agreed to (or the new provider's, if lower):
  the escrow cannot be topped up, so the deal's price is fixed at creation.
- **Epochs, from the chain's own randomness.** At the first block of an epoch,
  ``begin_block`` (1) settles the previous epoch: a column with a challenge left open is
  marked unhealthy and its provider loses ``storage_slash_bps`` of its collateral and
  reputation; (2) ends the deals whose last epoch is over and refunds what is left; (3)
  opens challenges for every healthy column: distinct segments and a leaf in each, drawn
  from ``BlockInfo.beacon`` (the block's ``last_commit_hash``), answerable until
  ``storage_audit_window`` blocks after the epoch start. When every challenge of a column
  is answered the provider is paid the column's epoch fee at once. Unhealthy columns are
  neither challenged nor paid; once a deal has fewer healthy columns than its
  ``repair_threshold`` anyone may rebuild one onto a new provider and earn
  ``ceil(repair_budget / n)``: a share of what is left, refilled by every slash. The reward
  is held in the column and paid when it first passes all its challenges of an epoch; if
  it misses them instead, the reward goes back to the budget. Each epoch challenges
  ``storage_audit_segments`` distinct leaves per column (on distinct segments first): see
  docs/storage.md for the detection odds and the proof bytes this costs.
- **Bandwidth is paid by receipts.** A client signs a receipt for each batch of bytes a
  provider served; the provider claims batches of them within ``storage_receipt_ttl``
  blocks. Claimed receipts are remembered under keys ordered by the receipt's height, so
  ``end_block`` forgets them exactly when they could no longer be claimed anyway.
- **Determinism.** Integers only; deals, columns and challenges are visited in state-key
  order; randomness only from the beacon.

Epoch work in ``begin_block`` (settling, ending, opening challenges) is not metered: the
deals that cause it paid for their columns, and it is proportional to the columns stored.
Signature checks and proof hashing in transactions are metered (``SIGNATURE_GAS``,
``HASH_GAS``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from smartchain.crypto.address import address_of, from_bech32
from smartchain.crypto.keys import verify
from smartchain.crypto.merkle import leaf_hash, verify_proof
from smartchain.modules.bank.module import get_account
from smartchain.modules.env import ModuleEnv
from smartchain.modules.storage.types import (
    _U32,
    _U64,
    ACTIVE,
    BPS,
    CANCELLED,
    CHALLENGE_PREFIX,
    CLAIMED_PREFIX,
    DEAL_PREFIX,
    DEAL_STATUS,
    ENDED,
    GIB,
    HASH_GAS,
    HOLD_PREFIX,
    INITIAL_REPUTATION,
    LEAF_SIZE,
    LIVE_PREFIX,
    MARK,
    MAX_CODE_N,
    MAX_EPOCHS,
    MAX_P2P,
    MAX_PIECE_SIZE,
    MAX_PROOFS,
    MAX_RECEIPTS,
    MAX_REPUTATION,
    MODULE_ACCOUNT,
    OWNER_PREFIX,
    PROVIDER_PREFIX,
    REPUTATION_GAIN,
    REPUTATION_SLASH,
    SIGNATURE_GAS,
    AuditProof,
    CancelDeal,
    Challenge,
    ClaimBandwidth,
    Column,
    ColumnRef,
    CreateDeal,
    Deal,
    DealView,
    DeregisterProvider,
    NewColumn,
    OpenChallenge,
    Prove,
    ProviderView,
    Receipt,
    RegisterProvider,
    Repair,
    StorageProvider,
    acceptance_bytes,
    audit_picks,
    bandwidth_amount,
    climb,
    column_bytes,
    deal_column_bytes,
    deal_cost,
    epoch_fee,
    epoch_of,
    file_id_of,
    leaf_count,
    piece_length,
    receipt_bytes,
)
from smartchain.state.emission import MAX_SUPPLY
from smartchain.state.module import BlockInfo, Module, Msg, Query, TxContext
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Event


def column_collateral(params: Params, nbytes: int) -> int:
    """The collateral ``nbytes`` of columns call for (rounded up), before the minimum."""
    return -(-nbytes * params.storage_collateral_per_gib // GIB)


def required_collateral(params: Params, nbytes: int) -> int:
    """What a provider holding ``nbytes`` must have locked: per GiB, at least the minimum."""
    return max(params.storage_min_collateral, column_collateral(params, nbytes))


# --- keys -----------------------------------------------------------------------------------


def provider_key(address: bytes) -> bytes:
    return PROVIDER_PREFIX + address


def deal_key(file_id: bytes) -> bytes:
    return DEAL_PREFIX + file_id


def _hold_key(provider: bytes, file_id: bytes, frag: int) -> bytes:
    return HOLD_PREFIX + provider + file_id + _U32.pack(frag)


def _column_prefix(provider: bytes, file_id: bytes, frag: int) -> bytes:
    return CHALLENGE_PREFIX + provider + file_id + _U32.pack(frag)


def _challenge_key(provider: bytes, file_id: bytes, frag: int, segment: int,
                   leaf: int) -> bytes:
    return _column_prefix(provider, file_id, frag) + _U32.pack(segment) + _U32.pack(leaf)


def _split_challenge(key: bytes) -> tuple[bytes, bytes, int, int]:
    """(provider, file_id, frag, segment) of a challenge key."""
    rest = key[len(CHALLENGE_PREFIX):]
    return rest[:20], rest[20:52], _U32.unpack_from(rest, 52)[0], _U32.unpack_from(rest, 56)[0]


def _claimed_key(height: int, receipt_id: bytes) -> bytes:
    return CLAIMED_PREFIX + _U64.pack(height) + receipt_id


# --- reads any module or query may use ----------------------------------------------------------


def get_provider(store: Any, address: bytes) -> StorageProvider | None:
    raw = store.get(provider_key(address))
    return StorageProvider.decode(raw) if raw is not None else None


def get_deal(store: Any, file_id: bytes) -> Deal | None:
    raw = store.get(deal_key(file_id))
    return Deal.decode(raw) if raw is not None else None


def healthy_count(deal: Deal) -> int:
    return sum(c.healthy for c in deal.columns)


def needs_repair(deal: Deal) -> bool:
    return deal.status == ACTIVE and healthy_count(deal) < deal.repair_threshold and any(
        not c.healthy for c in deal.columns)


def _column_index(deal: Deal, frag_index: int) -> int | None:
    for i, c in enumerate(deal.columns):
        if c.frag_index == frag_index:
            return i
    return None


# --- the shared state logic ----------------------------------------------------------------------


class _Env(ModuleEnv[StorageProvider]):
    """``ModuleEnv`` over storage providers, and the deal records."""

    __slots__ = ()

    def provider_key(self, address: bytes) -> bytes:
        return provider_key(address)

    def load_provider(self, address: bytes) -> StorageProvider | None:
        return get_provider(self.store, address)

    def need_provider(self, address: bytes) -> StorageProvider:
        p = self.provider(address)
        assert p is not None, "a column names a provider that is not registered"
        return p

    def put_deal(self, file_id: bytes, deal: Deal) -> None:
        self.set(deal_key(file_id), deal.encode())

    @property
    def epoch(self) -> int:
        return epoch_of(self.block.height, self.params.storage_epoch_blocks)


def _fail(message: str) -> TxError:
    return TxError(Code.FAILED, message)


def _keys(store: Any, prefix: bytes) -> list[bytes]:
    """Keys under ``prefix`` in order, read before the caller writes under it."""
    return [k for k, _ in store.iter_prefix(prefix)]


def _take(env: _Env, address: bytes, nbytes: int) -> None:
    p = env.need_provider(address)
    env.put_provider(address, replace(p, used=p.used + nbytes))


def _release(env: _Env, address: bytes, nbytes: int) -> None:
    p = env.need_provider(address)
    env.put_provider(address, replace(p, used=max(0, p.used - nbytes)))


def _accepting_provider(env: _Env, file_id: bytes, col: NewColumn, nbytes: int,
                        segments: int, round: int, uploader: bytes) -> StorageProvider:
    """The column's provider, if it is active, has room, has collateral for the bytes it
    would hold, and signed, recently, this placement round of the column as uploaded by
    ``uploader`` (the sender): an acceptance is good once, for whoever did the upload."""
    p = env.provider(col.provider)
    who = col.provider.hex()
    if p is None or not p.active:
        raise _fail(f"provider {who} is not an active storage provider")
    if p.used + nbytes > p.capacity:
        raise _fail(f"provider {who} has {p.capacity - p.used} bytes free, the column needs "
                    f"{nbytes}")
    need = required_collateral(env.params, p.used + nbytes)
    if p.collateral < need:
        raise _fail(f"provider {who} has collateral {p.collateral}, holding {p.used + nbytes} "
                    f"bytes needs {need}")
    height, ttl = env.block.height, env.params.storage_accept_ttl
    if not col.height <= height <= col.height + ttl:
        raise _fail(f"provider {who}'s acceptance of height {col.height} is usable in heights "
                    f"{col.height}..{col.height + ttl}, not {height}")
    env.charge(SIGNATURE_GAS)
    message = acceptance_bytes(env.block.chain_id, file_id, col.frag_index, col.root, nbytes,
                               segments, round, col.height, uploader)
    if not verify(p.pubkey, message, col.signature):
        raise _fail(f"provider {who} did not sign round {round} of column {col.frag_index} of "
                    f"this deal as uploaded by the sender")
    return p


def _pay_column(env: _Env, file_id: bytes, deal: Deal, i: int) -> Deal:
    """One proven column-epoch: the provider earns its fee and a little reputation."""
    c = deal.columns[i]
    fee = min(deal.escrow, epoch_fee(c.price, deal_column_bytes(deal)))
    env.move(MODULE_ACCOUNT, c.provider, fee)
    p = env.need_provider(c.provider)
    env.put_provider(c.provider, replace(
        p, reputation=min(MAX_REPUTATION, p.reputation + REPUTATION_GAIN)))
    env.emit("storage_paid", file_id=file_id.hex(), frag_index=c.frag_index,
             provider=c.provider.hex(), amount=fee)
    return replace(deal, escrow=deal.escrow - fee)


def _pay_bounty(env: _Env, file_id: bytes, deal: Deal, i: int) -> Deal:
    """A repaired column passed its first audit: its repairer earns the reward held for it."""
    c = deal.columns[i]
    if not c.bounty:
        return deal
    env.move(MODULE_ACCOUNT, c.repairer, c.bounty)
    env.emit("storage_repair_paid", file_id=file_id.hex(), frag_index=c.frag_index,
             repairer=c.repairer.hex(), amount=c.bounty)
    return _with_column(deal, i, replace(c, bounty=0))


def _with_column(deal: Deal, i: int, column: Column) -> Deal:
    return replace(deal, columns=(*deal.columns[:i], column, *deal.columns[i + 1:]))


def _close_deal(env: _Env, file_id: bytes, deal: Deal, status: int) -> Deal:
    """The deal stops: its providers' space is freed, escrow, repair budget and rewards of
    repairs no audit confirmed go back."""
    nbytes = deal_column_bytes(deal)
    for c in deal.columns:
        _release(env, c.provider, nbytes)
        env.delete(_hold_key(c.provider, file_id, c.frag_index))
    env.delete(LIVE_PREFIX + file_id)
    refund = deal.escrow + deal.repair_budget + sum(c.bounty for c in deal.columns)
    env.move(MODULE_ACCOUNT, deal.owner, refund)
    env.emit("storage_deal_" + DEAL_STATUS[status], file_id=file_id.hex(),
             owner=deal.owner.hex(), refund=refund)
    return replace(deal, escrow=0, repair_budget=0, status=status,
                   columns=tuple(replace(c, bounty=0) for c in deal.columns))


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


# --- stateless checks --------------------------------------------------------------------------


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


def _validate_register(msg: RegisterProvider) -> None:
    if msg.capacity <= 0:
        raise _invalid("capacity must be a positive number of bytes")
    if not msg.p2p or len(msg.p2p) > MAX_P2P:
        raise _invalid(f"p2p address must be 1..{MAX_P2P} characters")
    if msg.collateral > MAX_SUPPLY:
        raise _invalid("collateral exceeds the HPC supply cap")


def _validate_column(col: NewColumn, code_n: int) -> None:
    if col.frag_index >= code_n:
        raise _invalid(f"fragment index {col.frag_index} is not below code_n {code_n}")


def _validate_deal(msg: CreateDeal) -> None:
    n = len(msg.columns)
    if not 1 <= msg.k < n <= msg.code_n <= MAX_CODE_N:
        raise _invalid(f"need 1 <= k < n <= code_n <= {MAX_CODE_N} (k={msg.k}, n={n} columns, "
                       f"code_n={msg.code_n})")
    if not msg.k < msg.repair_threshold <= n:
        raise _invalid("repair threshold must be above k and at most the number of columns")
    if len({c.provider for c in msg.columns}) != n:
        raise _invalid("each column needs a distinct provider")
    if len({c.frag_index for c in msg.columns}) != n:
        raise _invalid("each column needs a distinct fragment index")
    for col in msg.columns:
        _validate_column(col, msg.code_n)
    if msg.segments < 1 or not 1 <= msg.epochs <= MAX_EPOCHS:
        raise _invalid(f"a deal needs at least one segment and 1..{MAX_EPOCHS} epochs")
    if msg.piece_size > MAX_PIECE_SIZE or msg.last_piece_size > MAX_PIECE_SIZE:
        raise _invalid(f"pieces are at most {MAX_PIECE_SIZE} bytes")
    if msg.segments > 1 and msg.last_piece_size > msg.piece_size:
        raise _invalid("the last piece cannot be larger than the others")
    if msg.max_cost > MAX_SUPPLY:
        raise _invalid("max cost exceeds the HPC supply cap")


def _validate_prove(msg: Prove) -> None:
    if not 1 <= len(msg.proofs) <= MAX_PROOFS:
        raise _invalid(f"1..{MAX_PROOFS} proofs per transaction")
    for proof in msg.proofs:
        if len(proof.chunk) > LEAF_SIZE:
            raise _invalid(f"a proof's chunk is at most {LEAF_SIZE} bytes")


def _validate_claim(msg: ClaimBandwidth) -> None:
    if not 1 <= len(msg.receipts) <= MAX_RECEIPTS:
        raise _invalid(f"1..{MAX_RECEIPTS} receipts per transaction")


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
    for i, c in enumerate(deal.columns):
        keys = _keys(env.store, _column_prefix(c.provider, msg.file_id, c.frag_index))
        for key in keys:
            env.delete(key)
        if keys:
            deal = _pay_column(env, msg.file_id, deal, i)
    deal = _close_deal(env, msg.file_id, deal, CANCELLED)
    env.put_deal(msg.file_id, replace(deal, end_epoch=min(deal.end_epoch, env.epoch + 1)))
    env.flush()


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
    return r.amount


def _handle_claim(ctx: TxContext, msg: ClaimBandwidth) -> None:
    env = _env(ctx)
    p = env.provider(ctx.sender)
    if p is None:
        raise _fail("not a registered storage provider")
    total = sum(_claim_one(env, ctx.sender, p, r) for r in msg.receipts)
    env.emit("storage_bandwidth_claim", address=ctx.sender.hex(), receipts=len(msg.receipts),
             amount=total)


# --- queries -----------------------------------------------------------------------------------


def read_params(view: Any) -> Params:
    raw = view.get(PARAMS_KEY)
    return Params.decode(raw) if raw is not None else Params()


def list_providers(view: Any) -> list[ProviderView]:
    """Every provider (active or not), in address order."""
    start = len(PROVIDER_PREFIX)
    return [ProviderView(k[start:], StorageProvider.decode(v))
            for k, v in view.iter_prefix(PROVIDER_PREFIX)]


def provider_view(view: Any, address: bytes) -> ProviderView | None:
    p = get_provider(view, address)
    return ProviderView(address, p) if p is not None else None


def deal_view(view: Any, file_id: bytes) -> DealView | None:
    deal = get_deal(view, file_id)
    if deal is None:
        return None
    return DealView(file_id, DEAL_STATUS[deal.status], deal_column_bytes(deal),
                    healthy_count(deal), deal)


def _deal_views(view: Any, file_ids: Iterator[bytes]) -> list[DealView]:
    out = []
    for file_id in file_ids:
        d = deal_view(view, file_id)
        assert d is not None, "an index names no deal"
        out.append(d)
    return out


def deals_of(view: Any, owner: bytes) -> list[DealView]:
    """Every deal an owner made, in file id order."""
    prefix = OWNER_PREFIX + owner
    return _deal_views(view, (k[len(prefix):] for k, _ in view.iter_prefix(prefix)))


def open_challenges(view: Any, provider: bytes) -> list[OpenChallenge]:
    """What a provider must prove this epoch, in (file id, fragment, segment) order."""
    out = []
    for key, raw in view.iter_prefix(CHALLENGE_PREFIX + provider):
        _p, file_id, frag, segment = _split_challenge(key)
        c = Challenge.decode(raw)
        out.append(OpenChallenge(file_id, frag, segment, c.leaf, c.deadline))
    return out


def columns_of(view: Any, provider: bytes) -> list[ColumnRef]:
    """Columns of active deals a provider holds: whatever else it stores it may delete."""
    prefix = HOLD_PREFIX + provider
    return [ColumnRef(k[len(prefix):len(prefix) + 32], _U32.unpack_from(k, len(prefix) + 32)[0])
            for k, _ in view.iter_prefix(prefix)]


def repairs(view: Any) -> list[DealView]:
    """Active deals with unhealthy columns and fewer healthy ones than their threshold."""
    out = []
    for key, _ in view.iter_prefix(LIVE_PREFIX):
        d = deal_view(view, key[len(LIVE_PREFIX):])
        assert d is not None, "a live key names no deal"
        if needs_repair(d.deal):
            out.append(d)
    return out


def _address(args: dict[str, str]) -> bytes:
    return from_bech32(args["address"])


def _file_id(args: dict[str, str]) -> bytes:
    file_id = bytes.fromhex(args["file_id"])
    if len(file_id) != 32:
        raise ValueError("a file id is 32 bytes (64 hex digits)")
    return file_id


class Storage(Module):
    name = "storage"

    def messages(self) -> dict[str, Msg]:
        return {
            "storage/register_provider": Msg(RegisterProvider, _handle_register,
                                             _validate_register, spend=lambda m: m.collateral),
            "storage/deregister_provider": Msg(DeregisterProvider, _handle_deregister),
            "storage/create_deal": Msg(CreateDeal, _handle_create, _validate_deal,
                                       spend=lambda m: m.max_cost),
            "storage/prove": Msg(Prove, _handle_prove, _validate_prove),
            "storage/repair": Msg(Repair, _handle_repair,
                                  lambda m: _validate_column(m.new, MAX_CODE_N)),
            "storage/cancel_deal": Msg(CancelDeal, _handle_cancel),
            "storage/claim_bandwidth": Msg(ClaimBandwidth, _handle_claim, _validate_claim),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "providers": lambda view, args: list_providers(view),
            "provider": lambda view, args: provider_view(view, _address(args)),
            "deal": lambda view, args: deal_view(view, _file_id(args)),
            "deals_of": lambda view, args: deals_of(view, _address(args)),
            "challenges_of": lambda view, args: open_challenges(view, _address(args)),
            "columns_of": lambda view, args: columns_of(view, _address(args)),
            "repairs": lambda view, args: repairs(view),
        }

    def begin_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        if block.height % max(1, block.params.storage_epoch_blocks):
            return []
        env = _Env(store, block, None, [])
        _run_epoch(env)
        return env.events

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        env = _Env(store, block, None, [])
        _prune_claims(env)
        return env.events
