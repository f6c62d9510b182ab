"""Ed25519 verification rates of the candidate bindings, on one core and on all cores.

Why the node verifies with ed25519-zebra in worker processes: PyNaCl releases the GIL
(threads scale) but is slower per core; zebra is faster per core but holds the GIL, so it
scales only across processes. Prints verifications/s for each way of using the cores.

    python bench/verify_bindings.py [--n 20000]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import ed25519_zebra
import nacl.bindings
import nacl.exceptions

from smartchain.crypto.keys import ParallelVerifier, PrivateKey


def nacl_verify(items: list[tuple[bytes, bytes, bytes]]) -> None:
    for pk, msg, sig in items:
        try:
            nacl.bindings.crypto_sign_open(sig + msg, pk)
        except nacl.exceptions.BadSignatureError as exc:
            raise SystemExit("bad signature in benchmark data") from exc


def zebra_verify(items: list[tuple[bytes, bytes, bytes]]) -> None:
    for pk, msg, sig in items:
        if not ed25519_zebra.ed_verify(sig, msg, pk):
            raise SystemExit("bad signature in benchmark data")


def rate(fn: Callable[[list], None], items: list, threads: int = 1) -> float:
    t = time.perf_counter()
    if threads == 1:
        fn(items)
    else:
        step = -(-len(items) // threads)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(fn, [items[i : i + step] for i in range(0, len(items), step)]))
    return len(items) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    args = ap.parse_args()
    keys = [PrivateKey.from_seed(i.to_bytes(32, "big")) for i in range(1, 101)]
    items = []
    for i in range(args.n):
        k = keys[i % len(keys)]
        msg = os.urandom(160)
        items.append((k.public_key, msg, k.sign(msg)))
    cores = os.cpu_count() or 1
    print(f"{args.n} signatures, {cores} cores")
    print(f"PyNaCl  1 thread     : {rate(nacl_verify, items):10,.0f} /s")
    print(f"PyNaCl  {cores} threads    : {rate(nacl_verify, items, cores):10,.0f} /s")
    print(f"zebra   1 thread     : {rate(zebra_verify, items):10,.0f} /s")
    print(f"zebra   {cores} threads    : {rate(zebra_verify, items, cores):10,.0f} /s  (GIL held)")
    pv = ParallelVerifier(cores)
    pv.warm_up()
    t = time.perf_counter()
    assert all(pv.verify(items))
    per_s = args.n / (time.perf_counter() - t)
    print(f"zebra   {cores} processes  : {per_s:10,.0f} /s  (the node's path)")
    pv.close()


if __name__ == "__main__":
    main()
