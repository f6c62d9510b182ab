"""The compute module's chain parameters, in the groups ``smartchain.state.params.Params`` encodes.

``Params`` is encoded field by field without tags, so each group keeps its place in it (see
docs/architecture.md, "Params and the fixed bytes"); a new parameter goes in a new group.
Importable on its own (codec only), like ``types``.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64


@dataclass(frozen=True)
class ComputeJobParams:
    """Jobs, replication and slashing (the first compute group)."""

    compute_min_stake: U64 = 10 * 10**8  # base units a provider locks to be assigned tasks
    compute_slash_bps: U32 = 1_000  # part of its stake a provider loses per out-voted result
    compute_max_extra_replicas: U32 = 3  # adaptive replication: replicas added on disagreement
    compute_max_reassign: U32 = 8  # replicas a task may lose (deadline, abstention) and replace
    compute_reveal_blocks: U64 = 10  # blocks to reveal once every replica of a task committed
    compute_max_misses: U32 = 3  # missed deadlines in a row that take a provider off the roster
    compute_max_tasks: U32 = 4_096  # tasks in one job
    compute_scan_gas: U64 = 20  # each provider looked at when placing one replica


@dataclass(frozen=True)
class ComputeSybilParams:
    """Sybil resistance and clean deadlines."""

    compute_probation_weight: U64 = 1_000_000  # a new provider's scheduling weight
    compute_weight_per_hpc: U64 = 100_000  # weight each whole HPC of stake backs, at most
    compute_miss_slash_bps: U32 = 100  # part of its stake a provider loses per missed deadline


@dataclass(frozen=True)
class ComputePlacementParams:
    """Bounded, fair placement in end_block."""

    compute_place_looks_per_block: U64 = 50_000  # provider looks end_block may spend placing
    compute_place_wait_blocks: U64 = 10_000  # blocks a task short of replicas may wait, at most


@dataclass(frozen=True)
class ComputeParams(ComputePlacementParams, ComputeSybilParams, ComputeJobParams):
    """All of the module's parameters (fields from the last base first, as in ``Params``)."""
