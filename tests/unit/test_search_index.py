"""The node's search index (smartchain/node/index.py): transactions by account and events by
kind and attribute, written in each block's own store transaction, caught up after a time
switched off, read newest first in pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from framework.chain import ChainKit, ChainNet

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.modules.tokens.types import Issue, TokenTransfer
from smartchain.node.index import PARTY, SENDER, Index, TxPos, attr_topic, kind_topic
from smartchain.state.chain import Chain

ALICE = PrivateKey.from_seed(b"a" * 32)
BOB = PrivateKey.from_seed(b"b" * 32)
CAROL = PrivateKey.from_seed(b"c" * 32)
PROPOSER = PrivateKey.from_seed(b"p" * 32)
HPC = 10**8


class Net(ChainNet):
    gas_limit = 20_000_000


def _net(chainkit: ChainKit, *, indexed: bool = True) -> tuple[Net, Index | None]:
    genesis = chainkit.genesis({ALICE: 1_000 * HPC, BOB: 1_000 * HPC}, validator=PROPOSER)
    chain = chainkit.open(genesis)
    index = None
    if indexed:
        index = Index(chain)
        index.attach()
    return Net(chainkit, chain, PROPOSER), index


def _all_txs(index: Index, address: bytes, limit: int) -> list[TxPos]:
    """Every page of an account's transactions, following the cursors."""
    out: list[TxPos] = []
    cursor = None
    while True:
        rows, cursor = index.account_txs(address, limit, cursor)
        out += rows
        if cursor is None:
            return out


def _transfers(net: Net, blocks: int) -> None:
    """``blocks`` blocks, each: ALICE pays CAROL, BOB pays ALICE."""
    for _ in range(blocks):
        net.block(net.sign(ALICE, Transfer(CAROL.address, 1)),
                  net.sign(BOB, Transfer(ALICE.address, 2)))


def test_an_account_s_transactions_come_newest_first_page_by_page(chainkit: ChainKit) -> None:
    net, index = _net(chainkit)
    assert index is not None
    _transfers(net, 5)
    every = _all_txs(index, ALICE.address, 3)
    # ALICE sent index 0 and received index 1 of each block, newest block first
    assert [(p.height, p.index) for p in every] == [(h, i) for h in range(5, 0, -1)
                                                    for i in (1, 0)]
    assert {(p.index, p.role) for p in every} == {(0, SENDER), (1, PARTY)}
    carol = _all_txs(index, CAROL.address, 100)
    assert [(p.height, p.index, p.role) for p in carol] == [(h, 0, PARTY)
                                                            for h in range(5, 0, -1)]
    assert index.account_txs(PrivateKey.from_seed(b"z" * 32).address, 10) == ([], None)


def test_events_are_found_by_kind_and_by_an_attribute_given_as_an_address(
        chainkit: ChainKit) -> None:
    net, index = _net(chainkit)
    assert index is not None
    net.ok(ALICE, Issue("GOLD", "Gold", 2, 1_000, False, 1_000))
    net.ok(ALICE, TokenTransfer("GOLD", BOB.address, 10))
    net.ok(ALICE, TokenTransfer("GOLD", CAROL.address, 20))
    transfers, _ = index.events(kind_topic("token_transfer"), 10)
    assert [(e.height, e.index) for e in transfers] == [(3, 0), (2, 0)]
    to_bob, more = index.events(attr_topic("token_transfer", "to", to_bech32(BOB.address)), 10)
    assert [e.height for e in to_bob] == [2] and more is None
    first, cursor = index.events(kind_topic("token_transfer"), 1)
    rest, end = index.events(kind_topic("token_transfer"), 1, cursor)
    assert [e.height for e in first + rest] == [3, 2] and end is None


def test_a_block_that_is_not_committed_leaves_nothing_in_the_index(chainkit: ChainKit) -> None:
    """The index is written in the block's own transaction: a batch that fails (a crash
    before its commit looks the same) leaves neither the block nor its entries."""
    net, index = _net(chainkit)
    assert index is not None
    _transfers(net, 1)
    with pytest.raises(RuntimeError), net.chain.batch():
        _transfers(net, 1)
        raise RuntimeError("killed before the batch committed")
    assert net.chain.height == 1
    assert [p.height for p in _all_txs(index, CAROL.address, 10)] == [1]
    assert index.indexed_height() == 1


def test_an_index_switched_on_later_catches_up_to_what_it_would_hold(
        chainkit: ChainKit) -> None:
    always, index = _net(chainkit)
    assert index is not None
    late, _ = _net(chainkit, indexed=False)
    _transfers(always, 3)
    for block in always.blocks:  # the same blocks, on a chain that keeps no index
        late.chain.apply_block(block, chainkit.checked_of_block(late.chain, block.txs))
    path = late.chain.store.env.path()
    chainkit.close(late.chain)
    reopened: Chain = chainkit.open(always.chain.genesis, path=Path(path))
    caught = Index(reopened)
    assert caught.attach() == 3
    assert caught.attach() == 0  # idempotent: nothing left to catch up
    for who in (ALICE, BOB, CAROL):
        assert _all_txs(caught, who.address, 2) == _all_txs(index, who.address, 2)
    assert caught.indexed_height() == 3
