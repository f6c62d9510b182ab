"""The ``smart`` CLI, run as a user runs it: one subprocess per command.

Every command runs with ``SMART_HOME`` set to a temporary directory (the CLI keyring and
its config.toml live there) and with any other ``SMART_*`` variable of the caller removed.
The transaction and query tests share one detached devnet started by a module fixture;
each test uses its own demo accounts, so their balance checks do not interfere.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.crypto.keystore import load as load_key_file
from smartchain.node.config import NodeConfig

SMART = [sys.executable, "-m", "smartchain.cli.main"]
BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
UNITS = 10**8


# --- helpers ---------------------------------------------------------------------------


def cli_env(home: Path, passphrase: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SMART_") and k not in ("FORCE_COLOR", "COLUMNS")}
    env["SMART_HOME"] = str(home)
    if passphrase is not None:
        env["SMART_PASSPHRASE"] = passphrase
    return env


def smart(env: dict[str, str], *args: str, timeout: float = 60,
          stdin: str | None = None) -> subprocess.CompletedProcess:
    """One command; ``stdin`` is piped to it (else it reads an empty, non-terminal stdin)."""
    feed: dict[str, Any] = {"input": stdin} if stdin is not None else \
        {"stdin": subprocess.DEVNULL}
    return subprocess.run([*SMART, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **feed)


def smart_many(env: dict[str, str], *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Independent commands, run concurrently (each is mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: smart(env, *args), commands))


class Cli:
    """The ``smart`` command with one environment (home, keyring, node)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return smart(self.env, *args)

    def many(self, *commands: list[str]) -> list[subprocess.CompletedProcess]:
        return smart_many(self.env, *commands)


def keyed_cli(home: Path, node_url: str, keys: dict[str, Any]) -> Cli:
    """A CLI pointed at ``node_url`` with ``keys`` (name -> PrivateKey) imported unsealed."""
    env = cli_env(home)
    env["SMART_NODE"] = node_url
    with ThreadPoolExecutor(max_workers=4) as pool:
        for r in pool.map(lambda item: smart(env, "keys", "import", item[0], "--insecure",
                                             stdin=item[1].seed.hex()), keys.items()):
            assert r.returncode == 0, r.stderr
    return Cli(env)


def ok_json(r: subprocess.CompletedProcess) -> Any:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return json.loads(r.stdout)


def assert_error(r: subprocess.CompletedProcess, *fragments: str) -> str:
    """A failure as the CLI promises it: non-zero exit, one line on stderr, no traceback."""
    assert r.returncode != 0, f"expected a failure, got exit 0\nstdout: {r.stdout}"
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected a one-line error, got:\n{r.stderr}"
    assert lines[0].startswith("error: "), lines[0]
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"
    return lines[0]


def assert_json_error(r: subprocess.CompletedProcess, code: str | None = None) -> dict:
    assert r.returncode != 0, r.stdout
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"error"}, doc
    assert isinstance(doc["error"]["message"], str) and doc["error"]["message"]
    if code is not None:
        assert doc["error"]["code"] == code, doc
    return doc["error"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def devnet_cleanup(env: dict[str, str], home: Path) -> None:
    """`smart devnet down`, then SIGKILL whatever node is still recorded as running."""
    try:
        smart(env, "devnet", "down", "--home", str(home), timeout=60)
    except subprocess.TimeoutExpired:
        pass
    for runtime in home.glob("node*/node.json"):
        try:
            pid = int(json.loads(runtime.read_text())["pid"])
            # only a node of this devnet (a stale file's pid may belong to anyone by now)
            if str(runtime.parent).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def tamper(address: str) -> str:
    """The address with one data character replaced: bech32 must reject it."""
    i = len(address) - 10
    new = next(c for c in BECH32_CHARSET if c != address[i])
    return address[:i] + new + address[i + 1:]


# --- the shared devnet -----------------------------------------------------------------


class Net:
    def __init__(self, env: dict[str, str], home: Path, summary: dict) -> None:
        self.env = env
        self.home = home
        self.summary = summary
        self.chain_id: str = summary["chain_id"]
        self.api_url: str = summary["nodes"][0]["api_url"]
        self.addr = {a["name"]: a["address"] for a in summary["accounts"]}

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return smart(self.env, *args)

    def run_many(self, *commands: list[str]) -> list[subprocess.CompletedProcess]:
        return smart_many(self.env, *commands)

    def account(self, who: str) -> dict:
        """Straight from the node's API (cheaper than a CLI process; the CLI query of an
        account has tests of its own)."""
        return http_json(f"{self.api_url}/v1/accounts/{self.addr.get(who, who)}")

    def balance(self, who: str) -> int:
        return int(self.account(who)["balance"])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cli")
    env = cli_env(root / "smart-home")
    home = root / "devnet"
    try:
        r = smart(env, "devnet", "up", "--home", str(home), "--detach", "--json", "--validators",
                  "1", "--block-time-ms", "200", "--accounts", "8", "--api-port", str(free_port()),
                  "--compute-providers", "0", "--storage-providers", "0")
        yield Net(env, home, ok_json(r))
    finally:
        devnet_cleanup(env, home)


# --- keys ------------------------------------------------------------------------------


def test_keys_encrypted_new_list_show_export(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "smart-home", passphrase="correct horse")
    created = ok_json(smart(env, "keys", "new", "alice", "--json"))
    assert created["name"] == "alice" and created["encrypted"] is True
    addr = created["address"]
    assert addr.startswith("smart1")
    key_file = Path(created["file"])
    assert key_file.parent == tmp_path / "smart-home" / "keys"

    listed, human, shown, exported = smart_many(
        env, ["keys", "list", "--json"], ["keys", "list"], ["keys", "show", "alice", "--json"],
        ["keys", "export", "alice", "--json"])
    assert ok_json(listed) == {"keys": [{"name": "alice", "address": addr, "encrypted": True}]}
    assert human.returncode == 0 and "alice" in human.stdout and addr in human.stdout

    shown = ok_json(shown)
    assert shown["address"] == addr and shown["encrypted"] is True
    pub = shown["public_key"]

    exported = ok_json(exported)
    assert exported["address"] == addr
    key = PrivateKey.from_seed(bytes.fromhex(exported["seed"]))
    assert to_bech32(key.address) == addr
    assert key.public_key.hex() == pub
    # the key file is sealed: the seed is not in it
    text = key_file.read_text()
    assert exported["seed"] not in text and "insecure_plaintext_seed" not in text

    with ThreadPoolExecutor(max_workers=2) as pool:
        wrong = pool.submit(smart, cli_env(tmp_path / "smart-home", passphrase="wrong"),
                            "keys", "export", "alice")
        # no passphrase at all, and no terminal to ask on
        missing = pool.submit(smart, cli_env(tmp_path / "smart-home"), "keys", "export", "alice")
    assert_error(wrong.result(), "wrong passphrase")
    assert exported["seed"] not in wrong.result().stdout + wrong.result().stderr
    assert_error(missing.result(), "passphrase")


def test_keys_insecure_duplicate_and_invalid_names(tmp_path: Path) -> None:
    home = tmp_path / "smart-home"
    env = cli_env(home)
    created = ok_json(smart(env, "keys", "new", "bob", "--insecure", "--json"))
    assert created["encrypted"] is False
    # an insecure key exports without any passphrase
    exported = ok_json(smart(env, "keys", "export", "bob", "--json"))
    assert to_bech32(PrivateKey.from_seed(bytes.fromhex(exported["seed"])).address) \
        == created["address"]

    before = (home / "keys" / "bob.json").read_text()
    bad_names = ("bad name", "../evil", "x" * 65, "[/]")
    duplicate, unknown, *invalid = smart_many(
        env, ["keys", "new", "bob", "--insecure"], ["keys", "show", "carol"],
        *(["keys", "new", bad, "--insecure"] for bad in bad_names))
    assert_error(duplicate, "already exists")
    assert (home / "keys" / "bob.json").read_text() == before
    assert_error(unknown, "no key named 'carol'")
    for bad, r in zip(bad_names, invalid, strict=True):
        # the name is echoed verbatim (not eaten as console markup)
        assert_error(r, f"invalid key name {bad!r}")
    assert sorted(p.name for p in (home / "keys").iterdir()) == ["bob.json"]
    assert not (home / "evil.json").exists()

    # an encrypted key needs a non-empty passphrase
    assert_error(smart(cli_env(home, passphrase=""), "keys", "new", "carol"), "passphrase")
    assert ok_json(smart(env, "keys", "list", "--json")) == {"keys": [
        {"name": "bob", "address": created["address"], "encrypted": False}]}


def test_keys_import_reads_the_seed_from_stdin_or_a_file_never_the_command_line(
        tmp_path: Path) -> None:
    home = tmp_path / "smart-home"
    env = cli_env(home, passphrase="tidal quince harbour lantern")
    piped, from_file = PrivateKey.generate(), PrivateKey.generate()
    seed_file = tmp_path / "seed.hex"
    seed_file.write_text(from_file.seed.hex() + "\n")
    assert ok_json(smart(env, "keys", "import", "piped", "--json",
                         stdin=f"  {piped.seed.hex()}\n")) == {
        "name": "piped", "address": to_bech32(piped.address)}
    r = smart(env, "keys", "import", "filed", "--seed-file", str(seed_file), "--json")
    assert ok_json(r)["address"] == to_bech32(from_file.address)
    assert "warning" not in r.stderr  # a strong passphrase: nothing to say
    sealed = (home / "keys" / "filed.json").read_text()
    assert "crypto" in json.loads(sealed) and from_file.seed.hex() not in sealed
    assert load_key_file(home / "keys" / "filed.json",
                         "tidal quince harbour lantern").seed == from_file.seed

    other = PrivateKey.generate()
    on_argv = smart(env, "keys", "import", "argv", "--seed", other.seed.hex())
    assert_error(on_argv, "--seed is refused", "standard input")
    bad = "zz" + other.seed.hex()[2:]
    for r in (smart(env, "keys", "import", "bad", stdin=bad),
              smart(env, "keys", "import", "bad", stdin=other.seed.hex()[:-2]),
              smart(env, "keys", "import", "bad", "--seed-file", str(tmp_path / "nope"))):
        assert_error(r, "seed")
    for r in (on_argv, *(smart(env, "keys", "import", "bad", stdin=bad),)):
        assert other.seed.hex()[2:] not in r.stdout + r.stderr  # never echoed back
    assert sorted(p.name for p in (home / "keys").iterdir()) == ["filed.json", "piped.json"]


@pytest.mark.parametrize("command", [["keys", "new", "weak"],
                                     ["keys", "import", "weak", "--seed-file", "SEED"]])
def test_a_weak_new_passphrase_is_warned_about(tmp_path: Path, command: list[str]) -> None:
    seed_file = tmp_path / "seed.hex"
    seed_file.write_text(PrivateKey.generate().seed.hex())
    args = [str(seed_file) if a == "SEED" else a for a in command]
    r = smart(cli_env(tmp_path / "smart-home", passphrase="password123"), *args, "--json")
    assert ok_json(r)["name"] == "weak"  # warned, not refused: the key is sealed all the same
    assert "warning: weak passphrase" in r.stderr and "offline" in r.stderr, r.stderr
    assert "password123" not in r.stderr + r.stdout


# --- tx transfer -----------------------------------------------------------------------


def test_transfer_exact_amounts(net: Net) -> None:
    to = net.addr["demo2"]
    start = net.account("demo1")
    sender0, recipient0 = int(start["balance"]), net.balance(to)
    assert int(ok_json(net.run("query", "account", "demo2", "--json"))["balance"]) == recipient0

    tiny = ok_json(net.run("tx", "transfer", "--from", "demo1", "--to", to,
                           "--amount", "0.00000001", "--json"))
    assert tiny["status"] == "committed" and tiny["receipt"]["ok"] is True
    assert tiny["payload"] == {"to": to, "amount": "1", "amount_hpc": "0.00000001"}
    assert net.balance(to) == recipient0 + 1
    fee1 = int(tiny["receipt"]["fee"])
    assert net.balance("demo1") == sender0 - 1 - fee1

    r = net.run("tx", "transfer", "--from", "demo1", "--to", to, "--amount", "1.5")
    assert r.returncode == 0, r.stderr
    assert "sent 1.5 HPC" in r.stdout
    assert net.balance(to) == recipient0 + 1 + 150_000_000
    after = net.account("demo1")
    assert int(after["nonce"]) == int(start["nonce"]) + 2
    fee2 = sender0 - 1 - fee1 - 150_000_000 - int(after["balance"])
    assert 0 < fee2 < UNITS // 100  # a fee was paid, and it is a small one


def test_transfer_rejects_bad_amounts(net: Net) -> None:
    to = net.addr["demo4"]
    before = (net.account("demo3"), net.account(to))
    cases = {
        ("--amount", "-1"): "not a plain decimal",
        ("--amount=-1",): "not a plain decimal",
        ("--amount", "0"): "positive",
        ("--amount", "abc"): "not a plain decimal",
        ("--amount", "1.000000001"): "8 decimal places",
        ("--amount", "0.000000001"): "8 decimal places",
        ("--amount", "1" + "0" * 40): "too large",
        ("--amount", "1e2"): "not a plain decimal",
        ("--amount", "1_0"): "not a plain decimal",
        ("--units", "-5"): "non-negative integer",
        ("--units", "1.5"): "non-negative integer",
        ("--units", "0"): "positive",
    }
    results = net.run_many(*(["tx", "transfer", "--from", "demo3", "--to", to, *amount_args]
                             for amount_args in cases))
    for fragment, r in zip(cases.values(), results, strict=True):
        assert_error(r, fragment)
    assert (net.account("demo3"), net.account(to)) == before


def test_transfer_address_key_and_funds_errors(net: Net) -> None:
    to = net.addr["demo6"]
    before = (net.account("demo5"), net.account(to))
    bad = tamper(to)
    assert bad != to
    mixed_case = to[:6].upper() + to[6:]  # "SMART1" + lower-case data
    assert mixed_case not in (mixed_case.upper(), mixed_case.lower())

    def transfer(sender: str, recipient: str, amount: str) -> list[str]:
        return ["tx", "transfer", "--from", sender, "--to", recipient, "--amount", amount]

    checksum, mixed, no_key, no_name, query, too_much, no_fee = net.run_many(
        transfer("demo5", bad, "1"),
        transfer("demo5", mixed_case, "1"),
        transfer("nosuchkey", to, "1"),
        # an unknown recipient name is reported as what it most likely is: a bad address
        transfer("demo5", "nosuchkey", "1"),
        ["query", "account", bad],
        transfer("demo5", to, "1000001"),  # more than the demo account's 1,000,000 HPC
        transfer("demo5", to, "1000000"),  # all of it: nothing left for the fee
    )
    assert_error(checksum, "invalid bech32 address", bad)
    assert_error(mixed, "mixes upper and lower case")
    assert_error(no_key, "no key named 'nosuchkey'")
    assert_error(no_name, "address")
    assert_error(query, "invalid bech32 address")
    assert_error(too_much, "insufficient funds")
    assert_error(no_fee, "insufficient funds")
    assert (net.account("demo5"), net.account(to)) == before


def test_dry_run_sends_nothing_and_says_what_would_happen(net: Net) -> None:
    to = net.addr["demo8"]
    before = (net.account("demo7"), net.account(to))
    good, good_human, bad, token = net.run_many(
        ["tx", "transfer", "--from", "demo7", "--to", to, "--amount", "2", "--dry-run",
         "--json"],
        ["tx", "transfer", "--from", "demo7", "--to", to, "--amount", "2", "--dry-run"],
        ["tx", "transfer", "--from", "demo7", "--to", to, "--amount", "2000000", "--dry-run"],
        ["token", "issue", "--from", "demo7", "--symbol", "DRY", "--name", "Dry run",
         "--supply", "100", "--dry-run"],
    )
    sim = ok_json(good)
    assert sim["status"] == "simulated" and sim["ok"] is True
    assert int(sim["gas_wanted"]) == int(sim["gas_used"]) * 6 // 5 + 5_000
    assert good_human.returncode == 0 and "would succeed" in good_human.stdout
    assert "nothing sent" in good_human.stdout
    assert_error(bad, "would fail", "insufficient funds")
    assert token.returncode == 0 and "would succeed" in token.stdout, token.stderr
    assert (net.account("demo7"), net.account(to)) == before
    with pytest.raises(urllib.error.HTTPError):  # the token was not issued
        http_json(f"{net.api_url}/v1/tokens/DRY")


def test_gas_auto_by_default_or_a_given_limit(net: Net) -> None:
    to = net.addr["demo7"]
    auto = ok_json(net.run("tx", "transfer", "--from", "demo8", "--to", to, "--units", "5",
                           "--json"))
    assert auto["receipt"]["ok"] and int(auto["gas_limit"]) == \
        int(auto["receipt"]["gas_used"]) * 6 // 5 + 5_000
    fixed = ok_json(net.run("tx", "transfer", "--from", "demo8", "--to", to, "--units", "5",
                            "--gas", "60000", "--json"))
    assert fixed["receipt"]["ok"] and fixed["gas_limit"] == "60000"
    assert fixed["receipt"]["gas_used"] == auto["receipt"]["gas_used"]
    issued = ok_json(net.run("token", "issue", "--from", "demo8", "--symbol", "AUTO",
                             "--name", "Auto gas", "--supply", "1000", "--json"))
    assert issued["receipt"]["ok"]
    sent = ok_json(net.run("token", "transfer", "--from", "demo8", "--to", to, "AUTO", "10",
                           "--gas", "auto", "--json"))
    assert sent["receipt"]["ok"]
    for bad in ("abc", "0", "-5", "1.5"):
        assert_error(net.run("tx", "transfer", "--from", "demo8", "--to", to, "--units", "5",
                             "--gas", bad), "--gas")


# --- global options and errors ---------------------------------------------------------


def test_json_flag_before_and_after_subcommand(net: Net) -> None:
    bad = tamper(net.addr["demo1"])
    a, b, human, err_before, err_after, amount, keyring_err, not_found = net.run_many(
        ["--json", "query", "account", "demo1"],
        ["query", "account", "demo1", "--json"],
        ["query", "account", "demo1"],
        ["--json", "query", "account", bad],
        ["query", "account", bad, "--json"],
        ["tx", "transfer", "--from", "demo3", "--to", "demo4", "--amount", "abc", "--json"],
        ["--json", "keys", "show", "nosuch"],
        ["query", "block", "99999999", "--json"],
    )
    a, b = ok_json(a), ok_json(b)
    assert a["address"] == b["address"] == net.addr["demo1"]
    assert set(a) >= {"address", "balance", "balance_hpc", "nonce", "pending_nonce"}
    assert isinstance(a["balance"], str) and a["balance"].isdigit()
    assert human.returncode == 0 and net.addr["demo1"] in human.stdout and "HPC" in human.stdout

    for r in (err_before, err_after):
        assert_json_error(r, "invalid_address")
        assert r.stderr.strip() == ""
    assert "not a plain decimal" in assert_json_error(amount, "invalid_amount")["message"]
    assert_json_error(keyring_err, "not_found")
    assert_json_error(not_found, "not_found")


def test_unreachable_node(net: Net) -> None:
    dead = "http://127.0.0.1:1"
    *plain, as_json = net.run_many(
        ["query", "account", "demo1", "--node", dead],
        ["tx", "transfer", "--from", "demo1", "--to", "demo2", "--amount", "1", f"--node={dead}"],
        ["--node", dead, "status", "--json"],
    )
    for r in plain:
        assert_error(r, "cannot reach node")
    assert "cannot reach node" in assert_json_error(as_json, "unreachable")["message"]


def test_usage_errors_are_not_tracebacks(net: Net) -> None:
    commands = (["query", "account"],  # missing argument
                ["tx", "transfer", "--from", "demo1", "--amount", "1"],  # missing option
                ["query", "block", "-1"], ["nosuchcommand"], ["keys"])
    for args, r in zip(commands, net.run_many(*commands), strict=True):
        assert r.returncode != 0, args
        assert "Traceback" not in r.stderr + r.stdout, r.stderr
        assert "Usage" in r.stdout + r.stderr, args


# --- queries ---------------------------------------------------------------------------


def test_query_block_tx_status(net: Net) -> None:
    to = net.addr["demo1"]
    sent = ok_json(net.run("tx", "transfer", "--from", "demo6", "--to", to, "--amount", "2.25",
                           "--json"))
    tx_hash, height = sent["hash"], sent["height"]

    tx, block, first, latest, status, tx_human, block_human, status_human, *errors = \
        net.run_many(
        ["query", "tx", tx_hash, "--json"],
        ["query", "block", height, "--json"],
        ["query", "block", "1", "--json"],
        ["query", "block", "latest", "--json"],
        ["status", "--json"],
        ["query", "tx", tx_hash],
        ["query", "block", height],
        ["status"],
        ["query", "tx", "abc"],
        ["query", "tx", "00" * 32],
        ["query", "block", "abc"],
        ["query", "block", "99999999"],
    )
    tx = ok_json(tx)
    assert tx["hash"] == tx_hash and tx["status"] == "committed"
    assert tx["height"] == height and tx["chain_id"] == net.chain_id
    assert tx["sender"] == net.addr["demo6"] and tx["kind"] == "bank/transfer"
    assert tx["payload"] == {"to": to, "amount": "225000000", "amount_hpc": "2.25"}
    assert tx["receipt"]["ok"] is True and tx["receipt"]["code_name"] == "ok"

    block = ok_json(block)
    assert block["height"] == block["header"]["height"] == height
    assert tx_hash in block["txs"] and block["tx_count"] == len(block["txs"])

    first = ok_json(first)
    assert first["height"] == "1" and first["header"]["chain_id"] == net.chain_id
    assert first["header"]["prev_hash"] == "00" * 32
    assert len(first["hash"]) == 64 and set(first) >= {"signature", "tx_count", "txs"}

    latest = ok_json(latest)
    assert int(latest["height"]) >= int(height)
    assert latest["header"]["chain_id"] == net.chain_id

    status = ok_json(status)
    assert status["chain_id"] == net.chain_id and int(status["height"]) >= int(height)
    assert status["block_time_ms"] == "200" and len(status["genesis_hash"]) == 64
    # the human views: what a person looks for first, not a JSON dump
    assert f"height:     {height}" in tx_human.stdout and "ok" in tx_human.stdout
    assert "bank/transfer" in tx_human.stdout and "{" not in tx_human.stdout
    assert f"block {height}" in block_human.stdout and tx_hash[:16] in block_human.stdout
    assert f"chain:      {net.chain_id}" in status_human.stdout
    assert "{" not in status_human.stdout
    assert status["validator"].startswith("smart1")

    for r, fragment in zip(errors, ["64 hex", "no transaction", "height",
                                    "no block at height 99999999"], strict=True):
        assert_error(r, fragment)


# --- node init -------------------------------------------------------------------------


def test_node_init_insecure(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "smart-home")
    funded = to_bech32(PrivateKey.generate().address)
    home = tmp_path / "node"
    port = free_port()
    out = ok_json(smart(env, "node", "init", "--home", str(home), "--insecure",
                        "--fund", f"{funded}=10", "--api-port", str(port),
                        "--chain-id", "smart-test-9", "--block-time-ms", "250", "--json"))
    assert out["chain_id"] == "smart-test-9" and len(out["genesis_hash"]) == 64
    assert sorted(p.name for p in home.iterdir()) == \
        ["config.toml", "genesis.json", "validator_key.json"]
    config = NodeConfig.load(home)
    assert config.api.port == port and config.consensus.block_time_ms == 250
    genesis = json.loads((home / "genesis.json").read_text())
    assert genesis["chain_id"] == "smart-test-9"
    assert genesis["accounts"] == [{"address": funded, "balance": str(10 * UNITS)}]
    assert genesis["params"]["block_time_ms"] == 250
    key_doc = json.loads((home / "validator_key.json").read_text())
    assert key_doc["address"] == out["validator"] and "insecure_plaintext_seed" in key_doc

    again, bad_addr, no_amount, bad_amount = smart_many(
        env,
        ["node", "init", "--home", str(home), "--insecure"],
        ["node", "init", "--home", str(tmp_path / "n2"), "--insecure", "--fund", "smart1bogus=1"],
        ["node", "init", "--home", str(tmp_path / "n3"), "--insecure", "--fund", funded],
        ["node", "init", "--home", str(tmp_path / "n4"), "--insecure",
         "--fund", f"{funded}=0.000000001"],
    )
    assert_error(again, "already initialised")
    assert json.loads((home / "validator_key.json").read_text()) == key_doc
    assert_error(bad_addr, "address")
    assert_error(no_amount, "ADDRESS=HPC")
    assert_error(bad_amount, "decimal places")
    assert not any((tmp_path / n).exists() for n in ("n2", "n3", "n4"))


def test_node_init_encrypted_key(tmp_path: Path) -> None:
    home = tmp_path / "node"
    with ThreadPoolExecutor(max_workers=2) as pool:
        sealed = pool.submit(smart, cli_env(tmp_path / "smart-home", passphrase="validator pw"),
                             "node", "init", "--home", str(home), "--json")
        # without a passphrase (and no terminal) nothing is written
        no_pw = pool.submit(smart, cli_env(tmp_path / "smart-home"),
                            "node", "init", "--home", str(tmp_path / "n2"))
    assert_error(no_pw.result(), "passphrase")
    assert not (tmp_path / "n2").exists()
    out = ok_json(sealed.result())
    text = (home / "validator_key.json").read_text()
    doc = json.loads(text)
    assert "crypto" in doc and "insecure_plaintext_seed" not in doc
    key = load_key_file(home / "validator_key.json", "validator pw")
    assert to_bech32(key.address) == out["validator"] == doc["address"]
    assert key.seed.hex() not in text


# --- the devnet fixture itself ---------------------------------------------------------


def test_cli_default_node_is_the_devnet(net: Net) -> None:
    config = (Path(net.env["SMART_HOME"]) / "config.toml").read_text()
    assert f'node = "{net.api_url}"' in config
    explicit, default = net.run_many(["--node", net.api_url, "status", "--json"],
                                     ["status", "--json"])
    assert ok_json(default)["genesis_hash"] == ok_json(explicit)["genesis_hash"]
    height = int(ok_json(explicit)["height"])
    deadline = time.monotonic() + 10
    while int(http_json(net.api_url + "/v1/status")["height"]) <= height:
        assert time.monotonic() < deadline, "the devnet is not producing blocks"
        time.sleep(0.1)


# --- sizes and --provide ---------------------------------------------------------------


def test_parse_size_units() -> None:
    from smartchain.cli.common import parse_size

    assert parse_size("50GiB") == 50 * 2**30
    assert parse_size("1.5 TiB") == 3 * 2**39
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("4kib") == 4096 and parse_size("2KB") == 2000
    assert parse_size("123") == 123 == parse_size("123B")
    assert parse_size("1_000_000") == 10**6
    for bad in ("", "GiB", "10 parsecs", "-1GiB", "1.5B", "1.2.3MB", "nan", "inf GiB"):
        with pytest.raises(ValueError, match="not a size"):
            parse_size(bad)


def test_parse_provide_storage_and_compute() -> None:
    from smartchain.cli.common import CliError
    from smartchain.modules.compute.cli import parse_provide

    assert parse_provide(["storage=50GiB"]) == {"storage": 50 * 2**30}
    assert parse_provide(["storage=1GB,compute=2"]) == {"storage": 10**9, "compute": 2}
    assert parse_provide(["compute=1", "storage=2MiB"]) == {"compute": 1, "storage": 2 * 2**20}
    for bad, fragment in (("storage=lots", "not a size"), ("storage=0GiB", "positive"),
                          ("storage", "storage=SIZE"), ("disk=1GiB", "storage=SIZE")):
        with pytest.raises(CliError) as exc:
            parse_provide([bad])
        assert fragment in exc.value.message


def test_node_start_rejects_a_bad_storage_size(tmp_path: Path) -> None:
    result = smart(cli_env(tmp_path / "smart-home"), "node", "start", "--home",
                   str(tmp_path / "none"), "--provide", "storage=12 furlongs")
    assert_error(result, "not a size")
    assert "Traceback" not in result.stderr
