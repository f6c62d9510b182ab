"""Contracts through a real node: the HTTP API, the SDK and the ``smart contract`` commands.

One node for the whole module (``smart_node``); the API tests and the CLI tests use
different accounts so their balance and nonce checks do not interfere. The state-level
behaviour (gas, reverts, every example contract) is tested in ``test_contracts.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from framework.harness import NodeProcess
from test_api import Api
from test_cli import Cli, assert_error, keyed_cli, ok_json

from smartchain.client import Client, deployed_address
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey

SMART_NODE_CHAIN_ID = "smart-contracts-test-1"
HPC = 10**8
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "contracts"


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_contracts_node/" + tag.encode()))


DEPLOYER, OTHER = _key("deployer"), _key("other")  # API/SDK accounts
CLI_KEYS = {name: _key(name) for name in ("alice", "bob", "buyer", "seller", "arbiter")}
SMART_NODE_GENESIS = [(k.address, 1_000 * HPC) for k in (DEPLOYER, OTHER, *CLI_KEYS.values())]

PROBE = b"""
function echo(...) return ... end
function who() return ctx.caller, ctx.value, ctx.height end
function fail(why) error(why) end
function spin() while true do end end
"""


def addr(key: PrivateKey) -> str:
    return to_bech32(key.address)


@pytest.fixture(scope="module")
def client(smart_node: NodeProcess) -> Client:
    return smart_node.client


@pytest.fixture(scope="module")
def probe(client: Client) -> str:
    """A contract deployed through the SDK, for the API tests."""
    result = client.deploy_contract(DEPLOYER, PROBE, value=3 * HPC)
    assert result["receipt"]["ok"], result["receipt"]
    assert result["payload"] == {"source_size": len(PROBE), "code_hash": h256(PROBE).hex(),
                                 "init_args": [], "value": str(3 * HPC), "value_hpc": "3"}
    return deployed_address(result)


# --- API and SDK -----------------------------------------------------------------------------


def test_contract_view_and_query(api: Api, client: Client, probe: str) -> None:
    doc = api.ok(f"/v1/contracts/{probe}")
    assert doc == client.contract(probe)
    height = doc.pop("height")
    assert int(height) >= 1 and doc == {
        "address": probe, "creator": addr(DEPLOYER), "code_hash": h256(PROBE).hex(),
        "code_size": len(PROBE), "balance": str(3 * HPC), "balance_hpc": "3",
        "source": PROBE.decode()}
    assert api.ok(f"/v1/accounts/{probe}")["balance"] == str(3 * HPC)  # an account too

    echoed = client.query_contract(probe, "echo", [None, True, -(1 << 63), "hé", b"\xff\x00"])
    assert echoed["ok"] is True and int(echoed["gas_used"]) > 0
    assert echoed["results"] == [None, True, -(1 << 63), "hé", {"hex": "ff00"}]
    r = api.post(f"/v1/contracts/{probe}/query", json={"function": "echo", "args": [
        {"hex": "6869"}, (1 << 63) - 1]})
    assert r.status_code == 200 and r.json()["results"] == ["hi", (1 << 63) - 1], r.text

    caller, value, at = client.query_contract(probe, "who", caller=addr(OTHER),
                                              value=5)["results"]
    assert (caller, value) == (addr(OTHER), 5) and at >= int(height)
    r = api.post(f"/v1/contracts/{probe}/query", json={"function": "who", "value": "7"})
    assert r.json()["results"][:2] == [to_bech32(bytes(20)), 7]  # no caller: zero address


BAD_QUERIES: list[tuple[Any, int, str]] = [
    ({"function": "echo", "args": [1.5]}, 400, "invalid_argument"),
    ({"function": "echo", "args": [[1]]}, 400, "invalid_argument"),
    ({"function": "echo", "args": [{"a": 1}]}, 400, "invalid_argument"),
    ({"function": "echo", "args": [{"hex": "zz"}]}, 400, "invalid_argument"),
    ({"function": "echo", "args": [1 << 63]}, 400, "invalid_argument"),
    ({"function": "echo", "args": list(range(17))}, 400, "invalid_argument"),
    ({"function": "echo", "args": ["x" * 40_000, "y" * 40_000]}, 400, "invalid_argument"),
    ({"function": "echo", "args": "x"}, 400, "malformed"),
    ({"args": []}, 400, "malformed"),
    ([], 400, "malformed"),
    ({"function": "init"}, 400, "invalid_function"),
    ({"function": "_private"}, 400, "invalid_function"),
    ({"function": "who", "caller": "smart1bogus"}, 400, "invalid_address"),
    ({"function": "who", "value": -1}, 400, "malformed"),
    ({"function": "who", "value": "1.5"}, 400, "malformed"),
    ({"function": "who", "value": True}, 400, "malformed"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_QUERIES,
                         ids=[str(b)[:40] for b, _, _ in BAD_QUERIES])
def test_bad_queries(api: Api, probe: str, body: Any, status: int, code: str) -> None:
    r = api.post(f"/v1/contracts/{probe}/query", json=body)  # Api checks the error shape
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text


def test_query_errors_and_unknown_contracts(api: Api, probe: str) -> None:
    r = api.post(f"/v1/contracts/{probe}/query", json={"function": "echo", "args": [0.5]})
    assert "floating-point" in r.json()["error"]["message"]
    r = api.post(f"/v1/contracts/{probe}/query", data=b"{not json")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json")

    r = api.post(f"/v1/contracts/{probe}/query", json={"function": "fail", "args": ["nope"]})
    error = r.json()["error"]
    assert (r.status_code, error["code"]) == (422, "contract_failed"), r.text
    assert "nope" in error["message"] and re.search(r"gas used \d+", error["message"])
    r = api.post(f"/v1/contracts/{probe}/query", json={"function": "missing"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "contract_failed")

    nobody = to_bech32(h256(b"no contract here")[:20])
    for path in (f"/v1/contracts/{nobody}", f"/v1/contracts/{addr(DEPLOYER)}"):
        r = api.get(path)  # an account that is not a contract is not found either
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), r.text
        r = api.post(path + "/query", json={"function": "echo"})
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), r.text
    for path in ("/v1/contracts/smart1bogus", "/v1/contracts/x/query"):
        r = api.request("GET" if path.endswith("bogus") else "POST", path, json={})
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_address"), r.text


def test_runaway_query_is_stopped(api: Api, probe: str) -> None:
    r = api.post(f"/v1/contracts/{probe}/query", json={"function": "spin"})
    error = r.json()["error"]
    assert (r.status_code, error["code"]) == (422, "contract_failed"), r.text
    assert "watchdog" in error["message"] or "out of gas" in error["message"], error
    assert int(api.status()["height"]) >= 1  # the node still answers


def test_call_over_sdk_and_tx_view(client: Client, probe: str) -> None:
    done = client.call_contract(OTHER, probe, "echo", [addr(OTHER), 42, b"\xfe"], value=HPC)
    assert done["receipt"]["ok"], done["receipt"]
    assert done["kind"] == "contracts/call" and done["payload"] == {
        "contract": probe, "function": "echo", "args": [addr(OTHER), 42, {"hex": "fe"}],
        "value": str(HPC), "value_hpc": "1"}
    assert int(done["gas_limit"]) > int(done["receipt"]["gas_used"])  # the dry run sufficed
    assert client.contract(probe)["balance"] == str(4 * HPC)


# --- CLI -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(smart_node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    home = Path(tmp_path_factory.mktemp("contract-cli")) / "smart-home"
    return keyed_cli(home, smart_node.url or "", CLI_KEYS)


def test_cli_token_contract(cli: Cli, client: Client, api: Api, tmp_path: Path) -> None:
    alice, bob = addr(CLI_KEYS["alice"]), addr(CLI_KEYS["bob"])
    bad = tmp_path / "bad.lua"
    bad.write_text("function f()\n  local x = 1\n  return x * 1.5\nend\n")
    deployed, float_deploy = cli.many(
        ["contract", "deploy", str(EXAMPLES / "token.lua"), "--from", "alice",
         "--init", "1000000", "--json"],
        ["contract", "deploy", str(bad), "--from", "bob"])
    doc = ok_json(deployed)
    token = doc["contract"]
    assert token.startswith("smart1") and token == deployed_address(doc)
    assert doc["payload"]["init_args"] == [1000000]
    assert_error(float_deploy, "bad.lua", "line 3", "floating-point")

    r = cli.run("contract", "call", token, "transfer", "@bob", "250", "--from", "alice")
    assert r.returncode == 0, r.stderr
    assert f"called transfer on {token}" in r.stdout and "committed" in r.stdout
    tx_hash = re.search(r"tx ([0-9a-f]{64}) committed", r.stdout).group(1)  # type: ignore
    tx = client.tx(tx_hash)
    assert tx["payload"] == {"contract": token, "function": "transfer", "args": [bob, 250],
                             "value": "0", "value_hpc": "0"}
    assert int(tx["gas_limit"]) > int(tx["receipt"]["gas_used"])  # estimated by the dry run

    bob_before = client.account(bob)
    (balance, too_much, typo, info, info_json, negative) = cli.many(
        ["contract", "query", token, "balance_of", "@bob"],
        ["contract", "call", token, "transfer", "@alice", "251", "--from", "bob"],
        ["contract", "call", token, "transfer", "@alice", "1", "--from", "bob", "--vlaue", "1"],
        ["contract", "info", token], ["contract", "info", token, "--source", "--json"],
        ["contract", "call", token, "transfer", "@alice", "-5", "--from", "bob"])
    assert balance.returncode == 0 and balance.stdout.strip() == "250", balance.stderr
    assert_error(too_much, "insufficient balance", "not sent")
    assert_error(typo, "no such option: --vlaue")
    assert_error(negative, "amount must be positive")  # -5 is an integer, not an option
    assert client.account(bob) == bob_before  # no transaction: nonce and HPC unchanged
    assert bob_before["nonce"] == bob_before["pending_nonce"] == "0"
    assert info.returncode == 0 and alice in info.stdout and "creator" in info.stdout
    assert ok_json(info_json)["source"] == (EXAMPLES / "token.lua").read_text()
    assert api.ok(f"/v1/accounts/{token}")["balance"] == "0"


def test_cli_escrow_with_value(cli: Cli, client: Client) -> None:
    seller = addr(CLI_KEYS["seller"])
    seller_before = client.balance(seller)
    doc = ok_json(cli.run("contract", "deploy", str(EXAMPLES / "escrow.lua"), "--from", "buyer",
                          "--value", "10", "--init", f"{seller} @arbiter 100", "--json"))
    escrow = doc["contract"]
    assert doc["payload"]["value"] == str(10 * HPC)
    assert doc["payload"]["init_args"] == [seller, addr(CLI_KEYS["arbiter"]), 100]

    account, stranger = cli.many(["query", "account", escrow],
                                 ["contract", "call", escrow, "release", "--from", "seller"])
    assert account.returncode == 0 and "balance: 10 HPC" in account.stdout, account.stderr
    assert_error(stranger, "only the buyer or the arbiter")

    r = cli.run("contract", "call", escrow, "release", "--from", "arbiter")
    assert r.returncode == 0 and "event contract/released" in r.stdout, r.stderr
    assert client.balance(seller) == seller_before + 10 * HPC
    status = cli.run("contract", "query", escrow, "status")
    assert status.returncode == 0 and status.stdout.split()[:2] == ["released", str(10 * HPC)]
    assert client.contract(escrow)["balance"] == "0"
