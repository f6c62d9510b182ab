"""JSON views of chain objects. Amounts are strings of base units (they exceed 2^53)."""

from __future__ import annotations

from typing import Any

from smartchain.codec import CodecError
from smartchain.crypto.address import address_of, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.state.chain import TxRecord
from smartchain.state.errors import Code
from smartchain.state.modules.bank import Transfer
from smartchain.types.amount import format_hpc
from smartchain.types.block import Block, BlockHeader
from smartchain.types.consensus import Commit
from smartchain.types.tx import Receipt, Transaction

PAYLOAD_TYPES = {"bank/transfer": Transfer}


def payload_json(kind: str, payload: bytes) -> Any:
    cls = PAYLOAD_TYPES.get(kind)
    if cls is None:
        return {"raw": payload.hex()}
    try:
        msg = cls.decode(payload)
    except CodecError:
        return {"raw": payload.hex()}
    if isinstance(msg, Transfer):
        return {"to": to_bech32(msg.to), "amount": str(msg.amount),
                "amount_hpc": format_hpc(msg.amount)}
    return {"raw": payload.hex()}


def tx_json(tx: Transaction) -> dict[str, Any]:
    return {
        "hash": tx.hash().hex(),
        "chain_id": tx.chain_id,
        "sender": to_bech32(tx.sender_address),
        "public_key": tx.sender.hex(),
        "nonce": tx.nonce,
        "gas_limit": tx.gas_limit,
        "gas_price": tx.gas_price,
        "kind": tx.kind,
        "payload": payload_json(tx.kind, tx.payload),
        "signature": tx.signature.hex(),
    }


def receipt_json(r: Receipt) -> dict[str, Any]:
    try:
        name = Code(r.code).slug
    except ValueError:
        name = "unknown"
    return {
        "ok": r.ok,
        "code": r.code,
        "code_name": name,
        "gas_used": r.gas_used,
        "fee": str(r.fee),
        "log": r.log,
        "events": [e.to_json() for e in r.events],
    }


def committed_tx_json(rec: TxRecord, tx: Transaction) -> dict[str, Any]:
    out = tx_json(tx)
    out.update(status="committed", height=rec.height, index=rec.index,
               receipt=receipt_json(rec.receipt))
    return out


def header_json(h: BlockHeader) -> dict[str, Any]:
    return {
        "chain_id": h.chain_id,
        "height": h.height,
        "time_ms": h.time_ms,
        "prev_hash": h.prev_hash.hex(),
        "tx_root": h.tx_root.hex(),
        "receipts_root": h.receipts_root.hex(),
        "state_root": h.state_root.hex(),
        "last_commit_hash": h.last_commit_hash.hex(),
        "evidence_hash": h.evidence_hash.hex(),
        "proposer": h.proposer.hex(),
        "proposer_address": to_bech32(address_of(h.proposer)),
    }


def block_json(b: Block) -> dict[str, Any]:
    return {
        "height": b.header.height,
        "hash": b.hash().hex(),
        "header": header_json(b.header),
        "signature": b.signature.hex(),
        "tx_count": len(b.txs),
        "txs": [h256(raw).hex() for raw in b.txs],
        "last_commit": commit_json(b.last_commit),
        "evidence": [{"validator": e.vote_a.validator.hex(), "height": e.vote_a.height,
                      "round": e.vote_a.round, "step": e.vote_a.step,
                      "block_hashes": [e.vote_a.block_hash.hex(), e.vote_b.block_hash.hex()]}
                     for e in b.evidence],
    }


def commit_json(c: Commit) -> dict[str, Any]:
    return {"height": c.height, "round": c.round, "block_hash": c.block_hash.hex(),
            "signatures": [{"validator_index": s.validator_index, "signature": s.signature.hex()}
                           for s in c.signatures]}
