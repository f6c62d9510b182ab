"""What a bad-signature transaction flood over P2P costs a node (red-team finding 14).

Starts one signer node process on 127.0.0.1 and counts the blocks it commits in a quiet
window of ``--seconds``, then in a window of the same length during which attackers gossip
forged transactions at it: each attacker is a fresh identity that connects and sends
batches of 2,000 forged transfers until the node hangs up, then the next one takes over.
Prints the blocks in each window, their ratio, the forged transactions the node verified
(its /metrics) against those sent and against the budget, the transactions it dropped
unchecked, and the identities used. Before the fix the node verified every forged
transaction and never hung up; then each identity cost it one batch (2,000 checks), and
with ``--limit-loopback`` (127.0.0.1 treated as the one IP it is) the IP is banned after
``ip_ban_after`` identities; now unproven peers share ``p2p_unproven_sig_checks`` checks
per second (``--budget``; ``--share`` each). Not a test: compare figures from one run.

    python bench/p2p_flood.py [--seconds 10] [--batches 20] [--limit-loopback]
                              [--budget 2000] [--share 200]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from smartchain import launcher
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.node.bft import TOPIC_TXS, TX_BATCH_MAX, TxBatch
from smartchain.node.config import (
    RUNTIME_FILE,
    ApiSettings,
    ConsensusSettings,
    NodeConfig,
    P2PSettings,
)
from smartchain.node.home import init_home
from smartchain.p2p import P2P, P2PConfig, P2PError
from smartchain.state.params import Params
from smartchain.types.tx import Transaction

CHAIN_ID = "smart-bench-flood"
BLOCK_TIME_MS = 200


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.read().decode()


def height(url: str) -> int:
    return int(json.loads(get(f"{url}/v1/status"))["height"])


def metric(url: str, needle: str) -> int:
    for line in get(f"{url}/metrics").splitlines():
        if line.startswith(needle + " "):
            return int(float(line[len(needle) + 1:]))
    return 0


def verified_forgeries(url: str) -> int:
    return metric(url, 'smart_txs_rejected_total{code="bad_signature"}')


def forged_batches(sender: bytes, count: int) -> list[bytes]:
    """Distinct batches of forged transfers: valid shape, random signatures (distinct
    payloads, or gossip de-duplication would spare the node the work)."""
    to = PrivateKey.generate().address
    payload = Transfer(to, 1).encode()
    return [TxBatch(tuple(
        Transaction(CHAIN_ID, sender, b * TX_BATCH_MAX + i, 20_000, 1, "bank/transfer",
                    payload, os.urandom(64)).encode()
        for i in range(TX_BATCH_MAX))).encode() for b in range(count)]


async def flood(address: str, network_id: str, batches: list[bytes], seconds: float
                ) -> tuple[int, int]:
    """Attack for ``seconds``, a fresh identity each time the node hangs up, cycling over
    ``batches`` as direct messages (never de-duplicated: forged transactions never reach
    the mempool, so a repeat costs the node as much as the first). At most a few batches
    are queued ahead of the socket. Returns (forged transactions written, identities)."""
    written = identities = 0
    deadline = time.monotonic() + seconds
    turn = itertools.cycle(batches)
    while time.monotonic() < deadline:
        client = P2P(PrivateKey.generate(), network_id, port=0, config=P2PConfig(pex=False))
        await client.start()
        identities += 1
        queued = 0
        try:
            peer = await client.connect(address)
            while peer in client.connected_peers() and time.monotonic() < deadline:
                if queued - client.stats["frames_out"] < 4:
                    await client.send(peer, TOPIC_TXS, next(turn))
                    queued += 1
                await asyncio.sleep(0.002)  # let the writer run
        except P2PError:
            pass  # cut off (PeerNotConnected is a P2PError): next identity
        finally:
            written += min(queued, client.stats["frames_out"]) * TX_BATCH_MAX
            await client.stop()
    return written, identities


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batches", type=int, default=20, help="distinct forged batches")
    ap.add_argument("--limit-loopback", action="store_true",
                    help="treat 127.0.0.1 as one attacker's IP (per-IP limits and IP bans)")
    defaults = P2PSettings()
    ap.add_argument("--budget", type=int, default=defaults.unproven_sig_checks,
                    help="signature checks per second for all unproven peers")
    ap.add_argument("--share", type=int, default=defaults.unproven_peer_sig_checks,
                    help="signature checks per second for each unproven peer")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "node"
        sender = PrivateKey.generate()
        p2p = P2PSettings(port=0, unproven_sig_checks=args.budget,
                          unproven_peer_sig_checks=args.share,
                          transport=P2PConfig(limit_loopback=args.limit_loopback))
        config = NodeConfig(log_level="warning", api=ApiSettings(port=0), p2p=p2p,
                            consensus=ConsensusSettings(block_time_ms=BLOCK_TIME_MS))
        genesis = init_home(home, chain_id=CHAIN_ID, key=PrivateKey.generate(),
                            passphrase=None, insecure=True, config=config,
                            accounts=[(sender.address, 10**15)],
                            params=Params(block_time_ms=BLOCK_TIME_MS))
        proc = launcher.launch(home)
        try:
            url = proc.wait_ready()
            address = json.loads((home / RUNTIME_FILE).read_text())["p2p_address"]
            batches = forged_batches(sender.public_key, args.batches)  # before the windows

            start, t0 = height(url), time.monotonic()
            time.sleep(args.seconds)
            quiet = (height(url) - start) / (time.monotonic() - t0)

            start, t0 = height(url), time.monotonic()
            sent, identities = asyncio.run(flood(address, genesis.hash().hex(), batches,
                                                 args.seconds))
            took = time.monotonic() - t0
            flooded = (height(url) - start) / took
            verified = verified_forgeries(url)
            unchecked = metric(url, "smart_gossip_txs_unchecked_total")
        finally:
            proc.stop(30)
    print(f"blocks/s: quiet {quiet:.2f}, under flood {flooded:.2f} "
          f"(ratio {flooded / max(quiet, 1e-9):.2f})")
    print(f"forged transactions: {sent} written by {identities} identities, verified by the "
          f"node {verified} ({verified / max(identities, 1):.0f} per identity, "
          f"{verified / took:.0f}/s against a budget of {args.budget}/s), "
          f"{unchecked} dropped unchecked")


if __name__ == "__main__":
    main()
