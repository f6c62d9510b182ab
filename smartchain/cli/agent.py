"""``smart agent``: run a device's SmartAgent, read its status, make its key.

The agent itself lives in ``smartchain/agent`` (light: the SDK, the modules' wire types and
paho-mqtt); these commands are its front end (docs/agent.md).
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from smartchain.agent import config as agent_config
from smartchain.agent import daemon, keys
from smartchain.agent.broker import BrokerError
from smartchain.agent.mqtt import MqttError
from smartchain.cli.common import CliError, PassFile, emit, out, passphrase
from smartchain.crypto.address import to_bech32

agent_app = typer.Typer(
    help="Run a device's SmartAgent: offers, quotes, metering over MQTT, receipts, settlement.",
    no_args_is_help=True)
key_app = typer.Typer(help="The agent's device key (a sealed key file).", no_args_is_help=True)
agent_app.add_typer(key_app, name="key")

Config = Annotated[Path, typer.Argument(help="The agent's CONFIG.toml (docs/agent.md).")]


def _config(path: Path) -> agent_config.AgentConfig:
    try:
        return agent_config.load_config(path)
    except agent_config.ConfigError as exc:
        raise CliError(str(exc), "config") from None


@agent_app.command("run")
def run(config: Config,
        log_level: Annotated[str, typer.Option(help="DEBUG, INFO or WARNING.")] = "INFO"
        ) -> None:
    """Run the agent until SIGTERM or Ctrl-C; progress survives a kill (docs/agent.md)."""
    cfg = _config(config)
    daemon.setup_logging(cfg.state_dir, log_level.upper())
    try:
        agent = daemon.build_agent(cfg)
    except keys.AgentKeyError as exc:
        raise CliError(str(exc), "keystore") from None
    except (MqttError, BrokerError) as exc:
        raise CliError(str(exc), "mqtt") from None
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        agent.run(stop)
    finally:
        if agent.link is not None:
            agent.link.close()


@agent_app.command("status")
def status(config: Config) -> None:
    """What the agent last reported (STATE_DIR/status.json) and its saved progress."""
    cfg = _config(config)
    doc = daemon.read_status(cfg)
    if doc is None:
        raise CliError(f"no status in {cfg.state_dir}: has the agent run?", "not_found")

    def human() -> None:
        out.print(f"agent {doc['name']} ({doc['address']}), pid {doc['pid']}, "
                  f"{doc['turns']} turns, node {doc['node']}")
        for name, role in doc["roles"].items():
            out.print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in role.items()
                                                 if not isinstance(v, dict | list)))
        if doc["last_error"]:
            out.print(f"  last error: {doc['last_error']}")

    emit(doc, human)


@key_app.command("new")
def key_new(path: Annotated[Path, typer.Argument(help="Where to write the key file.")],
            insecure: Annotated[bool, typer.Option(
                help="Store unencrypted (throwaway devices on a devnet).")] = False,
            passphrase_file: PassFile = None) -> None:
    """Make a device key, sealed with a passphrase unless --insecure."""
    pw = None if insecure else passphrase("New passphrase: ", confirm=True, file=passphrase_file)
    try:
        key = keys.new_key(path, pw, insecure=insecure)
    except keys.AgentKeyError as exc:
        raise CliError(str(exc), "keystore") from None
    emit({"file": str(path), "address": to_bech32(key.address),
          "public_key": key.public_key.hex(), "encrypted": not insecure},
         f"device key {key.public_key.hex()} ({to_bech32(key.address)}) in {path}")


@key_app.command("show")
def key_show(path: Annotated[Path, typer.Argument(help="A key file.")]) -> None:
    """The public key and address of a key file (no passphrase needed)."""
    try:
        doc = json.loads(path.read_text())
        data = {"file": str(path), "address": doc["address"], "public_key": doc["public_key"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"cannot read key file {path}: {exc}", "keystore") from None
    emit(data, lambda: out.print(f"public_key: {data['public_key']}\naddress: {data['address']}"))
