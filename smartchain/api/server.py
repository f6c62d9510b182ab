"""The node's HTTP JSON API (aiohttp).

aiohttp rather than FastAPI: the node is already an asyncio program (the P2P layer will
share its loop), aiohttp adds no validation framework between the wire and our own
codec, and its error path is ours to shape: every error is
``{"error": {"code": ..., "message": ...}}`` with a 4xx status. A 5xx means a bug.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from smartchain.api.openapi import openapi_spec
from smartchain.api.render import block_json, committed_tx_json, token_json, tx_json
from smartchain.crypto.address import AddressError, from_bech32, to_bech32
from smartchain.node.node import Node
from smartchain.state.errors import Code, TxError
from smartchain.state.modules.bank import get_account
from smartchain.state.modules.tokens import (
    SYMBOL_RE,
    TokenInfo,
    all_tokens,
    allowance,
    holdings,
    token_balance,
    token_info,
)
from smartchain.state.store import StateReader
from smartchain.types.amount import format_hpc, format_units

log = logging.getLogger("smartchain.api")
NODE = web.AppKey("node", Node)
MAX_BODY = 8 * 1024 * 1024
MAX_BATCH = 10_000

_TX_STATUS = {
    Code.MALFORMED: 400,
    Code.TX_TOO_LARGE: 413,
    Code.DUPLICATE: 409,
    Code.MEMPOOL_FULL: 429,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def tx_error(exc: TxError) -> ApiError:
    return ApiError(_TX_STATUS.get(exc.code, 422), exc.code.slug, exc.message)


@web.middleware
async def errors_as_json(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status, "bad_request")
        return error_response(exc.status, code, exc.reason)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (this is a bug; see node log)")


def _node(request: web.Request) -> Node:
    return request.app[NODE]


async def _json_body(request: web.Request) -> Any:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise ApiError(413, "body_too_large", "request body too large") from exc
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"request body is not valid JSON: {exc}") from exc


def _hex_field(doc: Any, name: str) -> bytes:
    if not isinstance(doc, dict) or not isinstance(doc.get(name), str):
        raise ApiError(400, "malformed", f'expected a JSON object with a hex string "{name}"')
    try:
        return binascii.unhexlify(doc[name])  # unlike bytes.fromhex, refuses whitespace
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "malformed", f'"{name}" is not valid hex') from exc


def _hash_param(text: str) -> bytes:
    try:
        raw = binascii.unhexlify(text)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "malformed", "hash must be 64 hex characters") from exc
    if len(raw) != 32:
        raise ApiError(400, "malformed", "hash must be 64 hex characters")
    return raw


async def post_tx(request: web.Request) -> web.Response:
    node = _node(request)
    try:
        if request.content_type == "application/octet-stream":
            raw = await request.read()
        else:
            raw = _hex_field(await _json_body(request), "tx")
    except ApiError as exc:
        node.metrics.txs_rejected.labels(exc.code).inc()
        raise
    try:
        tx_hash = node.submit(raw)
    except TxError as exc:
        raise tx_error(exc) from exc
    return web.json_response({"hash": tx_hash.hex(), "status": "pending"}, status=202)


async def post_tx_batch(request: web.Request) -> web.Response:
    doc = await _json_body(request)
    txs = doc.get("txs") if isinstance(doc, dict) else None
    if not isinstance(txs, list) or not all(isinstance(t, str) for t in txs):
        raise ApiError(400, "malformed", 'expected {"txs": [hex, ...]}')
    if len(txs) > MAX_BATCH:
        raise ApiError(413, "batch_too_large", f"at most {MAX_BATCH} transactions per batch")
    raws: list[bytes] = []
    for i, t in enumerate(txs):
        try:
            raws.append(binascii.unhexlify(t))
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, "malformed", f"txs[{i}] is not valid hex") from exc
    results = []
    for r in await _node(request).submit_many_async(raws):
        if isinstance(r, TxError):
            results.append({"error": {"code": r.code.slug, "message": r.message}})
        else:
            results.append({"hash": r.hex(), "status": "pending"})
    return web.json_response({"results": results})


async def get_tx(request: web.Request) -> web.Response:
    node = _node(request)
    tx_hash = _hash_param(request.match_info["hash"])
    found = node.chain.get_tx(tx_hash)
    if found is not None:
        return web.json_response(committed_tx_json(*found))
    pending = node.mempool.by_hash.get(tx_hash)
    if pending is not None:
        out = tx_json(pending.tx)
        out["status"] = "pending"
        return web.json_response(out)
    raise ApiError(404, "not_found", f"no transaction {tx_hash.hex()}")


def _block_response(node: Node, height: int) -> web.Response:
    block = node.chain.get_block(height)
    if block is None:
        raise ApiError(404, "not_found", f"no block at height {height} (latest is "
                       f"{node.chain.height})")
    return web.json_response(block_json(block))


async def get_block(request: web.Request) -> web.Response:
    text = request.match_info["height"]
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise ApiError(400, "malformed", "height must be a non-negative integer")
    return _block_response(_node(request), int(text))


async def get_latest_block(request: web.Request) -> web.Response:
    node = _node(request)
    if node.chain.height == 0:
        raise ApiError(404, "not_found", "no block has been produced yet")
    return _block_response(node, node.chain.height)


def _address_param(request: web.Request, name: str = "address") -> bytes:
    try:
        return from_bech32(request.match_info[name])
    except AddressError as exc:
        raise ApiError(400, "invalid_address", str(exc)) from exc


def _holdings_json(reader: StateReader, address: bytes) -> list[dict[str, Any]]:
    out = []
    for symbol, balance in holdings(reader, address):
        info = token_info(reader, symbol)
        decimals = info.decimals if info is not None else 0
        out.append({"symbol": symbol, "balance": str(balance), "decimals": decimals,
                    "amount": format_units(balance, decimals)})
    return out


async def get_account_view(request: web.Request) -> web.Response:
    node = _node(request)
    address = _address_param(request)
    reader = node.chain.reader()
    try:
        acct = get_account(reader, address)
        tokens = _holdings_json(reader, address)
    finally:
        reader.close()
    return web.json_response({
        "address": to_bech32(address),
        "balance": str(acct.balance),
        "balance_hpc": format_hpc(acct.balance),
        "nonce": acct.nonce,
        "pending_nonce": node.pending_nonce(address),
        "tokens": tokens,
    })


# --- tokens ----------------------------------------------------------------------------


def _symbol_param(request: web.Request) -> str:
    symbol = request.match_info["symbol"]
    if not SYMBOL_RE.fullmatch(symbol):
        raise ApiError(400, "invalid_symbol", f"invalid token symbol {symbol!r}: 2-10 "
                       "characters, an upper-case letter then upper-case letters or digits")
    return symbol


def _require_token(reader: StateReader, symbol: str) -> TokenInfo:
    info = token_info(reader, symbol)
    if info is None:
        hint = " (HPC is the native coin: see /v1/accounts)" if symbol == "HPC" else ""
        raise ApiError(404, "not_found", f"no token {symbol}{hint}")
    return info


def _read(request: web.Request) -> StateReader:
    return _node(request).chain.reader()


async def get_tokens(request: web.Request) -> web.Response:
    reader = _read(request)
    try:
        tokens = all_tokens(reader)
    finally:
        reader.close()
    return web.json_response({"tokens": [token_json(t) for t in tokens]})


async def get_token(request: web.Request) -> web.Response:
    symbol = _symbol_param(request)
    reader = _read(request)
    try:
        info = _require_token(reader, symbol)
    finally:
        reader.close()
    return web.json_response(token_json(info))


async def get_token_balance(request: web.Request) -> web.Response:
    symbol = _symbol_param(request)
    address = _address_param(request)
    reader = _read(request)
    try:
        info = _require_token(reader, symbol)
        balance = token_balance(reader, symbol, address)
    finally:
        reader.close()
    return web.json_response({
        "symbol": symbol, "address": to_bech32(address), "balance": str(balance),
        "decimals": info.decimals, "amount": format_units(balance, info.decimals)})


async def get_token_allowance(request: web.Request) -> web.Response:
    symbol = _symbol_param(request)
    owner = _address_param(request, "owner")
    spender = _address_param(request, "spender")
    reader = _read(request)
    try:
        info = _require_token(reader, symbol)
        allowed = allowance(reader, symbol, owner, spender)
    finally:
        reader.close()
    return web.json_response({
        "symbol": symbol, "owner": to_bech32(owner), "spender": to_bech32(spender),
        "allowance": str(allowed), "decimals": info.decimals,
        "amount": format_units(allowed, info.decimals)})


async def get_status(request: web.Request) -> web.Response:
    node = _node(request)
    chain = node.chain
    latest = chain.latest  # one read: height, hash and root all come from this header
    return web.json_response({
        "chain_id": chain.chain_id,
        "height": latest.height if latest else 0,
        "latest_hash": (latest.hash() if latest else bytes(32)).hex(),
        "latest_time_ms": latest.time_ms if latest else None,
        "state_root": (latest.state_root if latest else chain.state_root).hex(),
        "genesis_hash": chain.genesis.hash().hex(),
        "mempool_size": len(node.mempool),
        "min_gas_price": chain.params.min_gas_price,
        "tx_base_gas": chain.params.tx_base_gas,
        "gas_per_tx_byte": chain.params.gas_per_tx_byte,
        "gas_per_write": chain.params.gas_per_write,
        "token_issue_gas": chain.params.token_issue_gas,
        "block_time_ms": node.config.block_time_ms,
        "moniker": node.config.moniker,
        "peers": node.peer_count(),
        "signer": node.is_signer,
        "validator": to_bech32(node.key.address),
    })


async def get_metrics(request: web.Request) -> web.Response:
    body = _node(request).metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_spec())


ROUTES: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
    ("POST", "/v1/txs", post_tx),
    ("POST", "/v1/txs/batch", post_tx_batch),
    ("GET", "/v1/txs/{hash}", get_tx),
    ("GET", "/v1/blocks/latest", get_latest_block),
    ("GET", "/v1/blocks/{height}", get_block),
    ("GET", "/v1/accounts/{address}", get_account_view),
    ("GET", "/v1/tokens", get_tokens),
    ("GET", "/v1/tokens/{symbol}", get_token),
    ("GET", "/v1/tokens/{symbol}/balances/{address}", get_token_balance),
    ("GET", "/v1/tokens/{symbol}/allowances/{owner}/{spender}", get_token_allowance),
    ("GET", "/v1/status", get_status),
    ("GET", "/metrics", get_metrics),
    ("GET", "/openapi.json", get_openapi),
]


def create_app(node: Node) -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY)
    app[NODE] = node
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    return app
