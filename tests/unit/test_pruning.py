"""Pruning (``[node] pruning = "recent"``): the oldest blocks go, with their commits, hashes
and transaction index entries; the state, which the store holds at its latest version
only, is untouched; the chain goes on and reopens with its new base."""

from __future__ import annotations

from pathlib import Path

import pytest
from framework.chain import ChainKit, ChainNet

from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.node.config import ConfigError, NodeConfig

ALICE, BOB = PrivateKey.from_seed(b"\x01" * 32), PrivateKey.from_seed(b"\x02" * 32)
PROPOSER = PrivateKey.from_seed(b"\x03" * 32)


def chain_of(kit: ChainKit, n: int) -> tuple[ChainNet, list[bytes]]:
    """``n`` blocks, each with one transfer; returns the transfers' hashes by height."""
    net = ChainNet(kit, kit.open(kit.genesis({ALICE: 10**12}, validator=PROPOSER)), PROPOSER)
    hashes = []
    for _ in range(n):
        raw = net.sign(ALICE, Transfer(BOB.address, 1))
        net.block(raw)
        hashes.append(h256(raw))
    return net, hashes


def test_pruning_keeps_the_last_blocks_and_forgets_older_blocks_and_their_txs(
        chainkit: ChainKit) -> None:
    net, txs = chain_of(chainkit, 12)
    chain = net.chain
    root, latest = chain.state_root, chain.latest_hash
    assert chain.prune(keep=5) == 7
    assert chain.base == 8
    assert [h for h in range(1, 13) if chain.get_block(h) is not None] == list(range(8, 13))
    assert chain.get_tx(txs[6]) is None and chain.get_tx(txs[7]) is not None
    assert chain.height_of(net.blocks[0].hash()) is None
    assert (chain.state_root, chain.latest_hash) == (root, latest)  # the state is untouched
    assert chain.prune(keep=5) == 0  # nothing more until new blocks come


def test_a_pruned_chain_goes_on_and_reopens_with_its_base(chainkit: ChainKit) -> None:
    net, _ = chain_of(chainkit, 8)
    assert net.chain.prune(keep=3) == 5
    net.block(net.sign(ALICE, Transfer(BOB.address, 1)))  # executes over the latest state
    path, genesis = net.chain.store.env.path(), net.chain.genesis
    root = net.chain.state_root
    chainkit.close(net.chain)
    again = chainkit.open(genesis, path=Path(path))
    assert (again.base, again.height, again.state_root) == (6, 9, root)


def test_one_prune_call_deletes_a_bounded_number_of_blocks(chainkit: ChainKit) -> None:
    net, _ = chain_of(chainkit, 10)
    assert net.chain.prune(keep=1, most=4) == 4 and net.chain.base == 5
    assert net.chain.prune(keep=1, most=4) == 4 and net.chain.base == 9
    assert net.chain.prune(keep=1, most=4) == 1 and net.chain.base == 10


@pytest.mark.parametrize("section, why", [
    ({"pruning": "some"}, "pruning must be one of archive, recent"),
    ({"keep_blocks": 5}, "keep_blocks must be >= 100"),
])
def test_bad_pruning_settings_are_refused_by_name(section: dict[str, object], why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        NodeConfig.parse({"node": section})
