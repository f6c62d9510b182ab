"""A fixed run through the hot path, printed as JSON: what the compiled and the pure-Python
builds must agree on byte for byte (tests/unit/test_hotpath.py runs it under both).

Transfers among a few accounts, some refused by the mempool (nonce gaps, reuse, duplicates,
funds), some failing in their handler (a receipt with an error code, reverted writes), built
into blocks by the mempool's order; printed: each refusal's code, and each block's bytes,
receipts and state root, plus the overlay's merged prefix scan.

    python -m framework.hotpath_scenario DIR   (from tests/, the repository on PYTHONPATH)
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from framework.chain import ChainKit
from smartchain import _hotpath
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import get_account
from smartchain.modules.bank.types import ACCOUNT_PREFIX
from smartchain.node.mempool import Mempool
from smartchain.state.store import Overlay
from smartchain.types.errors import TxError


def _transfer(kit: ChainKit, keys: list[PrivateKey], nonces: list[int],
              rng: random.Random) -> tuple[int, bytes]:
    """(sender index, raw): mostly good, some nonce gaps and reuses, some amounts beyond the
    sender's funds, some gas limits the transfer runs out of (a failed receipt)."""
    s, r = rng.randrange(len(keys)), rng.randrange(len(keys))
    nonce = max(nonces[s] + rng.choice([0, 0, 0, 0, 0, 0, 1, -1]), 0)
    amount = rng.choice([1, 7, 1_000, 4_000, 10**6])
    gas_limit = rng.choice([13_000, 20_000, 100_000, 100_000])
    return s, kit.transfer(keys[s], keys[r].address, amount, nonce, gas_limit=gas_limit)


def run(root: Path) -> dict[str, object]:
    kit = ChainKit(root)
    keys = [PrivateKey.from_seed(bytes([i]) * 32) for i in range(1, 13)]
    proposer = PrivateKey.from_seed(b"\xfa" * 32)
    chain = kit.open(kit.genesis({k: 200_000 + 50_000 * i for i, k in enumerate(keys)},
                                 validator=proposer))
    pool = Mempool(max_txs=300)
    refused: list[int] = []
    blocks: list[dict[str, object]] = []
    rng, nonces, admitted = random.Random(19), [0] * len(keys), []
    for i in range(420):
        s, raw = _transfer(kit, keys, nonces, rng) if i < 400 else (-1, admitted[i - 400])
        try:
            checked = kit.check(chain, raw)
            with chain.reader() as reader:
                pool.add(checked, lambda a, r=reader: (get_account(r, a).balance,
                                                       get_account(r, a).nonce))
            nonces[s] += 1
            admitted.append(raw)
        except TxError as exc:
            refused.append(int(exc.code))
        if len(pool) >= 60:
            blocks.append(_block(kit, chain, pool, proposer))
    while len(pool):
        blocks.append(_block(kit, chain, pool, proposer))
    with chain.reader() as reader:
        overlay = Overlay(reader)
        overlay.set(ACCOUNT_PREFIX + b"\x00" * 20, b"x")
        overlay.delete(ACCOUNT_PREFIX + keys[0].address)
        scan = [k.hex() + ":" + v.hex() for k, v in overlay.iter_prefix(ACCOUNT_PREFIX)]
    kit.close_all()
    failed = sum(r["failed"] for r in blocks)  # type: ignore[misc]
    return {"compiled": _hotpath.compiled(), "refused": refused, "blocks": blocks,
            "failed": failed, "scan": scan}


def _block(kit: ChainKit, chain: object, pool: Mempool, proposer: PrivateKey
           ) -> dict[str, object]:
    from smartchain.state.chain import Chain

    assert isinstance(chain, Chain)
    time_ms = kit.genesis_time_ms + 1_000 * (chain.height + 1)
    candidates = list(pool.reap())[:50]
    staged = chain.stage_proposal(candidates, time_ms, proposer)
    chain.commit(staged)
    with chain.reader() as reader:
        pool.update(staged.included, staged.skipped,
                    lambda a: (get_account(reader, a).balance, get_account(reader, a).nonce))
    return {"block": staged.block.encode().hex(), "root": staged.block.header.state_root.hex(),
            "receipts": [rb.hex() for rb in staged.receipt_bytes],
            "skipped": [c.hash.hex() for c in staged.skipped],
            "failed": sum(not r.ok for r in staged.receipts)}


if __name__ == "__main__":
    json.dump(run(Path(sys.argv[1])), sys.stdout)
