"""Deploy admission: the contract source check (a rewrite and a Lua compile, tens of
milliseconds for a large source) runs only once the signature is good, so unsigned junk
costs a node no more than a signature check; a bad source is refused as before."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from smartchain.app import open_chain
from smartchain.contracts import vm as vm_module
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.contracts.types import CODE_PREFIX, Deploy, contract_address
from smartchain.node.bft import ChainApplication
from smartchain.node.config import NodeConfig
from smartchain.node.home import make_genesis
from smartchain.node.node import Node
from smartchain.state.chain import Chain
from smartchain.types.amount import UNITS_PER_HPC
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Transaction, sign_bytes_of

CHAIN_ID = "smart-test-1"
ALICE, MALLORY, VALIDATOR = (PrivateKey.from_seed(bytes([i]) * 32) for i in (61, 62, 63))
BAD_SOURCE = b"function f() return 1.5 end"  # compiles; the bytecode check refuses it
GENESIS = make_genesis(CHAIN_ID, [(VALIDATOR.public_key, 1, "v0")],
                       accounts=[(ALICE.address, 1_000 * UNITS_PER_HPC)])


def large_source() -> bytes:
    """A valid ~60 KB contract, new each time (so no remembered verdict answers for it)."""
    tag = os.urandom(8).hex()
    body = b"".join(b"function f%d() return %d end\n" % (i, i) for i in range(1_900))
    return b"-- " + tag.encode() + b"\n" + body


def deploy(key: PrivateKey, source: bytes) -> bytes:
    """A deploy from ``key``, signed by it."""
    return Transaction.create(key, chain_id=CHAIN_ID, nonce=0, kind="contracts/deploy",
                              payload=Deploy(source, ()).encode(), gas_limit=20_000_000,
                              gas_price=1).encode()


def unsigned(raw: bytes) -> bytes:
    return raw[:-64] + bytes(64)


def forged(raw: bytes, by: PrivateKey) -> bytes:
    """The same transaction signed by someone else than its sender."""
    return raw[:-64] + by.sign(sign_bytes_of(raw))


@pytest.fixture
def source_checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The sources the contract check rewrites (a counting wrapper around the rewrite)."""
    seen: list[bytes] = []
    rewrite = vm_module.rewrite

    def counting(source: bytes) -> bytes:
        seen.append(source)
        return rewrite(source)

    monkeypatch.setattr(vm_module, "rewrite", counting)
    return seen


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(tmp_path / "node", PrivateKey.generate(), NodeConfig(), GENESIS)
    try:
        yield node
    finally:
        node.close()


@pytest.fixture
def maker(tmp_path: Path) -> Iterator[Chain]:
    """A proposer that puts whatever it is given in its blocks."""
    chain = open_chain(tmp_path / "maker", GENESIS)
    try:
        yield chain
    finally:
        chain.close()


def refusal(result: bytes | TxError | None) -> Code:
    assert isinstance(result, TxError), result
    return result.code


def test_an_unsigned_or_forged_large_deploy_is_refused_without_checking_its_source(
        node: Node, maker: Chain, source_checks: list[bytes]) -> None:
    bad = [unsigned(deploy(ALICE, large_source())),
           forged(deploy(ALICE, large_source()), MALLORY),
           unsigned(deploy(ALICE, BAD_SOURCE))]  # the bad signature is what is reported
    assert all(len(raw) > 60_000 for raw in bad[:2])
    for raw in bad:
        with pytest.raises(TxError) as refused:
            node.submit(raw)
        assert refused.value.code == Code.BAD_SIGNATURE
    assert [refusal(r) for r in node.submit_many(bad)] == [Code.BAD_SIGNATURE] * 3
    # A block carrying them (its header is not looked at before its transactions are).
    empty = maker.stage_proposal([], GENESIS.time_ms + 1, VALIDATOR).block
    with pytest.raises(TxError) as refused:
        node.check_block_txs(replace(empty, txs=tuple(bad)))
    assert refused.value.code == Code.BAD_SIGNATURE
    assert len(node.mempool) == 0
    assert source_checks == []  # not one rewrite (so no compile) of a forged deploy's source

    honest = large_source()
    node.submit(deploy(ALICE, honest))  # the check itself is still there, once signed
    assert source_checks == [honest]


def test_a_signed_large_deploy_the_sender_cannot_pay_for_is_refused_without_checking_its_source(
        node: Node, source_checks: list[bytes]) -> None:
    """Keys are free: a validly signed deploy from an empty account, or at a nonce already
    used, is refused on its nonce or funds before the source is compiled."""
    broke = PrivateKey.generate()
    for raw, code in [(deploy(broke, large_source()), Code.INSUFFICIENT_FUNDS),
                      (deploy(broke, BAD_SOURCE), Code.INSUFFICIENT_FUNDS)]:
        with pytest.raises(TxError) as refused:
            node.submit(raw)
        assert refused.value.code == code
        assert [refusal(r) for r in node.submit_many([raw])] == [code]
    node.submit(deploy(ALICE, large_source()))
    replayed_nonce = deploy(ALICE, large_source())  # nonce 0 again
    with pytest.raises(TxError) as refused:
        node.submit(replayed_nonce)
    assert refused.value.code == Code.NONCE_REUSED
    assert len(source_checks) == 1  # only the deploy ALICE can pay for was compiled


def test_a_signed_deploy_with_a_bad_source_is_still_refused_before_the_mempool(
        node: Node) -> None:
    for source, reason in [(BAD_SOURCE, "contract rejected: "),
                           (b"function f( end", "contract rejected: syntax error")]:
        raw = deploy(ALICE, source)
        with pytest.raises(TxError) as refused:
            node.submit(raw)
        assert refused.value.code == Code.INVALID_PAYLOAD
        assert refused.value.message.startswith(reason)
        (batched,) = node.submit_many([raw])
        assert isinstance(batched, TxError) and batched.code == Code.INVALID_PAYLOAD
        assert batched.message == refused.value.message
    assert len(node.mempool) == 0


def test_a_bad_source_in_a_block_is_a_failed_deploy_that_pays_for_its_check(
        node: Node, maker: Chain) -> None:
    """Only a faulty proposer puts a deploy with a bad source in a block. Validators do
    not compile block transactions before executing them (a Byzantine proposer could make
    them compile hundreds of deploys from empty accounts for nothing); executing the deploy
    charges its gas per byte first, then refuses the source: a failed transaction with its
    fee paid, no contract, and the same state root on every node."""
    raw = deploy(ALICE, BAD_SOURCE)
    staged = maker.stage_proposal([maker.executor.check_stateless(
        raw, Transaction.decode(raw), h256(raw), CHAIN_ID, maker.params)],
        GENESIS.time_ms + 1, VALIDATOR)
    (receipt,) = staged.receipts
    assert receipt.code == Code.INVALID_PAYLOAD and "floating-point" in receipt.log
    assert receipt.gas_used >= GENESIS.params.contract_code_byte_gas * len(BAD_SOURCE)
    assert CODE_PREFIX + contract_address(ALICE.address, 1) not in staged.writes

    assert ChainApplication(node).validate(1, staged.block.encode())
    replayed = node.chain.stage_block(staged.block, node.check_block_txs(staged.block))
    assert replayed.tree.root == staged.tree.root


def test_a_large_deploy_counts_as_hundreds_of_signature_checks_against_the_gossip_budget(
        node: Node) -> None:
    """Its source check takes ~36 ms, an Ed25519 check ~60 us: with the default budget one
    such deploy takes an unproven peer's whole share for a second."""
    checked = node.decode_checked(deploy(ALICE, large_source()))
    assert checked.msg.signed_check_cost(checked.payload) >= 500
    assert node.decode_checked(deploy(ALICE, b"function f() end")).msg.signed_check_cost(
        Deploy(b"function f() end", ())) == 0
