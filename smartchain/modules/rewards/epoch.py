"""The epoch mint: what the schedule allows, what utilisation says to mint of it (the
curve), and who earns it (docs/rewards.md).

Per block one record is written (``Tally``: who proposed, who signed the last commit). At an
epoch's last height (the staking module's epoch) the work ledger is read and cleared, the
declared capacities are summed (one read per provider: the epoch's only loop over them),
the mint is computed in integers and paid into the module account, where it waits to be
withdrawn.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from smartchain.consensus.validators import ValidatorSet
from smartchain.crypto.address import address_of
from smartchain.modules.bank.module import emission_of, mint_reward, total_minted
from smartchain.modules.compute.types import PROVIDER_PREFIX as COMPUTE_PREFIX
from smartchain.modules.compute.types import Provider as ComputeProvider
from smartchain.modules.poca.sets import validator_set_at
from smartchain.modules.poca.state import get_candidate, get_ranking, operator_of_key
from smartchain.modules.poca.types import epoch_of
from smartchain.modules.rewards.state import accrue, add_to_pool, commission_of
from smartchain.modules.rewards.types import (
    BPS,
    LAST_KEY,
    MODULE_ACCOUNT,
    TALLY_KEY,
    WORK_PREFIX,
    Count,
    EpochSummary,
    Tally,
    Work,
)
from smartchain.modules.storage.types import PROVIDER_PREFIX as STORAGE_PREFIX
from smartchain.modules.storage.types import StorageProvider
from smartchain.state.emission import emitted_through
from smartchain.state.module import BlockInfo
from smartchain.state.params import Params
from smartchain.state.store import Overlay
from smartchain.types.tx import Event

KNOTS = (0, 3_000, 5_000, BPS)  # utilisation (bps) of the curve's points


def curve_points(p: Params) -> tuple[int, ...]:
    return (p.rewards_curve_0_bps, p.rewards_curve_30_bps, p.rewards_curve_50_bps,
            p.rewards_curve_100_bps)


def curve_bps(p: Params, utilisation_bps: int) -> int:
    """The part of the epoch's schedule minted at ``utilisation_bps``: linear between the
    points at 0, 30, 50 and 100 % (rising; the bounds keep the reward per unit falling)."""
    u = max(0, min(BPS, utilisation_bps))
    ys = curve_points(p)
    for i in range(1, len(KNOTS)):
        if u <= KNOTS[i]:
            x0, x1, y0, y1 = KNOTS[i - 1], KNOTS[i], ys[i - 1], ys[i]
            return y0 + (y1 - y0) * (u - x0) // (x1 - x0)
    return ys[-1]


@dataclass(frozen=True, slots=True)
class Utilisation:
    """Each kind's use of the declared capacity, and the weighted figure (bps)."""

    compute: int
    storage: int
    bandwidth: int
    total: int
    contributions: tuple[int, int, int]  # weight x use of each kind with capacity


def _ratio(used: int, num: int, den: int) -> int:
    """``used`` of a capacity ``den / num``, in bps (at most 100 %)."""
    return min(BPS, used * num * BPS // den) if den > 0 else 0


def measure(p: Params, blocks: int, work: tuple[int, int, int],
            capacity: tuple[int, int]) -> Utilisation:
    """Utilisation over ``blocks`` heights of verified (fuel, storage byte-epochs, bandwidth
    bytes) against the declared capacities (fuel/s of compute providers, bytes of storage
    providers). Bandwidth capacity per storage epoch is ``rewards_bandwidth_capacity_bps``
    of the storage capacity. A kind nobody declared capacity for is left out."""
    fuel, stored, served = work
    cpu, disk = capacity
    epoch = max(1, p.storage_epoch_blocks)
    dens = (cpu * blocks * p.block_time_ms, disk * blocks,
            disk * blocks * p.rewards_bandwidth_capacity_bps)
    uses = (_ratio(fuel, 1000, dens[0]), _ratio(stored, epoch, dens[1]),
            _ratio(served, epoch * BPS, dens[2]))
    weights = (p.rewards_compute_weight, p.rewards_storage_weight, p.rewards_bandwidth_weight)
    live = [w if d > 0 else 0 for w, d in zip(weights, dens, strict=True)]
    contributions = tuple(w * u for w, u in zip(live, uses, strict=True))
    total = sum(contributions) // sum(live) if sum(live) else 0
    return Utilisation(*uses, total, (contributions[0], contributions[1], contributions[2]))


def declared_capacity(view: Any) -> tuple[int, int]:
    """(fuel/s of active compute providers, bytes of active storage providers)."""
    cpus = [ComputeProvider.decode(raw) for _k, raw in view.iter_prefix(COMPUTE_PREFIX)]
    disks = [StorageProvider.decode(raw) for _k, raw in view.iter_prefix(STORAGE_PREFIX)]
    return (sum(c.capability for c in cpus if c.active),
            sum(d.capacity for d in disks if d.active))


def split(amount: int, weights: Iterable[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
    """``amount`` by weight, rounded down (the rest is not minted)."""
    items = [(k, w) for k, w in weights if w > 0]
    total = sum(w for _k, w in items)
    return [(k, amount * w // total) for k, w in items] if total else []


# --- the tally of the epoch running ----------------------------------------------------------


def get_tally(view: Any) -> Tally:
    raw = view.get(TALLY_KEY)
    return Tally.decode(raw) if raw is not None else Tally(1, (), (), ())


def get_summary(view: Any) -> EpochSummary | None:
    raw = view.get(LAST_KEY)
    return EpochSummary.decode(raw) if raw is not None else None


def start_tally(store: Overlay, start: int) -> None:
    """A new epoch from ``start``: its standby signers are the ranking's now."""
    store.set(TALLY_KEY, Tally(start, (), (), get_ranking(store).standbys).encode())


def _set_at(store: Overlay, height: int) -> ValidatorSet | None:
    try:
        return validator_set_at(store, height)
    except LookupError:
        return None


@functools.lru_cache(maxsize=16)
def _keys_by_address(valset: ValidatorSet) -> Mapping[bytes, bytes]:
    """address -> public key of a set's members (the first, were two to share one): the
    proposer of every block is looked up in it, and a set signs many blocks."""
    out: dict[bytes, bytes] = {}
    for v in valset.validators:
        out.setdefault(address_of(v.public_key), v.public_key)
    return out


def _bump(counts: tuple[Count, ...], keys: Iterable[bytes]) -> tuple[Count, ...]:
    out = {c.key: c.n for c in counts}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return tuple(Count(k, n) for k, n in sorted(out.items()))


def count_block(store: Overlay, block: BlockInfo) -> None:
    """Record who proposes this block and who signed the previous one (``last_commit``,
    against the set of its height): one write per block."""
    tally = get_tally(store)
    current = _set_at(store, block.height)
    key = _keys_by_address(current).get(block.proposer) if current else None
    proposer = [] if key is None else [key]
    commit, signers = block.last_commit, []
    if commit.height == block.height - 1 >= 1 and commit.signatures:
        previous = _set_at(store, commit.height)
        if previous is not None:
            signers = [previous.validators[s.validator_index].public_key
                       for s in commit.signatures
                       if s.validator_index < len(previous.validators)]
    store.set(TALLY_KEY, Tally(tally.start, _bump(tally.proposals, proposer),
                               _bump(tally.signatures, signers), tally.standbys).encode())


# --- settlement ------------------------------------------------------------------------------


def _drain_work(store: Overlay) -> list[tuple[bytes, Work]]:
    found = [(k[len(WORK_PREFIX):], Work.decode(raw))
             for k, raw in store.iter_prefix(WORK_PREFIX)]
    for provider, _w in found:
        store.delete(WORK_PREFIX + provider)
    return found


def credit_validator(store: Overlay, p: Params, operator: bytes, amount: int) -> None:
    """A signer's reward: its commission and its own stake's part accrue to it, the rest to
    its delegators' pool (by shares)."""
    c = get_candidate(store, operator)
    if c is None or not c.shares:
        accrue(store, operator, amount)
        return
    rest = amount - amount * commission_of(store, operator, p).rate_bps // BPS
    tokens = c.self_stake + c.delegated
    delegators = rest * c.delegated // tokens if tokens else 0
    if delegators:
        add_to_pool(store, operator, delegators, c.shares)
    accrue(store, operator, amount - delegators)


def _operator(store: Overlay, pubkey: bytes) -> bytes:
    op = operator_of_key(store, pubkey)
    return op if op is not None else address_of(pubkey)


def _signer_payouts(store: Overlay, p: Params, tally: Tally, mint: int,
                    epoch: int) -> list[tuple[bytes, int]]:
    """(operator, amount) of the proposers, the directors and the standby signers."""
    proposals = [(_operator(store, c.key), c.n) for c in tally.proposals]
    signatures = [(_operator(store, c.key), c.n) for c in tally.signatures]
    attests = []
    for op in tally.standbys:
        c = get_candidate(store, op)
        attests.append((op, c.attests if c is not None and c.attest_epoch == epoch else 0))
    return (split(mint * p.rewards_proposer_bps // BPS, proposals)
            + split(mint * p.rewards_director_bps // BPS, signatures)
            + split(mint * p.rewards_standby_bps // BPS, attests))


def _provider_payouts(p: Params, util: Utilisation, mint: int,
                      work: list[tuple[bytes, Work]]) -> list[tuple[bytes, int]]:
    """The providers' part, by kind as each kind made the utilisation figure, then by
    verified work within it. A provider that missed an audit this epoch gets nothing; its
    portion is not minted."""
    part = mint * p.rewards_provider_bps // BPS
    per_kind = split(part, [(bytes([i]), c) for i, c in enumerate(util.contributions)])
    failed = {prov for prov, w in work if w.failed}
    out: list[tuple[bytes, int]] = []
    for kind, amount in per_kind:
        units = [(prov, (w.fuel, w.storage, w.bandwidth)[kind[0]]) for prov, w in work]
        out += [(prov, a) for prov, a in split(amount, units) if prov not in failed]
    return out


def settle(store: Overlay, block: BlockInfo) -> list[Event]:
    """Mint and distribute the epoch ending at this height, then start the next."""
    p, h = block.params, block.height
    tally = get_tally(store)
    em = emission_of(store)
    schedule = min(emitted_through(em, h) - emitted_through(em, tally.start - 1),
                   em.pool - total_minted(store))
    work = _drain_work(store)
    totals = (sum(w.fuel for _p, w in work), sum(w.storage for _p, w in work),
              sum(w.bandwidth for _p, w in work))
    util = measure(p, h - tally.start + 1, totals, declared_capacity(store))
    curve = curve_bps(p, util.total)
    mint = schedule * curve // BPS
    epoch = epoch_of(h, p.poca_epoch_blocks)
    signers = _signer_payouts(store, p, tally, mint, epoch)
    providers = _provider_payouts(p, util, mint, work)
    for op, amount in signers:
        credit_validator(store, p, op, amount)
    for prov, amount in providers:
        accrue(store, prov, amount)
    to_providers = sum(a for _k, a in providers)
    minted = mint_reward(store, MODULE_ACCOUNT, sum(a for _k, a in signers) + to_providers)
    store.set(LAST_KEY, EpochSummary(tally.start, h, schedule, util.compute, util.storage,
                                     util.bandwidth, util.total, curve, minted,
                                     to_providers).encode())
    start_tally(store, h + 1)
    return [Event.of("rewards_epoch", start=tally.start, end=h, schedule=schedule,
                     utilisation_bps=util.total, curve_bps=curve, minted=minted)]
