"""Typed documents (``smartchain.typed``): the node's JSON, as docs/api.md writes it (64-bit
numbers as strings), parsed into dataclasses with ints. The documents here are what a node
answered (trimmed); the functional test reads the same ones from a live node."""

from __future__ import annotations

import dataclasses

import pytest

from smartchain.typed import Account, Block, Event, EventPage, Status, Tx, TxPage, Validator

U64_MAX = 2**64 - 1
ALICE = "smart1qtmg9nfsrc9neqn89xc92xyjx2hsjgtr2x3cm3"
BOB = "smart1tke729m29x52sfy9xqzhlt5rcd8avz2gsdpr29"
HASH = "35fe019206230466a3f086c58fb98288ae68133f23cb0768d6ab84514bc02cc0"
PAYLOAD = {"to": BOB, "amount": "12345", "amount_hpc": "0.00012345"}
EVENT = {"kind": "token_transfer", "attributes": {"symbol": "IOT", "to": BOB, "amount": "5"}}
SUMMARY = {"hash": HASH, "height": "2", "index": 0, "sender": ALICE, "kind": "bank/transfer",
           "nonce": "0", "payload": PAYLOAD, "ok": True, "code_name": "ok", "log": "",
           "gas_used": "13930", "fee": "13930", "fee_hpc": "0.0001393", "events": [EVENT]}
TX = {"hash": HASH, "chain_id": "smart-test-1", "sender": ALICE, "public_key": "36" * 32,
      "nonce": "0", "gas_limit": "21716", "gas_price": "1", "kind": "bank/transfer",
      "payload": PAYLOAD, "signature": "c2" * 64, "status": "committed", "height": "2",
      "index": 0, "receipt": {"ok": True, "code": 0, "code_name": "ok", "gas_used": "13930",
                              "fee": "13930", "log": "", "events": [EVENT]}}


def test_status_numbers_are_ints() -> None:
    st = Status.from_json({
        "version": "0.1.0", "chain_id": "smart-test-1", "height": "1180",
        "latest_hash": "a8" * 32, "latest_time_ms": "1796199613040", "min_gas_price": "1",
        "max_tx_gas": "50000000", "block_time_ms": "200", "mempool_size": 3, "synced": True,
        "storage_epoch": "0"})
    assert (st.height, st.latest_time_ms, st.min_gas_price, st.max_tx_gas) == \
        (1180, 1796199613040, 1, 50_000_000)
    assert (st.chain_id, st.version, st.synced, st.mempool_size) == \
        ("smart-test-1", "0.1.0", True, 3)
    assert st.raw["storage_epoch"] == "0"  # what is not modelled stays reachable


def test_a_committed_transaction_has_its_receipt_and_events() -> None:
    tx = Tx.from_json(TX)
    assert (tx.height, tx.index, tx.nonce, tx.gas_limit, tx.gas_price) == (2, 0, 0, 21716, 1)
    assert tx.ok and tx.receipt is not None
    assert (tx.receipt.gas_used, tx.receipt.fee) == (13930, 13930)
    assert tx.receipt.events == (Event("token_transfer", EVENT["attributes"]),)
    assert tx.payload["amount"] == "12345"  # a payload is the kind's own JSON


def test_a_node_before_its_first_block_has_no_latest_block() -> None:
    st = Status.from_json({"chain_id": "c", "height": "0", "latest_hash": None,
                           "latest_time_ms": None, "min_gas_price": "1", "max_tx_gas": "9",
                           "block_time_ms": "200"})
    assert (st.height, st.latest_hash, st.latest_time_ms) == (0, None, None)


def test_a_pending_transaction_has_no_height_nor_receipt() -> None:
    doc = {k: v for k, v in TX.items() if k not in ("height", "index", "receipt")}
    tx = Tx.from_json({**doc, "status": "pending"})
    assert (tx.status, tx.height, tx.index, tx.receipt, tx.ok) == \
        ("pending", None, None, None, False)


def test_a_failed_transaction_is_not_ok() -> None:
    receipt = {**TX["receipt"], "ok": False, "code_name": "insufficient_funds",
               "log": "balance too low", "events": []}
    tx = Tx.from_json({**TX, "receipt": receipt})
    assert not tx.ok and tx.receipt is not None
    assert (tx.receipt.code_name, tx.receipt.log) == ("insufficient_funds", "balance too low")


def test_a_block_carries_its_transactions_summaries() -> None:
    block = Block.from_json({
        "height": "2", "hash": "a8" * 32, "tx_count": 1, "transactions": [SUMMARY],
        "header": {"chain_id": "smart-test-1", "height": "2", "time_ms": "1796199613040",
                   "state_root": "cc" * 32, "proposer_address": ALICE}})
    assert (block.height, block.time_ms, block.tx_count) == (2, 1796199613040, 1)
    (summary,) = block.transactions
    assert (summary.hash, summary.height, summary.fee, summary.ok) == (HASH, 2, 13930, True)
    assert summary.events[0].attributes["to"] == BOB


def test_amounts_up_to_the_64_bit_limit_stay_exact() -> None:
    account = Account.from_json({
        "address": ALICE, "balance": str(U64_MAX), "balance_hpc": "184467440737.09551615",
        "nonce": "4", "pending_nonce": "6",
        "tokens": [{"symbol": "IOT", "balance": str(U64_MAX - 1), "decimals": 2}]})
    assert account.balance == U64_MAX and account.tokens == {"IOT": U64_MAX - 1}
    assert (account.nonce, account.pending_nonce) == (4, 6)


def test_a_validator_reads_its_power_and_stake() -> None:
    v = Validator.from_json({
        "address": ALICE, "pubkey": "ae" * 32, "moniker": "node0", "tier": "director",
        "status": "active", "power": "1", "stake": "100000000", "delegated": "0",
        "competence": 0, "uptime": 0, "missed_blocks": 0, "jailed_until": "0"})
    assert (v.tier, v.status, v.power, v.stake, v.delegated, v.jailed_until) == \
        ("director", "active", 1, 100_000_000, 0, 0)


def test_pages_keep_their_cursor_and_events_their_position() -> None:
    page = EventPage.from_json({"kind": "token_transfer", "next_cursor": "2.0.0", "events": [
        {**EVENT, "height": "9", "tx_hash": HASH, "tx_index": 1, "event_index": 0}]})
    assert page.next_cursor == "2.0.0"
    assert page.events == (Event("token_transfer", EVENT["attributes"], 9, HASH, 1, 0),)
    txs = TxPage.from_json({"address": ALICE, "txs": [{**SUMMARY, "role": "sender"}]})
    assert txs.next_cursor is None and txs.txs[0].nonce == 0


def test_a_document_that_breaks_the_contract_is_refused() -> None:
    with pytest.raises(ValueError):
        Account.from_json({"address": ALICE, "balance": "12.5", "nonce": "0", "tokens": []})
    with pytest.raises(KeyError):
        Status.from_json({"chain_id": "x"})


def test_typed_documents_are_frozen() -> None:
    st = Status.from_json({"chain_id": "c", "height": "1", "latest_hash": "", "version": "",
                           "latest_time_ms": "0", "min_gas_price": "1", "max_tx_gas": "1",
                           "block_time_ms": "200"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.height = 2  # type: ignore[misc]
