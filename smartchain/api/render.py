"""JSON views of chain objects, following the contract in docs/api.md: every 64-bit number
(amounts, heights, nonces, gas, times) is a string, small counts are integers."""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any

from smartchain.codec import CodecError, Struct
from smartchain.crypto.address import address_of, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.modules.bank.types import Transfer
from smartchain.modules.compute.types import PAYLOADS as COMPUTE_PAYLOADS
from smartchain.modules.compute.types import (
    CommitResults,
    PostJob,
    ReleaseOutput,
    ReleaseOutputs,
    RevealResults,
    job_escrow,
)
from smartchain.modules.contracts.types import STR, Arg, Call, Deploy
from smartchain.modules.storage.types import PAYLOADS as STORAGE_PAYLOADS
from smartchain.modules.tokens.types import PAYLOADS as TOKEN_PAYLOADS
from smartchain.state.chain import TxRecord
from smartchain.types.amount import format_hpc
from smartchain.types.block import Block, BlockHeader
from smartchain.types.consensus import Commit
from smartchain.types.errors import Code
from smartchain.types.tx import Receipt, Transaction

PAYLOAD_TYPES: dict[str, type[Struct]] = {"bank/transfer": Transfer, **TOKEN_PAYLOADS,
                                          "contracts/deploy": Deploy, "contracts/call": Call,
                                          **COMPUTE_PAYLOADS, **STORAGE_PAYLOADS}


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
    if isinstance(msg, Deploy | Call):
        args = msg.init_args if isinstance(msg, Deploy) else msg.args
        if any(a.kind > STR for a in args):  # never valid on chain: show the bytes as sent
            return {"raw": payload.hex()}
        value = {"value": str(msg.value), "value_hpc": format_hpc(msg.value)}
        if isinstance(msg, Deploy):  # the source is on chain: GET /v1/contracts/{address}
            return {"source_size": len(msg.source), "code_hash": h256(msg.source).hex(),
                    "init_args": args_json(args), **value}
        return {"contract": to_bech32(msg.contract), "function": msg.function,
                "args": args_json(args), **value}
    if isinstance(msg, PostJob):
        return post_job_json(msg)
    if isinstance(msg, RevealResults):
        return {"reveals": [fields_json(r) for r in msg.reveals]}
    if isinstance(msg, ReleaseOutputs):
        return {"releases": [release_json(r) for r in msg.releases]}
    if isinstance(msg, CommitResults):
        return {"commits": [fields_json(c) for c in msg.commits]}
    return fields_json(msg)


def release_json(msg: ReleaseOutput) -> dict[str, Any]:
    return {"job": str(msg.job), "task": msg.task, "output": msg.output.hex(),
            "output_size": len(msg.output)}


def post_job_json(msg: PostJob) -> dict[str, Any]:
    """A job posting, compact: the module and inputs are summarised, never dumped (the module
    is on chain by hash: GET /v1/compute/modules/{hash})."""
    escrow = job_escrow(msg)
    return {
        "module_hash": h256(msg.module).hex(), "module_size": len(msg.module),
        "tasks": len(msg.tasks), "input_bytes": sum(len(t) for t in msg.tasks),
        "redundancy": msg.redundancy, "fuel_per_task": str(msg.fuel_per_task),
        "price_per_fuel": str(msg.price_per_fuel), "deadline_blocks": str(msg.deadline_blocks),
        "escrow": str(escrow), "escrow_hpc": format_hpc(escrow),
        "reduce_hash": h256(msg.reduce).hex() if msg.reduce else None,
        "reduce_size": len(msg.reduce),
    }


def contract_value_json(v: Any) -> Any:
    """A contract value (None, bool, int or bytes) as JSON: bytes are a string when they
    are UTF-8, else ``{"hex": ...}``."""
    if isinstance(v, bytes):
        try:
            return v.decode()
        except UnicodeDecodeError:
            return {"hex": v.hex()}
    return v


def args_json(args: tuple[Arg, ...]) -> list[Any]:
    return [contract_value_json(a.value()) for a in args]


@functools.cache
def _wide_ints(cls: type) -> frozenset[str]:
    """Fields encoded as u64/u128: JSON gives them as strings (they may exceed 2^53)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return frozenset(name for name, hint in hints.items()
                     if any(getattr(m, "name", "") in ("u64", "u128", "i64")
                            for m in getattr(hint, "__metadata__", ())))


def fields_json(msg: Any) -> dict[str, Any]:
    """A payload's fields as JSON: 20-byte fields are addresses, 64- and 128-bit integers
    strings, nested structs objects and lists lists; the rest as they are."""
    cls: type = type(msg)
    wide = _wide_ints(cls)
    return {f.name: _field_json(getattr(msg, f.name), f.name in wide)
            for f in dataclasses.fields(msg)}


def _field_json(v: Any, wide: bool) -> Any:
    if isinstance(v, bytes):
        return to_bech32(v) if len(v) == 20 else v.hex()
    if isinstance(v, Struct):
        return fields_json(v)
    if isinstance(v, tuple):
        return [_field_json(x, wide) for x in v]
    if wide and isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return v


def tx_json(tx: Transaction) -> dict[str, Any]:
    return {
        "hash": tx.hash().hex(),
        "chain_id": tx.chain_id,
        "sender": to_bech32(tx.sender_address),
        "public_key": tx.sender.hex(),
        "nonce": str(tx.nonce),
        "gas_limit": str(tx.gas_limit),
        "gas_price": str(tx.gas_price),
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
        "gas_used": str(r.gas_used),
        "fee": str(r.fee),
        "log": r.log,
        "events": [e.to_json() for e in r.events],
    }


def committed_tx_json(rec: TxRecord, tx: Transaction) -> dict[str, Any]:
    out = tx_json(tx)
    out.update(status="committed", height=str(rec.height), index=rec.index,
               receipt=receipt_json(rec.receipt))
    return out


def header_json(h: BlockHeader) -> dict[str, Any]:
    return {
        "chain_id": h.chain_id,
        "height": str(h.height),
        "time_ms": str(h.time_ms),
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
        "height": str(b.header.height),
        "hash": b.hash().hex(),
        "header": header_json(b.header),
        "signature": b.signature.hex(),
        "tx_count": len(b.txs),
        "txs": [h256(raw).hex() for raw in b.txs],
        "last_commit": commit_json(b.last_commit),
        "evidence": [{"validator": e.vote_a.validator.hex(), "height": str(e.vote_a.height),
                      "round": e.vote_a.round, "step": e.vote_a.step,
                      "block_hashes": [e.vote_a.block_hash.hex(), e.vote_b.block_hash.hex()]}
                     for e in b.evidence],
    }


def commit_json(c: Commit) -> dict[str, Any]:
    return {"height": str(c.height), "round": c.round, "block_hash": c.block_hash.hex(),
            "signatures": [{"validator_index": s.validator_index, "signature": s.signature.hex()}
                           for s in c.signatures]}
