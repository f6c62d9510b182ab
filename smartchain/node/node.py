"""The node: admits transactions into the mempool and commits blocks.

Transaction admission (decode, stateless checks, signature, mempool) runs on the event
loop thread; signature checks of batches go to worker processes (crypto.keys). Blocks are
proposed, validated and committed through the consensus service (node/bft.py); the
mempool is only touched from the loop thread.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import lmdb

from smartchain.app import open_chain
from smartchain.codec import CodecError, Struct
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import ParallelVerifier, PrivateKey, verify
from smartchain.modules.bank.module import _decode_account
from smartchain.modules.bank.types import ACCOUNT_PREFIX
from smartchain.node.config import DATA_DIR, GENESIS_FILE, SNAPSHOTS_DIR, NodeConfig
from smartchain.node.index import Index
from smartchain.node.mempool import AccountLookup, Mempool
from smartchain.node.metrics import NodeMetrics
from smartchain.node.signer_sets import SignerSets
from smartchain.state.chain import StagedBlock
from smartchain.state.executor import CheckedTx, carried_error
from smartchain.state.genesis import Genesis
from smartchain.state.snapshot import SnapshotStore
from smartchain.state.store import StateReader
from smartchain.types.block import Block
from smartchain.types.consensus import EMPTY_COMMIT, Commit, CommitSig, Step, Vote
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import TX_SIGN_DOMAIN, Receipt, Transaction


@dataclass(frozen=True, slots=True)
class BlockResult:
    block: Block
    included: int
    dropped: int
    seconds: float


def now_ms() -> int:
    return time.time_ns() // 1_000_000


log = logging.getLogger("smartchain.node")


def tune_gc() -> None:
    """Garbage collection for a node process, called once it is built: what start-up made
    (modules, params, the state tree's levels) is frozen out of every collection, and the
    young generation is collected every 10,000 allocations rather than 700. Transactions are
    acyclic (reference counting frees them); the default full collections rescanning every
    pooled transaction cost 7.8 us per transfer in bench/hotpath.py, 2.9 us with this."""
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def _log_snapshot_failure(future: Future[None]) -> None:
    if future.exception() is not None:
        log.error("snapshot failed", exc_info=future.exception())


def _log_prune_failure(future: Future[int]) -> None:
    if future.exception() is not None:
        logging.getLogger("smartchain.node").error("pruning failed",
                                                   exc_info=future.exception())


class Node:
    def __init__(self, home: Path, key: PrivateKey, config: NodeConfig | None = None,
                 genesis: Genesis | None = None) -> None:
        self.home = Path(home)
        self.config = config or NodeConfig.load(self.home)
        self.genesis = genesis or Genesis.load(self.home / GENESIS_FILE)
        self.key = key
        self.chain = open_chain(self.home / DATA_DIR, self.genesis)
        self.mempool = Mempool(self.config.mempool_max_txs, self.config.mempool_max_bytes)
        self.metrics = NodeMetrics()
        self.verifier = ParallelVerifier()
        self.sets = SignerSets(self.chain)
        self.metrics.consensus_jailed.set_function(self.sets.jailed)
        # Every block execution and commit runs here, one at a time, off the event loop.
        self.builder = ThreadPoolExecutor(1, thread_name_prefix="block-builder")
        # State snapshots served to new nodes: dumped here, off the builder (node/snapsync.py).
        self.snapshots = SnapshotStore(self.home / SNAPSHOTS_DIR, self.config.sync.snapshot_keep)
        self.snapshotter = ThreadPoolExecutor(1, thread_name_prefix="snapshot")
        self._last_block_at: float | None = None
        self._admission_tail: asyncio.Future[None] | None = None
        self.peer_count: Callable[[], int] = lambda: 0  # set by the process that owns P2P
        # Whether the node has caught up with its peers (GET /ready); set by consensus.
        self.synced: Callable[[], bool] = lambda: True
        # Set by the consensus service: hands newly admitted transactions to gossip.
        self.announce: Callable[[list[bytes]], None] = lambda raws: None
        # Told of each committed block, on the event loop, in height order (the API's
        # websocket subscriptions).
        self.commit_listeners: list[Callable[[StagedBlock], None]] = []
        self.index: Index | None = None
        if self.config.api.index:
            self.index = Index(self.chain)
            caught_up = self.index.attach()
            if caught_up:
                log.info("search index: caught up %d blocks", caught_up)
        self.metrics.height.set(self.chain.height)

    @property
    def is_signer(self) -> bool:
        """Whether our key is in the signer set of the next height (it changes with the
        staking module's decisions: a standby becomes a signer when it takes a seat)."""
        nxt = self.chain.height + 1
        return self.sets.at(nxt).index_of(self.key.public_key) is not None

    # --- admission -----------------------------------------------------------------------

    def _lookup(self, reader: StateReader) -> AccountLookup:
        get = reader.get

        def lookup(address: bytes) -> tuple[int, int]:
            return _decode_account(get(ACCOUNT_PREFIX + address))

        return lookup

    def precheck(self, raw: bytes, txn: lmdb.Transaction[bytes] | None = None) -> CheckedTx:
        """Decode and run the cheap stateless checks (not the signature, the costly checks or
        state), and refuse what we already have (``txn``: a read transaction to reuse across
        a batch)."""
        checked = self.decode_checked(raw)
        if checked.hash in self.mempool:
            raise TxError(Code.DUPLICATE, "transaction already in the mempool")
        if self.chain.has_tx(checked.hash, txn):
            raise TxError(Code.DUPLICATE, "transaction already committed")
        return checked

    def decode_checked(self, raw: bytes, tx_hash: bytes | None = None) -> CheckedTx:
        """Decode a transaction and run the stateless checks that cost less than its
        signature's (``Executor.check_costly`` runs the rest once the signature is good)."""
        params = self.chain.params
        if len(raw) > params.max_tx_bytes:  # before decoding it, not only after
            raise TxError(Code.TX_TOO_LARGE,
                          f"transaction is {len(raw)} bytes, limit {params.max_tx_bytes}")
        try:
            tx = Transaction.decode(raw)
        except CodecError as exc:
            raise TxError(Code.MALFORMED, f"cannot decode transaction: {exc}") from exc
        return self.chain.executor.check_stateless(raw, tx, tx_hash or h256(raw),
                                                   self.chain.chain_id, params)

    def check_block_txs(self, block: Block) -> list[CheckedTx]:
        """Decode and verify a proposed or synced block's transactions; raise ``TxError``
        on the first invalid one. Signatures of transactions already in our mempool were
        checked on admission and are not checked again. The costly checks are not run
        here: a Byzantine proposer could fill a block with signed deploys from empty accounts
        and make every validator compile them for nothing. Executing the block runs them,
        paid by each transaction's gas within the block's gas limit (a bad contract source
        is a failed transaction, as in the proposer's own execution)."""
        pooled = self.mempool.by_hash
        checked: list[CheckedTx] = []
        unverified: list[CheckedTx] = []
        for raw in block.txs:
            tx_hash = h256(raw)
            known = pooled.get(tx_hash)
            if known is None:
                known = self.decode_checked(raw, tx_hash)
                unverified.append(known)
            checked.append(known)
        verdicts = self._verify([(0, c) for c in unverified])
        for c, bad in zip(unverified, verdicts, strict=True):
            if bad is not None:
                raise TxError(Code.BAD_SIGNATURE, f"bad signature on {c.hash.hex()}: "
                              f"{bad.message}")
        return checked

    def submit(self, raw: bytes) -> bytes:
        """Admit one transaction; returns its hash or raises ``TxError``."""
        try:
            checked = self.precheck(raw)
            if not verify(checked.tx.sender, TX_SIGN_DOMAIN + raw[:-64], checked.tx.signature):
                raise TxError(Code.BAD_SIGNATURE, "signature does not match sender and contents")
            self.chain.executor.check_carried(checked, self.chain.chain_id)
            with self.chain.reader() as reader:
                self.mempool.add(checked, self._lookup(reader), self.chain.executor.check_costly)
        except TxError as exc:
            self.metrics.txs_rejected.labels(exc.code.slug).inc()
            raise
        self.metrics.mempool_size.set(len(self.mempool))
        self.announce([raw])
        return checked.hash

    def simulate(self, raw: bytes, *, next_nonce: bool = False, max_gas: bool = False
                 ) -> tuple[Transaction, Receipt]:
        """Run a transaction on a throw-away copy of the latest state: what it would do in
        the next block (``Chain.simulate``); returns it as run, with its receipt. Raises
        ``TxError`` where admission would refuse it. A signature of 64 zero bytes is not
        checked (an unsigned transaction); any other must be good. ``next_nonce`` puts the
        nonce the state expects in it (pending transactions are not simulated); ``max_gas``
        the highest gas limit the sender can pay for besides what the message spends (at
        most what a transaction may have)."""
        params = self.chain.params
        if len(raw) > params.max_tx_bytes:
            raise TxError(Code.TX_TOO_LARGE,
                          f"transaction is {len(raw)} bytes, limit {params.max_tx_bytes}")
        try:
            tx = Transaction.decode(raw)
        except CodecError as exc:
            raise TxError(Code.MALFORMED, f"cannot decode transaction: {exc}") from exc
        if any(tx.signature) and not verify(tx.sender, TX_SIGN_DOMAIN + raw[:-64],
                                            tx.signature):
            raise TxError(Code.BAD_SIGNATURE, "signature does not match sender and contents")
        if next_nonce or max_gas:
            tx = self._simulated(tx, next_nonce, max_gas)
        checked = self.decode_checked(tx.encode())
        self.chain.executor.check_carried(checked, self.chain.chain_id)
        self.chain.executor.check_costly(checked)
        return tx, self.chain.simulate(checked)

    def _simulated(self, tx: Transaction, next_nonce: bool, max_gas: bool) -> Transaction:
        """``tx`` with the nonce the state expects and/or the highest gas limit its sender can
        pay for. Both fields are fixed-width: the size, so the intrinsic gas, is unchanged."""
        params = self.chain.params
        most = min(params.max_tx_gas, params.max_block_gas)
        with self.chain.reader() as reader:
            balance, nonce = self._lookup(reader)(tx.sender_address)
        limit = tx.gas_limit
        if max_gas:
            probe = self.decode_checked(replace(tx, gas_limit=most).encode())
            intrinsic = self.chain.executor.intrinsic_gas(params, len(probe.raw))
            moved = probe.spend - most * tx.gas_price  # what the message itself spends
            room = balance - moved
            if room < intrinsic * tx.gas_price:  # it cannot succeed: let it say why it fails
                room = balance
            limit = most if not tx.gas_price else min(most, room // tx.gas_price)
            limit = max(limit, intrinsic)
        return replace(tx, nonce=nonce if next_nonce else tx.nonce, gas_limit=limit)

    def submit_many(self, raws: list[bytes]) -> list[bytes | TxError]:
        """Admit a batch: signatures verified in worker processes, then mempool in order."""
        results, pending = self._precheck_batch(raws)
        admitted = self._admit(results, pending, self._verify(pending))
        return cast(list[bytes | TxError], admitted)  # no may_check: none left unchecked

    async def submit_many_async(self, raws: list[bytes], *,
                                may_check: Callable[[CheckedTx], bool] | None = None
                                ) -> list[bytes | TxError | None]:
        """As ``submit_many``, but the event loop keeps running while workers verify.

        Batches may verify concurrently, but they enter the mempool in arrival order, so
        one sender's consecutive nonces split over two batches are never seen as a gap.
        ``may_check`` (gossip from unproven peers, see ``ConsensusService._on_txs``) is
        asked before each transaction's signature and costly checks; from its first
        refusal on, the batch is left unchecked: ``None`` in the results. Without it the
        results hold no ``None``.
        """
        loop = asyncio.get_running_loop()
        previous, mine = self._admission_tail, loop.create_future()
        self._admission_tail = mine
        try:
            results, pending = self._precheck_batch(raws, may_check)
            verdicts = await loop.run_in_executor(None, self._verify, pending)
            if previous is not None:
                await previous
            return self._admit(results, pending, verdicts)
        finally:
            mine.set_result(None)

    def _precheck_batch(self, raws: list[bytes],
                        may_check: Callable[[CheckedTx], bool] | None = None
                        ) -> tuple[list[bytes | TxError | None], list[tuple[int, CheckedTx]]]:
        results: list[bytes | TxError | None] = [b""] * len(raws)
        pending: list[tuple[int, CheckedTx]] = []
        with self.chain.store.read() as txn:
            for i, raw in enumerate(raws):
                try:
                    checked = self.precheck(raw, txn)
                except TxError as exc:
                    results[i] = exc
                    continue
                if may_check is not None and not may_check(checked):
                    results[i:] = [None] * (len(raws) - i)
                    break
                pending.append((i, checked))
        return results, pending

    def _verify(self, pending: list[tuple[int, CheckedTx]]) -> list[TxError | None]:
        """Verify each transaction's signature and those its payload carries
        (``Msg.signatures``) in one batch of the parallel verifier: per transaction, ``None``
        or why it is refused."""
        items: list[tuple[bytes, bytes, bytes]] = []
        carried: list[list[str]] = []
        carried_of = self.chain.executor.carried_signatures
        for _, c in pending:
            items.append((c.tx.sender, TX_SIGN_DOMAIN + c.raw[:-64], c.tx.signature))
            extra = carried_of(c, self.chain.chain_id)
            items.extend((pk, message, sig) for pk, message, sig, _w in extra)
            carried.append([whose for _pk, _m, _s, whose in extra])
        oks = iter(self.verifier.verify(items))
        verdicts: list[TxError | None] = []
        for whose in carried:
            verdict = None if next(oks) else TxError(
                Code.BAD_SIGNATURE, "signature does not match sender and contents")
            for w in whose:
                if not next(oks) and verdict is None:
                    verdict = carried_error(w)
            verdicts.append(verdict)
        return verdicts

    def _admit(self, results: list[bytes | TxError | None],
               pending: list[tuple[int, CheckedTx]], verdicts: list[TxError | None]
               ) -> list[bytes | TxError | None]:
        reader = self.chain.reader()
        lookup = self._lookup(reader)
        add = self.mempool.add
        check_costly = self.chain.executor.check_costly
        try:
            for (i, checked), bad in zip(pending, verdicts, strict=True):
                if bad is not None:
                    results[i] = bad
                    continue
                try:
                    add(checked, lookup, check_costly)
                    results[i] = checked.hash
                except TxError as exc:
                    results[i] = exc
        finally:
            reader.close()
        admitted = [checked.raw for i, checked in pending if isinstance(results[i], bytes)]
        for r in results:
            if isinstance(r, TxError):
                self.metrics.txs_rejected.labels(r.code.slug).inc()
        self.metrics.mempool_size.set(len(self.mempool))
        self.announce(admitted)
        return results

    def submit_own(self, kind: str, payload: Struct, gas_limit: int) -> bytes:
        """Sign a transaction with the node's own key at its next nonce and admit it (the
        node's services: compute worker, storage provider). Raises ``TxError``."""
        tx = Transaction.create(self.key, chain_id=self.chain.chain_id,
                                nonce=self.pending_nonce(self.key.address), kind=kind,
                                payload=payload.encode(), gas_limit=gas_limit,
                                gas_price=self.chain.params.min_gas_price)
        return self.submit(tx.encode())

    def pending_nonce(self, address: bytes) -> int:
        n = self.mempool.pending_nonce(address)
        if n is not None:
            return n
        with self.chain.reader() as reader:
            return self._lookup(reader)(address)[1]

    # --- block production ----------------------------------------------------------------

    def candidates(self) -> list[CheckedTx]:
        return list(itertools.islice(self.mempool.reap(), self.config.consensus.max_block_txs))

    def _build(self, candidates: list[CheckedTx], time_ms: int) -> StagedBlock:
        """Sole signer: propose, precommit our own block, commit it with its certificate.

        The certificate is the same kind the BFT engine produces, so a chain started by
        one signer stays verifiable when more join."""
        chain = self.chain
        height = chain.height + 1
        index = self.sets.at(height).index_of(self.key.public_key)
        if index is None:
            raise ValueError(f"our key is not in the signer set of height {height}")
        last_commit = (chain.get_commit(chain.height) if chain.height else None) or EMPTY_COMMIT
        staged = chain.stage_proposal(candidates, time_ms, self.key, last_commit=last_commit)
        block = staged.block
        vote = Vote(chain.chain_id, height, 0, int(Step.PRECOMMIT), block.hash(),
                    self.key.public_key, bytes(64)).signed_by(self.key)
        commit = Commit(height, 0, block.hash(), (CommitSig(index, vote.signature),))
        chain.commit(staged, commit)
        return staged

    def after_commit(self, staged: StagedBlock, started: float) -> BlockResult:
        """Drop what the block included or refused from the mempool; update metrics."""
        block = staged.block
        with self.chain.reader() as reader:
            self.mempool.update(staged.included, staged.skipped, self._lookup(reader))
        now = time.monotonic()
        n = len(block.txs)
        m = self.metrics
        m.height.set(block.header.height)
        m.mempool_size.set(len(self.mempool))
        m.txs_committed.inc(n)
        if self._last_block_at is not None:
            interval = now - self._last_block_at
            m.block_interval.set(interval)
            m.txs_per_second.set(n / interval if interval > 0 else 0)
        self._last_block_at = now
        m.block_exec.observe(now - started)
        if self.config.pruning == "recent":  # in the builder: it writes the store
            self.builder.submit(self.chain.prune, self.config.keep_blocks) \
                .add_done_callback(_log_prune_failure)
        interval = self.config.sync.snapshot_interval
        if interval and block.header.height % interval == 0:
            self.builder.submit(self._start_snapshot, block.header.height) \
                .add_done_callback(_log_snapshot_failure)
        for listener in self.commit_listeners:
            listener(staged)
        return BlockResult(block, n, len(staged.skipped), now - started)

    def _start_snapshot(self, height: int) -> None:
        """Builder thread, so no block commits meanwhile: open a read transaction on the
        state after ``height`` and let the snapshot thread dump it (LMDB read
        transactions move between threads). Skipped if the chain is already past it (a
        range of synced blocks commits at once)."""
        chain = self.chain
        if chain.height != height or chain.latest is None:
            log.debug("snapshot at %d skipped: the chain is at %d", height, chain.height)
            return
        txn = chain.store.read()
        header = chain.latest

        def dump() -> None:
            try:
                self.snapshots.take(txn, chain.store.dbs, height, header.hash(),
                                    header.state_root)
            finally:
                txn.abort()
            log.info("snapshot taken at height %d", height)

        self.snapshotter.submit(dump).add_done_callback(_log_snapshot_failure)

    async def produce_block_async(self) -> BlockResult:
        """Sole-signer block without consensus rounds: the pipeline benchmark's path."""
        started = time.monotonic()
        candidates = self.candidates()
        loop = asyncio.get_running_loop()
        staged = await loop.run_in_executor(
            self.builder, self._build, candidates, self.chain.next_time(now_ms()))
        return self.after_commit(staged, started)

    def close(self) -> None:
        self.builder.shutdown(wait=True)
        self.snapshotter.shutdown(wait=True)  # before the store closes under a dump
        self.verifier.close()
        self.chain.close()
