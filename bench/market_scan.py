"""Orders that cross nothing, in the block that filled their book: cost against the same
orders a block later, in one run.

A block carries ``--n`` asks resting at a high price, then ``--n`` bids at a low price that
cross none of them. Each bid scans the ask side; a scan that stops at its first entry must
not read every key the block wrote on that side (that made the block N x N). Prints the
block's CPU time with asks and bids in one block, and with the asks a block earlier (the
baseline), and their ratio (goal: about 1x).

    python bench/market_scan.py [--n 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from framework.chain import ChainKit
from market import HPC, SERVICE, Runner, keys

from smartchain.modules.market.types import CreateOffer, PlaceAsk, PlaceBid, Terms
from smartchain.state.params import Params


def block_seconds(n: int, same_block: bool) -> float:
    """CPU seconds of the blocks carrying the asks and the bids."""
    providers, consumers = keys(1, n), keys(2, n)
    with tempfile.TemporaryDirectory() as tmp:
        kit = ChainKit(Path(tmp))
        params = Params(max_block_gas=10**13, max_tx_gas=10**9, max_block_bytes=10**9)
        chain = kit.open(kit.genesis({k: 1_000 * HPC for k in providers + consumers},
                                     params=params))
        r = Runner(kit, chain, keys(4, 1)[0])
        terms = Terms(1_000, 10, 10_000)
        r.run([r.sign(p, CreateOffer(SERVICE, "reading", 100, "HPC", 1, 1_000, terms,
                                     p.public_key)) for p in providers])
        offers = [int(next(a.value for a in e.attributes if a.key == "offer"))
                  for rc in r.receipts for e in rc.events if e.kind == "market_offer"]
        asks = [r.sign(p, PlaceAsk(o, 1_000, 1, 1_000_000))
                for p, o in zip(providers, offers, strict=True)]
        bids = [r.sign(c, PlaceBid(SERVICE, "HPC", 1, 1, 1_000_000, 10_000, c.public_key))
                for c in consumers]
        if same_block:
            seconds = r.run(asks + bids).block
        else:
            seconds = r.run(asks).block + r.run(bids).block
        kit.close_all()
        return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3_000, help="asks, and bids, per block")
    n = ap.parse_args().n
    apart = block_seconds(n, same_block=False)
    together = block_seconds(n, same_block=True)
    print(f"{n} asks then {n} bids crossing nothing, block CPU time: one block "
          f"{together:.2f} s, two blocks {apart:.2f} s, ratio {together / apart:.2f}x "
          "(goal ~1x)")


if __name__ == "__main__":
    main()
