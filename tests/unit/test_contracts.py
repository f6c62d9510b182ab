"""Contracts on a real chain: deploy, call, query, gas, reverts, the example contracts,
and two chains fed the same blocks reaching the same state root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from framework.chain import ChainNet

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.modules.contracts.module import contract_info, query_call
from smartchain.modules.contracts.types import Arg, Call, Deploy, contract_address
from smartchain.modules.tokens.module import token_balance
from smartchain.modules.tokens.types import Approve, Issue, Mint
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"
HPC = 10**8

def key_from_index(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


ALICE, BOB, CAROL = key_from_index(41), key_from_index(42), key_from_index(43)
PROPOSER = key_from_index(49)


def addr(key: PrivateKey) -> str:
    return to_bech32(key.address)


class Net(ChainNet):
    """The contract tests' chain: blocks one minute apart (the parking fee counts minutes)."""

    block_ms = 60_000

    def deploy(self, key: PrivateKey, source: bytes, *args: Any, value: int = 0) -> bytes:
        nonce = self.nonces.get(key.address, 0)
        receipt = self.send(key, Deploy(source, tuple(Arg.of(a) for a in args), value))
        assert receipt.ok, receipt.log
        return contract_address(key.address, nonce + 1)

    def call(self, key: PrivateKey, contract: bytes, function: str, *args: Any,
             value: int = 0, **kwargs: Any) -> Receipt:
        return self.send(key, Call(contract, function, tuple(Arg.of(a) for a in args), value),
                         **kwargs)

    def query(self, contract: bytes, function: str, *args: Any) -> tuple:
        out = self.read(query_call, self.chain.params, contract, function, list(args),
                        caller=ALICE.address, height=self.chain.height, time_ms=0)
        assert out.ok, out.error
        return out.results


@pytest.fixture
def net(chainkit) -> Net:
    gen = chainkit.genesis({ALICE: 1_000 * HPC, BOB: 1_000 * HPC, CAROL: 1_000 * HPC})
    return Net(chainkit, chainkit.open(gen), PROPOSER)


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


# --- deploy, call, query ---------------------------------------------------------------------

def test_deploy_call_and_query_a_token_contract(net: Net) -> None:
    token = net.deploy(ALICE, example("token.lua"), 1_000)
    info = net.read(contract_info, token)
    assert info.creator == ALICE.address and info.height == 1
    receipt = net.call(ALICE, token, "transfer", addr(BOB), 250)
    assert receipt.ok, receipt.log
    assert net.query(token, "balance_of", addr(BOB)) == (250,)
    assert net.query(token, "balance_of", addr(ALICE)) == (750,)
    refused = net.call(BOB, token, "transfer", addr(CAROL), 251)
    assert refused.code == Code.FAILED and "insufficient balance" in refused.log
    assert net.query(token, "balance_of", addr(BOB)) == (250,)


def test_contract_events_land_in_the_receipt(net: Net) -> None:
    c = net.deploy(ALICE, b'function hello(n) emit("greeting", {to = ctx.caller, n = n}) end')
    receipt = net.call(BOB, c, "hello", 7)
    assert receipt.ok, receipt.log
    (event,) = [e.to_json() for e in receipt.events]
    assert event == {"kind": "contract/greeting", "attributes": {
        "contract": to_bech32(c), "n": "7", "to": addr(BOB)}}


def test_bad_sources_are_refused_before_the_mempool(net: Net) -> None:
    for source, reason in [(b"function f() return 1.5 end", "floating-point"),
                           (b"function f( end", "syntax error"),
                           (b"function f(a) return a .. 'x' end", "'..'")]:
        raw = net.sign(ALICE, Deploy(source, ()))
        with pytest.raises(TxError) as err:
            net.kit.check(net.chain, raw)
        assert err.value.code == Code.INVALID_PAYLOAD and reason in err.value.message
    raw = net.sign(ALICE, Call(bytes(20), "init", ()))
    with pytest.raises(TxError, match="not a public function"):
        net.kit.check(net.chain, raw)


def test_calling_nothing_fails_cleanly(net: Net) -> None:
    missing = net.call(ALICE, bytes(20), "f")
    assert missing.code == Code.FAILED and "no contract" in missing.log
    c = net.deploy(ALICE, b"function f() end")
    nofn = net.call(ALICE, c, "g")
    assert nofn.code == Code.FAILED and "no function 'g'" in nofn.log


# --- gas and reverts -------------------------------------------------------------------------

def test_out_of_gas_loop_costs_exactly_the_gas_limit_and_reverts_everything(net: Net) -> None:
    c = net.deploy(ALICE, b"function spin() storage.set('k', 1) while true do end end")
    before = net.read(get_account, BOB.address).balance
    receipt = net.call(BOB, c, "spin", value=5 * HPC, gas_limit=300_000, gas_price=2)
    assert receipt.code == Code.OUT_OF_GAS
    assert (receipt.gas_used, receipt.fee) == (300_000, 600_000)
    assert net.read(get_account, BOB.address).balance == before - 600_000  # value returned
    assert net.read(get_account, c).balance == 0
    reader = net.chain.reader()
    try:
        assert list(reader.iter_prefix(b"contracts/store/" + c)) == []
    finally:
        reader.close()


def test_a_failed_call_reverts_its_writes_and_still_pays(net: Net) -> None:
    c = net.deploy(ALICE, b"""
        function ok() storage.set("n", 1) end
        function boom() storage.set("n", 2) transfer(ctx.caller, 1) error("nope") end
        function n() return storage.get("n") end
    """, value=10)
    assert net.call(ALICE, c, "ok").ok
    receipt = net.call(BOB, c, "boom")
    assert receipt.code == Code.FAILED and "nope" in receipt.log and receipt.fee > 0
    assert net.query(c, "n") == (1,)
    assert net.read(get_account, c).balance == 10


def test_gas_grows_with_work(net: Net) -> None:
    c = net.deploy(ALICE, b"""
        function loop(n) local x = 0 for i = 1, n do x = x + i end return x end
    """)
    small, big = net.call(ALICE, c, "loop", 10), net.call(ALICE, c, "loop", 100_000)
    assert small.ok and big.ok
    assert big.gas_used - small.gas_used >= 100_000


# --- the example contracts -----------------------------------------------------------------------

def test_escrow_release_pays_the_seller_and_refund_is_then_refused(net: Net) -> None:
    escrow = net.deploy(ALICE, example("escrow.lua"), addr(BOB), addr(CAROL), 100,
                        value=10 * HPC)
    assert net.read(get_account, escrow).balance == 10 * HPC
    denied = net.call(BOB, escrow, "release")
    assert denied.code == Code.FAILED and "only the buyer or the arbiter" in denied.log
    bob_before = net.read(get_account, BOB.address).balance
    released = net.call(CAROL, escrow, "release")
    assert released.ok, released.log
    assert net.read(get_account, BOB.address).balance == bob_before + 10 * HPC
    assert net.read(get_account, escrow).balance == 0
    assert "already settled" in net.call(CAROL, escrow, "refund").log
    assert net.query(escrow, "status")[0] == b"released"


def test_escrow_buyer_takes_money_back_after_the_deadline(net: Net) -> None:
    escrow = net.deploy(ALICE, example("escrow.lua"), addr(BOB), addr(CAROL), 2, value=HPC)
    assert "only the seller or the arbiter" in net.call(ALICE, escrow, "refund").log
    net.block()
    net.block()
    assert net.call(ALICE, escrow, "refund").ok
    assert net.query(escrow, "status")[0] == b"refunded"


def test_parking_fee_is_pulled_from_the_car_by_the_gate(net: Net) -> None:
    gate, car = ALICE, BOB
    assert net.send(gate, Issue("PARK", "Parking credit", 2, 0, True, 10**9),
                    gas_limit=2_000_000).ok
    # the car holds PARK: the gate mints some to it (mintable token, issuer is the gate)
    assert net.send(gate, Mint("PARK", car.address, 1_000)).ok
    parking = net.deploy(gate, example("parking.lua"), "PARK", 5)
    assert net.send(car, Approve("PARK", parking, 500)).ok
    assert net.call(gate, parking, "enter", addr(car)).ok  # blocks are one minute apart
    net.block()
    net.block()
    left = net.call(gate, parking, "leave", addr(car))
    assert left.ok, left.log
    paid = next(e.to_json() for e in left.events if e.kind == "contract/paid")["attributes"]
    assert (paid["minutes"], paid["amount"]) == ("3", "15")
    assert net.read(token_balance, "PARK", car.address) == 1_000 - 15
    assert net.read(token_balance, "PARK", gate.address) == 15
    assert "only the gate operator" in net.call(car, parking, "enter", addr(car)).log
    assert "not parked" in net.call(gate, parking, "leave", addr(car)).log


def test_data_reward_pays_accepted_records_and_returns_the_rest(net: Net) -> None:
    pool = net.deploy(ALICE, example("data_reward.lua"), HPC, value=3 * HPC)
    record = "ab" * 32
    assert net.call(BOB, pool, "submit", record).ok
    assert "already submitted" in net.call(CAROL, pool, "submit", record).log
    bob_before = net.read(get_account, BOB.address).balance
    assert "only the buyer" in net.call(CAROL, pool, "accept", record).log
    assert net.call(ALICE, pool, "accept", record).ok
    assert net.read(get_account, BOB.address).balance == bob_before + HPC
    assert "already rewarded" in net.call(ALICE, pool, "accept", record).log
    alice_before = net.read(get_account, ALICE.address).balance
    closed = net.call(ALICE, pool, "close")
    assert closed.ok
    assert net.read(get_account, ALICE.address).balance == alice_before + 2 * HPC - closed.fee
    assert net.query(pool, "accepted") == (1,)


# --- determinism across chains ---------------------------------------------------------

def test_two_chains_fed_the_same_blocks_reach_the_same_state_root(net: Net, chainkit) -> None:
    token = net.deploy(ALICE, example("token.lua"), 10_000)
    sorter = net.deploy(BOB, b"""
        function f(n)
          local t = {}
          for i = 1, n do t[concat("key", i * 7919 % 1009)] = i end
          local out = {}
          for k, v in pairs(t) do out[#out + 1] = k end
          storage.set("first", out[1]) storage.set("count", #out)
        end
    """)
    net.block(*[net.sign(ALICE, Call(token, "transfer", (Arg.of(addr(BOB)), Arg.of(i))))
                for i in range(1, 20)],
              net.sign(BOB, Call(sorter, "f", (Arg.of(500),))),
              net.sign(CAROL, Call(token, "transfer", (Arg.of(addr(BOB)), Arg.of(1)))))
    twin = chainkit.open(net.chain.genesis)
    for block in net.blocks:
        twin.apply_block(block, chainkit.checked_of_block(twin, block.txs))
    assert twin.state_root == net.chain.state_root
    assert twin.height == net.chain.height


def test_calling_a_contract_never_rewrites_its_source_again(
        net: Net, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewriting a source for the VM costs far more CPU than the 1 gas a byte a call pays
    to compile it, so the deploy (which pays 100 gas a byte) rewrites it once and keeps
    the result; calls in later blocks, even on a node whose cache is cold, read it."""
    from smartchain.contracts import host
    from smartchain.contracts.rewrite import rewrite

    token = net.deploy(ALICE, example("token.lua"), 1_000)
    rewrite.cache_clear()
    calls: list[int] = []

    def counted(src: bytes) -> bytes:
        calls.append(len(src))
        return rewrite(src)

    monkeypatch.setattr(host, "rewrite", counted)
    receipt = net.call(ALICE, token, "transfer", to_bech32(BOB.address), 5)
    assert receipt.ok, receipt.log
    assert net.query(token, "balance_of", to_bech32(BOB.address)) == (5,)
    assert calls == []
