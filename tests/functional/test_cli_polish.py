"""The CLI polish users asked for (issue 17, item 7), tried as a user tries it: the real
``smart`` command in a subprocess, with its own ``SMART_HOME``.

- ``--version``, ``-h`` and shell completion (the script for a named shell, even from
  ``sh`` with no terminal);
- ``keys delete`` and ``keys rename``; BIP39 recovery phrases (``keys new/import
  --mnemonic``), never taken from the command line;
- on a small network (one signer, three storage providers): token commands that check the
  balance and allowance before asking for a passphrase, the human views of ``status``,
  ``query block`` and ``query tx``, and ``store put -`` / ``store get -o -`` for pipes,
  ``store get`` refusing to overwrite, ``store ls`` with the local file name; the README's
  first transfer, run as written.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framework.netharness import Network
from mnemonic import Mnemonic
from test_cli import (
    SMART,
    Cli,
    assert_error,
    assert_json_error,
    cli_env,
    keyed_cli,
    ok_json,
    smart,
    smart_many,
)
from test_storage_provider import start_storage_network

from smartchain import __version__
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.types.amount import UNITS_PER_HPC, parse_hpc

MiB = 1024 * 1024
WORDLIST = set(Mnemonic("english").wordlist)
# The installed entry point: its program name, ``smart``, is what completion scripts name.
SMART_SCRIPT = Path(sys.executable).parent / "smart"


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_cli_polish/" + tag.encode()))


HOLDER, SPENDER, OWNER = _key("holder"), _key("spender"), _key("owner")


def run_bytes(env: dict[str, str], *args: str, stdin: bytes = b"",
              timeout: float = 120) -> subprocess.CompletedProcess:
    """One command with binary standard input and output (for the store pipes)."""
    return subprocess.run([*SMART, *args], env=env, input=stdin, capture_output=True,
                          timeout=timeout)


def key_files(home: Path) -> dict[str, str]:
    """Every key file of a keyring, name -> content: 'nothing changed' compares these."""
    return {p.name: p.read_text() for p in sorted((home / "keys").glob("*"))}


def address_of(env: dict[str, str], name: str) -> str:
    return ok_json(smart(env, "keys", "show", name, "--json"))["address"]


# --- --version, -h, completion -------------------------------------------------------------


def test_version_prints_the_package_version_and_exits_0(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    human = smart(env, "--version")
    assert human.returncode == 0 and human.stdout.strip() == f"smart {__version__}"
    assert ok_json(smart(env, "--json", "--version")) == {"version": __version__}


def test_h_is_help_for_the_command_and_every_sub_command(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    short, long = smart(env, "-h"), smart(env, "--help")
    assert short.returncode == long.returncode == 0
    assert short.stdout == long.stdout and "Usage" in short.stdout and "keys" in short.stdout
    commands = (["keys", "-h"], ["keys", "delete", "-h"], ["store", "get", "-h"],
                ["token", "transfer", "-h"])
    for args, r in zip(commands, smart_many(env, *commands), strict=True):
        assert r.returncode == 0 and "Usage" in r.stdout, (args, r.stderr)
        assert " ".join(args[:-1]) + " [OPTIONS]" in r.stdout  # its own help
    assert "--force" in smart(env, "store", "get", "-h").stdout


needs_script = pytest.mark.skipif(not SMART_SCRIPT.exists(),
                                  reason="the smart entry point is not installed")


def from_sh(env: dict[str, str], *args: str, shell: str = "/bin/sh"
            ) -> subprocess.CompletedProcess:
    """``smart ARGS`` run by ``shell`` (not exec'd: the shell stays its parent), with no
    terminal: by default ``sh``, as in a Dockerfile RUN line, cron or CI."""
    return subprocess.run([shell, "-c", '"$@"; status=$?; exit $status', "sh",
                           str(SMART_SCRIPT), *args], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60)


@needs_script
@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o default -F _smart_completion smart"),
    ("zsh", "#compdef smart"),
    ("fish", "complete --command smart"),
])
def test_show_completion_prints_the_script_for_the_shell_named_even_from_sh(
        tmp_path: Path, shell: str, marker: str) -> None:
    r = from_sh(cli_env(tmp_path), "--show-completion", shell)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout and "_SMART_COMPLETE" in r.stdout


@needs_script
@pytest.mark.skipif(not Path("/bin/bash").exists(), reason="no bash")
def test_a_bare_show_completion_guesses_the_shell_it_runs_in(tmp_path: Path) -> None:
    r = from_sh(cli_env(tmp_path), "--show-completion", shell="/bin/bash")
    assert r.returncode == 0, r.stderr
    assert "complete -o default -F _smart_completion smart" in r.stdout


@needs_script
def test_the_bash_completion_script_completes_commands(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    script = from_sh(env, "--show-completion", "bash").stdout
    var = re.search(r"(_SMART_COMPLETE)=(complete_bash)", script)
    assert var, script
    # what the script's function runs at each TAB
    answers = {}
    for words, cword in (("smart ke", 1), ("smart keys re", 2), ("smart store g", 2)):
        r = subprocess.run([str(SMART_SCRIPT)], capture_output=True, text=True, timeout=60,
                           env={**env, var[1]: var[2], "COMP_WORDS": words,
                                "COMP_CWORD": str(cword)})
        assert r.returncode == 0, r.stderr
        answers[words] = r.stdout.split()
    assert answers == {"smart ke": ["keys"], "smart keys re": ["rename"],
                       "smart store g": ["get"]}


@needs_script
def test_install_completion_for_bash_writes_the_script_and_sources_it(tmp_path: Path) -> None:
    env = {**cli_env(tmp_path / "smart-home"), "HOME": str(tmp_path)}
    r = from_sh(env, "--install-completion", "bash")
    assert r.returncode == 0, r.stderr
    script = tmp_path / ".bash_completions" / "smart.sh"
    assert "_smart_completion" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


def test_an_unknown_shell_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    r = smart(cli_env(tmp_path), "--show-completion", "nosh")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "'nosh' is not a shell" in r.stderr and "bash, zsh, fish" in r.stderr


# --- keys delete / rename -----------------------------------------------------------------


def confirm_at_terminal(env: dict[str, str], answer: str, *args: str
                        ) -> subprocess.CompletedProcess:
    """A command whose standard input is a terminal on which ``answer`` (and a newline)
    was typed."""
    master, slave = pty.openpty()
    try:
        os.write(master, answer.encode() + b"\n")
        return subprocess.run([*SMART, *args], env=env, stdin=slave, capture_output=True,
                              text=True, timeout=60)
    finally:
        os.close(master)
        os.close(slave)


def test_keys_delete_asks_for_confirmation_or_yes_and_then_the_key_is_gone(
        tmp_path: Path) -> None:
    home = tmp_path / "smart-home"
    env = cli_env(home)
    for name in ("old", "spare"):
        ok_json(smart(env, "keys", "new", name, "--insecure", "--json"))
    before = key_files(home)

    # no terminal to ask on, no --yes: refused, nothing deleted
    assert_error(smart(env, "keys", "delete", "old"), "cannot be undone", "--yes")
    # asked at a terminal, answered no
    declined = confirm_at_terminal(env, "n", "keys", "delete", "old")
    assert declined.returncode != 0 and "Delete key old?" in declined.stdout
    assert key_files(home) == before

    accepted = confirm_at_terminal(env, "y", "keys", "delete", "old")
    assert accepted.returncode == 0 and "deleted key old" in accepted.stdout, accepted.stderr
    assert sorted(key_files(home)) == ["spare.json"]
    assert ok_json(smart(env, "keys", "delete", "spare", "--yes", "--json"))["name"] == "spare"
    assert ok_json(smart(env, "keys", "list", "--json")) == {"keys": []}
    assert_error(smart(env, "keys", "show", "old"), "no key named 'old'")


def test_deleting_an_unknown_key_fails_clearly_and_changes_nothing(tmp_path: Path) -> None:
    home = tmp_path / "smart-home"
    env = cli_env(home)
    ok_json(smart(env, "keys", "new", "kept", "--insecure", "--json"))
    before = key_files(home)
    assert_error(smart(env, "keys", "delete", "nosuch", "--yes"), "no key named 'nosuch'")
    assert_json_error(smart(env, "keys", "delete", "nosuch", "--yes", "--json"), "not_found")
    assert_error(smart(env, "keys", "delete", "../kept", "--yes"), "invalid key name")
    assert key_files(home) == before


def test_keys_rename_keeps_the_address_under_the_new_name(tmp_path: Path) -> None:
    home = tmp_path / "smart-home"
    env = cli_env(home, passphrase="tidal quince harbour lantern")
    addr = ok_json(smart(env, "keys", "new", "work", "--json"))["address"]
    renamed = ok_json(smart(env, "keys", "rename", "work", "office", "--json"))
    assert renamed["name"] == "office" and renamed["previous_name"] == "work"
    assert ok_json(smart(env, "keys", "list", "--json")) == {"keys": [
        {"name": "office", "address": addr, "encrypted": True}]}
    assert_error(smart(env, "keys", "show", "work"), "no key named 'work'")
    # still sealed with the same passphrase: it exports the same key
    exported = ok_json(smart(env, "keys", "export", "office", "--json"))
    assert to_bech32(PrivateKey.from_seed(bytes.fromhex(exported["seed"])).address) == addr


def test_renaming_onto_an_existing_or_unknown_name_is_refused_and_changes_nothing(
        tmp_path: Path) -> None:
    home = tmp_path / "smart-home"
    env = cli_env(home)
    for name in ("a", "b"):
        ok_json(smart(env, "keys", "new", name, "--insecure", "--json"))
    before = key_files(home)
    assert_error(smart(env, "keys", "rename", "a", "b"), "a key named 'b' already exists")
    assert_json_error(smart(env, "keys", "rename", "a", "b", "--json"), "key_exists")
    assert_error(smart(env, "keys", "rename", "nosuch", "c"), "no key named 'nosuch'")
    assert_error(smart(env, "keys", "rename", "a", "../c"), "invalid key name")
    assert key_files(home) == before


# --- recovery phrases ---------------------------------------------------------------------


def phrase_of(human_stdout: str) -> str:
    """The phrase `keys new --mnemonic` printed: the line after its heading."""
    lines = human_stdout.splitlines()
    return lines[lines.index("recovery phrase (shown once, write it down):") + 1].strip()


def test_keys_new_mnemonic_shows_24_words_once_and_they_restore_the_same_address(
        tmp_path: Path) -> None:
    home = tmp_path / "smart-home"
    env = cli_env(home, passphrase="tidal quince harbour lantern")
    created = smart(env, "keys", "new", "wallet", "--mnemonic")
    assert created.returncode == 0, created.stderr
    phrase = phrase_of(created.stdout)
    words = phrase.split()
    assert len(words) == 24 and set(words) <= WORDLIST
    addr = address_of(env, "wallet")
    assert addr in created.stdout
    # shown once: not in the key file, nor in what keys show / list print
    assert phrase not in (home / "keys" / "wallet.json").read_text()
    for args in (["keys", "show", "wallet"], ["keys", "list", "--json"]):
        assert words[0] + " " + words[1] not in smart(env, *args).stdout

    phrase_file = tmp_path / "phrase.txt"
    phrase_file.write_text(phrase.upper() + "\n")  # case and spacing do not matter
    piped = ok_json(smart(env, "keys", "import", "piped", "--mnemonic", "--json",
                          stdin=f"  {'   '.join(words)}\n"))
    filed = ok_json(smart(env, "keys", "import", "filed", "--mnemonic", "--seed-file",
                          str(phrase_file), "--json"))
    assert piped["address"] == filed["address"] == addr


def test_keys_new_mnemonic_json_carries_the_phrase(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "smart-home")
    doc = ok_json(smart(env, "keys", "new", "w", "--insecure", "--mnemonic", "--json"))
    assert len(doc["mnemonic"].split()) == 24
    other = cli_env(tmp_path / "elsewhere")
    restored = ok_json(smart(other, "keys", "import", "w", "--insecure", "--mnemonic", "--json",
                             stdin=doc["mnemonic"]))
    assert restored["address"] == doc["address"]


def test_a_recovery_phrase_on_the_command_line_is_refused_and_not_echoed(
        tmp_path: Path) -> None:
    home = tmp_path / "smart-home"
    env = cli_env(home)
    phrase = Mnemonic("english").generate(256)
    for args in (["keys", "import", "x", "--mnemonic", "--insecure", phrase],
                 ["keys", "import", "x", "--mnemonic", "--insecure", *phrase.split()],
                 ["keys", "import", "x", "--insecure", PrivateKey.generate().seed.hex()]):
        r = smart(env, *args)
        assert_error(r, "on the command line is refused", "standard input")
        assert args[-1] not in r.stdout + r.stderr
    assert not (home / "keys").exists() or key_files(home) == {}


@pytest.mark.parametrize("bad", ["checksum", "unknown word", "too short", "empty"])
def test_a_bad_recovery_phrase_is_refused_clearly_and_not_echoed(
        tmp_path: Path, bad: str) -> None:
    home = tmp_path / "smart-home"
    words = Mnemonic("english").generate(256).split()
    last = next(w for w in ("abandon", "zoo", "ability") if w != words[-1])
    phrase = {"checksum": " ".join([*words[:-1], last]),
              "unknown word": " ".join(["smartchain", *words[1:]]),
              "too short": " ".join(words[:5]), "empty": ""}[bad]
    if bad == "checksum":
        assert not Mnemonic("english").check(phrase)  # the phrase is wrong only there
    r = smart(cli_env(home), "keys", "import", "x", "--mnemonic", "--insecure", stdin=phrase)
    assert_error(r, "invalid recovery phrase", "checksum")
    if phrase:
        assert " ".join(words[1:4]) not in r.stdout + r.stderr
    assert not (home / "keys" / "x.json").exists()


# --- the network: one signer, three storage providers --------------------------------------


@pytest.fixture(scope="module")
def snet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    net, _ = start_storage_network(
        tmp_path_factory.mktemp("cli-polish"), 1, [8 * MiB] * 3,
        accounts=[(k.address, 100_000 * UNITS_PER_HPC) for k in (HOLDER, SPENDER, OWNER)])
    try:
        yield net
    finally:
        net.close()


@pytest.fixture(scope="module")
def cli(snet: Network, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    home = tmp_path_factory.mktemp("cli-polish-home") / "smart-home"
    return keyed_cli(home, snet[0].url or "",
                     {"holder": HOLDER, "spender": SPENDER, "owner": OWNER})


@pytest.fixture(scope="module")
def locked(snet: Network, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """A second keyring with the same holder and spender keys, sealed, and no passphrase
    given: any command that asks for one fails (there is no terminal either)."""
    home = tmp_path_factory.mktemp("cli-polish-locked") / "smart-home"
    sealing = cli_env(home, passphrase="tidal quince harbour lantern")
    for name, key in (("holder", HOLDER), ("spender", SPENDER)):
        ok_json(smart(sealing, "keys", "import", name, "--json", stdin=key.seed.hex()))
    env = cli_env(home)
    env["SMART_NODE"] = snet[0].url or ""
    return Cli(env)


@pytest.fixture(scope="module")
def token(cli: Cli) -> str:
    """TOK, no decimals: holder issued 1,000 and gave spender 10 (holder keeps 990)."""
    ok_json(cli.run("token", "issue", "--from", "holder", "--symbol", "TOK", "--name",
                    "Polish", "--supply", "1000", "--decimals", "0", "--json"))
    ok_json(cli.run("token", "transfer", "--from", "holder", "--to", "spender", "TOK", "10",
                    "--json"))
    return "TOK"


def chain_state(snet: Network, symbol: str) -> dict[str, Any]:
    """Nonces and token holdings of holder and spender, straight from the node."""
    c = snet.client(0)
    return {to_bech32(k.address): (c.account(to_bech32(k.address))["nonce"],
                                    c.token_balance(symbol, to_bech32(k.address)))
            for k in (HOLDER, SPENDER)}


def test_a_token_transfer_beyond_the_balance_is_refused_before_the_passphrase(
        snet: Network, cli: Cli, locked: Cli, token: str) -> None:
    before = chain_state(snet, token)
    over = locked.run("token", "transfer", "--from", "holder", "--to", "spender", token, "991")
    assert_error(over, "insufficient TOK: holder holds 990 TOK, this needs 991 TOK; "
                 "nothing was sent")
    doc = assert_json_error(locked.run("token", "transfer", "--from", "holder", "--to",
                                       "spender", token, "991", "--json"),
                            "insufficient_funds")
    assert doc["details"] == {"symbol": "TOK", "balance": "990", "needed": "991"}
    burn = locked.run("token", "burn", "--from", "holder", token, "2000")
    assert_error(burn, "insufficient TOK", "nothing was sent")
    # within the balance, the same command goes on to ask for the passphrase
    assert_error(locked.run("token", "transfer", "--from", "holder", "--to", "spender", token,
                            "990"), "passphrase")
    assert chain_state(snet, token) == before


def test_transfer_from_beyond_the_allowance_or_the_owners_balance_is_refused_first(
        snet: Network, cli: Cli, locked: Cli, token: str) -> None:
    ok_json(cli.run("token", "approve", "--from", "holder", "--spender", "spender", token,
                    "5", "--json"))
    before = chain_state(snet, token)

    def transfer_from(amount: str) -> subprocess.CompletedProcess:
        return locked.run("token", "transfer-from", "--from", "spender", "--owner", "holder",
                          "--to", "spender", token, amount)

    assert_error(transfer_from("6"), "insufficient allowance", "lets you move 5 TOK",
                 "needs 6 TOK", "nothing was sent")
    assert_error(transfer_from("5"), "passphrase")  # within it: on to the passphrase
    ok_json(cli.run("token", "approve", "--from", "holder", "--spender", "spender", token,
                    "5000", "--json"))
    assert_error(transfer_from("1000"), "insufficient TOK", "holds 990 TOK", "needs 1000")
    after = chain_state(snet, token)
    holder = to_bech32(HOLDER.address)
    assert after[holder][1] == before[holder][1]  # the second approve was holder's only tx
    assert int(after[holder][0]) == int(before[holder][0]) + 1
    assert after[to_bech32(SPENDER.address)] == before[to_bech32(SPENDER.address)]


def test_status_block_and_tx_read_as_text_with_what_a_user_looks_for(
        snet: Network, cli: Cli) -> None:
    sent = ok_json(cli.run("tx", "transfer", "--from", "spender", "--to", "owner",
                           "--amount", "1.25", "--json"))
    tx_hash, height = sent["hash"], sent["height"]
    status, block, tx, latest = cli.many(["status"], ["query", "block", height],
                                         ["query", "tx", tx_hash], ["query", "block"])
    for r in (status, block, tx, latest):
        assert r.returncode == 0, r.stderr
        assert "{" not in r.stdout and "}" not in r.stdout, r.stdout
    chain = snet.client(0).status()
    assert f"chain:      {chain['chain_id']}" in status.stdout
    assert re.search(r"^height: +\d+ \([0-9a-f]{16}…\)$", status.stdout, re.M), status.stdout
    assert "synced:     yes" in status.stdout

    doc = snet.client(0).block(height)
    assert block.stdout.startswith(f"block {height}  {doc['hash']}\n")
    assert re.search(r"^time: +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC$", block.stdout,
                     re.M), block.stdout
    # the transaction on one line, whole: its hash and sender can be copied from it
    assert re.search(rf"^ +\d+  {tx_hash}  bank/transfer  {to_bech32(SPENDER.address)}  ok$",
                     block.stdout, re.M), block.stdout
    assert re.search(r"^block \d+  [0-9a-f]{64}$", latest.stdout, re.M)

    assert tx.stdout.startswith(f"tx {tx_hash}\n")
    for line in ("status:     committed", f"height:     {height} (index ",
                 "result:     ok", "kind:       bank/transfer",
                 f"sender:     {to_bech32(SPENDER.address)}",
                 f"to: {to_bech32(OWNER.address)}", "amount_hpc: 1.25"):
        assert line in tx.stdout, (line, tx.stdout)


# --- store pipes, overwrite, local names --------------------------------------------------


STORE = ("--from", "owner", "--redundancy", "2/3", "--epochs", "5")


DEAD_NODE = "http://127.0.0.1:1"  # nothing listens: an error about it means the node was asked


def test_store_put_dash_with_an_empty_pipe_is_refused_before_asking_the_node(
        tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    r = run_bytes(env, "store", "put", "-", *STORE, "--node", DEAD_NODE, stdin=b"")
    assert r.returncode != 0 and r.stderr.decode() == \
        "error: standard input was empty: nothing to store\n"
    # with something in the pipe, the same command goes on to the node
    r = run_bytes(env, "store", "put", "-", *STORE, "--node", DEAD_NODE, stdin=b"data")
    assert r.returncode != 0 and "cannot reach node" in r.stderr.decode()


def test_store_put_dash_at_a_terminal_says_to_pipe_the_file_in(tmp_path: Path) -> None:
    r = confirm_at_terminal(cli_env(tmp_path), "typed by mistake", "store", "put", "-",
                            *STORE, "--node", DEAD_NODE)
    assert_error(r, "reads the file from standard input: pipe it in")


@pytest.fixture(scope="module")
def stored(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """One small file put from standard input: (file id, its bytes)."""
    data = os.urandom(200_000)
    r = run_bytes(cli.env, "store", "put", "-", *STORE, "--json", stdin=data)
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    assert doc["size"] == len(data) and doc["name"] == "(stdin)"
    return doc["file_id"], data


def test_store_put_from_stdin_and_get_to_stdout_pass_the_bytes_through_a_pipe(
        cli: Cli, stored: tuple[str, bytes]) -> None:
    file_id, data = stored
    r = run_bytes(cli.env, "store", "get", file_id, "-o", "-", "--from", "owner")
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == data  # the file, and nothing else, on standard output


def test_store_get_refuses_to_overwrite_a_file_without_force(
        cli: Cli, stored: tuple[str, bytes], tmp_path: Path) -> None:
    file_id, data = stored
    target = tmp_path / "notes.txt"
    target.write_text("my own notes\n")
    for args in ([], ["--json"]):
        r = cli.run("store", "get", file_id, "-o", str(target), "--from", "owner", *args)
        if args:
            assert "--force" in assert_json_error(r, "file_exists")["message"]
        else:
            assert_error(r, f"{target} exists", "--force")
    assert target.read_text() == "my own notes\n"
    assert ok_json(cli.run("store", "get", file_id, "-o", str(target), "--from", "owner",
                           "--force", "--json"))["size"] == len(data)
    assert target.read_bytes() == data


def test_store_ls_shows_the_local_file_name(cli: Cli, stored: tuple[str, bytes],
                                            tmp_path: Path) -> None:
    piped_id, _ = stored
    src = tmp_path / "holiday-notes.txt"
    src.write_bytes(os.urandom(50_000))
    named = ok_json(cli.run("store", "put", str(src), *STORE, "--json"))
    assert named["name"] == "holiday-notes.txt"

    listed = {d["file_id"]: d["name"]
              for d in ok_json(cli.run("store", "ls", "--from", "owner", "--json"))["deals"]}
    assert listed == {piped_id: "(stdin)", named["file_id"]: "holiday-notes.txt"}
    human = cli.run("store", "ls", "--from", "owner")
    assert human.returncode == 0, human.stderr
    line = next(ln for ln in human.stdout.splitlines() if ln.startswith(named["file_id"]))
    assert "holiday-notes.txt" in line
    # the chain never learns the name: another keyring lists the file without it
    elsewhere = cli_env(tmp_path / "elsewhere")
    elsewhere["SMART_NODE"] = cli.env["SMART_NODE"]
    other = ok_json(smart(elsewhere, "store", "ls", "--owner", to_bech32(OWNER.address),
                          "--json"))
    assert {d["file_id"]: d["name"] for d in other["deals"]} == {
        piped_id: None, named["file_id"]: None}


def test_the_readme_first_transfer_names_the_recipient_by_key_and_works_as_written(
        snet: Network, tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("smart tx transfer"))
    args = shlex.split(line)
    assert args[args.index("--to") + 1] == "demo2"  # a key name, not a shell pipeline
    # run verbatim in a keyring where demo1 and demo2 are two funded keys
    env = cli_env(tmp_path / "smart-home")
    env["SMART_NODE"] = snet[0].url or ""
    # demo2: a key nothing else on this network pays (OWNER's storage deals move its balance)
    recipient = _key("readme-recipient")
    for name, key in (("demo1", SPENDER), ("demo2", recipient)):
        ok_json(smart(env, "keys", "import", name, "--insecure", "--json", stdin=key.seed.hex()))
    to = to_bech32(recipient.address)
    before = snet.client(0).balance(to)
    r = smart(env, *args[1:])
    assert r.returncode == 0, r.stderr
    amount = args[args.index("--amount") + 1]
    assert snet.client(0).balance(to) == before + parse_hpc(amount)
