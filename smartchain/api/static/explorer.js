// The explorer's only script: new blocks appear on the dashboard as they commit, from the
// node's websocket (GET /v1/subscribe). Everything is written as text, never as HTML.
"use strict";

(function () {
  const rows = document.getElementById("latest-blocks");
  const txRows = document.getElementById("latest-txs");
  const status = document.getElementById("live");
  const height = document.getElementById("height");
  if (!rows) return;
  const KEEP = 10;
  let last = 0;
  let delay = 500;

  function cell(tr, text, href) {
    const td = document.createElement("td");
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
  }

  function short(text, keep) {
    return text.length <= 2 * keep + 1 ? text : text.slice(0, keep) + "…" + text.slice(-6);
  }

  function addBlock(b) {
    const h = Number(b.height);
    if (h <= last) return;
    last = h;
    const empty = rows.querySelector("tr.empty");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    tr.className = "live-block";
    tr.dataset.height = b.height;
    cell(tr, b.height, "/blocks/" + encodeURIComponent(b.height));
    cell(tr, short(b.hash, 10), "/blocks/" + encodeURIComponent(b.height));
    cell(tr, String(b.tx_count));
    cell(tr, short(b.proposer_address, 12), "/accounts/" + encodeURIComponent(b.proposer_address));
    cell(tr, b.time_ms);
    rows.insertBefore(tr, rows.firstChild);
    while (rows.children.length > KEEP) rows.removeChild(rows.lastChild);
    if (height) height.textContent = b.height;
    if (txRows) (b.transactions || []).forEach(addTx);
  }

  function addTx(t) {
    const empty = txRows.querySelector("tr.empty");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    tr.className = "live-tx";
    cell(tr, short(t.hash, 10), "/txs/" + encodeURIComponent(t.hash));
    cell(tr, t.height, "/blocks/" + encodeURIComponent(t.height));
    cell(tr, short(t.sender, 12), "/accounts/" + encodeURIComponent(t.sender));
    cell(tr, t.kind);
    cell(tr, t.ok ? "ok" : "failed: " + t.code_name);
    cell(tr, t.fee_hpc);
    txRows.insertBefore(tr, txRows.firstChild);
    while (txRows.children.length > KEEP) txRows.removeChild(txRows.lastChild);
  }

  function connect() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/v1/subscribe");
    ws.onopen = function () {
      const first = rows.querySelector("tr[data-height], tr td a");
      if (!last && first) last = Number(first.textContent) || 0;
      const req = { subscribe: "blocks" };
      if (last) req.from_height = last + 1;
      ws.send(JSON.stringify(req));
    };
    ws.onmessage = function (ev) {
      const msg = JSON.parse(ev.data);
      if (msg.type === "subscribed") {
        status.textContent = "live: following new blocks";
        status.dataset.state = "live";
        delay = 500;
      } else if (msg.type === "block") {
        addBlock(msg);
      }
    };
    ws.onclose = function () {
      status.textContent = "live updates: reconnecting…";
      status.dataset.state = "reconnecting";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }
  connect();
})();
