"""The node's HTTP JSON API (aiohttp).

aiohttp rather than FastAPI: the node is already an asyncio program (the P2P layer will
share its loop), aiohttp adds no validation framework between the wire and our own
codec, and its error path is ours to shape: every error is
``{"error": {"code": ..., "message": ...}}`` with a 4xx status. A 5xx means a bug.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import functools
import json
import logging
import re
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from aiohttp import WSCloseCode, web

from smartchain.api.events import HUB, EventHub, subscribe
from smartchain.api.explorer import add_explorer_routes
from smartchain.api.openapi import openapi_spec
from smartchain.api.render import committed_tx_json, contract_value_json, receipt_json, tx_json
from smartchain.api.views import (
    account_doc,
    account_txs_page,
    block_doc,
    blocks_page,
    events_page,
    parse_event_cursor,
    parse_height_cursor,
    parse_limit,
    parse_tx_cursor,
    search,
)
from smartchain.app import http_queries
from smartchain.contracts.host import ContractError, check_function_name
from smartchain.contracts.vm import CallOutcome
from smartchain.crypto.address import AddressError, from_bech32, to_bech32
from smartchain.modules.contracts.module import contract_info, query_call
from smartchain.modules.contracts.types import MAX_ARGS
from smartchain.modules.query import HttpQuery, QueryError, parse_address
from smartchain.node.config import ApiSettings
from smartchain.node.node import Node
from smartchain.types.errors import Code, TxError

log = logging.getLogger("smartchain.api")
NODE = web.AppKey("node", Node)
MAX_BODY = 8 * 1024 * 1024  # the largest body any route reads (a batch of transactions)
MAX_SMALL_BODY = 1024 * 1024  # any other body: a 64 KiB transaction is 128 KiB of hex
MAX_JSON_DEPTH = 32  # nesting of arrays and objects; our documents need 3
MAX_BATCH = 10_000
QUERY_THREADS = 4  # contract queries and simulations run at once
MAX_QUERIES = 64  # queued or running; beyond that a query is refused with 429
INT64 = 1 << 63
GAS_MARGIN_PCT = 20  # a simulated transaction's gas limit: what it used, plus 20%
GAS_MARGIN = 5_000  # and this
ZERO_ADDRESS = bytes(20)  # the caller of a query that names none
STORAGE_STATUS_PARAMS = ("storage_epoch_blocks", "storage_min_price", "storage_slash_bps",
                         "storage_audit_segments", "storage_audit_window",
                         "storage_repair_bps", "storage_receipt_ttl", "storage_max_columns",
                         "storage_max_segments", "storage_accept_ttl")

_TX_STATUS = {
    Code.MALFORMED: 400,
    Code.TX_TOO_LARGE: 413,
    Code.DUPLICATE: 409,
    Code.MEMPOOL_FULL: 429,
}


class ApiError(QueryError):
    """A client error of a core route (a module's query raises ``QueryError`` itself)."""


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def tx_error(exc: TxError) -> ApiError:
    return ApiError(_TX_STATUS.get(exc.code, 422), exc.code.slug, exc.message)


@web.middleware
async def errors_as_json(request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                         ) -> web.StreamResponse:
    """Every error as the documented JSON body. Client errors are answered, never logged;
    anything else is a bug: a 500 and one traceback in the log."""
    try:
        return await handler(request)
    except QueryError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status, "bad_request")
        response = error_response(exc.status, code, exc.reason)
        if "Allow" in exc.headers:  # a 405 names the methods the path does take
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error (this is a bug; see node log)")


def _node(request: web.Request) -> Node:
    return request.app[NODE]


async def _body(request: web.Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (before reading it when the
    client announced its length)."""
    too_large = ApiError(413, "body_too_large", f"request body too large: at most {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise too_large from exc
    if len(body) > limit:
        raise too_large
    return body


# A JSON string, or its unterminated rest: always matches, so the scan stays linear.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
# Brackets only, both kinds as one: nesting is counted whatever the kind.
_BRACKETS = bytes.maketrans(b"{}", b"[]"), bytes(b for b in range(256) if b not in b"[]{}")


def _check_depth(body: bytes) -> None:
    """Refuse JSON nested deeper than ``MAX_JSON_DEPTH`` before parsing it: the parser
    recurses once per level, so depth is a cost the client chooses. Strings are dropped
    (brackets in them are text), then each pass removes the innermost pairs, in C; what
    is left unpaired (malformed JSON, for the parser to report) counts as nesting too."""
    shape = _JSON_STRING.sub(b"", body).translate(*_BRACKETS)
    passes = 0
    while passes <= MAX_JSON_DEPTH:
        shorter = shape.replace(b"[]", b"")
        if shorter == shape:
            break
        shape, passes = shorter, passes + 1
    if passes + shape.count(b"[") > MAX_JSON_DEPTH:
        raise ApiError(400, "too_deep", "request body is not JSON nested at most "
                       f"{MAX_JSON_DEPTH} levels deep")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


async def _json_body(request: web.Request, limit: int = MAX_SMALL_BODY) -> Any:
    """The one way a route reads a JSON body: size (413), depth, then syntax (400)."""
    body = await _body(request, limit)
    try:
        text = body.decode()  # RFC 8259: JSON between systems is UTF-8
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_json", "request body is not UTF-8 text") from exc
    _check_depth(body)
    try:
        # fractions parse exactly: 5.0 is the integer 5 (as JSON Schema says), 1.5 is refused
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError, NaN or Infinity, a 5000-digit integer
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
            raw = await _body(request, MAX_SMALL_BODY)
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
    doc = await _json_body(request, MAX_BODY)
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
    results: list[dict[str, Any]] = []
    for r in await _node(request).submit_many_async(raws):
        if isinstance(r, TxError):
            results.append({"error": {"code": r.code.slug, "message": r.message}})
        else:
            assert r is not None  # without may_check every transaction is checked
            results.append({"hash": r.hex(), "status": "pending"})
    return web.json_response({"results": results})


def gas_wanted(gas_used: int, most: int) -> int:
    """The gas limit to send a simulated transaction with: what it used plus a margin
    (``GAS_MARGIN_PCT`` percent and ``GAS_MARGIN``), since what a contract call costs can
    change with the state between simulation and block. Never above ``most``."""
    return min(most, gas_used + gas_used * GAS_MARGIN_PCT // 100 + GAS_MARGIN)


def _simulate_flag(doc: dict[str, Any], name: str, word: str) -> bool:
    value = doc.get(name)
    if value is None:
        return False
    if value != word:
        raise ApiError(400, "malformed", f'"{name}" is either absent or "{word}"')
    return True


async def post_tx_simulate(request: web.Request) -> web.Response:
    """What a transaction would do in the next block, run on a throw-away copy of the
    latest state in a query thread (at most ``MAX_QUERIES`` at once). Unsigned (64 zero
    bytes of signature) is fine; ``"nonce": "next"`` and ``"gas_limit": "max"`` fill
    those fields in. Refused (4xx) as ``POST /v1/txs`` would refuse it; otherwise 200
    with the receipt it would get, ``ok`` or not, and ``gas_wanted``."""
    node = _node(request)
    doc = await _json_body(request)
    raw = _hex_field(doc, "tx")
    next_nonce = _simulate_flag(doc, "nonce", "next")
    max_gas = _simulate_flag(doc, "gas_limit", "max")
    try:
        tx, receipt = await request.app[QUERIES].run(
            functools.partial(node.simulate, next_nonce=next_nonce, max_gas=max_gas), raw)
    except TxError as exc:
        raise tx_error(exc) from exc
    params = node.chain.params
    out = receipt_json(receipt)
    out.update(gas_wanted=gas_wanted(receipt.gas_used, min(params.max_tx_gas,
                                                           params.max_block_gas)),
               gas_limit=tx.gas_limit, nonce=tx.nonce, height=node.chain.height)
    return web.json_response(out)


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
    return web.json_response(block_doc(node, height))


async def get_block(request: web.Request) -> web.Response:
    text = request.match_info["height"]
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) >= 1 << 64:
        raise ApiError(400, "malformed", "height must be a non-negative 64-bit integer")
    return _block_response(_node(request), int(text))


async def get_block_signers(request: web.Request) -> web.Response:
    """The signer set of a height (the staking module's, from committed state): whose
    precommits a commit of that height carries, by index."""
    text = request.match_info["height"]
    if not text.isascii() or not text.isdigit() or len(text) > 20 or int(text) >= 1 << 64:
        raise ApiError(400, "malformed", "height must be a non-negative 64-bit integer")
    try:
        valset = _node(request).sets.at(int(text))
    except ValueError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return web.json_response({
        "height": int(text), "start_height": valset.start_height,
        "total_power": valset.total_power,
        "validators": [{"pubkey": v.public_key.hex(), "power": v.power, "name": v.name}
                       for v in valset.validators]})


async def get_latest_block(request: web.Request) -> web.Response:
    node = _node(request)
    if node.chain.height == 0:
        raise ApiError(404, "not_found", "no block has been produced yet")
    return _block_response(node, node.chain.height)


def _address_param(request: web.Request, name: str = "address") -> bytes:
    return parse_address(request.match_info[name])


async def get_account_view(request: web.Request) -> web.Response:
    return web.json_response(account_doc(_node(request), _address_param(request)))


async def get_blocks(request: web.Request) -> web.Response:
    """Blocks, newest first, a page at a time."""
    limit = parse_limit(request.query)
    return web.json_response(blocks_page(_node(request), limit,
                                         parse_height_cursor(request.query)))


async def get_account_txs(request: web.Request) -> web.Response:
    """The transactions an account sent or took part in, newest first (search index)."""
    address = _address_param(request)
    limit = parse_limit(request.query)
    return web.json_response(account_txs_page(_node(request), address, limit,
                                              parse_tx_cursor(request.query)))


async def get_events(request: web.Request) -> web.Response:
    """Events of a kind, optionally with one attribute's value, newest first."""
    q = request.query
    kind = q.get("kind", "")
    if not kind or len(kind) > 128:
        raise ApiError(400, "malformed", "give ?kind=EVENT_KIND (e.g. token_transfer)")
    where = None
    if "where" in q:
        attr, colon, value = q["where"].partition(":")
        if not attr or not colon:
            raise ApiError(400, "malformed", "where is ATTR:VALUE (e.g. to:smart1...)")
        where = (attr, value)
    limit = parse_limit(q)
    return web.json_response(events_page(_node(request), kind, where, limit,
                                         parse_event_cursor(q)))


async def get_search(request: web.Request) -> web.Response:
    """What a search box's text names (the explorer's search, for any client)."""
    q = request.query.get("q", "")
    if not q or len(q) > 200:
        raise ApiError(400, "malformed", "give ?q= a height, hash, address, token symbol or "
                       "file id (at most 200 characters)")
    return web.json_response(search(_node(request), q))


# --- contracts -------------------------------------------------------------------------


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate escaped in the JSON
        raise ApiError(400, "malformed", f"{what} is not valid Unicode text") from exc


def _json_int(v: Any) -> int | None:
    """An integer however JSON writes it (5, 5.0, 5e0), or None. Out of ±2^64 it is kept a
    Decimal (converting 1e999999999 would build a huge integer) for the range check."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, Decimal) and v.is_finite() and v == v.to_integral_value():
        return int(v) if -(1 << 64) < v < 1 << 64 else None
    return None


def _query_arg(i: int, v: Any) -> Any:
    """A JSON argument as the contract sees it: null, a boolean, a 64-bit integer, a string
    (its UTF-8 bytes) or ``{"hex": ...}`` (raw bytes)."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, Decimal) and not (v.is_finite() and v == v.to_integral_value()):
        raise ApiError(400, "invalid_argument", f"args[{i}]: {v} is not an integer; "
                       "contracts have no floating-point numbers")
    if isinstance(v, int | Decimal):
        n = _json_int(v)
        if n is None or not -INT64 <= n < INT64:
            raise ApiError(400, "invalid_argument",
                           f"args[{i}]: integer {v} does not fit in 64 bits (signed)")
        return n
    if isinstance(v, str):
        return _utf8(v, f"args[{i}]")
    if isinstance(v, dict) and set(v) == {"hex"} and isinstance(v["hex"], str):
        try:
            return binascii.unhexlify(v["hex"])
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, "invalid_argument", f'args[{i}]: "hex" is not valid hex'
                           ) from exc
    kind = "an object" if isinstance(v, dict) else "a list" if isinstance(v, list) else \
        type(v).__name__
    raise ApiError(400, "invalid_argument", f"args[{i}]: a contract argument is null, a "
                   f'boolean, a 64-bit integer, a string or {{"hex": ...}}, not {kind}')


def _query_value(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 19:
        v = int(v)
    v = _json_int(v)
    if v is None or not 0 <= v < INT64:
        raise ApiError(400, "malformed", '"value" must be base units: a non-negative integer '
                       "(or a string of digits) below 2^63")
    return v


class QueryRunner:
    """Contract queries and transaction simulations off the event loop, in threads of their
    own (a query runs until the watchdog stops it, a simulation until its gas runs out) and
    at most ``MAX_QUERIES`` queued or running at once."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(QUERY_THREADS, thread_name_prefix="contract-query")
        self.pending = 0  # touched on the event loop only

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.pending >= MAX_QUERIES:
            raise ApiError(429, "busy", "too many contract queries and simulations in "
                           "progress; retry shortly")
        loop = asyncio.get_running_loop()
        self.pending += 1
        future = self.pool.submit(fn, *args)
        # counted until the work is really over, even if the client has gone away
        future.add_done_callback(lambda _: self._finished(loop))
        return await asyncio.wrap_future(future)

    def _finished(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to count
            loop.call_soon_threadsafe(self._done)

    def _done(self) -> None:
        self.pending -= 1

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


QUERIES = web.AppKey("queries", QueryRunner)


def _run_query(node: Node, address: bytes, function: str, args: list[Any], caller: bytes,
               value: int) -> CallOutcome:
    """In a worker thread: the reader's read transaction is opened and closed here."""
    latest = node.chain.latest
    height, time_ms = (latest.height, latest.time_ms) if latest else \
        (0, node.chain.genesis.time_ms)
    with node.chain.reader() as reader:
        if contract_info(reader, address) is None:
            raise ApiError(404, "not_found", f"no contract at {to_bech32(address)}")
        return query_call(reader, node.chain.params, address, function, args, caller=caller,
                          height=height, time_ms=time_ms, value=value)


async def post_contract_query(request: web.Request) -> web.Response:
    address = _address_param(request)
    doc = await _json_body(request)
    if not isinstance(doc, dict) or not isinstance(doc.get("function"), str):
        raise ApiError(400, "malformed", 'expected a JSON object with a string "function"')
    function = doc["function"]
    try:
        check_function_name(_utf8(function, '"function"'))
    except ContractError as exc:
        raise ApiError(400, "invalid_function", f"cannot call {function!r}: a public "
                       "function name is an identifier not starting with '_', and not "
                       "'init'") from exc
    raw_args = doc.get("args", [])
    if not isinstance(raw_args, list):
        raise ApiError(400, "malformed", '"args" must be a JSON list')
    if len(raw_args) > MAX_ARGS:
        raise ApiError(400, "invalid_argument", f"at most {MAX_ARGS} arguments")
    args = [_query_arg(i, v) for i, v in enumerate(raw_args)]
    size = sum(len(a) for a in args if isinstance(a, bytes))
    limit = _node(request).chain.params.max_tx_bytes
    if size > limit:  # no more than a transaction could carry
        raise ApiError(400, "invalid_argument", f"arguments total {size} bytes, at most {limit}")
    caller = ZERO_ADDRESS
    if doc.get("caller") is not None:
        if not isinstance(doc["caller"], str):
            raise ApiError(400, "invalid_address", '"caller" must be a bech32 address')
        try:
            caller = from_bech32(doc["caller"])
        except AddressError as exc:
            raise ApiError(400, "invalid_address", f"caller: {exc}") from exc
    value = _query_value(doc.get("value"))
    outcome = await request.app[QUERIES].run(_run_query, _node(request), address, function,
                                             args, caller, value)
    if not outcome.ok:
        raise ApiError(422, "contract_failed", f"contract call failed: {outcome.error} "
                       f"(gas used {outcome.gas_used})")
    return web.json_response({"ok": True, "gas_used": outcome.gas_used,
                              "results": [contract_value_json(v) for v in outcome.results]})


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
        "contract_call_gas": chain.params.contract_call_gas,
        "contract_code_byte_gas": chain.params.contract_code_byte_gas,
        "max_tx_gas": chain.params.max_tx_gas,
        "max_tx_bytes": chain.params.max_tx_bytes,
        "compute_scan_gas": chain.params.compute_scan_gas,
        "compute_min_stake": str(chain.params.compute_min_stake),
        "compute_max_tasks": chain.params.compute_max_tasks,
        "compute_max_extra_replicas": chain.params.compute_max_extra_replicas,
        "compute_reveal_blocks": chain.params.compute_reveal_blocks,
        **{name: getattr(chain.params, name) for name in STORAGE_STATUS_PARAMS},
        "storage_min_collateral": str(chain.params.storage_min_collateral),
        "storage_collateral_per_gib": str(chain.params.storage_collateral_per_gib),
        "storage_epoch": (latest.height if latest else 0)
        // max(1, chain.params.storage_epoch_blocks),
        "block_time_ms": node.config.consensus.block_time_ms,
        "moniker": node.config.moniker,
        "peers": node.peer_count(),
        "signer": node.is_signer,
        "validator": to_bech32(node.key.address),
    })


async def get_genesis(request: web.Request) -> web.Response:
    """The genesis document as genesis.json holds it: what a joining node starts from
    (``smart genesis export``, ``smart node init --genesis URL``)."""
    genesis = _node(request).chain.genesis
    return web.json_response(genesis.to_json(),
                             headers={"X-Genesis-Hash": genesis.hash().hex()})


async def get_metrics(request: web.Request) -> web.Response:
    body = _node(request).metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_spec())


def _serve(query: HttpQuery) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The route of a module's query: parameters parsed (400), the handler run over a view
    of the latest state, its answer as JSON (or its ``QueryError``)."""
    async def handle(request: web.Request) -> web.Response:
        args = query.parse(request.match_info, request.query)
        with _node(request).chain.reader() as reader:
            return web.json_response(query.handler(reader, args))
    return handle


CORE_ROUTES: list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]] = [
    ("POST", "/v1/txs", post_tx),
    ("POST", "/v1/txs/batch", post_tx_batch),
    ("POST", "/v1/txs/simulate", post_tx_simulate),
    ("GET", "/v1/txs/{hash}", get_tx),
    ("GET", "/v1/blocks", get_blocks),
    ("GET", "/v1/blocks/latest", get_latest_block),
    ("GET", "/v1/blocks/{height}", get_block),
    ("GET", "/v1/blocks/{height}/signers", get_block_signers),
    ("GET", "/v1/accounts/{address}", get_account_view),
    ("GET", "/v1/accounts/{address}/txs", get_account_txs),
    ("GET", "/v1/events", get_events),
    ("GET", "/v1/search", get_search),
    ("POST", "/v1/contracts/{address}/query", post_contract_query),
    ("GET", "/v1/status", get_status),
    ("GET", "/v1/genesis", get_genesis),
    ("GET", "/metrics", get_metrics),
    ("GET", "/openapi.json", get_openapi),
]
# Every route: the core's, then each module's queries as the app lists them.
ROUTES = CORE_ROUTES + [("GET", q.path, _serve(q)) for q in http_queries()]


def _routed(path: str) -> str:
    """``path`` as registered: a parameter never matches the literal of a sibling route
    (``{hash}`` is not ``batch`` in /v1/txs/{hash}), so each literal path is a resource of
    its own and a method it lacks is a 405 naming its methods, not a malformed parameter."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if not part.startswith("{"):
            continue
        literals = sorted({other[i] for other in (p.split("/") for _, p, _ in ROUTES)
                           if len(other) == len(parts) and not other[i].startswith("{")
                           and other[:i] == parts[:i] and other[i + 1:] == parts[i + 1:]})
        if literals:
            names = "|".join(re.escape(lit) for lit in literals)
            parts[i] = f"{{{part[1:-1]}:(?!(?:{names})(?:/|$))[^{{}}/]+}}"
    return "/".join(parts)


def create_app(node: Node, settings: ApiSettings | None = None) -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY)
    app[NODE] = node
    app[QUERIES] = QueryRunner()
    app[HUB] = EventHub(node, settings or node.config.api)
    for method, path, handler in ROUTES:
        app.router.add_route(method, _routed(path), handler)
    app.router.add_get("/v1/subscribe", subscribe)
    add_explorer_routes(app, node)
    app.on_startup.append(_start_hub)
    app.on_shutdown.append(_stop_hub)
    app.on_cleanup.append(_stop_queries)
    return app


async def _start_hub(app: web.Application) -> None:
    app[HUB].start()


async def _stop_hub(app: web.Application) -> None:
    """Subscribers are told the node is going away (1001), not left hanging."""
    hub = app[HUB]
    hub.stop()
    for ws in list(hub.sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"node shutting down")


async def _stop_queries(app: web.Application) -> None:
    app[QUERIES].close()
