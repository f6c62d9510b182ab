"""The storage module on a real chain: providers, deals with signed acceptances, escrow,
audits opened from the beacon and answered with Merkle proofs, slashing, repair,
cancelling, bandwidth receipts, deals ending, and two chains fed the same blocks agreeing.

The test plays the providers: it keeps each column's pieces (random bytes: the chain never
sees erasure coding) and answers the open challenges with chunks and Merkle paths.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from framework.chain import ChainNet

from smartchain.crypto import merkle
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.modules.storage import module as sm
from smartchain.modules.storage.module import (
    columns_of,
    deal_view,
    deals_of,
    get_deal,
    get_provider,
    open_challenges,
    repairs,
)
from smartchain.modules.storage.types import (
    GIB,
    MODULE_ACCOUNT,
    AuditProof,
    CancelDeal,
    ClaimBandwidth,
    CreateDeal,
    DeregisterProvider,
    NewColumn,
    Prove,
    RegisterProvider,
    Repair,
    acceptance_bytes,
    epoch_fee,
    file_id_of,
    sign_receipt,
)
from smartchain.state.chain import Chain
from smartchain.state.params import Params
from smartchain.types.block import commit_hash
from smartchain.types.consensus import EMPTY_COMMIT
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt

HPC = 10**8
COLLATERAL = 100 * HPC
PRICE = 10**13  # per GiB per epoch: big, so a small test file costs whole HPC
BW_PRICE = 10**12  # per GiB served
CAPACITY = 1 << 20
EPOCH = 10
WINDOW = 5
TTL = 20
SEGMENTS = 6
PIECE = 2_500  # 3 leaves: 1024, 1024, 452
LAST = 1_100  # 2 leaves: 1024, 76
COLUMN_BYTES = (SEGMENTS - 1) * PIECE + LAST


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


OWNER = key(80)
PROVIDERS = [key(81 + i) for i in range(6)]
REPAIRER = key(88)
PROPOSER = key(89)
POOR = key(90)
ATTACKER = key(92)  # replays, forges, colludes


def chunks(piece: bytes) -> list[bytes]:
    return [piece[i:i + 1024] for i in range(0, len(piece), 1024)] or [b""]


def piece_root(piece: bytes) -> bytes:
    return merkle.root_of_hashes([merkle.leaf_hash(c) for c in chunks(piece)])


class Column:
    """One fragment index of a file, as its provider keeps it."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.piece_roots = [piece_root(p) for p in pieces]
        self.root = merkle.root_of_hashes(self.piece_roots)
        self.nbytes = sum(len(p) for p in pieces)

    def proof(self, file_id: bytes, frag: int, segment: int, leaf: int) -> AuditProof:
        piece = self.pieces[segment]
        parts = chunks(piece)
        leaves = [merkle.leaf_hash(c) for c in parts]
        return AuditProof(file_id, frag, segment, parts[leaf], merkle.prove(leaves, leaf),
                          merkle.prove(self.piece_roots, segment))


def random_column(segments: int = SEGMENTS, piece: int = PIECE, last: int = LAST) -> Column:
    return Column([os.urandom(piece) for _ in range(segments - 1)] + [os.urandom(last)])


class Net(ChainNet):
    """The storage tests' chain, with the providers' piece stores."""

    def __init__(self, kit: Any, chain: Chain) -> None:
        super().__init__(kit, chain, PROPOSER)
        self.fees: Counter[bytes] = Counter()
        self.held: dict[tuple[bytes, bytes, int], Column] = {}  # (provider, file_id, frag)

    def on_block(self, checked: list[Any], receipts: list[Receipt]) -> None:
        for c, r in zip(checked, receipts, strict=True):
            self.fees[c.sender] += r.fee

    def balance(self, k: PrivateKey | bytes) -> int:
        return self.read(get_account, k if isinstance(k, bytes) else k.address).balance

    def register(self, providers: list[PrivateKey], *, capacity: int = CAPACITY,
                 price: int = PRICE) -> None:
        receipts = self.block(*(self.sign(p, register_msg(p, capacity=capacity, price=price))
                                for p in providers))
        assert all(r.ok for r in receipts), [r.log for r in receipts]

    def until(self, height: int) -> None:
        """Empty blocks until ``height`` is the chain's latest block."""
        while self.chain.height < height:
            self.block()

    def next_epoch(self) -> None:
        """Run to the first block of the next epoch (its challenges are then open)."""
        self.until((self.chain.height // EPOCH + 1) * EPOCH)

    def new_column(self, provider: PrivateKey, file_id: bytes, frag: int, column: Column,
                   signer: PrivateKey | None = None, *, uploader: PrivateKey = OWNER,
                   round: int = 0, height: int | None = None) -> NewColumn:
        """``provider``'s acceptance of placement ``round`` of a column ``uploader`` sent it,
        signed at ``height`` (default: now)."""
        height = self.chain.height if height is None else height
        message = acceptance_bytes(self.kit.chain_id, file_id, frag, column.root, column.nbytes,
                                   len(column.pieces), round, height, uploader.address)
        return NewColumn(provider.address, frag, column.root, height,
                         (signer or provider).sign(message))

    def repair_column(self, file_id: bytes, frag: int, provider: PrivateKey,
                      uploader: PrivateKey = REPAIRER, **kw: Any) -> NewColumn:
        """``provider``'s acceptance of the next round of a lost column, as ``uploader``
        sent it (the bytes the test keeps for the column's provider)."""
        deal = self.read(get_deal, file_id)
        old = next(c for c in deal.columns if c.frag_index == frag)
        column = self.held[(old.provider, file_id, frag)]
        kw.setdefault("round", old.round + 1)
        return self.new_column(provider, file_id, frag, column, uploader=uploader, **kw)

    def deal_msg(self, owner: PrivateKey, providers: list[PrivateKey], *, k: int = 2,
                 epochs: int = 3, salt: bytes | None = None, threshold: int | None = None,
                 max_cost: int = 0, segments: int = SEGMENTS, piece: int = PIECE,
                 last: int = LAST) -> tuple[CreateDeal, bytes, list[Column]]:
        salt = salt or os.urandom(32)
        file_id = file_id_of(owner.address, salt)
        cols = [random_column(segments, piece, last) for _ in providers]
        new = tuple(self.new_column(p, file_id, j, c, uploader=owner)
                    for j, (p, c) in enumerate(zip(providers, cols, strict=True)))
        n = len(providers)
        msg = CreateDeal(salt, 12_345, k, n + 1, segments, piece, last, epochs,
                         threshold or n, new, max_cost)
        return msg, file_id, cols

    def deal(self, providers: list[PrivateKey], **kw: Any) -> bytes:
        msg, file_id, cols = self.deal_msg(OWNER, providers, **kw)
        self.ok(OWNER, msg)
        for j, (p, c) in enumerate(zip(providers, cols, strict=True)):
            self.held[(p.address, file_id, j)] = c
        return file_id

    def proofs(self, provider: PrivateKey) -> list[AuditProof]:
        return [self.held[(provider.address, ch.file_id, ch.frag_index)].proof(
                    ch.file_id, ch.frag_index, ch.segment, ch.leaf)
                for ch in self.read(open_challenges, provider.address)]

    def prove_all(self, providers: list[PrivateKey]) -> dict[bytes, int]:
        """Every provider answers its open challenges in one block; returns the fees paid."""
        senders = [p for p in providers if self.read(open_challenges, p.address)]
        receipts = self.block(*(self.sign(p, Prove(tuple(self.proofs(p)))) for p in senders))
        assert all(r.ok for r in receipts), [r.log for r in receipts]
        return {p.address: r.fee for p, r in zip(senders, receipts, strict=True)}


def register_msg(p: PrivateKey, *, capacity: int = CAPACITY, price: int = PRICE,
                 collateral: int = COLLATERAL) -> RegisterProvider:
    return RegisterProvider(capacity, price, BW_PRICE, collateral, f"tcp://127.0.0.1:{p.seed[0]}",
                            p.public_key)


def params(**kw: Any) -> Params:
    base = dict(storage_epoch_blocks=EPOCH, storage_audit_window=WINDOW,
                storage_receipt_ttl=TTL, storage_min_collateral=10 * HPC,
                storage_audit_segments=4)  # tests of the default count set it themselves
    base.update(kw)
    return Params(**base)


@pytest.fixture
def make_net(chainkit) -> Any:
    def make(name: str = "a", **kw: Any) -> Net:
        balances = {k: 10_000 * HPC for k in [OWNER, *PROVIDERS, REPAIRER, ATTACKER]}
        balances[POOR] = HPC
        gen = chainkit.genesis(balances, params=params(**kw))
        return Net(chainkit, chainkit.open(gen, chainkit.root / name))

    return make


@pytest.fixture
def net(make_net: Any) -> Net:
    return make_net()


def storage_state(net: Net) -> dict[bytes, bytes]:
    return net.read(lambda view: dict(view.iter_prefix(b"storage/")))



def fee() -> int:
    return epoch_fee(PRICE, COLUMN_BYTES)


# --- providers ---------------------------------------------------------------------------------


def test_register_locks_collateral_and_deregister_returns_it(net: Net) -> None:
    p = PROVIDERS[0]
    before = net.balance(p)
    net.ok(p, register_msg(p))
    info = net.read(get_provider, p.address)
    assert (info.pubkey, info.capacity, info.used, info.price, info.collateral, info.active,
            info.reputation) == (p.public_key, CAPACITY, 0, PRICE, COLLATERAL, True, 1_000)
    assert net.balance(MODULE_ACCOUNT) == COLLATERAL
    net.ok(p, register_msg(p, capacity=2 * CAPACITY, price=2 * PRICE, collateral=HPC))
    info = net.read(get_provider, p.address)
    assert (info.capacity, info.price, info.collateral) == (2 * CAPACITY, 2 * PRICE,
                                                            COLLATERAL + HPC)
    assert net.balance(p) == before - COLLATERAL - HPC - net.fees[p.address]

    q = PROVIDERS[1]
    for bad, why in [(register_msg(q, collateral=HPC), "collateral"),
                     (register_msg(q, price=999), "price"),
                     (replace(register_msg(q), pubkey=p.public_key), "pubkey")]:
        r = net.send(q, bad)
        assert r.code == Code.FAILED and why in r.log
    assert net.read(get_provider, q.address) is None
    with pytest.raises(TxError) as err:
        net.kit.check(net.chain, net.sign(q, register_msg(q, capacity=0)))
    assert err.value.code == Code.INVALID_PAYLOAD

    net.ok(p, DeregisterProvider())
    assert net.balance(p) == before - net.fees[p.address]
    assert not net.read(get_provider, p.address).active
    assert net.send(p, DeregisterProvider()).code == Code.FAILED


def test_a_provider_holding_columns_cannot_deregister(net: Net) -> None:
    net.register(PROVIDERS[:3])
    net.deal(PROVIDERS[:3])
    r = net.send(PROVIDERS[0], DeregisterProvider())
    assert r.code == Code.FAILED and "holds" in r.log
    r = net.send(PROVIDERS[0], register_msg(PROVIDERS[0], capacity=COLUMN_BYTES - 1))
    assert r.code == Code.FAILED and "capacity" in r.log


# --- deals -------------------------------------------------------------------------------------


def test_create_deal_takes_escrow_and_repair_budget(net: Net) -> None:
    net.register(PROVIDERS[:3])
    start = net.balance(OWNER)
    file_id = net.deal(PROVIDERS[:3], epochs=3)
    view = net.read(deal_view, file_id)
    escrow = 3 * 3 * fee()
    budget = escrow * 2_000 // 10_000
    assert fee() == -(-PRICE * COLUMN_BYTES // GIB) > HPC // 2
    assert (view.status, view.column_bytes, view.healthy) == ("active", COLUMN_BYTES, 3)
    d = view.deal
    assert (d.escrow, d.repair_budget, d.start_epoch, d.end_epoch) == (escrow, budget, 1, 4)
    assert [c.provider for c in d.columns] == [p.address for p in PROVIDERS[:3]]
    assert net.balance(OWNER) == start - escrow - budget - net.fees[OWNER.address]
    assert net.balance(MODULE_ACCOUNT) == 3 * COLLATERAL + escrow + budget
    assert [v.file_id for v in net.read(deals_of, OWNER.address)] == [file_id]
    for j, p in enumerate(PROVIDERS[:3]):
        assert net.read(get_provider, p.address).used == COLUMN_BYTES
        assert [(c.file_id, c.frag_index) for c in net.read(columns_of, p.address)] == [
            (file_id, j)]
    assert net.read(open_challenges, PROVIDERS[0].address) == []  # starts next epoch


def test_rejected_deals_change_nothing(make_net: Any) -> None:
    net = make_net(storage_epoch_blocks=1_000)  # no epoch starts while we compare states
    net.register(PROVIDERS[:3])
    net.register(PROVIDERS[3:4], capacity=COLUMN_BYTES - 1)
    taken = net.deal(PROVIDERS[:3])
    salt = net.read(get_deal, taken).salt
    three = PROVIDERS[:3]

    def bad_signature() -> CreateDeal:
        msg, file_id, cols = net.deal_msg(OWNER, three)
        forged = net.new_column(three[1], file_id, 1, cols[1], signer=three[2])
        return replace(msg, columns=(msg.columns[0], forged, msg.columns[2]))

    def wrong_root() -> CreateDeal:
        msg, _file_id, _cols = net.deal_msg(OWNER, three)
        c = msg.columns[0]
        return replace(msg, columns=(replace(c, root=bytes(32)), *msg.columns[1:]))

    cases = [
        (OWNER, bad_signature(), Code.FAILED, "did not sign"),
        (OWNER, wrong_root(), Code.FAILED, "did not sign"),
        (OWNER, net.deal_msg(OWNER, [*PROVIDERS[:2], PROVIDERS[5]])[0], Code.FAILED,
         "not an active"),
        (OWNER, net.deal_msg(OWNER, three, salt=salt)[0], Code.FAILED, "exists"),
        (POOR, net.deal_msg(POOR, three)[0], Code.INSUFFICIENT_FUNDS, "insufficient"),
        (OWNER, net.deal_msg(OWNER, [*PROVIDERS[:2], PROVIDERS[3]])[0], Code.FAILED,
         "bytes free"),
        (OWNER, net.deal_msg(OWNER, three, max_cost=fee())[0], Code.FAILED, "max_cost"),
        (OWNER, net.deal_msg(OWNER, three)[0], None, ""),  # the control: this one passes
    ]
    before = storage_state(net)
    module = net.balance(MODULE_ACCOUNT)
    for sender, msg, code, why in cases[:-1]:
        r = net.send(sender, msg)
        assert r.code == code and why in r.log, (why, r.log)
        assert storage_state(net) == before, why
        assert net.balance(MODULE_ACCOUNT) == module
    net.ok(OWNER, cases[-1][1])
    assert storage_state(net) != before


@pytest.mark.parametrize("change", ["duplicate providers", "duplicate fragments", "k >= n",
                                    "threshold <= k", "fragment >= code_n", "no epochs"])
def test_malformed_deals_are_refused_before_the_mempool(net: Net, change: str) -> None:
    net.register(PROVIDERS[:3])
    msg, _file_id, _cols = net.deal_msg(OWNER, PROVIDERS[:3])
    c = msg.columns
    msg = {
        "duplicate providers": replace(msg, columns=(c[0], replace(c[1], provider=c[0].provider),
                                                     c[2])),
        "duplicate fragments": replace(msg, columns=(c[0], replace(c[1], frag_index=0), c[2])),
        "k >= n": replace(msg, k=3),
        "threshold <= k": replace(msg, repair_threshold=2),
        "fragment >= code_n": replace(msg, code_n=3, columns=(
            c[0], c[1], replace(c[2], frag_index=3))),
        "no epochs": replace(msg, epochs=0),
    }[change]
    with pytest.raises(TxError) as err:
        net.kit.check(net.chain, net.sign(OWNER, msg))
    assert err.value.code == Code.INVALID_PAYLOAD


# --- audits ------------------------------------------------------------------------------------


def test_challenges_open_from_the_beacon_and_proofs_pay_the_providers(net: Net) -> None:
    net.register(PROVIDERS[:3])
    file_id = net.deal(PROVIDERS[:3])
    before = {p.address: net.balance(p) for p in PROVIDERS[:3]}
    net.next_epoch()
    deal = net.read(get_deal, file_id)
    beacon = commit_hash(EMPTY_COMMIT)  # what this chain's blocks carry as last_commit
    for j, p in enumerate(PROVIDERS[:3]):
        open_ = net.read(open_challenges, p.address)
        assert len(open_) == 4 and len({c.segment for c in open_}) == 4
        picks = sm.audit_picks(beacon, file_id, j, deal, 4)
        assert sorted(picks) == [(c.segment, c.leaf) for c in open_]
        assert all(c.deadline == EPOCH + WINDOW for c in open_)
    fees = net.prove_all(PROVIDERS[:3])
    for p in PROVIDERS[:3]:
        assert net.read(open_challenges, p.address) == []
        assert net.balance(p) == before[p.address] + fee() - fees[p.address]
        assert net.read(get_provider, p.address).reputation == 1_001
    assert net.read(get_deal, file_id).escrow == 3 * 3 * fee() - 3 * fee()


def audit_deal(segments: int, piece: int, last: int) -> sm.Deal:
    return sm.Deal(b"o" * 20, b"s" * 32, 1, 2, 4, segments, piece, last, 1, 2, 3, 0, 0, (), 0)


def test_audit_picks_are_distinct_leaves_on_distinct_segments_first() -> None:
    deal = audit_deal(5, PIECE, LAST)  # 4 pieces of 3 leaves, the last of 2: 14 leaves
    for beacon in (bytes(32), b"\x01" * 32):
        picks = sm.audit_picks(beacon, b"f" * 32, 1, deal, 4)
        assert len({s for s, _ in picks}) == 4
        assert all(leaf < (2 if s == 4 else 3) for s, leaf in picks)
    nine = sm.audit_picks(bytes(32), b"f" * 32, 1, deal, 9)
    assert len(set(nine)) == 9 and {s for s, _ in nine} == {0, 1, 2, 3, 4}
    assert sorted(sm.audit_picks(bytes(32), b"f" * 32, 1, deal, 99)) == [
        (s, leaf) for s in range(5) for leaf in range(2 if s == 4 else 3)]  # every leaf
    assert sm.audit_picks(bytes(32), b"f" * 32, 1, deal, 4) != sm.audit_picks(
        b"\x01" * 32, b"f" * 32, 1, deal, 4)


def test_a_one_segment_column_is_challenged_on_as_many_leaves_as_a_long_one() -> None:
    count = Params().storage_audit_segments
    deal = audit_deal(1, 0, 64 * 1024)  # a small file: one piece of 64 leaves
    picks = sm.audit_picks(b"\x07" * 32, b"f" * 32, 0, deal, count)
    assert count == 22 and len(set(picks)) == 22 and {s for s, _ in picks} == {0}


def test_a_provider_missing_a_tenth_of_a_column_is_caught_within_three_epochs() -> None:
    """With the default challenge count a provider that dropped 10 % of a column's leaves
    passes an epoch with p = 0.9^22 = 0.098 at most (docs/storage.md), three in a row with
    p < 0.001. Measured over 4,000 beacons on a 40-segment column."""
    count = Params().storage_audit_segments
    deal = audit_deal(40, 3 * 1024, 3 * 1024)  # 120 leaves
    leaves = [(s, leaf) for s in range(40) for leaf in range(3)]
    lost = set(sorted(leaves, key=lambda x: merkle.leaf_hash(bytes(x)))[:12])  # 10 %
    passed = sum(not lost & set(sm.audit_picks(merkle.leaf_hash(i.to_bytes(4, "big")),
                                                b"f" * 32, 0, deal, count))
                 for i in range(4_000))
    assert passed / 4_000 <= 0.9 ** 22
    assert (0.9 ** 22) ** 3 < 0.001


def test_wrong_proofs_are_refused_and_change_nothing(net: Net) -> None:
    net.register(PROVIDERS[:3])
    net.deal(PROVIDERS[:3])
    net.next_epoch()
    p = PROVIDERS[0]
    good = net.proofs(p)
    first = good[0]
    flipped = bytes([first.chunk[0] ^ 1]) + first.chunk[1:]
    other_leaf = (first.piece_path.index + 1) % first.piece_path.size
    bad = {
        "a flipped byte": replace(first, chunk=flipped),
        "another leaf": net.held[(p.address, first.file_id, 0)].proof(
            first.file_id, 0, first.segment, other_leaf),
        "a wrong column path": replace(first, column_path=replace(
            first.column_path, path=first.column_path.path[::-1])),
        "a short chunk": replace(first, chunk=first.chunk[:-1]),
    }
    before = storage_state(net)
    for what, proof in bad.items():
        r = net.send(p, Prove((*good[1:], proof)))
        assert r.code == Code.FAILED, what
        assert storage_state(net) == before, what
    r = net.send(PROVIDERS[1], Prove((first,)))  # not the column's provider
    assert r.code == Code.FAILED and "holds no column" in r.log
    assert len(net.read(open_challenges, p.address)) == 4  # all still open
    net.until(EPOCH + WINDOW)
    r = net.send(p, Prove(tuple(good)))  # one block after the deadline
    assert r.code == Code.FAILED and "closed" in r.log


def test_a_batch_proof_answers_many_deals_at_once(net: Net) -> None:
    net.register(PROVIDERS[:3])
    ids = [net.deal(PROVIDERS[:3]) for _ in range(3)]
    net.next_epoch()
    before = net.balance(PROVIDERS[0])
    proofs = net.proofs(PROVIDERS[0])
    assert len(proofs) == 12 and {pr.file_id for pr in proofs} == set(ids)
    receipt = net.ok(PROVIDERS[0], Prove(tuple(proofs)))
    assert net.balance(PROVIDERS[0]) == before + 3 * fee() - receipt.fee


def test_an_unanswered_challenge_slashes_and_the_column_goes_unhealthy(net: Net) -> None:
    net.register(PROVIDERS[:3])
    file_id = net.deal(PROVIDERS[:3], epochs=5)
    silent = PROVIDERS[2]
    net.next_epoch()
    paid_before = net.balance(silent)
    net.prove_all(PROVIDERS[:2])
    budget = net.read(get_deal, file_id).repair_budget
    net.next_epoch()
    p = net.read(get_provider, silent.address)
    slash = sm.column_collateral(net.chain.params, COLUMN_BYTES)  # storage_slash_bps: all of it
    assert (p.collateral, p.reputation, p.misses, p.active) == (COLLATERAL - slash, 900, 1, True)
    assert net.balance(silent) == paid_before  # no pay, and it sent nothing
    deal = net.read(get_deal, file_id)
    assert [c.healthy for c in deal.columns] == [True, True, False]
    assert deal.repair_budget == budget + slash
    assert net.read(open_challenges, silent.address) == []  # unhealthy: no longer audited
    assert len(net.read(open_challenges, PROVIDERS[0].address)) == 4
    assert [v.file_id for v in net.read(repairs)] == [file_id]


# --- repair ------------------------------------------------------------------------------------


def test_repair_replaces_the_column_and_pays_the_repairer_once_it_is_audited(net: Net) -> None:
    net.register(PROVIDERS[:4])
    file_id = net.deal(PROVIDERS[:3], epochs=5)
    old, new = PROVIDERS[2], PROVIDERS[3]
    column = net.held[(old.address, file_id, 2)]
    r = net.send(REPAIRER, Repair(file_id, 2, net.repair_column(file_id, 2, new)))
    assert r.code == Code.FAILED and "healthy" in r.log
    net.next_epoch()
    net.prove_all(PROVIDERS[:2])
    net.next_epoch()
    deal = net.read(get_deal, file_id)
    for msg, why in [
        (Repair(file_id, 2, net.repair_column(file_id, 2, PROVIDERS[0])), "already holds"),
        (Repair(file_id, 2, net.new_column(new, file_id, 2, random_column(), uploader=REPAIRER,
                                           round=1)), "root"),
        (Repair(file_id, 2, net.repair_column(file_id, 2, new, signer=old)), "sign"),
    ]:
        r = net.send(REPAIRER, msg)
        assert r.code == Code.FAILED and why in r.log, r.log
    start = net.balance(REPAIRER)
    receipt = net.ok(REPAIRER, Repair(file_id, 2, net.repair_column(file_id, 2, new)))
    net.held[(new.address, file_id, 2)] = column
    reward = -(-deal.repair_budget // 3)
    assert net.balance(REPAIRER) == start - receipt.fee  # held until the column is audited
    after = net.read(get_deal, file_id)
    assert after.columns[2] == sm.Column(new.address, 2, column.root, True, PRICE, 1,
                                         REPAIRER.address, reward)
    assert after.repair_budget == deal.repair_budget - reward
    assert net.read(get_provider, old.address).used == 0
    assert net.read(get_provider, new.address).used == COLUMN_BYTES
    assert net.read(columns_of, old.address) == []
    assert net.read(repairs) == []
    net.prove_all(PROVIDERS[:2])  # this epoch's challenges were opened before the repair
    net.next_epoch()
    assert len(net.read(open_challenges, new.address)) == 4
    before = net.balance(new)
    fees = net.prove_all([PROVIDERS[0], PROVIDERS[1], new])
    assert net.balance(new) == before + fee() - fees[new.address]
    assert net.balance(REPAIRER) == start - receipt.fee + reward  # proven: now it is paid
    assert net.read(get_deal, file_id).columns[2].bounty == 0


def test_with_no_spare_provider_a_column_is_repaired_back_onto_its_own(net: Net) -> None:
    net.register(PROVIDERS[:3])
    file_id = net.deal(PROVIDERS[:3], epochs=5)
    lost = PROVIDERS[2]
    column = net.held[(lost.address, file_id, 2)]
    net.next_epoch()
    net.prove_all(PROVIDERS[:2])
    net.next_epoch()  # the third column missed its audit: unhealthy
    budget = net.read(get_deal, file_id).repair_budget
    net.ok(REPAIRER, Repair(file_id, 2, net.repair_column(file_id, 2, lost)))
    deal = net.read(get_deal, file_id)
    assert deal.columns[2] == sm.Column(lost.address, 2, column.root, True, PRICE, 1,
                                        REPAIRER.address, -(-budget // 3))
    assert net.read(get_provider, lost.address).used == COLUMN_BYTES  # counted once
    assert net.read(columns_of, lost.address) == [sm.ColumnRef(file_id, 2)]
    assert net.read(repairs) == []


def lose_column(net: Net, file_id: bytes, providers: list[PrivateKey], silent: int) -> None:
    """Run an epoch in which every provider but ``providers[silent]`` proves, then settle it:
    that column turns unhealthy and repairs open. The others answer what is open now too."""
    others = [p for i, p in enumerate(providers) if i != silent]
    net.prove_all([p for p in others if all(  # those still answerable
        c.deadline > net.chain.height for c in net.read(open_challenges, p.address))])
    net.next_epoch()
    net.prove_all(others)
    net.next_epoch()
    assert not net.read(get_deal, file_id).columns[silent].healthy


def test_an_acceptance_published_in_a_deal_cannot_be_replayed_to_repair_it(net: Net) -> None:
    """The red-team replay: a provider's acceptance is public in ``create_deal``; posted as a
    repair of the same column once it was lost, it used to mark a column with no data
    behind it healthy and pay the poster ``ceil(budget / n)``."""
    net.register(PROVIDERS[:3])
    msg, file_id, cols = net.deal_msg(OWNER, PROVIDERS[:3], epochs=5)
    net.ok(OWNER, msg)
    for j, (p, c) in enumerate(zip(PROVIDERS[:3], cols, strict=True)):
        net.held[(p.address, file_id, j)] = c
    lose_column(net, file_id, PROVIDERS[:3], 2)
    before, module = storage_state(net), net.balance(MODULE_ACCOUNT)
    start = net.balance(ATTACKER)
    r = net.send(ATTACKER, Repair(file_id, 2, msg.columns[2]))  # the deal's own acceptance
    assert r.code == Code.FAILED and "did not sign round 1" in r.log
    assert storage_state(net) == before and net.balance(MODULE_ACCOUNT) == module
    assert net.balance(ATTACKER) == start - r.fee


def test_a_repair_acceptance_is_good_once_soon_and_only_for_its_uploader(make_net: Any) -> None:
    net = make_net(storage_accept_ttl=8)
    net.register(PROVIDERS[:5])
    file_id = net.deal(PROVIDERS[:3], epochs=9)
    lose_column(net, file_id, PROVIDERS[:3], 2)
    new, ttl = PROVIDERS[3], net.chain.params.storage_accept_ttl
    cases = [  # built when sent: the height of the block that includes it is chain.height + 1
        (ATTACKER, lambda: net.repair_column(file_id, 2, new), "as uploaded by the sender"),
        (REPAIRER, lambda: net.repair_column(file_id, 2, new, round=0), "did not sign round 1"),
        (REPAIRER, lambda: net.repair_column(file_id, 2, new, round=2), "did not sign round 1"),
        (REPAIRER, lambda: net.repair_column(file_id, 2, new, height=net.chain.height - ttl),
         "usable in heights"),  # one block too old
        (REPAIRER, lambda: net.repair_column(file_id, 2, new, height=net.chain.height + 2),
         "usable in heights"),  # signed at a height not reached
    ]
    before, module = storage_state(net), net.balance(MODULE_ACCOUNT)
    for sender, col, why in cases:
        r = net.send(sender, Repair(file_id, 2, col()))
        assert r.code == Code.FAILED and why in r.log, (why, r.log)
        assert storage_state(net) == before and net.balance(MODULE_ACCOUNT) == module, why
    old = net.repair_column(file_id, 2, new, height=net.chain.height + 1 - ttl)
    assert net.send(REPAIRER, Repair(file_id, 2, old)).ok  # the oldest still good
    net.held[(new.address, file_id, 2)] = net.held[(PROVIDERS[2].address, file_id, 2)]
    lose_column(net, file_id, [*PROVIDERS[:2], new], 2)  # the repaired column is lost again
    again = net.repair_column(file_id, 2, PROVIDERS[4], round=1)  # fresh, but round 1 is used
    r = net.send(REPAIRER, Repair(file_id, 2, again))
    assert r.code == Code.FAILED and "did not sign round 2" in r.log
    net.ok(REPAIRER, Repair(file_id, 2, net.repair_column(file_id, 2, PROVIDERS[4])))
    assert net.read(get_deal, file_id).columns[2].round == 2


def test_a_repaired_column_that_misses_its_audit_earns_its_repairer_nothing(net: Net) -> None:
    """A provider that signs for a column it never received (here: in collusion with the
    repairer) is slashed at its first audit, and the reward goes back to the budget."""
    net.register(PROVIDERS[:4])
    file_id = net.deal(PROVIDERS[:3], epochs=9)
    lose_column(net, file_id, PROVIDERS[:3], 2)
    budget = net.read(get_deal, file_id).repair_budget
    start = net.balance(ATTACKER)
    r = net.ok(ATTACKER, Repair(file_id, 2, net.repair_column(file_id, 2, PROVIDERS[3],
                                                                 uploader=ATTACKER)))
    reward = -(-budget // 3)
    assert net.read(get_deal, file_id).columns[2].bounty == reward
    lose_column(net, file_id, [*PROVIDERS[:2], PROVIDERS[3]], 2)  # the accomplice cannot prove
    deal = net.read(get_deal, file_id)
    slash = sm.column_collateral(net.chain.params, COLUMN_BYTES)
    assert deal.columns[2].bounty == 0 and deal.repair_budget == budget + slash
    assert net.balance(ATTACKER) == start - r.fee


# --- collateral ---------------------------------------------------------------------------------

PER_BYTE = 10**5  # collateral per byte held in the tests below: a test column calls for 13.6 HPC


def test_collateral_must_cover_the_bytes_a_provider_takes(make_net: Any) -> None:
    net = make_net(storage_collateral_per_gib=PER_BYTE * GIB)
    need = sm.column_collateral(net.chain.params, COLUMN_BYTES)
    assert need == PER_BYTE * COLUMN_BYTES > 10 * HPC
    thin = PROVIDERS[3]
    net.register(PROVIDERS[:3])
    net.ok(thin, register_msg(thin, collateral=10 * HPC))  # the minimum: no room for a column
    before, module = storage_state(net), net.balance(MODULE_ACCOUNT)
    r = net.send(OWNER, net.deal_msg(OWNER, [*PROVIDERS[:2], thin])[0])
    assert r.code == Code.FAILED and "collateral" in r.log
    assert storage_state(net) == before and net.balance(MODULE_ACCOUNT) == module
    # nor by repair: a lost column cannot move onto it either
    file_id = net.deal(PROVIDERS[:3], epochs=9)
    lose_column(net, file_id, PROVIDERS[:3], 2)
    r = net.send(REPAIRER, Repair(file_id, 2, net.repair_column(file_id, 2, thin)))
    assert r.code == Code.FAILED and "collateral" in r.log
    net.ok(thin, register_msg(thin, collateral=need - 10 * HPC))  # topped up to one column
    net.ok(REPAIRER, Repair(file_id, 2, net.repair_column(file_id, 2, thin)))
    r = net.send(OWNER, net.deal_msg(OWNER, [*PROVIDERS[:2], thin])[0])  # a second: no
    assert r.code == Code.FAILED and "needs" in r.log


def test_a_missed_audit_slashes_in_proportion_to_the_bytes_lost(make_net: Any) -> None:
    net = make_net(storage_collateral_per_gib=PER_BYTE * GIB)
    net.register(PROVIDERS[:3])
    ids = [net.deal(PROVIDERS[:3], epochs=9), net.deal(PROVIDERS[:3], epochs=9, segments=13)]
    silent = PROVIDERS[2]
    net.next_epoch()
    net.prove_all(PROVIDERS[:2])
    collateral = net.read(get_provider, silent.address).collateral
    budgets = [net.read(get_deal, f).repair_budget for f in ids]
    net.next_epoch()  # both of its columns missed: each slashed for its own bytes
    sizes = [sm.deal_column_bytes(net.read(get_deal, f)) for f in ids]
    assert sizes == [COLUMN_BYTES, 12 * PIECE + LAST]
    for f, budget, size in zip(ids, budgets, sizes, strict=True):
        assert net.read(get_deal, f).repair_budget == budget + PER_BYTE * size
    p = net.read(get_provider, silent.address)
    assert p.collateral == collateral - PER_BYTE * sum(sizes)


def test_cancel_pays_the_current_epoch_and_refunds_the_rest(net: Net) -> None:
    net.register(PROVIDERS[:3])
    file_id = net.deal(PROVIDERS[:3], epochs=4)
    deal = net.read(get_deal, file_id)
    locked = deal.escrow + deal.repair_budget
    net.next_epoch()
    net.prove_all(PROVIDERS[:1])  # one column proven (and paid) so far this epoch
    r = net.send(PROVIDERS[0], CancelDeal(file_id))
    assert r.code == Code.FAILED and "owner" in r.log
    paid = {p.address: net.balance(p) for p in PROVIDERS[:3]}
    start = net.balance(OWNER)
    receipt = net.ok(OWNER, CancelDeal(file_id))
    assert net.balance(OWNER) == start + locked - 3 * fee() - receipt.fee
    for p in PROVIDERS[1:3]:  # the two columns still owed this epoch are paid at once
        assert net.balance(p) == paid[p.address] + fee()
    assert net.balance(PROVIDERS[0]) == paid[PROVIDERS[0].address]
    view = net.read(deal_view, file_id)
    assert (view.status, view.deal.escrow, view.deal.repair_budget) == ("cancelled", 0, 0)
    for p in PROVIDERS[:3]:
        assert net.read(get_provider, p.address).used == 0
        assert net.read(columns_of, p.address) == []
        assert net.read(open_challenges, p.address) == []
    assert net.send(OWNER, CancelDeal(file_id)).code == Code.FAILED
    net.next_epoch()  # nothing left to settle: nobody is slashed
    assert all(net.read(get_provider, p.address).misses == 0 for p in PROVIDERS[:3])


def test_cancelling_costs_the_same_gas_whether_or_not_the_epochs_audit_is_open(
        net: Net) -> None:
    """The owner's wallet simulates a cancel to set its gas limit; an audit opening before
    the block runs it must not make the cancel run out of gas (it did: the open challenges
    were deleted and the columns paid at a cost the simulation had not seen)."""
    net.register(PROVIDERS[:3])
    proven = net.deal(PROVIDERS[:3], epochs=4)
    still_open = net.deal(PROVIDERS[:3], epochs=4)
    net.next_epoch()
    proofs = [p for p in net.proofs(PROVIDERS[0]) if p.file_id == proven]
    net.ok(PROVIDERS[0], Prove(tuple(proofs)))
    assert net.read(open_challenges, PROVIDERS[0].address)  # the other deal's still open
    gas = [net.ok(OWNER, CancelDeal(file_id)).gas_used for file_id in (proven, still_open)]
    assert gas[0] == gas[1]


def test_a_deal_ends_and_refunds_what_is_left(net: Net) -> None:
    net.register(PROVIDERS[:3])
    file_id = net.deal(PROVIDERS[:3], epochs=2)
    deal = net.read(get_deal, file_id)
    net.next_epoch()
    net.prove_all(PROVIDERS[:3])
    net.next_epoch()
    net.prove_all(PROVIDERS[:2])  # the third provider misses the last epoch
    start = net.balance(OWNER)
    net.next_epoch()  # epoch 3 = end_epoch: settle, then end
    view = net.read(deal_view, file_id)
    slash = sm.column_collateral(net.chain.params, COLUMN_BYTES)
    assert view.status == "ended"
    assert net.balance(OWNER) == start + deal.repair_budget + slash + fee()
    for p in PROVIDERS[:3]:
        assert net.read(get_provider, p.address).used == 0
        assert net.read(columns_of, p.address) == []
    net.next_epoch()
    assert all(net.read(open_challenges, p.address) == [] for p in PROVIDERS[:3])


# --- bandwidth -----------------------------------------------------------------------------------


def test_bandwidth_receipts_pay_once_and_expire(net: Net) -> None:
    net.register(PROVIDERS[:3])
    file_id = net.deal(PROVIDERS[:3])
    p = PROVIDERS[0]
    chain_id = net.kit.chain_id
    net.until(TTL + 2)  # receipts from TTL blocks ago must have a height
    amount = sm.bandwidth_amount(5 * 2**20, BW_PRICE)
    assert amount == -(-5 * 2**20 * BW_PRICE // GIB)

    def receipt(client: PrivateKey, height: int, n: int = 5 * 2**20) -> sm.Receipt:
        return sign_receipt(client, chain_id, p.address, file_id, n,
                            sm.bandwidth_amount(n, BW_PRICE), height, os.urandom(16))

    h = net.chain.height
    r1, r2 = receipt(OWNER, h), receipt(OWNER, h - 1)
    owner0, p0 = net.balance(OWNER), net.balance(p)
    claim = net.ok(p, ClaimBandwidth((r1, r2)))
    assert net.balance(p) == p0 + 2 * amount - claim.fee
    assert net.balance(OWNER) == owner0 - 2 * amount
    r = net.send(p, ClaimBandwidth((r1,)))
    assert r.code == Code.FAILED and "already claimed" in r.log
    for bad, why in [
        (replace(receipt(OWNER, net.chain.height), amount=amount + 1), "cost"),
        (replace(receipt(OWNER, net.chain.height), bytes=1), "cost"),
        (replace(receipt(OWNER, net.chain.height), signature=bytes(64)), "signed"),
        (receipt(OWNER, net.chain.height - TTL), "claimable"),
        (receipt(OWNER, net.chain.height + 100), "claimable"),
    ]:
        r = net.send(p, ClaimBandwidth((bad,)))
        assert r.code == Code.FAILED and why in r.log, (why, r.log)
    assert net.send(PROVIDERS[1], ClaimBandwidth((receipt(OWNER, net.chain.height),))
                    ).code == Code.FAILED  # another provider's receipt
    # a client that cannot pay is skipped; the others are still paid
    broke = PrivateKey.from_seed(b"\x5b" * 32)
    p1 = net.balance(p)
    claim = net.ok(p, ClaimBandwidth((receipt(broke, net.chain.height),
                                      receipt(OWNER, net.chain.height))))
    assert net.balance(p) == p1 + amount - claim.fee
    assert [e.kind for e in claim.events].count("storage_receipt_unpaid") == 1
    # claimed ids are forgotten once their receipts could not be claimed anyway
    claimed = lambda: net.read(lambda v: list(v.iter_prefix(sm.CLAIMED_PREFIX)))  # noqa: E731
    assert len(claimed()) == 3
    net.until(h + TTL)
    assert len(claimed()) == 1  # r1 and r2 (heights h, h - 1) are past their window
    assert net.send(p, ClaimBandwidth((r1,))).code == Code.FAILED  # and now expired


# --- determinism ---------------------------------------------------------------------------------


def test_two_chains_fed_the_same_blocks_reach_the_same_state_root(make_net: Any) -> None:
    net = make_net("a")
    net.register(PROVIDERS[:4])
    a = net.deal(PROVIDERS[:3], epochs=3)
    net.deal(PROVIDERS[1:4], epochs=2)
    net.next_epoch()
    net.prove_all(PROVIDERS[:2])  # PROVIDERS[2] and [3] stay silent
    net.next_epoch()
    net.ok(REPAIRER, Repair(a, 2, net.repair_column(a, 2, PROVIDERS[3])))
    r = sign_receipt(OWNER, net.kit.chain_id, PROVIDERS[0].address, a, 2**20,
                     sm.bandwidth_amount(2**20, BW_PRICE), net.chain.height, bytes(16))
    net.ok(PROVIDERS[0], ClaimBandwidth((r,)))
    net.until(5 * EPOCH)
    twin = make_net("b")
    for block in net.blocks:
        twin.chain.apply_block(block, twin.kit.checked_of_block(twin.chain, block.txs))
    assert twin.chain.state_root == net.chain.state_root
    assert twin.chain.height == net.chain.height
