"""Requests/s of the SDK's clients against one node, next to a bare aiohttp session doing the
same ``GET /v1/status`` in the same run: what the sans-I/O core (flows, retry policy,
answer parsing) costs the async client, and what keep-alive gains over the sync client
(urllib, a connection per request).

Rounds alternate the four ways (``--rounds`` of ``--seconds`` each); min/median/max are
printed, with each median's ratio to the bare session's. Not a test: these machines are
noisy, so compare the figures of one run.

    python bench/sdk.py [--seconds 2] [--rounds 3] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from framework.harness import NodeProcess

from smartchain.aio import AsyncClient
from smartchain.client import Client


async def rate(call: Callable[[], Awaitable[object]], seconds: float, concurrency: int) -> float:
    """Calls/s with ``concurrency`` callers in flight for ``seconds``."""
    done = 0
    deadline = time.monotonic() + seconds

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await call()
            done += 1

    start = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return done / (time.monotonic() - start)


def sync_rate(url: str, seconds: float) -> float:
    client = Client(url)
    done = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        client.status()
        done += 1
    return done / (time.monotonic() - start)


async def round_of(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        async def bare() -> object:
            async with session.get(url + "/v1/status") as resp:
                return await resp.json()

        out[f"bare aiohttp x{concurrency}"] = await rate(bare, seconds, concurrency)
    async with AsyncClient(url) as node:
        out[f"AsyncClient x{concurrency}"] = await rate(node.status, seconds, concurrency)
        out["AsyncClient x1"] = await rate(node.status, seconds, 1)
        out["AsyncClient.typed x1"] = await rate(node.typed.status, seconds, 1)
    out["Client (sync) x1"] = await asyncio.to_thread(sync_rate, url, seconds)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    node = NodeProcess(Path(tempfile.mkdtemp(prefix="bench-sdk-")), log_level="warning")
    url = node.start()
    try:
        node.wait_for_height(1)
        rounds = [asyncio.run(round_of(url, args.seconds, args.concurrency))
                  for _ in range(args.rounds)]
    finally:
        node.cleanup()
    base = statistics.median(r[f"bare aiohttp x{args.concurrency}"] for r in rounds)
    print(f"GET /v1/status, {args.rounds} rounds of {args.seconds:g}s (requests/s)")
    for name in rounds[0]:
        values = sorted(r[name] for r in rounds)
        med = statistics.median(values)
        print(f"  {name:<24} min {values[0]:8.0f}  median {med:8.0f}  max {values[-1]:8.0f}"
              f"  ratio to bare {med / base:5.2f}")


if __name__ == "__main__":
    main()
