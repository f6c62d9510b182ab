"""The documents the JSON routes answer and the explorer pages show: one function each, so
a page and its JSON twin never disagree.

Lists are newest first and paged by cursor: ``?limit`` (1..``MAX_LIMIT``, default
``DEFAULT_LIMIT``) and ``?cursor``, the ``next_cursor`` of the previous page (absent on the
last one). New fields follow the JSON contract: 64-bit numbers are strings.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Mapping
from typing import Any

from smartchain.api.render import block_json, payload_json, receipt_json
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.modules.bank.module import get_account
from smartchain.modules.contracts.module import contract_info
from smartchain.modules.devices.module import get_device
from smartchain.modules.query import QueryError, parse_address
from smartchain.modules.storage.module import deal_view
from smartchain.modules.tokens.module import holdings, token_info
from smartchain.modules.tokens.types import SYMBOL_RE
from smartchain.node.index import EventPos, Index, TxPos, attr_topic, event_value, kind_topic
from smartchain.node.node import Node
from smartchain.state.chain import TxRecord
from smartchain.types.amount import format_hpc, format_units
from smartchain.types.block import Block
from smartchain.types.tx import Receipt, Transaction

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
_CURSOR_TX = re.compile(r"([0-9]{1,20})-([0-9]{1,10})")
_CURSOR_EVENT = re.compile(r"([0-9]{1,20})-([0-9]{1,10})-([0-9]{1,5})")


# --- parameters ----------------------------------------------------------------------------


def parse_limit(query: Mapping[str, str]) -> int:
    text = query.get("limit", "")
    if text == "":
        return DEFAULT_LIMIT
    if len(text) > 3 or not text.isascii() or not text.isdigit() \
            or not 1 <= int(text) <= MAX_LIMIT:
        raise QueryError(400, "malformed", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(text)


def _bad_cursor() -> QueryError:
    return QueryError(400, "malformed", "cursor must be the next_cursor of a previous page")


def parse_height_cursor(query: Mapping[str, str]) -> int | None:
    text = query.get("cursor", "")
    if text == "":
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) >= 1 << 64:
        raise _bad_cursor()
    return int(text)


def parse_tx_cursor(query: Mapping[str, str]) -> TxPos | None:
    text = query.get("cursor", "")
    if text == "":
        return None
    m = _CURSOR_TX.fullmatch(text)
    if m is None or int(m[1]) >= 1 << 64 or int(m[2]) >= 1 << 32:
        raise _bad_cursor()
    return TxPos(int(m[1]), int(m[2]))


def parse_event_cursor(query: Mapping[str, str]) -> EventPos | None:
    text = query.get("cursor", "")
    if text == "":
        return None
    m = _CURSOR_EVENT.fullmatch(text)
    if m is None or int(m[1]) >= 1 << 64 or int(m[2]) >= 1 << 32 or int(m[3]) >= 1 << 16:
        raise _bad_cursor()
    return EventPos(int(m[1]), int(m[2]), int(m[3]))


def require_index(node: Node) -> Index:
    if node.index is None:
        raise QueryError(404, "index_disabled", "this node keeps no search index "
                         "([api] index = false in its config.toml)")
    return node.index


# --- transactions and blocks ---------------------------------------------------------------


def tx_summary(tx: Transaction, receipt: Receipt, height: int, index: int,
               tx_hash: bytes | None = None) -> dict[str, Any]:
    """A committed transaction in a list: who, what, whether it worked, what it emitted."""
    r = receipt_json(receipt)
    return {
        "hash": (tx_hash or tx.hash()).hex(), "height": str(height), "index": index,
        "sender": to_bech32(tx.sender_address), "kind": tx.kind, "nonce": str(tx.nonce),
        "payload": payload_json(tx.kind, tx.payload), "ok": r["ok"],
        "code_name": r["code_name"], "log": r["log"], "gas_used": str(r["gas_used"]),
        "fee": r["fee"], "fee_hpc": format_hpc(receipt.fee), "events": r["events"],
    }


def block_items(node: Node, block: Block) -> list[tuple[Transaction, Receipt, bytes]]:
    """A block's transactions with their receipts, read in one store transaction."""
    store = node.chain.store
    out = []
    with store.read() as txn:
        for raw in block.txs:
            tx_hash = h256(raw)
            rec = txn.get(tx_hash, db=store.dbs["txs"])
            if rec is not None:
                out.append((Transaction.decode(raw), TxRecord.decode(rec).receipt, tx_hash))
    return out


def block_doc(node: Node, height: int) -> dict[str, Any]:
    """A block with its transactions' summaries: reading a block is one call."""
    chain = node.chain
    block = chain.get_block(height)
    if block is None:
        pruned = ", earlier ones pruned" if 0 < height < chain.base else ""
        raise QueryError(404, "not_found", f"no block at height {height} (this node holds "
                         f"{chain.base}..{chain.height}{pruned})")
    out = block_json(block)
    out["transactions"] = [tx_summary(tx, receipt, height, i, tx_hash) for i, (tx, receipt,
                           tx_hash) in enumerate(block_items(node, block))]
    return out


def block_row(block: Block) -> dict[str, Any]:
    h = block.header
    return {"height": str(h.height), "hash": block.hash().hex(), "time_ms": str(h.time_ms),
            "tx_count": len(block.txs), "proposer_address": block_json(block)["header"][
                "proposer_address"]}


def blocks_page(node: Node, limit: int, cursor: int | None) -> dict[str, Any]:
    """Blocks newest first, below ``cursor`` (a height) when given."""
    chain = node.chain
    top = chain.height if cursor is None else min(chain.height, cursor - 1)
    rows: list[dict[str, Any]] = []
    height = top
    while height >= chain.base and height >= 1 and len(rows) < limit:
        block = chain.get_block(height)
        if block is None:
            break
        rows.append(block_row(block))
        height -= 1
    out: dict[str, Any] = {"blocks": rows}
    if rows and height >= max(1, chain.base):
        out["next_cursor"] = rows[-1]["height"]
    return out


def committed_summaries(node: Node, positions: list[TxPos]) -> list[dict[str, Any]]:
    """The transactions at these positions, each block decoded once."""
    blocks: dict[int, Block | None] = {}
    out = []
    store = node.chain.store
    with store.read() as txn:
        for pos in positions:
            if pos.height not in blocks:
                blocks[pos.height] = node.chain.get_block(pos.height)
            block = blocks[pos.height]
            if block is None or pos.index >= len(block.txs):
                continue
            raw = block.txs[pos.index]
            tx_hash = h256(raw)
            rec = txn.get(tx_hash, db=store.dbs["txs"])
            if rec is None:
                continue
            doc = tx_summary(Transaction.decode(raw), TxRecord.decode(rec).receipt, pos.height,
                             pos.index, tx_hash)
            if pos.role:
                doc["role"] = "sender" if pos.role & 1 else "party"
            out.append(doc)
    return out


def account_txs_page(node: Node, address: bytes, limit: int, cursor: TxPos | None
                     ) -> dict[str, Any]:
    rows, nxt = require_index(node).account_txs(address, limit, cursor)
    out: dict[str, Any] = {"address": to_bech32(address),
                           "txs": committed_summaries(node, rows)}
    if nxt is not None:
        out["next_cursor"] = nxt.cursor()
    return out


def events_page(node: Node, kind: str, where: tuple[str, str] | None, limit: int,
                cursor: EventPos | None) -> dict[str, Any]:
    """Events of ``kind`` (whose attribute ``where[0]`` is ``where[1]``), newest first."""
    index = require_index(node)
    topic = kind_topic(kind) if where is None else \
        attr_topic(kind, where[0], event_value(where[1]))
    rows, nxt = index.events(topic, limit, cursor)
    blocks: dict[int, list[tuple[Transaction, Receipt, bytes]]] = {}
    events = []
    for pos in rows:
        if pos.height not in blocks:
            block = node.chain.get_block(pos.height)
            blocks[pos.height] = block_items(node, block) if block is not None else []
        items = blocks[pos.height]
        if pos.index >= len(items) or pos.event >= len(items[pos.index][1].events):
            continue
        _, receipt, tx_hash = items[pos.index]
        doc = receipt.events[pos.event].to_json()
        doc.update(height=str(pos.height), tx_hash=tx_hash.hex(), tx_index=pos.index,
                   event_index=pos.event)
        events.append(doc)
    out: dict[str, Any] = {"kind": kind, "events": events}
    if where is not None:
        out["where"] = {where[0]: where[1]}
    if nxt is not None:
        out["next_cursor"] = nxt.cursor()
    return out


# --- accounts ------------------------------------------------------------------------------


def account_doc(node: Node, address: bytes) -> dict[str, Any]:
    with node.chain.reader() as reader:
        acct = get_account(reader, address)
        tokens = []
        for symbol, balance in holdings(reader, address):
            info = token_info(reader, symbol)
            decimals = info.decimals if info is not None else 0
            tokens.append({"symbol": symbol, "balance": str(balance), "decimals": decimals,
                           "amount": format_units(balance, decimals)})
    return {
        "address": to_bech32(address),
        "balance": str(acct.balance),
        "balance_hpc": format_hpc(acct.balance),
        "nonce": acct.nonce,
        "pending_nonce": node.pending_nonce(address),
        "tokens": tokens,
    }


# --- search --------------------------------------------------------------------------------


def search(node: Node, q: str) -> dict[str, Any]:
    """What ``q`` names: a height, a block or transaction hash, a storage file id, a device
    key, an address (an account or a contract) or a token symbol. 404 when nothing."""
    q = q.strip()
    chain = node.chain
    if q.isascii() and q.isdigit() and len(q) <= 20:
        height = int(q)
        if chain.get_block(height) is not None:
            return {"type": "block", "id": str(height)}
    elif len(q) == 64:
        try:
            raw = binascii.unhexlify(q.lower())
        except (binascii.Error, ValueError):
            raw = b""
        if raw:
            found = _search_hash(node, raw)
            if found is not None:
                return found
    elif q.lower().startswith("smart1"):
        try:
            address = parse_address(q.lower())
        except QueryError:
            address = b""
        if not address:
            raise QueryError(404, "not_found", f"{q[:80]!r} is not a valid address")
        with chain.reader() as reader:
            is_contract = contract_info(reader, address) is not None
        return {"type": "contract" if is_contract else "account", "id": to_bech32(address)}
    elif SYMBOL_RE.fullmatch(q.upper()):
        with chain.reader() as reader:
            if token_info(reader, q.upper()) is not None:
                return {"type": "token", "id": q.upper()}
    raise QueryError(404, "not_found", f"nothing on this chain matches {q[:80]!r}")


def _search_hash(node: Node, raw: bytes) -> dict[str, Any] | None:
    chain = node.chain
    height = chain.height_of(raw)
    if height is not None:
        return {"type": "block", "id": str(height)}
    if chain.has_tx(raw) or raw in node.mempool:
        return {"type": "tx", "id": raw.hex()}
    with chain.reader() as reader:
        if deal_view(reader, raw) is not None:
            return {"type": "storage_deal", "id": raw.hex()}
        if get_device(reader, raw) is not None:
            return {"type": "device", "id": raw.hex()}
    return None
