"""The tokens module (IOT_Coin) at the state level: issue, transfer, allowances, mint, burn,
limits, fees in HPC, reverts, and the supply invariant over random histories."""

from __future__ import annotations

import random
from typing import Any

import pytest
from framework.chain import ChainNet

from smartchain.codec import Struct
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.modules.tokens.module import (
    all_tokens,
    allowance,
    holdings,
    move_tokens,
    spend_allowance,
    token_balance,
    token_info,
)
from smartchain.modules.tokens.types import (
    BALANCE_PREFIX,
    MAX_AMOUNT,
    Approve,
    Burn,
    Issue,
    Mint,
    TokenInfo,
    TokenTransfer,
    TransferFrom,
)
from smartchain.state.store import Overlay, StateReader
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt


def key_from_index(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


ALICE, BOB, CAROL, DAVE = (key_from_index(i) for i in (31, 32, 33, 34))
PROPOSER = key_from_index(39)
HPC = 10**8
class Net(ChainNet):
    """The token tests' chain: an issue carries the symbol price in its gas."""

    gas_limit = 100_000

    def default_gas(self, kind: str) -> int:
        return 1_100_000 if kind == "tokens/issue" else self.gas_limit

    def view(self) -> StateReader:
        return self.chain.reader()

    def info(self, symbol: str) -> TokenInfo | None:
        with self.view() as r:
            return token_info(r, symbol)

    def bal(self, symbol: str, key: PrivateKey) -> int:
        with self.view() as r:
            return token_balance(r, symbol, key.address)

    def allowed(self, symbol: str, owner: PrivateKey, spender: PrivateKey) -> int:
        with self.view() as r:
            return allowance(r, symbol, owner.address, spender.address)

    def hpc(self, key: PrivateKey) -> int:
        with self.view() as r:
            return get_account(r, key.address).balance


@pytest.fixture
def net(chainkit: Any) -> Net:
    gen = chainkit.genesis({ALICE: 1_000 * HPC, BOB: 1_000 * HPC, CAROL: 1_000 * HPC,
                            DAVE: 1_000 * HPC})
    return Net(chainkit, chainkit.open(gen), PROPOSER)


def park(supply: int = 1_000_000, *, mintable: bool = False, max_supply: int | None = None,
         symbol: str = "PARK", decimals: int = 2) -> Issue:
    cap = max_supply if max_supply is not None else supply
    return Issue(symbol, "Parking credit", decimals, supply, mintable, cap)


def attrs(receipt: Receipt, kind: str) -> dict[str, str]:
    (event,) = [e for e in receipt.events if e.kind == kind]
    return event.to_json()["attributes"]


# --- issue ---------------------------------------------------------------------------------


def test_issue_records_metadata_and_credits_the_issuer(net: Net) -> None:
    receipt = net.ok(ALICE, park(1_000_000, mintable=True, max_supply=5_000_000))
    params = net.chain.params
    assert receipt.gas_used > params.token_issue_gas + 2 * params.gas_per_write
    assert net.info("PARK") == TokenInfo("PARK", "Parking credit", 2, ALICE.address, 1_000_000,
                                         5_000_000, True)
    assert net.bal("PARK", ALICE) == 1_000_000
    assert attrs(receipt, "token_issue") == {
        "symbol": "PARK", "issuer": to_bech32(ALICE.address), "amount": "1000000",
        "max_supply": "5000000", "mintable": "true", "decimals": "2"}
    net.ok(BOB, Issue("WATT9", "Kilowatt hours", 0, 7, False, 7))
    with net.view() as r:
        assert [t.symbol for t in all_tokens(r)] == ["PARK", "WATT9"]
        assert holdings(r, ALICE.address) == [("PARK", 1_000_000)]
        assert holdings(r, CAROL.address) == []


def test_mintable_token_may_start_with_zero_supply(net: Net) -> None:
    receipt = net.ok(ALICE, park(0, mintable=True, max_supply=100))
    assert net.info("PARK").supply == 0  # type: ignore[union-attr]
    assert net.bal("PARK", ALICE) == 0
    assert attrs(receipt, "token_issue")["amount"] == "0"


def test_duplicate_symbol_refused_and_pays_fee(net: Net) -> None:
    net.ok(ALICE, park(1_000))
    before = net.hpc(BOB)
    receipt = net.send(BOB, park(9_999, mintable=True, max_supply=10**6))
    assert receipt.code == Code.FAILED and "already issued" in receipt.log
    assert net.info("PARK").issuer == ALICE.address  # type: ignore[union-attr]
    assert net.bal("PARK", BOB) == 0
    assert net.hpc(BOB) == before - receipt.fee > 0
    assert receipt.gas_used < net.chain.params.token_issue_gas  # no symbol, no symbol price
    assert receipt.events == ()


def test_issue_without_gas_for_the_symbol_runs_out_of_gas(net: Net) -> None:
    receipt = net.send(ALICE, park(), gas_limit=500_000)
    assert receipt.code == Code.OUT_OF_GAS and receipt.gas_used == 500_000
    assert net.info("PARK") is None


BAD_PAYLOADS: list[tuple[Struct, str]] = [
    (park(symbol="HPC"), "reserved"),
    (park(symbol="park"), "invalid token symbol"),
    (park(symbol="P"), "invalid token symbol"),
    (park(symbol="1PARK"), "invalid token symbol"),
    (park(symbol="PARK_"), "invalid token symbol"),
    (park(symbol="ABCDEFGHIJK"), "invalid token symbol"),
    (park(symbol="PÄRK"), "invalid token symbol"),
    (park(symbol=""), "invalid token symbol"),
    (Issue("PARK", "", 2, 10, False, 10), "name"),
    (Issue("PARK", "x" * 65, 2, 10, False, 10), "name"),
    (Issue("PARK", "line\nbreak", 2, 10, False, 10), "name"),
    (park(decimals=19), "decimals"),
    (park(10, max_supply=11), "not mintable"),
    (park(0), "positive supply"),
    (park(11, mintable=True, max_supply=10), "exceeds max supply"),
    (park(MAX_AMOUNT + 1, mintable=True, max_supply=MAX_AMOUNT + 1), "2**63-1"),
    (park(1, mintable=True, max_supply=2**64 - 1), "2**63-1"),
    (TokenTransfer("PARK", BOB.address, 0), "positive"),
    (TokenTransfer("HPC", BOB.address, 5), "reserved"),
    (TokenTransfer("PARK", BOB.address, MAX_AMOUNT + 1), "2**63-1"),
    (Approve("park", BOB.address, 5), "invalid token symbol"),
    (Approve("PARK", BOB.address, MAX_AMOUNT + 1), "2**63-1"),
    (TransferFrom("PARK", ALICE.address, BOB.address, 0), "positive"),
    (Mint("PARK", BOB.address, 0), "positive"),
    (Mint("PARK", BOB.address, 2**64 - 1), "2**63-1"),
    (Burn("PARK", 0), "positive"),
    (Burn("X", 5), "invalid token symbol"),
]


@pytest.mark.parametrize(("msg", "fragment"), BAD_PAYLOADS,
                         ids=[f"{type(m).__name__}-{i}" for i, (m, _) in enumerate(BAD_PAYLOADS)])
def test_malformed_payloads_refused_before_the_mempool(net: Net, msg: Struct,
                                                       fragment: str) -> None:
    raw = net.sign(ALICE, msg)
    with pytest.raises(TxError) as exc:
        net.kit.check(net.chain, raw)
    assert exc.value.code == Code.INVALID_PAYLOAD
    assert fragment in exc.value.message


def test_approve_zero_is_valid(net: Net) -> None:
    net.kit.check(net.chain, net.sign(ALICE, Approve("PARK", BOB.address, 0)))


# --- transfer ------------------------------------------------------------------------------


def test_transfer_moves_tokens_and_emits_event(net: Net) -> None:
    net.ok(ALICE, park(1_000))
    receipt = net.ok(ALICE, TokenTransfer("PARK", BOB.address, 250))
    assert (net.bal("PARK", ALICE), net.bal("PARK", BOB)) == (750, 250)
    assert attrs(receipt, "token_transfer") == {
        "symbol": "PARK", "from": to_bech32(ALICE.address), "to": to_bech32(BOB.address),
        "amount": "250"}
    net.ok(ALICE, TokenTransfer("PARK", ALICE.address, 750))  # to oneself: a no-op
    assert net.bal("PARK", ALICE) == 750
    net.ok(BOB, TokenTransfer("PARK", ALICE.address, 250))  # all of it: the key goes away
    with net.view() as r:
        assert holdings(r, BOB.address) == []
        assert r.get(BALANCE_PREFIX + BOB.address + b"PARK") is None
    unknown = net.send(ALICE, TokenTransfer("NOPE", BOB.address, 1))
    assert unknown.code == Code.FAILED and "unknown token 'NOPE'" in unknown.log


def test_double_spend_in_one_block(net: Net) -> None:
    net.ok(ALICE, park(1_000))
    first, second = net.block(net.sign(ALICE, TokenTransfer("PARK", BOB.address, 600)),
                              net.sign(ALICE, TokenTransfer("PARK", CAROL.address, 600)))
    assert first.ok
    assert second.code == Code.INSUFFICIENT_FUNDS
    assert "insufficient PARK: balance 400 < amount 600" in second.log
    assert (net.bal("PARK", ALICE), net.bal("PARK", BOB), net.bal("PARK", CAROL)) == \
        (400, 600, 0)


def test_fees_are_paid_in_hpc_not_tokens(net: Net) -> None:
    net.ok(ALICE, park(1_000))
    hpc_before = net.hpc(ALICE)
    receipt = net.ok(ALICE, TokenTransfer("PARK", BOB.address, 1), gas_price=3)
    assert receipt.fee == 3 * receipt.gas_used > 0
    assert net.hpc(ALICE) == hpc_before - receipt.fee
    assert net.bal("PARK", ALICE) == 999 and net.bal("PARK", BOB) == 1
    assert net.hpc(BOB) == 1_000 * HPC  # receiving tokens costs the recipient nothing


# --- allowances ----------------------------------------------------------------------------


def test_allowances(net: Net) -> None:
    net.ok(ALICE, park(1_000))
    receipt = net.ok(ALICE, Approve("PARK", BOB.address, 300))
    assert attrs(receipt, "token_approve") == {
        "symbol": "PARK", "owner": to_bech32(ALICE.address), "spender": to_bech32(BOB.address),
        "amount": "300"}
    assert net.allowed("PARK", ALICE, BOB) == 300

    receipt = net.ok(BOB, TransferFrom("PARK", ALICE.address, CAROL.address, 120))
    assert attrs(receipt, "token_transfer") == {
        "symbol": "PARK", "from": to_bech32(ALICE.address), "to": to_bech32(CAROL.address),
        "amount": "120", "spender": to_bech32(BOB.address)}
    assert (net.bal("PARK", ALICE), net.bal("PARK", CAROL)) == (880, 120)
    assert net.allowed("PARK", ALICE, BOB) == 180

    over = net.send(BOB, TransferFrom("PARK", ALICE.address, BOB.address, 181))
    assert over.code == Code.FAILED and "allowance" in over.log
    assert net.allowed("PARK", ALICE, BOB) == 180
    assert (net.bal("PARK", ALICE), net.bal("PARK", BOB)) == (880, 0)
    # the allowance is the owner's to Bob, nobody else's
    assert net.send(CAROL, TransferFrom("PARK", ALICE.address, CAROL.address, 1)).code \
        == Code.FAILED

    net.ok(ALICE, Approve("PARK", BOB.address, 50))  # overwrites, does not add
    assert net.allowed("PARK", ALICE, BOB) == 50
    net.ok(BOB, TransferFrom("PARK", ALICE.address, BOB.address, 50))
    assert net.allowed("PARK", ALICE, BOB) == 0
    net.ok(ALICE, Approve("PARK", BOB.address, 10))
    net.ok(ALICE, Approve("PARK", BOB.address, 0))  # revokes
    assert net.send(BOB, TransferFrom("PARK", ALICE.address, BOB.address, 1)).code == Code.FAILED
    assert net.send(ALICE, Approve("NOPE", BOB.address, 1)).code == Code.FAILED


def test_failed_transfer_from_reverts_the_allowance_and_pays_fee(net: Net) -> None:
    """The allowance is spent before the balance is checked: the revert must undo it."""
    net.ok(ALICE, park(100))
    net.ok(ALICE, Approve("PARK", BOB.address, 500))
    hpc_before = net.hpc(BOB)
    root_before = net.chain.state_root
    receipt = net.send(BOB, TransferFrom("PARK", ALICE.address, BOB.address, 200))
    assert receipt.code == Code.INSUFFICIENT_FUNDS and receipt.events == ()
    assert net.allowed("PARK", ALICE, BOB) == 500
    assert (net.bal("PARK", ALICE), net.bal("PARK", BOB)) == (100, 0)
    assert net.hpc(BOB) == hpc_before - receipt.fee and receipt.fee > 0
    with net.view() as r:
        assert get_account(r, BOB.address).nonce == 1
    assert net.chain.state_root != root_before  # the fee and nonce did change


# --- mint and burn ---------------------------------------------------------------------------


def test_mint_by_issuer_up_to_max_supply(net: Net) -> None:
    net.ok(ALICE, park(100, mintable=True, max_supply=1_000))
    receipt = net.ok(ALICE, Mint("PARK", BOB.address, 850))
    assert attrs(receipt, "token_mint") == {"symbol": "PARK", "to": to_bech32(BOB.address),
                                            "amount": "850", "supply": "950"}
    assert net.info("PARK").supply == 950  # type: ignore[union-attr]
    above = net.send(ALICE, Mint("PARK", ALICE.address, 51))
    assert above.code == Code.FAILED and "max supply" in above.log
    net.ok(ALICE, Mint("PARK", ALICE.address, 50))
    assert net.info("PARK").supply == 1_000  # type: ignore[union-attr]
    assert (net.bal("PARK", ALICE), net.bal("PARK", BOB)) == (150, 850)


def test_mint_refused_to_non_issuer_and_fixed_tokens(net: Net) -> None:
    net.ok(ALICE, park(100, mintable=True, max_supply=1_000))
    net.ok(ALICE, Issue("FIXED", "Fixed supply", 0, 100, False, 100))
    stranger = net.send(BOB, Mint("PARK", BOB.address, 1))
    assert stranger.code == Code.FAILED and "only the issuer" in stranger.log
    fixed = net.send(ALICE, Mint("FIXED", ALICE.address, 1))
    assert fixed.code == Code.FAILED and "not mintable" in fixed.log
    assert net.info("PARK").supply == 100 and net.info("FIXED").supply == 100  # type: ignore
    assert net.bal("PARK", BOB) == 0


def test_burn_shrinks_supply(net: Net) -> None:
    net.ok(ALICE, park(1_000))
    net.ok(ALICE, TokenTransfer("PARK", BOB.address, 400))
    receipt = net.ok(BOB, Burn("PARK", 150))  # anyone may burn their own
    assert attrs(receipt, "token_burn") == {"symbol": "PARK", "from": to_bech32(BOB.address),
                                            "amount": "150", "supply": "850"}
    assert net.info("PARK").supply == 850  # type: ignore[union-attr]
    assert net.bal("PARK", BOB) == 250
    too_much = net.send(BOB, Burn("PARK", 251))
    assert too_much.code == Code.INSUFFICIENT_FUNDS
    assert net.info("PARK").supply == 850  # type: ignore[union-attr]
    net.ok(ALICE, Burn("PARK", 600))
    assert net.info("PARK").supply == 250  # type: ignore[union-attr]


# --- the 64-bit limit ------------------------------------------------------------------------


def test_amounts_stay_within_63_bits(net: Net) -> None:
    net.ok(ALICE, park(MAX_AMOUNT, symbol="BIG"))  # the largest supply there is
    assert net.bal("BIG", ALICE) == MAX_AMOUNT
    net.ok(ALICE, TokenTransfer("BIG", BOB.address, MAX_AMOUNT))
    assert net.bal("BIG", BOB) == MAX_AMOUNT

    net.ok(ALICE, park(MAX_AMOUNT - 5, mintable=True, max_supply=MAX_AMOUNT))
    over = net.send(ALICE, Mint("PARK", ALICE.address, 6))
    assert over.code == Code.FAILED and "max supply" in over.log
    net.ok(ALICE, Mint("PARK", BOB.address, 5))
    assert net.info("PARK").supply == MAX_AMOUNT  # type: ignore[union-attr]
    assert net.send(ALICE, Mint("PARK", BOB.address, 1)).code == Code.FAILED


# --- the functions other modules call --------------------------------------------------------


def test_plain_functions_raise_tx_errors(net: Net) -> None:
    net.ok(ALICE, park(100))
    reader = net.chain.reader()
    try:
        ov = Overlay(reader)
        move_tokens(ov, "PARK", ALICE.address, CAROL.address, 30)
        assert token_balance(ov, "PARK", CAROL.address) == 30
        with pytest.raises(TxError) as exc:
            move_tokens(ov, "PARK", CAROL.address, BOB.address, 31)
        assert exc.value.code == Code.INSUFFICIENT_FUNDS
        for bad in (0, -1, MAX_AMOUNT + 1):
            with pytest.raises(TxError):
                move_tokens(ov, "PARK", ALICE.address, BOB.address, bad)
        with pytest.raises(TxError, match="unknown token"):
            move_tokens(ov, "NOPE", ALICE.address, BOB.address, 1)
        with pytest.raises(TxError, match="allowance"):
            spend_allowance(ov, "PARK", ALICE.address, BOB.address, 1)
        assert holdings(ov, CAROL.address) == [("PARK", 30)]
        assert token_info(ov, "NOPE") is None
    finally:
        reader.close()


def test_queries_registered(net: Net) -> None:
    net.ok(ALICE, park(100))
    q = net.chain.executor.queries
    with net.view() as r:
        alice = to_bech32(ALICE.address)
        assert q["tokens/info"](r, {"symbol": "PARK"}).supply == 100
        assert q["tokens/balance"](r, {"symbol": "PARK", "address": alice}) == 100
        assert q["tokens/allowance"](r, {"symbol": "PARK", "owner": alice,
                                         "spender": to_bech32(BOB.address)}) == 0
        assert [t.symbol for t in q["tokens/list"](r, {})] == ["PARK"]
        assert q["tokens/holdings"](r, {"address": alice}) == [("PARK", 100)]


# --- the supply invariant ----------------------------------------------------------------------


def _random_msg(rng: random.Random, keys: list[PrivateKey]) -> tuple[PrivateKey, Struct]:
    sender, other, third = (rng.choice(keys) for _ in range(3))
    symbol = rng.choice(["PARK", "WATT"])
    amount = rng.choice([1, rng.randint(1, 400), rng.randint(1, 5_000)])
    op = rng.randrange(5)
    if op == 0:
        return sender, TokenTransfer(symbol, other.address, amount)
    if op == 1:
        return sender, Approve(symbol, other.address, amount)
    if op == 2:
        return sender, TransferFrom(symbol, other.address, third.address, amount)
    if op == 3:
        return sender, Mint(symbol, other.address, amount)
    return sender, Burn(symbol, amount)


def test_balances_sum_to_supply_after_random_history(net: Net, chainkit: Any) -> None:
    keys = [ALICE, BOB, CAROL, DAVE]
    net.block(net.sign(ALICE, park(5_000, mintable=True, max_supply=20_000)),
              net.sign(BOB, Issue("WATT", "Kilowatt hours", 3, 3_000, False, 3_000)))
    rng = random.Random(20240601)
    outcomes: set[int] = set()
    for _ in range(12):
        raws = [net.sign(*_random_msg(rng, keys)) for _ in range(rng.randint(1, 8))]
        outcomes.update(r.code for r in net.block(*raws))
    assert Code.OK in outcomes and outcomes - {Code.OK}  # both successes and failures ran
    with net.view() as r:
        for info in all_tokens(r):
            held = sum(dict(holdings(r, k.address)).get(info.symbol, 0) for k in keys)
            assert held == info.supply <= info.max_supply, info
    # every node computes the same state: replay the chain on a second store
    replica = chainkit.open(net.chain.genesis)
    for height in range(1, net.chain.height + 1):
        block = net.chain.get_block(height)
        assert block is not None
        replica.apply_block(block, chainkit.checked_of_block(replica, block.txs))
    assert replica.state_root == net.chain.state_root
