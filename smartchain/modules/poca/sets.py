"""Where the signer sets live in state, and how a node reads the set of a height.

The staking module decides a set in the end-block of height ``h`` and schedules it from
``h + 2`` (as CometBFT does), so every node knows the set, hence the proposer, of the next
height when it commits the current one. Every scheduled set stays in state: a commit, or
evidence, of an older height is checked against the set that signed it.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from typing import Protocol

from smartchain.codec import U64, Struct, list_of
from smartchain.consensus.validators import ValidatorSet, ValidatorSetData

VALSET_PREFIX = b"poca/valset/"  # + start height (8 bytes, big-endian) -> ValidatorSetData
VALSET_STARTS = b"poca/valset-starts"  # SetStarts: every start height, ascending

_H = struct.Struct(">Q")


@functools.lru_cache(maxsize=16)
def _decode_set(raw: bytes) -> ValidatorSet:
    """Decoded once per distinct encoding: several hooks read the set of every block (the
    tally, the liveness), and the same set signs a whole epoch. A ``ValidatorSet`` is
    immutable (its proposer cache is locked), so one instance serves every reader."""
    return ValidatorSet.decode(raw)


class _Reads(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class _Writes(_Reads, Protocol):
    def set(self, key: bytes, value: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class SetStarts(Struct):
    heights: list_of[U64]


def set_starts(view: _Reads) -> tuple[int, ...]:
    raw = view.get(VALSET_STARTS)
    return () if raw is None else _decode_starts(raw)


@functools.lru_cache(maxsize=16)
def _decode_starts(raw: bytes) -> tuple[int, ...]:
    return tuple(SetStarts.decode(raw).heights)


def schedule_set(store: _Writes, data: ValidatorSetData) -> None:
    """Install ``data`` from ``data.start_height`` on (replacing a set already scheduled
    for that same height: a later decision in the same block wins)."""
    starts = set_starts(store)
    if starts and data.start_height < starts[-1]:
        raise ValueError(f"a set from height {data.start_height} comes before the last "
                         f"scheduled one ({starts[-1]})")
    if not starts or starts[-1] != data.start_height:
        store.set(VALSET_STARTS, SetStarts((*starts, data.start_height)).encode())
    store.set(VALSET_PREFIX + _H.pack(data.start_height), data.encode())


def validator_set_at(view: _Reads, height: int) -> ValidatorSet:
    """The set that signs ``height``: the last one scheduled from ``height`` or before."""
    starts = set_starts(view)
    start = next((s for s in reversed(starts) if s <= height), None)
    if start is None:
        raise LookupError(f"no signer set is scheduled for height {height}")
    raw = view.get(VALSET_PREFIX + _H.pack(start))
    if raw is None:
        raise LookupError(f"the signer set from height {start} is missing from state")
    return _decode_set(raw)
