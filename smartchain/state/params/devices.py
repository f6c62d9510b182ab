"""The devices module's chain parameters (one group of ``smartchain.state.params.Params``).

Importable on its own (codec only), like ``types``: the state layer assembles ``Params`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U64, U128


@dataclass(frozen=True)
class DevicesParams:
    # A manufacturer stakes this much HPC (locked in the module account): certifying devices
    # is a business with something at stake, and a throwaway account cannot mint identities.
    devices_manufacturer_deposit: U128 = 1_000 * 10**8
    devices_register_gas: U64 = 50_000  # a device identity is kept for ever (with revocation)
