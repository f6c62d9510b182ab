"""Tokens through a real node: the HTTP API, the SDK and the ``smart token`` commands.

One node for the whole module (``smart_node``); the API tests and the CLI tests use
different accounts so their balance checks do not interfere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from framework.harness import NodeProcess
from test_api import Api
from test_cli import Cli, assert_error, assert_json_error, keyed_cli, ok_json

from smartchain.client import ApiError, Client, SimulationFailed
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.tokens.types import MAX_AMOUNT

SMART_NODE_CHAIN_ID = "smart-tokens-test-1"
HPC = 10**8


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_tokens_node/" + tag.encode()))


# API/SDK accounts
FIRM, HOLDER, AGENT = _key("firm"), _key("holder"), _key("agent")
# CLI accounts (in the CLI's keyring under these names)
CLI_KEYS = {"issuer": _key("issuer"), "user": _key("user"), "spender": _key("spender")}
SMART_NODE_GENESIS = [(k.address, 1_000 * HPC)
                      for k in (FIRM, HOLDER, AGENT, *CLI_KEYS.values())]


def addr(key: PrivateKey) -> str:
    return to_bech32(key.address)


@pytest.fixture(scope="module")
def client(smart_node: NodeProcess) -> Client:
    return smart_node.client


def ok(doc: dict[str, Any]) -> dict[str, Any]:
    assert doc["status"] == "committed" and doc["receipt"]["ok"], doc["receipt"]
    return doc


# --- API and SDK -----------------------------------------------------------------------------


def test_token_lifecycle_over_api(api: Api, client: Client) -> None:
    issued = ok(client.issue_token(FIRM, "PARK", "Parking credit", 2, 100_000, mintable=True,
                                   max_supply=1_000_000))
    assert issued["kind"] == "tokens/issue"
    assert issued["payload"] == {"symbol": "PARK", "name": "Parking credit", "decimals": 2,
                                 "supply": "100000", "mintable": True, "max_supply": "1000000"}
    (event,) = issued["receipt"]["events"]
    assert event["kind"] == "token_issue"
    assert event["attributes"]["issuer"] == addr(FIRM)
    expected = {"symbol": "PARK", "name": "Parking credit", "decimals": 2,
                "issuer": addr(FIRM), "mintable": True, "supply": "100000",
                "max_supply": "1000000", "supply_amount": "1000",
                "max_supply_amount": "10000"}
    assert api.ok("/v1/tokens/PARK") == expected == client.token("PARK")
    assert expected in api.ok("/v1/tokens")["tokens"]

    sent = ok(client.token_transfer(FIRM, "PARK", addr(HOLDER), 1_234))
    assert sent["payload"] == {"symbol": "PARK", "to": addr(HOLDER), "amount": "1234"}
    assert sent["receipt"]["events"][0]["attributes"] == {
        "symbol": "PARK", "from": addr(FIRM), "to": addr(HOLDER), "amount": "1234"}
    assert api.ok(f"/v1/tokens/PARK/balances/{addr(HOLDER)}") == {
        "symbol": "PARK", "address": addr(HOLDER), "balance": "1234", "decimals": 2,
        "amount": "12.34"}
    assert client.token_balance("PARK", addr(FIRM)) == 100_000 - 1_234
    assert api.account(HOLDER)["tokens"] == [
        {"symbol": "PARK", "balance": "1234", "decimals": 2, "amount": "12.34"}]

    ok(client.approve(HOLDER, "PARK", addr(AGENT), 1_000))
    path = f"/v1/tokens/PARK/allowances/{addr(HOLDER)}/{addr(AGENT)}"
    assert api.ok(path) == {"symbol": "PARK", "owner": addr(HOLDER), "spender": addr(AGENT),
                            "allowance": "1000", "decimals": 2, "amount": "10"}
    ok(client.transfer_from(AGENT, "PARK", addr(HOLDER), addr(AGENT), 400))
    assert client.allowance("PARK", addr(HOLDER), addr(AGENT)) == 600
    assert client.token_balance("PARK", addr(AGENT)) == 400

    ok(client.mint(FIRM, "PARK", addr(AGENT), 5_000))
    ok(client.burn(AGENT, "PARK", 400))
    info = client.token("PARK")
    assert info["supply"] == str(100_000 + 5_000 - 400)
    assert client.token_balance("PARK", addr(AGENT)) == 5_000


def test_failed_token_tx_pays_fee_and_changes_nothing(api: Api, client: Client) -> None:
    ok(client.issue_token(HOLDER, "FIX", "Fixed supply", 0, 10))
    hpc_before = client.balance(addr(HOLDER))
    with pytest.raises(SimulationFailed) as refused:  # automatic gas: simulated, not sent
        client.token_transfer(HOLDER, "FIX", addr(AGENT), 11)
    assert refused.value.code == "insufficient_funds"
    assert client.balance(addr(HOLDER)) == hpc_before
    doc = client.token_transfer(HOLDER, "FIX", addr(AGENT), 11, gas_limit=50_000)
    rc = doc["receipt"]
    assert rc["ok"] is False and rc["code_name"] == "insufficient_funds", rc
    assert "insufficient FIX" in rc["log"] and rc["events"] == []
    assert client.balance(addr(HOLDER)) == hpc_before - int(rc["fee"])
    assert client.token_balance("FIX", addr(HOLDER)) == 10
    assert client.token_balance("FIX", addr(AGENT)) == 0
    assert client.token("FIX")["max_supply"] == "10"  # fixed: the cap is the supply


def test_malformed_issue_refused_at_submission(client: Client) -> None:
    with pytest.raises(ApiError) as exc:
        client.issue_token(FIRM, "HPC", "Not the native coin", 8, 1)
    assert exc.value.status == 422 and exc.value.code == "invalid_payload"
    assert "reserved" in exc.value.message
    with pytest.raises(ApiError) as exc:
        client.issue_token(FIRM, "BIG", "Too big", 0, MAX_AMOUNT + 1)
    assert exc.value.code == "invalid_payload"


def _valid(key: PrivateKey) -> str:
    return addr(key)


BAD_TOKEN_GETS: list[tuple[str, int, str]] = [
    ("/v1/tokens/park", 400, "invalid_symbol"),
    ("/v1/tokens/P", 400, "invalid_symbol"),
    ("/v1/tokens/ABCDEFGHIJK", 400, "invalid_symbol"),
    ("/v1/tokens/%00", 400, "invalid_symbol"),
    ("/v1/tokens/P%C3%84RK", 400, "invalid_symbol"),
    ("/v1/tokens/NOPE", 404, "not_found"),
    ("/v1/tokens/HPC", 404, "not_found"),
    (f"/v1/tokens/NOPE/balances/{_valid(FIRM)}", 404, "not_found"),
    (f"/v1/tokens/park/balances/{_valid(FIRM)}", 400, "invalid_symbol"),
    ("/v1/tokens/PARK/balances/smart1bogus", 400, "invalid_address"),
    (f"/v1/tokens/PARK/allowances/{_valid(FIRM)}/smart1bogus", 400, "invalid_address"),
    (f"/v1/tokens/PARK/allowances/x/{_valid(FIRM)}", 400, "invalid_address"),
    (f"/v1/tokens/NOPE/allowances/{_valid(FIRM)}/{_valid(HOLDER)}", 404, "not_found"),
    ("/v1/tokens/PARK/balances", 404, "not_found"),
    ("/v1/tokens/PARK/balances/", 404, "not_found"),
]


@pytest.mark.parametrize(("path", "status", "code"), BAD_TOKEN_GETS,
                         ids=[p[:48] for p, _, _ in BAD_TOKEN_GETS])
def test_bad_token_requests(api: Api, path: str, status: int, code: str) -> None:
    r = api.get(path)  # Api checks the JSON error shape and that it is never a 5xx
    assert (r.status_code, r.json()["error"]["code"]) == (status, code), r.text


def test_unknown_token_message_points_hpc_to_accounts(api: Api) -> None:
    assert "native coin" in api.get("/v1/tokens/HPC").json()["error"]["message"]


# --- CLI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(smart_node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    home = Path(tmp_path_factory.mktemp("token-cli")) / "smart-home"
    return keyed_cli(home, smart_node.url or "", CLI_KEYS)


def test_cli_issue_transfer_and_query(cli: Cli, client: Client) -> None:
    issued = ok_json(cli.run("token", "issue", "--from", "issuer", "--symbol", "WATT",
                             "--name", "Kilowatt hours", "--decimals", "3", "--supply",
                             "12.345", "--json"))
    assert issued["receipt"]["ok"] and issued["payload"]["supply"] == "12345"
    assert issued["payload"]["max_supply"] == "12345" and issued["payload"]["mintable"] is False

    r = cli.run("token", "transfer", "--from", "issuer", "--to", "user", "WATT", "1.5")
    assert r.returncode == 0, r.stderr
    assert f"sent 1.5 WATT to {addr(CLI_KEYS['user'])}" in r.stdout and "committed" in r.stdout
    sent = ok_json(cli.run("token", "transfer", "--from", "issuer", "--to",
                           addr(CLI_KEYS["user"]), "--units", "WATT", "5", "--json"))
    assert sent["payload"]["amount"] == "5"

    info, listed, table, bal_json, bal, acct_json, acct = cli.many(
        ["token", "info", "WATT", "--json"], ["token", "list", "--json"], ["token", "list"],
        ["token", "balance", "WATT", "user", "--json"], ["token", "balance", "WATT", "user"],
        ["query", "account", "user", "--json"], ["query", "account", "user"])
    info = ok_json(info)
    assert info["supply"] == "12345" and info["issuer"] == addr(CLI_KEYS["issuer"])
    assert info in ok_json(listed)["tokens"]
    assert table.returncode == 0 and "WATT" in table.stdout and "Kilowatt" in table.stdout
    assert ok_json(bal_json)["balance"] == "1505"
    assert bal.returncode == 0 and bal.stdout.strip() == "1.505 WATT (1505 units)"
    assert ok_json(acct_json)["tokens"] == [
        {"symbol": "WATT", "balance": "1505", "decimals": 3, "amount": "1.505"}]
    assert acct.returncode == 0 and "1.505 WATT (1505 units)" in acct.stdout
    assert "HPC" in acct.stdout
    assert client.token_balance("WATT", addr(CLI_KEYS["issuer"])) == 12_345 - 1_505


def test_cli_allowance_mint_and_burn(cli: Cli, client: Client) -> None:
    ok_json(cli.run("token", "issue", "--from", "issuer", "--symbol", "GAS", "--name",
                    "Metered gas", "--decimals", "2", "--supply", "100", "--mintable",
                    "--max-supply", "150", "--json"))
    assert client.token("GAS")["max_supply"] == "15000"
    r = cli.run("token", "approve", "--from", "issuer", "--spender", "spender", "GAS", "20")
    assert r.returncode == 0 and "allowed" in r.stdout, r.stderr
    moved = ok_json(cli.run("token", "transfer-from", "--from", "spender", "--owner", "issuer",
                            "--to", "user", "GAS", "7.25", "--json"))
    assert moved["receipt"]["events"][0]["attributes"]["spender"] == addr(CLI_KEYS["spender"])
    allowed = ok_json(cli.run("token", "allowance", "GAS", "issuer", "spender", "--json"))
    assert (allowed["allowance"], allowed["amount"]) == ("1275", "12.75")

    minted = ok_json(cli.run("token", "mint", "--from", "issuer", "GAS", "50", "--json"))
    assert minted["payload"]["to"] == addr(CLI_KEYS["issuer"])  # default: the issuer
    over = cli.run("token", "mint", "--from", "issuer", "--to", "user", "GAS", "0.01")
    line = assert_error(over, "failed", "max supply")
    assert line.startswith("error: transaction not sent")  # --gas auto simulated it first
    r = cli.run("token", "burn", "--from", "user", "GAS", "0.25")
    assert r.returncode == 0 and "burned 0.25 GAS" in r.stdout, r.stderr
    assert client.token("GAS")["supply"] == str(15_000 - 25)
    assert client.token_balance("GAS", addr(CLI_KEYS["user"])) == 700


def test_cli_token_errors(cli: Cli) -> None:
    ok_json(cli.run("token", "issue", "--from", "user", "--symbol", "ERR", "--name", "Errors",
                    "--supply", "10", "--json"))
    # At most one transaction per sender runs at once: two would race for one nonce.
    (dup, too_much, fixed_mint, bad_symbol, places, unknown, cap_needs_mint,
     units_too_big, bad_name, json_err) = cli.many(
        ["token", "issue", "--from", "issuer", "--symbol", "ERR", "--name", "Again",
         "--supply", "1"],
        ["token", "transfer", "--from", "spender", "--to", "user", "ERR", "1"],
        ["token", "mint", "--from", "user", "ERR", "1"],
        ["token", "info", "err"],
        ["token", "transfer", "--from", "user", "--to", "issuer", "ERR", "1.5"],
        ["token", "balance", "NOPE", "user"],
        ["token", "issue", "--from", "user", "--symbol", "CAP", "--name", "Cap",
         "--supply", "1", "--max-supply", "2"],
        ["token", "transfer", "--from", "user", "--to", "issuer", "--units", "ERR",
         str(MAX_AMOUNT + 1)],
        ["token", "issue", "--from", "user", "--symbol", "NAME", "--name", "", "--supply", "1"],
        ["token", "info", "NOPE", "--json"],
    )
    stranger_mint = cli.run("token", "mint", "--from", "spender", "ERR", "1")
    assert_error(dup, "transaction", "failed: token symbol 'ERR' is already issued")
    assert_error(too_much, "insufficient ERR: spender holds 0 ERR, this needs 1 ERR; "
                 "nothing was sent")
    assert_error(stranger_mint, "failed: only the issuer of ERR")
    assert_error(fixed_mint, "failed: ERR is not mintable")
    assert_error(bad_symbol, "invalid token symbol 'err'")
    assert_error(places, "ERR has no decimal places")
    assert_error(unknown, "no token NOPE")
    assert_error(cap_needs_mint, "--max-supply needs --mintable")
    assert_error(units_too_big, "too large")
    assert_error(bad_name, "token name")
    assert_json_error(json_err, "not_found")
