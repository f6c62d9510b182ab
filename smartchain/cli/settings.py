"""The CLI's own home (``$SMART_HOME`` or ``~/.smart``): config.toml and the keyring."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

DEFAULT_NODE = "http://127.0.0.1:26657"


def cli_home() -> Path:
    return Path(os.environ.get("SMART_HOME") or Path.home() / ".smart")


def config_path() -> Path:
    return cli_home() / "config.toml"


def load_config() -> dict:
    try:
        return tomllib.loads(config_path().read_text())
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{config_path()}: {exc}") from exc


def save_config(doc: dict) -> None:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# smart CLI settings"]
    for k, v in sorted(doc.items()):
        lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
    path.write_text("\n".join(lines) + "\n")


def default_node() -> str:
    return os.environ.get("SMART_NODE") or load_config().get("node") or DEFAULT_NODE
