"""The scheduling policy over plain data: slots, weights, smooth weighted round-robin."""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from smartchain.crypto.hashing import h256_tagged
from smartchain.modules.compute.types import (
    Job,
)

# --- the scheduling policy, over plain data ------------------------------------------------------


@dataclass(slots=True)
class Slot:
    """A provider as the scheduler sees it: plain data, so the policy is testable alone."""

    address: bytes
    capacity: int  # declared fuel/s: the most its replicas may reserve
    effective: int  # its weight (``effective_capability``)
    reserved: int = 0  # fuel/s held by its replicas
    current: int = 0  # SWRR current weight
    placed: int = 0  # replicas placed on it by this batch
    placed_rate: int = 0
    owner: bytes = b""
    network: str = ""
    stake: int = 0  # its stake: the pay of every replica it holds must be covered
    bonded: int = 0  # the part of it backing replicas it holds
    placed_bond: int = 0


def slot_weight(s: Slot) -> int:
    """Effective capability scaled by the free part of the capacity: load lowers the share."""
    return max(1, s.effective * (s.capacity - s.reserved) // s.capacity)


def _tie(seed: bytes, address: bytes) -> bytes:
    return h256_tagged(b"smart/compute/tie", seed, address)


def swrr_pick(slots: list[Slot], rate: int, exclude: Container[bytes],
              seed: bytes = b"", bond: int = 0) -> Slot | None:
    """One step of smooth weighted round-robin (nginx) over the slots that can take one more
    replica reserving ``rate`` fuel/s and ``bond`` of stake; updates the slots and returns
    the chosen one."""
    best: Slot | None = None
    total = 0
    for s in slots:
        if s.capacity <= 0 or s.reserved + rate > s.capacity or s.address in exclude or \
                s.bonded + bond > s.stake:
            continue
        w = slot_weight(s)
        s.current += w
        total += w
        if best is None or s.current > best.current or (
                s.current == best.current and _tie(seed, s.address) > _tie(seed, best.address)):
            best = s
    if best is None:
        return None
    best.current -= total
    best.reserved += rate
    best.placed += 1
    best.placed_rate += rate
    best.bonded += bond
    best.placed_bond += bond
    return best


def replica_bond(job: Job) -> int:
    """The stake a replica holds bonded: the most it can be paid. A winner who never
    releases the output gives its pay back out of it, so withholding never pays."""
    return job.fuel_per_task * job.price_per_fuel


def replica_rate(fuel_per_task: int, deadline_blocks: int, block_time_ms: int) -> int:
    """Fuel/s a replica needs to finish by its deadline (rounded up)."""
    window_ms = max(1, deadline_blocks * block_time_ms)
    return max(1, -(-fuel_per_task * 1000 // window_ms))
