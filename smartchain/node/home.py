"""Creating and opening a node's home directory."""

from __future__ import annotations

import time
from pathlib import Path

from smartchain.crypto import keystore
from smartchain.crypto.keys import PrivateKey
from smartchain.node.config import GENESIS_FILE, KEY_FILE, ConfigError, NodeConfig
from smartchain.state.genesis import Genesis, GenesisAccount, GenesisValidator
from smartchain.state.params import Params


def make_genesis(chain_id: str, validators: list[tuple[bytes, int, str]],
                 accounts: list[tuple[bytes, int]] | None = None,
                 genesis_time_ms: int | None = None, params: Params | None = None) -> Genesis:
    genesis = Genesis(
        chain_id=chain_id,
        time_ms=genesis_time_ms if genesis_time_ms is not None else time.time_ns() // 10**6,
        params=params or Params(),
        accounts=tuple(GenesisAccount(a, b) for a, b in (accounts or [])),
        validators=tuple(GenesisValidator(pk, power, name) for pk, power, name in validators),
    )
    genesis.validate()
    return genesis


def init_home(home: Path, *, chain_id: str, key: PrivateKey, passphrase: str | None,
              insecure: bool, accounts: list[tuple[bytes, int]] | None = None,
              config: NodeConfig | None = None, genesis_time_ms: int | None = None,
              params: Params | None = None, genesis: Genesis | None = None) -> Genesis:
    """A node home: config.toml, genesis.json and the (sealed) validator key.

    Without ``genesis``, a new single-validator chain whose signer is ``key``."""
    home = Path(home)
    if (home / GENESIS_FILE).exists():
        raise ConfigError(f"{home} is already initialised")
    home.mkdir(parents=True, exist_ok=True)
    if genesis is None:
        moniker = (config or NodeConfig()).moniker
        genesis = make_genesis(chain_id, [(key.public_key, 1, moniker)], accounts,
                               genesis_time_ms, params)
    keystore.save(home / KEY_FILE, key, passphrase, insecure=insecure)
    (config or NodeConfig()).save(home)
    genesis.save(home / GENESIS_FILE)
    return genesis


def load_validator_key(home: Path, passphrase: str | None) -> PrivateKey:
    return keystore.load(Path(home) / KEY_FILE, passphrase)
