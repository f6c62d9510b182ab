"""OpenAPI 3.1 description of the node API (kept beside the routes; a test checks they match)."""

from __future__ import annotations

from typing import Any

from smartchain.app import api_schemas, http_queries
from smartchain.modules.query import ADDRESS, HEX32, U64, U64_INT, UNITS
from smartchain.modules.query import error_body as _err
from smartchain.modules.query import json_body as _json
from smartchain.modules.query import ref as _ref
from smartchain.modules.tokens.queries import DECIMAL, SYMBOL, TOKEN_UNITS

I64_INT = {"type": "integer", "minimum": -(1 << 63), "maximum": (1 << 63) - 1}
HEX = {"type": "string", "pattern": "^([0-9a-fA-F]{2})*$"}
CONTRACT_VALUE = {
    "description": "a contract value: null, a boolean, a 64-bit integer, a string (UTF-8 "
                   'bytes) or {"hex": ...} for bytes that are not UTF-8',
    "oneOf": [{"type": "null"}, {"type": "boolean"}, {"type": "integer"}, {"type": "string"},
              {"type": "object", "required": ["hex"],
               "properties": {"hex": {"type": "string", "pattern": "^([0-9a-f]{2})*$"}}}],
}
# An argument as a query may send it: at most 16 of them, together no more bytes than a
# transaction could carry (64 KiB), which these lengths ensure (a character is at most 4 bytes).
CONTRACT_ARG = {
    "description": CONTRACT_VALUE["description"],
    "oneOf": [{"type": "null"}, {"type": "boolean"}, I64_INT,
              {"type": "string", "maxLength": 1024},
              {"type": "object", "required": ["hex"], "additionalProperties": False,
               "properties": {"hex": {**HEX, "maxLength": 2048}}}],
}
EVENT = {
    "type": "object", "required": ["kind", "attributes"],
    "properties": {
        "kind": {"type": "string", "description": "MODULE_ACTION, or contract/NAME for an "
                                                  "event a contract emitted"},
        "attributes": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "as emitted; addresses the chain wrote are bech32, "
                                      "a contract's own attributes are shown verbatim"},
    },
}


SCHEMAS: dict[str, Any] = {
    "Genesis": {
        "type": "object", "required": ["chain_id", "time_ms", "params", "accounts", "validators"],
        "properties": {
            "chain_id": {"type": "string"}, "time_ms": U64_INT,
            "params": {"type": "object"},
            "accounts": {"type": "array", "items": {
                "type": "object", "required": ["address", "balance"],
                "properties": {"address": ADDRESS, "balance": UNITS}}},
            "validators": {"type": "array", "items": {
                "type": "object", "required": ["public_key", "power", "name"],
                "properties": {"public_key": HEX32, "power": U64_INT,
                               "name": {"type": "string"}}}},
        },
    },
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }},
    },
    "SubmitTx": {
        "type": "object", "required": ["tx"],
        "properties": {"tx": {**HEX, "description": "hex of the canonical encoding"}},
    },
    "Submitted": {
        "type": "object", "required": ["hash", "status"],
        "properties": {"hash": HEX32, "status": {"const": "pending"}},
    },
    "Receipt": {
        "type": "object",
        "properties": {
            "ok": {"type": "boolean"}, "code": {"type": "integer"},
            "code_name": {"type": "string"}, "gas_used": {"type": "integer"}, "fee": UNITS,
            "log": {"type": "string"}, "events": {"type": "array", "items": EVENT},
        },
    },
    "Transaction": {
        "type": "object",
        "required": ["hash", "status", "chain_id", "sender", "nonce", "kind"],
        "properties": {
            "hash": HEX32, "status": {"enum": ["pending", "committed"]},
            "chain_id": {"type": "string"}, "sender": ADDRESS, "public_key": HEX32,
            "nonce": {"type": "integer"}, "gas_limit": {"type": "integer"},
            "gas_price": {"type": "integer"}, "kind": {"type": "string"},
            "payload": {"type": "object"}, "signature": {"type": "string"},
            "height": {"type": "integer"}, "index": {"type": "integer"},
            "receipt": _ref("Receipt"),
        },
    },
    "BlockHeader": {
        "type": "object",
        "properties": {
            "chain_id": {"type": "string"}, "height": {"type": "integer"},
            "time_ms": {"type": "integer"}, "prev_hash": HEX32, "tx_root": HEX32,
            "receipts_root": HEX32, "state_root": HEX32, "last_commit_hash": HEX32,
            "evidence_hash": HEX32, "proposer": HEX32,
            "proposer_address": ADDRESS,
        },
    },
    "Block": {
        "type": "object", "required": ["height", "hash", "header", "txs"],
        "properties": {
            "height": {"type": "integer"}, "hash": HEX32, "header": _ref("BlockHeader"),
            "signature": {"type": "string"}, "tx_count": {"type": "integer"},
            "txs": {"type": "array", "items": HEX32},
            "transactions": {"type": "array", "items": _ref("TxSummary"),
                             "description": "the block's transactions with their results"},
            "last_commit": {"type": "object", "description": "+2/3 precommits for the parent"},
            "evidence": {"type": "array", "items": {"type": "object"}},
        },
    },
    "TxSummary": {
        "type": "object",
        "required": ["hash", "height", "index", "sender", "kind", "nonce", "ok", "code_name",
                     "fee", "gas_used", "events"],
        "properties": {
            "hash": HEX32, "height": U64, "index": {"type": "integer"}, "sender": ADDRESS,
            "kind": {"type": "string"}, "nonce": U64, "payload": {"type": "object"},
            "ok": {"type": "boolean"}, "code_name": {"type": "string"},
            "log": {"type": "string"}, "gas_used": U64, "fee": UNITS,
            "fee_hpc": {"type": "string"}, "events": {"type": "array", "items": EVENT},
            "role": {"enum": ["sender", "party"],
                     "description": "in an account's list: whether it sent the transaction"},
        },
    },
    "BlockRow": {
        "type": "object",
        "required": ["height", "hash", "time_ms", "tx_count", "proposer_address"],
        "properties": {"height": U64, "hash": HEX32, "time_ms": U64,
                       "tx_count": {"type": "integer"}, "proposer_address": ADDRESS},
    },
    "IndexedEvent": {
        "allOf": [EVENT, {
            "type": "object", "required": ["height", "tx_hash", "tx_index", "event_index"],
            "properties": {"height": U64, "tx_hash": HEX32, "tx_index": {"type": "integer"},
                           "event_index": {"type": "integer"}}}],
    },
    "SignerSet": {
        "type": "object",
        "required": ["height", "start_height", "total_power", "validators"],
        "properties": {
            "height": {"type": "integer"},
            "start_height": {"type": "integer", "description": "first height of this set"},
            "total_power": {"type": "integer"},
            "validators": {"type": "array", "description": "in commit-index order",
                           "items": {"type": "object", "required": ["pubkey", "power", "name"],
                                     "properties": {"pubkey": HEX32,
                                                    "power": {"type": "integer"},
                                                    "name": {"type": "string"}}}},
        },
    },
    "Account": {
        "type": "object", "required": ["address", "balance", "nonce", "tokens"],
        "properties": {
            "address": ADDRESS, "balance": UNITS, "balance_hpc": {"type": "string"},
            "nonce": {"type": "integer"}, "pending_nonce": {"type": "integer"},
            "tokens": {"type": "array", "items": _ref("Holding"),
                       "description": "token balances, by symbol"},
        },
    },
    "Holding": {
        "type": "object", "required": ["symbol", "balance", "decimals", "amount"],
        "properties": {"symbol": SYMBOL, "balance": TOKEN_UNITS,
                       "decimals": {"type": "integer"}, "amount": DECIMAL},
    },
    "ContractQuery": {
        "type": "object", "required": ["function"],
        "properties": {
            "function": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,63}$",
                         "not": {"const": "init"},
                         "description": "a public function of the contract"},
            "args": {"type": "array", "maxItems": 16, "items": CONTRACT_ARG},
            "caller": {"oneOf": [ADDRESS, {"type": "null"}],
                       "description": "what ctx.caller says (default: the zero address)"},
            "value": {"oneOf": [{"type": "integer", "minimum": 0, "maximum": (1 << 63) - 1},
                                {"type": "string", "pattern": "^[0-9]{1,18}$"},
                                {"type": "null"}],
                      "description": "what ctx.value says, in base units below 2^63 (a string "
                                     "of digits for large ones); no HPC moves"},
        },
    },
    "ContractQueryResult": {
        "type": "object", "required": ["ok", "gas_used", "results"],
        "properties": {"ok": {"const": True}, "gas_used": {"type": "integer"},
                       "results": {"type": "array", "items": CONTRACT_VALUE}},
    },
    "Status": {
        "type": "object", "required": ["chain_id", "height", "latest_hash", "state_root"],
        "properties": {
            "chain_id": {"type": "string"}, "height": {"type": "integer"},
            "latest_hash": HEX32, "latest_time_ms": {"type": ["integer", "null"]},
            "state_root": HEX32, "genesis_hash": HEX32, "mempool_size": {"type": "integer"},
            "min_gas_price": {"type": "integer"}, "tx_base_gas": {"type": "integer"},
            "gas_per_tx_byte": {"type": "integer"}, "gas_per_write": {"type": "integer"},
            "token_issue_gas": {"type": "integer"}, "contract_call_gas": {"type": "integer"},
            "contract_code_byte_gas": {"type": "integer"}, "max_tx_gas": {"type": "integer"},
            "block_time_ms": {"type": "integer"}, "moniker": {"type": "string"},
            "peers": {"type": "integer"}, "signer": {"type": "boolean"},
            "validator": ADDRESS, "max_tx_bytes": {"type": "integer"},
            "compute_scan_gas": {"type": "integer"}, "compute_min_stake": UNITS,
            "compute_max_tasks": {"type": "integer"},
            "compute_max_extra_replicas": {"type": "integer"},
            "compute_reveal_blocks": {"type": "integer"},
            "storage_epoch_blocks": {"type": "integer"}, "storage_min_price": {"type": "integer"},
            "storage_min_collateral": UNITS, "storage_slash_bps": {"type": "integer"},
            "storage_audit_segments": {"type": "integer"},
            "storage_audit_window": {"type": "integer"},
            "storage_repair_bps": {"type": "integer"},
            "storage_receipt_ttl": {"type": "integer"},
            "storage_max_columns": {"type": "integer"},
            "storage_max_segments": {"type": "integer"},
            "storage_accept_ttl": {"type": "integer"},
            "storage_collateral_per_gib": UNITS,
            "storage_epoch": {"type": "integer", "description": "current audit epoch"},
        },
    },
}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _paging(cursor_pattern: str) -> list[dict[str, Any]]:
    return [
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
        {"name": "cursor", "in": "query", "required": False,
         "schema": {"type": "string", "pattern": cursor_pattern,
                    "description": "next_cursor of the previous page"}},
    ]


HEIGHT_CURSOR = "^[0-9]{1,19}$"
TX_CURSOR = "^[0-9]{1,19}-[0-9]{1,9}$"
EVENT_CURSOR = "^[0-9]{1,19}-[0-9]{1,9}-[0-9]{1,4}$"
NEXT = {"type": "string", "description": "absent on the last page"}


def _page_of(name: str, items: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "object", "required": [name],
            "properties": {name: {"type": "array", "items": items}, "next_cursor": NEXT,
                           **more}}


# The core's operations; each module's are declared in its queries.py (see openapi_spec).
PATHS: dict[str, Any] = {
    "/v1/txs": {"post": {
        "operationId": "submitTx", "tags": ["txs"],
        "summary": "Submit a signed transaction",
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _ref("SubmitTx")},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }},
        "responses": {
            "202": _json(_ref("Submitted"), "accepted into the mempool"),
            "400": _err("malformed JSON (or nested over 32 levels) or encoding"),
            "409": _err("duplicate transaction"),
            "413": _err("transaction or request body too large (1 MiB)"),
            "422": _err("rejected: bad signature, chain id, nonce, funds, fee, kind, payload"),
            "429": _err("mempool full"),
        },
    }},
    "/v1/txs/batch": {"post": {
        "operationId": "submitTxBatch", "tags": ["txs"],
        "summary": "Submit up to 10,000 signed transactions; signatures checked in parallel",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["txs"],
            "properties": {"txs": {"type": "array", "maxItems": 10_000, "items": HEX}},
        }}}},
        "responses": {
            "200": _json({"type": "object", "required": ["results"], "properties": {
                "results": {"type": "array", "items": {"oneOf": [
                    _ref("Submitted"), _ref("Error")]}}}},
                "one result (hash or error) per transaction, in order"),
            "400": _err("malformed request (or JSON nested over 32 levels)"),
            "413": _err("too many transactions, or a body over 8 MiB"),
        },
    }},
    "/v1/txs/simulate": {"post": {
        "operationId": "simulateTx", "tags": ["txs"],
        "summary": "What a transaction would do in the next block, on a throw-away copy of "
                   "the latest state (nothing is written); a signature of 64 zero bytes is "
                   "not checked. gas_wanted is gas_used plus 20% and 5,000 (a contract "
                   "call's gas can change with the state), at most max_tx_gas",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["tx"],
            "properties": {
                "tx": {**HEX, "description": "hex of the canonical encoding, signed or not"},
                "nonce": {"const": "next", "description": "use the nonce the state expects"},
                "gas_limit": {"const": "max", "description":
                              "use the highest gas limit the sender can pay for"},
            },
        }}}},
        "responses": {
            "200": _json({"allOf": [_ref("Receipt"), {
                "type": "object",
                "required": ["ok", "code", "gas_used", "gas_wanted", "gas_limit", "nonce",
                             "log", "events"],
                "properties": {"gas_wanted": {"type": "integer"},
                               "gas_limit": {"type": "integer"},
                               "nonce": {"type": "integer"},
                               "height": {"type": "integer"}}}]},
                "the receipt it would get (ok or failed: a failed one still pays its fee)"),
            "400": _err("malformed JSON, fields or encoding"),
            "413": _err("transaction or request body too large (1 MiB)"),
            "422": _err("would be refused: bad signature, chain id, nonce, funds, fee, kind, "
                        "payload"),
            "429": _err("too many simulations and contract queries in progress"),
        },
    }},
    "/v1/txs/{hash}": {"get": {
        "operationId": "getTx", "tags": ["txs"],
        "summary": "Status and receipt of a transaction",
        "parameters": [_path_param("hash", HEX32)],
        "responses": {"200": _json(_ref("Transaction"), "pending or committed"),
                      "400": _err("malformed hash"), "404": _err("unknown transaction")},
    }},
    "/v1/blocks": {"get": {
        "operationId": "listBlocks", "tags": ["blocks"],
        "summary": "Blocks, newest first, a page at a time",
        "parameters": _paging(HEIGHT_CURSOR),
        "responses": {"200": _json(_page_of("blocks", _ref("BlockRow")), "a page of blocks"),
                      "400": _err("malformed limit or cursor")},
    }},
    "/v1/accounts/{address}/txs": {"get": {
        "operationId": "listAccountTxs", "tags": ["accounts"],
        "summary": "Transactions an account sent or took part in (recipient, contract "
                   "called, named by an event), newest first, from the node's search index",
        "parameters": [_path_param("address", ADDRESS), *_paging(TX_CURSOR)],
        "responses": {"200": _json(_page_of("txs", _ref("TxSummary"), address=ADDRESS),
                                   "a page of transactions"),
                      "400": _err("invalid address, limit or cursor"),
                      "404": _err("this node keeps no search index (index_disabled)")},
    }},
    "/v1/events": {"get": {
        "operationId": "listEvents", "tags": ["events"],
        "summary": "Events of a kind, optionally where=ATTR:VALUE (an address in hex or "
                   "bech32 alike), newest first, from the node's search index",
        "parameters": [
            {"name": "kind", "in": "query", "required": True,
             "schema": {"type": "string", "minLength": 1, "maxLength": 128}},
            {"name": "where", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": "^[^:]+:",
                        "description": "ATTR:VALUE, split at the first colon"}},
            *_paging(EVENT_CURSOR)],
        "responses": {"200": _json(_page_of("events", _ref("IndexedEvent"),
                                            kind={"type": "string"},
                                            where={"type": "object"}), "a page of events"),
                      "400": _err("kind missing, where without a colon, bad limit or cursor"),
                      "404": _err("this node keeps no search index (index_disabled)")},
    }},
    "/v1/search": {"get": {
        "operationId": "search", "tags": ["node"],
        "summary": "What a search box's text names: a height, a block or transaction hash, "
                   "a storage file id, a device key, an address or a token symbol",
        "parameters": [{"name": "q", "in": "query", "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
        "responses": {"200": _json({"type": "object", "required": ["type", "id"], "properties": {
            "type": {"enum": ["block", "tx", "account", "contract", "token", "storage_deal",
                              "device"]},
            "id": {"type": "string"}}}, "what was found"),
            "400": _err("missing or too long"), "404": _err("nothing matches")},
    }},
    "/v1/blocks/latest": {"get": {
        "operationId": "getLatestBlock", "tags": ["blocks"],
        "summary": "The latest committed block",
        "responses": {"200": _json(_ref("Block"), "block"), "404": _err("no block yet")},
    }},
    "/v1/blocks/{height}": {"get": {
        "operationId": "getBlock", "tags": ["blocks"],
        "summary": "A committed block by height",
        "parameters": [_path_param("height", U64_INT)],
        "responses": {"200": _json(_ref("Block"), "block"), "400": _err("malformed height"),
                      "404": _err("no such block")},
    }},
    "/v1/blocks/{height}/signers": {"get": {
        "operationId": "getBlockSigners", "tags": ["blocks"],
        "summary": "The signer set of a height (known up to the committed height + 2): "
                   "commit signatures name its members by index",
        "parameters": [_path_param("height", U64_INT)],
        "responses": {"200": _json(_ref("SignerSet"), "signer set"),
                      "400": _err("malformed height"),
                      "404": _err("no set decided for that height yet")},
    }},
    "/v1/accounts/{address}": {"get": {
        "operationId": "getAccount", "tags": ["accounts"],
        "summary": "Balance, nonce and token balances of an account",
        "parameters": [_path_param("address", ADDRESS)],
        "responses": {"200": _json(_ref("Account"), "account (zero if never used)"),
                      "400": _err("invalid address")},
    }},
    "/v1/contracts/{address}/query": {"post": {
        "operationId": "queryContract", "tags": ["contracts"],
        "summary": "Run a contract function read-only on the latest state (free; writes "
                   "discarded; at most 20,000,000 gas and 2 s)",
        "parameters": [_path_param("address", ADDRESS)],
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": _ref("ContractQuery")}}},
        "responses": {
            "200": _json(_ref("ContractQueryResult"), "the function's results"),
            "400": _err("malformed request (or JSON nested over 32 levels), address, function "
                        "name or argument"),
            "404": _err("no contract there"),
            "413": _err("request body over 1 MiB"),
            "422": _err("the contract call failed (its error, out of gas, or stopped by the "
                        "watchdog); the message gives the gas used"),
            "429": _err("too many queries in progress"),
        },
    }},
    "/v1/status": {"get": {
        "operationId": "getStatus", "tags": ["node"],
        "summary": "Chain id, height, latest hash and state root",
        "responses": {"200": _json(_ref("Status"), "node status")},
    }},
    "/v1/genesis": {"get": {
        "operationId": "getGenesis", "tags": ["node"],
        "summary": "The chain's genesis document (genesis.json); its hash is in the "
                   "X-Genesis-Hash header and in /v1/status",
        "responses": {"200": _json(_ref("Genesis"), "genesis document")},
    }},
    "/metrics": {"get": {
        "operationId": "getMetrics", "tags": ["node"],
        "summary": "Prometheus metrics",
        "responses": {"200": {"description": "text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }},
    "/openapi.json": {"get": {
        "operationId": "getOpenApi", "tags": ["node"],
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }},
}


def _paths() -> dict[str, Any]:
    """The core's operations and every module query's, each path's methods together."""
    paths = {path: dict(ops) for path, ops in PATHS.items()}
    for query in http_queries():
        paths.setdefault(query.path, {})["get"] = query.spec()
    return paths


def openapi_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Smartchain node API", "version": "1"},
        "paths": _paths(),
        "components": {"schemas": {**SCHEMAS, **api_schemas()}},
    }
