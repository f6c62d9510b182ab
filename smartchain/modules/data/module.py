"""Data assets: owners register device-signed batches, consent to sell them, get paid on
delivery of the file keys sealed to the buyer; buyers are refunded when no key comes or a
wrong one is proven.

- ``data/create_asset`` locks the owner's bond; ``data/add_batch`` registers a stored file of
  device-signed records: the chain checks the device is registered, unrevoked, the owner's
  and in the asset, that it signed the batch header (its records' Merkle root), and that the
  storage deal is the owner's.
- ``data/consent`` offers assets to anyone or a list, for purposes, at a price per batch in
  HPC or an IOT_Coin, until an expiry; ``data/withdraw_consent`` ends new sales at once
  (purchases already made are not undone: their buyers keep their keys).
- ``data/buy`` puts the price into escrow with a delivery deadline; ``data/deliver`` posts
  the sealed keys; the escrow is paid to the owner ``data_dispute_blocks`` later unless the
  buyer proves a key wrong (``data/prove_wrong_key``: refund of that batch and the owner's
  penalty from its bond). No key by the deadline: refunded in full. Both happen in
  ``end_block`` from a queue keyed by height, so they cost no one a transaction.
- ``data/set_box_key`` and ``data/share`` give a stored file's key to another account with
  no payment (``smart store share``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.modules.bank.module import get_account, move_hpc
from smartchain.modules.data.types import (
    ASSET_CONSENT_PREFIX,
    ASSET_PREFIX,
    BATCH_PREFIX,
    BOXKEY_PREFIX,
    BUYER_PREFIX,
    CONSENT_PREFIX,
    DELIVERED,
    DUE_PREFIX,
    HPC,
    MARK,
    MAX_LIST,
    MAX_NAME,
    MODULE_ACCOUNT,
    NEXT_CONSENT,
    NEXT_PURCHASE,
    OWNER_PREFIX,
    PURCHASE_PREFIX,
    REFUNDED,
    SEAL_GAS,
    SEALED_SIZE,
    SELLER_PREFIX,
    SETTLED,
    SHARE_PREFIX,
    SIGNATURE_GAS,
    STATUS_NAMES,
    TAG_RE,
    WAITING,
    AddBatch,
    Asset,
    Batch,
    Buy,
    Consent,
    CreateAsset,
    Deliver,
    GiveConsent,
    ProveWrongKey,
    Purchase,
    SetBoxKey,
    Share,
    ShareFile,
    WithdrawConsent,
    asset_id_of,
    batch_bytes,
    box_public,
    key_commitment,
    open_sealed,
)
from smartchain.modules.devices.module import active_device, check_device_signature
from smartchain.modules.storage.keys import get_deal
from smartchain.modules.tokens.module import (
    move_tokens,
    require_token,
    symbol_error,
    token_balance,
)
from smartchain.modules.tokens.types import MAX_AMOUNT
from smartchain.state.module import BlockInfo, Module, Msg, Query, TxContext
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Event

# --- keys and reads ---------------------------------------------------------------------------


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def asset_key(asset_id: bytes) -> bytes:
    return ASSET_PREFIX + asset_id


def batch_key(asset_id: bytes, index: int) -> bytes:
    return BATCH_PREFIX + asset_id + index.to_bytes(4, "big")


def consent_key(consent_id: int) -> bytes:
    return CONSENT_PREFIX + u64(consent_id)


def purchase_key(purchase_id: int) -> bytes:
    return PURCHASE_PREFIX + u64(purchase_id)


def due_key(height: int, purchase_id: int) -> bytes:
    return DUE_PREFIX + u64(height) + u64(purchase_id)


def share_key(file_id: bytes, recipient: bytes) -> bytes:
    return SHARE_PREFIX + file_id + recipient


def _get(view: Any, key: bytes, cls: Any) -> Any:
    raw = view.get(key)
    return cls.decode(raw) if raw is not None else None


def get_asset(view: Any, asset_id: bytes) -> Asset | None:
    return _get(view, asset_key(asset_id), Asset)  # type: ignore[no-any-return]


def get_batch(view: Any, asset_id: bytes, index: int) -> Batch | None:
    return _get(view, batch_key(asset_id, index), Batch)  # type: ignore[no-any-return]


def get_consent(view: Any, consent_id: int) -> Consent | None:
    return _get(view, consent_key(consent_id), Consent)  # type: ignore[no-any-return]


def get_purchase(view: Any, purchase_id: int) -> Purchase | None:
    return _get(view, purchase_key(purchase_id), Purchase)  # type: ignore[no-any-return]


def get_share(view: Any, file_id: bytes, recipient: bytes) -> Share | None:
    return _get(view, share_key(file_id, recipient), Share)  # type: ignore[no-any-return]


def get_box_key(view: Any, address: bytes) -> bytes | None:
    raw = view.get(BOXKEY_PREFIX + address)
    return bytes(raw) if raw is not None else None


def _ids(view: Any, prefix: bytes) -> list[bytes]:
    return [bytes(k[len(prefix):]) for k, _v in view.iter_prefix(prefix)]


def assets_of(view: Any, owner: bytes) -> list[Asset]:
    return [a for i in _ids(view, OWNER_PREFIX + owner) if (a := get_asset(view, i))]


def all_assets(view: Any) -> list[tuple[bytes, Asset]]:
    """Every asset with its id, in id order (discovery scans these)."""
    return [(bytes(k[len(ASSET_PREFIX):]), Asset.decode(v))
            for k, v in view.iter_prefix(ASSET_PREFIX)]


def batches_of(view: Any, asset_id: bytes) -> list[Batch]:
    return [Batch.decode(v) for _k, v in view.iter_prefix(BATCH_PREFIX + asset_id)]


def consents_for(view: Any, asset_id: bytes) -> list[Consent]:
    """The consents naming ``asset_id`` (withdrawn and expired ones too), oldest first."""
    prefix = ASSET_CONSENT_PREFIX + asset_id
    return [c for i in _ids(view, prefix) if (c := get_consent(view, int.from_bytes(i, "big")))]


def purchases_by(view: Any, prefix: bytes) -> list[Purchase]:
    return [p for i in _ids(view, prefix) if (p := get_purchase(view, int.from_bytes(i, "big")))]


def purchases_of_buyer(view: Any, buyer: bytes) -> list[Purchase]:
    return purchases_by(view, BUYER_PREFIX + buyer)


def waiting_sales(view: Any, owner: bytes) -> list[Purchase]:
    """Purchases of ``owner``'s data waiting for their keys (what its agent delivers)."""
    return purchases_by(view, SELLER_PREFIX + owner)


def consent_open(consent: Consent, height: int) -> bool:
    return not consent.withdrawn and height <= consent.expiry


def _next(store: Overlay, key: bytes) -> int:
    raw = store.get(key)
    n = int.from_bytes(raw, "big") if raw is not None else 1
    store.set(key, u64(n + 1))
    return n


# --- money ------------------------------------------------------------------------------------


def _move(store: Overlay, token: str, frm: bytes, to: bytes, amount: int) -> None:
    if amount <= 0:
        return
    if token == HPC:
        move_hpc(store, frm, to, amount)
    else:
        move_tokens(store, token, frm, to, amount)


# --- stateless checks -------------------------------------------------------------------------


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


def _check_tag(value: str, what: str) -> None:
    if not TAG_RE.fullmatch(value):
        raise _invalid(f"invalid {what} {value!r}: 1-32 characters, a lower-case letter then "
                       "lower-case letters, digits, '_', '.' or '-'")


def _check_list(items: tuple[Any, ...], what: str, *, empty: bool = False) -> None:
    if not (0 if empty else 1) <= len(items) <= MAX_LIST:
        raise _invalid(f"{what}: {'0' if empty else '1'}-{MAX_LIST} entries")
    if len(set(items)) != len(items):
        raise _invalid(f"{what} must be distinct")


def _check_amount(amount: int, what: str, *, positive: bool = True) -> None:
    if not (1 if positive else 0) <= amount <= MAX_AMOUNT:
        raise _invalid(f"{what} must be a {'positive' if positive else 'non-negative'} "
                       "integer amount of base units")


def validate_create_asset(msg: CreateAsset) -> None:
    if not 1 <= len(msg.name) <= MAX_NAME or not msg.name.isprintable():
        raise _invalid(f"asset name must be 1-{MAX_NAME} printable characters")
    _check_tag(msg.schema, "schema")
    _check_tag(msg.region, "region tag")
    _check_list(msg.devices, "devices")
    _check_amount(msg.bond, "bond", positive=False)


def validate_add_batch(msg: AddBatch) -> None:
    h = msg.header
    _check_tag(h.schema, "schema")
    if h.count < 1:
        raise _invalid("a batch holds at least one record")
    if h.end_ms < h.start_ms:
        raise _invalid("a batch's end_ms must not be before its start_ms")


def _check_token(token: str) -> None:
    if token != HPC and (why := symbol_error(token)) is not None:
        raise _invalid(why)


def validate_consent(msg: GiveConsent) -> None:
    _check_list(msg.assets, "assets")
    _check_list(msg.buyers, "buyers", empty=True)
    _check_list(msg.purposes, "purposes")
    for p in msg.purposes:
        _check_tag(p, "purpose")
    _check_amount(msg.price, "price", positive=False)
    _check_token(msg.token)


def validate_buy(msg: Buy) -> None:
    if not msg.batches:
        raise _invalid("buy at least one batch")
    if len(set(msg.batches)) != len(msg.batches):
        raise _invalid("batches must be distinct")
    if len(msg.box_keys) != len(msg.batches):
        raise _invalid("one box key per batch bought")
    _check_tag(msg.purpose, "purpose")
    _check_token(msg.token)
    _check_amount(msg.max_total, "max_total", positive=False)


def validate_deliver(msg: Deliver) -> None:
    if not msg.sealed or len(msg.sealed) != len(msg.box_keys):
        raise _invalid("one sealed key per batch of the purchase")
    if any(len(s) != SEALED_SIZE for s in msg.sealed):
        raise _invalid(f"a sealed file key is {SEALED_SIZE} bytes")


def validate_share(msg: ShareFile) -> None:
    if len(msg.sealed) != SEALED_SIZE:
        raise _invalid(f"a sealed file key is {SEALED_SIZE} bytes")


# --- handlers ---------------------------------------------------------------------------------


def _writes(ctx: TxContext, n: int) -> None:
    """Charge ``n`` writes up front: a failed attempt costs what a good one would."""
    ctx.gas.consume(n * ctx.block.params.gas_per_write)


def _fail(message: str) -> TxError:
    return TxError(Code.FAILED, message)


def _handle_create_asset(ctx: TxContext, msg: CreateAsset) -> None:
    _writes(ctx, 4)
    ctx.gas.consume(len(msg.devices) * SIGNATURE_GAS)
    asset_id = asset_id_of(ctx.sender, msg.name)
    old = get_asset(ctx.store, asset_id)
    if old is not None:
        if (msg.schema, msg.region, msg.devices) != (old.schema, old.region, old.devices):
            raise _fail(f"asset {msg.name!r} exists with other terms: only its bond can be "
                        "topped up")
        move_hpc(ctx.store, ctx.sender, MODULE_ACCOUNT, msg.bond)
        ctx.store.set(asset_key(asset_id), replace(old, bond=old.bond + msg.bond).encode())
        ctx.emit("data_bond", asset=asset_id.hex(), bond=old.bond + msg.bond)
        return
    if msg.bond < ctx.block.params.data_asset_bond:
        raise _fail(f"bond {msg.bond} below the asset bond {ctx.block.params.data_asset_bond}")
    for pubkey in msg.devices:
        _own_device(ctx, pubkey)
    move_hpc(ctx.store, ctx.sender, MODULE_ACCOUNT, msg.bond)
    asset = Asset(ctx.sender, msg.name, msg.schema, msg.region, msg.devices, msg.bond, 0, 0,
                  0, 0, ctx.block.height)
    ctx.store.set(asset_key(asset_id), asset.encode())
    ctx.store.set(OWNER_PREFIX + ctx.sender + asset_id, MARK)
    ctx.emit("data_asset", asset=asset_id.hex(), owner=ctx.sender.hex(), name=msg.name,
             schema=msg.schema)


def _own_device(ctx: TxContext, pubkey: bytes) -> None:
    device = active_device(ctx.store, pubkey)
    if device.owner != ctx.sender:
        raise _fail(f"device {pubkey.hex()} belongs to another account")


def _handle_add_batch(ctx: TxContext, msg: AddBatch) -> None:
    _writes(ctx, 2)
    ctx.gas.consume(ctx.block.params.data_batch_gas + SIGNATURE_GAS)
    asset = get_asset(ctx.store, msg.asset)
    if asset is None:
        raise _fail(f"no data asset {msg.asset.hex()}")
    if asset.owner != ctx.sender:
        raise _fail("only the asset's owner adds batches to it")
    h = msg.header
    if h.device not in asset.devices:
        raise _fail(f"device {h.device.hex()} is not a device of this asset")
    if h.schema != asset.schema:
        raise _fail(f"batch schema {h.schema!r} is not the asset's {asset.schema!r}")
    device = check_device_signature(ctx.store, h.device, batch_bytes(h), msg.signature)
    if device.owner != ctx.sender:
        raise _fail(f"device {h.device.hex()} belongs to another account now")
    deal = get_deal(ctx.store, msg.file_id)
    if deal is None or deal.owner != ctx.sender:
        raise _fail(f"file {msg.file_id.hex()} is not a stored file of the sender")
    batch = Batch(msg.asset, asset.batches, h, msg.signature, msg.file_id,
                  msg.key_commitment, ctx.block.height)
    ctx.store.set(batch_key(msg.asset, asset.batches), batch.encode())
    start = h.start_ms if asset.batches == 0 else min(asset.start_ms, h.start_ms)
    ctx.store.set(asset_key(msg.asset), replace(
        asset, batches=asset.batches + 1, start_ms=start, end_ms=max(asset.end_ms, h.end_ms),
        records=asset.records + h.count).encode())
    ctx.emit("data_batch", asset=msg.asset.hex(), index=asset.batches, records=h.count,
             file_id=msg.file_id.hex())


def _handle_consent(ctx: TxContext, msg: GiveConsent) -> None:
    _writes(ctx, 2 + len(msg.assets))
    if msg.expiry < ctx.block.height:
        raise _fail(f"consent expiry {msg.expiry} is already past (height "
                    f"{ctx.block.height})")
    if msg.token != HPC:
        require_token(ctx.store, msg.token)
    for asset_id in msg.assets:
        asset = get_asset(ctx.store, asset_id)
        if asset is None or asset.owner != ctx.sender:
            raise _fail(f"asset {asset_id.hex()} is not an asset of the sender")
    cid = _next(ctx.store, NEXT_CONSENT)
    consent = Consent(cid, ctx.sender, msg.assets, msg.buyers, msg.purposes, msg.price,
                      msg.token, msg.expiry, False, 0, ctx.block.height)
    ctx.store.set(consent_key(cid), consent.encode())
    for asset_id in msg.assets:
        ctx.store.set(ASSET_CONSENT_PREFIX + asset_id + u64(cid), MARK)
    ctx.emit("data_consent", consent=cid, owner=ctx.sender.hex(), price=msg.price,
             token=msg.token)


def _handle_withdraw(ctx: TxContext, msg: WithdrawConsent) -> None:
    _writes(ctx, 1)
    consent = get_consent(ctx.store, msg.consent)
    if consent is None:
        raise _fail(f"no consent {msg.consent}")
    if consent.owner != ctx.sender:
        raise _fail("only the owner who gave a consent withdraws it")
    if consent.withdrawn:
        raise _fail(f"consent {msg.consent} is already withdrawn")
    ctx.store.set(consent_key(msg.consent), replace(
        consent, withdrawn=True, withdrawn_height=ctx.block.height).encode())
    ctx.emit("data_withdraw", consent=msg.consent, owner=ctx.sender.hex())


def check_buy(view: Any, height: int, params: Any, buyer: bytes, msg: Buy) -> Consent:
    """The consent that allows ``msg``, or a ``TxError`` saying why none does."""
    consent = get_consent(view, msg.consent)
    if consent is None:
        raise _fail(f"no consent {msg.consent}")
    if consent.withdrawn:
        raise _fail(f"consent {msg.consent} was withdrawn at height "
                    f"{consent.withdrawn_height}: no new sale")
    if height > consent.expiry:
        raise _fail(f"consent {msg.consent} expired at height {consent.expiry}")
    if msg.asset not in consent.assets:
        raise _fail(f"consent {msg.consent} does not cover asset {msg.asset.hex()}")
    if consent.buyers and buyer not in consent.buyers:
        raise _fail(f"consent {msg.consent} does not name this buyer")
    if msg.purpose not in consent.purposes:
        raise _fail(f"consent {msg.consent} does not allow purpose {msg.purpose!r} (allowed: "
                    f"{', '.join(consent.purposes)})")
    if msg.token != consent.token:
        raise _fail(f"consent {msg.consent} is priced in {consent.token}, not {msg.token}")
    asset = get_asset(view, msg.asset)
    if asset is None or asset.owner != consent.owner:
        raise _fail(f"asset {msg.asset.hex()} is not the consent owner's")
    if asset.bond < params.data_asset_bond:
        raise _fail(f"asset {msg.asset.hex()} is suspended: its bond {asset.bond} is below "
                    f"{params.data_asset_bond} after a proven wrong key")
    if len(msg.batches) > params.data_max_batches:
        raise _fail(f"at most {params.data_max_batches} batches per purchase")
    missing = [b for b in msg.batches if b >= asset.batches]
    if missing:
        raise _fail(f"asset has {asset.batches} batches: no batch {missing[0]}")
    total = consent.price * len(msg.batches)
    if total > msg.max_total:
        raise _fail(f"the price is {total} {consent.token}, above max_total {msg.max_total}")
    return consent


def _handle_buy(ctx: TxContext, msg: Buy) -> None:
    _writes(ctx, 6)
    params = ctx.block.params
    consent = check_buy(ctx.store, ctx.block.height, params, ctx.sender, msg)
    total = consent.price * len(msg.batches)
    _move(ctx.store, consent.token, ctx.sender, MODULE_ACCOUNT, total)
    pid = _next(ctx.store, NEXT_PURCHASE)
    deadline = ctx.block.height + params.data_delivery_blocks
    purchase = Purchase(pid, ctx.sender, consent.owner, consent.id, msg.asset, msg.batches,
                        msg.purpose, consent.token, consent.price, msg.nonce, msg.box_keys,
                        total, WAITING, deadline, 0, (), (), ctx.block.height)
    ctx.store.set(purchase_key(pid), purchase.encode())
    ctx.store.set(BUYER_PREFIX + ctx.sender + u64(pid), MARK)
    ctx.store.set(SELLER_PREFIX + consent.owner + u64(pid), MARK)
    ctx.store.set(due_key(deadline, pid), MARK)
    ctx.emit("data_buy", purchase=pid, buyer=ctx.sender.hex(), owner=consent.owner.hex(),
             asset=msg.asset.hex(), total=total, token=consent.token, deadline=deadline)


def _handle_deliver(ctx: TxContext, msg: Deliver) -> None:
    _writes(ctx, 4)
    p = get_purchase(ctx.store, msg.purchase)
    if p is None:
        raise _fail(f"no purchase {msg.purchase}")
    if p.owner != ctx.sender:
        raise _fail("only the data's owner delivers its keys")
    if p.status != WAITING:
        raise _fail(f"purchase {msg.purchase} is already {_status(p)}: keys are delivered once")
    if msg.buyer != p.buyer or msg.box_keys != p.box_keys:
        raise _fail(f"these keys are sealed for another buyer than purchase {msg.purchase}'s")
    if ctx.block.height > p.deadline:  # cannot happen: end_block refunds at the deadline
        raise _fail(f"purchase {msg.purchase}'s deadline passed")
    release = ctx.block.height + ctx.block.params.data_dispute_blocks
    ctx.store.delete(due_key(p.deadline, p.id))
    ctx.store.set(due_key(release, p.id), MARK)
    ctx.store.delete(SELLER_PREFIX + p.owner + u64(p.id))
    ctx.store.set(purchase_key(p.id), replace(p, status=DELIVERED, release=release,
                                              sealed=msg.sealed).encode())
    ctx.emit("data_deliver", purchase=p.id, buyer=p.buyer.hex(), release=release)


def _status(p: Purchase) -> str:
    return STATUS_NAMES[p.status]


def _handle_prove(ctx: TxContext, msg: ProveWrongKey) -> None:
    _writes(ctx, 4)
    ctx.gas.consume(2 * SEAL_GAS)
    p = get_purchase(ctx.store, msg.purchase)
    if p is None:
        raise _fail(f"no purchase {msg.purchase}")
    if p.buyer != ctx.sender:
        raise _fail("only the buyer proves a wrong key")
    if p.status != DELIVERED:
        raise _fail(f"purchase {msg.purchase} is {_status(p)}: only a delivered key awaiting "
                    "payout can be proven wrong")
    if msg.position >= len(p.batches):
        raise _fail(f"the purchase has {len(p.batches)} batches")
    if msg.position in p.proven:
        raise _fail(f"batch {msg.position} of the purchase is already proven wrong")
    if box_public(msg.box_secret) != p.box_keys[msg.position]:
        raise _fail("box_secret is not the secret of the box key named in the purchase")
    batch = get_batch(ctx.store, p.asset, p.batches[msg.position])
    assert batch is not None  # batches are never deleted
    opened = open_sealed(msg.box_secret, p.sealed[msg.position])
    if opened is not None and key_commitment(batch.file_id, opened) == batch.key_commitment:
        raise _fail("the delivered key opens and matches the owner's commitment: it is right")
    penalty = _refund_wrong(ctx, p, msg.position)
    ctx.emit("data_wrong_key", purchase=p.id, position=msg.position, refund=p.price,
             penalty=penalty, owner=p.owner.hex())


def _refund_wrong(ctx: TxContext, p: Purchase, position: int) -> int:
    """Refund one batch's price to the buyer and move the owner's penalty from its bond."""
    _move(ctx.store, p.token, MODULE_ACCOUNT, p.buyer, p.price)
    asset = get_asset(ctx.store, p.asset)
    assert asset is not None
    penalty = min(asset.bond, ctx.block.params.data_wrong_key_penalty)
    move_hpc(ctx.store, MODULE_ACCOUNT, p.buyer, penalty)
    ctx.store.set(asset_key(p.asset), replace(asset, bond=asset.bond - penalty).encode())
    ctx.store.set(purchase_key(p.id), replace(p, escrow=p.escrow - p.price,
                                              proven=(*p.proven, position)).encode())
    return penalty


def _handle_set_box_key(ctx: TxContext, msg: SetBoxKey) -> None:
    _writes(ctx, 1)
    ctx.store.set(BOXKEY_PREFIX + ctx.sender, msg.box_key)
    ctx.emit("data_box_key", account=ctx.sender.hex())


def _handle_share(ctx: TxContext, msg: ShareFile) -> None:
    _writes(ctx, 1)
    deal = get_deal(ctx.store, msg.file_id)
    if deal is None or deal.owner != ctx.sender:
        raise _fail(f"file {msg.file_id.hex()} is not a stored file of the sender")
    if get_box_key(ctx.store, msg.recipient) is None:
        raise _fail("the recipient has no box key registered (data/set_box_key)")
    share = Share(msg.file_id, ctx.sender, msg.recipient, msg.sealed, ctx.block.height)
    ctx.store.set(share_key(msg.file_id, msg.recipient), share.encode())
    ctx.emit("data_share", file_id=msg.file_id.hex(), owner=ctx.sender.hex(),
             recipient=msg.recipient.hex())


# --- end block: deadlines and payouts -----------------------------------------------------------


def settle_due(store: Overlay, block: BlockInfo) -> list[Event]:
    """Purchases due at this height: refunded if still waiting for keys, paid to the owner
    if delivered (and not all proven wrong)."""
    events = []
    prefix = DUE_PREFIX + u64(block.height)
    for key, _v in list(store.iter_prefix(prefix)):
        pid = int.from_bytes(bytes(key[len(prefix):]), "big")
        p = get_purchase(store, pid)
        store.delete(bytes(key))
        if p is None:
            continue
        if p.status == WAITING:
            _move(store, p.token, MODULE_ACCOUNT, p.buyer, p.escrow)
            store.delete(SELLER_PREFIX + p.owner + u64(p.id))
            store.set(purchase_key(pid), replace(p, escrow=0, status=REFUNDED).encode())
            events.append(Event.of("data_refund", purchase=pid, buyer=p.buyer.hex(),
                                   amount=p.escrow, token=p.token))
        elif p.status == DELIVERED:
            _move(store, p.token, MODULE_ACCOUNT, p.owner, p.escrow)
            store.set(purchase_key(pid), replace(p, escrow=0, status=SETTLED).encode())
            events.append(Event.of("data_payout", purchase=pid, owner=p.owner.hex(),
                                   amount=p.escrow, token=p.token))
    return events


# --- invariants -----------------------------------------------------------------------------


def book_violations(view: Any) -> list[str]:
    """The module account holds exactly the bonds plus the escrows of open purchases, per
    token; settled and refunded purchases hold nothing."""
    problems = []
    owed: dict[str, int] = {HPC: sum(Asset.decode(v).bond
                                     for _k, v in view.iter_prefix(ASSET_PREFIX))}
    for _k, raw in view.iter_prefix(PURCHASE_PREFIX):
        p = Purchase.decode(raw)
        if p.status in (SETTLED, REFUNDED) and p.escrow:
            problems.append(f"purchase {p.id} is {_status(p)} but holds {p.escrow}")
        if p.escrow != p.price * (len(p.batches) - len(p.proven)) and p.status in (
                WAITING, DELIVERED):
            problems.append(f"purchase {p.id} holds {p.escrow}, its batches cost "
                            f"{p.price * (len(p.batches) - len(p.proven))}")
        owed[p.token] = owed.get(p.token, 0) + p.escrow
    for token, amount in sorted(owed.items()):
        held = (get_account(view, MODULE_ACCOUNT).balance if token == HPC
                else token_balance(view, token, MODULE_ACCOUNT))
        if held != amount:
            problems.append(f"data module holds {held} {token} but owes {amount}")
    return problems


def _buy_spend(msg: Buy) -> int:
    return msg.max_total if msg.token == HPC else 0


class Data(Module):
    name = "data"

    def messages(self) -> dict[str, Msg]:
        return {
            "data/create_asset": Msg(CreateAsset, _handle_create_asset, validate_create_asset,
                                     spend=lambda m: m.bond),
            "data/add_batch": Msg(AddBatch, _handle_add_batch, validate_add_batch),
            "data/consent": Msg(GiveConsent, _handle_consent, validate_consent),
            "data/withdraw_consent": Msg(WithdrawConsent, _handle_withdraw),
            "data/buy": Msg(Buy, _handle_buy, validate_buy, spend=_buy_spend),
            "data/deliver": Msg(Deliver, _handle_deliver, validate_deliver),
            "data/prove_wrong_key": Msg(ProveWrongKey, _handle_prove),
            "data/set_box_key": Msg(SetBoxKey, _handle_set_box_key),
            "data/share": Msg(ShareFile, _handle_share, validate_share),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "asset": lambda view, args: get_asset(view, bytes.fromhex(args["id"])),
            "purchase": lambda view, args: get_purchase(view, int(args["id"])),
            "assets_of": lambda view, args: assets_of(view, from_bech32(args["owner"])),
        }

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        return settle_due(store, block)

    def invariants(self, view: Any) -> list[str]:
        return book_violations(view)
