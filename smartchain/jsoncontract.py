"""The JSON contract every API answer and every ``smart --json`` document follows
(docs/api.md): the closed list of error codes, the CLI's exit codes, and a checker tests run
over real documents.

The rules: a document is an object (a list is wrapped: ``{"blocks": [...]}``); a 64-bit
number (amounts, balances, fees, prices, heights, nonces, gas, times in ms, durations in
blocks, epochs) is a string of digits, safe in JavaScript; a small count (indexes, sizes
in bytes, counts, decimals, basis points, codes) is an integer; an error is
``{"error": {"code", "message", "details"?}}`` with a code from ``ERROR_CODES``.
"""

from __future__ import annotations

import re
from typing import Any

from smartchain.types.errors import Code

# Why a transaction was refused (API 4xx, CLI exit 1) or failed in a block (its receipt's
# ``code_name``): the chain's own code table.
TX_CODES: dict[str, str] = {
    Code.MALFORMED.slug: "the request or transaction is not well formed",
    Code.BAD_SIGNATURE.slug: "the signature does not verify",
    Code.WRONG_CHAIN.slug: "signed for another chain id",
    Code.NONCE_REUSED.slug: "the nonce was already used",
    Code.NONCE_SKIPPED.slug: "the nonce is ahead of the account's next one",
    Code.INSUFFICIENT_FUNDS.slug: "the sender cannot pay the amount and the fee",
    Code.FEE_TOO_LOW.slug: "gas price below the chain's minimum",
    Code.TX_TOO_LARGE.slug: "the transaction exceeds max_tx_bytes",
    Code.UNKNOWN_KIND.slug: "no module handles this transaction kind",
    Code.INVALID_PAYLOAD.slug: "the payload does not decode or breaks the kind's rules",
    Code.OUT_OF_GAS.slug: "the gas limit was used up",
    Code.GAS_LIMIT.slug: "the gas limit is above what a transaction or block may use",
    Code.DUPLICATE.slug: "the transaction is already known",
    Code.MEMPOOL_FULL.slug: "the node's mempool is full; retry later",
    Code.FAILED.slug: "a module's business rule refused it (see the message or log)",
}

# Everything else the API or the CLI answers with.
OTHER_CODES: dict[str, str] = {
    "not_found": "no such block, transaction, account object, key or file",
    "invalid_address": "not a bech32 smart1... address with a valid checksum",
    "invalid_amount": "not an amount (HPC as an exact decimal, or base units)",
    "invalid_argument": "a parameter or contract argument out of its range",
    "invalid_function": "not a public function name of a contract",
    "invalid_symbol": "not a token symbol (2-10 capital letters or digits)",
    "invalid_spec": "a compute job spec that does not hold together",
    "invalid_module": "a compute module that does not load",
    "invalid_genesis": "a genesis document that does not hold together",
    "malformed_json": "the request body is not UTF-8 JSON",
    "too_deep": "the request body is nested over 32 levels",
    "body_too_large": "the request body is over the route's limit",
    "batch_too_large": "more than 10,000 transactions in a batch",
    "method_not_allowed": "the path does not take this method (see the Allow header)",
    "bad_request": "the HTTP request itself is not acceptable",
    "busy": "too many queries or simulations in progress; retry later",
    "index_disabled": "this node keeps no search index",
    "too_many_subscribers": "the node's websocket subscribers are at their limit",
    "subscription_refused": "the node refused a websocket subscription",
    "websocket_required": "GET /v1/subscribe without a websocket upgrade",
    "pruned": "the height asked for is below the oldest block this node holds",
    "contract_failed": "a read-only contract query failed",
    "tx_failed": "the transaction was committed but failed: it paid its fee and did "
                 "nothing (details: hash, height, receipt)",
    "not_synced": "the node is still catching up with the network (/ready)",
    "unreachable": "the node's API cannot be reached",
    "timeout": "the transaction or job was not done in time",
    "http_error": "the node answered with a non-JSON HTTP error",
    "internal": "a bug in the node (it logged a traceback)",
    "usage": "the command line is wrong (unknown option, missing argument, bad value)",
    "aborted": "interrupted (Ctrl-C)",
    "key_exists": "a key of this name is already in the keyring",
    "keystore": "a key file that cannot be opened (wrong passphrase, corrupt file)",
    "config": "a configuration file or setting that does not hold together",
    "devnet": "the local devnet cannot be started or found",
    "io_error": "a file could not be read or written",
    "file_exists": "the output file exists (--force overwrites it)",
    "storage_error": "a storage upload or download failed",
    "not_owner": "the file or deal belongs to another account",
    "not_active": "the storage deal is not active",
    "not_enough_providers": "too few storage providers for the redundancy asked",
    "incomplete": "a compute job ended with tasks unfinished",
    "reduce_failed": "a compute job's reduce step failed",
    "too_many_tasks": "a compute job with more tasks than the chain allows",
    "mqtt": "the agent cannot reach its MQTT broker",
}

ERROR_CODES: dict[str, str] = {**TX_CODES, **OTHER_CODES}

# The ``smart`` command's exit codes.
EXIT_OK = 0
EXIT_ERROR = 1  # any error, including a transaction refused before the mempool
EXIT_USAGE = 2  # the command line itself (click's convention)
EXIT_TX_FAILED = 3  # the transaction was committed but failed (it paid its fee)
EXIT_ABORTED = 130

_WIDE = re.compile(r"(?:.*_)?(?:height|nonce|gas|fee|balance|amount|price|supply|escrow|"
                   r"ms|blocks|ttl|window|epoch|stake|collateral|deposit|shares|power|units|"
                   r"allowance|reward|paid|locked|start|end|until|completion|expiry|deadline|"
                   r"changed_at|finished|fuel)(?:_.*)?")
_SMALL = re.compile(r"(?:.*(?:_bps|_index|_count|_size|_bytes|decimals|_hpc|_name|_hash|_id)|"
                    r"missed_blocks)")
MAX_SAFE = (1 << 53) - 1


def is_wide(name: str) -> bool:
    """Whether a field of this name holds a 64-bit number (so must be a string)."""
    return bool(_WIDE.fullmatch(name)) and not _SMALL.fullmatch(name)


def violations(doc: Any) -> list[str]:
    """Where ``doc`` (a parsed JSON answer) breaks the contract; empty when it keeps it."""
    if not isinstance(doc, dict):
        return [f"the document is {type(doc).__name__}, not an object"]
    found: list[str] = []
    if "error" in doc:
        found += _error_violations(doc["error"])
    _walk(doc, "$", found)
    return found


def _error_violations(error: Any) -> list[str]:
    if not isinstance(error, dict):
        return ["$.error is not an object"]
    found = []
    if error.get("code") not in ERROR_CODES:
        found.append(f"$.error.code {error.get('code')!r} is not in the closed list")
    if not isinstance(error.get("message"), str):
        found.append("$.error.message is not a string")
    if not isinstance(error.get("details", {}), dict):
        found.append("$.error.details is not an object")
    return found


# Contract values (a query's results, a call's arguments) are the contract's own typed
# values: an integer there is a Lua 64-bit integer, a string a string (docs/api.md).
CONTRACT_VALUES = frozenset({"results", "args", "init_args"})


def _walk(v: Any, path: str, found: list[str], name: str = "") -> None:
    if isinstance(v, dict):
        for k, item in v.items():
            if k not in CONTRACT_VALUES:
                _walk(item, f"{path}.{k}", found, k)
    elif isinstance(v, list):
        for i, item in enumerate(v):
            _walk(item, f"{path}[{i}]", found, name)
    elif isinstance(v, int) and not isinstance(v, bool):
        if abs(v) > MAX_SAFE:
            found.append(f"{path} = {v} is beyond 2^53: it must be a string")
        elif is_wide(name):
            found.append(f"{path} = {v} is a 64-bit quantity: it must be a string")
    elif isinstance(v, float):
        found.append(f"{path} = {v} is a float: the chain has none")
