"""Receipt signatures are checked before the mempool: a node verifies both agents'
signatures (against the keys the receipt names) with the transaction's own, in its
parallel verifier, on admission and for every block it receives. A forged one is refused
with a clear error and never reaches a block; the handler only compares the keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from smartchain.app import open_chain
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.market.types import SubmitReceipts, UsageReceipt, receipt
from smartchain.node.config import NodeConfig
from smartchain.node.home import make_genesis
from smartchain.node.node import Node
from smartchain.types.amount import UNITS_PER_HPC
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Transaction

CHAIN_ID = "smart-test-1"
POSTER, PROVIDER, CONSUMER, VALIDATOR = (PrivateKey.from_seed(bytes([i]) * 32)
                                         for i in (41, 42, 43, 44))
GENESIS = make_genesis(CHAIN_ID, [(VALIDATOR.public_key, 1, "v0")],
                       accounts=[(POSTER.address, 1_000 * UNITS_PER_HPC)])


def post(receipts: tuple[UsageReceipt, ...], nonce: int = 0) -> bytes:
    return Transaction.create(POSTER, chain_id=CHAIN_ID, nonce=nonce, kind="market/receipts",
                              payload=SubmitReceipts(receipts).encode(), gas_limit=1_000_000,
                              gas_price=1).encode()


def good(counter: int = 3) -> UsageReceipt:
    return receipt(PROVIDER, CONSUMER, CHAIN_ID, 1, counter)


def forged() -> UsageReceipt:
    """The consumer's half signed by the provider: the consumer never countersigned."""
    r = good()
    return replace(r, consumer_sig=PROVIDER.sign(b"anything"))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path / "node", PrivateKey.generate(), NodeConfig(), GENESIS)
    try:
        yield node
    finally:
        node.close()


def test_a_receipt_with_a_forged_signature_is_refused_before_the_mempool(node: Node) -> None:
    for submit in (node.submit, lambda raw: node.submit_many([raw])[0]):
        outcome: bytes | TxError
        try:
            outcome = submit(post((good(), forged())))
        except TxError as exc:
            outcome = exc
        assert isinstance(outcome, TxError) and outcome.code == Code.BAD_SIGNATURE
        assert "receipt 1: the consumer's signature does not verify" in outcome.message
    assert len(node.mempool) == 0
    assert node.submit(post((good(),))) in node.mempool  # both halves good: admitted


def test_a_block_carrying_a_forged_receipt_signature_is_refused(node: Node,
                                                              tmp_path: Path) -> None:
    """A proposer that skips the checks cannot get a forged receipt executed elsewhere."""
    byzantine = open_chain(tmp_path / "byzantine", GENESIS)
    try:
        raw = post((forged(),))
        checked = byzantine.executor.check_stateless(raw, Transaction.decode(raw), h256(raw),
                                                     CHAIN_ID, byzantine.params)
        staged = byzantine.stage_proposal([checked], GENESIS.time_ms + 1_000, VALIDATOR)
        assert staged.block.txs == (raw,)
    finally:
        byzantine.close()
    with pytest.raises(TxError) as err:
        node.check_block_txs(staged.block)
    assert err.value.code == Code.BAD_SIGNATURE and "consumer's signature" in err.value.message


def test_receipt_signatures_count_in_the_check_budget_of_unproven_peers(node: Node) -> None:
    msg = node.chain.executor.msgs["market/receipts"]
    assert msg.signed_check_cost(SubmitReceipts((good(3), good(4), good(5)))) == 6
