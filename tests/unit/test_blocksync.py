"""Block sync's ranges (smartchain/node/blocksync.py) and the store transaction a range is
committed in (Chain.batch): no node, no socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from smartchain.app import open_chain
from smartchain.crypto.keys import PrivateKey
from smartchain.node.blocksync import (
    RANGE_BLOCKS,
    BlockRange,
    RangeRequest,
    serve_range,
)
from smartchain.node.home import make_genesis
from smartchain.p2p import BadRequest
from smartchain.state.chain import Chain
from smartchain.state.genesis import Genesis
from smartchain.types.block import Block
from smartchain.types.consensus import EMPTY_COMMIT, Commit, CommitSig, Step, Vote

CHAIN = "smart-sync-1"
FRAME = 4 * 1024 * 1024
KEY = PrivateKey.from_seed(b"\x07" * 32)


def certify(height: int, block_hash: bytes) -> Commit:
    vote = Vote(CHAIN, height, 0, int(Step.PRECOMMIT), block_hash, KEY.public_key,
                bytes(64)).signed_by(KEY)
    return Commit(height, 0, block_hash, (CommitSig(0, vote.signature),))


def grow(chain: Chain, n: int) -> None:
    last = chain.get_commit(chain.height) if chain.height else EMPTY_COMMIT
    for _ in range(n):
        h = chain.height + 1
        staged = chain.stage_proposal([], 1_000 + h, KEY, last_commit=last)
        last = certify(h, staged.block.hash())
        chain.commit(staged, last)


@pytest.fixture
def genesis() -> Genesis:
    return make_genesis(CHAIN, [(KEY.public_key, 1, "v0")], genesis_time_ms=1_000)


@pytest.fixture
def chain(tmp_path: Path, genesis: Genesis) -> Iterator[Chain]:
    c = open_chain(tmp_path / "src", genesis)
    grow(c, 20)
    yield c
    c.close()


def ask(chain: Chain, start: int, count: int, max_bytes: int = FRAME) -> BlockRange:
    return BlockRange.decode(serve_range(chain, RangeRequest(start, count, max_bytes).encode(),
                                         FRAME))


def test_a_range_holds_the_blocks_asked_with_their_commits_in_height_order(chain: Chain
                                                                            ) -> None:
    got = ask(chain, 5, 10)
    heights = [Block.decode(b).header.height for b in got.blocks]
    assert heights == list(range(5, 15))
    for raw, raw_commit in zip(got.blocks, got.commits, strict=True):
        block, commit = Block.decode(raw), Commit.decode(raw_commit)
        assert commit.block_hash == block.hash() and commit.height == block.header.height


def test_a_range_stops_at_the_last_committed_block(chain: Chain) -> None:
    assert len(ask(chain, 15, 100).blocks) == 6  # 15..20


def test_a_range_stays_within_the_bytes_asked_but_always_carries_one_block(chain: Chain
                                                                            ) -> None:
    one = len(ask(chain, 1, 1).blocks[0]) + len(ask(chain, 1, 1).commits[0])
    assert len(ask(chain, 1, 20, max_bytes=1).blocks) == 1
    three = ask(chain, 1, 20, max_bytes=3 * one + one // 2)
    assert len(three.blocks) == 3


@pytest.mark.parametrize("count", [0, RANGE_BLOCKS + 1])
def test_a_range_of_no_blocks_or_more_than_the_bound_is_a_bad_request(chain: Chain,
                                                                      count: int) -> None:
    with pytest.raises(BadRequest, match="a range is"):
        ask(chain, 1, count)


def test_a_malformed_range_request_is_a_bad_request(chain: Chain) -> None:
    with pytest.raises(BadRequest, match="malformed"):
        serve_range(chain, b"\x01\x02", FRAME)


def test_a_range_past_the_chain_is_not_found(chain: Chain) -> None:
    with pytest.raises(LookupError, match="no committed block at height 21"):
        ask(chain, 21, 5)


def test_blocks_committed_in_one_batch_are_all_there_after_a_reopen(tmp_path: Path,
                                                                    genesis: Genesis) -> None:
    chain = open_chain(tmp_path / "c", genesis)
    with chain.batch():
        grow(chain, 5)  # each block of the batch executes over the ones before it
    root, latest = chain.state_root, chain.latest_hash
    chain.close()
    again = open_chain(tmp_path / "c", genesis)
    try:
        assert again.height == 5 and again.state_root == root
        assert again.latest_hash == latest
    finally:
        again.close()


def test_a_batch_that_fails_leaves_the_chain_as_before_on_disk_and_in_memory(
        tmp_path: Path, genesis: Genesis) -> None:
    chain = open_chain(tmp_path / "c", genesis)
    grow(chain, 2)
    root, latest = chain.state_root, chain.latest_hash
    with pytest.raises(RuntimeError, match="power cut"), chain.batch():
        grow(chain, 3)
        raise RuntimeError("power cut")
    assert (chain.height, chain.state_root, chain.latest_hash) == (2, root, latest)
    grow(chain, 1)  # and it goes on from there
    assert chain.height == 3
    chain.close()
    again = open_chain(tmp_path / "c", genesis)
    try:
        assert again.height == 3 and again.state_root == chain.state_root
    finally:
        again.close()
