"""The market module on a real chain: offers, asks and bids matched by price-time priority
with partial fills at the resting price, agreements whose escrow (deposit + prepaid
instalment) balances after every block, receipts signed by both agents, every close path,
every bad input refused with nothing changed, and two chains fed the same blocks agreeing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from framework.chain import ChainNet

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.modules.bank.types import Transfer
from smartchain.modules.devices.types import (
    RegisterDevice,
    RegisterManufacturer,
    RevokeDevice,
    TransferDevice,
    sign_certificate,
    sign_pop,
)
from smartchain.modules.market.module import escrow_by_token
from smartchain.modules.market.queries import API
from smartchain.modules.market.state import (
    agreements_of,
    book_orders,
    get_agreement,
    get_order,
    offers_by,
    receipts_of,
)
from smartchain.modules.market.types import (
    ASK,
    BID,
    CLOSED_BY_CONSUMER,
    CLOSED_BY_PROVIDER,
    MODULE_ACCOUNT,
    OPEN,
    SETTLED,
    CancelOrder,
    CloseAgreement,
    CreateOffer,
    PlaceAsk,
    PlaceBid,
    SubmitReceipts,
    Terms,
    UsageReceipt,
    bid_lock,
    receipt,
    sign_receipt,
    with_keys,
)
from smartchain.modules.query import QueryError
from smartchain.modules.tokens.module import token_balance
from smartchain.modules.tokens.types import Issue, TokenTransfer
from smartchain.state.params import Params
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt

HPC = 10**8
CHAIN = "smart-test-1"
GRACE = 5
WEATHER = "weather.readings"
TERMS = Terms(2_000, 10, 50)  # deposit 20 %, 10 units prepaid ahead, served within 50 blocks


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


PROVIDERS = [key(60 + i) for i in range(4)]
CONSUMERS = [key(70 + i) for i in range(4)]
P, C = PROVIDERS[0], CONSUMERS[0]
POOR, STRANGER, PROPOSER, MAKER = key(80), key(81), key(82), key(83)


class Net(ChainNet):
    def __init__(self, kit: Any, chain: Any) -> None:
        super().__init__(kit, chain, PROPOSER)
        self.fees: dict[bytes, int] = {}
        self.last: dict[bytes, int] = {}  # fees each sender paid in the latest block

    def on_block(self, checked: list[Any], receipts: list[Receipt]) -> None:
        self.last = {}
        for c, r in zip(checked, receipts, strict=True):
            self.last[c.sender] = self.last.get(c.sender, 0) + r.fee
            self.fees[c.sender] = self.fees.get(c.sender, 0) + r.fee

    def hpc(self, k: PrivateKey | bytes) -> int:
        return self.read(get_account, k if isinstance(k, bytes) else k.address).balance

    def offer(self, provider: PrivateKey = P, *, token: str = "HPC", terms: Terms = TERMS,
              min_q: int = 1, max_q: int = 1_000, agent: bytes | None = None) -> int:
        r = self.ok(provider, CreateOffer(WEATHER, "reading", 100, token, min_q, max_q, terms,
                                          agent or provider.public_key))
        return int(attrs_of(r, "market_offer")[0]["offer"])

    def ask(self, provider: PrivateKey, offer_id: int, price: int, qty: int,
            expiry: int = 1_000) -> Receipt:
        return self.ok(provider, PlaceAsk(offer_id, price, qty, expiry))

    def bid(self, consumer: PrivateKey, price: int, qty: int, *, token: str = "HPC",
            bps: int = 10_000, expiry: int = 1_000, agent: bytes | None = None) -> Receipt:
        return self.ok(consumer, bid_msg(consumer, price, qty, token=token, bps=bps,
                                         expiry=expiry, agent=agent))

    def until(self, height: int) -> None:
        while self.chain.height < height:
            self.block()


def bid_msg(consumer: PrivateKey, price: int, qty: int, *, token: str = "HPC",
            bps: int = 10_000, expiry: int = 1_000, agent: bytes | None = None) -> PlaceBid:
    return PlaceBid(WEATHER, token, price, qty, expiry, bps, agent or consumer.public_key)


def matches(r: Receipt) -> list[dict[str, str]]:
    return attrs_of(r, "market_match")


def attrs_of(r: Receipt, kind: str) -> list[dict[str, str]]:
    return [{a.key: a.value for a in e.attributes} for e in r.events if e.kind == kind]


def order_id(r: Receipt) -> int:
    return int(attrs_of(r, "market_order")[0]["order"])


def market_state(net: Net) -> dict[bytes, bytes]:
    return net.read(lambda view: dict(view.iter_prefix(b"market/")))


def make(chainkit: Any, name: str, **kw: Any) -> Net:
    balances = {k: 10_000 * HPC for k in (*PROVIDERS, *CONSUMERS, STRANGER, MAKER)}
    balances[POOR] = HPC // 10
    params = Params(market_receipt_grace=GRACE, **kw)
    return Net(chainkit, chainkit.open(chainkit.genesis(balances, params=params),
                                       chainkit.root / name))


@pytest.fixture
def net(chainkit: Any) -> Net:
    return make(chainkit, "a")


def agreed(net: Net, qty: int = 40, price: int = 100, terms: Terms = TERMS,
           consumer: PrivateKey = C, **kw: Any) -> int:
    """One agreement of ``qty`` units at ``price`` between P and ``consumer``."""
    offer = net.offer(terms=terms, **kw)
    net.ask(P, offer, price, qty)
    (m,) = matches(net.bid(consumer, price, qty))
    return int(m["agreement"])


def send_receipt(net: Net, agreement: int, counter: int, final: bool = False,
                 provider: PrivateKey = P, consumer: PrivateKey = C) -> Receipt:
    r = receipt(provider, consumer, CHAIN, agreement, counter, final)
    return net.send(STRANGER, SubmitReceipts((r,)))


# --- matching ------------------------------------------------------------------------------


def test_a_bid_fills_the_cheapest_then_oldest_asks_at_their_own_prices(net: Net) -> None:
    offers = [net.offer(p) for p in PROVIDERS[:3]]
    net.ask(PROVIDERS[0], offers[0], 120, 10)  # id order: time priority
    net.ask(PROVIDERS[1], offers[1], 100, 10)
    net.ask(PROVIDERS[2], offers[2], 100, 10)
    net.ask(PROVIDERS[0], offers[0], 130, 10)  # above the bid's limit
    r = net.bid(C, 125, 25)
    fills = [(m["provider"], int(m["quantity"]), int(m["price"])) for m in matches(r)]
    assert fills == [(PROVIDERS[1].address.hex(), 10, 100), (PROVIDERS[2].address.hex(), 10, 100),
                     (PROVIDERS[0].address.hex(), 5, 120)]
    asks = net.read(book_orders, WEATHER, "HPC", ASK)
    assert [(o.owner, o.price, o.remaining) for o in asks] == [
        (PROVIDERS[0].address, 120, 5), (PROVIDERS[0].address, 130, 10)]
    assert net.read(book_orders, WEATHER, "HPC", BID) == []  # filled in full: nothing rests
    assert [a.id for a in net.read(agreements_of, C.address)] == [
        int(m["agreement"]) for m in matches(r)]


def test_an_ask_fills_the_highest_then_oldest_bids_and_the_rest_rests(net: Net) -> None:
    offer = net.offer()
    b1 = order_id(net.bid(CONSUMERS[0], 90, 5))
    b2 = order_id(net.bid(CONSUMERS[1], 110, 5))
    b3 = order_id(net.bid(CONSUMERS[2], 110, 5))
    r = net.ask(P, offer, 95, 12)
    assert [(int(m["bid"]), int(m["quantity"]), int(m["price"])) for m in matches(r)] == [
        (b2, 5, 110), (b3, 5, 110)]
    (rest,) = net.read(book_orders, WEATHER, "HPC", ASK)
    assert (rest.price, rest.remaining) == (95, 2)
    assert [o.id for o in net.read(book_orders, WEATHER, "HPC", BID)] == [b1]
    r = net.bid(CONSUMERS[3], 95, 1)  # partial fill of the resting ask, at its price
    assert [(int(m["ask"]), int(m["quantity"]), int(m["price"])) for m in matches(r)] == [
        (rest.id, 1, 95)]
    assert net.read(get_order, rest.id).remaining == 1


def test_a_bid_locks_its_budget_and_gets_back_what_its_fills_did_not_need(net: Net) -> None:
    offer = net.offer()
    net.ask(P, offer, 80, 30)
    before = net.hpc(C)
    r = net.bid(C, 100, 50, bps=5_000)  # 30 fill at 80; 20 rest, locked at the limit
    (m,) = matches(r)
    agreement = net.read(get_agreement, int(m["agreement"]))
    deposit = 30 * 80 * TERMS.deposit_bps // 10_000
    assert (agreement.deposit, agreement.coverage, agreement.price) == (deposit, 10, 80)
    (rest,) = net.read(book_orders, WEATHER, "HPC", BID)
    assert rest.locked == bid_lock(20, 100, 5_000) == 3_000
    assert net.hpc(C) == before - net.fees[C.address] - deposit - 10 * 80 - rest.locked
    assert net.read(escrow_by_token)["HPC"] == net.hpc(MODULE_ACCOUNT)
    net.ok(C, CancelOrder(rest.id))
    assert net.hpc(C) == before - net.fees[C.address] - deposit - 10 * 80


def test_terms_beyond_the_bids_deposit_limit_or_below_the_offers_minimum_do_not_match(
        net: Net) -> None:
    greedy = net.offer(PROVIDERS[0], terms=Terms(9_000, 10, 50))
    bulk = net.offer(PROVIDERS[1], min_q=20)
    net.ask(PROVIDERS[0], greedy, 50, 10)
    net.ask(PROVIDERS[1], bulk, 60, 30)
    assert matches(net.bid(C, 100, 10, bps=2_000)) == []  # greedy's deposit; bulk's minimum
    r = net.bid(CONSUMERS[1], 100, 20, bps=2_000)
    assert [(m["provider"], m["quantity"]) for m in matches(r)] == [
        (PROVIDERS[1].address.hex(), "20")]
    # 30 - 20 = 10 left, below the offer's minimum of 20: the ask leaves the book
    assert [o.owner for o in net.read(book_orders, WEATHER, "HPC", ASK)] == [
        PROVIDERS[0].address]


def test_matching_visits_at_most_max_fills_resting_orders_and_each_costs_gas(
        chainkit: Any) -> None:
    net = make(chainkit, "a", market_max_fills_per_order=4)
    offer = net.offer(min_q=2)
    for _ in range(6):  # 1-unit asks below the offer's minimum cannot rest: use 2
        net.ask(P, offer, 100, 2)
    plain = net.ok(CONSUMERS[1], bid_msg(CONSUMERS[1], 50, 2))  # crosses nothing
    r = net.bid(C, 100, 12)
    assert len(matches(r)) == 4  # the bound, though 6 asks cross
    (rest,) = [o for o in net.read(book_orders, WEATHER, "HPC", BID) if o.owner == C.address]
    assert rest.remaining == 4  # the rest rests
    assert r.gas_used - plain.gas_used >= 4 * Params().market_fill_gas
    # an attacker's own resting orders count toward the bound, not past it
    net.ok(P, PlaceAsk(offer, 100, 2, 1_000))
    assert len(net.read(book_orders, WEATHER, "HPC", ASK)) == 2


def test_expired_orders_are_swept_when_met_and_their_locks_go_back(net: Net) -> None:
    offer = net.offer()
    height = net.chain.height
    b = order_id(net.bid(C, 100, 5, expiry=height + 2))
    net.until(height + 3)
    before = net.hpc(C)
    r = net.ask(P, offer, 90, 5)
    assert matches(r) == [] and net.read(get_order, b) is None
    assert net.hpc(C) == before + bid_lock(5, 100, 10_000)
    assert [o.side for o in net.read(book_orders, WEATHER, "HPC", ASK)] == [ASK]


def test_two_chains_fed_the_same_blocks_reach_the_same_state_root(chainkit: Any) -> None:
    a, b = make(chainkit, "a"), make(chainkit, "b")
    offers = [a.offer(p) for p in PROVIDERS[:2]]
    a.ask(PROVIDERS[0], offers[0], 100, 7)
    a.ask(PROVIDERS[1], offers[1], 100, 7)
    raws = [a.sign(c, bid_msg(c, 100, 4)) for c in CONSUMERS]
    a.block(*raws)  # several bids in one block: order in the block decides priority
    ids = [x.id for x in a.read(agreements_of, PROVIDERS[0].address)]
    a.ok(STRANGER, SubmitReceipts((receipt(PROVIDERS[0], CONSUMERS[0], CHAIN, ids[0], 3),)))
    a.until(a.chain.height + GRACE)
    a.ok(PROVIDERS[0], CloseAgreement(ids[0]))
    for block in a.blocks:
        b.chain.apply_block(block, b.kit.checked_of_block(b.chain, block.txs))
    assert b.chain.height == a.chain.height
    assert b.chain.state_root == a.chain.state_root


# --- escrow and receipts -------------------------------------------------------------------


def test_receipts_pay_served_units_and_keep_one_instalment_prepaid(net: Net) -> None:
    a_id = agreed(net, qty=40, price=100)
    a = net.read(get_agreement, a_id)
    assert (a.deposit, a.coverage, a.counter, a.status) == (800, 10, 0, OPEN)
    assert net.hpc(MODULE_ACCOUNT) == 800 + 10 * 100
    p0, c0 = net.hpc(P), net.hpc(C)
    r = send_receipt(net, a_id, 4)
    assert r.ok, r.log
    a = net.read(get_agreement, a_id)
    assert (a.counter, a.coverage, a.provider_paid) == (4, 14, 400)  # 10 units ahead again
    assert net.hpc(P) == p0 + 400 and net.hpc(C) == c0 - 400
    assert net.hpc(MODULE_ACCOUNT) == 800 + (14 - 4) * 100
    assert send_receipt(net, a_id, 35).ok  # 21 of them beyond the prepaid: paid from balance
    a = net.read(get_agreement, a_id)
    assert (a.counter, a.coverage, a.provider_paid) == (35, 40, 3_500)
    assert net.hpc(P) == p0 + 3_500
    assert [(x.counter, x.paid) for x in net.read(receipts_of, a_id)] == [(4, 400),
                                                                         (35, 3_100)]


def test_the_final_receipt_settles_and_returns_deposit_and_unserved_prepayment(
        net: Net) -> None:
    a_id = agreed(net, qty=40, price=100)
    c0 = net.hpc(C)
    assert send_receipt(net, a_id, 6, final=True).ok
    a = net.read(get_agreement, a_id)
    assert (a.status, a.counter, a.provider_paid, a.consumer_refund) == (SETTLED, 6, 600,
                                                                       800 + 4 * 100)
    assert net.hpc(C) == c0 + 800 + 400 and net.hpc(MODULE_ACCOUNT) == 0
    r = send_receipt(net, a_id, 7)
    assert r.code == Code.FAILED and "settled" in r.log


def test_serving_the_whole_quantity_settles_without_a_final_flag(net: Net) -> None:
    a_id = agreed(net, qty=8, price=100)  # 8 < one instalment: all prepaid at agreement
    assert net.read(get_agreement, a_id).coverage == 8
    assert send_receipt(net, a_id, 8).ok
    assert net.read(get_agreement, a_id).status == SETTLED
    assert net.hpc(MODULE_ACCOUNT) == 0


def test_the_provider_closes_when_the_consumer_stops_countersigning(net: Net) -> None:
    a_id = agreed(net, qty=40, price=100)
    r = net.send(P, CloseAgreement(a_id))
    assert r.code == Code.FAILED and "nothing was served" in r.log  # paid without serving? no
    assert send_receipt(net, a_id, 10).ok
    r = net.send(P, CloseAgreement(a_id))
    assert r.code == Code.FAILED and "may close from height" in r.log
    net.until(net.read(get_agreement, a_id).last_receipt_height + GRACE)
    p0, c0 = net.hpc(P), net.hpc(C)
    net.ok(P, CloseAgreement(a_id))
    kept = 800 * 10 // 40  # the deposit share of the 10 units served of 40
    a = net.read(get_agreement, a_id)
    assert (a.status, a.provider_paid, a.consumer_refund) == (CLOSED_BY_PROVIDER,
                                                              1_000 + kept,
                                                              800 - kept + 10 * 100)
    assert net.hpc(P) == p0 + kept - net.last[P.address]
    assert net.hpc(C) == c0 + 800 - kept + 1_000
    assert net.hpc(MODULE_ACCOUNT) == 0



def test_the_consumer_closes_when_the_provider_stops_serving(net: Net) -> None:
    a_id = agreed(net, qty=40, price=100)
    assert send_receipt(net, a_id, 4).ok  # 400 paid; 10 prepaid ahead; deposit 800
    r = net.send(C, CloseAgreement(a_id))
    assert r.code == Code.FAILED and "after the deadline" in r.log
    r = net.send(STRANGER, CloseAgreement(a_id))
    assert r.code == Code.FAILED and "only the parties" in r.log
    net.until(net.read(get_agreement, a_id).deadline_height + 1)
    c0 = net.hpc(C)
    net.ok(C, CloseAgreement(a_id))
    a = net.read(get_agreement, a_id)
    assert (a.status, a.consumer_refund, a.provider_paid) == (CLOSED_BY_CONSUMER,
                                                              800 + 10 * 100, 400)
    assert net.hpc(C) == c0 + 1_800 - net.last[C.address]
    assert net.hpc(MODULE_ACCOUNT) == 0


def test_a_consumer_served_nothing_closes_early_after_the_grace(net: Net) -> None:
    a_id = agreed(net, qty=40, price=100)
    start = net.read(get_agreement, a_id).start_height
    assert net.send(C, CloseAgreement(a_id)).code == Code.FAILED
    net.until(start + GRACE - 1)
    c0 = net.hpc(C)
    net.ok(C, CloseAgreement(a_id))  # in block start + GRACE
    assert net.hpc(C) == c0 + 800 + 1_000 - net.last[C.address]
    assert net.read(get_agreement, a_id).status == CLOSED_BY_CONSUMER


def test_bad_receipts_are_refused_and_change_nothing(net: Net) -> None:
    a_id = agreed(net, qty=40, price=100)
    assert send_receipt(net, a_id, 5).ok
    cases = [
        (receipt(C, C, CHAIN, a_id, 7), "not signed by the provider's agent"),
        (receipt(P, P, CHAIN, a_id, 7), "not signed by the consumer's agent"),
        (receipt(STRANGER, C, CHAIN, a_id, 7), "not signed by the provider's agent"),
        (receipt(P, C, CHAIN, a_id, 4), "goes backwards"),
        (receipt(P, C, CHAIN, a_id, 6), "already accepted"),  # the good one, replayed
        (receipt(P, C, CHAIN, a_id, 41), "above the agreement's quantity"),
        (receipt(P, C, CHAIN, a_id + 99, 7), "no agreement"),
    ]
    before, held = market_state(net), net.hpc(MODULE_ACCOUNT)
    for bad, why in cases:
        r = net.send(STRANGER, SubmitReceipts((receipt(P, C, CHAIN, a_id, 6), bad)))
        assert r.code == Code.FAILED and why in r.log, (why, r.log)
        assert market_state(net) == before and net.hpc(MODULE_ACCOUNT) == held, why
    with pytest.raises(TxError) as err:
        net.kit.check(net.chain, net.sign(STRANGER, SubmitReceipts(())))
    assert err.value.code == Code.INVALID_PAYLOAD


def test_receipts_with_a_forged_signature_are_refused_before_any_block(net: Net) -> None:
    a_id = agreed(net, qty=40, price=100)
    good = receipt(P, C, CHAIN, a_id, 7)
    half = sign_receipt(P, CHAIN, a_id, 7)
    cases = [
        (replace(good, consumer_sig=bytes(64)), "receipt 1: the consumer's signature"),
        (replace(good, consumer_sig=half), "receipt 1: the consumer's signature"),
        (receipt(P, C, "other-chain", a_id, 7), "receipt 1: the provider's signature"),
        (replace(good, final=True), "receipt 1: the provider's signature"),
        (replace(good, provider_key=STRANGER.public_key), "receipt 1: the provider's"),
    ]
    for bad, why in cases:
        with pytest.raises(TxError) as err:
            net.kit.check(net.chain, net.sign(STRANGER, SubmitReceipts((good, bad))))
        assert err.value.code == Code.BAD_SIGNATURE and why in err.value.message, why
    unnamed = UsageReceipt(a_id, 7, False, good.provider_sig, good.consumer_sig)
    with pytest.raises(TxError) as err:
        net.kit.check(net.chain, net.sign(STRANGER, SubmitReceipts((unnamed,))))
    assert err.value.code == Code.INVALID_PAYLOAD and "keys" in err.value.message
    assert with_keys(unnamed, P.public_key, C.public_key) == good


def test_a_consumer_cannot_be_served_beyond_its_prepayment_without_paying(net: Net) -> None:
    a_id = agreed(net, qty=40, price=100, consumer=CONSUMERS[1])
    k = CONSUMERS[1]
    used = net.ok(k, Transfer(STRANGER.address, 1), gas_limit=100_000).gas_used
    net.ok(k, Transfer(STRANGER.address, net.hpc(k) - used - 500), gas_limit=used)
    assert net.hpc(k) == 500
    r = send_receipt(net, a_id, 30, consumer=k)  # 20 units beyond the 10 prepaid
    assert r.code == Code.INSUFFICIENT_FUNDS and "beyond its prepaid" in r.log
    r = send_receipt(net, a_id, 10, consumer=k)  # what was prepaid is always payable
    assert r.ok and attrs_of(r, "market_unfunded") == [
        {"agreement": str(a_id), "coverage": "10", "needed": "1000"}]
    assert net.read(get_agreement, a_id).provider_paid == 1_000


# --- bad quotes ----------------------------------------------------------------------------


def test_quotes_in_an_unknown_token_or_without_funds_are_refused(net: Net) -> None:
    before = market_state(net)
    r = net.send(P, CreateOffer(WEATHER, "reading", 100, "NOPE", 1, 10, TERMS, P.public_key))
    assert r.code == Code.FAILED and "unknown token 'NOPE'" in r.log
    r = net.send(C, bid_msg(C, 100, 10, token="NOPE"))
    assert r.code == Code.FAILED and "unknown token 'NOPE'" in r.log
    r = net.send(POOR, bid_msg(POOR, 10**6, 10**4), gas_limit=100_000)
    assert r.code == Code.INSUFFICIENT_FUNDS and "locks" in r.log
    r = net.send(C, bid_msg(C, 100, 10, agent=STRANGER.public_key))
    assert r.code == Code.FAILED and "agent key" in r.log
    offer_before = market_state(net)
    assert offer_before == before
    offer = net.offer()
    r = net.send(PROVIDERS[1], PlaceAsk(offer, 100, 5, 1_000))
    assert r.code == Code.FAILED and "not yours" in r.log
    r = net.send(P, PlaceAsk(offer, 100, 5, 1))
    assert r.code == Code.FAILED and "expiry" in r.log
    for bad in (CreateOffer("Weather", "reading", 100, "HPC", 1, 10, TERMS, P.public_key),
                CreateOffer(WEATHER, "reading", 100, "HPC", 5, 1, TERMS, P.public_key),
                CreateOffer(WEATHER, "reading", 2**62, "HPC", 1, 10, TERMS, P.public_key),
                CreateOffer(WEATHER, "reading", 100, "HPC", 1, 10, Terms(10_001, 1, 1),
                            P.public_key)):
        with pytest.raises(TxError) as err:
            net.kit.check(net.chain, net.sign(P, bad))
        assert err.value.code == Code.INVALID_PAYLOAD


def test_an_agreement_paid_in_an_iot_coin_token_settles_in_that_token(net: Net) -> None:
    net.ok(MAKER, Issue("PARK", "Parking credit", 0, 1_000_000, False, 1_000_000))
    net.ok(MAKER, TokenTransfer("PARK", C.address, 100_000))
    offer = net.offer(token="PARK")
    net.ask(P, offer, 50, 20)
    (m,) = matches(net.bid(C, 60, 20, token="PARK"))
    a_id = int(m["agreement"])
    hpc_held = net.hpc(MODULE_ACCOUNT)
    assert net.read(token_balance, "PARK", MODULE_ACCOUNT) == 200 + 10 * 50
    assert net.read(escrow_by_token) == {"PARK": 700}
    assert send_receipt(net, a_id, 20).ok
    assert net.read(token_balance, "PARK", P.address) == 1_000
    assert net.read(token_balance, "PARK", MODULE_ACCOUNT) == 0
    assert net.hpc(MODULE_ACCOUNT) == hpc_held == 0
    assert [o.token for o in net.read(offers_by, WEATHER, "PARK", 100)] == ["PARK"]
    assert net.read(offers_by, WEATHER, "HPC", None) == []


# --- devices as agents ---------------------------------------------------------------------


def test_device_keys_sign_receipts_until_their_manufacturer_revokes_them(net: Net) -> None:
    station, phone = key(90), key(91)
    net.ok(MAKER, RegisterManufacturer("Acme", MAKER.public_key, 1_000 * HPC))
    for owner, device in ((P, station), (C, phone)):
        cert = sign_certificate(MAKER, device.public_key, "M1", device.public_key.hex()[:8],
                                ("agent",))
        net.ok(owner, RegisterDevice(device.public_key, MAKER.address, "M1",
                                     device.public_key.hex()[:8], ("agent",), cert,
                                     owner.address, sign_pop(device, CHAIN, owner.address)))
    r = net.send(C, bid_msg(C, 100, 10, agent=station.public_key))
    assert r.code == Code.FAILED and "not owned by the sender" in r.log
    offer = net.offer(agent=station.public_key)
    net.ask(P, offer, 100, 40)
    (m,) = matches(net.bid(C, 100, 40, agent=phone.public_key))
    a_id = int(m["agreement"])
    r = send_receipt(net, a_id, 3)  # the accounts' keys are not the agents named
    assert r.code == Code.FAILED and "not signed by the provider's agent" in r.log
    assert send_receipt(net, a_id, 3, provider=station, consumer=phone).ok
    net.ok(MAKER, RevokeDevice(station.public_key))
    r = send_receipt(net, a_id, 4, provider=station, consumer=phone)
    assert r.code == Code.FAILED and "revoked" in r.log
    assert net.read(get_agreement, a_id).counter == 3


def test_a_consumer_cannot_void_receipts_it_countersigned_by_giving_its_device_away(
        net: Net) -> None:
    """The consumer's device countersigned 3 prepaid units, then the consumer transferred
    the device to another of its accounts: its receipts used to be refused, so the provider
    could not claim (nor close, nothing being accepted) and the consumer closed and took the
    prepayment back. A device that changed hands still signs for what is escrowed (the
    prepaid coverage), never for more of its old owner's money."""
    phone = key(91)
    net.ok(MAKER, RegisterManufacturer("Acme", MAKER.public_key, 1_000 * HPC))
    cert = sign_certificate(MAKER, phone.public_key, "M1", "p1", ("agent",))
    net.ok(C, RegisterDevice(phone.public_key, MAKER.address, "M1", "p1", ("agent",), cert,
                             C.address, sign_pop(phone, CHAIN, C.address)))
    offer = net.offer()
    net.ask(P, offer, 100, 40)
    (m,) = matches(net.bid(C, 100, 40, agent=phone.public_key))
    a_id = int(m["agreement"])
    signed = receipt(P, phone, CHAIN, a_id, 3)  # countersigned as the units came
    beyond = receipt(P, phone, CHAIN, a_id, 12)  # past the prepaid 10
    net.ok(C, TransferDevice(phone.public_key, CONSUMERS[1].address))
    provider = net.hpc(P)
    assert net.send(STRANGER, SubmitReceipts((signed,))).ok
    assert net.hpc(P) == provider + 3 * 100
    a = net.read(get_agreement, a_id)
    assert (a.counter, a.coverage) == (3, 10)  # no further instalment taken from C
    r = net.send(STRANGER, SubmitReceipts((beyond,)))
    assert r.code == Code.FAILED and "no longer owned" in r.log
    assert net.read(get_agreement, a_id).counter == 3


def test_an_order_pays_for_the_tombstones_it_walks_past_but_not_for_the_front_removed(
        net: Net) -> None:
    offer = net.offer()
    asks = [int(attrs_of(net.ask(P, offer, 100, 1), "market_order")[0]["order"])
            for _ in range(4)]
    # fills take the book's front: the next scan starts past it, walking no tombstone
    first, second = net.block(net.sign(C, bid_msg(C, 100, 1)),
                              net.sign(CONSUMERS[1], bid_msg(CONSUMERS[1], 100, 1)))
    assert [matches(r)[0]["ask"] for r in (first, second)] == [str(a) for a in asks[:2]]
    assert second.gas_used == first.gas_used
    # a cancel mid-book leaves a tombstone the next scan of that side walks past, and pays
    _cancel, third = net.block(net.sign(P, CancelOrder(asks[3])),
                               net.sign(CONSUMERS[2], bid_msg(CONSUMERS[2], 100, 1)))
    assert matches(third)[0]["ask"] == str(asks[2])
    assert third.gas_used - first.gas_used == Params().market_tombstone_gas


def test_a_failed_order_gives_the_book_front_it_filled_back_to_the_next_order(
        net: Net) -> None:
    offer = net.offer()
    asks = [int(attrs_of(net.ask(P, offer, 100, 1), "market_order")[0]["order"])
            for _ in range(3)]
    one = net.bid(C, 100, 1).gas_used  # what filling one ask costs
    # fills asks[1], then runs out of gas at asks[2]: reverted, asks[1] is the front again
    failed, after = net.block(
        net.sign(CONSUMERS[1], bid_msg(CONSUMERS[1], 100, 2), gas_limit=one + 5_000),
        net.sign(CONSUMERS[2], bid_msg(CONSUMERS[2], 100, 1)))
    assert failed.code == Code.OUT_OF_GAS
    assert matches(after)[0]["ask"] == str(asks[1])
    assert [o.id for o in net.read(book_orders, WEATHER, "HPC", ASK)] == [asks[2]]


def test_the_queries_show_offers_books_agreements_and_receipts_and_404_the_unknown(
        net: Net) -> None:
    ops = {q.operation_id: q for q in API.queries}

    def get(op: str, path: dict[str, str], query: dict[str, str] | None = None) -> Any:
        q = ops[op]
        return net.read(lambda view: q.handler(view, q.parse(path, query or {})))

    a_id = agreed(net, qty=40, price=100)
    assert send_receipt(net, a_id, 3).ok
    (o,) = get("listOffers", {}, {"type": WEATHER, "token": "HPC", "max_price": "100"})["offers"]
    assert (o["provider"], o["unit_price"], o["terms"]["deposit_bps"]) == (
        get("getAgreement", {"id": str(a_id)})["provider"], "100", 2_000)
    assert get("listOffers", {}, {"max_price": "99"})["offers"] == []
    assert get("getOrderBook", {"service_type": WEATHER}, {})["asks"] == []
    doc = get("getAgreement", {"id": str(a_id)})
    assert (doc["status"], doc["counter"], doc["escrow"]) == ("open", "3", str(800 + 1_000))
    assert [r["counter"] for r in get("listAgreementReceipts", {"id": str(a_id)})[
        "receipts"]] == ["3"]
    assert [x["id"] for x in get("listAgreements", {"address": to_bech32(C.address)})[
        "agreements"]] == [str(a_id)]
    for op, path in (("getAgreement", {"id": "999"}), ("getOffer", {"id": "999"})):
        with pytest.raises(QueryError) as err:
            get(op, path)
        assert err.value.status == 404
    with pytest.raises(QueryError) as err:
        get("getOrderBook", {"service_type": "Not A Type"})
    assert err.value.status == 400


def test_an_order_that_crosses_nothing_reads_no_more_for_the_asks_a_block_put_below_the_front(
        chainkit: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asks placed in a block below the book's front (the floor its fills moved) used to be
    read in full by every later scan of that side, whether it crossed them or not: the
    block's N asks and M such bids cost N x M reads, paid by nobody."""
    from smartchain.state.executor import Executor
    from smartchain.state.store import Overlay

    reads: list[int] = []
    counting = [0]
    get, deliver = Overlay.get, Executor.deliver

    def counted_get(self: Overlay, key: bytes) -> bytes | None:
        counting[0] += 1
        return get(self, key)

    def counted_deliver(self: Executor, *args: Any) -> Receipt:
        before = counting[0]
        receipt = deliver(self, *args)
        reads.append(counting[0] - before)
        return receipt

    def last_bid_reads(n: int) -> int:
        net = make(chainkit, f"below{n}")
        offer = net.offer()
        net.ask(P, offer, 100, 1)
        monkeypatch.setattr(Overlay, "get", counted_get)
        monkeypatch.setattr(Executor, "deliver", counted_deliver)
        reads.clear()
        raws = [net.sign(C, bid_msg(C, 100, 1))]  # fills the front: the floor moves past
        raws += [net.sign(P, PlaceAsk(offer, 50, 1, 1_000)) for _ in range(n)]  # below it
        raws.append(net.sign(CONSUMERS[1], bid_msg(CONSUMERS[1], 10, 1)))  # crosses nothing
        receipts = net.block(*raws)
        monkeypatch.undo()
        assert all(r.ok for r in receipts) and not matches(receipts[-1])
        return reads[-1]

    assert last_bid_reads(40) == last_bid_reads(2)
