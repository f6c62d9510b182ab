"""Every ``smart`` command's --json output keeps the JSON contract (docs/api.md): one JSON
object on stdout, 64-bit numbers as strings, an error code from the closed list, and the
exit codes (0 ok, 1 error or refused, 2 usage, 3 committed but failed).

The command tree is walked from the CLI itself, so a new command without an invocation
here fails the test. Commands that run until stopped (a node, a devnet, an agent) or need a
network of providers are listed with the reason they are not run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer.main
from framework.harness import NodeProcess
from test_cli import Cli, keyed_cli

from smartchain.cli.main import app
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.jsoncontract import EXIT_ERROR, EXIT_TX_FAILED, EXIT_USAGE, violations

SMART_NODE_CHAIN_ID = "smart-cli-json-1"
HPC = 10**8


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_cli_json_contract/" + tag.encode()))


ALICE, BOB = _key("alice"), _key("bob")
SMART_NODE_GENESIS = [(ALICE.address, 1_000 * HPC), (BOB.address, 1_000 * HPC)]
ZERO32 = "00" * 32
FILE_FORMATS = {"genesis export"}  # genesis.json verbatim (docs/api.md, the exceptions)
NOT_RUN = {  # command -> why this test does not run it
    "node start": "runs a node until stopped (test_devnet, test_join_network)",
    "devnet up": "starts a network (test_devnet)",
    "devnet down": "stops a network (test_devnet)",
    "agent run": "runs the SmartAgent until stopped (test_iot_*)",
    "store put": "needs storage providers (test_storage_e2e)",
    "store get": "needs storage providers (test_storage_e2e)",
    "compute run": "needs compute providers (test_compute_api)",
}


def _leaves(command: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    subs = getattr(command, "commands", None)
    if not subs:
        return [" ".join(prefix)]
    return [leaf for name, sub in subs.items() for leaf in _leaves(sub, (*prefix, name))]


def _invocations(tmp: Path, alice: str, bob: str) -> dict[str, list[str]]:
    """An invocation of each command (with --json), or several; failing ones are as
    welcome as succeeding ones: their error documents are checked too."""
    seed_file = tmp / "seed.hex"
    seed_file.write_text(_key("imported").seed.hex())
    return {
        "status": ["status"],
        "keys new": ["keys", "new", "fresh", "--insecure"],
        "keys list": ["keys", "list"],
        "keys show": ["keys", "show", "alice"],
        "keys export": ["keys", "export", "alice"],
        "keys import": ["keys", "import", "imported", "--insecure", "--seed-file",
                        str(seed_file)],
        "keys rename": ["keys", "rename", "imported", "renamed"],
        "keys delete": ["keys", "delete", "renamed", "--yes"],
        "tx transfer": ["tx", "transfer", "--from", "alice", "--to", "bob", "--amount", "1"],
        "query account": ["query", "account", alice],
        "query block": ["query", "block", "1"],
        "query tx": ["query", "tx", ZERO32],
        "node init": ["node", "init", "--home", str(tmp / "nodehome"), "--insecure"],
        "node show-id": ["node", "show-id", "--home", str(tmp / "nodehome")],
        "agent status": ["agent", "status", "--config", str(tmp / "none.toml")],
        "agent key new": ["agent", "key", "new", str(tmp / "agent.key"), "--insecure"],
        "agent key show": ["agent", "key", "show", str(tmp / "agent.key")],
        "genesis export": ["genesis", "export"],
        "token issue": ["token", "issue", "--from", "alice", "--symbol", "JSN", "--name",
                        "Json", "--supply", "1000", "--mintable"],
        "token transfer": ["token", "transfer", "--from", "alice", "--to", "bob", "JSN", "5"],
        "token approve": ["token", "approve", "--from", "alice", "--spender", "bob", "JSN",
                          "3"],
        "token transfer-from": ["token", "transfer-from", "--from", "bob", "--owner", "alice",
                                "--to", "bob", "JSN", "1"],
        "token mint": ["token", "mint", "--from", "alice", "JSN", "10"],
        "token burn": ["token", "burn", "--from", "alice", "JSN", "1"],
        "token info": ["token", "info", "JSN"],
        "token list": ["token", "list"],
        "token balance": ["token", "balance", "JSN", "alice"],
        "token allowance": ["token", "allowance", "JSN", "alice", "bob"],
        "contract deploy": ["contract", "deploy", "--from", "alice", str(tmp / "c.lua")],
        "contract call": ["contract", "call", "--from", "alice", alice, "get"],
        "contract query": ["contract", "query", alice, "get"],
        "contract info": ["contract", "info", alice],
        "compute status": ["compute", "status", "0"],
        "compute result": ["compute", "result", "0"],
        "compute cancel": ["compute", "cancel", "0", "--from", "alice"],
        "compute providers": ["compute", "providers"],
        "store ls": ["store", "ls", "--from", "alice"],
        "store rm": ["store", "rm", ZERO32, "--from", "alice"],
        "store status": ["store", "status", ZERO32],
        "store share": ["store", "share", ZERO32, "--from", "alice", "--with", bob],
        "validator register": ["validator", "register", "--from", "bob", "--stake", "1"],
        "validator list": ["validator", "list"],
        "validator show": ["validator", "show", alice],
        "validator unjail": ["validator", "unjail", "--from", "bob"],
        "validator eliminate": ["validator", "eliminate", "--from", "bob", alice],
        "validator vote-eliminate": ["validator", "vote-eliminate", "--from", "bob", alice],
        "validator approve": ["validator", "approve", "--from", "bob", alice],
        "stake delegate": ["stake", "delegate", "--from", "bob", alice, "1"],
        "stake undelegate": ["stake", "undelegate", "--from", "bob", alice, "1"],
        "stake show": ["stake", "show", bob],
        "device register-manufacturer": ["device", "register-manufacturer", "--from", "bob",
                                         "--name", "Acme"],
        "device certify": ["device", "certify", "--from", "bob", "--device", ZERO32,
                           "--model", "m", "--serial", "s"],
        "device register": ["device", "register", "--from", "bob", "--device", ZERO32],
        "device transfer": ["device", "transfer", "--from", "bob", ZERO32, "--to", alice],
        "device revoke": ["device", "revoke", "--from", "bob", ZERO32],
        "device show": ["device", "show", ZERO32],
        "device list": ["device", "list", bob],
        "device manufacturer": ["device", "manufacturer", bob],
        "market offer": ["market", "offer", "--from", "bob", "--type", "bandwidth",
                         "--unit", "GiB", "--price", "1"],
        "market ask": ["market", "ask", "--from", "bob", "--type", "bandwidth", "--qty", "1",
                       "--price", "1"],
        "market bid": ["market", "bid", "--from", "bob", "--type", "bandwidth", "--qty", "1",
                       "--price", "1"],
        "market cancel": ["market", "cancel", "--from", "bob", "999"],
        "market sign-receipt": ["market", "sign-receipt", "--from", "bob", "999", "1"],
        "market submit-receipt": ["market", "submit-receipt", "--from", "bob", "999", "1"],
        "market close": ["market", "close", "--from", "bob", "999"],
        "market offers": ["market", "offers"],
        "market book": ["market", "book", "bandwidth"],
        "market agreements": ["market", "agreements", bob],
        "market agreement": ["market", "agreement", "999"],
        "market receipts": ["market", "receipts", "999"],
        "gov deposit": ["gov", "deposit", "999", "1", "--from", "bob"],
        "gov vote": ["gov", "vote", "999", "yes", "--from", "bob"],
        "gov list": ["gov", "list"],
        "gov show": ["gov", "show", "999"],
        "gov params": ["gov", "params"],
        "gov propose param": ["gov", "propose", "param", "min_gas_price=2", "--from", "bob",
                              "--deposit", "1"],
        "gov propose spend": ["gov", "propose", "spend", "--from", "bob", "--to", alice,
                              "--amount", "1", "--deposit", "1", "--title", "t"],
        "gov propose text": ["gov", "propose", "text", "--from", "bob", "--title", "t",
                             "--deposit", "1"],
        "data search": ["data", "search"],
        "data show": ["data", "show", ZERO32],
        "data consent": ["data", "consent", "--from", "bob", "--asset", ZERO32, "--purpose",
                         "insurance", "--price", "1"],
        "data withdraw": ["data", "withdraw", "999", "--from", "bob"],
        "data buy": ["data", "buy", "999", "--from", "bob", "--asset", ZERO32, "--batch", "0",
                     "--purpose", "insurance"],
        "data register-box-key": ["data", "register-box-key", "--from", "bob"],
        "data deliver": ["data", "deliver", "--from", "bob"],
        "data fetch": ["data", "fetch", "999", "--from", "bob", "--out", str(tmp / "none")],
        "data prove": ["data", "prove", "999", "0", "--from", "bob"],
        "rewards show": ["rewards", "show"],
        "rewards withdraw": ["rewards", "withdraw", "--from", "bob"],
        "rewards commission": ["rewards", "commission", "100", "--from", "bob"],
    }


@pytest.fixture(scope="module")
def cli(smart_node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return keyed_cli(tmp_path_factory.mktemp("cli-home"), smart_node.url or "",
                     {"alice": ALICE, "bob": BOB})


def _check(command: str, r: subprocess.CompletedProcess) -> dict[str, Any]:
    assert "Traceback" not in r.stderr + r.stdout, (command, r.stderr)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        pytest.fail(f"{command}: stdout is not one JSON document: {r.stdout[:300]!r} "
                    f"(stderr {r.stderr[:300]!r})")
    if command in FILE_FORMATS:  # genesis.json as written to disk: an object, its own types
        assert isinstance(doc, dict), command
    else:
        assert violations(doc) == [], (command, violations(doc)[:5])
    if r.returncode == 0:
        assert "error" not in doc, (command, doc)
    else:
        assert set(doc) == {"error"}, (command, doc)
        assert r.returncode in (EXIT_ERROR, EXIT_USAGE, EXIT_TX_FAILED), (command, r.returncode)
    return doc


def test_every_json_command_keeps_the_contract(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "c.lua").write_text("function get() return 1 end\n")
    alice, bob = to_bech32(ALICE.address), to_bech32(BOB.address)
    invocations = _invocations(tmp_path, alice, bob)
    commands = set(_leaves(typer.main.get_command(app)))
    assert commands - set(NOT_RUN) == set(invocations), "a command has no invocation here"
    ok = []
    for command, args in invocations.items():  # in order: later ones use earlier results
        doc = _check(command, cli.run(*args, "--json"))
        if "error" not in doc:
            ok.append(command)
    # the reads and the simple writes succeed: their documents, not only errors, were checked
    assert {"status", "keys list", "tx transfer", "query account", "query block",
            "token issue", "token list", "token transfer", "gov list", "gov params",
            "validator list", "market offers", "store ls", "data search", "data deliver",
            "data register-box-key", "rewards show"} <= set(ok), ok


def test_a_committed_failure_and_a_refusal_have_distinct_codes_and_exit_codes(
        cli: Cli) -> None:
    """Refused before the mempool (its simulation failed): exit 1 and the reason's own
    code. Committed but failed (sent with a fixed gas limit, so no simulation stops it):
    exit 3, code tx_failed, and the hash, height and receipt in details."""
    refused = cli.run("tx", "transfer", "--from", "bob", "--to", "alice", "--amount",
                      "100000", "--json")
    assert refused.returncode == EXIT_ERROR, refused.stdout
    assert json.loads(refused.stdout)["error"]["code"] == "insufficient_funds"
    cli.run("token", "issue", "--from", "bob", "--symbol", "FLD", "--name", "Fail",
            "--supply", "1", "--json")
    failed = cli.run("token", "issue", "--from", "bob", "--symbol", "FLD", "--name", "Again",
                     "--supply", "1", "--gas", "2000000", "--json")
    assert failed.returncode == EXIT_TX_FAILED, failed.stdout + failed.stderr
    error = json.loads(failed.stdout)["error"]
    assert error["code"] == "tx_failed" and error["details"]["receipt"]["ok"] is False
    assert len(error["details"]["hash"]) == 64 and error["details"]["height"].isdigit()
