"""The blockchain browser every node serves at ``/``: server-rendered HTML.

Each page reads through the functions the JSON API answers with (``views`` for the core,
each module's ``HttpQuery`` handler for the rest), so the page and ``/v1/...`` never
disagree. Everything shown is escaped (``esc``): token names, monikers, contract source and
event attributes are user-controlled. The only script (static/explorer.js) adds new blocks
to the dashboard from ``/v1/subscribe``, writing text, never HTML.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from smartchain.api.render import committed_tx_json, tx_json
from smartchain.api.views import (
    account_doc,
    account_txs_page,
    block_doc,
    blocks_page,
    events_page,
    parse_event_cursor,
    parse_height_cursor,
    parse_tx_cursor,
    search,
)
from smartchain.app import http_queries
from smartchain.modules.query import QueryError, parse_address, parse_hex32, parse_u64
from smartchain.node.node import Node
from smartchain.types.amount import format_hpc

STATIC = Path(__file__).parent / "static"
PAGE = 20  # rows of a paged table
DASHBOARD_BLOCKS = 10  # the dashboard's latest blocks (and the window of its rates)
LATEST_TXS = 10  # the dashboard's latest transactions ...
LATEST_TXS_BLOCKS = 300  # ... looked for in at most this many recent blocks
QUERIES = {q.operation_id: q for q in http_queries()}
NAV = (("/", "Dashboard"), ("/blocks", "Blocks"), ("/validators", "Validators"),
       ("/tokens", "Tokens"), ("/contracts", "Contracts"), ("/storage", "Storage"),
       ("/compute", "Compute"), ("/market", "Market"), ("/devices", "Devices"),
       ("/data", "Data"), ("/gov", "Governance"))


class Html(str):
    """Markup that is already safe: everything else is escaped on the way in."""


def esc(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[object]) -> Html:
    return Html("".join(esc(p) for p in parts))


def link(href: str, text: object) -> Html:
    return Html(f'<a href="{esc(href)}">{esc(text)}</a>')


def seg(value: object) -> str:
    """A path segment of a link: quoted, so a value cannot change the path."""
    return quote(str(value), safe="")


def short(text: str, keep: int = 10) -> str:
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-6:]}"


def addr(address: str) -> Html:
    return link(f"/accounts/{seg(address)}", short(address, 12))


def table(headers: Iterable[str], rows: Iterable[Iterable[object]], *,
          body_id: str = "", empty: str = "none") -> Html:
    head = join(Html(f"<th>{esc(h)}</th>") for h in headers)
    body = join(Html("<tr>" + join(Html(f"<td>{esc(c)}</td>") for c in row) + "</tr>")
                for row in rows)
    ident = f' id="{esc(body_id)}"' if body_id else ""
    if not body:
        body = Html(f'<tr class="empty"><td colspan="99">{esc(empty)}</td></tr>')
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody{ident}>{body}</tbody></table>")


def kv(pairs: Iterable[tuple[str, object]]) -> Html:
    rows = join(Html(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>") for k, v in pairs)
    return Html(f'<table class="kv">{rows}</table>')


def pre(value: object) -> Html:
    text = value if isinstance(value, str) else json.dumps(value, indent=2)
    return Html(f"<pre>{esc(text)}</pre>")


def section(title: str, *body: object) -> Html:
    return Html(f"<section><h2>{esc(title)}</h2>{join(body)}</section>")


def pager(path: str, doc: dict[str, Any], **params: str) -> Html:
    nxt = doc.get("next_cursor")
    if not nxt:
        return Html("")
    query = urlencode({**params, "cursor": nxt})
    return Html(f'<p class="pager">{link(f"{path}?{query}", "older →")}</p>')


def page(title: str, body: object, *, status: int = 200, live: bool = False) -> web.Response:
    nav = join(Html(f"<li>{link(href, name)}</li>") for href, name in NAV)
    script = '<script src="/static/explorer.js" defer></script>' if live else ""
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · Smartchain explorer</title>
<link rel="stylesheet" href="/static/explorer.css">{script}</head>
<body><header><a class="brand" href="/">Smartchain</a><ul class="nav">{nav}</ul>
<form class="search" action="/search" method="get" role="search">
<input name="q" id="search" placeholder="height, hash, address, token or file id"
aria-label="search"><button type="submit">Search</button></form></header>
<main><h1>{esc(title)}</h1>{esc(body)}</main>
<footer>Served by this node · <a href="/openapi.json">API</a></footer></body></html>"""
    return web.Response(text=doc, status=status, content_type="text/html", charset="utf-8",
                        headers={"Content-Security-Policy": "default-src 'self'; "
                                 "connect-src 'self' ws: wss:; object-src 'none'; "
                                 "base-uri 'none'; form-action 'self'"})


def query(node: Node, operation_id: str, path: dict[str, str] | None = None,
          params: dict[str, str] | None = None) -> Any:
    """A module's query, exactly as its JSON route runs it (parameters parsed from text)."""
    q = QUERIES[operation_id]
    args = q.parse(path or {}, params or {})
    with node.chain.reader() as reader:
        return q.handler(reader, args)


Handler = Callable[[Node, web.Request], web.Response]


def _serve(node: Node, render: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A page; a client error (a bad address, an unknown block) is an HTML page too."""
    async def handle(request: web.Request) -> web.Response:
        try:
            return render(node, request)
        except QueryError as exc:
            return page("Not found" if exc.status == 404 else "Bad request",
                        Html(f'<p class="error">{esc(exc.message)}</p>'), status=exc.status)
    return handle


# --- pages ---------------------------------------------------------------------------------


def dashboard(node: Node, request: web.Request) -> web.Response:
    chain = node.chain
    blocks = blocks_page(node, DASHBOARD_BLOCKS, None)["blocks"]
    rows = blocks  # newest first
    if len(rows) >= 2:
        span = int(rows[0]["time_ms"]) - int(rows[-1]["time_ms"])
        txs = sum(r["tx_count"] for r in rows[:-1])
        block_time = f"{span / (len(rows) - 1) / 1000:.2f} s" if span else "-"
        tps = f"{txs * 1000 / span:.1f}" if span else "-"
    else:
        block_time, tps = "-", "-"
    vals = query(node, "listValidators")["validators"]
    tiers: dict[str, int] = {}
    for v in vals:
        tiers[v["tier"]] = tiers.get(v["tier"], 0) + 1
    stats = Html('<div class="stats">' + join(
        Html(f'<div class="stat"><span class="label">{esc(k)}</span>'
             f'<span class="value"{ident}>{esc(v)}</span></div>')
        for k, v, ident in (("height", chain.height, ' id="height"'),
                            ("chain", chain.chain_id, ""),
                            ("block time", block_time, ""), ("tx/s", tps, ""),
                            ("validators", len(vals), ""))) + "</div>")
    tier_rows = [(t, n) for t, n in sorted(tiers.items())]
    body = join([
        stats,
        section("Latest transactions", table(TX_HEADERS, tx_rows(latest_txs(node)),
                                             body_id="latest-txs")),
        section("Latest blocks", Html('<p class="live" id="live">live updates: '
                                      'connecting…</p>'),
                table(("height", "hash", "txs", "proposer", "time (ms)"),
                      [(link(f"/blocks/{b['height']}", b["height"]),
                        link(f"/blocks/{b['height']}", short(b["hash"])), b["tx_count"],
                        addr(b["proposer_address"]), b["time_ms"]) for b in rows],
                      body_id="latest-blocks"),
                Html(f'<p>{link("/blocks", "all blocks →")}</p>')),
        section("Validators by tier", table(("tier", "count"), tier_rows),
                Html(f'<p>{link("/validators", "all validators →")}</p>')),
    ])
    return page("Dashboard", body, live=True)


def latest_txs(node: Node) -> list[dict[str, Any]]:
    """The newest transactions, from the latest blocks (no index needed)."""
    chain = node.chain
    out: list[dict[str, Any]] = []
    height = chain.height
    while height >= max(1, chain.base, chain.height - LATEST_TXS_BLOCKS) \
            and len(out) < LATEST_TXS:
        block = chain.get_block(height)
        if block is not None and block.txs:
            out += reversed(block_doc(node, height)["transactions"])
        height -= 1
    return out[:LATEST_TXS]


def blocks(node: Node, request: web.Request) -> web.Response:
    doc = blocks_page(node, PAGE, parse_height_cursor(request.query))
    rows = [(link(f"/blocks/{b['height']}", b["height"]),
             link(f"/blocks/{b['height']}", short(b["hash"])), b["tx_count"],
             addr(b["proposer_address"]), b["time_ms"]) for b in doc["blocks"]]
    return page("Blocks", join([
        table(("height", "hash", "txs", "proposer", "time (ms)"), rows),
        pager("/blocks", doc)]))


def tx_rows(txs: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [(link(f"/txs/{t['hash']}", short(t["hash"])),
             link(f"/blocks/{t['height']}", t["height"]), addr(t["sender"]), t["kind"],
             "ok" if t["ok"] else f"failed: {t['code_name']}", t["fee_hpc"])
            for t in txs]


TX_HEADERS = ("hash", "block", "sender", "kind", "result", "fee (HPC)")


def events_list(events: list[dict[str, Any]]) -> Html:
    if not events:
        return Html("")
    items = join(Html(f"<li><code>{esc(e['kind'])}</code> " + join(
        Html(f'<span class="attr">{esc(k)}=<b>{esc(v)}</b></span> ')
        for k, v in e["attributes"].items()) + "</li>") for e in events)
    return Html(f'<ul class="events">{items}</ul>')


def block(node: Node, request: web.Request) -> web.Response:
    height = parse_u64("height")(request.match_info["height"])
    doc = block_doc(node, height)
    h = doc["header"]
    nav = []
    if height > 1:
        nav.append(link(f"/blocks/{height - 1}", "← previous"))
    if height < node.chain.height:
        nav.append(link(f"/blocks/{height + 1}", "next →"))
    events = join(Html(f"<h3>{link('/txs/' + t['hash'], short(t['hash']))}</h3>")
                  + events_list(t["events"]) for t in doc["transactions"] if t["events"])
    body = join([
        Html('<p class="pager">' + join(Html(f"{n} ") for n in nav) + "</p>"),
        kv([("hash", doc["hash"]), ("time (ms)", h["time_ms"]),
            ("proposer", addr(h["proposer_address"])), ("transactions", doc["tx_count"]),
            ("previous hash", h["prev_hash"]), ("state root", h["state_root"]),
            ("signatures", len(doc["last_commit"]["signatures"]))]),
        section("Transactions", table(TX_HEADERS, tx_rows(doc["transactions"]))),
        section("Events", events or Html("<p>none</p>")),
    ])
    return page(f"Block {height}", body)


def transaction(node: Node, request: web.Request) -> web.Response:
    tx_hash = parse_hex32("hash")(request.match_info["hash"])
    found = node.chain.get_tx(tx_hash)
    if found is not None:
        doc = committed_tx_json(*found)
    elif tx_hash in node.mempool.by_hash:
        doc = tx_json(node.mempool.by_hash[tx_hash].tx)
        doc["status"] = "pending"
    else:
        raise QueryError(404, "not_found", f"no transaction {tx_hash.hex()}")
    pairs: list[tuple[str, object]] = [("hash", doc["hash"]), ("status", doc["status"])]
    if "height" in doc:
        pairs.append(("block", link(f"/blocks/{doc['height']}", doc["height"])))
    pairs += [("sender", addr(doc["sender"])), ("kind", doc["kind"]), ("nonce", doc["nonce"]),
              ("gas limit", doc["gas_limit"]), ("gas price", doc["gas_price"])]
    parts: list[object] = [kv(pairs), section("Payload", pre(doc["payload"]))]
    receipt = doc.get("receipt")
    if receipt is not None:
        parts.append(section("Receipt", kv([
            ("result", "ok" if receipt["ok"] else f"failed: {receipt['code_name']}"),
            ("log", receipt["log"]), ("gas used", receipt["gas_used"]),
            ("fee (base units)", receipt["fee"])]), events_list(receipt["events"])))
    return page("Transaction", join(parts))


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    """A part of a page that needs the index: the page still shows without it."""
    try:
        return fn()
    except QueryError:
        return default


def account(node: Node, request: web.Request) -> web.Response:
    text = request.match_info["address"]
    address = parse_address(text)
    doc = account_doc(node, address)
    a = doc["address"]
    txs = _safe(lambda: account_txs_page(node, address, PAGE,
                                         parse_tx_cursor(request.query)), None)
    deals = query(node, "listStorageDeals", params={"owner": a})["deals"]
    jobs = _safe(lambda: events_page(node, "compute_job_post", ("owner", a), PAGE, None)
                 ["events"], [])
    contracts = _safe(lambda: events_page(node, "contract_deploy", ("creator", a), PAGE,
                                          None)["events"], [])
    devices = query(node, "listOwnedDevices", {"address": a})["devices"]
    agreements = query(node, "listAgreements", {"address": a})["agreements"]
    delegations = query(node, "getDelegations", {"address": a})["delegations"]
    parts: list[object] = [
        kv([("address", a), ("balance", f"{doc['balance_hpc']} HPC"), ("nonce", doc["nonce"])]),
        section("Tokens", table(("token", "amount"), [
            (link(f"/tokens/{t['symbol']}", t["symbol"]), t["amount"]) for t in doc["tokens"]])),
    ]
    if txs is None:
        parts.append(section("Transactions", Html("<p>this node keeps no search index</p>")))
    else:
        parts.append(section("Transactions", table((*TX_HEADERS, "role"), [
            (*row, t.get("role", "")) for row, t in zip(tx_rows(txs["txs"]), txs["txs"],
                                                        strict=True)]),
            pager(f"/accounts/{seg(a)}", txs)))
    parts += [
        section("Storage deals", table(("file id", "status", "size", "escrow (HPC)"), [
            (link(f"/storage/deals/{d['file_id']}", short(d["file_id"])), d["status"],
             d["size"], d["escrow_hpc"]) for d in deals])),
        section("Compute jobs", table(("job", "tasks", "block"), [
            (link(f"/compute/jobs/{e['attributes']['job']}", e["attributes"]["job"]),
             e["attributes"].get("tasks", ""), link(f"/blocks/{e['height']}", e["height"]))
            for e in jobs])),
        section("Contracts deployed", table(("contract", "block"), [
            (link(f"/contracts/{seg(e['attributes']['contract'])}",
                  e["attributes"]["contract"]), link(f"/blocks/{e['height']}", e["height"]))
            for e in contracts])),
        section("Devices", table(("device", "model", "serial", "revoked"), [
            (link(f"/devices/{d['pubkey']}", short(d["pubkey"])), d["model"], d["serial"],
             d["revoked"]) for d in devices])),
        section("Market agreements", table(("id", "service", "provider", "consumer", "status"),
                                           [(link(f"/market/agreements/{g['id']}", g["id"]),
                                             g["service_type"], addr(g["provider"]),
                                             addr(g["consumer"]), g["status"])
                                            for g in agreements])),
        section("Delegations", table(("validator", "amount"), [
            (addr(d["validator"]), d["amount"]) for d in delegations])),
    ]
    return page(f"Account {short(a, 12)}", join(parts))


def validators(node: Node, request: web.Request) -> web.Response:
    doc = query(node, "listValidators")
    rows = [(v["tier"], v["moniker"], addr(v["address"]), v["status"], v["power"],
             v["competence"], f"{v['uptime'] / 100:.2f} %", v["missed_blocks"])
            for v in doc["validators"]]
    return page("Validators", join([
        Html(f"<p>epoch {esc(doc['epoch'])} · height {esc(doc['height'])}</p>"),
        table(("tier", "moniker", "operator", "status", "power", "competence", "uptime",
               "missed"), rows)]))


def tokens(node: Node, request: web.Request) -> web.Response:
    rows = [(link(f"/tokens/{seg(t['symbol'])}", t["symbol"]), t["name"],
             t["supply_amount"], addr(t["issuer"]), t["mintable"])
            for t in query(node, "listTokens")["tokens"]]
    return page("Tokens", table(("symbol", "name", "supply", "issuer", "mintable"), rows))


def token(node: Node, request: web.Request) -> web.Response:
    t = query(node, "getToken", {"symbol": request.match_info["symbol"]})
    transfers = _safe(lambda: events_page(node, "token_transfer", ("symbol", t["symbol"]),
                                          PAGE, parse_event_cursor(request.query)), None)
    parts: list[object] = [kv([
        ("symbol", t["symbol"]), ("name", t["name"]), ("decimals", t["decimals"]),
        ("issuer", addr(t["issuer"])), ("supply", t["supply_amount"]),
        ("max supply", t["max_supply_amount"]), ("mintable", t["mintable"])])]
    if transfers is not None:
        parts.append(section("Transfers", table(("from", "to", "amount", "tx"), [
            (addr(e["attributes"].get("from", "")), addr(e["attributes"].get("to", "")),
             e["attributes"].get("amount", ""), link(f"/txs/{e['tx_hash']}",
                                                      short(e["tx_hash"])))
            for e in transfers["events"]]), pager(f"/tokens/{seg(t['symbol'])}", transfers)))
    return page(f"Token {t['symbol']}", join(parts))


def _deploys(node: Node, request: web.Request) -> dict[str, Any] | None:
    return _safe(lambda: events_page(node, "contract_deploy", None, PAGE,
                                     parse_event_cursor(request.query)), None)


def contracts(node: Node, request: web.Request) -> web.Response:
    doc = _deploys(node, request)
    if doc is None:
        return page("Contracts", Html("<p>this node keeps no search index</p>"))
    rows = [(link(f"/contracts/{seg(e['attributes']['contract'])}",
                  e["attributes"]["contract"]), addr(e["attributes"].get("creator", "")),
             link(f"/blocks/{e['height']}", e["height"])) for e in doc["events"]]
    return page("Contracts", join([table(("contract", "creator", "deployed in"), rows),
                                   pager("/contracts", doc)]))


def contract(node: Node, request: web.Request) -> web.Response:
    c = query(node, "getContract", {"address": request.match_info["address"]})
    return page(f"Contract {short(c['address'], 12)}", join([
        kv([("address", c["address"]), ("creator", addr(c["creator"])),
            ("deployed in", link(f"/blocks/{c['height']}", c["height"])),
            ("code hash", c["code_hash"]), ("code size", c["code_size"]),
            ("balance", f"{c['balance_hpc']} HPC"),
            ("account", link(f"/accounts/{seg(c['address'])}", "transactions"))]),
        section("Source", pre(c["source"]))]))


def storage(node: Node, request: web.Request) -> web.Response:
    providers = query(node, "listStorageProviders")["providers"]
    deals = _safe(lambda: events_page(node, "storage_deal_create", None, PAGE,
                                      parse_event_cursor(request.query)), None)
    parts: list[object] = [section("Providers", table(
        ("provider", "active", "capacity", "used", "price", "reputation"),
        [(addr(p["address"]), p["active"], p["capacity"], p["used"], p["price"],
          p["reputation"]) for p in providers]))]
    if deals is not None:
        parts.append(section("Recent deals", table(("file id", "owner", "block"), [
            (link(f"/storage/deals/{e['attributes']['file_id']}",
                  short(e["attributes"]["file_id"])), addr(e["attributes"].get("owner", "")),
             link(f"/blocks/{e['height']}", e["height"])) for e in deals["events"]]),
            pager("/storage", deals)))
    return page("Storage", join(parts))


def storage_deal(node: Node, request: web.Request) -> web.Response:
    d = query(node, "getStorageDeal", {"file_id": request.match_info["file_id"]})
    return page("Storage deal", join([
        kv([("file id", d["file_id"]), ("status", d["status"]), ("owner", addr(d["owner"])),
            ("size", d["size"]), ("k of n", f"{d['k']} of {d['n']}"),
            ("epochs", f"{d['start_epoch']}..{d['end_epoch']}"),
            ("healthy columns", d["healthy"]), ("escrow", f"{d['escrow_hpc']} HPC")]),
        section("Columns", table(("fragment", "provider", "healthy", "price"), [
            (c["frag_index"], addr(c["provider"]), c["healthy"], c["price"])
            for c in d["columns"]]))]))


def compute(node: Node, request: web.Request) -> web.Response:
    providers = query(node, "listComputeProviders")["providers"]
    jobs = _safe(lambda: events_page(node, "compute_job_post", None, PAGE,
                                     parse_event_cursor(request.query)), None)
    parts: list[object] = [section("Providers", table(
        ("provider", "active", "capability", "stake (HPC)", "load", "reputation"),
        [(addr(p["address"]), p["active"], p["capability"], p["stake_hpc"], p["load"],
          p["reputation"]) for p in providers]))]
    if jobs is not None:
        parts.append(section("Recent jobs", table(("job", "requester", "tasks", "block"), [
            (link(f"/compute/jobs/{e['attributes']['job']}", e["attributes"]["job"]),
             addr(e["attributes"].get("owner", "")), e["attributes"].get("tasks", ""),
             link(f"/blocks/{e['height']}", e["height"])) for e in jobs["events"]]),
            pager("/compute", jobs)))
    return page("Compute", join(parts))


def compute_job(node: Node, request: web.Request) -> web.Response:
    j = query(node, "getComputeJob", {"id": request.match_info["id"]})
    return page(f"Compute job {j['id']}", join([
        kv([("status", j["status"]), ("requester", addr(j["requester"])),
            ("module", j["module_hash"]), ("tasks", j["tasks"]),
            ("redundancy", j["redundancy"]), ("escrow", f"{j['escrow_hpc']} HPC"),
            ("paid", f"{j['paid_hpc']} HPC"), ("posted in", link(f"/blocks/{j['height']}",
                                                                 j["height"]))]),
        section("Tasks", table(("task", "status", "fuel used", "replicas"), [
            (t["index"], t["status"], t["fuel_used"],
             ", ".join(f"{short(r['provider'], 8)}: {r['status']}" for r in t["replicas"]))
            for t in j.get("task_states", [])]))]))


def market(node: Node, request: web.Request) -> web.Response:
    offers = query(node, "listOffers")["offers"]
    books = sorted({(o["service_type"], o["token"]) for o in offers})
    matches = _safe(lambda: events_page(node, "market_match", None, PAGE,
                                        parse_event_cursor(request.query)), None)
    parts: list[object] = [
        section("Offers", table(("id", "provider", "service", "unit price", "token",
                                 "active"),
                                [(o["id"], addr(o["provider"]), o["service_type"],
                                  o["unit_price"], o["token"], o["active"]) for o in offers])),
        section("Order books", table(("service", "token"), [
            (link(f"/market/book/{seg(st)}?{urlencode({'token': tok})}", st), tok)
            for st, tok in books])),
    ]
    if matches is not None:
        parts.append(section("Recent agreements", table(("agreement", "block"), [
            (link(f"/market/agreements/{e['attributes']['agreement']}",
                  e["attributes"]["agreement"]), link(f"/blocks/{e['height']}", e["height"]))
            for e in matches["events"]]), pager("/market", matches)))
    return page("Market", join(parts))


def order_book(node: Node, request: web.Request) -> web.Response:
    params = {"token": request.query["token"]} if "token" in request.query else {}
    b = query(node, "getOrderBook", {"service_type": request.match_info["service_type"]},
              params)
    headers = ("order", "owner", "price", "remaining", "expiry")

    def rows(orders: list[dict[str, Any]]) -> list[tuple[object, ...]]:
        return [(o["id"], addr(o["owner"]), o["price"], o["remaining"], o["expiry"])
                for o in orders]

    return page(f"Order book {b['service_type']} / {b['token']}", join([
        section("Asks", table(headers, rows(b["asks"]))),
        section("Bids", table(headers, rows(b["bids"])))]))


def agreement(node: Node, request: web.Request) -> web.Response:
    a = query(node, "getAgreement", {"id": request.match_info["id"]})
    receipts = query(node, "listAgreementReceipts", {"id": request.match_info["id"]})
    return page(f"Agreement {a['id']}", join([
        kv([("status", a["status"]), ("service", a["service_type"]), ("unit", a["unit"]),
            ("provider", addr(a["provider"])), ("consumer", addr(a["consumer"])),
            ("price", f"{a['price']} {a['token']}"), ("quantity", a["quantity"]),
            ("used", a["counter"]), ("escrow", a["escrow"]),
            ("provider paid", a["provider_paid"])]),
        section("Usage receipts", table(("counter", "final", "block", "paid"), [
            (r["counter"], r["final"], link(f"/blocks/{r['height']}", r["height"]), r["paid"])
            for r in receipts["receipts"]]))]))


def devices(node: Node, request: web.Request) -> web.Response:
    regs = _safe(lambda: events_page(node, "device_register", None, PAGE,
                                     parse_event_cursor(request.query)), None)
    makers = _safe(lambda: events_page(node, "device_manufacturer", None, PAGE, None), None)
    if regs is None or makers is None:
        return page("Devices", Html("<p>this node keeps no search index</p>"))
    return page("Devices", join([
        section("Recently registered", table(("device", "owner", "block"), [
            (link(f"/devices/{e['attributes']['device']}", short(e["attributes"]["device"])),
             addr(e["attributes"].get("owner", "")), link(f"/blocks/{e['height']}",
                                                          e["height"]))
            for e in regs["events"]]), pager("/devices", regs)),
        section("Manufacturers", table(("manufacturer", "name", "block"), [
            (addr(e["attributes"].get("manufacturer", "")), e["attributes"].get("name", ""),
             link(f"/blocks/{e['height']}", e["height"])) for e in makers["events"]]))]))


def device(node: Node, request: web.Request) -> web.Response:
    d = query(node, "getDevice", {"pubkey": request.match_info["pubkey"]})
    return page("Device", kv([
        ("public key", d["pubkey"]), ("owner", addr(d["owner"])),
        ("manufacturer", addr(d["manufacturer"])), ("model", d["model"]),
        ("serial", d["serial"]), ("capabilities", ", ".join(d["capabilities"])),
        ("registered in", link(f"/blocks/{d['registered_height']}", d["registered_height"])),
        ("revoked", d["revoked"])]))


def price(units: str, token: str) -> str:
    """HPC in HPC (8 decimals); a token in its own smallest units."""
    return f"{format_hpc(int(units))} HPC" if token == "HPC" else f"{units} {token}"


def data_assets(node: Node, request: web.Request) -> web.Response:
    """Assets on offer (batches and an open consent), the way a buyer browses them (``smart
    data search``), and the assets registered lately, offered or not (from the index)."""
    offered = query(node, "searchDataAssets")["assets"]
    parts: list[object] = [section("On offer", table(
        ("asset", "owner", "schema", "region", "models", "batches", "records", "price"),
        [(link(f"/data/assets/{a['id']}", a["name"]), addr(a["owner"]), a["schema"],
          a["region"], ", ".join(a["models"]), a["batches"], a["records"],
          ", ".join(price(c["price"], c["token"]) for c in a["offers"])) for a in offered]))]
    created = _safe(lambda: events_page(node, "data_asset", None, PAGE,
                                        parse_event_cursor(request.query)), None)
    if created is not None:
        parts.append(section("Recently registered", table(("asset", "owner", "block"), [
            (link(f"/data/assets/{e['attributes']['asset']}", e["attributes"].get("name", "")),
             addr(e["attributes"].get("owner", "")), link(f"/blocks/{e['height']}",
                                                          e["height"]))
            for e in created["events"]]), pager("/data", created)))
    return page("Data assets", join(parts))


def data_asset(node: Node, request: web.Request) -> web.Response:
    a = query(node, "getDataAsset", {"id": request.match_info["id"]})
    return page(f"Data asset {a['name']}", join([
        kv([("id", a["id"]), ("owner", addr(a["owner"])), ("schema", a["schema"]),
            ("region", a["region"]), ("device models", ", ".join(a["models"])),
            ("records", a["records"]), ("time range (ms)", f"{a['start_ms']}..{a['end_ms']}"),
            ("bond", price(a["bond"], "HPC")),
            ("registered in", link(f"/blocks/{a['height']}", a["height"]))]),
        section("Batches", table(("#", "device", "records", "time range (ms)", "root",
                                  "file", "block"), [
            (b["index"], link(f"/devices/{b['device']}", short(b["device"])), b["count"],
             f"{b['start_ms']}..{b['end_ms']}", short(b["root"]),
             link(f"/storage/deals/{b['file_id']}", short(b["file_id"])),
             link(f"/blocks/{b['height']}", b["height"])) for b in a["batch_list"]])),
        section("Consents", table(("consent", "buyers", "purposes", "price", "expiry",
                                   "withdrawn"), [
            (c["id"], join(addr(b) for b in c["buyers"]) if c["buyers"] else "anyone",
             ", ".join(c["purposes"]), price(c["price"], c["token"]), c["expiry"],
             c["withdrawn"]) for c in a["consents"]]))]))


def proposals(node: Node, request: web.Request) -> web.Response:
    found = query(node, "listProposals")["proposals"]
    return page("Governance", table(
        ("proposal", "kind", "title", "proposer", "status", "deposit", "yes", "no"),
        [(link(f"/gov/proposals/{p['id']}", p["id"]), p["kind"], p["title"],
          addr(p["proposer"]), p["status"], p["total_deposit"], p["tally"]["yes"],
          p["tally"]["no"]) for p in found]))


def proposal(node: Node, request: web.Request) -> web.Response:
    p = query(node, "getProposal", {"id": request.match_info["id"]})
    t = p["tally"]
    return page(f"Proposal {p['id']}: {p['title']}", join([
        kv([("kind", p["kind"]), ("status", p["status"]), ("proposer", addr(p["proposer"])),
            ("description", p["description"]),
            ("changes", ", ".join(f"{c['key']} = {c['value']}" for c in p["changes"])),
            ("deposit", p["total_deposit"]),
            ("voting", f"{p['voting_start']}..{p['voting_end']}"),
            ("tally", f"yes {t['yes']} · no {t['no']} · abstain {t['abstain']} · "
                      f"veto {t['veto']}"), ("note", p["note"])]),
        section("Votes", table(("voter", "option"),
                               [(addr(b["voter"]), b["option"]) for b in p["ballots"]])),
        section("Deposits", table(("depositor", "amount"),
                                  [(addr(d["depositor"]), d["amount"])
                                   for d in p["deposits"]]))]))


SEARCH_PAGES = {"block": "/blocks/{}", "tx": "/txs/{}", "account": "/accounts/{}",
                "contract": "/contracts/{}", "token": "/tokens/{}",
                "storage_deal": "/storage/deals/{}", "device": "/devices/{}"}


def search_page(node: Node, request: web.Request) -> web.Response:
    q = request.query.get("q", "").strip()
    if not q:
        raise QueryError(400, "malformed", "type a height, hash, address, token or file id")
    found = search(node, q[:200])
    raise web.HTTPSeeOther(SEARCH_PAGES[found["type"]].format(seg(found["id"])))


PAGES: list[tuple[str, Handler]] = [
    ("/", dashboard), ("/blocks", blocks), ("/blocks/{height}", block),
    ("/txs/{hash}", transaction), ("/accounts/{address}", account),
    ("/validators", validators), ("/tokens", tokens), ("/tokens/{symbol}", token),
    ("/contracts", contracts), ("/contracts/{address}", contract),
    ("/storage", storage), ("/storage/deals/{file_id}", storage_deal),
    ("/compute", compute), ("/compute/jobs/{id}", compute_job),
    ("/market", market), ("/market/book/{service_type}", order_book),
    ("/market/agreements/{id}", agreement),
    ("/devices", devices), ("/devices/{pubkey}", device),
    ("/data", data_assets), ("/data/assets/{id}", data_asset),
    ("/gov", proposals), ("/gov/proposals/{id}", proposal), ("/search", search_page),
]


async def static_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ("explorer.css", "explorer.js"):
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={"Cache-Control": "max-age=300"})


def add_explorer_routes(app: web.Application, node: Node) -> None:
    for path, render in PAGES:
        app.router.add_get(path, _serve(node, render))
    app.router.add_get("/static/{name}", static_file)
