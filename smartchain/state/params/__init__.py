"""Chain parameters: set in genesis, kept in state (governance will change them later).

Each module declares its own parameters in ``smartchain/modules/<name>/params.py`` (frozen
dataclasses of fields with defaults, importable alone); ``Params`` is their union, one flat
struct, so genesis JSON names fields as before and code reads ``params.<field>``.

The codec encodes the fields in order without tags, and the genesis hash and every state root
depend on those bytes: the field order is fixed. A dataclass takes its bases' fields starting
from the LAST base, so ``Params``'s bases are listed newest group first; ``PARAM_GROUPS``
gives the encoding order and ``tests/unit/test_params.py`` pins it. New parameters go in a new
group appended to that order (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64, Struct
from smartchain.state.params.compute import (
    ComputeJobParams,
    ComputePlacementParams,
    ComputeSybilParams,
)
from smartchain.state.params.contracts import ContractsParams
from smartchain.state.params.devices import DevicesParams
from smartchain.state.params.gov import GovParams
from smartchain.state.params.market import MarketParams
from smartchain.state.params.poca import PocaParams
from smartchain.state.params.rewards import RewardsParams
from smartchain.state.params.storage import StorageAcceptParams, StorageDealParams
from smartchain.state.params.tokens import TokensParams

PARAMS_KEY = b"params"


@dataclass(frozen=True)
class CoreParams:
    """The executor's and chain's own: fees, size and gas limits, block time."""

    min_gas_price: U64 = 1  # base units of HPC per unit of gas
    tx_base_gas: U64 = 10_000  # every transaction, for signature check and bookkeeping
    gas_per_tx_byte: U64 = 10
    gas_per_write: U64 = 1_000  # each state key written
    max_tx_bytes: U32 = 64 * 1024
    max_tx_gas: U64 = 50_000_000
    max_block_bytes: U64 = 32 * 1024 * 1024
    # Gas a block's transactions may reserve (each its whole limit, from what the ones
    # before it left): bounds what executing one block costs every node. About 21,000
    # transfers (11.5k gas each), or 1.4 s of a plain Lua loop on a 2-core test machine.
    max_block_gas: U64 = 250_000_000
    block_time_ms: U64 = 1_000  # target; also sets the halving interval at genesis


# The encoding order of the groups: append new groups at the end, never reorder.
PARAM_GROUPS: tuple[type, ...] = (
    CoreParams,
    TokensParams,
    ContractsParams,
    ComputeJobParams,
    StorageDealParams,
    ComputeSybilParams,
    StorageAcceptParams,
    ComputePlacementParams,
    PocaParams,
    DevicesParams,
    MarketParams,
    GovParams,
    RewardsParams,
)


@dataclass(frozen=True, slots=True)
class Params(  # PARAM_GROUPS reversed: a dataclass lays out its last base's fields first
    RewardsParams,
    GovParams,
    MarketParams,
    DevicesParams,
    PocaParams,
    ComputePlacementParams,
    StorageAcceptParams,
    ComputeSybilParams,
    StorageDealParams,
    ComputeJobParams,
    ContractsParams,
    TokensParams,
    CoreParams,
    Struct,
):
    """Every module's parameters as one struct, encoded in ``PARAM_GROUPS`` order."""
