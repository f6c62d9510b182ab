"""The rewards curve and a scripted 100-epoch history (docs/rewards.md).

Prints (1) the curve table of the default params: utilisation -> minted per epoch (of the
first era's schedule) and the reward per 1 % of capacity served; (2) a scripted history of
100 epochs whose verified compute, storage and bandwidth rise, peak and fall against fixed
declared capacity, through the module's own functions (``measure``, ``curve_bps``) and the
halving schedule (``emitted_through``), exactly as the epoch settlement computes them, with
the signers' and providers' parts all earned. Figures, not assertions.

    PYTHONPATH=$PWD python3 bench/rewards.py
"""

from __future__ import annotations

from smartchain.modules.rewards.epoch import curve_bps, measure
from smartchain.state.emission import emitted_through, schedule
from smartchain.state.params import Params

HPC = 10**8
BPS = 10_000
GENESIS = 21 * HPC * 10**6  # 10 % of the cap at genesis
CPU = 2 * 1_000_000  # fuel/s declared by the compute providers
DISK = 2 * 10**12  # bytes declared by the storage providers


def hpc(units: int) -> str:
    return f"{units / HPC:,.2f}"


def curve_table(p: Params, per_epoch: int) -> None:
    print(f"curve (default params), epoch schedule {hpc(per_epoch)} HPC "
          f"({p.poca_epoch_blocks} blocks of the first era)")
    print(f"{'utilisation':>11} {'minted %':>9} {'minted HPC':>12} {'HPC per 1 % served':>19}")
    for u in (0, 500, 1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 8_000, 10_000):
        c = curve_bps(p, u)
        minted = per_epoch * c // BPS
        per_unit = hpc(minted * 100 // u) if u else "-"
        print(f"{u / 100:>10.0f}% {c / 100:>8.2f}% {hpc(minted):>12} {per_unit:>19}")


def usage(epoch: int) -> int:
    """Scripted demand, bps of capacity: rises to 95 % by epoch 60, then falls to 40 %."""
    return 300 + epoch * 9_200 // 60 if epoch <= 60 else 9_500 - (epoch - 60) * 5_500 // 40


def history(p: Params) -> None:
    em = schedule(p.block_time_ms, GENESIS)
    n = p.poca_epoch_blocks
    print(f"\nscripted history: 100 epochs of {n} blocks; capacity {CPU:,} fuel/s, "
          f"{DISK:,} bytes")
    print(f"{'epoch':>5} {'compute':>8} {'storage':>8} {'bandw.':>7} {'util.':>6} "
          f"{'curve':>6} {'schedule':>10} {'minted':>10} {'total minted':>13}")
    total, unminted = 0, 0
    for e in range(100):
        start, end = e * n + 1, (e + 1) * n
        use = usage(e)
        fuel = CPU * n * p.block_time_ms // 1000 * use // BPS
        stored = DISK * n // p.storage_epoch_blocks * min(BPS, use * 6 // 5) // BPS
        served = DISK * p.rewards_bandwidth_capacity_bps // BPS * n // p.storage_epoch_blocks \
            * (use * 2 // 3) // BPS
        util = measure(p, n, (fuel, stored, served), (CPU, DISK))
        allowed = emitted_through(em, end) - emitted_through(em, start - 1)
        minted = allowed * curve_bps(p, util.total) // BPS
        total += minted
        unminted += allowed - minted
        if e % 10 == 0 or e == 99:
            print(f"{e:>5} {util.compute / 100:>7.1f}% {util.storage / 100:>7.1f}% "
                  f"{util.bandwidth / 100:>6.1f}% {util.total / 100:>5.1f}% "
                  f"{curve_bps(p, util.total) / 100:>5.1f}% {hpc(allowed):>10} {hpc(minted):>10} "
                  f"{hpc(total):>13}")
    allowed = emitted_through(em, 100 * n)
    print(f"100 epochs: minted {hpc(total)} HPC of {hpc(allowed)} the schedule allowed "
          f"({total * 100 / allowed:.1f} %); {hpc(unminted)} HPC never minted; cap pool "
          f"{hpc(em.pool)} HPC")


def main() -> None:
    p = Params()
    em = schedule(p.block_time_ms, GENESIS)
    curve_table(p, emitted_through(em, p.poca_epoch_blocks))
    history(p)


if __name__ == "__main__":
    main()
