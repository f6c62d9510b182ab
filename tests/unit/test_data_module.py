"""The data module on a real chain: device-signed batches registered under assets, consent
records and their withdrawal, purchases into escrow, keys sealed to the buyer, payout after
the dispute window, refunds at the deadline, wrong keys proven on chain, IOT_Coin prices,
shares, bad input refused with nothing paid, and two chains agreeing.

The escrow books (module account = bonds + open escrows, per token) are checked after every
block by ``ChainNet``'s invariants.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from framework.chain import ChainNet

from smartchain.agent.messages import sign_message
from smartchain.crypto import merkle
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.modules.data import module as dm
from smartchain.modules.data.types import (
    MODULE_ACCOUNT,
    AddBatch,
    BatchHeader,
    Buy,
    CreateAsset,
    Deliver,
    GiveConsent,
    ProveWrongKey,
    SetBoxKey,
    ShareFile,
    WithdrawConsent,
    account_box_secret,
    asset_id_of,
    box_public,
    box_secret,
    key_commitment,
    open_sealed,
    purchase_label,
    records_root,
    seal,
    sign_batch,
)
from smartchain.modules.devices.types import (
    RegisterDevice,
    RegisterManufacturer,
    RevokeDevice,
    sign_certificate,
    sign_pop,
)
from smartchain.modules.storage.types import (
    CreateDeal,
    NewColumn,
    RegisterProvider,
    acceptance_bytes,
    file_id_of,
)
from smartchain.modules.tokens.module import token_balance
from smartchain.modules.tokens.types import Issue, TokenTransfer
from smartchain.state.params import Params
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt

HPC = 10**8
BOND = 10 * HPC
PENALTY = 5 * HPC
PRICE = 2 * HPC
DELIVERY = 5
DISPUTE = 10
SCHEMA = "car.trips"


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


MAKER, OWNER, INSURER, LENDER, PROPOSER = key(60), key(61), key(62), key(63), key(64)
CAR, OLD_CAR, STRANGER_CAR = key(65), key(66), key(67)
STRANGER = key(68)
PROVIDERS = [key(70), key(71)]


class Net(ChainNet):
    """A chain with a car maker, the car's owner, storage providers and buyers."""

    def __init__(self, kit: Any, chain: Any) -> None:
        super().__init__(kit, chain, PROPOSER)
        self.fees: Counter[bytes] = Counter()
        self.keys: dict[bytes, bytes] = {}  # file id -> file key (the owner's)

    def on_block(self, checked: list[Any], receipts: list[Receipt]) -> None:
        for c, r in zip(checked, receipts, strict=True):
            self.fees[c.sender] += r.fee

    def balance(self, k: PrivateKey | bytes) -> int:
        return self.read(get_account, k if isinstance(k, bytes) else k.address).balance

    def spent(self, k: PrivateKey) -> int:
        """What ``k`` paid besides fees since genesis (negative: it gained)."""
        return 10_000 * HPC - self.balance(k) - self.fees[k.address]

    def until(self, height: int) -> None:
        while self.chain.height < height:
            self.block()

    def register_device(self, device: PrivateKey, owner: PrivateKey, serial: str) -> None:
        cert = sign_certificate(MAKER, device.public_key, "EV-1", serial, ("car.trips",))
        self.ok(owner, RegisterDevice(device.public_key, MAKER.address, "EV-1", serial,
                                      ("car.trips",), cert, owner.address,
                                      sign_pop(device, self.kit.chain_id, owner.address)))

    def store(self, owner: PrivateKey = OWNER) -> bytes:
        """A storage deal of ``owner`` (the providers sign random columns: the data module
        reads only who owns the file)."""
        salt = os.urandom(32)
        file_id = file_id_of(owner.address, salt)
        cols = []
        for j, p in enumerate(PROVIDERS):
            root = merkle.root_of_hashes([merkle.leaf_hash(os.urandom(64))])
            sig = p.sign(acceptance_bytes(self.kit.chain_id, file_id, j, root, 1_000, 1, 0,
                                          self.chain.height, owner.address))
            cols.append(NewColumn(p.address, j, root, self.chain.height, sig))
        self.ok(owner, CreateDeal(salt, 900, 1, 3, 1, 1_000, 1_000, 2, 2, tuple(cols), 0))
        self.keys[file_id] = os.urandom(32)
        return file_id

    def batch(self, asset: bytes, device: PrivateKey = CAR, *, start: int = 0,
              records: int = 3, owner: PrivateKey = OWNER) -> AddBatch:
        recs = [sign_message(device, "trip", start + i, {"km": 10 + i}) for i in range(records)]
        header = BatchHeader(device.public_key, SCHEMA, start * 1000,
                             (start + records) * 1000, records, records_root(recs))
        file_id = self.store(owner)
        return AddBatch(asset, header, sign_batch(device, header), file_id,
                        key_commitment(file_id, self.keys[file_id]))

    def buy(self, buyer: PrivateKey, consent: int, asset: bytes, batches: tuple[int, ...],
            *, purpose: str = "insurance", token: str = "HPC", max_total: int | None = None
            ) -> tuple[Buy, bytes]:
        nonce = os.urandom(16)
        keys = tuple(box_public(box_secret(buyer.seed, purchase_label(nonce, i)))
                     for i in range(len(batches)))
        total = PRICE * len(batches) if max_total is None else max_total
        return Buy(consent, asset, batches, purpose, token, total, nonce, keys), nonce

    def delivery(self, purchase_id: int, *, keys: dict[int, bytes] | None = None) -> Deliver:
        """What the owner's agent sends: each batch's file key sealed to the buyer's key."""
        p = self.read(dm.get_purchase, purchase_id)
        sealed = []
        for i, index in enumerate(p.batches):
            batch = self.read(dm.get_batch, p.asset, index)
            file_key = (keys or {}).get(i, self.keys[batch.file_id])
            sealed.append(seal(p.box_keys[i], file_key))
        return Deliver(purchase_id, p.buyer, p.box_keys, tuple(sealed))


def params() -> Params:
    return Params(storage_epoch_blocks=10, storage_audit_window=5,
                  storage_min_collateral=10 * HPC, data_asset_bond=BOND,
                  data_wrong_key_penalty=PENALTY, data_delivery_blocks=DELIVERY,
                  data_dispute_blocks=DISPUTE)


@pytest.fixture
def make_net(chainkit: Any) -> Any:
    def make(name: str = "a") -> Net:
        balances = {k: 10_000 * HPC for k in (MAKER, OWNER, INSURER, LENDER, STRANGER,
                                               *PROVIDERS)}
        return Net(chainkit, chainkit.open(chainkit.genesis(balances, params=params()),
                                           chainkit.root / name))
    return make


def setup(net: Net) -> bytes:
    """Maker, car, providers, an asset with two batches; returns the asset id."""
    net.ok(MAKER, RegisterManufacturer("Motors", MAKER.public_key, 1_000 * HPC))
    net.register_device(CAR, OWNER, "VIN-1")
    net.register_device(OLD_CAR, OWNER, "VIN-2")
    net.register_device(STRANGER_CAR, STRANGER, "VIN-3")
    receipts = net.block(*(net.sign(p, RegisterProvider(1 << 20, 10**6, 10**6, 100 * HPC,
                                                        f"tcp://127.0.0.1:{p.seed[0]}",
                                                        p.public_key)) for p in PROVIDERS))
    assert all(r.ok for r in receipts), [r.log for r in receipts]
    net.ok(OWNER, CreateAsset("my car", SCHEMA, "eu-west", (CAR.public_key,
                                                            OLD_CAR.public_key), BOND))
    asset = asset_id_of(OWNER.address, "my car")
    net.ok(OWNER, net.batch(asset, start=0))
    net.ok(OWNER, net.batch(asset, start=100, records=5))
    return asset


@pytest.fixture
def net(make_net: Any) -> Net:
    return make_net()


def consent(net: Net, asset: bytes, *, buyers: tuple[bytes, ...] = (), token: str = "HPC",
            price: int = PRICE, expiry: int = 10_000) -> int:
    r = net.ok(OWNER, GiveConsent((asset,), buyers, ("insurance", "research"), price, token,
                                  expiry))
    return int(attribute(r, "data_consent", "consent"))


def attribute(r: Receipt, kind: str, name: str) -> str:
    event = next(e for e in r.events if e.kind == kind)
    return next(a.value for a in event.attributes if a.key == name)


def purchase_id(r: Receipt) -> int:
    return int(attribute(r, "data_buy", "purchase"))


def data_state(net: Net) -> dict[bytes, bytes]:
    return net.read(lambda view: dict(view.iter_prefix(b"data/")))


# --- batches --------------------------------------------------------------------------------


def test_a_batch_signed_by_the_owners_device_is_registered_under_its_asset(net: Net) -> None:
    asset = setup(net)
    a = net.read(dm.get_asset, asset)
    assert (a.owner, a.schema, a.region, a.batches, a.records, a.bond) == (
        OWNER.address, SCHEMA, "eu-west", 2, 8, BOND)
    assert (a.start_ms, a.end_ms) == (0, 105_000)
    assert net.read(get_account, MODULE_ACCOUNT).balance == BOND
    b = net.read(dm.get_batch, asset, 1)
    assert (b.index, b.header.count, b.header.device) == (1, 5, CAR.public_key)


def test_batches_not_signed_by_a_registered_unrevoked_device_of_the_owner_are_refused(
        net: Net) -> None:
    asset = setup(net)
    good = net.batch(asset)
    forged = [sign_message(CAR, "trip", i, {"km": 10 + i}) for i in range(3)]
    forged[1] = sign_message(STRANGER_CAR, "trip", 1, {"km": 9999})  # a record slipped in
    net.ok(MAKER, RevokeDevice(OLD_CAR.public_key))
    unknown = key(99)
    cases = [
        (replace(good, header=replace(good.header, root=records_root(forged))),
         "bad signature by device"),
        (replace(good, signature=sign_batch(unknown, good.header)), "bad signature by device"),
        (net.batch(asset, OLD_CAR), "revoked by its manufacturer"),
        (net.batch(asset, unknown), "not a device of this asset"),
        (net.batch(asset, STRANGER_CAR), "not a device of this asset"),
        (replace(good, file_id=net.store(STRANGER)), "not a stored file of the sender"),
        (replace(good, header=replace(good.header, schema="car.mileage"),
                 signature=sign_batch(CAR, replace(good.header, schema="car.mileage"))),
         "is not the asset's"),
    ]
    before = data_state(net)
    for msg, why in cases:
        r = net.send(OWNER, msg)
        assert r.code == Code.FAILED and why in r.log, (why, r.log)
        assert data_state(net) == before, why
    r = net.send(STRANGER, good)
    assert r.code == Code.FAILED and "only the asset's owner" in r.log
    net.ok(OWNER, good)


def test_an_asset_needs_the_bond_and_the_senders_own_devices(net: Net) -> None:
    setup(net)
    r = net.send(OWNER, CreateAsset("cheap", SCHEMA, "eu-west", (CAR.public_key,), BOND - 1))
    assert r.code == Code.FAILED and "below the asset bond" in r.log
    r = net.send(OWNER, CreateAsset("theirs", SCHEMA, "eu-west",
                                    (STRANGER_CAR.public_key,), BOND))
    assert r.code == Code.FAILED and "belongs to another account" in r.log
    r = net.send(OWNER, CreateAsset("my car", "car.mileage", "eu-west", (CAR.public_key,), 1))
    assert r.code == Code.FAILED and "only its bond can be topped up" in r.log


# --- consent and purchases ------------------------------------------------------------------


def test_delivered_keys_are_paid_to_the_owner_after_the_dispute_window(net: Net) -> None:
    asset = setup(net)
    cid = consent(net, asset)
    owner_before = net.balance(OWNER) + net.fees[OWNER.address]
    msg, nonce = net.buy(INSURER, cid, asset, (0, 1))
    pid = purchase_id(net.ok(INSURER, msg))
    assert net.spent(INSURER) == 2 * PRICE
    assert net.read(get_account, MODULE_ACCOUNT).balance == BOND + 2 * PRICE
    assert [p.id for p in net.read(dm.waiting_sales, OWNER.address)] == [pid]
    net.ok(OWNER, net.delivery(pid))
    p = net.read(dm.get_purchase, pid)
    assert p.status == dm.DELIVERED and p.release == net.chain.height + DISPUTE
    assert net.read(dm.waiting_sales, OWNER.address) == []
    for i, index in enumerate(p.batches):  # the buyer opens each key and it is the right one
        file_id = net.read(dm.get_batch, asset, index).file_id
        opened = open_sealed(box_secret(INSURER.seed, purchase_label(nonce, i)), p.sealed[i])
        assert opened == net.keys[file_id]
    net.until(p.release - 1)
    assert net.balance(OWNER) + net.fees[OWNER.address] == owner_before  # not yet
    net.block()
    assert net.read(dm.get_purchase, pid).status == dm.SETTLED
    assert net.balance(OWNER) + net.fees[OWNER.address] == owner_before + 2 * PRICE
    assert net.read(get_account, MODULE_ACCOUNT).balance == BOND


def test_a_purchase_with_no_key_by_its_deadline_is_refunded(net: Net) -> None:
    asset = setup(net)
    cid = consent(net, asset)
    pid = purchase_id(net.ok(INSURER, net.buy(INSURER, cid, asset, (1,))[0]))
    deadline = net.read(dm.get_purchase, pid).deadline
    net.until(deadline)
    p = net.read(dm.get_purchase, pid)
    assert (p.status, p.escrow) == (dm.REFUNDED, 0)
    assert net.spent(INSURER) == 0
    late = net.send(OWNER, net.delivery(pid))
    assert late.code == Code.FAILED and "already refunded" in late.log


def test_purchases_without_an_open_consent_for_this_buyer_are_refused_and_pay_nothing(
        net: Net) -> None:
    asset = setup(net)
    cid = consent(net, asset, buyers=(INSURER.address,))
    short = consent(net, asset, expiry=net.chain.height + 1)
    gone = consent(net, asset)
    net.ok(OWNER, WithdrawConsent(gone))
    cases = [
        (INSURER, net.buy(INSURER, 99, asset, (0,))[0], "no consent 99"),
        (LENDER, net.buy(LENDER, cid, asset, (0,))[0], "does not name this buyer"),
        (INSURER, net.buy(INSURER, cid, asset, (0,), purpose="marketing")[0],
         "does not allow purpose 'marketing'"),
        (INSURER, net.buy(INSURER, cid, asset, (0,), token="PARK")[0], "priced in HPC"),
        (INSURER, net.buy(INSURER, cid, asset, (0, 1), max_total=PRICE)[0], "above max_total"),
        (INSURER, net.buy(INSURER, cid, asset, (7,))[0], "no batch 7"),
        (INSURER, net.buy(INSURER, cid, os.urandom(32), (0,))[0], "does not cover asset"),
        (LENDER, net.buy(LENDER, gone, asset, (0,))[0], "was withdrawn"),
    ]
    net.block()
    cases.append((LENDER, net.buy(LENDER, short, asset, (0,))[0], "expired"))
    before = data_state(net)
    for buyer, msg, why in cases:
        r = net.send(buyer, msg)
        assert r.code == Code.FAILED and why in r.log, (why, r.log)
        assert data_state(net) == before, why
    assert net.spent(INSURER) == net.spent(LENDER) == 0
    net.ok(INSURER, net.buy(INSURER, cid, asset, (0,))[0])


def test_withdrawing_consent_stops_new_sales_but_buyers_keep_their_keys(net: Net) -> None:
    asset = setup(net)
    cid = consent(net, asset)
    msg, nonce = net.buy(INSURER, cid, asset, (0,))
    pid = purchase_id(net.ok(INSURER, msg))
    r = net.send(STRANGER, WithdrawConsent(cid))
    assert r.code == Code.FAILED and "only the owner" in r.log
    net.ok(OWNER, WithdrawConsent(cid))
    refused = net.send(LENDER, net.buy(LENDER, cid, asset, (0,))[0])
    assert refused.code == Code.FAILED and "withdrawn" in refused.log
    assert net.spent(LENDER) == 0
    net.ok(OWNER, net.delivery(pid))  # a sale made before the withdrawal is honoured
    net.until(net.read(dm.get_purchase, pid).release)
    p = net.read(dm.get_purchase, pid)
    assert p.status == dm.SETTLED
    file_id = net.read(dm.get_batch, asset, 0).file_id
    assert open_sealed(box_secret(INSURER.seed, purchase_label(nonce, 0)),
                       p.sealed[0]) == net.keys[file_id]
    again = net.send(OWNER, WithdrawConsent(cid))
    assert again.code == Code.FAILED and "already withdrawn" in again.log


def test_a_second_delivery_or_one_for_another_buyer_is_refused(net: Net) -> None:
    asset = setup(net)
    cid = consent(net, asset)
    pid = purchase_id(net.ok(INSURER, net.buy(INSURER, cid, asset, (0,))[0]))
    other = purchase_id(net.ok(LENDER, net.buy(LENDER, cid, asset, (0,))[0]))
    good = net.delivery(pid)
    lender = net.delivery(other)
    cases = [
        (OWNER, replace(good, buyer=LENDER.address), "another buyer"),
        (OWNER, replace(good, box_keys=lender.box_keys, sealed=lender.sealed),
         "another buyer"),
        (STRANGER, good, "only the data's owner"),
    ]
    before = data_state(net)
    for sender, msg, why in cases:
        r = net.send(sender, msg)
        assert r.code == Code.FAILED and why in r.log, (why, r.log)
        assert data_state(net) == before, why
    net.ok(OWNER, good)
    again = net.send(OWNER, good)
    assert again.code == Code.FAILED and "keys are delivered once" in again.log


def test_a_wrong_key_is_proven_on_chain_refunded_and_the_owner_penalised(net: Net) -> None:
    asset = setup(net)
    cid = consent(net, asset)
    msg, nonce = net.buy(INSURER, cid, asset, (0, 1))
    pid = purchase_id(net.ok(INSURER, msg))
    net.ok(OWNER, net.delivery(pid, keys={1: os.urandom(32)}))  # batch 1: a wrong key
    secret = [box_secret(INSURER.seed, purchase_label(nonce, i)) for i in range(2)]
    cases = [
        (INSURER, ProveWrongKey(pid, 0, secret[0]), "it is right"),
        (INSURER, ProveWrongKey(pid, 1, secret[0]), "not the secret of the box key"),
        (LENDER, ProveWrongKey(pid, 1, secret[1]), "only the buyer"),
        (INSURER, ProveWrongKey(pid, 2, secret[1]), "has 2 batches"),
    ]
    before = data_state(net)
    for sender, proof, why in cases:
        r = net.send(sender, proof)
        assert r.code == Code.FAILED and why in r.log, (why, r.log)
        assert data_state(net) == before, why
    net.ok(INSURER, ProveWrongKey(pid, 1, secret[1]))
    assert net.spent(INSURER) == 2 * PRICE - PRICE - PENALTY  # refund + penalty back
    assert net.read(dm.get_asset, asset).bond == BOND - PENALTY
    twice = net.send(INSURER, ProveWrongKey(pid, 1, secret[1]))
    assert twice.code == Code.FAILED and "already proven wrong" in twice.log
    owner_before = net.balance(OWNER) + net.fees[OWNER.address]
    net.until(net.read(dm.get_purchase, pid).release)
    assert net.balance(OWNER) + net.fees[OWNER.address] == owner_before + PRICE  # batch 0
    # the asset's bond is below the minimum now: it sells nothing until topped up
    r = net.send(LENDER, net.buy(LENDER, cid, asset, (0,))[0])
    assert r.code == Code.FAILED and "suspended" in r.log
    net.ok(OWNER, CreateAsset("my car", SCHEMA, "eu-west", (CAR.public_key,
                                                            OLD_CAR.public_key), PENALTY))
    net.ok(LENDER, net.buy(LENDER, cid, asset, (0,))[0])


def test_a_key_sealed_to_another_key_is_proven_wrong_too(net: Net) -> None:
    asset = setup(net)
    cid = consent(net, asset)
    msg, nonce = net.buy(INSURER, cid, asset, (0,))
    pid = purchase_id(net.ok(INSURER, msg))
    good = net.delivery(pid)
    file_id = net.read(dm.get_batch, asset, 0).file_id
    misdirected = seal(box_public(os.urandom(32)), net.keys[file_id])
    net.ok(OWNER, replace(good, sealed=(misdirected,)))
    net.ok(INSURER, ProveWrongKey(pid, 0, box_secret(INSURER.seed, purchase_label(nonce, 0))))
    net.until(net.read(dm.get_purchase, pid).release)
    p = net.read(dm.get_purchase, pid)
    assert (p.status, p.escrow, p.proven) == (dm.SETTLED, 0, (0,))
    assert net.spent(INSURER) == -PENALTY
    late = net.send(INSURER, ProveWrongKey(pid, 0, bytes(32)))
    assert late.code == Code.FAILED and "is settled" in late.log


def test_prices_in_an_iot_coin_are_escrowed_and_paid_in_that_token(net: Net) -> None:
    asset = setup(net)
    net.ok(STRANGER, Issue("MILE", "Mile coin", 0, 1_000_000, False, 1_000_000))
    net.ok(STRANGER, TokenTransfer("MILE", INSURER.address, 1_000))
    cid = consent(net, asset, token="MILE", price=300)
    msg, _ = net.buy(INSURER, cid, asset, (0, 1), token="MILE", max_total=600)
    pid = purchase_id(net.ok(INSURER, msg))
    assert net.read(token_balance, "MILE", MODULE_ACCOUNT) == 600
    poor = net.send(INSURER, net.buy(INSURER, cid, asset, (0, 1), token="MILE",
                                     max_total=600)[0])
    assert poor.code == Code.INSUFFICIENT_FUNDS
    net.ok(OWNER, net.delivery(pid))
    net.until(net.read(dm.get_purchase, pid).release)
    assert net.read(token_balance, "MILE", OWNER.address) == 600
    assert net.read(token_balance, "MILE", INSURER.address) == 400
    assert net.read(token_balance, "MILE", MODULE_ACCOUNT) == 0


# --- shares ---------------------------------------------------------------------------------


def test_a_stored_file_is_shared_by_sealing_its_key_to_the_recipients_box_key(
        net: Net) -> None:
    setup(net)
    file_id = net.store(OWNER)
    sealed = seal(box_public(account_box_secret(LENDER)), net.keys[file_id])
    r = net.send(OWNER, ShareFile(file_id, LENDER.address, sealed))
    assert r.code == Code.FAILED and "no box key registered" in r.log
    net.ok(LENDER, SetBoxKey(box_public(account_box_secret(LENDER))))
    r = net.send(STRANGER, ShareFile(file_id, LENDER.address, sealed))
    assert r.code == Code.FAILED and "not a stored file of the sender" in r.log
    net.ok(OWNER, ShareFile(file_id, LENDER.address, sealed))
    share = net.read(dm.get_share, file_id, LENDER.address)
    assert open_sealed(account_box_secret(LENDER), share.sealed) == net.keys[file_id]
    assert open_sealed(account_box_secret(STRANGER), share.sealed) is None


# --- stateless checks and determinism -----------------------------------------------------


@pytest.mark.parametrize(("msg", "why"), [
    (CreateAsset("", SCHEMA, "eu", (bytes(32),), BOND), "asset name"),
    (CreateAsset("a", "Car Trips", "eu", (bytes(32),), BOND), "invalid schema"),
    (CreateAsset("a", SCHEMA, "eu", (), BOND), "devices"),
    (GiveConsent((bytes(32),), (), (), PRICE, "HPC", 10), "purposes"),
    (GiveConsent((bytes(32),), (), ("x",), PRICE, "bad token!", 10), "symbol"),
    (Buy(1, bytes(32), (), "x", "HPC", 0, bytes(16), ()), "at least one batch"),
    (Buy(1, bytes(32), (0, 0), "x", "HPC", 0, bytes(16), (bytes(32),) * 2), "distinct"),
    (Buy(1, bytes(32), (0,), "x", "HPC", 0, bytes(16), ()), "one box key per batch"),
    (Deliver(1, bytes(20), (bytes(32),), (bytes(10),)), "80 bytes"),
    (ShareFile(bytes(32), bytes(20), b"short"), "80 bytes"),
])
def test_malformed_payloads_are_refused_before_the_mempool(net: Net, msg: Any,
                                                           why: str) -> None:
    validate = net.chain.executor.msgs[net.kinds[type(msg)]].validate
    with pytest.raises(TxError) as exc:
        validate(msg)
    assert exc.value.code == Code.INVALID_PAYLOAD and why in exc.value.message


def test_two_chains_fed_the_same_blocks_reach_the_same_state_root(make_net: Any) -> None:
    net = make_net("a")
    asset = setup(net)
    cid = consent(net, asset)
    msg, nonce = net.buy(INSURER, cid, asset, (0, 1))
    pid = purchase_id(net.ok(INSURER, msg))
    net.ok(OWNER, net.delivery(pid, keys={0: os.urandom(32)}))
    net.ok(LENDER, net.buy(LENDER, cid, asset, (1,))[0])  # never delivered: refunded
    net.ok(INSURER, ProveWrongKey(pid, 0, box_secret(INSURER.seed, purchase_label(nonce, 0))))
    net.ok(OWNER, WithdrawConsent(cid))
    net.until(net.chain.height + DISPUTE + 1)
    twin = make_net("b")
    for block in net.blocks:
        twin.chain.apply_block(block, twin.kit.checked_of_block(twin.chain, block.txs))
    assert twin.chain.state_root == net.chain.state_root
    assert data_state(twin) == data_state(net)


def test_discovery_finds_assets_on_offer_by_schema_model_region_time_and_price(
        net: Net) -> None:
    from smartchain.modules.data import queries as dq

    asset = setup(net)
    cid = consent(net, asset)

    def search(**filters: Any) -> list[str]:
        args = {"schema": "", "region": "", "model": "", "from_ms": None, "to_ms": None,
                "max_price": None, "height": net.chain.height, "limit": 50, **filters}
        return [a["id"] for a in net.read(dq._search, args)["assets"]]

    assert search() == [asset.hex()]
    assert search(schema=SCHEMA, model="EV-1", region="eu-west", from_ms=100_000,
                  to_ms=101_000, max_price=PRICE) == [asset.hex()]
    assert search(schema="car.mileage") == search(model="EV-2") == []
    assert search(region="us-east") == search(max_price=PRICE - 1) == []
    assert search(from_ms=200_000) == []  # its records end at 105 s
    assert search(to_ms=0) == [asset.hex()]  # its first batch starts at 0
    assert search(height=10**9) == []  # its consent has expired by then
    net.ok(OWNER, WithdrawConsent(cid))
    assert search() == []  # nothing on offer once consent is withdrawn
