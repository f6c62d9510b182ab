"""Storage through a real node: the ``/v1/storage`` routes, the SDK and ``smart store``'s
checks, with providers registered on chain but no provider process behind them.

The providers' keys are the test's, so it can sign their acceptances and post a deal
without uploading anything: the chain checks signatures and money, not bytes. That is
enough for every route, for the SDK's decoding back into module records, and for each way
``smart store`` refuses bad input before anything is uploaded or paid. Uploads and
downloads through real provider nodes are in ``test_storage_e2e.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from framework.harness import NodeProcess
from test_api import Api
from test_cli import Cli, assert_error, keyed_cli, ok_json

from smartchain.cli.common import CliError
from smartchain.client import ApiError, Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.storage import module as sm
from smartchain.modules.storage.cli import parse_file_id, parse_redundancy

SMART_NODE_CHAIN_ID = "smart-storage-api-test-1"
HPC = 10**8
GiB = 1024**3
POOR_BALANCE = 50_000


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_storage_api/" + tag.encode()))


OWNER = _key("owner")
OTHER = _key("other")
POOR = _key("poor")
PROVIDERS = [_key(f"provider{i}") for i in range(3)]
NOBODY = _key("nobody")  # never registered, never funded
SMART_NODE_GENESIS = [(k.address, 1_000 * HPC) for k in (OWNER, OTHER, *PROVIDERS)] + [
    (POOR.address, POOR_BALANCE)]
CLI_KEYS = {"owner": OWNER, "other": OTHER, "poor": POOR}
POSTED: dict[str, str] = {}  # the deal fixture's transaction hash


def addr(key: PrivateKey) -> str:
    return to_bech32(key.address)


def dead_address(key: PrivateKey) -> str:
    return f"{key.public_key.hex()}@127.0.0.1:9"  # nothing listens there


@pytest.fixture(scope="module")
def client(smart_node: NodeProcess) -> Client:
    return smart_node.client


@pytest.fixture(scope="module")
def providers(client: Client) -> list[PrivateKey]:
    for i, key in enumerate(PROVIDERS):
        res = client.register_storage_provider(key, (i + 1) * GiB, 1000 + i, 500,
                                               20 * HPC, dead_address(key))
        assert res["receipt"]["ok"], res["receipt"]["log"]
    return PROVIDERS


@pytest.fixture(scope="module")
def deal(client: Client, providers: list[PrivateKey]) -> bytes:
    """A 2-of-3 deal for a 100-byte file the providers 'accepted' (their keys sign here)."""
    status = client.status()
    chain_id, height = status["chain_id"], int(status["height"])
    salt = h256(b"salt")
    file_id = sm.file_id_of(OWNER.address, salt)
    piece = 200
    columns = []
    for j, key in enumerate(providers):
        root = h256(bytes([j]))
        sig = key.sign(sm.acceptance_bytes(chain_id, file_id, j, root, piece, 1, 0, height,
                                           OWNER.address))
        columns.append(sm.NewColumn(key.address, j, root, height, sig))
    payload = sm.CreateDeal(salt, 100, 2, 3, 1, piece, piece, 5, 3, tuple(columns))
    res = client.send_tx(OWNER, "storage/create_deal", payload, gas_limit=2_000_000)
    assert res["receipt"]["ok"], res["receipt"]["log"]
    POSTED["deal_tx"] = res["hash"]
    return file_id


@pytest.fixture(scope="module")
def cli(smart_node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    home = Path(tmp_path_factory.mktemp("store-cli")) / "smart-home"
    return keyed_cli(home, smart_node.url or "", CLI_KEYS)


# --- parsing (no node) ---------------------------------------------------------------------


def test_parse_redundancy_and_file_id() -> None:
    assert parse_redundancy("4/6") == (4, 6)
    assert parse_redundancy(" 1/2") == (1, 2)
    for bad in ("4-6", "6/4", "3/3", "0/2", "a/b", "4/", "/6", "4/40"):
        with pytest.raises(CliError):
            parse_redundancy(bad)
    assert parse_file_id("ab" * 32) == b"\xab" * 32
    for bad in ("ab" * 31, "zz" * 32, "", "ab" * 33):
        with pytest.raises(CliError):
            parse_file_id(bad)


# --- routes ----------------------------------------------------------------------------------


def test_storage_routes_refuse_bad_input(api: Api, providers: list[PrivateKey]) -> None:
    unknown = h256(b"no such file").hex()
    cases = [
        ("/v1/storage/deals/zz", 400, "malformed"),
        ("/v1/storage/deals/" + "ab" * 31, 400, "malformed"),
        ("/v1/storage/deals/" + "ab" * 33, 400, "malformed"),
        ("/v1/storage/deals/" + unknown, 404, "not_found"),
        (f"/v1/storage/deals/{unknown}?raw=2", 400, "malformed"),
        ("/v1/storage/deals", 400, "malformed"),
        ("/v1/storage/deals?owner=", 400, "malformed"),
        ("/v1/storage/deals?owner=smart1nope", 400, "invalid_address"),
        ("/v1/storage/providers/smart1nope", 400, "invalid_address"),
        (f"/v1/storage/providers/{addr(NOBODY)}", 404, "not_found"),
        ("/v1/storage/providers?raw=yes", 400, "malformed"),
        ("/v1/storage/providers/smart1nope/challenges", 400, "invalid_address"),
        ("/v1/storage/repairs?raw=x", 400, "malformed"),
    ]
    for path, status, code in cases:
        r = api.get(path)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), path
    assert api.ok(f"/v1/storage/deals?owner={addr(NOBODY)}")["deals"] == []
    assert api.ok(f"/v1/storage/providers/{addr(NOBODY)}/challenges")["challenges"] == []
    assert api.ok("/v1/storage/repairs")["deals"] == []


def test_providers_through_the_sdk(client: Client, providers: list[PrivateKey]) -> None:
    docs = {d["address"]: d for d in client.storage_providers()}
    assert set(docs) == {addr(k) for k in providers}
    d = docs[addr(providers[1])]
    assert (d["capacity"], d["price"], d["bandwidth_price"]) == (str(2 * GiB), "1001", "500")
    assert d["active"] and d["p2p"] == dead_address(providers[1]) and "raw" not in d
    assert d["collateral"] == str(20 * HPC) and d["public_key"] == providers[1].public_key.hex()
    assert client.storage_provider(addr(providers[1]), raw=True)["raw"]
    records = dict(client.storage_provider_records())
    rec = records[providers[2].address]
    assert isinstance(rec, sm.StorageProvider)
    assert (rec.capacity, rec.price, rec.p2p) == (3 * GiB, 1002, dead_address(providers[2]))
    with pytest.raises(ApiError) as exc:
        client.storage_provider(addr(NOBODY))
    assert exc.value.code == "not_found"
    st = client.status()
    assert st["storage_max_columns"] == 32 and int(st["storage_min_collateral"]) > 0


def test_deal_through_the_sdk(client: Client, deal: bytes, api: Api) -> None:
    doc = client.storage_deal(deal)
    assert (doc["file_id"], doc["owner"], doc["status"]) == (deal.hex(), addr(OWNER), "active")
    assert (doc["k"], doc["n"], doc["code_n"], doc["segments"], doc["healthy"]) == (2, 3, 3, 1, 3)
    assert [c["provider"] for c in doc["columns"]] == [addr(k) for k in PROVIDERS]
    assert int(doc["escrow"]) > 0 and int(doc["repair_budget"]) > 0
    record = client.storage_deal_record(deal)
    assert isinstance(record, sm.Deal) and record.owner == OWNER.address
    assert record.columns[0].root == h256(bytes([0]))
    assert client.storage_deal_record(h256(b"none")) is None
    assert [d["file_id"] for d in client.storage_deals(addr(OWNER))] == [deal.hex()]
    assert client.storage_deals(addr(OTHER)) == []
    assert client.storage_repairs() == []
    assert sm.DealView.decode(bytes.fromhex(api.ok(f"/v1/storage/deals/{deal.hex()}?raw=1")
                                             ["raw"])).deal == record
    # the create_deal transaction renders with its columns
    payload = api.ok(f"/v1/txs/{POSTED['deal_tx']}")["payload"]
    assert payload["k"] == 2 and payload["epochs"] == "5"
    assert [c["provider"] for c in payload["columns"]] == [addr(k) for k in PROVIDERS]
    assert payload["columns"][1]["root"] == h256(bytes([1])).hex()


# --- smart store: refusals change nothing --------------------------------------------------


def test_store_put_refuses_bad_input(cli: Cli, client: Client, tmp_path: Path,
                                     providers: list[PrivateKey]) -> None:
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(1000))
    before = {k: client.balance(addr(k)) for k in (OWNER, POOR)}
    assert_error(cli.run("store", "put", str(tmp_path / "missing"), "--from", "owner"),
                 "no such file")
    assert_error(cli.run("store", "put", str(tmp_path), "--from", "owner"), "not a regular")
    assert_error(cli.run("store", "put", str(f), "--from", "owner", "--redundancy", "6/4"),
                 "1 <= k < n")
    assert_error(cli.run("store", "put", str(f), "--from", "owner", "--redundancy", "4-6"),
                 "k/n")
    assert_error(cli.run("store", "put", str(f), "--from", "owner", "--epochs", "0"),
                 "--epochs")
    assert_error(cli.run("store", "put", str(f), "--from", "owner", "--repair-threshold", "4"),
                 "between 5 and 6")
    assert_error(cli.run("store", "put", str(f), "--from", "owner"),  # 4/6, 3 providers
                 "needs 6 storage providers", "the chain has 3")
    assert_error(cli.run("store", "put", str(f), "--from", "poor", "--redundancy", "1/3"),
                 "insufficient balance")
    assert_error(cli.run("store", "put", str(f), "--from", "nokey", "--redundancy", "1/3"))
    r = cli.run("--json", "store", "put", str(f), "--from", "owner")
    assert r.returncode != 0 and '"not_enough_providers"' in r.stdout
    assert {k: client.balance(addr(k)) for k in (OWNER, POOR)} == before


def test_store_get_rm_status_refuse_bad_input(cli: Cli, tmp_path: Path, deal: bytes) -> None:
    unknown = h256(b"unknown").hex()
    out = tmp_path / "out"
    assert_error(cli.run("store", "get", "xyz", "-o", str(out), "--from", "owner"),
                 "64 hex characters")
    assert_error(cli.run("store", "get", unknown, "-o", str(out), "--from", "owner"),
                 "no storage deal")
    assert_error(cli.run("store", "get", deal.hex(), "-o", str(out), "--from", "other"),
                 "belongs to", "only the owner")
    assert_error(cli.run("store", "get", deal.hex(), "-o", str(tmp_path / "no" / "x"),
                         "--from", "owner"), "no such directory")
    assert_error(cli.run("store", "status", unknown), "no storage deal")
    assert_error(cli.run("store", "rm", unknown, "--from", "owner"), "no storage deal")
    assert_error(cli.run("store", "rm", deal.hex(), "--from", "other"), "only the owner")
    assert_error(cli.run("store", "ls"), "--from KEY or --owner")
    assert_error(cli.run("store", "ls", "--from", "owner", "--owner", addr(OWNER)))
    assert not out.exists()


def test_store_ls_and_status_show_the_deal(cli: Cli, deal: bytes) -> None:
    doc = ok_json(cli.run("--json", "store", "ls", "--from", "owner"))
    assert [d["file_id"] for d in doc["deals"]] == [deal.hex()]
    assert ok_json(cli.run("--json", "store", "ls", "--owner", addr(OTHER)))["deals"] == []
    r = cli.run("store", "ls", "--owner", "owner")
    assert r.returncode == 0 and deal.hex() in r.stdout
    doc = ok_json(cli.run("--json", "store", "status", deal.hex(), "--no-check"))
    assert doc["deal"]["file_id"] == deal.hex() and "health" not in doc
    # no provider process behind the records: every piece is missing, and it says so
    doc = ok_json(cli.run("--json", "store", "status", deal.hex(), "--timeout", "2"))
    assert doc["health"]["segments"] == [0] and not doc["health"]["recoverable"]
    assert all(c["missing"] == 1 for c in doc["health"]["columns"])
    r = cli.run("store", "status", deal.hex(), "--timeout", "2")
    assert r.returncode == 0 and "NOT recoverable" in r.stdout


def test_store_get_fails_cleanly_when_no_provider_answers(cli: Cli, tmp_path: Path,
                                                          deal: bytes) -> None:
    out = tmp_path / "out"
    assert_error(cli.run("store", "get", deal.hex(), "-o", str(out), "--from", "owner",
                         "--timeout", "2"), "segment 0", "pieces needed")
    assert list(tmp_path.iterdir()) == []  # no partial or temporary file


def test_store_rm_cancels_the_deal(cli: Cli, client: Client, deal: bytes) -> None:
    before = client.balance(addr(OWNER))
    locked = int(client.storage_deal(deal)["escrow"]) + int(
        client.storage_deal(deal)["repair_budget"])
    doc = ok_json(cli.run("--json", "store", "rm", deal.hex(), "--from", "owner"))
    assert doc["status"] == "cancelled"
    assert client.balance(addr(OWNER)) > before + locked - 10**6  # refund minus the fee
    assert_error(cli.run("store", "rm", deal.hex(), "--from", "owner"), "already cancelled")
