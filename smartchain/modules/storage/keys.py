"""Keys of the storage module's state, collateral rules, and reads any module or query may use."""

from __future__ import annotations

from typing import Any

from smartchain.modules.storage.types import (
    _U32,
    _U64,
    ACTIVE,
    CHALLENGE_PREFIX,
    CLAIMED_PREFIX,
    DEAL_PREFIX,
    GIB,
    HOLD_PREFIX,
    PROVIDER_PREFIX,
    Deal,
    StorageProvider,
)
from smartchain.state.params import Params


def column_collateral(params: Params, nbytes: int) -> int:
    """The collateral ``nbytes`` of columns call for (rounded up), before the minimum."""
    return -(-nbytes * params.storage_collateral_per_gib // GIB)


def required_collateral(params: Params, nbytes: int) -> int:
    """What a provider holding ``nbytes`` must have locked: per GiB, at least the minimum."""
    return max(params.storage_min_collateral, column_collateral(params, nbytes))


# --- keys -----------------------------------------------------------------------------------


def provider_key(address: bytes) -> bytes:
    return PROVIDER_PREFIX + address


def deal_key(file_id: bytes) -> bytes:
    return DEAL_PREFIX + file_id


def _hold_key(provider: bytes, file_id: bytes, frag: int) -> bytes:
    return HOLD_PREFIX + provider + file_id + _U32.pack(frag)


def _column_prefix(provider: bytes, file_id: bytes, frag: int) -> bytes:
    return CHALLENGE_PREFIX + provider + file_id + _U32.pack(frag)


def _challenge_key(provider: bytes, file_id: bytes, frag: int, segment: int,
                   leaf: int) -> bytes:
    return _column_prefix(provider, file_id, frag) + _U32.pack(segment) + _U32.pack(leaf)


def _split_challenge(key: bytes) -> tuple[bytes, bytes, int, int]:
    """(provider, file_id, frag, segment) of a challenge key."""
    rest = key[len(CHALLENGE_PREFIX):]
    return rest[:20], rest[20:52], _U32.unpack_from(rest, 52)[0], _U32.unpack_from(rest, 56)[0]


def _claimed_key(height: int, receipt_id: bytes) -> bytes:
    return CLAIMED_PREFIX + _U64.pack(height) + receipt_id


# --- reads any module or query may use ----------------------------------------------------------


def get_provider(store: Any, address: bytes) -> StorageProvider | None:
    raw = store.get(provider_key(address))
    return StorageProvider.decode(raw) if raw is not None else None


def get_deal(store: Any, file_id: bytes) -> Deal | None:
    raw = store.get(deal_key(file_id))
    return Deal.decode(raw) if raw is not None else None


def healthy_count(deal: Deal) -> int:
    return sum(c.healthy for c in deal.columns)


def needs_repair(deal: Deal) -> bool:
    return deal.status == ACTIVE and healthy_count(deal) < deal.repair_threshold and any(
        not c.healthy for c in deal.columns)


def _column_index(deal: Deal, frag_index: int) -> int | None:
    for i, c in enumerate(deal.columns):
        if c.frag_index == frag_index:
            return i
    return None
