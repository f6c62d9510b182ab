"""Block sync's apply path (node/bft.py): a range's signatures checked in one batch, then
its blocks executed and committed in one store transaction. In process: a node and its
consensus service, no socket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from smartchain.app import open_chain
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.poca.sets import validator_set_at
from smartchain.node.bft import ConsensusService
from smartchain.node.blocksync import BlockRange
from smartchain.node.home import init_home, make_genesis
from smartchain.node.node import Node
from smartchain.p2p import P2P
from smartchain.state.chain import Chain
from smartchain.state.genesis import Genesis
from smartchain.state.params import Params
from smartchain.types.block import Block
from smartchain.types.consensus import EMPTY_COMMIT, Commit, CommitSig, Step, Vote

CHAIN = "smart-sync-apply-1"
KEYS = [PrivateKey.from_seed(bytes([i + 1]) * 32) for i in range(4)]
BLOCKS = 100  # 400 signatures: over the verifier's threshold for worker processes


BY_PUBKEY = {k.public_key: k for k in KEYS}


def certify(chain: Chain, height: int, block_hash: bytes, signers: int) -> Commit:
    """Precommits of the first ``signers`` members of the set of ``height``, as the
    chain's state schedules it."""
    with chain.reader() as view:
        members = validator_set_at(view, height).validators
    sigs = [CommitSig(i, Vote(CHAIN, height, 0, int(Step.PRECOMMIT), block_hash,
                              v.public_key, bytes(64)).signed_by(
                                  BY_PUBKEY[v.public_key]).signature)
            for i, v in enumerate(members[:signers])]
    return Commit(height, 0, block_hash, tuple(sigs))


def build(chain: Chain, signers: int) -> Chain:
    """``BLOCKS`` empty blocks, each certified by the first ``signers`` of its set."""
    last = EMPTY_COMMIT
    for h in range(1, BLOCKS + 1):
        staged = chain.stage_proposal([], 1_000 + h, KEYS[h % 4], last_commit=last)
        last = certify(chain, h, staged.block.hash(), signers)
        chain.commit(staged, last)
    return chain


def make(downtime_window: int = 100) -> Genesis:
    return make_genesis(CHAIN, [(k.public_key, 1, f"v{i}") for i, k in enumerate(KEYS)],
                        genesis_time_ms=1_000,
                        params=Params(poca_downtime_window=downtime_window,
                                      poca_downtime_missed=downtime_window // 2))


@pytest.fixture(scope="module")
def genesis() -> Genesis:
    return make()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory, genesis: Genesis) -> Iterator[Chain]:
    """Every signer signs every block: the set never changes."""
    chain = build(open_chain(tmp_path_factory.mktemp("src"), genesis), signers=4)
    yield chain
    chain.close()


@contextmanager
def make_service(tmp_path: Path, genesis: Genesis) -> Iterator[ConsensusService]:
    key = PrivateKey.generate()
    init_home(tmp_path, chain_id=CHAIN, key=key, passphrase=None, insecure=True,
              genesis=genesis)
    node = Node(tmp_path, key)
    svc = ConsensusService(node, P2P(key, genesis.hash().hex()), None)
    try:
        yield svc
    finally:
        svc._checker.shutdown()
        node.close()


@pytest.fixture
def service(tmp_path: Path, genesis: Genesis) -> Iterator[ConsensusService]:
    with make_service(tmp_path, genesis) as svc:
        yield svc


def the_range(source: Chain, start: int = 1) -> BlockRange:
    pairs = source.raw_range(start, BLOCKS - start + 1, 1 << 30)
    return BlockRange(tuple(b for b, _ in pairs), tuple(c for _, c in pairs))


def sync(svc: ConsensusService, blocks: BlockRange, start: int = 1) -> str | None:
    staged, why = svc._commit_range(svc._verify_range(blocks, start))
    for one in staged:
        svc._after_commit(one, 0.0)
    return why


def sync_until_refused(svc: ConsensusService, blocks: BlockRange) -> str | None:
    """As the fetcher does: a range that stops short without blame (a commit checked
    against a guessed set) is asked again from the next height; why one was refused."""
    chain = svc.node.chain
    while chain.height < len(blocks.blocks):
        start = chain.height + 1
        why = sync(svc, BlockRange(blocks.blocks[start - 1:], blocks.commits[start - 1:]),
                   start)
        if why is not None:
            return why
    return None


def with_block(blocks: BlockRange, height: int, raw: bytes | None = None,
               commit: Commit | None = None) -> BlockRange:
    i = height - 1
    raw_commit = commit.encode() if commit else blocks.commits[i]
    return BlockRange((*blocks.blocks[:i], raw or blocks.blocks[i], *blocks.blocks[i + 1:]),
                      (*blocks.commits[:i], raw_commit, *blocks.commits[i + 1:]))


def test_a_synced_range_reaches_the_source_chain_with_its_state_root(
        service: ConsensusService, source: Chain) -> None:
    assert sync(service, the_range(source)) is None
    chain = service.node.chain
    assert chain.height == BLOCKS
    assert chain.latest_hash == source.latest_hash
    assert chain.state_root == source.state_root


def test_a_synced_range_has_its_signatures_checked_in_one_batch(
        service: ConsensusService, source: Chain) -> None:
    batches: list[int] = []
    verify = service.node.verifier.verify

    def counting(items: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
        if items:  # (an empty block's transactions: none to check)
            batches.append(len(items))
        return verify(items)

    service.node.verifier.verify = counting  # type: ignore[method-assign]
    assert sync(service, the_range(source)) is None
    assert batches == [BLOCKS * 5]  # four precommits and the proposer's, per block


def test_a_forged_commit_signature_commits_only_the_blocks_before_it(
        service: ConsensusService, source: Chain) -> None:
    commit = Commit.decode(the_range(source).commits[60 - 1])
    forged = replace(commit, signatures=(*commit.signatures[:2],
                                         CommitSig(2, bytes(64))))
    why = sync_until_refused(service, with_block(the_range(source), 60, commit=forged))
    assert why == "bad block 60: invalid commit signature"
    assert service.node.chain.height == 59
    assert service.node.chain.latest_hash == source.get_block(59).hash()  # type: ignore[union-attr]


def test_a_forged_proposer_signature_commits_only_the_blocks_before_it(
        service: ConsensusService, source: Chain) -> None:
    block = Block.decode(the_range(source).blocks[30 - 1])
    forged = replace(block, signature=KEYS[0].sign(b"another header")).encode()
    why = sync(service, with_block(the_range(source), 30, raw=forged))
    assert why == "bad block 30: invalid proposer signature"
    assert service.node.chain.height == 29


def test_a_block_of_another_height_in_a_range_stops_it_there(
        service: ConsensusService, source: Chain) -> None:
    why = sync(service, with_block(the_range(source), 10, raw=the_range(source).blocks[10]))
    assert why == "bad block 10: asked for block 10, got 11"
    assert service.node.chain.height == 9


@pytest.fixture(scope="module")
def changing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Genesis, Chain]]:
    """One signer of four never signs: the staking module jails it for downtime and the
    chain goes on with a set of three, scheduled two heights later."""
    genesis = make(downtime_window=20)
    chain = build(open_chain(tmp_path_factory.mktemp("changing"), genesis), signers=3)
    with chain.reader() as view:
        assert len(validator_set_at(view, 1)) == 4 and len(validator_set_at(view, BLOCKS)) == 3
    yield genesis, chain
    chain.close()


def test_a_range_across_a_signer_set_change_syncs_each_commit_against_its_own_set(
        tmp_path: Path, changing: tuple[Genesis, Chain]) -> None:
    """The range is checked before the blocks below it run, so the heights after the
    change are first checked against the old set: that is no fault of the peer's, the
    rest is asked again and checked against the set state then schedules."""
    genesis, source = changing
    with make_service(tmp_path, genesis) as svc:
        assert sync_until_refused(svc, the_range(source)) is None
        assert svc.node.chain.state_root == source.state_root


def test_a_commit_forged_after_a_signer_set_change_is_refused(
        tmp_path: Path, changing: tuple[Genesis, Chain]) -> None:
    genesis, source = changing
    height = BLOCKS - 5
    commit = Commit.decode(source.get_commit(height).encode())  # type: ignore[union-attr]
    forged = replace(commit, signatures=(*commit.signatures[:2], CommitSig(2, bytes(64))))
    blocks = with_block(the_range(source), height, commit=forged)
    with make_service(tmp_path, genesis) as svc:
        assert sync_until_refused(svc, blocks) == f"bad block {height}: invalid commit signature"
        assert svc.node.chain.height == height - 1
