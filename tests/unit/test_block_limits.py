"""What a block may cost every node, and what happens when executing it goes wrong.

A block's transactions are bounded by ``max_block_bytes`` and ``max_block_gas`` (each
transaction's whole gas limit must fit in what the ones before it left), by the proposer
when it builds and by every validator when it re-executes. Nothing a transaction does can
fail the block: one whose execution raises (a bug below the executor) is left out by the
proposer, and a block carrying one is invalid for everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from framework.chain import ChainKit

from smartchain.app import default_modules
from smartchain.codec import U64, Struct
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.node.mempool import AccountLookup, Mempool
from smartchain.state.chain import Chain, ChainError
from smartchain.state.module import BlockInfo, Module, Msg, TxContext
from smartchain.state.params import Params
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Event, Transaction

ALICE = PrivateKey.from_seed(b"\x01" * 32)
BOB = PrivateKey.from_seed(b"\x02" * 32)
PROPOSER = PrivateKey.from_seed(b"\xfa" * 32)
T0 = ChainKit.genesis_time_ms


@dataclass(frozen=True, slots=True)
class Trip(Struct):
    """``where``: 1 = the handler raises, 2 = the end-block hook raises afterwards."""

    where: U64


class Tripwire(Module):
    """A module with a bug: some of its transactions raise something other than TxError."""

    name = "tripwire"

    def messages(self) -> dict[str, Msg]:
        return {"tripwire/trip": Msg(Trip, self._trip)}

    @staticmethod
    def _trip(ctx: TxContext, msg: Trip) -> None:
        if msg.where == 1:
            raise RuntimeError("a bug in a handler")
        ctx.block.cache["tripwire"] = True
        ctx.write(b"tripwire/last", ctx.sender)

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        if block.cache.pop("tripwire", False):
            raise MemoryError("a bug in an end-block hook")
        return []


def open_chain(kit: ChainKit, params: Params | None = None, *, name: str = "a") -> Chain:
    genesis = kit.genesis({ALICE: 10**12, BOB: 10**12}, params=params, validator=PROPOSER)
    chain = Chain(kit.root / name, genesis, [*default_modules(), Tripwire()])
    kit._chains.append(chain)
    return chain


def signed(key: PrivateKey, nonce: int, kind: str, payload: Struct, gas_limit: int, *,
           gas_price: int = 1) -> bytes:
    return Transaction.create(key, chain_id=ChainKit.chain_id, nonce=nonce, kind=kind,
                              payload=payload.encode(), gas_limit=gas_limit,
                              gas_price=gas_price).encode()


def transfers(kit: ChainKit, n: int, gas_limit: int = 100_000) -> list[bytes]:
    return [kit.transfer(ALICE, BOB.address, 1, i, gas_limit=gas_limit) for i in range(n)]


@pytest.fixture
def kit(tmp_path: Path) -> ChainKit:
    k = ChainKit(tmp_path)
    yield k
    k.close_all()


def test_a_transaction_whose_execution_raises_is_left_out_and_the_chain_goes_on(
        kit: ChainKit) -> None:
    chain = open_chain(kit)
    bad = signed(BOB, 0, "tripwire/trip", Trip(1), 100_000)
    raws = [kit.transfer(ALICE, BOB.address, 5, 0), bad, kit.transfer(ALICE, BOB.address, 7, 1)]
    staged = chain.stage_proposal([kit.check(chain, r) for r in raws], T0 + 1000, PROPOSER)
    assert list(staged.block.txs) == [raws[0], raws[2]]
    assert [c.raw for c in staged.skipped] == [bad]  # the mempool drops it
    chain.commit(staged)
    assert chain.height == 1
    assert get_account(chain.reader(), BOB.address).balance == 10**12 + 12


def test_a_transaction_that_makes_the_block_hooks_raise_is_left_out(kit: ChainKit) -> None:
    chain = open_chain(kit)
    bad = signed(BOB, 0, "tripwire/trip", Trip(2), 100_000)
    good = kit.transfer(ALICE, BOB.address, 5, 0)
    staged = chain.stage_proposal([kit.check(chain, r) for r in (good, bad)], T0 + 1000,
                                  PROPOSER)
    # the end-block hook cannot tell which transaction tripped it: the block is retried
    # empty rather than not at all
    assert staged.block.txs == ()
    assert {c.raw for c in staged.skipped} == {good, bad}
    chain.commit(staged)
    assert chain.height == 1


def test_a_block_carrying_a_transaction_that_cannot_be_executed_is_invalid(
        kit: ChainKit) -> None:
    proposer_chain = open_chain(kit, name="proposer")
    validator = open_chain(kit, name="validator")
    bad = signed(BOB, 0, "tripwire/trip", Trip(1), 100_000)
    # A faulty proposer builds with a chain where the handler does not raise ...
    honest_modules = [*default_modules(), _Harmless()]
    faulty = Chain(kit.root / "faulty", proposer_chain.genesis, honest_modules)
    kit._chains.append(faulty)
    staged = faulty.stage_proposal([kit.check(faulty, bad)], T0 + 1000, PROPOSER)
    assert staged.block.txs == (bad,)
    # ... every other node executes it, hits the bug, and refuses the block.
    with pytest.raises(ChainError, match="cannot be executed"):
        validator.stage_block(staged.block, kit.checked_of_block(validator, staged.block.txs))
    assert validator.height == 0


class _Harmless(Tripwire):
    @staticmethod
    def _trip(ctx: TxContext, msg: Trip) -> None:
        ctx.write(b"tripwire/last", ctx.sender)

    def messages(self) -> dict[str, Msg]:
        return {"tripwire/trip": Msg(Trip, self._trip)}


def test_the_proposer_stops_at_the_block_gas_limit_and_keeps_the_rest_for_later(
        kit: ChainKit) -> None:
    chain = open_chain(kit, Params(max_block_gas=320_000, max_tx_gas=300_000))
    raws = transfers(kit, 3, gas_limit=300_000)
    staged = chain.stage_proposal([kit.check(chain, r) for r in raws], T0 + 1000, PROPOSER)
    # a transfer uses ~11.5k of its 300k: the second fits in the 308.5k left, the third
    # does not fit in the ~297k left after two
    assert len(staged.block.txs) == 2
    assert 320_000 - sum(r.gas_used for r in staged.receipts) < 300_000
    assert staged.skipped == []  # not dropped: the next block takes it
    chain.commit(staged)
    nxt = chain.stage_proposal([kit.check(chain, raws[2])], T0 + 2000, PROPOSER)
    assert nxt.block.txs == (raws[2],)


def test_a_block_over_the_gas_limit_is_invalid(kit: ChainKit) -> None:
    roomy = open_chain(kit, Params(max_block_gas=10_000_000, max_tx_gas=400_000), name="r")
    raws = transfers(kit, 5, gas_limit=300_000)
    staged = roomy.stage_proposal([kit.check(roomy, r) for r in raws], T0 + 1000, PROPOSER)
    assert len(staged.block.txs) == 5
    strict = open_chain(kit, Params(max_block_gas=10_000_000, max_tx_gas=400_000), name="s")
    strict.params = replace(strict.params, max_block_gas=320_000)  # as governance would
    with pytest.raises(ChainError, match="gas limit"):
        strict.stage_block(staged.block, kit.checked_of_block(strict, staged.block.txs))
    assert strict.height == 0


def test_a_block_over_the_byte_limit_is_invalid(kit: ChainKit) -> None:
    roomy = open_chain(kit, name="r")
    raws = transfers(kit, 10)
    staged = roomy.stage_proposal([kit.check(roomy, r) for r in raws], T0 + 1000, PROPOSER)
    strict = open_chain(kit, name="s")
    strict.params = replace(strict.params, max_block_bytes=len(raws[0]) * 9)
    with pytest.raises(ChainError, match="byte limit"):
        strict.stage_block(staged.block, kit.checked_of_block(strict, staged.block.txs))
    # the proposer itself stops before the limit
    fitted = strict.stage_proposal([kit.check(strict, r) for r in raws], T0 + 1000, PROPOSER)
    assert len(fitted.block.txs) == 9 and fitted.skipped == []


def test_a_transaction_no_block_could_take_is_refused_before_the_mempool(
        kit: ChainKit) -> None:
    chain = open_chain(kit, Params(max_block_gas=1_000_000, max_tx_gas=5_000_000))
    raw = kit.transfer(ALICE, BOB.address, 1, 0, gas_limit=2_000_000)
    with pytest.raises(TxError) as err:
        kit.check(chain, raw)
    assert err.value.code == Code.GAS_LIMIT and "1000000" in err.value.message


class _BuggyCheck(Tripwire):
    def messages(self) -> dict[str, Msg]:
        def validate(msg: Trip) -> None:
            if msg.where == 3:
                raise ZeroDivisionError("a bug in a stateless check")
        return {"tripwire/trip": Msg(Trip, self._trip, validate)}


def test_a_payload_whose_check_raises_is_refused_with_a_clear_error(kit: ChainKit) -> None:
    genesis = kit.genesis({ALICE: 10**12}, validator=PROPOSER)
    chain = Chain(kit.root / "buggy", genesis, [*default_modules(), _BuggyCheck()])
    kit._chains.append(chain)
    with pytest.raises(TxError) as err:
        kit.check(chain, signed(ALICE, 0, "tripwire/trip", Trip(3), 100_000))
    assert err.value.code == Code.INVALID_PAYLOAD and "cannot be checked" in err.value.message


CAROL = PrivateKey.from_seed(b"\x03" * 32)
DAVE = PrivateKey.from_seed(b"\x04" * 32)


def _mempool_of(chain: Chain, raws: list[bytes]) -> tuple[Mempool, AccountLookup]:
    def lookup(address: bytes) -> tuple[int, int]:
        account = get_account(chain.reader(), address)
        return account.balance, account.nonce

    pool = Mempool()
    for raw in raws:
        pool.add(ChainKit.check(chain, raw), lookup)
    return pool, lookup


def test_a_transaction_whose_execution_raises_leaves_the_mempool(kit: ChainKit) -> None:
    genesis = kit.genesis({ALICE: 10**12, BOB: 10**12}, validator=PROPOSER)
    chain = Chain(kit.root / "m", genesis, [*default_modules(), Tripwire()])
    kit._chains.append(chain)
    bad = signed(BOB, 0, "tripwire/trip", Trip(1), 100_000)
    pool, lookup = _mempool_of(chain, [bad, kit.transfer(ALICE, BOB.address, 5, 0)])
    staged = chain.stage_proposal(pool.reap(), T0 + 1000, PROPOSER)
    chain.commit(staged)
    pool.update(staged.included, staged.skipped, lookup)
    # left in, it would cost every later block of this proposer a second execution, and
    # hold up every later transaction of its sender
    assert len(pool) == 0


def test_transactions_whose_execution_raises_do_not_keep_blocks_empty(kit: ChainKit) -> None:
    """Each costs its sender nothing (it is never included): if a few of them at the head
    of the mempool emptied the block and stayed there, every block would be empty; if the
    honest ones staged with them were dropped, a few would flush the mempool. Each block
    sheds at least two of them, and the honest ones wait."""
    accounts = {ALICE: 10**12, BOB: 10**12, CAROL: 10**12, DAVE: 10**12}
    genesis = kit.genesis(accounts, validator=PROPOSER)
    chain = Chain(kit.root / "e", genesis, [*default_modules(), Tripwire()])
    kit._chains.append(chain)
    good = [kit.transfer(ALICE, BOB.address, 5, 0), kit.transfer(ALICE, BOB.address, 5, 1)]
    bad = [signed(k, 0, "tripwire/trip", Trip(1), 100_000, gas_price=2)
           for k in (BOB, CAROL, DAVE)]  # they outbid: first in every block
    pool, lookup = _mempool_of(chain, [*bad, *good])
    included: list[bytes] = []
    for n in range(1, 3):
        staged = chain.stage_proposal(pool.reap(), T0 + 1000 * n, PROPOSER)
        chain.commit(staged)
        pool.update(staged.included, staged.skipped, lookup)
        included += staged.block.txs
    assert included == good and len(pool) == 0
