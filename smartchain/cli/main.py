"""The ``smart`` command.

``--node URL`` and ``--json`` are accepted anywhere on the command line (they are moved in
front of the sub-command before parsing), so every command takes them. Every error is
one line on stderr (or a JSON error object with ``--json``) and a non-zero exit code.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib
import json
import signal
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from smartchain import __version__
from smartchain import devnet as devnet_mod
from smartchain.app import module_clis
from smartchain.cli import completion as completion_mod
from smartchain.cli import keyring, mnemonics, settings
from smartchain.cli.agent import agent_app
from smartchain.cli.common import (
    OPTS,
    CliError,
    DryRun,
    Gas,
    GasPrice,
    PassFile,
    Wait,
    emit,
    err,
    load_key,
    out,
    passphrase,
    report_sent,
    resolve_address,
    sending,
)
from smartchain.client import ApiError, SimulationFailed
from smartchain.crypto.address import AddressError, from_bech32, to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.crypto.keystore import KeystoreError, is_encrypted
from smartchain.jsoncontract import EXIT_ABORTED, EXIT_ERROR
from smartchain.modules.compute.cli import parse_provide
from smartchain.modules.tokens.cli import holdings_lines
from smartchain.node.config import (
    GENESIS_FILE,
    KEY_FILE,
    ApiSettings,
    ConfigError,
    ConsensusSettings,
    NodeConfig,
    P2PSettings,
)
from smartchain.node.home import init_home, load_validator_key
from smartchain.node.join import check_seeds, load_genesis, parse_seeds, require_all
from smartchain.p2p import P2PConfig
from smartchain.p2p.messages import format_address
from smartchain.state.genesis import Genesis, GenesisError
from smartchain.state.params import Params
from smartchain.types.amount import AmountError, format_hpc, parse_hpc, parse_units

HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(help="Smartchain: share compute, storage and bandwidth; paid in HPC.",
                  no_args_is_help=True, pretty_exceptions_enable=False, context_settings=HELP,
                  add_completion=False)  # completion_mod's flags, which take a shell name
keys_app = typer.Typer(help="Manage named keys in the local keyring.", no_args_is_help=True)
tx_app = typer.Typer(help="Sign and send transactions.", no_args_is_help=True)
query_app = typer.Typer(help="Read chain state.", no_args_is_help=True)
node_app = typer.Typer(help="Initialise and run a node.", no_args_is_help=True)
devnet_app = typer.Typer(help="A local network for development.", no_args_is_help=True)
genesis_app = typer.Typer(help="A network's genesis.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(tx_app, name="tx")
app.add_typer(query_app, name="query")
app.add_typer(node_app, name="node")
app.add_typer(devnet_app, name="devnet")
app.add_typer(agent_app, name="agent")
app.add_typer(genesis_app, name="genesis")
for module_cli in module_clis():  # each module's own commands (modules/<name>/cli.py)
    app.add_typer(module_cli.app, name=module_cli.name)


def _version(value: bool) -> None:
    if value:
        emit({"version": __version__}, f"smart {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    node: Annotated[str | None, typer.Option("--node", help="Node API URL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    show_completion: completion_mod.ShowCompletion = None,
    install_completion: completion_mod.InstallCompletion = None,
) -> None:
    OPTS.node = node
    OPTS.json = as_json


# --- keys ------------------------------------------------------------------------------


@keys_app.command("new")
def keys_new(
    name: str,
    insecure: Annotated[bool, typer.Option(help="Store unencrypted (throwaway keys).")] = False,
    with_mnemonic: Annotated[bool, typer.Option(
        "--mnemonic", help="Derive the key from a new 24-word BIP39 recovery phrase, printed "
        "once: write it down (`keys import --mnemonic` restores the key).")] = False,
    passphrase_file: PassFile = None,
) -> None:
    """Create a key; it is sealed with a passphrase unless --insecure."""
    phrase = mnemonics.new_phrase() if with_mnemonic else None
    key = mnemonics.key_from_phrase(phrase) if phrase else PrivateKey.generate()
    pw = None if insecure else passphrase("New passphrase: ", confirm=True, file=passphrase_file)
    path = keyring.add(name, key, pw, insecure=insecure)
    addr = to_bech32(key.address)
    doc = {"name": name, "address": addr, "file": str(path), "encrypted": not insecure}
    if phrase:
        doc["mnemonic"] = phrase
    emit(doc, f"created key [bold]{name}[/]: {addr}" + (
        f"\nrecovery phrase (shown once, write it down):\n{phrase}" if phrase else ""))


@keys_app.command("delete")
def keys_delete(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")
                   ] = False,
) -> None:
    """Delete a key file. Without its seed or recovery phrase, its account is lost."""
    keyring.read_doc(name)
    if not yes:
        if not sys.stdin.isatty():
            raise CliError(f"deleting {name} cannot be undone: confirm with --yes")
        typer.confirm(f"Delete key {name}? Without its seed its funds are lost", abort=True)
    path = keyring.delete(name)
    emit({"name": name, "deleted": str(path)}, f"deleted key {name}")


@keys_app.command("rename")
def keys_rename(old: str, new: str) -> None:
    """Give a key another name (its address does not change)."""
    path = keyring.rename(old, new)
    emit({"name": new, "previous_name": old, "file": str(path)}, f"renamed {old} to {new}")


@keys_app.command("list")
def keys_list() -> None:
    rows = []
    for n in keyring.names():
        doc = keyring.read_doc(n)
        rows.append({"name": n, "address": doc["address"], "encrypted": is_encrypted(doc)})

    def human() -> None:
        t = Table("name", "address", "encrypted")
        for r in rows:
            t.add_row(r["name"], r["address"], "yes" if r["encrypted"] else "no (insecure)")
        out.print(t)

    emit({"keys": rows}, human)


@keys_app.command("show")
def keys_show(name: str) -> None:
    doc = keyring.read_doc(name)
    data = {"name": name, "address": doc["address"], "public_key": doc["public_key"],
            "encrypted": is_encrypted(doc)}

    def human() -> None:
        for k, v in data.items():
            out.print(f"{k}: {v}")
    emit(data, human)


@keys_app.command("export")
def keys_export(name: str, passphrase_file: PassFile = None) -> None:
    """Print the private seed (hex). Anyone who sees it controls the account."""
    key = load_key(name, passphrase_file)
    emit({"name": name, "address": to_bech32(key.address), "seed": key.seed.hex()}, key.seed.hex())


SeedFile = Annotated[Path | None, typer.Option(
    "--seed-file", help="Read the 32-byte seed (hex), or with --mnemonic the recovery "
    "phrase, from this file. Without it, from standard input (typed without echo at a "
    "terminal).")]


@keys_app.command("import")
def keys_import(
    name: str,
    on_argv: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
    seed_file: SeedFile = None,
    from_mnemonic: Annotated[bool, typer.Option(
        "--mnemonic", help="The secret is a BIP39 recovery phrase, not a hex seed.")] = False,
    insecure: Annotated[bool, typer.Option(help="Store unencrypted.")] = False,
    passphrase_file: PassFile = None,
    seed_argument: Annotated[str | None, typer.Option("--seed", hidden=True)] = None,
) -> None:
    """Import a key from its seed, read from a file or standard input: never from the
    command line, which other users see (ps) and the shell keeps in its history."""
    if seed_argument is not None or on_argv:  # refused, and never echoed back
        what = "--seed is" if seed_argument is not None else "a seed or recovery phrase " \
            "on the command line is"
        raise CliError(f"{what} refused: a secret on the command line is visible to other "
                       "users and kept in shell history; pipe it on standard input or use "
                       "--seed-file (then discard the command from your shell history)")
    key = _read_mnemonic(seed_file) if from_mnemonic else _read_seed(seed_file)
    pw = None if insecure else passphrase("New passphrase: ", confirm=True, file=passphrase_file)
    keyring.add(name, key, pw, insecure=insecure)
    emit({"name": name, "address": to_bech32(key.address)}, f"imported {name}")


def _read_secret(seed_file: Path | None, prompt: str) -> str:
    """A secret from a file or standard input (without echo at a terminal): never argv."""
    if seed_file is not None:
        try:
            return seed_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read seed file: {exc}", "io_error") from exc
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.read(4096)


def _read_mnemonic(seed_file: Path | None) -> PrivateKey:
    try:
        return mnemonics.key_from_phrase(_read_secret(seed_file, "Recovery phrase: "))
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _read_seed(seed_file: Path | None) -> PrivateKey:
    text = _read_secret(seed_file, "Seed (hex): ")
    try:
        return PrivateKey.from_seed(bytes.fromhex(text.strip()))
    except ValueError:  # the message would quote the secret: say what is wrong, not where
        raise CliError("invalid seed: expected 64 hex characters (32 bytes)") from None


# --- tx --------------------------------------------------------------------------------


@tx_app.command("transfer")
def tx_transfer(
    sender: Annotated[str, typer.Option("--from", help="Key name in the keyring.")],
    to: Annotated[str, typer.Option("--to", help="Recipient address (or key name).")],
    amount: Annotated[str | None, typer.Option(help="Amount in HPC, exact decimal (e.g. 1.5).")
                      ] = None,
    units: Annotated[str | None, typer.Option(help="Amount in base units (1 HPC = 10^8).")
                     ] = None,
    gas: Gas = "auto",
    gas_price: GasPrice = None,
    dry_run: DryRun = False,
    wait: Wait = True,
    passphrase_file: PassFile = None,
) -> None:
    """Send HPC (give exactly one of --amount and --units)."""
    if (amount is None) == (units is None):
        raise CliError("give exactly one of --amount (HPC) and --units (base units)")
    value = parse_hpc(amount) if amount is not None else parse_units(units)
    if value <= 0:
        raise CliError("amount must be positive")
    recipient = resolve_address(to)
    how = sending(gas, dry_run)
    key = load_key(sender, passphrase_file)
    client = OPTS.client
    result = client.transfer(key, recipient, value, wait=wait, gas_price=gas_price, **how)
    report_sent(result, wait, f"sent {format_hpc(value)} HPC to {recipient}")


# --- query -----------------------------------------------------------------------------


@query_app.command("account")
def query_account(address: Annotated[str, typer.Argument(help="Address or key name.")]) -> None:
    acct = OPTS.client.account(resolve_address(address))
    emit(acct, lambda: out.print(
        f"address: {acct['address']}\nbalance: {acct['balance_hpc']} HPC "
        f"({acct['balance']} units)\nnonce:   {acct['nonce']}"
        + "".join(f"\n{line}" for line in holdings_lines(acct.get("tokens", [])))))


@query_app.command("block")
def query_block(height: Annotated[str, typer.Argument(help="Height or 'latest'.")] = "latest"
                ) -> None:
    """A block: its header and its transactions (--json: the whole document)."""
    if height != "latest" and not height.isdigit():
        raise CliError("height must be a non-negative integer or 'latest'")
    doc = OPTS.client.block(height)

    def human() -> None:
        h = doc["header"]
        lines = [f"block {doc['height']}  {doc['hash']}",
                 f"time:       {_utc(int(h['time_ms']))}",
                 f"proposer:   {h['proposer_address']}", f"state root: {h['state_root']}",
                 f"txs:        {doc['tx_count']}"]
        # one line per transaction, never wrapped nor cut: the hash and the sender are
        # for copying (`smart query tx HASH`), the terminal may be narrow or a pipe
        lines += [f"{tx['index']:>4}  {tx['hash']}  {tx['kind']}  {tx['sender']}  "
                  + ("ok" if tx["ok"] else f"failed: {tx['code_name']}")
                  for tx in doc.get("transactions", [])]
        out.print("\n".join(lines), highlight=False, markup=False)
    emit(doc, human)


def _utc(time_ms: int) -> str:
    """A block time for people: UTC, to the millisecond."""
    when = datetime.fromtimestamp(time_ms / 1000, tz=UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S.") + f"{time_ms % 1000:03d} UTC"


@query_app.command("tx")
def query_tx(tx_hash: str) -> None:
    """A transaction: where it was committed and what it did (--json: the whole document)."""
    doc = OPTS.client.tx(tx_hash)

    def human() -> None:
        lines = [f"tx {doc['hash']}", f"status:     {doc['status']}"]
        if doc["status"] == "committed":
            r = doc["receipt"]
            lines += [f"height:     {doc['height']} (index {doc['index']})",
                      "result:     " + ("ok" if r["ok"] else f"failed: {r['code_name']}: "
                                        f"{r['log']}"),
                      f"fee:        {format_hpc(int(r['fee']))} HPC "
                      f"(gas used {r['gas_used']})"]
        lines += [f"kind:       {doc['kind']}", f"sender:     {doc['sender']}",
                  f"nonce:      {doc['nonce']}"]
        lines += [f"  {k}: {v}" for k, v in doc["payload"].items()
                  if isinstance(v, str | int)]
        if doc["status"] == "committed":
            lines += [f"event {e['kind']} " + " ".join(f"{k}={v}" for k, v in
                                                       e["attributes"].items())
                      for e in doc["receipt"]["events"]]
        out.print("\n".join(lines), highlight=False, markup=False)
    emit(doc, human)


@app.command("status")
def status() -> None:
    """Show the node's chain id, height and state root."""
    doc = OPTS.client.status()
    emit(doc, lambda: out.print(
        f"chain:      {doc['chain_id']}\nheight:     {doc['height']} "
        f"({doc['latest_hash'][:16]}…)\nstate root: {doc['state_root']}\n"
        f"synced:     {'yes' if doc.get('synced', True) else 'no, catching up'}\n"
        f"peers:      {doc['peers']}\nmempool:    {doc['mempool_size']} txs\n"
        f"node:       {doc['moniker']} (smart {doc.get('version', '?')}"
        f"{', signer' if doc['signer'] else ''})", highlight=False, markup=False))


# --- node ------------------------------------------------------------------------------


def _parse_fund(items: list[str]) -> list[tuple[bytes, int]]:
    out_list = []
    for item in items:
        addr, sep, amount = item.partition("=")
        if not sep:
            raise CliError(f"--fund takes ADDRESS=HPC, got {item!r}")
        out_list.append((from_bech32(addr), parse_hpc(amount)))
    return out_list


@node_app.command("init")
def node_init(
    home: Annotated[Path, typer.Option(help="Node home directory.")],
    chain_id: Annotated[str, typer.Option(help="Chain id (of a new chain).")] = "smart-local-1",
    moniker: Annotated[str, typer.Option(help="Node name.")] = "node",
    api_port: Annotated[int, typer.Option(help="HTTP API port.")] = 26657,
    p2p_port: Annotated[int, typer.Option(help="P2P port.")] = 26656,
    listen: Annotated[str, typer.Option(
        help="Address the API and P2P listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    advertise: Annotated[str | None, typer.Option(
        help="Host others dial to reach this node (needed with --listen 0.0.0.0).")] = None,
    genesis: Annotated[str | None, typer.Option(
        "--genesis", help="Join an existing network: its genesis, a FILE or a URL (a node's "
        "API URL or a JSON document).")] = None,
    seeds: Annotated[str | None, typer.Option(
        help="Peers to join through: ID@HOST:PORT,... (`smart node show-id` on each).")] = None,
    skip_seed_check: Annotated[bool, typer.Option(
        help="Write the home without dialling the seeds first.")] = False,
    snapshot: Annotated[bool, typer.Option(
        help="Start from a peer's verified state snapshot instead of replaying every "
        "block (docs/operators.md, Snapshot sync).")] = False,
    trust_height: Annotated[int, typer.Option(
        help="With --snapshot: height of a block you trust (with --trust-hash).")] = 0,
    trust_hash: Annotated[str, typer.Option(
        help="With --snapshot: hash of the block at --trust-height, from a source you "
        "trust.")] = "",
    block_time_ms: Annotated[int, typer.Option(help="Block interval.")] = 1000,
    fund: Annotated[list[str] | None, typer.Option(help="Genesis ADDRESS=HPC (repeatable).")
                    ] = None,
    insecure: Annotated[bool, typer.Option(help="Store the validator key unencrypted.")] = False,
    passphrase_file: PassFile = None,
) -> None:
    """Create a single-validator chain, or join a network with --genesis and --seeds:
    config.toml, genesis.json, node key."""
    seed_list = parse_seeds(seeds or "")
    joined = load_genesis(genesis) if genesis is not None else None
    if joined is not None:
        if fund:
            raise CliError("--fund sets the balances of a new chain; a joined network's "
                           "genesis is fixed")
        if not seed_list:
            raise CliError("joining a network needs --seeds ID@HOST:PORT,... (run "
                           "`smart node show-id` on a node of that network)")
        if not skip_seed_check:
            require_all(asyncio.run(check_seeds(seed_list, joined.hash().hex())),
                        joined.hash().hex())
    if (home / GENESIS_FILE).exists():
        raise CliError(f"{home} is already initialised")
    key = PrivateKey.generate()
    pw = None if insecure else passphrase("Node key passphrase: ", confirm=True,
                                          file=passphrase_file)
    transport = replace(P2PConfig(), advertise_host=advertise)
    cfg = NodeConfig(moniker=moniker, api=ApiSettings(host=listen, port=api_port),
                     p2p=P2PSettings(host=listen, port=p2p_port, seeds=seed_list,
                                     transport=transport),
                     consensus=ConsensusSettings(block_time_ms=block_time_ms))
    if joined is not None:
        cfg.consensus.block_time_ms = joined.params.block_time_ms
    if (trust_height or trust_hash) and not snapshot:
        raise CliError("--trust-height and --trust-hash anchor a --snapshot sync")
    cfg.sync = replace(cfg.sync, snapshot=snapshot, trust_height=trust_height,
                       trust_hash=trust_hash.lower())
    try:
        cfg.validate()
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    made = init_home(home, chain_id=chain_id, key=key, passphrase=pw, insecure=insecure,
                     accounts=_parse_fund(fund or []), config=cfg, genesis=joined,
                     params=Params(block_time_ms=block_time_ms))  # sets the halving interval
    node_id = _node_id(home, cfg)
    what = (f"joining chain {made.chain_id} through {len(seed_list)} seed(s)" if joined
            else f"chain {made.chain_id}, validator {to_bech32(key.address)}")
    emit({"home": str(home), "chain_id": made.chain_id, "validator": to_bech32(key.address),
          "genesis_hash": made.hash().hex(), "node_id": node_id, "seeds": seed_list},
         f"initialised {home} ({what})\nnode id: {node_id}")


def _node_id(home: Path, cfg: NodeConfig, host: str | None = None) -> str:
    """``ID@HOST:PORT``: what other nodes put in their --seeds to reach this one."""
    try:
        public_key = bytes.fromhex(json.loads((home / KEY_FILE).read_text())["public_key"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read the node key in {home}: {exc}") from None
    host = host or cfg.p2p.transport.advertise_host or cfg.p2p.host
    if host in ("0.0.0.0", "::", ""):
        raise CliError(f"the node listens on every interface ({cfg.p2p.host}): give the host "
                       "others dial with --host, or set advertise_host in [p2p]")
    return format_address(public_key, host, cfg.p2p.port)


@node_app.command("show-id")
def node_show_id(
    home: Annotated[Path, typer.Option(help="Node home directory.")],
    host: Annotated[str | None, typer.Option(
        help="Host others dial (default: [p2p] advertise_host, else host).")] = None,
) -> None:
    """Print this node's ID@HOST:PORT, for other nodes' --seeds."""
    node_id = _node_id(home, NodeConfig.load(home), host)
    emit({"node_id": node_id}, lambda: print(node_id))


@genesis_app.command("export")
def genesis_export() -> None:
    """Print the genesis of the network the --node URL belongs to (JSON on stdout): save it
    and hand it to `smart node init --genesis FILE`."""
    doc = OPTS.client.genesis()
    Genesis.from_json(doc)  # refuse to print what no node could start from
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


@node_app.command("start")
def node_start(
    home: Annotated[Path, typer.Option(help="Node home directory.")],
    passphrase_file: PassFile = None,
    provide: Annotated[list[str] | None, typer.Option(
        help="Offer resources: compute=N (N cores) and/or storage=SIZE (e.g. 50GiB); "
             "repeatable or comma-separated.")] = None,
) -> None:
    """Run the node in the foreground until SIGINT/SIGTERM."""
    offers = parse_provide(provide)
    from smartchain.daemon import run  # imported here: only this command needs aiohttp

    cfg = NodeConfig.load(home)
    if "compute" in offers:  # the node's compute worker (smartchain/node/compute_worker.py)
        cfg.compute.cores = offers["compute"]
    if "storage" in offers:  # its storage provider (smartchain/node/storage_provider.py)
        cfg.storage.capacity = offers["storage"]
    doc = json.loads((home / KEY_FILE).read_text())
    pw = passphrase("Validator key passphrase: ", file=passphrase_file) if is_encrypted(doc) \
        else None
    run(home, load_validator_key(home, pw), cfg)


# --- devnet ----------------------------------------------------------------------------

DevnetHome = Annotated[Path | None, typer.Option("--home", help="Devnet home directory.")]


def _devnet_home(home: Path | None) -> Path:
    return home or settings.cli_home() / "devnet"


@devnet_app.command("up")
def devnet_up(
    home: DevnetHome = None,
    validators: Annotated[int, typer.Option(help="Director (block signer) nodes.")] = 4,
    standby: Annotated[int, typer.Option(
        help="Standby signer nodes: each takes the seat of a failed director (set when the "
             "devnet is created; docs/devnet-poca.md).")] = 0,
    accounts: Annotated[int, typer.Option(help="Funded demo accounts.")] = 5,
    compute_providers: Annotated[int, typer.Option(
        help="Extra nodes that provide compute (1 core each; set when the devnet is created).")
    ] = 2,
    storage_providers: Annotated[int, typer.Option(
        help="Extra nodes that provide storage (set when the devnet is created; 6 for the "
             "default 4/6 redundancy).")] = 6,
    api_port: Annotated[int, typer.Option(help="First node's API port.")] = 26657,
    block_time_ms: Annotated[int, typer.Option(help="Block interval.")] = 1000,
    detach: Annotated[bool, typer.Option(help="Leave the network running and return.")] = False,
) -> None:
    """Start (or restart) the local network and fund demo accounts."""
    home = _devnet_home(home)
    stopping = {"flag": False}

    def _stop(*_: Any) -> None:
        stopping["flag"] = True

    if not detach:  # before starting nodes: a Ctrl-C during start-up must still stop them
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
    doc = devnet_mod.load(home)
    if doc is None:
        doc = devnet_mod.create(home, validators=validators, accounts=accounts,
                                api_port=api_port, block_time_ms=block_time_ms,
                                compute_providers=compute_providers,
                                storage_providers=storage_providers, standby=standby)
    procs = devnet_mod.start(doc)
    demos = devnet_mod.demo_accounts(doc)
    for d in demos:
        keyring.add(d.name, d.key, None, insecure=True, replace_devnet=True)
    settings.save_config({**settings.load_config(), "node": doc["nodes"][0]["api_url"]})
    summary = {
        "chain_id": doc["chain_id"], "home": str(home),
        "explorer_url": doc["nodes"][0]["api_url"] + "/",
        "nodes": [{"name": n["name"], "api_url": n["api_url"]} for n in doc["nodes"]],
        "accounts": [{"name": d.name, "address": d.address,
                      "balance": str(devnet_mod.DEMO_BALANCE)} for d in demos],
    }

    def human() -> None:
        out.print(f"[bold green]devnet {doc['chain_id']} is up[/] (home {home})")
        for n in summary["nodes"]:
            out.print(f"  {n['name']}: API {n['api_url']}")
        out.print(f"  explorer: [link]{summary['explorer_url']}[/link] (every node serves one)")
        t = Table("account", "address", "balance")
        for a in summary["accounts"]:
            t.add_row(a["name"], a["address"], f"{format_hpc(devnet_mod.DEMO_BALANCE)} HPC")
        out.print(t)
        out.print("try: smart tx transfer --from demo1 --to "
                  f"{summary['accounts'][1]['address'] if len(demos) > 1 else 'ADDRESS'} "
                  "--amount 1.5")

    emit(summary, human)
    sys.stdout.flush()
    if detach:
        return
    if not OPTS.json:
        out.print("[dim]Ctrl-C stops the network[/]")
    while not stopping["flag"]:
        if not all(p.running for p in procs):
            devnet_mod.stop(doc)
            raise CliError("a devnet node exited unexpectedly; see its node.log in " + str(home))
        time.sleep(0.2)
    devnet_mod.stop(doc)
    if not OPTS.json:
        out.print("devnet stopped")


@devnet_app.command("down")
def devnet_down(home: DevnetHome = None) -> None:
    """Stop a devnet started with --detach (its data stays; `up` resumes it)."""
    home = _devnet_home(home)
    doc = devnet_mod.load(home)
    if doc is None:
        raise CliError(f"no devnet in {home}")
    n = devnet_mod.stop(doc)
    emit({"stopped": n}, f"stopped {n} node(s)")


# --- entry point -----------------------------------------------------------------------

# Expected failures and their JSON error codes (most specific first).
_EXPECTED: tuple[tuple[type[Exception], str], ...] = (
    (AddressError, "invalid_address"), (AmountError, "invalid_amount"),
    (KeystoreError, "keystore"), (ConfigError, "config"), (GenesisError, "invalid_genesis"),
    (devnet_mod.DevnetError, "devnet"), (OSError, "io_error"), (ValueError, "usage"))


def _hoist_globals(argv: list[str]) -> list[str]:
    """Move --json and --node URL in front so they work after any sub-command."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--json":
            front.append(a)
        elif a == "--node" and i + 1 < len(argv):
            front += [a, argv[i + 1]]
            i += 1
        elif a.startswith("--node="):
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return front + rest


def _fail(message: str, code: str, exit_code: int,
          details: dict[str, Any] | None = None) -> NoReturn:
    """One error, as the JSON contract's error document with --json (on stdout, so a
    script parses one stream), else one line on stderr; always a non-zero exit."""
    if OPTS.json:
        error: dict[str, Any] = {"code": code, "message": message}
        if details:
            error["details"] = details
        print(json.dumps({"error": error}, indent=2))
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(exit_code)


def main(argv: list[str] | None = None) -> None:
    args = completion_mod.with_guess(_hoist_globals(list(sys.argv[1:] if argv is None
                                                         else argv)))
    OPTS.json = "--json" in args
    try:
        rc = app(args, standalone_mode=False)
    except CliError as exc:
        _fail(exc.message, exc.code, exc.exit_code, exc.details)
    except SimulationFailed as exc:  # refused before the mempool: nothing was sent
        _fail(f"{exc.message} (--gas N sends it anyway)", exc.code, EXIT_ERROR,
              {"simulation": exc.simulation})
    except ApiError as exc:
        _fail(exc.message, exc.code, EXIT_ERROR, exc.details)
    except keyring.KeyringError as exc:
        _fail(str(exc), exc.code, EXIT_ERROR)
    except (typer.Abort, KeyboardInterrupt):
        _fail("aborted", "aborted", EXIT_ABORTED)
    except Exception as exc:  # click usage errors and the like
        for kind, code in _EXPECTED:
            if isinstance(exc, kind):
                _fail(str(exc), code, EXIT_ERROR)
        if isinstance(exc, _click_exceptions()):
            if OPTS.json:
                _fail(exc.format_message(), "usage", exc.exit_code)
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
    # typer turns Ctrl-C into Exit(130) and, with standalone_mode=False, returns the code
    if isinstance(rc, int) and rc:
        if rc == EXIT_ABORTED:
            _fail("aborted", "aborted", EXIT_ABORTED)
        raise SystemExit(rc)


def _click_exceptions() -> tuple[type[Any], ...]:
    """ClickException of the click typer really uses (recent typer vendors it as typer._click
    and no longer depends on click)."""
    types: list[type[Any]] = []  # untyped: imported by name
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            types.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            pass
    return tuple(types)


if __name__ == "__main__":
    main()
