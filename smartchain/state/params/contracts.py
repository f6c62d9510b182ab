"""The contracts module's chain parameters (one group of ``smartchain.state.params.Params``).

Importable on its own (codec only), like ``types``: the state layer assembles ``Params`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U64


@dataclass(frozen=True)
class ContractsParams:
    contract_call_gas: U64 = 5_000  # each contract call, top-level or nested
    # deploying, per byte of source: kept on chain twice (as written, and rewritten for the VM
    # once: about 0.6 us of CPU a byte, as much as 100 gas of a plain Lua loop)
    contract_code_byte_gas: U64 = 100
