"""A local network on this machine: node processes on 127.0.0.1 with funded demo accounts.

The devnet home holds ``devnet.json`` (chain id, node homes, demo accounts) and one home
per node. Running ``up`` again on an existing home restarts the same chain where it
stopped. Demo keys are throwaway: stored unencrypted (the ``insecure`` flag) both in the
devnet home and in the CLI keyring, so ``smart tx transfer --from demo1`` works at once.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartchain import launcher
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.launcher import NodeProc
from smartchain.node.config import (
    ApiSettings,
    ComputeSettings,
    ConfigError,
    ConsensusSettings,
    NodeConfig,
    P2PSettings,
    StorageSettings,
)
from smartchain.node.home import init_home, make_genesis
from smartchain.state.params import Params
from smartchain.types.amount import UNITS_PER_HPC

DEVNET_FILE = "devnet.json"
DEMO_BALANCE = 1_000_000 * UNITS_PER_HPC
PROVIDER_BALANCE = 10_000 * UNITS_PER_HPC  # a compute provider's stake and fees
# Declared speed of compute provider i (fuel/s): (i + 1) × this, so the providers of a
# devnet differ in declared speed the same way on every machine (the chain then measures
# their real speed on verified tasks).
PROVIDER_CAPABILITY_STEP = 1_000_000_000
# A storage provider node offers this much disk (declared on chain; only what clients
# store is really written) and keeps unpinned pieces this long before deleting them.
STORAGE_PROVIDER_BYTES = 16 * 1024**3
STORAGE_GC_GRACE_S = 600
# Audit epochs suited to a quick local network: at 1 s blocks a deal is audited (and its
# providers paid) every 20 s, with 10 blocks to answer, so repair shows within a minute.
STORAGE_PARAMS: dict[str, Any] = {"storage_epoch_blocks": 20, "storage_audit_window": 10}
# Governance suited to a quick local network: a funded proposal is open to votes for 30
# blocks (about 30 s), an unfunded one expires after 30.
GOV_PARAMS: dict[str, Any] = {"gov_deposit_blocks": 30, "gov_voting_blocks": 30}
# POCA at devnet scale (docs/devnet-poca.md): at 1 s blocks an epoch is 20 s, a director
# down for 10 of the last 20 blocks is jailed and its seat goes to a standby two blocks
# later, and it may unjail 20 blocks after. Every genesis validator is qualified by the
# genesis bootstrap (poca_bootstrap_epochs = 0: until outranked).
POCA_PARAMS: dict[str, Any] = {"poca_epoch_blocks": 20, "poca_downtime_window": 20,
                               "poca_downtime_missed": 10, "poca_jail_blocks": 20,
                               "poca_attest_interval": 5}
# Directors lock more than standbys, so the ranking seats them first, and a director
# slashed for downtime (0.1 %) still outranks the standby that replaced it.
DIRECTOR_POWER, STANDBY_POWER = 3, 2
SIGNER_BALANCE = 100 * UNITS_PER_HPC  # a signer node's key: fees of unjail, attestations


class DevnetError(RuntimeError):
    pass


@dataclass
class DemoAccount:
    name: str
    seed: str

    @property
    def key(self) -> PrivateKey:
        return PrivateKey.from_seed(bytes.fromhex(self.seed))

    @property
    def address(self) -> str:
        return to_bech32(self.key.address)


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise DevnetError("no free TCP port")


def create(home: Path, *, validators: int = 4, accounts: int = 5,
           chain_id: str = "smart-devnet-1", api_port: int = 26657,
           block_time_ms: int = 1000, compute_providers: int = 0,
           storage_providers: int = 0, standby: int = 0) -> dict:
    """Keys, one shared genesis and a home per node; every node seeds every signer.

    ``validators`` are the directors (the BFT set); ``standby`` adds that many standby
    signer nodes named ``standby0``…: genesis validators ranked after the directors (less
    stake), which take a director's seat when it fails (``POCA_PARAMS``).

    ``compute_providers`` adds that many follower (non-signer) nodes named ``compute0``…,
    each offering one core of compute with its node key funded in genesis and a declared
    capability of ``(i + 1) × PROVIDER_CAPABILITY_STEP`` fuel/s. ``storage_providers`` adds
    followers named ``storage0``… offering ``STORAGE_PROVIDER_BYTES`` of disk each, their
    keys funded for collateral and fees; the genesis has short audit epochs
    (``STORAGE_PARAMS``)."""
    if not 1 <= validators <= 32:
        raise DevnetError("a devnet has 1 to 32 validators")
    if not 0 <= standby <= 32:
        raise DevnetError("a devnet has 0 to 32 standby signers")
    if not 0 <= compute_providers <= 32:
        raise DevnetError("a devnet has 0 to 32 compute providers")
    if not 0 <= storage_providers <= 32:
        raise DevnetError("a devnet has 0 to 32 storage providers")
    home.mkdir(parents=True, exist_ok=True)
    demos = [DemoAccount(f"demo{i + 1}", os.urandom(32).hex()) for i in range(accounts)]
    signers = validators + standby
    keys = [PrivateKey.generate() for _ in range(signers)]
    provider_keys = [PrivateKey.generate() for _ in range(compute_providers + storage_providers)]
    names = [f"node{i}" for i in range(validators)] + [f"standby{i}" for i in range(standby)]
    genesis = make_genesis(
        chain_id, [(k.public_key, DIRECTOR_POWER if i < validators else STANDBY_POWER,
                    names[i]) for i, k in enumerate(keys)],
        [(d.key.address, DEMO_BALANCE) for d in demos]
        + [(k.address, SIGNER_BALANCE) for k in keys]
        + [(k.address, PROVIDER_BALANCE) for k in provider_keys],
        params=Params(block_time_ms=block_time_ms,  # it fixes the halving interval
                      poca_max_directors=validators, poca_max_standby=standby,
                      **STORAGE_PARAMS, **GOV_PARAMS, **POCA_PARAMS))
    names += [f"compute{i}" for i in range(compute_providers)] + \
        [f"storage{i}" for i in range(storage_providers)]
    configs = [NodeConfig(moniker=name, api=ApiSettings(port=_free_port(api_port + i)),
                          p2p=P2PSettings(port=_free_port(api_port + 1000 + i)),
                          consensus=ConsensusSettings(block_time_ms=block_time_ms))
               for i, name in enumerate(names)]
    compute_cfgs = configs[signers:signers + compute_providers]
    storage_cfgs = configs[signers + compute_providers:]
    for i, cfg in enumerate(compute_cfgs):
        cfg.compute = ComputeSettings(cores=1,
                                      capability_override=(i + 1) * PROVIDER_CAPABILITY_STEP)
    for cfg in storage_cfgs:
        cfg.storage = StorageSettings(capacity=STORAGE_PROVIDER_BYTES,
                                      gc_grace_s=STORAGE_GC_GRACE_S)
    keys += provider_keys
    addresses = [f"{k.public_key.hex()}@127.0.0.1:{c.p2p.port}" for k, c in zip(keys, configs,
                                                                              strict=True)]
    nodes = []
    for i, (key, cfg) in enumerate(zip(keys, configs, strict=True)):
        # Everyone seeds the signers (standbys included: they may take a seat);
        # providers are found through them (and the DHT).
        cfg.p2p.seeds = [a for j, a in enumerate(addresses[:signers]) if j != i]
        node_home = home / names[i]
        init_home(node_home, chain_id=chain_id, key=key, passphrase=None, insecure=True,
                  config=cfg, genesis=genesis)
        nodes.append({"name": names[i], "home": str(node_home),
                      "api_url": f"http://127.0.0.1:{cfg.api.port}",
                      "p2p_address": addresses[i],
                      **({"standby_signer": True} if validators <= i < signers else {}),
                      **({"compute_provider": True}
                         if signers <= i < signers + compute_providers else {}),
                      **({"storage_provider": True}
                         if i >= signers + compute_providers else {})})
    doc = {"chain_id": chain_id, "nodes": nodes,
           "accounts": [{"name": d.name, "seed": d.seed, "address": d.address} for d in demos]}
    (home / DEVNET_FILE).write_text(json.dumps(doc, indent=2))
    return doc


def load(home: Path) -> dict | None:
    try:
        return json.loads((home / DEVNET_FILE).read_text())
    except FileNotFoundError:
        return None


def demo_accounts(doc: dict) -> list[DemoAccount]:
    return [DemoAccount(a["name"], a["seed"]) for a in doc["accounts"]]


def start(doc: dict, timeout: float = 30.0) -> list[NodeProc]:
    """Start every node that is not already running; wait until each serves its API.

    Every node's config is read first: a devnet made by an older version (a flat
    config.toml) is refused as a whole, with what to do, before any node starts."""
    for n in doc["nodes"]:
        try:
            NodeConfig.load(Path(n["home"]))
        except ConfigError as exc:
            raise DevnetError(f"{exc}\nto start afresh, remove {Path(n['home']).parent} and "
                              f"run `smart devnet up` again") from None
    started = [launcher.launch(Path(n["home"])) for n in doc["nodes"]
               if launcher.running_pid(Path(n["home"])) is None]
    try:
        for proc in started:
            proc.wait_ready(timeout)
    except launcher.LaunchError as exc:
        for proc in started:
            proc.kill()
        raise DevnetError(str(exc)) from None
    return started


def stop(doc: dict, timeout: float = 20.0) -> int:
    """SIGTERM every running node of the devnet (SIGKILL past ``timeout``); returns how
    many were running."""
    pids = [pid for n in doc["nodes"] if (pid := launcher.running_pid(Path(n["home"])))]
    for pid in pids:
        launcher.stop_pid(pid, timeout)
    return len(pids)
