"""Executor and bank rules: fees, refunds, failed transfers, stateless checks, nonces, supply."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from smartchain.codec import Bool, Str, Struct
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import (
    Bank,
    _decode_account,
    _encode_account,
    get_account,
    total_supply,
)
from smartchain.modules.bank.types import ACCOUNT_PREFIX, MINTED_KEY, Account, Transfer
from smartchain.state.chain import Chain
from smartchain.state.emission import MAX_SUPPLY, emitted_through
from smartchain.state.executor import Executor
from smartchain.state.module import Module, Msg
from smartchain.state.params import Params
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Transaction


def key_from_index(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


ALICE, BOB, CAROL = key_from_index(11), key_from_index(12), key_from_index(13)
PROPOSER = key_from_index(19)
HPC = 10**8


def accounts(chain, *keys: PrivateKey) -> list[Account]:
    r = chain.reader()
    try:
        return [get_account(r, k.address) for k in keys]
    finally:
        r.close()


def supply_of(chain) -> int:
    r = chain.reader()
    try:
        return total_supply(r)
    finally:
        r.close()


def build(kit, chain, raws: list[bytes]):
    checked = [kit.check(chain, raw) for raw in raws]
    time_ms = chain.next_time(kit.genesis_time_ms + 1000 * (chain.height + 1))
    return chain.build_block(checked, time_ms, PROPOSER)


def intrinsic(chain, raw: bytes) -> int:
    p = chain.params
    return p.tx_base_gas + p.gas_per_tx_byte * len(raw)


# --- fees -----------------------------------------------------------------------------


def test_fee_goes_to_proposer_and_unused_gas_is_refunded(chainkit) -> None:
    gen = chainkit.genesis({ALICE: 1_000 * HPC, BOB: 10 * HPC})
    chain = chainkit.open(gen)
    gas_limit, gas_price, amount = 500_000, 7, 3 * HPC
    raw = chainkit.transfer(ALICE, BOB.address, amount, 0, gas_limit=gas_limit,
                            gas_price=gas_price)
    _block, receipts, skipped = build(chainkit, chain, [raw])
    assert not skipped
    (receipt,) = receipts
    assert receipt.ok and receipt.code == Code.OK
    assert receipt.tx_hash == h256(raw)
    expected_gas = intrinsic(chain, raw) + 2 * chain.params.gas_per_write
    assert receipt.gas_used == expected_gas < gas_limit
    fee = expected_gas * gas_price
    assert receipt.fee == fee
    assert receipt.events == ()  # the transaction itself records sender, recipient, amount

    alice, bob, proposer = accounts(chain, ALICE, BOB, PROPOSER)
    assert alice.balance == 1_000 * HPC - amount - fee  # max fee taken, unused part refunded
    assert alice.nonce == 1
    assert bob.balance == 10 * HPC + amount
    assert bob.nonce == 0
    assert proposer.balance == fee  # block rewards are minted per epoch (docs/rewards.md)
    assert supply_of(chain) == gen.supply()  # fees move HPC, never mint it


def test_gas_limit_exactly_used_gets_no_refund(chainkit) -> None:
    gen = chainkit.genesis({ALICE: 10 * HPC})
    chain = chainkit.open(gen)
    probe = chainkit.transfer(ALICE, BOB.address, 1, 0)
    need = intrinsic(chain, probe) + 2 * chain.params.gas_per_write
    raw = chainkit.transfer(ALICE, BOB.address, 1, 0, gas_limit=need, gas_price=2)
    _, (receipt,), _ = build(chainkit, chain, [raw])
    assert receipt.ok and receipt.gas_used == need and receipt.fee == 2 * need
    (alice,) = accounts(chain, ALICE)
    assert alice.balance == 10 * HPC - 1 - 2 * need


def test_out_of_gas_charges_whole_limit_and_reverts_handler(chainkit) -> None:
    gen = chainkit.genesis({ALICE: 10 * HPC})
    chain = chainkit.open(gen)
    probe = chainkit.transfer(ALICE, BOB.address, 5, 0)
    limit = intrinsic(chain, probe)  # passes the stateless check, no gas left for writes
    raw = chainkit.transfer(ALICE, BOB.address, 5, 0, gas_limit=limit, gas_price=3)
    _, (receipt,), skipped = build(chainkit, chain, [raw])
    assert not skipped
    assert receipt.code == Code.OUT_OF_GAS and not receipt.ok
    assert receipt.gas_used == limit and receipt.fee == 3 * limit
    assert receipt.events == ()
    alice, bob = accounts(chain, ALICE, BOB)
    assert alice.balance == 10 * HPC - 3 * limit
    assert alice.nonce == 1
    assert bob.balance == 0


@dataclass(frozen=True, slots=True)
class Note(Struct):
    text: Str
    fail: Bool


class NotesModule(Module):
    """A test module whose handler writes a key, then fails if asked to."""

    name = "notes"

    def messages(self) -> dict[str, Msg]:
        def handle(ctx, msg: Note) -> None:
            ctx.write(b"notes/" + ctx.sender, msg.text.encode())
            ctx.emit("note", text=msg.text)
            if msg.fail:
                raise ctx.fail("asked to fail")

        return {"notes/write": Msg(Note, handle)}


def test_failed_handler_writes_are_reverted_and_fee_still_paid(tmp_path, chainkit) -> None:
    gen = chainkit.genesis({ALICE: 10 * HPC})
    chain = Chain(tmp_path / "notes", gen, modules=[Bank(), NotesModule()])
    try:
        def note(text: str, fail: bool, nonce: int) -> bytes:
            return Transaction.create(ALICE, chain_id=chain.chain_id, nonce=nonce,
                                      kind="notes/write", payload=Note(text, fail).encode(),
                                      gas_limit=100_000, gas_price=2).encode()

        ok_raw, bad_raw = note("kept", False, 0), note("dropped", True, 1)
        _, (ok, bad), skipped = build(chainkit, chain, [ok_raw, bad_raw])
        assert not skipped
        assert ok.ok and [e.kind for e in ok.events] == ["note"]
        assert bad.code == Code.FAILED and bad.log == "asked to fail"
        assert bad.events == ()  # events of a failed handler are dropped too
        write_gas = chain.params.gas_per_write
        assert bad.gas_used == intrinsic(chain, bad_raw) + write_gas  # the failed write is paid
        r = chain.reader()
        try:
            assert r.get(b"notes/" + ALICE.address) == b"kept"  # not b"dropped"
            alice = get_account(r, ALICE.address)
        finally:
            r.close()
        assert alice.nonce == 2
        assert alice.balance == 10 * HPC - ok.fee - bad.fee
        assert bad.fee == 2 * bad.gas_used
    finally:
        chain.close()


def test_transfer_above_balance_fails_but_pays_fee(chainkit) -> None:
    gen = chainkit.genesis({ALICE: 2 * HPC, BOB: 5 * HPC})
    chain = chainkit.open(gen)
    raw = chainkit.transfer(ALICE, BOB.address, 2 * HPC, 0, gas_limit=100_000, gas_price=1)
    _, (receipt,), skipped = build(chainkit, chain, [raw])
    assert not skipped  # it is in the block: the fee was covered
    assert receipt.code == Code.INSUFFICIENT_FUNDS
    assert not receipt.ok
    assert receipt.log
    assert receipt.events == ()
    expected_gas = intrinsic(chain, raw) + 2 * chain.params.gas_per_write
    assert receipt.gas_used == expected_gas
    assert receipt.fee == expected_gas
    alice, bob, proposer = accounts(chain, ALICE, BOB, PROPOSER)
    assert alice.balance == 2 * HPC - receipt.fee
    assert alice.nonce == 1
    assert bob == Account(5 * HPC, 0)
    assert proposer.balance == receipt.fee
    # the next nonce is 1: the failed transfer consumed nonce 0
    ok = chainkit.transfer(ALICE, BOB.address, 1, 1)
    _, (r2,), skipped = build(chainkit, chain, [ok])
    assert not skipped and r2.ok


def test_cannot_pay_max_fee_is_skipped(chainkit) -> None:
    gen = chainkit.genesis({ALICE: 50_000, BOB: 10 * HPC})
    chain = chainkit.open(gen)
    raw = chainkit.transfer(ALICE, BOB.address, 1, 0, gas_limit=60_000, gas_price=1)
    block, receipts, skipped = build(chainkit, chain, [raw])
    assert receipts == [] and block.txs == ()
    assert [c.raw for c in skipped] == [raw]
    assert accounts(chain, ALICE) == [Account(50_000, 0)]


# --- stateless checks -----------------------------------------------------------------


@pytest.fixture
def executor() -> Executor:
    return Executor([Bank()])


CHAIN = "smart-test-1"


def signed(key: PrivateKey = ALICE, *, chain_id: str = CHAIN, kind: str = "bank/transfer",
           payload: bytes | None = None, gas_limit: int = 100_000, gas_price: int = 1,
           nonce: int = 0) -> bytes:
    if payload is None:
        payload = Transfer(BOB.address, 10).encode()
    return Transaction.create(key, chain_id=chain_id, nonce=nonce, kind=kind, payload=payload,
                              gas_limit=gas_limit, gas_price=gas_price).encode()


def check(executor: Executor, raw: bytes, params: Params | None = None):
    return executor.check_stateless(raw, Transaction.decode(raw), h256(raw), CHAIN,
                                    params or Params())


def rejection(executor: Executor, raw: bytes, params: Params | None = None) -> Code:
    with pytest.raises(TxError) as info:
        check(executor, raw, params)
    return info.value.code


def test_check_stateless_accepts_valid_transfer(executor: Executor) -> None:
    raw = signed(gas_limit=200_000, gas_price=3)
    ctx = check(executor, raw)
    assert ctx.raw == raw
    assert ctx.hash == h256(raw)
    assert ctx.sender == ALICE.address
    assert ctx.payload == Transfer(BOB.address, 10)
    assert ctx.spend == 200_000 * 3 + 10


def test_check_stateless_wrong_chain(executor: Executor) -> None:
    assert rejection(executor, signed(chain_id="other-chain")) == Code.WRONG_CHAIN


def test_check_stateless_unknown_kind(executor: Executor) -> None:
    assert rejection(executor, signed(kind="bank/mint")) == Code.UNKNOWN_KIND
    assert rejection(executor, signed(kind="")) == Code.UNKNOWN_KIND


def test_check_stateless_gas_price_below_min(executor: Executor) -> None:
    params = Params(min_gas_price=5)
    assert rejection(executor, signed(gas_price=4), params) == Code.FEE_TOO_LOW
    assert rejection(executor, signed(gas_price=0)) == Code.FEE_TOO_LOW
    check(executor, signed(gas_price=5), params)


def test_check_stateless_gas_limit_bounds(executor: Executor) -> None:
    params = Params()
    size = len(signed())
    need = params.tx_base_gas + params.gas_per_tx_byte * size
    assert rejection(executor, signed(gas_limit=need - 1)) == Code.GAS_LIMIT
    assert rejection(executor, signed(gas_limit=0)) == Code.GAS_LIMIT
    check(executor, signed(gas_limit=need))
    assert rejection(executor, signed(gas_limit=params.max_tx_gas + 1)) == Code.GAS_LIMIT
    check(executor, signed(gas_limit=params.max_tx_gas))


def test_check_stateless_oversized(executor: Executor) -> None:
    big = signed(payload=bytes(Params().max_tx_bytes))
    assert rejection(executor, big) == Code.TX_TOO_LARGE
    raw = signed()
    assert rejection(executor, raw, Params(max_tx_bytes=len(raw) - 1)) == Code.TX_TOO_LARGE
    check(executor, raw, Params(max_tx_bytes=len(raw)))


def test_check_stateless_zero_amount(executor: Executor) -> None:
    raw = signed(payload=Transfer(BOB.address, 0).encode())
    assert rejection(executor, raw) == Code.INVALID_PAYLOAD


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00" * 5,
        Transfer(BOB.address, 10).encode() + b"\x00",  # trailing byte
        Transfer(BOB.address, 10).encode()[:-1],  # truncated
        (7).to_bytes(8, "big"),
    ],
)
def test_check_stateless_malformed_payload(executor: Executor, payload: bytes) -> None:
    assert rejection(executor, signed(payload=payload)) == Code.INVALID_PAYLOAD


def test_check_order_size_before_chain(executor: Executor) -> None:
    """The cheapest refusal wins: an oversized tx is refused as such, whatever else is wrong."""
    raw = signed(chain_id="other", payload=bytes(Params().max_tx_bytes))
    assert rejection(executor, raw) == Code.TX_TOO_LARGE


# --- nonces ---------------------------------------------------------------------------


def test_build_block_skips_reused_and_skipped_nonces(chainkit) -> None:
    gen = chainkit.genesis({ALICE: 100 * HPC})
    chain = chainkit.open(gen)
    first = chainkit.transfer(ALICE, BOB.address, 1, 0)
    _, receipts, skipped = build(chainkit, chain, [first])
    assert len(receipts) == 1 and not skipped

    reused = chainkit.transfer(ALICE, BOB.address, 2, 0)
    ahead = chainkit.transfer(ALICE, BOB.address, 3, 2)
    good1 = chainkit.transfer(ALICE, BOB.address, 4, 1)
    good2 = chainkit.transfer(ALICE, BOB.address, 5, 2)
    block, receipts, skipped = build(chainkit, chain, [reused, ahead, good1, good2])
    assert [c.raw for c in skipped] == [reused, ahead]
    assert list(block.txs) == [good1, good2]
    assert all(r.ok for r in receipts)
    alice, bob = accounts(chain, ALICE, BOB)
    assert alice.nonce == 3
    assert bob.balance == 1 + 4 + 5
    assert not chain.has_tx(h256(reused)) and not chain.has_tx(h256(ahead))
    assert chain.has_tx(h256(good2))


def test_ante_nonce_codes(chainkit) -> None:
    gen = chainkit.genesis({ALICE: 100 * HPC})
    chain = chainkit.open(gen)
    build(chainkit, chain, [chainkit.transfer(ALICE, BOB.address, 1, 0)])
    bank = chain.executor.auth
    r = chain.reader()
    try:
        store = Overlay(r)
        for nonce, code in ((0, Code.NONCE_REUSED), (2, Code.NONCE_SKIPPED),
                            (99, Code.NONCE_SKIPPED)):
            tx = Transaction.decode(chainkit.transfer(ALICE, BOB.address, 1, nonce))
            with pytest.raises(TxError) as info:
                bank.ante(store, tx, ALICE.address)
            assert info.value.code == code
        assert store.writes == {}  # a refused ante writes nothing
        tx = Transaction.decode(chainkit.transfer(ALICE, BOB.address, 1, 1, gas_limit=100,
                                                  gas_price=2))
        bank.ante(store, tx, ALICE.address)
        assert get_account(store, ALICE.address).nonce == 2
        assert get_account(store, ALICE.address).balance == get_account(
            r, ALICE.address).balance - 200
    finally:
        r.close()


# --- supply ---------------------------------------------------------------------------


def balances_sum(chain) -> int:
    r = chain.reader()
    try:
        return sum(get_account(r, k[len(ACCOUNT_PREFIX):]).balance
                   for k, _ in r.iter_prefix(ACCOUNT_PREFIX))
    finally:
        r.close()


@pytest.mark.parametrize(
    ("seed", "genesis_kind", "block_time_ms"),
    [(1, "small", 1000), (2, "small", 500), (3, "near_cap", 6000), (4, "at_cap", 1000)],
)
def test_supply_equals_sum_of_balances_every_block(chainkit, seed: int, genesis_kind: str,
                                                   block_time_ms: int) -> None:
    rng = random.Random(seed)
    keys = [key_from_index(30 + i) for i in range(5)]
    if genesis_kind == "small":
        balances = {k: rng.randrange(1, 1_000) * HPC for k in keys}
    elif genesis_kind == "near_cap":
        each = (MAX_SUPPLY - 10_000 * HPC) // len(keys)
        balances = {k: each for k in keys}
    else:
        room = MAX_SUPPLY - HPC  # the genesis validator's self-stake counts in the supply
        base = room // len(keys)
        balances = {k: base for k in keys}
        balances[keys[0]] += room - base * len(keys)
    gen = chainkit.genesis(balances, params=Params(block_time_ms=block_time_ms,
                                                   poca_epoch_blocks=3), validator=PROPOSER)
    chain = chainkit.open(gen)
    em = gen.emission()
    assert balances_sum(chain) == supply_of(chain) == gen.supply() <= MAX_SUPPLY

    nonces = dict.fromkeys(keys, 0)
    extra = [PrivateKey.generate().address for _ in range(3)]
    failed = 0
    for _ in range(8):
        raws = []
        for _ in range(rng.randrange(0, 8)):
            sender = rng.choice(keys)
            to = rng.choice([k.address for k in keys] + extra + [PROPOSER.address])
            (acct,) = accounts(chain, sender)
            # sometimes more than the balance: a failed receipt that still pays its fee
            amount = rng.choice([1, rng.randrange(1, 10**6), acct.balance // 3,
                                 acct.balance * 2 + 1])
            amount = max(amount, 1)
            raws.append(chainkit.transfer(sender, to, amount, nonces[sender],
                                          gas_price=rng.randrange(1, 20)))
            nonces[sender] += 1
        _, receipts, skipped = build(chainkit, chain, raws)
        assert not skipped
        failed += sum(not r.ok for r in receipts)
        supply = supply_of(chain)
        assert balances_sum(chain) == supply
        r = chain.reader()
        minted = int.from_bytes(r.get(MINTED_KEY), "big")
        r.close()
        assert supply == gen.supply() + minted  # epochs end at heights 2, 5, 8
        assert minted <= emitted_through(em, chain.height)
        assert (minted > 0) == (chain.height >= 2 and em.pool > 0)  # the proposer's part
        assert supply <= MAX_SUPPLY
    assert failed > 0  # the run exercised failing transfers too
    if genesis_kind == "at_cap":
        assert em.pool == 0 and supply_of(chain) == MAX_SUPPLY


@pytest.mark.parametrize("balance", [0, 1, 123_456_789, (1 << 64) - 1, 1 << 64,
                                     (1 << 100) + 3, (1 << 128) - 1])
@pytest.mark.parametrize("nonce", [0, 7, (1 << 64) - 1])
def test_account_fast_encoding_matches_codec(balance: int, nonce: int) -> None:
    """The bank's hand-packed account bytes are exactly the Account codec encoding."""
    raw = _encode_account(balance, nonce)
    assert raw == Account(balance, nonce).encode()
    assert _decode_account(raw) == (balance, nonce)
    assert Account.decode(raw) == Account(balance, nonce)
