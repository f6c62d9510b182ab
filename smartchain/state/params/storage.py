"""The storage module's chain parameters, in the groups ``smartchain.state.params.Params`` encodes.

``Params`` is encoded field by field without tags, so each group keeps its place in it (see
docs/architecture.md, "Params and the fixed bytes"); a new parameter goes in a new group.
Importable on its own (codec only), like ``types``. docs/storage.md explains them.
"""

from __future__ import annotations

from dataclasses import dataclass

from smartchain.codec import U32, U64


@dataclass(frozen=True)
class StorageDealParams:
    """Deals, audits, repair and receipts (the first storage group)."""

    storage_epoch_blocks: U64 = 100  # blocks per audit epoch: challenges open at its first block
    storage_min_price: U64 = 1_000  # base units per GiB per epoch a provider may ask, at least
    storage_min_collateral: U64 = 10 * 10**8  # base units a provider locks to take columns
    storage_slash_bps: U32 = 10_000  # part of a column's collateral lost per missed column-epoch
    storage_audit_segments: U32 = 22  # leaves challenged per column per epoch (distinct
    # segments first): a provider missing 10 % of a column passes 3 epochs with p < 0.001
    storage_audit_window: U64 = 50  # blocks after the epoch start to answer (kept < the epoch)
    storage_repair_bps: U32 = 2_000  # repair budget locked with a deal, part of its storage cost
    storage_receipt_ttl: U64 = 1_000  # blocks a bandwidth receipt can be claimed in
    storage_max_columns: U32 = 32  # code_n of a deal, at most
    storage_max_segments: U32 = 65_536  # segments of a deal, at most


@dataclass(frozen=True)
class StorageAcceptParams:
    """Acceptances and collateral."""

    storage_accept_ttl: U64 = 600  # blocks a provider's acceptance (and upload intent) is good for
    storage_collateral_per_gib: U64 = 10**8  # collateral per GiB held, above the minimum


@dataclass(frozen=True)
class StorageParams(StorageAcceptParams, StorageDealParams):
    """All of the module's parameters (fields from the last base first, as in ``Params``)."""
