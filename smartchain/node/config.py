"""A node's home directory: config.toml, genesis.json, its validator key and its data."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
KEY_FILE = "validator_key.json"
DATA_DIR = "data"


class ConfigError(ValueError):
    pass


@dataclass(slots=True)
class NodeConfig:
    moniker: str = "node"
    api_host: str = "127.0.0.1"
    api_port: int = 26657
    block_time_ms: int = 1000  # how often this signer proposes a block
    max_block_txs: int = 50_000
    mempool_max_txs: int = 200_000
    mempool_max_bytes: int = 256 * 1024 * 1024
    log_level: str = "info"

    def to_toml(self) -> str:
        lines = ["# Smartchain node configuration", "[node]"]
        for k, v in asdict(self).items():
            lines.append(f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}")
        return "\n".join(lines) + "\n"

    @classmethod
    def load(cls, home: Path) -> NodeConfig:
        path = home / CONFIG_FILE
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            hint = f"run `smart node init --home {home}` first"
            raise ConfigError(f"{path} not found: {hint}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        section = doc.get("node", {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(section) - set(known)
        if unknown:
            raise ConfigError(f"{path}: unknown settings {sorted(unknown)}")
        cfg = cls(**section)
        for f in fields(cls):
            want = int if f.type in ("int", int) else str
            if type(getattr(cfg, f.name)) is not want:
                raise ConfigError(f"{path}: {f.name} must be {want.__name__}")
        return cfg

    def save(self, home: Path) -> None:
        (home / CONFIG_FILE).write_text(self.to_toml())
