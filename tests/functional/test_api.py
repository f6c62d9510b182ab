"""The HTTP API against one real node process: happy paths, the OpenAPI document, metrics,
and every kind of bad input (each a 4xx JSON error that changes nothing; never a 5xx)."""

from __future__ import annotations

import random
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import bech32
import pytest
import requests
from framework.harness import NodeProcess, wait_until
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from smartchain.api.server import MAX_BODY, MAX_JSON_DEPTH, MAX_SMALL_BODY, ROUTES
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.state.params import Params
from smartchain.types.amount import format_hpc
from smartchain.types.tx import ADDRESS_ATTRIBUTES, Attribute, Event, Transaction

SMART_NODE_CHAIN_ID = "smart-api-test-1"
HPC = 10**8
GAS_LIMIT = 20_000
POOR_BALANCE = 50_000


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_api/" + tag.encode()))


ALICE = _key("alice")  # happy-path sender
BOB = _key("bob")
CAROL = _key("carol")  # never funded at genesis: a pure recipient
SENDER = _key("sender")  # the account the bad-input cases try to spend from
POOR = _key("poor")
DAVE = _key("dave")  # funded, never sends: its account view is fixed
EMITTER = _key("emitter")  # deploys and calls the contract whose events are checked
SMART_NODE_GENESIS = [
    (EMITTER.address, 1_000 * HPC),
    (ALICE.address, 1_000 * HPC),
    (BOB.address, 1_000 * HPC),
    (SENDER.address, 1_000 * HPC),
    (POOR.address, POOR_BALANCE),
    (DAVE.address, 1_000 * HPC),
]
PARAMS = Params()
ERROR_SLUG = re.compile(r"^[a-z_]+$")


# --- plumbing ------------------------------------------------------------------------------


class Api:
    """requests.Session against the node that checks every response is never a 5xx and
    that every error is the documented JSON shape."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.responses = 0

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        r = self.session.request(method, self.url + path, timeout=15, **kwargs)
        self.responses += 1
        assert r.status_code < 500, f"{method} {path} -> {r.status_code}: {r.text[:500]}"
        if r.status_code >= 400:
            assert r.headers["Content-Type"].startswith("application/json"), r.headers
            doc = r.json()
            assert set(doc) == {"error"}, doc
            assert set(doc["error"]) == {"code", "message"}, doc
            assert ERROR_SLUG.match(doc["error"]["code"]), doc
            assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
        return r

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def ok(self, path: str) -> Any:
        r = self.get(path)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def post_hex(self, raw: bytes) -> requests.Response:
        return self.post("/v1/txs", json={"tx": raw.hex()})

    def post_octets(self, raw: bytes) -> requests.Response:
        return self.post("/v1/txs", data=raw,
                         headers={"Content-Type": "application/octet-stream"})

    def status(self) -> dict[str, Any]:
        return self.ok("/v1/status")

    def account(self, key: PrivateKey) -> dict[str, Any]:
        return self.ok(f"/v1/accounts/{to_bech32(key.address)}")

    def wait_committed(self, tx_hash: str, timeout: float = 15.0) -> dict[str, Any]:
        def committed() -> dict[str, Any] | None:
            r = self.get(f"/v1/txs/{tx_hash}")
            if r.status_code == 200 and r.json()["status"] == "committed":
                return r.json()
            assert r.status_code in (200, 404), r.text
            return None

        return wait_until(committed, timeout, interval=0.05, what=f"tx {tx_hash} committed")

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        r = self.get("/metrics")
        assert r.status_code == 200
        for fam in text_string_to_metric_families(r.text):
            for s in fam.samples:
                if s.name == name and (labels is None or s.labels == labels):
                    return s.value
        return 0.0


def sign(key: PrivateKey, *, nonce: int, to: bytes = BOB.address, amount: int = 1_000,
         chain_id: str = SMART_NODE_CHAIN_ID, gas_limit: int = GAS_LIMIT, gas_price: int = 1,
         kind: str = "bank/transfer", payload: bytes | None = None) -> bytes:
    if payload is None:
        payload = Transfer(to, amount).encode()
    return Transaction.create(key, chain_id=chain_id, nonce=nonce, kind=kind, payload=payload,
                              gas_limit=gas_limit, gas_price=gas_price).encode()


@dataclass(frozen=True)
class Snapshot:
    balance: str
    nonce: int
    pending_nonce: int
    mempool_size: int


def snapshot(api: Api, key: PrivateKey) -> Snapshot:
    acct = api.account(key)
    return Snapshot(acct["balance"], acct["nonce"], acct["pending_nonce"],
                    api.status()["mempool_size"])


@pytest.fixture(scope="module")
def sender_used(api: Api) -> int:
    """SENDER has committed transactions, so nonce 0 is an already-used nonce."""
    for nonce in range(2):
        r = api.post_hex(sign(SENDER, nonce=nonce, to=CAROL.address, amount=7))
        assert r.status_code == 202, r.text
        api.wait_committed(r.json()["hash"])
    acct = api.account(SENDER)
    assert acct["nonce"] == acct["pending_nonce"] == 2
    return acct["nonce"]


# --- status, submission, reads ---------------------------------------------------------


def test_status_fields(api: Api, smart_node: NodeProcess) -> None:
    st = api.status()
    assert st["chain_id"] == SMART_NODE_CHAIN_ID
    assert st["genesis_hash"] == smart_node.genesis.hash().hex()
    assert st["validator"] == to_bech32(smart_node.key.address)
    assert st["moniker"] == "node0"
    assert st["block_time_ms"] == 200
    assert st["min_gas_price"] == PARAMS.min_gas_price
    assert st["tx_base_gas"] == PARAMS.tx_base_gas
    assert st["gas_per_tx_byte"] == PARAMS.gas_per_tx_byte
    assert st["gas_per_write"] == PARAMS.gas_per_write
    assert isinstance(st["mempool_size"], int) and st["mempool_size"] >= 0
    for field in ("latest_hash", "state_root", "genesis_hash"):
        assert re.fullmatch(r"[0-9a-f]{64}", st[field]), field
    # blocks are produced on the timer, empty or not
    h0 = st["height"]
    later = wait_until(lambda: (s := api.status())["height"] >= h0 + 2 and s, 10)
    assert later["latest_hash"] != st["latest_hash"]
    assert isinstance(later["latest_time_ms"], int)
    assert later["latest_time_ms"] >= smart_node.genesis.time_ms


def _check_committed(api: Api, raw: bytes, tx_hash: str, sender: PrivateKey, to: PrivateKey,
                     amount: int) -> dict[str, Any]:
    assert tx_hash == h256(raw).hex()
    doc = api.wait_committed(tx_hash)
    assert doc["status"] == "committed"
    assert doc["hash"] == tx_hash
    assert doc["sender"] == to_bech32(sender.address)
    assert doc["public_key"] == sender.public_key.hex()
    assert doc["kind"] == "bank/transfer"
    assert doc["payload"]["to"] == to_bech32(to.address)
    assert doc["payload"]["amount"] == str(amount)
    assert doc["height"] >= 1 and doc["index"] >= 0
    rc = doc["receipt"]
    assert rc["ok"] is True and rc["code"] == 0 and rc["code_name"] == "ok", rc
    assert 0 < rc["gas_used"] <= GAS_LIMIT
    assert rc["fee"] == str(rc["gas_used"] * doc["gas_price"])
    assert rc["events"] == []  # a transfer's record is the transaction itself
    assert doc["sender"] == to_bech32(sender.address)
    # the block at that height lists the tx at that index
    block = api.ok(f"/v1/blocks/{doc['height']}")
    assert block["txs"][doc["index"]] == tx_hash
    return doc


@pytest.mark.parametrize("encoding", ["json-hex", "octet-stream"])
def test_submit_transfer_commits_with_receipt(api: Api, encoding: str) -> None:
    before_a, before_c = api.account(ALICE), api.account(CAROL)
    amount = 12_345 if encoding == "json-hex" else 54_321
    raw = sign(ALICE, nonce=before_a["pending_nonce"], to=CAROL.address, amount=amount)
    r = api.post_hex(raw) if encoding == "json-hex" else api.post_octets(raw)
    assert r.status_code == 202, r.text
    assert r.json() == {"hash": h256(raw).hex(), "status": "pending"}
    doc = _check_committed(api, raw, r.json()["hash"], ALICE, CAROL, amount)
    fee = int(doc["receipt"]["fee"])
    after_a, after_c = api.account(ALICE), api.account(CAROL)
    assert int(after_a["balance"]) == int(before_a["balance"]) - amount - fee
    assert after_a["nonce"] == before_a["nonce"] + 1
    assert int(after_c["balance"]) == int(before_c["balance"]) + amount
    assert after_c["nonce"] == 0


def test_client_sdk_transfer(api: Api, smart_node: NodeProcess) -> None:
    client = smart_node.client
    before = client.balance(to_bech32(CAROL.address))
    doc = client.transfer(ALICE, to_bech32(CAROL.address), 777)
    assert doc["status"] == "committed" and doc["receipt"]["ok"]
    assert client.balance(to_bech32(CAROL.address)) == before + 777


def test_blocks_by_height_and_latest(api: Api) -> None:
    height = wait_until(lambda: api.status()["height"] >= 3 and api.status()["height"], 10)
    latest = api.ok("/v1/blocks/latest")
    assert latest["height"] >= height
    assert api.ok(f"/v1/blocks/{latest['height']}") == latest
    for h in range(1, 4):
        b = api.ok(f"/v1/blocks/{h}")
        assert b["height"] == b["header"]["height"] == h
        assert b["header"]["chain_id"] == SMART_NODE_CHAIN_ID
        assert b["tx_count"] == len(b["txs"])
        assert re.fullmatch(r"[0-9a-f]{64}", b["hash"])
        if h > 1:
            assert b["header"]["prev_hash"] == api.ok(f"/v1/blocks/{h - 1}")["hash"]
            assert b["header"]["time_ms"] > api.ok(f"/v1/blocks/{h - 1}")["header"]["time_ms"]
    # leading zeros are still a decimal height
    assert api.ok("/v1/blocks/0001") == api.ok("/v1/blocks/1")
    for h in (0, latest["height"] + 10_000, 10**18):
        r = api.get(f"/v1/blocks/{h}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", h


def test_signer_set_of_a_height(api: Api, smart_node: NodeProcess) -> None:
    """The set a commit of a height is checked against: here the one genesis signer,
    from height 1, known up to the committed height + 2 and not beyond."""
    height = api.status()["height"]
    signers = api.ok(f"/v1/blocks/{height}/signers")
    assert signers["height"] == height and signers["start_height"] == 1
    assert [v["pubkey"] for v in signers["validators"]] == \
        [v.public_key.hex() for v in smart_node.genesis.validators]
    assert signers["total_power"] == sum(v["power"] for v in signers["validators"])
    assert api.ok(f"/v1/blocks/{height + 2}/signers")["validators"] == signers["validators"]
    for h in (0, height + 10_000):
        r = api.get(f"/v1/blocks/{h}/signers")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", h


def test_account_view(api: Api) -> None:
    assert api.account(DAVE) == {
        "address": to_bech32(DAVE.address), "balance": str(1_000 * HPC), "balance_hpc": "1000",
        "nonce": 0, "pending_nonce": 0, "tokens": []}
    acct = api.account(ALICE)
    assert int(acct["balance"]) > 0
    assert acct["balance_hpc"] == format_hpc(int(acct["balance"]))
    fresh = to_bech32(_key("never-used").address)
    assert api.ok(f"/v1/accounts/{fresh}") == {
        "address": fresh, "balance": "0", "balance_hpc": "0", "nonce": 0, "pending_nonce": 0,
        "tokens": []}
    # bech32 allows all-upper-case; the answer is canonical lower case
    assert api.ok(f"/v1/accounts/{fresh.upper()}")["address"] == fresh


def test_openapi_matches_routes(api: Api) -> None:
    spec = api.ok("/openapi.json")
    assert spec["openapi"].startswith("3.1")
    assert spec["info"]["title"] and spec["info"]["version"]
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented == {(m, p) for m, p, _ in ROUTES}
    schemas = spec["components"]["schemas"]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas
    for path, ops in spec["paths"].items():
        params = set(re.findall(r"{(\w+)}", path))
        for op in ops.values():
            assert op["responses"], path
            for status, resp in op["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and resp["description"]
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == params, path


def test_metrics(api: Api) -> None:
    h = api.status()["height"]
    wait_until(lambda: api.metric("smart_height") >= h + 1, 10)
    r = api.get("/metrics")
    assert r.headers["Content-Type"].startswith("text/plain")
    names = {s.name for fam in text_string_to_metric_families(r.text) for s in fam.samples}
    for name in ("smart_height", "smart_mempool_size", "smart_txs_per_second",
                 "smart_block_interval_seconds"):
        assert name in names, name
    assert api.metric("smart_mempool_size") >= 0
    assert api.metric("smart_txs_per_second") >= 0
    # blocks every 200 ms: the measured interval is in that neighbourhood
    assert 0.05 < api.metric("smart_block_interval_seconds") < 5


def test_metrics_report_consensus(api: Api) -> None:
    """The consensus families of /metrics on a chain of one signer: it decides the next
    height and signs it; nobody is jailed, the set never changed, no block was missed."""
    h = api.status()["height"]
    wait_until(lambda: api.metric("smart_consensus_height") >= h + 2, 10)
    assert api.metric("smart_consensus_height") >= api.metric("smart_height")
    assert api.metric("smart_consensus_round") >= 0
    assert api.metric("smart_consensus_signers") == 1
    assert api.metric("smart_consensus_is_signer") == 1
    assert api.metric("smart_consensus_jailed") == 0
    assert api.metric("smart_consensus_set_changes_total") == 0
    r = api.get("/metrics")
    missed = [s for fam in text_string_to_metric_families(r.text) for s in fam.samples
              if s.name == "smart_consensus_missed_blocks_total"]
    assert missed == []  # a sole signer signs every block


def test_batch_submission(api: Api) -> None:
    nonce = api.account(BOB)["pending_nonce"]
    good = sign(BOB, nonce=nonce, to=CAROL.address, amount=5)
    bad_sig = bytearray(sign(BOB, nonce=nonce + 1, to=CAROL.address, amount=5))
    bad_sig[-1] ^= 1
    r = api.post("/v1/txs/batch", json={"txs": [good.hex(), bytes(bad_sig).hex(), "00"]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0] == {"hash": h256(good).hex(), "status": "pending"}
    assert results[1]["error"]["code"] == "bad_signature"
    assert results[2]["error"]["code"] == "malformed"
    api.wait_committed(h256(good).hex())
    for body, code in [({"txs": "00"}, "malformed"), ({"txs": ["zz"]}, "malformed"),
                       ([], "malformed"), ({"txs": [1]}, "malformed")]:
        r = api.post("/v1/txs/batch", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (400, code), body


# --- bad input: 4xx, specific code, nothing changes ------------------------------------


def _flip_signature(raw: bytes) -> bytes:
    b = bytearray(raw)
    b[-10] ^= 0x40
    return bytes(b)


def _amount_changed_after_signing(raw: bytes) -> bytes:
    tx = Transaction.decode(raw)
    msg = Transfer.decode(tx.payload)
    return replace(tx, payload=Transfer(msg.to, msg.amount + 1).encode()).encode()


def _oversized(nonce: int) -> bytes:
    payload = bytes(PARAMS.max_tx_bytes + 1)
    return sign(SENDER, nonce=nonce, payload=payload, gas_limit=PARAMS.max_tx_gas)


# (name, request builder given SENDER's next nonce, expected status, expected code).
# A builder returns (kwargs for Api.post on /v1/txs, raw tx or None).
Build = Callable[[int], tuple[dict[str, Any], bytes | None]]
JSON = {"Content-Type": "application/json"}
OCTETS = {"Content-Type": "application/octet-stream"}


def _hex(raw: bytes) -> tuple[dict[str, Any], bytes]:
    return {"json": {"tx": raw.hex()}}, raw


def _octets(raw: bytes) -> tuple[dict[str, Any], bytes]:
    return {"data": raw, "headers": OCTETS}, raw


BAD_TXS: list[tuple[str, Build, int, str]] = [
    ("malformed-json", lambda n: ({"data": b'{"tx": "00', "headers": JSON}, None),
     400, "malformed_json"),
    ("json-not-utf8", lambda n: ({"data": b'{"tx": "\xc3\x28"}', "headers": JSON}, None),
     400, "malformed_json"),
    ("empty-json-body", lambda n: ({"data": b"", "headers": JSON}, None), 400, "malformed_json"),
    ("json-without-tx", lambda n: ({"json": {"txs": sign(SENDER, nonce=n).hex()}}, None),
     400, "malformed"),
    ("json-array", lambda n: ({"json": [sign(SENDER, nonce=n).hex()]}, None), 400, "malformed"),
    ("tx-not-a-string", lambda n: ({"json": {"tx": 12345}}, None), 400, "malformed"),
    ("non-hex-tx", lambda n: ({"json": {"tx": "zz" + sign(SENDER, nonce=n).hex()[2:]}}, None),
     400, "malformed"),
    ("odd-length-hex", lambda n: ({"json": {"tx": sign(SENDER, nonce=n).hex()[:-1]}}, None),
     400, "malformed"),
    ("undecodable-hex", lambda n: _hex(b"\x00\x01garbage"), 400, "malformed"),
    ("undecodable-octets", lambda n: _octets(b"\x00\x00\x00\x05hello"), 400, "malformed"),
    ("empty-octets", lambda n: _octets(b""), 400, "malformed"),
    ("truncated", lambda n: _hex(sign(SENDER, nonce=n)[:-1]), 400, "malformed"),
    ("trailing-bytes-hex", lambda n: _hex(sign(SENDER, nonce=n) + b"\x00"), 400, "malformed"),
    ("trailing-bytes-octets", lambda n: _octets(sign(SENDER, nonce=n) + b"\x00" * 8),
     400, "malformed"),
    ("flipped-signature-byte", lambda n: _hex(_flip_signature(sign(SENDER, nonce=n))),
     422, "bad_signature"),
    ("amount-changed-after-signing",
     lambda n: _octets(_amount_changed_after_signing(sign(SENDER, nonce=n))),
     422, "bad_signature"),
    ("signed-by-another-key",
     lambda n: _hex(replace(Transaction.decode(sign(BOB, nonce=n)),
                            sender=SENDER.public_key).encode()), 422, "bad_signature"),
    ("wrong-chain-id", lambda n: _hex(sign(SENDER, nonce=n, chain_id="smart-other-1")),
     422, "wrong_chain"),
    ("reused-committed-nonce", lambda n: _hex(sign(SENDER, nonce=n - 1, amount=999_999)),
     422, "nonce_reused"),
    ("reused-nonce-zero", lambda n: _hex(sign(SENDER, nonce=0, amount=31)), 422, "nonce_reused"),
    ("skipped-nonce", lambda n: _hex(sign(SENDER, nonce=n + 1)), 422, "nonce_skipped"),
    ("far-future-nonce", lambda n: _hex(sign(SENDER, nonce=2**64 - 1)), 422, "nonce_skipped"),
    ("amount-exceeds-balance", lambda n: _hex(sign(SENDER, nonce=n, amount=10**30)),
     422, "insufficient_funds"),
    ("gas-price-below-minimum",
     lambda n: _hex(sign(SENDER, nonce=n, gas_price=PARAMS.min_gas_price - 1)),
     422, "fee_too_low"),
    ("gas-limit-below-intrinsic", lambda n: _hex(sign(SENDER, nonce=n, gas_limit=1_000)),
     422, "gas_limit"),
    ("gas-limit-above-maximum",
     lambda n: _hex(sign(SENDER, nonce=n, gas_limit=PARAMS.max_tx_gas + 1)), 422, "gas_limit"),
    ("oversized-hex", lambda n: _hex(_oversized(n)), 413, "tx_too_large"),
    ("oversized-octets", lambda n: _octets(_oversized(n)), 413, "tx_too_large"),
    ("body-over-8MiB", lambda n: _octets(bytes(9 * 1024 * 1024)), 413, "body_too_large"),
    ("unknown-kind", lambda n: _hex(sign(SENDER, nonce=n, kind="bank/mint")),
     422, "unknown_kind"),
    ("payload-not-a-transfer", lambda n: _hex(sign(SENDER, nonce=n, payload=b"\x01\x02\x03")),
     422, "invalid_payload"),
    ("transfer-payload-trailing-bytes",
     lambda n: _hex(sign(SENDER, nonce=n, payload=Transfer(BOB.address, 5).encode() + b"\x00")),
     422, "invalid_payload"),
    ("zero-amount", lambda n: _hex(sign(SENDER, nonce=n, amount=0)), 422, "invalid_payload"),
]


@pytest.mark.parametrize(("build", "status", "code"), [c[1:] for c in BAD_TXS],
                         ids=[c[0] for c in BAD_TXS])
def test_bad_tx_rejected_and_changes_nothing(api: Api, sender_used: int, build: Build,
                                             status: int, code: str) -> None:
    before = snapshot(api, SENDER)
    assert before.mempool_size == 0
    kwargs, raw = build(before.nonce)
    rejected_before = api.metric("smart_txs_rejected_total", {"code": code})
    r = api.post("/v1/txs", **kwargs)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert snapshot(api, SENDER) == before
    if raw is not None and code != "body_too_large":
        # refused by the node's admission (not by the HTTP layer): counted by code
        assert api.metric("smart_txs_rejected_total", {"code": code}) == rejected_before + 1
    if raw is not None:
        r = api.get(f"/v1/txs/{h256(raw).hex()}")
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")


def test_insufficient_for_amount_plus_fee(api: Api) -> None:
    """Balance covers the amount, or the fee, but not both: refused up front."""
    before = snapshot(api, POOR)
    assert int(before.balance) == POOR_BALANCE
    max_fee = GAS_LIMIT * 1
    for amount in (POOR_BALANCE - max_fee + 1, POOR_BALANCE):
        raw = sign(POOR, nonce=0, amount=amount)
        r = api.post_hex(raw)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "insufficient_funds"), r.text
        assert snapshot(api, POOR) == before
    # exactly amount + max fee is admitted and commits
    r = api.post_hex(sign(POOR, nonce=0, to=CAROL.address, amount=POOR_BALANCE - max_fee))
    assert r.status_code == 202, r.text
    doc = api.wait_committed(r.json()["hash"])
    after = api.account(POOR)
    assert int(after["balance"]) == max_fee - int(doc["receipt"]["fee"])  # the unused gas
    assert after["nonce"] == 1


def test_duplicate_submission_409(api: Api) -> None:
    nonce = api.account(ALICE)["pending_nonce"]
    raw = sign(ALICE, nonce=nonce, to=CAROL.address, amount=4_242)
    r = api.post_hex(raw)
    assert r.status_code == 202
    # again at once (pending, or committed if a block just closed) and in the other encoding
    for again in (api.post_hex(raw), api.post_octets(raw)):
        assert (again.status_code, again.json()["error"]["code"]) == (409, "duplicate")
    api.wait_committed(h256(raw).hex())
    before = snapshot(api, ALICE)
    assert before.nonce == nonce + 1
    r = api.post_hex(raw)  # once committed, still a duplicate (not a reused nonce)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "duplicate")
    assert snapshot(api, ALICE) == before


def _other_hrp(address: bytes) -> str:
    """A valid bech32 string (good checksum) with another chain's prefix."""
    return bech32.bech32_encode("cosmos", bech32.convertbits(address, 8, 5, True))


BAD_GETS: list[tuple[str, int, str]] = [
    # addresses: one character changed (checksum), mixed case, wrong prefix, garbage
    (f"/v1/accounts/{to_bech32(ALICE.address)[:-1]}"
     f"{'q' if to_bech32(ALICE.address)[-1] != 'q' else 'p'}", 400, "invalid_address"),
    (f"/v1/accounts/{to_bech32(ALICE.address)[:10].upper()}{to_bech32(ALICE.address)[10:]}",
     400, "invalid_address"),
    (f"/v1/accounts/{_other_hrp(ALICE.address)}", 400, "invalid_address"),
    ("/v1/accounts/smart1", 400, "invalid_address"),
    ("/v1/accounts/%00", 400, "invalid_address"),
    # tx hashes
    ("/v1/txs/abc", 400, "malformed"),
    ("/v1/txs/" + "a" * 63, 400, "malformed"),
    ("/v1/txs/" + "a" * 66, 400, "malformed"),
    ("/v1/txs/" + "zz" * 32, 400, "malformed"),
    ("/v1/txs/" + "é" * 32, 400, "malformed"),
    ("/v1/txs/" + "0" * 64, 404, "not_found"),
    # heights
    ("/v1/blocks/-1", 400, "malformed"),
    ("/v1/blocks/1.5", 400, "malformed"),
    ("/v1/blocks/abc", 400, "malformed"),
    ("/v1/blocks/1e3", 400, "malformed"),
    ("/v1/blocks/%201", 400, "malformed"),
    ("/v1/blocks/" + "9" * 20, 400, "malformed"),
    (f"/v1/blocks/{1 << 64}", 400, "malformed"),
    (f"/v1/blocks/{(1 << 64) - 1}", 404, "not_found"),  # the whole u64 range is a height
    ("/v1/blocks/\u0663", 400, "malformed"),  # an Arabic-Indic digit: isdigit() but not ASCII
    ("/v1/blocks/x/signers", 400, "malformed"),
    # unknown routes
    ("/no-such-page", 404, "not_found"),
    ("/v1", 404, "not_found"),
    ("/v1/nope", 404, "not_found"),
    ("/v2/status", 404, "not_found"),
    ("/v1/txs/" + "0" * 64 + "/receipt", 404, "not_found"),
    ("/v1/accounts/", 404, "not_found"),
]


@pytest.mark.parametrize(("path", "status", "code"), BAD_GETS, ids=[g[0][:40] for g in BAD_GETS])
def test_bad_get_requests(api: Api, path: str, status: int, code: str) -> None:
    before = snapshot(api, SENDER)
    r = api.get(path)
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text
    assert snapshot(api, SENDER) == before


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/v1/status", "GET"), ("PUT", "/v1/txs", "POST"), ("GET", "/v1/txs", "POST"),
    ("POST", "/metrics", "GET"), ("TRACE", "/v1/txs/batch", "POST"),
    ("GET", "/v1/txs/batch", "POST")])  # not GET /v1/txs/{hash} with hash "batch"
def test_wrong_method_405_names_the_allowed_methods(api: Api, method: str, path: str,
                                                    allowed: str) -> None:
    r = api.request(method, path)
    assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")
    assert allowed in r.headers["Allow"].split(","), r.headers  # RFC 9110: 405 has Allow


# --- request bodies: bounded in size and depth on every route that reads JSON ---------------

JSON_ROUTES = [path.replace("{address}", to_bech32(CAROL.address))
               for method, path, _ in ROUTES if method == "POST"]


def _post_raw(api: Api, path: str, body: bytes) -> requests.Response:
    return api.post(path, data=body, headers=JSON)


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_every_json_route_refuses_deep_nesting_with_400_and_no_traceback(
        api: Api, smart_node: NodeProcess, path: str) -> None:
    before = snapshot(api, SENDER)
    deep = MAX_JSON_DEPTH + 1
    for body in (b"[" * 100_000, b"[" * deep + b"]" * deep,
                 b'{"txs": ' + b"[{" * deep + b"}]" * deep + b"}",
                 b'{"tx": "' + b"[" * 100_000 + b'", "x": ' + b"[" * 100_000 + b"}"):
        r = _post_raw(api, path, body)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "too_deep"), r.text
    for body in (b'{"tx": NaN}', b'{"txs": [' + b"1" * 5_000 + b"]}", b"[" * 20):
        r = _post_raw(api, path, body)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json"), r.text
    # strings full of brackets are text, not nesting
    r = _post_raw(api, path, b'{"function": "' + b"[" * 1_000 + b'", "txs": ["' + b"{" * 1_000
                  + b'"], "tx": "' + b"]" * 1_000 + b'"}')
    assert r.json()["error"]["code"] != "too_deep", r.text
    assert snapshot(api, SENDER) == before
    assert smart_node.log_errors() == [], smart_node.log_tail()


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_every_json_route_refuses_an_oversized_body_with_413(api: Api, smart_node: NodeProcess,
                                                              path: str) -> None:
    limit = MAX_BODY if path.endswith("/batch") else MAX_SMALL_BODY
    body = b'{"tx": "' + b"0" * limit + b'"}'
    r = _post_raw(api, path, body)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "body_too_large"), r.text
    # the same without announcing the length (chunked): refused all the same
    r = _post_raw(api, path, iter([body[:1000], body[1000:]]))  # type: ignore[arg-type]
    assert (r.status_code, r.json()["error"]["code"]) == (413, "body_too_large"), r.text
    assert smart_node.log_errors() == [], smart_node.log_tail()


@pytest.mark.parametrize("request_bytes", [
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/txs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100_000 + b"\r\n\r\n",
    b"GARBAGE\r\n\r\n"], ids=["content-length", "chunk-size", "long-header", "not-http"])
def test_unparsable_http_is_a_400_and_no_traceback(api: Api, smart_node: NodeProcess,
                                                   request_bytes: bytes) -> None:
    host, port = (smart_node.url or "").removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request_bytes)
        reply = s.recv(64)
    assert reply.split(b" ", 2)[1] == b"400", reply
    assert api.status()["height"] >= 0  # still serving
    assert smart_node.log_errors() == [], smart_node.log_tail()


# --- events: contract attributes are data ---------------------------------------------------

SHOUT = b"""
function shout(text)
  emit("note", {to = text, caller = text, contract = "smart1notthiscontract"})
end
"""


def test_contract_event_attributes_are_shown_exactly_as_emitted(api: Api,
                                                                smart_node: NodeProcess) -> None:
    """An attribute named like an address holding 40 non-hex characters once made
    GET /v1/txs/{hash} fail with a 500; a contract cannot pass for another either."""
    client = smart_node.client
    deployed = client.deploy_contract(EMITTER, SHOUT)
    contract = next(e["attributes"]["contract"] for e in deployed["receipt"]["events"]
                    if e["kind"] == "contract_deploy")  # the chain's own event: bech32
    assert contract.startswith("smart1")
    for text in ("z" * 40, "ab" * 20, "é" * 20):
        called = client.call_contract(EMITTER, contract, "shout", [text])
        doc = api.ok(f"/v1/txs/{called['hash']}")
        (event,) = doc["receipt"]["events"]
        assert event == {"kind": "contract/note", "attributes": {
            "contract": contract, "to": text, "caller": text}}


@given(st.text(max_size=20), st.lists(st.tuples(st.sampled_from(sorted(ADDRESS_ATTRIBUTES))
                                                | st.text(max_size=8), st.text(max_size=50)),
                                      max_size=6))
def test_event_rendering_never_fails_and_keeps_contract_values(
        kind: str, attrs: list[tuple[str, str]]) -> None:
    for k in (kind, "contract/" + kind):
        event = Event(k, tuple(Attribute(a, v) for a, v in attrs))
        shown = event.to_json()["attributes"]
        assert all(isinstance(v, str) for v in shown.values())
        if k.startswith("contract/") and attrs:  # the first is the host's, the rest data
            emitted = dict(reversed(attrs[1:]))  # the first of each name
            emitted.pop(attrs[0][0], None)
            assert emitted.items() <= shown.items()


def test_mutated_txs_never_accepted_never_5xx(api: Api, sender_used: int) -> None:
    """Random corruptions of a valid transaction: always a 4xx, never accepted."""
    rng = random.Random(1234)
    before = snapshot(api, SENDER)
    valid = sign(SENDER, nonce=before.nonce)
    codes: set[str] = set()
    for i in range(250):
        b = bytearray(valid)
        op = i % 4
        if op == 0:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif op == 1:
            del b[rng.randrange(len(b)):]
        elif op == 2:
            pos = rng.randrange(len(b) + 1)
            b[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:
            b = bytearray(rng.randbytes(rng.randint(0, 300)))
        r = api.post_octets(bytes(b)) if i % 2 else api.post_hex(bytes(b))
        assert 400 <= r.status_code < 500, (bytes(b).hex(), r.status_code, r.text)
        codes.add(r.json()["error"]["code"])
    assert snapshot(api, SENDER) == before
    assert {"malformed", "bad_signature"} <= codes
