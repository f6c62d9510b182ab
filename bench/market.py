"""Market throughput on chain against plain transfers, in one run, in one process.

Each figure is the whole path of a transaction on a node: decode and stateless checks, the
sender's signature, then execution in a block (``Chain.build_block``, which commits). Three
blocks of ``--n`` transactions each, on one chain:

- transfers: ``bank/transfer`` between funded accounts (the baseline);
- orders: ``market/ask`` resting, then ``market/bid`` each crossing one ask (a fill that
  makes an agreement with deposit and first instalment in escrow), all in one book (the worst
  case: each fill leaves a tombstone the next scan walks past) and one book each;
- receipts: one usage receipt (signed by both agents) per transaction for ``--n`` concurrent
  agreements, and the same with ``--batch`` receipts per transaction.

Each line: the rate and the CPU time per transaction of the whole path (one process, one
core), the block's part of it (execution and commit), and both as multiples of a
transfer's. On a node the signatures (the sender's, and the two agents' of each receipt)
are verified before the mempool in worker processes; the block runs on one thread, in
order. CPU time of this process, not wall time: the machine is shared and noisy.

Targets: an order <= 3x a transfer, a settled receipt <= 2x. Not a test: prints figures and
ratios; compare within one run.

    python bench/market.py [--n 1000] [--batch 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from framework.chain import ChainKit

from smartchain.codec import Struct
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey, verify
from smartchain.modules.bank.types import Transfer
from smartchain.modules.market.types import (
    CreateOffer,
    PlaceAsk,
    PlaceBid,
    SubmitReceipts,
    Terms,
    UsageReceipt,
    receipt,
)
from smartchain.state.chain import Chain
from smartchain.state.params import Params
from smartchain.types.tx import Transaction, sign_bytes_of

HPC = 10**8
SERVICE = "weather.readings"


class Runner:
    def __init__(self, kit: ChainKit, chain: Chain, proposer: PrivateKey) -> None:
        self.kit, self.chain, self.proposer = kit, chain, proposer
        self.nonces: dict[bytes, int] = {}
        self.kinds = {m.payload: kind for kind, m in chain.executor.msgs.items()}

    def sign(self, key: PrivateKey, msg: Struct, gas_limit: int = 2_000_000) -> bytes:
        nonce = self.nonces.get(key.address, 0)
        self.nonces[key.address] = nonce + 1
        return Transaction.create(key, chain_id=self.kit.chain_id, nonce=nonce,
                                  kind=self.kinds[type(msg)], payload=msg.encode(),
                                  gas_limit=gas_limit, gas_price=1).encode()

    def run(self, raws: list[bytes], items: int | None = None) -> Timing:
        """CPU seconds of this process to admit ``raws`` (decode, stateless checks, the
        sender's signature and those the payload carries, the costly checks) and to
        execute them in one block (build and commit); per item (``items``: what the
        transactions carry, default one each)."""
        executor, chain_id = self.chain.executor, self.chain.chain_id
        t = time.process_time()
        checked = []
        for raw in raws:
            tx = Transaction.decode(raw)
            c = executor.check_stateless(raw, tx, h256(raw), chain_id, self.chain.params)
            assert verify(tx.sender, sign_bytes_of(raw), tx.signature)
            executor.check_carried(c, chain_id)
            executor.check_costly(c)
            checked.append(c)
        admitted = time.process_time()
        time_ms = self.chain.next_time(self.kit.genesis_time_ms + 1_000 * (self.chain.height + 1))
        _block, receipts, skipped = self.chain.build_block(checked, time_ms, self.proposer)
        done = time.process_time()
        bad = [r.log for r in receipts if not r.ok]
        assert not skipped and not bad, (len(skipped), bad[:3])
        self.receipts = receipts
        return Timing(items or len(raws), admitted - t, done - admitted)


class Timing(NamedTuple):
    n: int
    admit: float  # seconds: checks and every signature (a node: in parallel workers)
    block: float  # seconds: execution and commit (a node: one thread, in block order)

    def per_tx(self) -> tuple[float, float]:
        return (self.admit + self.block) / self.n, self.block / self.n


def keys(base: int, n: int) -> list[PrivateKey]:
    return [PrivateKey.from_seed((base * 1_000_000 + i).to_bytes(32, "big")) for i in range(n)]


def line(name: str, timing: Timing, base: Timing | None, target: float | None) -> None:
    """Per transaction: the whole path and the block's part, and both as multiples of a
    transfer's."""
    whole, block = timing.per_tx()
    ratio = ""
    if base is not None:
        b_whole, b_block = base.per_tx()
        ratio = f"  {whole / b_whole:5.2f}x  {block / b_block:5.2f}x"
    goal = "" if target is None else f"  (goal <= {target:g}x)"
    print(f"{name:<34} {1 / whole:8,.0f} /s {whole * 1e6:6.0f} us {block * 1e6:6.0f} us"
          f"{ratio}{goal}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000, help="transactions per block")
    ap.add_argument("--batch", type=int, default=50, help="receipts per transaction, batched")
    args = ap.parse_args()
    n = args.n
    providers, consumers, senders = keys(1, n), keys(2, n), keys(3, n)
    proposer = keys(4, 1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        kit = ChainKit(Path(tmp))
        balances = {k: 1_000 * HPC for k in providers + consumers + senders}
        params = Params(max_block_gas=10**12, max_tx_gas=10**9)
        chain = kit.open(kit.genesis(balances, params=params))
        r = Runner(kit, chain, proposer)
        terms = Terms(1_000, 10, 10_000)

        transfers = [r.sign(k, Transfer(consumers[i].address, 1), 100_000)
                     for i, k in enumerate(senders)]
        print(f"{'per transaction, CPU time':<34} {'rate':>10} {'whole':>9} {'block':>9}"
              f"  {'x a transfer: whole, block':>14}")
        base = r.run(transfers)
        line("transfers (baseline)", base, None, None)

        r.run([r.sign(p, CreateOffer(SERVICE, "reading", 100, "HPC", 1, 1_000, terms,
                                     p.public_key)) for p in providers])
        offers = [int(next(a.value for a in e.attributes if a.key == "offer"))
                  for rc in r.receipts for e in rc.events if e.kind == "market_offer"]
        asks = [r.sign(p, PlaceAsk(o, 100, 100, 1_000_000))
                for p, o in zip(providers, offers, strict=True)]
        line("orders: asks resting", r.run(asks), base, 3)
        bids = [r.sign(c, PlaceBid(SERVICE, "HPC", 100, 100, 1_000_000, 10_000, c.public_key))
                for c in consumers]
        line("orders: bids filling, one book", r.run(bids), base, 3)
        agreements = [int(next(a.value for a in e.attributes if a.key == "agreement"))
                      for rc in r.receipts for e in rc.events if e.kind == "market_match"]
        assert len(agreements) == n, len(agreements)

        r.run([r.sign(p, CreateOffer(f"bench.s{i}", "reading", 100, "HPC", 1, 1_000, terms,
                                     p.public_key)) for i, p in enumerate(providers)])
        own = [int(next(a.value for a in e.attributes if a.key == "offer"))
               for rc in r.receipts for e in rc.events if e.kind == "market_offer"]
        r.run([r.sign(p, PlaceAsk(o, 100, 100, 1_000_000)) for p, o in zip(providers, own,
                                                                           strict=True)])
        spread = [r.sign(c, PlaceBid(f"bench.s{i}", "HPC", 100, 100, 1_000_000, 10_000,
                                     c.public_key)) for i, c in enumerate(consumers)]
        line("orders: bids filling, a book each", r.run(spread), base, 3)

        def receipts_for(counter: int) -> list[UsageReceipt]:
            return [receipt(providers[i], consumers[i], kit.chain_id, a, counter)
                    for i, a in enumerate(agreements)]

        single = [r.sign(senders[i], SubmitReceipts((rc,)))
                  for i, rc in enumerate(receipts_for(5))]
        line(f"receipts: 1 per tx, {n} agreements", r.run(single), base, 2)
        batch = receipts_for(10)
        batched = [r.sign(senders[j], SubmitReceipts(tuple(batch[i:i + args.batch])),
                          gas_limit=10**8)
                   for j, i in enumerate(range(0, n, args.batch))]
        line(f"receipts: {args.batch} per tx", r.run(batched, n), base, 2)
        kit.close_all()




if __name__ == "__main__":
    main()
