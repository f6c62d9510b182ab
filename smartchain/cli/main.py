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
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape
from rich.table import Table

from smartchain import devnet as devnet_mod
from smartchain.app import module_clis
from smartchain.cli import keyring, settings
from smartchain.cli.agent import agent_app
from smartchain.cli.common import (
    OPTS,
    CliError,
    DryRun,
    Gas,
    GasPrice,
    PassFile,
    Wait,
    committed_line,
    dry_run_report,
    emit,
    err,
    load_key,
    out,
    passphrase,
    require_ok,
    resolve_address,
    sending,
)
from smartchain.client import ApiError, SimulationFailed
from smartchain.crypto.address import AddressError, from_bech32, to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.crypto.keystore import KeystoreError, is_encrypted
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

app = typer.Typer(help="Smartchain: share compute, storage and bandwidth; paid in HPC.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
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


@app.callback()
def _global(
    node: Annotated[str | None, typer.Option("--node", help="Node API URL.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    OPTS.node = node
    OPTS.json = as_json


# --- keys ------------------------------------------------------------------------------


@keys_app.command("new")
def keys_new(
    name: str,
    insecure: Annotated[bool, typer.Option(help="Store unencrypted (throwaway keys).")] = False,
    passphrase_file: PassFile = None,
) -> None:
    """Create a key; it is sealed with a passphrase unless --insecure."""
    key = PrivateKey.generate()
    pw = None if insecure else passphrase("New passphrase: ", confirm=True, file=passphrase_file)
    path = keyring.add(name, key, pw, insecure=insecure)
    addr = to_bech32(key.address)
    emit({"name": name, "address": addr, "file": str(path), "encrypted": not insecure},
         f"created key [bold]{name}[/]: {addr}")


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

    emit(rows, human)


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
    "--seed-file", help="Read the 32-byte seed (hex) from this file. Without it the seed is "
    "read from standard input (typed without echo at a terminal).")]


@keys_app.command("import")
def keys_import(
    name: str,
    seed_file: SeedFile = None,
    insecure: Annotated[bool, typer.Option(help="Store unencrypted.")] = False,
    passphrase_file: PassFile = None,
    seed_argument: Annotated[str | None, typer.Option("--seed", hidden=True)] = None,
) -> None:
    """Import a key from its seed, read from a file or standard input: never from the
    command line, which other users see (ps) and the shell keeps in its history."""
    if seed_argument is not None:
        raise CliError("--seed is refused: a seed on the command line is visible to other "
                       "users and kept in shell history; pipe it on standard input or use "
                       "--seed-file (then discard the command from your shell history)")
    key = _read_seed(seed_file)
    pw = None if insecure else passphrase("New passphrase: ", confirm=True, file=passphrase_file)
    keyring.add(name, key, pw, insecure=insecure)
    emit({"name": name, "address": to_bech32(key.address)}, f"imported {name}")


def _read_seed(seed_file: Path | None) -> PrivateKey:
    if seed_file is not None:
        try:
            text = seed_file.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read seed file: {exc}") from exc
    elif sys.stdin.isatty():
        text = getpass.getpass("Seed (hex): ")
    else:
        text = sys.stdin.read(4096)
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
    if dry_run:
        dry_run_report(result)
        return
    if not wait:
        emit(result, f"submitted {result['hash']}")
        return
    require_ok(result)
    emit(result, lambda: out.print(
        f"sent {format_hpc(value)} HPC to {recipient}\n{committed_line(result)}"))


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
    if height != "latest" and not height.isdigit():
        raise CliError("height must be a non-negative integer or 'latest'")
    emit(OPTS.client.block(height))


@query_app.command("tx")
def query_tx(tx_hash: str) -> None:
    emit(OPTS.client.tx(tx_hash))


@app.command("status")
def status() -> None:
    """Show the node's chain id, height and state root."""
    emit(OPTS.client.status())


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

_EXPECTED = (ApiError, AddressError, AmountError, KeystoreError, keyring.KeyringError,
             ConfigError, GenesisError, devnet_mod.DevnetError, OSError, ValueError)


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


def _fail(message: str, code: str, exit_code: int) -> NoReturn:
    if OPTS.json:
        print(json.dumps({"error": {"code": code, "message": message}}))
    else:
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise SystemExit(exit_code)


def main(argv: list[str] | None = None) -> None:
    args = _hoist_globals(list(sys.argv[1:] if argv is None else argv))
    OPTS.json = "--json" in args
    try:
        rc = app(args, standalone_mode=False)
    except CliError as exc:
        _fail(exc.message, exc.code, exc.exit_code)
    except SimulationFailed as exc:
        _fail(f"{exc.message} (--gas N sends it anyway)", exc.code, 1)
    except ApiError as exc:
        _fail(exc.message, exc.code, 1)
    except _EXPECTED as exc:
        _fail(str(exc), type(exc).__name__, 1)
    except (typer.Abort, KeyboardInterrupt):
        _fail("aborted", "aborted", 130)
    except Exception as exc:  # click usage errors and the like
        if isinstance(exc, _click_exceptions()):
            if OPTS.json:
                _fail(exc.format_message(), "usage", exc.exit_code)
            exc.show()
            raise SystemExit(exc.exit_code) from None
        raise
    # typer turns Ctrl-C into Exit(130) and, with standalone_mode=False, returns the code
    if isinstance(rc, int) and rc:
        if rc == 130:
            _fail("aborted", "aborted", 130)
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
