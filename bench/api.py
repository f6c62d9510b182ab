"""Requests/s of the node API's hottest reads, and websocket delivery while blocks commit.

Starts one node process (tests/framework's NodeProcess) and, as the baseline, a bare
aiohttp hello-world in a process of its own; the same aiohttp client (``--concurrency``
keep-alive requests in flight) hits each for ``--seconds``:

- ``GET /v1/blocks/latest`` and ``GET /v1/accounts/{a}`` against ``GET /`` of the
  hello-world: requests/s and the ratio (the goal is >= 0.5);
- 100 websocket subscribers (``{"subscribe": "txs", "account": R}``, one recipient each)
  while transfers to those recipients are submitted at ``--rate`` per second: messages
  delivered per second, against transfers committed per second (1.0: every subscriber kept
  up).

Not a test: these machines are noisy, so compare the figures of one run.

    python bench/api.py [--seconds 10] [--concurrency 32] [--rate 1000] [--subscribers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from framework.harness import NodeProcess, wait_until

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.types.tx import Transaction

# The baseline runs on uvloop, like the node (smartchain/daemon.py): the same event loop.
HELLO = """
import asyncio, sys
import uvloop
from aiohttp import web
async def hello(request):
    return web.json_response({"hello": "world"})
async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(sys.argv[1])).start()
    await asyncio.Event().wait()
uvloop.run(main())
"""
HPC = 10**8
GAS = 30_000
BATCH = 200


async def hammer(url: str, seconds: float, concurrency: int) -> float:
    """Requests/s of GET ``url`` with ``concurrency`` in flight (every answer must be 200)."""
    done = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with s.get(url) as r:
                    await r.read()
                    assert r.status == 200, (url, r.status)
                done += 1
        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.monotonic() - start)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_hello() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", HELLO, str(port)])
    url = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        try:
            import urllib.request
            with urllib.request.urlopen(url, timeout=1):
                return True
        except OSError:
            return False

    wait_until(up, 20, what="hello-world server")
    return proc, url


def presign(senders: list[PrivateKey], recipients: list[bytes], chain_id: str,
            count: int) -> list[bytes]:
    """``count`` transfers, senders round-robin (nonces in order), recipients round-robin."""
    out = []
    nonces = [0] * len(senders)
    for i in range(count):
        s = i % len(senders)
        tx = Transaction.create(senders[s], chain_id=chain_id, nonce=nonces[s],
                                kind="bank/transfer",
                                payload=Transfer(recipients[i % len(recipients)], 1).encode(),
                                gas_limit=GAS, gas_price=1)
        nonces[s] += 1
        out.append(tx.encode())
    return out


async def deliveries(node: NodeProcess, recipients: list[bytes], raws: list[bytes],
                     rate: int) -> tuple[float, float, int, int]:
    """(messages delivered/s, transfers committed/s, delivered, committed) with one
    subscriber per recipient while ``raws`` are submitted at ``rate`` per second."""
    base = node.url or ""
    ws_url = base.replace("http://", "ws://") + "/v1/subscribe"
    delivered = 0
    # no connection limit: the 100 websockets must not starve the submitting POSTs
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sockets = []
        for r in recipients:
            ws = await session.ws_connect(ws_url)
            await ws.send_json({"subscribe": "txs", "account": to_bech32(r)})
            assert (await ws.receive_json())["type"] == "subscribed"
            sockets.append(ws)

        everything = asyncio.Event()

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal delivered
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.TEXT:
                    delivered += 1
                    if delivered >= len(raws):
                        everything.set()

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        start = time.monotonic()
        for i in range(0, len(raws), BATCH):
            chunk = raws[i:i + BATCH]
            async with session.post(base + "/v1/txs/batch",
                                    json={"txs": [r.hex() for r in chunk]}) as resp:
                results = (await resp.json())["results"]
                assert all("hash" in r for r in results), results[:3]
            ahead = start + (i + len(chunk)) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)  # pacing the load, not synchronisation
        try:
            await asyncio.wait_for(everything.wait(), timeout=120)
        except TimeoutError:
            pass
        elapsed = time.monotonic() - start
        for task in readers:
            task.cancel()
        for ws in sockets:
            await ws.close()
    committed = len(raws)
    return delivered / elapsed, committed / elapsed, delivered, committed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rate", type=int, default=1000, help="transfers/s submitted")
    ap.add_argument("--transfers", type=int, default=10_000)
    ap.add_argument("--subscribers", type=int, default=100)
    args = ap.parse_args()

    senders = [PrivateKey.generate() for _ in range(50)]
    recipients = [PrivateKey.generate().address for _ in range(args.subscribers)]
    home = Path(tempfile.mkdtemp(prefix="bench-api-"))
    node = NodeProcess(home / "node", accounts=[(k.address, 1_000 * HPC) for k in senders],
                       block_time_ms=500, log_level="warning")
    hello, hello_url = start_hello()
    try:
        node.start()
        node.wait_for_height(1)
        account = to_bech32(senders[0].address)
        rps_hello = asyncio.run(hammer(hello_url, args.seconds, args.concurrency))
        rps_latest = asyncio.run(hammer(f"{node.url}/v1/blocks/latest", args.seconds,
                                        args.concurrency))
        rps_account = asyncio.run(hammer(f"{node.url}/v1/accounts/{account}", args.seconds,
                                         args.concurrency))
        rps_hello = max(rps_hello, asyncio.run(hammer(hello_url, args.seconds,
                                                      args.concurrency)))
        print(f"aiohttp hello-world      {rps_hello:9.0f} req/s  (baseline, same client; "
              "the better of a run before and one after)")
        print(f"GET /v1/blocks/latest    {rps_latest:9.0f} req/s  "
              f"ratio {rps_latest / rps_hello:.2f}  (goal >= 0.5)")
        print(f"GET /v1/accounts/{{a}}    {rps_account:9.0f} req/s  "
              f"ratio {rps_account / rps_hello:.2f}  (goal >= 0.5)")
        raws = presign(senders, recipients, node.genesis.chain_id, args.transfers)
        got, committed, n_got, n_sent = asyncio.run(
            deliveries(node, recipients, raws, args.rate))
        print(f"websocket, {len(recipients)} subscribers: {got:8.0f} messages/s delivered "
              f"({n_got} of {n_sent}), transfers committed {committed:.0f}/s, "
              f"ratio {n_got / n_sent:.2f}")
    finally:
        hello.terminate()
        hello.wait(10)
        node.cleanup()


if __name__ == "__main__":
    main()
