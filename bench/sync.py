"""How fast a new node catches up: block sync of empty blocks against replaying them.

(a) baseline, in process: the same certified blocks applied one by one as a node did
    before range sync (commit certificate checked against the signer set, block executed,
    one durable store transaction per block);
(b) block sync: a new node process joins two source nodes that hold the chain (followers:
    no block is produced meanwhile) and fetches ranges from both; timed from its API being
    up (it then dials its seeds and syncs) to its reaching the sources' height.

Prints blocks/s of both and the ratio b/a. Goal: block sync >= 2,000 blocks/s. On a
shared machine wall time mostly measures the neighbours, so both also print the CPU time
spent per block (for (b): the joining node's process and its verifier workers, from
/proc), and the ratio of those.

Then a chain of ``--chain-blocks`` blocks whose first blocks create ``--accounts``
accounts (transfers from one funded account), with a state snapshot at its tip: the time
for a new node to be ready (at the tip) by

(c) block sync (replaying every block and transaction), and
(d) snapshot sync (``[sync] snapshot = true``: the state in chunks from both sources,
    verified, then nothing left to replay),

and the ratio c/d. Goal: snapshot sync >= 10x faster. Not a test: the machine is shared
and noisy, so compare the ratios.

    python bench/sync.py [--blocks 5000] [--baseline-blocks 1000]
                         [--accounts 100000] [--chain-blocks 10000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from smartchain.app import open_chain
from smartchain.client import Client
from smartchain.consensus.validators import Validator, ValidatorSet
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.launcher import launch
from smartchain.modules.bank.types import Transfer
from smartchain.node.config import (
    DATA_DIR,
    SNAPSHOTS_DIR,
    ApiSettings,
    NodeConfig,
    P2PSettings,
    SyncSettings,
)
from smartchain.node.home import init_home, make_genesis
from smartchain.state.chain import Chain
from smartchain.state.executor import CheckedTx
from smartchain.state.genesis import Genesis
from smartchain.state.snapshot import SnapshotStore
from smartchain.types.block import Block
from smartchain.types.consensus import EMPTY_COMMIT, Commit, CommitSig, Step, Vote
from smartchain.types.tx import Transaction

CHAIN = "bench-sync-1"
GENESIS_TIME_MS = 1_700_000_000_000
POLL_S = 0.02


def certify(keys: list[PrivateKey], height: int, block_hash: bytes) -> Commit:
    """The precommits of the first three of four signers: a quorum."""
    sigs = []
    for i, key in enumerate(keys[:3]):
        vote = Vote(CHAIN, height, 0, int(Step.PRECOMMIT), block_hash, key.public_key,
                    bytes(64)).signed_by(key)
        sigs.append(CommitSig(i, vote.signature))
    return Commit(height, 0, block_hash, tuple(sigs))


TXS_PER_BLOCK = 2_000
FUNDER = PrivateKey.from_seed(b"bench-sync-funder".ljust(32, b"\0"))


def transfers(chain: Chain, accounts: int) -> list[CheckedTx]:
    """One transfer from the funder to each of ``accounts`` new addresses."""
    params = chain.params
    out = []
    for i in range(accounts):
        to = h256(b"bench-sync-account" + i.to_bytes(4, "big"))[:20]
        raw = Transaction.create(FUNDER, chain_id=CHAIN, nonce=i, kind="bank/transfer",
                                 payload=Transfer(to, 1).encode(), gas_limit=100_000,
                                 gas_price=params.min_gas_price).encode()
        out.append(chain.executor.check_stateless(raw, Transaction.decode(raw), h256(raw),
                                                  CHAIN, params))
    return out


def build_chain(path: Path, genesis: Genesis, keys: list[PrivateKey], n: int,
                accounts: int = 0) -> None:
    """``n`` certified blocks, the first ones creating ``accounts`` accounts, the rest
    empty (written in batches: building is not what we time)."""
    chain = open_chain(path, genesis)
    last = EMPTY_COMMIT
    pending = transfers(chain, accounts)
    try:
        for first in range(1, n + 1, 500):
            with chain.batch():
                for h in range(first, min(n, first + 499) + 1):
                    txs, pending = pending[:TXS_PER_BLOCK], pending[TXS_PER_BLOCK:]
                    staged = chain.stage_proposal(txs, GENESIS_TIME_MS + h, keys[h % 4],
                                                  last_commit=last)
                    assert len(staged.included) == len(txs), "a transfer did not fit"
                    last = certify(keys, h, staged.block.hash())
                    chain.commit(staged, last)
        assert not pending, f"{len(pending)} transfers left: give more blocks"
    finally:
        chain.close()


def snapshot_tip(path: Path, genesis: Genesis, out: Path) -> None:
    chain = open_chain(path, genesis)
    try:
        assert chain.latest is not None
        with chain.store.read() as txn:
            SnapshotStore(out, keep=1).take(txn, chain.store.dbs, chain.height,
                                            chain.latest.hash(), chain.latest.state_root)
    finally:
        chain.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants (the verifier workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # gone meanwhile
    return total


def replay_rate(source: Path, target: Path, genesis: Genesis, n: int
                ) -> tuple[float, float]:
    """(a): block after block, one store transaction each: (blocks/s, CPU ms a block)."""
    src = open_chain(source, genesis)
    blocks: list[tuple[Block, Commit]] = []
    for h in range(1, n + 1):
        block, commit = src.get_block(h), src.get_commit(h)
        assert block is not None and commit is not None
        blocks.append((block, commit))
    src.close()
    valset = ValidatorSet([Validator(v.public_key, v.power, v.name)
                           for v in genesis.validators])
    chain = open_chain(target, genesis)
    started, cpu = time.perf_counter(), time.process_time()
    for block, commit in blocks:
        valset.verify_commit(CHAIN, commit, block.hash(), block.header.height)
        chain.commit(chain.stage_block(block, []), commit)
    took = time.perf_counter() - started
    cpu = time.process_time() - cpu
    chain.close()
    return n / took, 1000 * cpu / n


def node_home(root: Path, name: str, genesis: Genesis, seeds: list[str], port: int,
              snapshot: bool = False) -> tuple[Path, str]:
    home = root / name
    key = PrivateKey.generate()
    cfg = NodeConfig(moniker=name, log_level="warning", api=ApiSettings(port=0),
                     p2p=P2PSettings(port=port, seeds=seeds),
                     sync=SyncSettings(snapshot=snapshot, snapshot_interval=0))
    init_home(home, chain_id=CHAIN, key=key, passphrase=None, insecure=True, config=cfg,
              genesis=genesis)
    return home, f"{key.public_key.hex()}@127.0.0.1:{port}"


def sync_rate(root: Path, source: Path, genesis: Genesis, n: int, port: int
              ) -> tuple[float, float]:
    """(b): a new node syncing from two source nodes over P2P: (blocks/s, CPU ms a
    block)."""
    took, cpu = time_to_ready(root, source, genesis, n, port)
    return n / took, 1000 * cpu / n


def time_to_ready(root: Path, source: Path, genesis: Genesis, n: int, port: int,
                  snapshots: Path | None = None) -> tuple[float, float]:
    """Seconds for a new node to reach height ``n`` from two source nodes over P2P: by
    block sync, or from the ``snapshots`` the sources hold (snapshot sync); and the CPU
    seconds it (with its workers) spent meanwhile."""
    root.mkdir(parents=True)
    homes, seeds = [], []
    for i in range(2):
        home, address = node_home(root, f"source{i}", genesis, [], port + i)
        shutil.rmtree(home / DATA_DIR, ignore_errors=True)
        shutil.copytree(source, home / DATA_DIR)
        if snapshots is not None:
            shutil.copytree(snapshots, home / SNAPSHOTS_DIR)
        homes.append(home)
        seeds.append(address)
    sources = [launch(h) for h in homes]
    procs = list(sources)
    try:
        for p in sources:
            p.wait_ready(60)
        home, _ = node_home(root, "joiner", genesis, seeds, port + 2,
                            snapshot=snapshots is not None)
        joiner = launch(home)
        procs.append(joiner)
        client = Client(joiner.wait_ready(60))
        started, cpu = time.perf_counter(), cpu_seconds(joiner.pid)
        while client.status()["height"] < n:
            if not joiner.running:
                raise RuntimeError(f"the joining node exited; see {home}/node.log")
            time.sleep(POLL_S)
        return time.perf_counter() - started, cpu_seconds(joiner.pid) - cpu
    finally:
        for p in procs:
            p.stop()


def snapshot_vs_replay(root: Path, genesis: Genesis, keys: list[PrivateKey],
                       args: argparse.Namespace) -> None:
    big = root / "big"
    t = time.perf_counter()
    build_chain(big, genesis, keys, args.chain_blocks, args.accounts)
    snapshot_tip(big, genesis, root / "snaps")
    print(f"built {args.chain_blocks} blocks creating {args.accounts} accounts, with a "
          f"snapshot at the tip, in {time.perf_counter() - t:.1f}s")
    n = args.chain_blocks
    replay, _ = time_to_ready(root / "c", big, genesis, n, args.port + 3)
    print(f"(c) ready by block sync (replay):                     {replay:8.2f} s")
    snap, _ = time_to_ready(root / "d", big, genesis, n, args.port + 6, root / "snaps")
    print(f"(d) ready by snapshot sync:                           {snap:8.2f} s")
    print(f"ratio c/d: {replay / snap:.1f}   (goal: >= 10)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=5000, help="empty blocks to sync")
    ap.add_argument("--baseline-blocks", type=int, default=1000,
                    help="of them, replayed one by one for the baseline")
    ap.add_argument("--accounts", type=int, default=100_000,
                    help="accounts the snapshot-vs-replay chain creates (0: skip that part)")
    ap.add_argument("--chain-blocks", type=int, default=10_000,
                    help="blocks of the snapshot-vs-replay chain")
    ap.add_argument("--port", type=int, default=28400, help="first of three P2P ports")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        keys = [PrivateKey.generate() for _ in range(4)]
        genesis = make_genesis(CHAIN, [(k.public_key, 1, f"v{i}") for i, k in enumerate(keys)],
                               accounts=[(FUNDER.address, 10**15)],
                               genesis_time_ms=GENESIS_TIME_MS)
        source = root / "chain"
        t = time.perf_counter()
        build_chain(source, genesis, keys, args.blocks)
        print(f"built {args.blocks} certified empty blocks in {time.perf_counter() - t:.1f}s")
        base, base_cpu = replay_rate(source, root / "replay", genesis,
                                     min(args.blocks, args.baseline_blocks))
        print(f"(a) replay in process, a store transaction per block: {base:8.0f} blocks/s"
              f"  {base_cpu:5.2f} ms CPU a block")
        rate, cpu = sync_rate(root / "b", source, genesis, args.blocks, args.port)
        print(f"(b) block sync from 2 peers over P2P:                 {rate:8.0f} blocks/s"
              f"  {cpu:5.2f} ms CPU a block (node + verifier workers)")
        print(f"ratio b/a: {rate / base:.2f} blocks/s, {cpu / base_cpu:.2f} CPU a block   "
              f"(goal: b >= 2,000 blocks/s)")
        if args.accounts:
            snapshot_vs_replay(root, genesis, keys, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
