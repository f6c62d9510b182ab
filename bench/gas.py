"""CPU seconds per million gas for every adversarial case of tests/framework/gas_cases.py, and
for the native operators, against a plain Lua loop measured in the same run.

Each case runs its statement in a loop until the call runs out of gas; the figure is the
call's CPU time per million gas and its ratio to the plain loop's (target <= 5x). Prints one
line per case, worst first. Not a test: the machine is noisy, compare the ratios.

    python bench/gas.py [--gas 2000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from framework.gas_cases import CASES, SETUP

from smartchain.contracts.memhost import MemoryHost
from smartchain.contracts.vm import LuaVM
from smartchain.crypto.address import to_bech32

TARGET = 5.0
PLAIN = "local x = 0 x = x + 1"
# The operators: comparisons are metered helper calls (docs/gas.md, "Comparison operators").
OPERATORS = (
    ("== (64 KiB, equal prefix)", "local r = A == B"),
    ("< (64 KiB, equal prefix)", "local r = A < B"),
    ("< (64 KiB of NULs)", "local r = Z < Z2"),
    ("varargs (256 values)", "local r = select('#', (function(...) return ... end)(unpack(T)))"),
)


def cpu_per_mgas(vm: LuaVM, host: MemoryHost, n: int, stmt: str, gas: int) -> tuple[float, str]:
    address = bytes([0xB0, n >> 8, n & 255]) + bytes(17)
    host.sources[address] = f"function f()\n{SETUP}\nwhile true do {stmt} end\nend".encode()
    me = to_bech32(address).encode()
    host.begin(address)
    start = time.process_time()
    out = vm.invoke(me, b"f", (), gas=gas, caller=me, value=0, origin=me, height=1, time_ms=0)
    seconds = time.process_time() - start
    return seconds / out.gas_used * 1e6, out.error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gas", type=int, default=2_000_000)
    parser.add_argument("--operators", action="store_true",
                        help="also the native operators (slow: minutes at 2 M gas)")
    args = parser.parse_args()
    host = MemoryHost()
    vm = LuaVM(host)
    host.hpc[bytes([0xB0]) + bytes(19)] = 0
    plain, _ = cpu_per_mgas(vm, host, 0, PLAIN, args.gas)
    rows = []
    cases = [(f"{c.name}: {c.stmt}", c.stmt) for c in CASES]
    if args.operators:
        cases += list(OPERATORS)
    for n, (label, stmt) in enumerate(cases, 1):
        per, error = cpu_per_mgas(vm, host, n, stmt, args.gas)
        rows.append((per / plain, per, label, error))
    print(f"plain loop: {plain:.4f} CPU s per M gas; target <= {TARGET}x")
    for ratio, per, label, error in sorted(rows, reverse=True):
        flag = "" if ratio <= TARGET else "  OVER"
        print(f"{ratio:7.2f}x {per:8.4f} s/Mgas  {label}  [{error}]{flag}")
    worst = max(rows)
    print(f"worst: {worst[0]:.2f}x ({worst[2]})")


if __name__ == "__main__":
    main()
