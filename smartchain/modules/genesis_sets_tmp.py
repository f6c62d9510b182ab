"""TEMPORARY (branch pocanode only, reverted when the ``poca`` module lands): writes the
genesis signer set into state so the node, which reads sets only from state, runs before
the staking module exists. The poca module's genesis writes this same set."""

from __future__ import annotations

from typing import Any

from smartchain.consensus.validators import Validator, ValidatorSetData
from smartchain.modules.poca.sets import schedule_set
from smartchain.state.module import Module
from smartchain.state.store import Overlay


class GenesisSets(Module):
    name = "genesis_sets_tmp"

    def init_genesis(self, store: Overlay, genesis: Any) -> None:
        schedule_set(store, ValidatorSetData(1, tuple(Validator(v.public_key, v.power, v.name)
                                                 for v in genesis.validators)))
