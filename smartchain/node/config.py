"""A node's home directory: config.toml, genesis.json, its validator key and its data."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
KEY_FILE = "validator_key.json"
DATA_DIR = "data"
# Settings named ``test_*`` inject faults; a node refuses them unless this variable is "1".
TEST_FAULTS_ENV = "SMARTCHAIN_TEST_FAULTS"


class ConfigError(ValueError):
    pass


@dataclass(slots=True)
class NodeConfig:
    moniker: str = "node"
    api_host: str = "127.0.0.1"
    api_port: int = 26657
    block_time_ms: int = 1000  # target interval between blocks
    p2p_host: str = "127.0.0.1"
    p2p_port: int = 26656
    seeds: list[str] = field(default_factory=list)  # "PUBKEYHEX@host:port"
    pex: bool = True  # peer exchange; false: connect to the seeds only, dial nothing learned
    p2p_rate_frames: int = 5_000  # inbound frames per second and burst allowed per peer
    p2p_burst_frames: int = 10_000  # (beyond them the peer is disconnected and banned)
    # Connection slots (smartchain/p2p/slots.py): inbound peers at most (the rest of
    # the 50 is kept for our own dials; seeds and validators always connect), inbound
    # connections per IP and per /24 (/48 for IPv6), and whether those two limits also apply
    # to loopback addresses (off: a devnet runs all its nodes on 127.0.0.1).
    p2p_max_inbound: int = 40
    p2p_inbound_per_ip: int = 4
    p2p_inbound_per_subnet: int = 8
    p2p_limit_loopback: bool = False
    # Signature checks per second (and burst) spent on transaction gossip from unproven peers
    # (rank <= 0, not validators or seeds), all of them together and each one: beyond them their
    # transactions are dropped unchecked (smartchain/node/gossip_budget.py). Validators, seeds,
    # proven peers and our own API are not limited.
    p2p_unproven_sig_checks: int = 2_000
    p2p_unproven_peer_sig_checks: int = 200
    timeout_propose_ms: int = 3000  # consensus timeouts (they grow per round)
    timeout_vote_ms: int = 1000
    max_block_txs: int = 50_000
    mempool_max_txs: int = 200_000
    mempool_max_bytes: int = 256 * 1024 * 1024
    log_level: str = "info"
    # Compute provider (smartchain/node/compute_worker.py): cores offered to compute jobs
    # (0: none), the stake in whole HPC the node's key locks when it registers, and, for tests
    # and the devnet only, a declared capability in fuel/s instead of the benchmark's (0: run
    # the benchmark), so identical machines can be providers of different declared speeds.
    provide_compute: int = 0
    compute_stake: int = 10
    compute_capability_override: int = 0
    # Storage provider (smartchain/node/storage_provider.py): bytes of disk offered to storage
    # deals (0: none; ``--provide storage=50GiB``), the price in base units per GiB per epoch
    # (0: the chain's minimum, ``storage_min_price``), the bandwidth price in base units per
    # GiB served, the collateral in whole HPC the node's key locks, where the pieces live
    # ("": HOME/storage; a big disk elsewhere), the bytes the piece store leaves free on that
    # disk, how long a piece outside any active deal (an abandoned upload, a deal that
    # ended) is kept before garbage collection, and the bytes one account may have uploaded
    # here and not yet in a deal (0: a quarter of the disk, at least 64 MiB).
    provide_storage: int = 0
    storage_price: int = 0
    storage_bandwidth_price: int = 1_000
    storage_collateral: int = 10
    storage_dir: str = ""
    storage_min_free: int = 256 * 1024 * 1024
    storage_gc_grace_s: int = 3_600
    storage_client_quota: int = 0
    # TEST ONLY (refused unless SMARTCHAIN_TEST_FAULTS=1): at every height divisible by this,
    # the signer also sends a second, conflicting prevote signed with its raw key, i.e. it
    # double-signs on purpose so tests can watch the evidence path. 0 = never.
    test_equivocate_every: int = 0
    # TEST ONLY (refused unless SMARTCHAIN_TEST_FAULTS=1): the compute worker falsifies every
    # successful task output (first byte flipped), so tests can watch it out-voted and slashed.
    test_cheat_compute: bool = False

    def to_toml(self) -> str:
        lines = ["# Smartchain node configuration", "[node]"]
        for k, v in asdict(self).items():
            if k.startswith("test_") and not v:
                continue  # fault injection stays out of ordinary config files
            lines.append(f"{k} = {json.dumps(v)}")  # JSON str/int/bool/array: valid TOML
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
            value: Any = getattr(cfg, f.name)
            want: type[Any] = {"int": int, "str": str, "bool": bool, "list[str]": list}[str(f.type)]
            if type(value) is not want or (want is list and
                                          not all(isinstance(x, str) for x in value)):
                raise ConfigError(f"{path}: {f.name} must be {f.type}")
        if cfg.test_equivocate_every < 0:
            raise ConfigError(f"{path}: test_equivocate_every must be >= 0")
        if cfg.test_equivocate_every and os.environ.get(TEST_FAULTS_ENV) != "1":
            raise ConfigError(f"{path}: test_equivocate_every makes this node double-sign; it "
                              f"is for tests only and needs {TEST_FAULTS_ENV}=1")
        if cfg.test_cheat_compute and os.environ.get(TEST_FAULTS_ENV) != "1":
            raise ConfigError(f"{path}: test_cheat_compute makes this node return wrong compute "
                              f"results; it is for tests only and needs {TEST_FAULTS_ENV}=1")
        if cfg.provide_compute < 0 or cfg.compute_stake < 0 or cfg.compute_capability_override < 0:
            raise ConfigError(f"{path}: provide_compute, compute_stake and "
                              f"compute_capability_override must be >= 0")
        for name in ("provide_storage", "storage_price", "storage_bandwidth_price",
                     "storage_collateral", "storage_min_free", "storage_gc_grace_s",
                     "storage_client_quota"):
            if getattr(cfg, name) < 0:
                raise ConfigError(f"{path}: {name} must be >= 0")
        if cfg.p2p_rate_frames <= 0 or cfg.p2p_burst_frames <= 0:
            raise ConfigError(f"{path}: p2p_rate_frames and p2p_burst_frames must be > 0")
        for name in ("p2p_max_inbound", "p2p_inbound_per_ip", "p2p_inbound_per_subnet"):
            if getattr(cfg, name) < 1:
                raise ConfigError(f"{path}: {name} must be >= 1")
        if not 1 <= cfg.p2p_unproven_peer_sig_checks <= cfg.p2p_unproven_sig_checks:
            raise ConfigError(f"{path}: need 1 <= p2p_unproven_peer_sig_checks <= "
                              f"p2p_unproven_sig_checks")
        return cfg

    def save(self, home: Path) -> None:
        (home / CONFIG_FILE).write_text(self.to_toml())
