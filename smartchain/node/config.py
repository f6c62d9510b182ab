"""A node's home directory (config.toml, genesis.json, its validator key and its data) and
its configuration.

config.toml has one section per sub-system, each mapping onto that sub-system's own config
type, so a new tunable needs no plumbing here::

    [node]       moniker, log_level, mempool limits, pruning (NodeConfig's own fields)
    [api]        host, port, index, subscriber limits         (ApiSettings)
    [p2p]        host, port, seeds, gossip signature budget  (P2PSettings)
                 + any field of smartchain.p2p.P2PConfig     (e.g. pex, max_inbound)
    [consensus]  block_time_ms, max_block_txs                (ConsensusSettings)
                 + any field of consensus.engine.EngineConfig (e.g. timeout_propose_ms)
    [compute]    the compute provider (ComputeSettings)
    [storage]    the storage provider (StorageSettings)
    [sync]       state snapshots: taking, serving, syncing from one (SyncSettings)
    [faults]     fault injection for tests (FaultSettings), refused unless
                 SMARTCHAIN_TEST_FAULTS=1

Unknown sections and keys are errors naming them; a file in the old flat format (every
setting under ``[node]``) is refused with the section each key now belongs in.
"""

from __future__ import annotations

import json
import os
import tomllib
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from smartchain.consensus.engine import EngineConfig
from smartchain.p2p import P2PConfig

CONFIG_FILE = "config.toml"
GENESIS_FILE = "genesis.json"
KEY_FILE = "validator_key.json"
DATA_DIR = "data"
SNAPSHOTS_DIR = "snapshots"  # state snapshots this node serves (node/snapsync.py)
RUNTIME_FILE = "node.json"  # written by a running node: its pid and addresses
# The [faults] section injects faults; a node refuses it unless this variable is "1".
TEST_FAULTS_ENV = "SMARTCHAIN_TEST_FAULTS"
PRUNING_MODES = ("archive", "recent")
# Blocks a pruned node keeps at least: peers a little behind still sync from it.
MIN_KEEP_BLOCKS = 100
# Marks a field whose dataclass's fields are written in the enclosing section itself.
INLINE = {"inline": True}


class ConfigError(ValueError):
    pass


@dataclass(slots=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 26657  # 0: any free port (the node writes the one it got to HOME/node.json)
    # The search index (transactions by account, events by kind and attribute) the explorer
    # and the list routes read; a node that only signs can save the disk writes.
    index: bool = True
    max_subscribers: int = 1_000  # websocket subscribers at once (GET /v1/subscribe)
    subscriber_queue: int = 256  # messages a subscriber may lag behind before it is dropped


@dataclass(slots=True)
class P2PSettings:
    host: str = "127.0.0.1"
    port: int = 26656
    seeds: list[str] = field(default_factory=list)  # "PUBKEYHEX@host:port"
    # Signature checks per second (and burst) spent on transaction gossip from unproven peers
    # (rank <= 0, not validators or seeds), all of them together and each one: beyond them their
    # transactions are dropped unchecked (smartchain/node/gossip_budget.py). Validators, seeds,
    # proven peers and our own API are not limited.
    unproven_sig_checks: int = 2_000
    unproven_peer_sig_checks: int = 200
    # The transport's own tunables (smartchain/p2p/config.py), e.g. pex, rate_frames,
    # max_inbound, max_inbound_per_ip, max_inbound_per_subnet, limit_loopback.
    transport: P2PConfig = field(default_factory=P2PConfig, metadata=INLINE)


@dataclass(slots=True)
class ConsensusSettings:
    block_time_ms: int = 1000  # target interval between blocks
    max_block_txs: int = 50_000
    # The engine's timeouts and buffers (smartchain/consensus/engine.py).
    engine: EngineConfig = field(default_factory=EngineConfig, metadata=INLINE)


@dataclass(slots=True)
class ComputeSettings:
    """The compute provider (smartchain/node/compute_worker.py): cores offered to compute jobs
    (0: none), the stake in whole HPC the node's key locks when it registers, and, for tests
    and the devnet only, a declared capability in fuel/s instead of the benchmark's (0: run
    the benchmark), so identical machines can be providers of different declared speeds."""

    cores: int = 0
    stake: int = 10
    capability_override: int = 0


@dataclass(slots=True)
class StorageSettings:
    """The storage provider (smartchain/node/storage_provider.py): bytes of disk offered to
    deals (0: none; ``--provide storage=50GiB``), the price in base units per GiB per epoch
    (0: the chain's minimum, ``storage_min_price``), the bandwidth price in base units per GiB
    served, the collateral in whole HPC the node's key locks, where the pieces live ("":
    HOME/storage; relative: to HOME), the bytes the piece store leaves free on that disk, how
    long a piece outside any active deal is kept before garbage collection, and the bytes one
    account may have uploaded here and not yet in a deal (0: a quarter of the disk, at least
    64 MiB)."""

    capacity: int = 0
    price: int = 0
    bandwidth_price: int = 1_000
    collateral: int = 10
    dir: str = ""
    min_free: int = 256 * 1024 * 1024
    gc_grace_s: int = 3_600
    client_quota: int = 0


@dataclass(slots=True)
class SyncSettings:
    """State snapshots (docs/operators.md "Snapshot sync"): this node takes one every
    ``snapshot_interval`` blocks (0: never) and keeps the ``snapshot_keep`` latest, to
    serve to new nodes; with ``snapshot = true`` a new node (no block yet) starts from a
    peer's snapshot instead of replaying every block. Trust: the block hash
    ``trust_hash`` at height ``trust_height`` (from a source the operator trusts); unset,
    the snapshot's commit must carry over 1/3 of the genesis signers' power."""

    snapshot: bool = False
    trust_height: int = 0
    trust_hash: str = ""
    snapshot_interval: int = 1000
    snapshot_keep: int = 2


@dataclass(slots=True)
class FaultSettings:
    """Faults injected on purpose so tests can watch the defences; refused unless
    SMARTCHAIN_TEST_FAULTS=1."""

    # At every height divisible by this the signer also sends a second, conflicting prevote
    # signed with its raw key (it double-signs). 0 = never.
    equivocate_every: int = 0
    # The compute worker falsifies every successful task output (first byte flipped).
    cheat_compute: bool = False


@dataclass(slots=True)
class NodeConfig:
    """The node's settings: its own fields are the [node] section, the others one section
    each."""

    moniker: str = "node"
    log_level: str = "info"
    mempool_max_txs: int = 200_000
    mempool_max_bytes: int = 256 * 1024 * 1024
    # "archive": every block kept; "recent": only the last keep_blocks (older ones are
    # deleted as new ones commit: the node then cannot serve them to syncing peers, nor
    # their transactions on the API). The state is the latest only, in both modes.
    pruning: str = "archive"
    keep_blocks: int = 100_000
    api: ApiSettings = field(default_factory=ApiSettings)
    p2p: P2PSettings = field(default_factory=P2PSettings)
    consensus: ConsensusSettings = field(default_factory=ConsensusSettings)
    compute: ComputeSettings = field(default_factory=ComputeSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    # --- snapshot sync ---
    sync: SyncSettings = field(default_factory=SyncSettings)

    def to_toml(self) -> str:
        """Every setting of our own sections; a sub-system's tunables only where they differ
        from its defaults; [faults] only when a fault is set."""
        out = ["# Smartchain node configuration (docs/config.md)"]
        for name, value in _sections(self):
            if name == "faults" and value == FaultSettings():
                continue
            out += ["", f"[{name}]"] + [f"{k} = {json.dumps(v)}"  # JSON scalars: valid TOML
                                        for k, v in _toml_items(value)]
        return "\n".join(out) + "\n"

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
        try:
            return cls.parse(doc)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> NodeConfig:
        """A NodeConfig from a parsed config.toml; ``ConfigError`` names a bad key."""
        sections = dict(_sections(cls()))
        built: dict[str, Any] = {}
        for name, table in doc.items():
            if name not in sections:
                raise ConfigError(f"unknown section [{name}] (sections: "
                                  f"{', '.join(sorted(sections))})")
            if not isinstance(table, dict):
                raise ConfigError(f"{name} must be a [section]")
            if name == "faults" and os.environ.get(TEST_FAULTS_ENV) != "1":
                raise ConfigError(f"[faults] makes this node misbehave on purpose; it is for "
                                  f"tests only and needs {TEST_FAULTS_ENV}=1")
            built[name] = _build(sections[name], name, table)
        node = built.pop("node", cls())
        cfg = replace(node, **built)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.pruning not in PRUNING_MODES:
            raise ConfigError(f"[node] pruning must be one of {', '.join(PRUNING_MODES)}, "
                              f"not {self.pruning!r}")
        if self.keep_blocks < MIN_KEEP_BLOCKS:
            raise ConfigError(f"[node] keep_blocks must be >= {MIN_KEEP_BLOCKS}")
        _at_least(0, self.faults, "faults", "equivocate_every")
        _at_least(1, self.api, "api", "max_subscribers", "subscriber_queue")
        self._validate_sync()
        _at_least(0, self.compute, "compute", "cores", "stake", "capability_override")
        _at_least(0, self.storage, "storage", "capacity", "price", "bandwidth_price",
                  "collateral", "min_free", "gc_grace_s", "client_quota")
        t = self.p2p.transport
        if t.rate_frames <= 0 or t.burst_frames <= 0:
            raise ConfigError("[p2p] rate_frames and burst_frames must be > 0")
        _at_least(1, t, "p2p", "max_inbound", "max_inbound_per_ip", "max_inbound_per_subnet")
        if not 1 <= self.p2p.unproven_peer_sig_checks <= self.p2p.unproven_sig_checks:
            raise ConfigError("[p2p] need 1 <= unproven_peer_sig_checks <= "
                              "unproven_sig_checks")

    def _validate_sync(self) -> None:
        sync = self.sync
        _at_least(0, sync, "sync", "trust_height", "snapshot_interval")
        _at_least(1, sync, "sync", "snapshot_keep")
        if bool(sync.trust_height) != bool(sync.trust_hash):
            raise ConfigError("[sync] trust_height and trust_hash go together")
        if sync.trust_hash:
            try:
                ok = len(bytes.fromhex(sync.trust_hash)) == 32
            except ValueError:
                ok = False
            if not ok:
                raise ConfigError("[sync] trust_hash must be a block hash: 64 hex digits")

    def save(self, home: Path) -> None:
        (home / CONFIG_FILE).write_text(self.to_toml())


# Where each setting of the old flat format (all under [node]) lives now.
FLAT_KEYS = {
    "api_host": "[api] host", "api_port": "[api] port",
    "block_time_ms": "[consensus] block_time_ms", "max_block_txs": "[consensus] max_block_txs",
    "timeout_propose_ms": "[consensus] timeout_propose_ms",
    "timeout_vote_ms": "[consensus] timeout_prevote_ms and timeout_precommit_ms",
    "p2p_host": "[p2p] host", "p2p_port": "[p2p] port", "seeds": "[p2p] seeds",
    "pex": "[p2p] pex", "p2p_rate_frames": "[p2p] rate_frames",
    "p2p_burst_frames": "[p2p] burst_frames", "p2p_max_inbound": "[p2p] max_inbound",
    "p2p_inbound_per_ip": "[p2p] max_inbound_per_ip",
    "p2p_inbound_per_subnet": "[p2p] max_inbound_per_subnet",
    "p2p_limit_loopback": "[p2p] limit_loopback",
    "p2p_unproven_sig_checks": "[p2p] unproven_sig_checks",
    "p2p_unproven_peer_sig_checks": "[p2p] unproven_peer_sig_checks",
    "provide_compute": "[compute] cores", "compute_stake": "[compute] stake",
    "compute_capability_override": "[compute] capability_override",
    "provide_storage": "[storage] capacity", "storage_price": "[storage] price",
    "storage_bandwidth_price": "[storage] bandwidth_price",
    "storage_collateral": "[storage] collateral", "storage_dir": "[storage] dir",
    "storage_min_free": "[storage] min_free", "storage_gc_grace_s": "[storage] gc_grace_s",
    "storage_client_quota": "[storage] client_quota",
    "test_equivocate_every": "[faults] equivocate_every",
    "test_cheat_compute": "[faults] cheat_compute",
}


def _sections(cfg: NodeConfig) -> list[tuple[str, Any]]:
    """(section name, the object its keys set): [node] is the NodeConfig itself."""
    return [("node", cfg)] + [(f.name, getattr(cfg, f.name)) for f in fields(cfg)
                              if is_dataclass(getattr(cfg, f.name))]


def _toml_items(obj: Any) -> list[tuple[str, Any]]:
    """The keys a section writes: scalars of ``obj``, then non-default inline tunables."""
    out: list[tuple[str, Any]] = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("inline"):
            default = type(value)()
            out += [(g.name, getattr(value, g.name)) for g in fields(value)
                    if getattr(value, g.name) != getattr(default, g.name)]
        elif not is_dataclass(value) and value is not None:
            out.append((f.name, value))
    return out


def _build(obj: Any, section: str, table: dict[str, Any]) -> Any:
    """A copy of ``obj`` with the keys of ``table`` set, on it or on its inline
    sub-configs (which may be frozen: rebuilt with ``replace``)."""
    inline = {f.name: getattr(obj, f.name) for f in fields(obj) if f.metadata.get("inline")}
    own: dict[str, Any] = {}
    sub: dict[str, dict[str, Any]] = {name: {} for name in inline}
    for key, value in table.items():
        for target, into in [(obj, own)] + [(v, sub[n]) for n, v in inline.items()]:
            want = typing.get_type_hints(type(target)).get(key)
            if want is not None and key not in inline and not is_dataclass(want):
                into[key] = _checked(want, value, section, key)
                break
        else:
            _unknown(section, key)
    return replace(obj, **own, **{n: replace(v, **sub[n]) for n, v in inline.items()})


def _unknown(section: str, key: str) -> None:
    if section == "node" and key in FLAT_KEYS:
        raise ConfigError(f"{key} is a setting of the old flat format: it is now "
                          f"{FLAT_KEYS[key]}; re-run `smart node init` (or move each setting "
                          f"to its section)")
    raise ConfigError(f"unknown setting {key!r} in [{section}]")


def _checked(want: Any, value: Any, section: str, key: str) -> Any:
    """``value`` as type ``want`` (int, float, bool, str, str | None, list[str])."""
    ok = {int: type(value) is int, float: type(value) in (int, float),
          bool: type(value) is bool, str: isinstance(value, str),
          str | None: isinstance(value, str),
          list[str]: isinstance(value, list) and all(isinstance(x, str) for x in value)}
    if not ok.get(want, False):
        name = getattr(want, "__name__", str(want))
        raise ConfigError(f"[{section}] {key} must be {name}")
    return float(value) if want is float else value


def _at_least(low: int, obj: Any, section: str, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < low:
            raise ConfigError(f"[{section}] {name} must be >= {low}")

