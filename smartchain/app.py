"""The app: which modules this chain runs, in order.

The core (``smartchain/state/``) runs whatever module list it is given and imports no
module; this file is where the list lives. Adding a module is one line in ``MODULES``.
The order is the order of genesis steps and begin/end-block hooks, so it is part of the
chain's bytes: append, never reorder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from smartchain.modules.bank.module import Bank
from smartchain.modules.compute.module import Compute
from smartchain.modules.contracts.module import Contracts
from smartchain.modules.storage.module import Storage
from smartchain.modules.tokens.module import Tokens
from smartchain.state.chain import Chain
from smartchain.state.genesis import Genesis
from smartchain.state.module import Module

MODULES: tuple[Callable[[], Module], ...] = (Bank, Tokens, Contracts, Compute, Storage)


def default_modules() -> list[Module]:
    """Fresh instances of the app's modules (a module may keep per-chain caches)."""
    return [make() for make in MODULES]


def open_chain(path: Path | str, genesis: Genesis) -> Chain:
    """The chain at ``path`` run by the app's modules."""
    return Chain(path, genesis, default_modules())
