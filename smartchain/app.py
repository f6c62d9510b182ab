"""The app: which modules this chain runs, in order, and what each adds to the API and CLI.

The core (``smartchain/state/``) runs whatever module list it is given and imports no
module; this file is where the list lives. Adding a module is one line in ``MODULES``.
The order is the order of genesis steps and begin/end-block hooks, so it is part of the
chain's bytes: append, never reorder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from smartchain.modules.bank.module import Bank
from smartchain.modules.compute import cli as compute_cli
from smartchain.modules.compute import queries as compute_queries
from smartchain.modules.compute.module import Compute
from smartchain.modules.contracts import cli as contracts_cli
from smartchain.modules.contracts import queries as contracts_queries
from smartchain.modules.contracts.module import Contracts
from smartchain.modules.devices import cli as devices_cli
from smartchain.modules.devices import queries as devices_queries
from smartchain.modules.devices.module import Devices
from smartchain.modules.gov import cli as gov_cli
from smartchain.modules.gov import queries as gov_queries
from smartchain.modules.gov.module import Gov
from smartchain.modules.market import cli as market_cli
from smartchain.modules.market import queries as market_queries
from smartchain.modules.market.module import Market
from smartchain.modules.poca import cli as poca_cli
from smartchain.modules.poca import queries as poca_queries
from smartchain.modules.poca.module import Poca
from smartchain.modules.query import HttpQuery, ModuleApi
from smartchain.modules.rewards import cli as rewards_cli
from smartchain.modules.rewards import queries as rewards_queries
from smartchain.modules.rewards.module import Rewards
from smartchain.modules.storage import cli as storage_cli
from smartchain.modules.storage import queries as storage_queries
from smartchain.modules.storage.module import Storage
from smartchain.modules.tokens import cli as tokens_cli
from smartchain.modules.tokens import queries as tokens_queries
from smartchain.modules.tokens.module import Tokens
from smartchain.state.chain import Chain
from smartchain.state.genesis import Genesis
from smartchain.state.module import Module

NO_QUERIES = ModuleApi(())


@dataclass(frozen=True, slots=True)
class ModuleCli:
    """A module's ``smart <name> ...`` sub-commands (its ``cli.py``)."""

    name: str
    app: typer.Typer


@dataclass(frozen=True, slots=True)
class AppModule:
    """One module of the app: how to make its state machine, its HTTP queries, its CLI."""

    make: Callable[[], Module]
    api: ModuleApi = NO_QUERIES
    cli: ModuleCli | None = None
    more_clis: tuple[ModuleCli, ...] = ()  # a module with two command groups (poca)


MODULES: tuple[AppModule, ...] = (
    AppModule(Bank),
    AppModule(Tokens, tokens_queries.API, ModuleCli("token", tokens_cli.token_app)),
    AppModule(Contracts, contracts_queries.API, ModuleCli("contract", contracts_cli.contract_app)),
    AppModule(Compute, compute_queries.API, ModuleCli("compute", compute_cli.compute_app)),
    AppModule(Storage, storage_queries.API, ModuleCli("store", storage_cli.store_app)),
    AppModule(Poca, poca_queries.API, ModuleCli("validator", poca_cli.validator_app),
              (ModuleCli("stake", poca_cli.stake_app),)),
    AppModule(Devices, devices_queries.API, ModuleCli("device", devices_cli.device_app)),
    AppModule(Market, market_queries.API, ModuleCli("market", market_cli.market_app)),
    AppModule(Gov, gov_queries.API, ModuleCli("gov", gov_cli.gov_app)),
    AppModule(Rewards, rewards_queries.API, ModuleCli("rewards", rewards_cli.rewards_app)),
)


def default_modules() -> list[Module]:
    """Fresh instances of the app's modules (a module may keep per-chain caches)."""
    return [m.make() for m in MODULES]


def open_chain(path: Path | str, genesis: Genesis) -> Chain:
    """The chain at ``path`` run by the app's modules."""
    return Chain(path, genesis, default_modules())


def http_queries() -> list[HttpQuery]:
    """Every module's HTTP queries, in module order."""
    return [q for m in MODULES for q in m.api.queries]


def api_schemas() -> dict[str, Any]:
    """The component schemas the modules' queries name (a name used twice is a bug)."""
    out: dict[str, Any] = {}
    for m in MODULES:
        for name, schema in m.api.schemas.items():
            if name in out:
                raise ValueError(f"schema {name} declared by two modules")
            out[name] = schema
    return out


def module_clis() -> list[ModuleCli]:
    """The modules' CLI command groups, in module order (``smart`` adds each)."""
    return [c for m in MODULES for c in ((m.cli,) if m.cli else ()) + m.more_clis]
