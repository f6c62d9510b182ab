"""OpenAPI 3.1 description of the node API (kept beside the routes; a test checks they match)."""

from __future__ import annotations

from typing import Any

HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
UNITS = {"type": "string", "pattern": "^[0-9]+$",
         "description": "integer base units (1 HPC = 10^8)"}
ADDRESS = {"type": "string", "format": "smart-address", "pattern": "^smart1[02-9ac-hj-np-z]{38}$",
           "description": "bech32 (with a valid checksum)"}
SYMBOL = {"type": "string", "pattern": "^[A-Z][A-Z0-9]{1,9}$", "description": "token symbol"}
TOKEN_UNITS = {"type": "string", "pattern": "^[0-9]+$",
               "description": "integer base units of the token (at most 2^63-1)"}
U64 = {"type": "string", "pattern": "^[0-9]+$", "description": "unsigned 64-bit integer"}
U64_INT = {"type": "integer", "minimum": 0, "maximum": (1 << 64) - 1}
I64_INT = {"type": "integer", "minimum": -(1 << 63), "maximum": (1 << 63) - 1}
HEX = {"type": "string", "pattern": "^([0-9a-fA-F]{2})*$"}
TASK_STATES = ("pending", "assigned", "committed", "verified", "failed", "cancelled",
               "agreed")
DECIMAL = {"type": "string", "description": "exact decimal amount, using the token's decimals"}
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


SCHEMAS: dict[str, Any] = {
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
            "last_commit": {"type": "object", "description": "+2/3 precommits for the parent"},
            "evidence": {"type": "array", "items": {"type": "object"}},
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
    "Token": {
        "type": "object",
        "required": ["symbol", "name", "decimals", "issuer", "mintable", "supply", "max_supply"],
        "properties": {
            "symbol": SYMBOL, "name": {"type": "string"},
            "decimals": {"type": "integer", "minimum": 0, "maximum": 18}, "issuer": ADDRESS,
            "mintable": {"type": "boolean"}, "supply": TOKEN_UNITS, "max_supply": TOKEN_UNITS,
            "supply_amount": DECIMAL, "max_supply_amount": DECIMAL,
        },
    },
    "TokenBalance": {
        "type": "object", "required": ["symbol", "address", "balance", "decimals", "amount"],
        "properties": {"symbol": SYMBOL, "address": ADDRESS, "balance": TOKEN_UNITS,
                       "decimals": {"type": "integer"}, "amount": DECIMAL},
    },
    "TokenAllowance": {
        "type": "object",
        "required": ["symbol", "owner", "spender", "allowance", "decimals", "amount"],
        "properties": {"symbol": SYMBOL, "owner": ADDRESS, "spender": ADDRESS,
                       "allowance": TOKEN_UNITS, "decimals": {"type": "integer"},
                       "amount": DECIMAL},
    },
    "Contract": {
        "type": "object",
        "required": ["address", "creator", "height", "code_hash", "code_size", "balance",
                     "source"],
        "properties": {
            "address": ADDRESS, "creator": ADDRESS,
            "height": {"type": "integer", "description": "deployed at"},
            "code_hash": HEX32, "code_size": {"type": "integer"}, "balance": UNITS,
            "balance_hpc": {"type": "string"},
            "source": {"type": "string", "description": "the Lua source (invalid UTF-8 "
                                                        "shown as replacement characters)"},
        },
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
    "ComputeProvider": {
        "type": "object", "required": ["address", "active", "capability", "stake"],
        "properties": {
            "address": ADDRESS, "active": {"type": "boolean"},
            "capability": {**U64, "description": "declared fuel/s"},
            "effective_capability": {**U64, "description": "its scheduling weight: probation "
                                     "plus verified fuel, capped by capability and stake"},
            "stake": UNITS, "stake_hpc": {"type": "string"}, "reputation": U64,
            "load": {"type": "integer", "description": "replicas it holds"},
            "reserved": U64, "verified_fuel": U64, "verified_ms": U64, "slashed": UNITS,
            "misses": {"type": "integer"}, "registered": U64, "owner": ADDRESS,
            "network": {"type": "string", "description": "declared network (/24, /48), "
                        "or empty"},
            "bonded": {**UNITS, "description": "stake backing the pay of replicas it holds"},
        },
    },
    "ComputeJob": {
        "type": "object", "required": ["id", "status", "tasks", "verified", "failed"],
        "properties": {
            "id": U64, "status": {"enum": ["open", "done", "cancelled", "cancelling"]},
            "requester": ADDRESS, "module_hash": HEX32,
            "reduce_hash": {"oneOf": [HEX32, {"type": "null"}]},
            "tasks": {"type": "integer"}, "redundancy": {"type": "integer"},
            "fuel_per_task": U64, "price_per_fuel": UNITS, "deadline_blocks": U64,
            "escrow": UNITS, "escrow_hpc": {"type": "string"}, "paid": UNITS,
            "paid_hpc": {"type": "string"}, "verified": {"type": "integer"},
            "failed": {"type": "integer"}, "height": U64, "finished": U64,
            "counts": {"type": "object", "description": "tasks per state",
                       "additionalProperties": {"type": "integer"},
                       "properties": {s: {"type": "integer"} for s in TASK_STATES}},
            "task_states": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"}, "status": {"enum": list(TASK_STATES)},
                    "want": {"type": "integer"}, "output_size": {"type": "integer"},
                    "error": {"type": "string"}, "fuel_used": U64,
                    "deadline": {**U64, "description": "placement or release deadline"},
                    "round": {"type": "integer", "description":
                              "commit round: replicas commit to digests salted for it"},
                    "replicas": {"type": "array", "items": {"type": "object", "properties": {
                        "provider": ADDRESS, "status": {"type": "string"}, "deadline": U64,
                        "fuel_used": U64, "error": {"type": "string"}}}},
                }}},
        },
    },
    "ComputeResult": {
        "type": "object", "required": ["id", "status", "complete", "outputs"],
        "properties": {
            "id": U64, "status": {"enum": ["open", "done", "cancelled", "cancelling"]},
            "module_hash": HEX32, "reduce_hash": {"oneOf": [HEX32, {"type": "null"}]},
            "complete": {"type": "boolean",
                         "description": "every task verified without a runner error"},
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["index", "status"],
                "properties": {
                    "index": {"type": "integer"}, "status": {"enum": list(TASK_STATES)},
                    "output": {"type": "string", "description": "hex, verified tasks only"},
                    "value": {**U64, "description": "the output as a little-endian integer, "
                              "when it is 8 bytes"},
                    "error": {"type": "string"},
                }}},
        },
    },
    "ComputeAssignment": {
        "type": "object", "required": ["job", "task", "action"],
        "properties": {
            "job": U64, "task": {"type": "integer"}, "module_hash": HEX32,
            "input": {"type": "string", "description": "hex"}, "fuel": U64,
            "deadline": {**U64, "description": "last height to act; 0 while waiting"},
            "action": {"enum": ["commit", "reveal", "release", "wait"]},
            "salt": {"type": "string", "description": "hex; digest the output with it to "
                     "commit and reveal (empty in a task's first round)"},
        },
    },
    "ComputeModule": {
        "type": "object", "required": ["hash", "size"],
        "properties": {"hash": HEX32, "size": {"type": "integer"},
                       "hex": {"type": "string", "description": "the module, with ?bytes=1"}},
    },
    "StorageProvider": {
        "type": "object", "required": ["address", "active", "capacity", "used", "price", "p2p"],
        "properties": {
            "address": ADDRESS, "public_key": HEX32, "active": {"type": "boolean"},
            "capacity": {**U64, "description": "bytes offered"},
            "used": {**U64, "description": "bytes of the columns it holds"}, "free": U64,
            "price": {**UNITS, "description": "base units per GiB per epoch"},
            "bandwidth_price": {**UNITS, "description": "base units per GiB served"},
            "collateral": UNITS, "collateral_hpc": {"type": "string"}, "reputation": U64,
            "misses": {"type": "integer"},
            "p2p": {"type": "string", "description": "dialable P2P address, pubkeyhex@host:port"},
            "raw": {"type": "string", "description": "codec encoding (hex), with ?raw=1"},
        },
    },
    "StorageDeal": {
        "type": "object", "required": ["file_id", "status", "owner", "size", "k", "columns"],
        "properties": {
            "file_id": HEX32, "status": {"enum": ["active", "ended", "cancelled"]},
            "owner": ADDRESS, "salt": HEX32, "size": {**U64, "description": "plaintext bytes"},
            "k": {"type": "integer", "description": "pieces needed to rebuild a segment"},
            "n": {"type": "integer", "description": "columns stored"},
            "code_n": {"type": "integer", "description": "fragments the file was coded into"},
            "segments": {"type": "integer"}, "piece_size": U64, "last_piece_size": U64,
            "column_bytes": U64, "start_epoch": U64, "end_epoch": U64,
            "repair_threshold": {"type": "integer"},
            "healthy": {"type": "integer", "description": "columns whose audits pass"},
            "escrow": UNITS, "escrow_hpc": {"type": "string"}, "repair_budget": UNITS,
            "repair_budget_hpc": {"type": "string"},
            "columns": {"type": "array", "items": {
                "type": "object",
                "properties": {"frag_index": {"type": "integer"}, "provider": ADDRESS,
                               "root": HEX32, "healthy": {"type": "boolean"}, "price": UNITS}}},
            "raw": {"type": "string", "description": "codec encoding (hex), with ?raw=1"},
        },
    },
    "StorageChallenge": {
        "type": "object", "required": ["file_id", "frag_index", "segment", "leaf", "deadline"],
        "properties": {"file_id": HEX32, "frag_index": {"type": "integer"},
                       "segment": {"type": "integer"}, "leaf": {"type": "integer"},
                       "deadline": {**U64, "description": "last height a proof is accepted"}},
    },
}

RAW_FLAG = {"name": "raw", "in": "query", "required": False,
            "schema": {"enum": ["0", "1", "true", "false"]},
            "description": "add each record's codec encoding (hex)"}


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


PATHS: dict[str, Any] = {
    "/v1/txs": {"post": {
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
        "summary": "Status and receipt of a transaction",
        "parameters": [_path_param("hash", HEX32)],
        "responses": {"200": _json(_ref("Transaction"), "pending or committed"),
                      "400": _err("malformed hash"), "404": _err("unknown transaction")},
    }},
    "/v1/blocks/latest": {"get": {
        "summary": "The latest committed block",
        "responses": {"200": _json(_ref("Block"), "block"), "404": _err("no block yet")},
    }},
    "/v1/blocks/{height}": {"get": {
        "summary": "A committed block by height",
        "parameters": [_path_param("height", U64_INT)],
        "responses": {"200": _json(_ref("Block"), "block"), "400": _err("malformed height"),
                      "404": _err("no such block")},
    }},
    "/v1/accounts/{address}": {"get": {
        "summary": "Balance, nonce and token balances of an account",
        "parameters": [_path_param("address", ADDRESS)],
        "responses": {"200": _json(_ref("Account"), "account (zero if never used)"),
                      "400": _err("invalid address")},
    }},
    "/v1/tokens": {"get": {
        "summary": "Every issued token, by symbol",
        "responses": {"200": _json({"type": "object", "required": ["tokens"], "properties": {
            "tokens": {"type": "array", "items": _ref("Token")}}}, "all tokens")},
    }},
    "/v1/tokens/{symbol}": {"get": {
        "summary": "A token's issuer, decimals and supply",
        "parameters": [_path_param("symbol", SYMBOL)],
        "responses": {"200": _json(_ref("Token"), "token"), "400": _err("malformed symbol"),
                      "404": _err("no such token")},
    }},
    "/v1/tokens/{symbol}/balances/{address}": {"get": {
        "summary": "An address's balance of a token",
        "parameters": [_path_param("symbol", SYMBOL), _path_param("address", ADDRESS)],
        "responses": {"200": _json(_ref("TokenBalance"), "balance (zero if none)"),
                      "400": _err("malformed symbol or address"),
                      "404": _err("no such token")},
    }},
    "/v1/tokens/{symbol}/allowances/{owner}/{spender}": {"get": {
        "summary": "How much of owner's token the spender may still transfer",
        "parameters": [_path_param("symbol", SYMBOL), _path_param("owner", ADDRESS),
                       _path_param("spender", ADDRESS)],
        "responses": {"200": _json(_ref("TokenAllowance"), "allowance (zero if none)"),
                      "400": _err("malformed symbol or address"),
                      "404": _err("no such token")},
    }},
    "/v1/contracts/{address}": {"get": {
        "summary": "A contract's creator, code hash, HPC balance and source",
        "parameters": [_path_param("address", ADDRESS)],
        "responses": {"200": _json(_ref("Contract"), "contract"),
                      "400": _err("invalid address"), "404": _err("no contract there")},
    }},
    "/v1/contracts/{address}/query": {"post": {
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
    "/v1/compute/providers": {"get": {
        "summary": "Registered compute providers, in address order",
        "responses": {"200": _json({"type": "object", "required": ["providers"], "properties": {
            "providers": {"type": "array", "items": _ref("ComputeProvider")}}},
            "all providers")},
    }},
    "/v1/compute/providers/{address}": {"get": {
        "summary": "One compute provider: capability, stake, reputation, load",
        "parameters": [_path_param("address", ADDRESS)],
        "responses": {"200": _json(_ref("ComputeProvider"), "provider"),
                      "400": _err("invalid address"), "404": _err("not a provider")},
    }},
    "/v1/compute/providers/{address}/assignments": {"get": {
        "summary": "What a provider must run or answer now, in (job, task) order: the task's "
                   "input, fuel and deadline, and commit, reveal or wait",
        "parameters": [_path_param("address", ADDRESS)],
        "responses": {"200": _json({"type": "object", "required": ["assignments"],
                                    "properties": {"address": ADDRESS, "assignments": {
                                        "type": "array", "items": _ref("ComputeAssignment")}}},
                                   "assignments (empty for an address that holds none)"),
                      "400": _err("invalid address")},
    }},
    "/v1/compute/jobs/{id}": {"get": {
        "summary": "A compute job: terms, escrow, and each task's state with counts "
                   "(?tasks=0: the job alone, no counts or task_states)",
        "parameters": [_path_param("id", U64_INT),
                       {"name": "tasks", "in": "query", "required": False,
                        "schema": {"enum": ["0", "1", "true", "false"]}}],
        "responses": {"200": _json(_ref("ComputeJob"), "job"),
                      "400": _err("malformed job id"), "404": _err("no such job")},
    }},
    "/v1/compute/jobs/{id}/result": {"get": {
        "summary": "A compute job's verified outputs in task order",
        "parameters": [_path_param("id", U64_INT)],
        "responses": {"200": _json(_ref("ComputeResult"), "outputs"),
                      "400": _err("malformed job id"), "404": _err("no such job")},
    }},
    "/v1/compute/modules/{hash}": {"get": {
        "summary": "A task or reduce module kept on chain: its size, and its bytes with "
                   "?bytes=1",
        "parameters": [_path_param("hash", HEX32),
                       {"name": "bytes", "in": "query", "required": False,
                        "schema": {"enum": ["0", "1", "true", "false"]}}],
        "responses": {"200": _json(_ref("ComputeModule"), "module"),
                      "400": _err("malformed hash or flag"), "404": _err("no such module")},
    }},
    "/v1/storage/providers": {"get": {
        "summary": "Registered storage providers (active or not), in address order",
        "parameters": [RAW_FLAG],
        "responses": {"200": _json({"type": "object", "required": ["providers"], "properties": {
            "providers": {"type": "array", "items": _ref("StorageProvider")}}},
            "all providers"), "400": _err("malformed flag")},
    }},
    "/v1/storage/providers/{address}": {"get": {
        "summary": "One storage provider: capacity, prices, collateral, reputation",
        "parameters": [_path_param("address", ADDRESS), RAW_FLAG],
        "responses": {"200": _json(_ref("StorageProvider"), "provider"),
                      "400": _err("invalid address or flag"), "404": _err("not a provider")},
    }},
    "/v1/storage/providers/{address}/challenges": {"get": {
        "summary": "Audit challenges a provider must answer this epoch",
        "parameters": [_path_param("address", ADDRESS)],
        "responses": {"200": _json({"type": "object", "required": ["challenges"],
                                    "properties": {"address": ADDRESS, "challenges": {
                                        "type": "array", "items": _ref("StorageChallenge")}}},
                                   "open challenges (empty when none)"),
                      "400": _err("invalid address")},
    }},
    "/v1/storage/deals": {"get": {
        "summary": "Every storage deal an owner made, in file id order",
        "parameters": [{"name": "owner", "in": "query", "required": True, "schema": ADDRESS},
                       RAW_FLAG],
        "responses": {"200": _json({"type": "object", "required": ["deals"], "properties": {
            "owner": ADDRESS, "deals": {"type": "array", "items": _ref("StorageDeal")}}},
            "deals (empty when none)"),
            "400": _err("owner missing or invalid, or malformed flag")},
    }},
    "/v1/storage/deals/{file_id}": {"get": {
        "summary": "A storage deal: terms, escrow and each column's provider and health",
        "parameters": [_path_param("file_id", HEX32), RAW_FLAG],
        "responses": {"200": _json(_ref("StorageDeal"), "deal"),
                      "400": _err("malformed file id or flag"), "404": _err("no such deal")},
    }},
    "/v1/storage/repairs": {"get": {
        "summary": "Active deals that need repair (fewer healthy columns than their threshold)",
        "parameters": [RAW_FLAG],
        "responses": {"200": _json({"type": "object", "required": ["deals"], "properties": {
            "deals": {"type": "array", "items": _ref("StorageDeal")}}}, "deals to repair"),
            "400": _err("malformed flag")},
    }},
    "/v1/status": {"get": {
        "summary": "Chain id, height, latest hash and state root",
        "responses": {"200": _json(_ref("Status"), "node status")},
    }},
    "/metrics": {"get": {
        "summary": "Prometheus metrics",
        "responses": {"200": {"description": "text exposition format",
                              "content": {"text/plain": {"schema": {"type": "string"}}}}},
    }},
    "/openapi.json": {"get": {
        "summary": "This document",
        "responses": {"200": {"description": "OpenAPI 3.1",
                              "content": {"application/json": {"schema": {"type": "object"}}}}},
    }},
}


def openapi_spec() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Smartchain node API", "version": "1"},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS},
    }
