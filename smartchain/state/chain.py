"""The chain: blocks, receipts and state, committed together.

A block is executed into an overlay; then ONE LMDB write transaction stores the state
writes, the state commitment, the block, its transaction records and the new height. A
node killed at any instant therefore restarts with either the whole block or none of it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lmdb

from smartchain.codec import U32, U64, Struct
from smartchain.crypto.address import address_of
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey, verify
from smartchain.crypto.merkle import merkle_root, root_of_hashes
from smartchain.state.commitment import (
    StateProof,
    StateTree,
    TreeUpdate,
    bucket_of,
    entry_hash,
    leaf_of,
)
from smartchain.state.executor import CheckedTx, Executor
from smartchain.state.genesis import Genesis
from smartchain.state.module import BlockInfo, Module
from smartchain.state.params import PARAMS_KEY, Params
from smartchain.state.store import Overlay, StateReader, Store
from smartchain.types.block import ZERO_HASH, Block, BlockHeader, commit_hash, evidence_hash
from smartchain.types.consensus import EMPTY_COMMIT, Commit, DuplicateVoteEvidence
from smartchain.types.errors import TxError
from smartchain.types.tx import Receipt, Transaction

log = logging.getLogger("smartchain.chain")

_H = struct.Struct(">Q")
# Blocks a proposer stages before giving up on its candidates: each failed attempt drops
# the transaction that could not be executed (then all of them), so a transaction that
# trips a bug costs the proposer at most a few re-executions and never the block.
MAX_STAGE_ATTEMPTS = 4
_HI = struct.Struct(">QI")  # the TxRecord prefix: height, index
HEIGHT_KEY = b"height"
PRUNE_BATCH = 1_000  # blocks one prune call deletes at most (one store transaction)
BASE_KEY = b"base"  # the lowest block held (absent: 1); pruning and snapshots raise it
GENESIS_KEY = b"genesis"


class ChainError(Exception):
    """A block that cannot be applied, or a store that belongs to another chain."""


class _Unexecutable(Exception):
    """Executing a block raised something other than ``TxError``: a bug somewhere below.
    ``index`` is the transaction being executed, ``None`` for the block hooks."""

    def __init__(self, index: int | None, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.index = index


@dataclass(slots=True)
class BlockBudget:
    """What a block may still take: ``Params.max_block_bytes`` of transactions and
    ``Params.max_block_gas``. As in Ethereum, a transaction fits only if its whole gas
    limit fits in what the transactions before it left (their gas *used*), so the budget
    bounds what executing the block can cost every node, whatever the transactions do."""

    bytes_left: int
    gas_left: int

    def why_not(self, ctx: CheckedTx) -> str | None:
        if len(ctx.raw) > self.bytes_left:
            return "the block's byte limit"
        if ctx.tx.gas_limit > self.gas_left:
            return "the block's gas limit"
        return None

    def spend(self, ctx: CheckedTx, receipt: Receipt) -> None:
        self.bytes_left -= len(ctx.raw)
        self.gas_left -= receipt.gas_used


@dataclass(frozen=True, slots=True)
class TxRecord(Struct):
    """Where a committed transaction is, and what it did."""

    height: U64
    index: U32
    receipt: Receipt


@dataclass(slots=True)
class StagedBlock:
    """A block executed against the current state but not yet committed."""

    block: Block
    included: list[CheckedTx]
    receipts: list[Receipt]
    receipt_bytes: list[bytes]
    writes: dict[bytes, bytes | None]
    tree: TreeUpdate
    skipped: list[CheckedTx]


EVIDENCE_PREFIX = b"evidence/"


def _record_evidence(store: Overlay, evidence: tuple[DuplicateVoteEvidence, ...], height: int,
                     *, strict: bool) -> tuple[DuplicateVoteEvidence, ...]:
    """Put each piece of double-sign evidence on chain once (``evidence/<hash>`` -> height).

    A proposer (``strict=False``) silently drops what is already recorded; a block that
    repeats evidence (``strict=True``) is invalid. Punishment comes with staking.
    """
    kept = []
    for ev in evidence:
        key = EVIDENCE_PREFIX + h256(ev.encode())
        if store.get(key) is not None:
            if strict:
                raise ChainError("block repeats evidence already on chain")
            continue
        store.set(key, _H.pack(height))
        kept.append(ev)
    return tuple(kept)


def _run_hook(hook: Callable[[Overlay, BlockInfo], object], overlay: Overlay,
              info: BlockInfo) -> None:
    """A module's begin/end-block hook; whatever it raises makes the block unexecutable."""
    try:
        hook(overlay, info)
    except Exception as exc:
        raise _Unexecutable(None, exc) from exc


class _BatchTxn(threading.local):
    """The write transaction of the batch open on this thread (``Chain.batch``)."""

    txn: lmdb.Transaction[bytes] | None = None


class Chain:
    def __init__(self, path: Path | str, genesis: Genesis, modules: list[Module]) -> None:
        """Open (or create at genesis) the chain at ``path``, run by ``modules``: the app's
        list (``smartchain.app.open_chain``) or a test's own."""
        genesis.validate()
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.store = Store(path)
        self.executor = Executor(modules)
        self.tree = StateTree()
        self._batch = _BatchTxn()
        # Written in each block's own store transaction, after the block: derived records
        # (the API's search index) that are then exactly as durable as the block itself.
        self.block_writers: list[Callable[[lmdb.Transaction[bytes], StagedBlock], None]] = []
        dbs = self.store.dbs
        with self.store.read() as txn:
            stored = txn.get(GENESIS_KEY, db=dbs["meta"])
            self.tree.load(txn, dbs["sleaf"])
        if stored is None:
            self._init_genesis()
        elif stored != genesis.hash():
            self.store.close()  # release the LMDB environment: it is open once per process
            raise ChainError("this data directory belongs to a different genesis")
        self.height = self._read_height()
        raw_base = self.store.get("meta", BASE_KEY)
        self.base = _H.unpack(raw_base)[0] if raw_base else 1
        self.latest = self._block_at(self.height).header if self.height else None
        self._latest_hash: tuple[BlockHeader | None, bytes] = (None, ZERO_HASH)
        self.params = self.read_params()

    # --- genesis ------------------------------------------------------------------------

    def _init_genesis(self) -> None:
        reader = StateReader(self.store)
        overlay = Overlay(reader)
        overlay.set(PARAMS_KEY, self.genesis.params.encode())
        for mod in self.executor.modules:
            mod.init_genesis(overlay, self.genesis)
        reader.close()
        dbs = self.store.dbs
        with self.store.write() as txn:
            update = self.tree.stage(txn, dbs["sidx"], overlay.writes)
            self._put_state(txn, overlay.writes)
            self.tree.write(txn, dbs, update)
            txn.put(GENESIS_KEY, self.genesis.hash(), db=dbs["meta"])
            txn.put(HEIGHT_KEY, _H.pack(0), db=dbs["meta"])
        self.tree.install(update)

    def _read_height(self) -> int:
        raw = self.store.get("meta", HEIGHT_KEY)
        return _H.unpack(raw)[0] if raw else 0

    def read_params(self) -> Params:
        raw = self.store.get("state", PARAMS_KEY)
        if raw is None:
            raise ChainError("the store holds no chain parameters")
        return Params.decode(raw)

    @property
    def state_root(self) -> bytes:
        return self.tree.root

    @property
    def latest_hash(self) -> bytes:
        """Hashed once per header (each block reads it several times)."""
        latest = self.latest
        if latest is None:
            return ZERO_HASH
        memo = self._latest_hash
        if memo[0] is not latest:
            memo = self._latest_hash = (latest, latest.hash())
        return memo[1]

    # --- producing and applying blocks ---------------------------------------------------

    def _block_info(self, height: int, time_ms: int, proposer_pk: bytes, last_commit: Commit,
                    evidence: tuple[DuplicateVoteEvidence, ...]) -> BlockInfo:
        """The beacon is the block's ``last_commit_hash`` (the hash of the previous block's
        commit certificate): the only randomness the state machine sees."""
        return BlockInfo(self.chain_id, height, time_ms, address_of(proposer_pk), self.params,
                         beacon=commit_hash(last_commit), last_commit=last_commit,
                         evidence=evidence)

    def next_time(self, now_ms: int) -> int:
        """Block time: the proposer's clock, but strictly after the previous block."""
        floor = self.latest.time_ms + 1 if self.latest else self.genesis.time_ms
        return max(now_ms, floor)

    def build_block(self, candidates: Iterable[CheckedTx], time_ms: int, key: PrivateKey,
                    max_txs: int | None = None) -> tuple[Block, list[Receipt], list[CheckedTx]]:
        """Propose and commit at once (a sole signer): see ``stage_proposal``."""
        staged = self.stage_proposal(candidates, time_ms, key, max_txs)
        self.commit(staged)
        return staged.block, staged.receipts, staged.skipped

    def apply_block(self, block: Block, checked: list[CheckedTx]) -> list[Receipt]:
        """Validate a block made elsewhere and commit it: see ``stage_block``."""
        staged = self.stage_block(block, checked)
        self.commit(staged)
        return staged.receipts

    def stage_proposal(self, candidates: Iterable[CheckedTx], time_ms: int, key: PrivateKey,
                       max_txs: int | None = None, last_commit: Commit = EMPTY_COMMIT,
                       evidence: tuple[DuplicateVoteEvidence, ...] = (),
                       max_bytes: int | None = None) -> StagedBlock:
        """Execute candidates in order into a new block, without committing anything.
        ``max_bytes`` caps its transactions below ``max_block_bytes`` (what the proposer's
        network can carry in one message).

        Candidates that cannot be included (bad nonce, fee not covered) are skipped and
        reported, so the mempool can drop them; building stops at the first candidate the
        block's byte or gas budget cannot take (it waits for the next block). A candidate
        whose execution raises anything else is reported as skipped too, and the block is
        staged again without it: nothing a transaction does can fail the block. The last
        try keeps only the candidates before the last such one (they executed), so a few
        of them cannot empty the block; the rest wait for the next. Raises ``ChainError``
        only if not even an empty block can be executed.
        """
        pending = list(itertools.islice(candidates, max_txs))
        unexecutable: list[CheckedTx] = []
        for attempt in range(MAX_STAGE_ATTEMPTS):
            try:
                staged = self._stage_once(pending, time_ms, key, last_commit, evidence,
                                          max_bytes)
            except _Unexecutable as exc:
                log.error("block %d: %s", self.height + 1,
                          "a transaction cannot be executed" if exc.index is not None
                          else "the block hooks failed", exc_info=exc.__cause__)
                if exc.index is None or not pending:
                    unexecutable += pending  # the hooks cannot tell which: an empty block
                    pending = []
                else:
                    unexecutable.append(pending.pop(exc.index))
                    if attempt >= MAX_STAGE_ATTEMPTS - 3:
                        # the last try: what executed before this culprit; the rest waits
                        # (reported skipped, the mempool would drop honest transactions)
                        pending = pending[:exc.index]
                continue
            staged.skipped += unexecutable
            return staged
        raise ChainError(f"cannot execute even an empty block at height {self.height + 1}")

    def _stage_once(self, candidates: list[CheckedTx], time_ms: int, key: PrivateKey,
                    last_commit: Commit, evidence: tuple[DuplicateVoteEvidence, ...],
                    max_bytes: int | None = None) -> StagedBlock:
        height = self.height + 1
        limit = self.params.max_block_bytes
        budget = BlockBudget(limit if max_bytes is None else min(limit, max_bytes),
                             self.params.max_block_gas)
        included: list[CheckedTx] = []
        receipts: list[Receipt] = []
        skipped: list[CheckedTx] = []
        with self.reader() as reader:
            overlay = Overlay(reader)
            evidence = _record_evidence(overlay, evidence, height, strict=False)
            info = self._block_info(height, time_ms, key.public_key, last_commit, evidence)
            _run_hook(self.executor.begin_block, overlay, info)
            deliver = self.executor.deliver
            for index, ctx in enumerate(candidates):
                if budget.why_not(ctx) is not None:
                    break
                try:
                    receipt = deliver(overlay, info, ctx)
                except TxError:
                    skipped.append(ctx)
                    continue
                except Exception as exc:
                    raise _Unexecutable(index, exc) from exc
                budget.spend(ctx, receipt)
                included.append(ctx)
                receipts.append(receipt)
            _run_hook(self.executor.end_block, overlay, info)
            tree = self.tree.stage(reader.txn, self.store.dbs["sidx"], overlay.writes)
        receipt_bytes = [r.encode() for r in receipts]
        header = BlockHeader(
            self.chain_id, height, time_ms, self.latest_hash,
            root_of_hashes([c.hash for c in included]), merkle_root(receipt_bytes),
            tree.root, commit_hash(last_commit), evidence_hash(evidence), key.public_key,
        )
        block = Block(header, tuple(c.raw for c in included), last_commit, evidence,
                      key.sign(header.hash()))
        return StagedBlock(block, included, receipts, receipt_bytes, overlay.writes, tree,
                           skipped)

    def stage_block(self, block: Block, checked: list[CheckedTx], *,
                    proposer_verified: bool = False) -> StagedBlock:
        """Re-execute a block made elsewhere; raise ``ChainError`` unless every root matches
        and every transaction fits the block's budget. A block whose execution raises
        anything else is invalid too (``ChainError``). ``proposer_verified``: the caller
        checked the proposer's signature over the header hash already (block sync checks
        a whole range's signatures in one batch)."""
        h = block.header
        if h.chain_id != self.chain_id or h.height != self.height + 1:
            raise ChainError(f"block {h.height} does not follow height {self.height}")
        if h.prev_hash != self.latest_hash:
            raise ChainError("block does not extend our latest block")
        if not proposer_verified and not verify(h.proposer, h.hash(), block.signature):
            raise ChainError("bad proposer signature")
        if self.latest and h.time_ms <= self.latest.time_ms:
            raise ChainError("block time does not increase")
        if root_of_hashes([c.hash for c in checked]) != h.tx_root:
            raise ChainError("transactions do not match tx_root")
        if commit_hash(block.last_commit) != h.last_commit_hash:
            raise ChainError("last commit does not match last_commit_hash")
        if evidence_hash(block.evidence) != h.evidence_hash:
            raise ChainError("evidence does not match evidence_hash")
        if not all(e.is_valid(self.chain_id) for e in block.evidence):
            raise ChainError("block carries invalid evidence")
        info = self._block_info(h.height, h.time_ms, h.proposer, block.last_commit,
                                block.evidence)
        try:
            receipts, writes, tree = self._execute_block(block, checked, info)
        except _Unexecutable as exc:
            log.error("block %d cannot be executed", h.height, exc_info=exc.__cause__)
            raise ChainError(f"block cannot be executed: {exc}") from exc
        receipt_bytes = [r.encode() for r in receipts]
        if merkle_root(receipt_bytes) != h.receipts_root:
            raise ChainError("receipts do not match receipts_root")
        if tree.root != h.state_root:
            raise ChainError("state root mismatch: block rejected")
        # tx_root matched, so ``checked`` are exactly the block's transactions
        return StagedBlock(block, list(checked), receipts, receipt_bytes, writes, tree, [])

    def _execute_block(self, block: Block, checked: list[CheckedTx], info: BlockInfo
                       ) -> tuple[list[Receipt], dict[bytes, bytes | None], TreeUpdate]:
        budget = BlockBudget(self.params.max_block_bytes, self.params.max_block_gas)
        receipts: list[Receipt] = []
        with self.reader() as reader:
            overlay = Overlay(reader)
            _record_evidence(overlay, block.evidence, info.height, strict=True)
            _run_hook(self.executor.begin_block, overlay, info)
            for index, ctx in enumerate(checked):
                over = budget.why_not(ctx)
                if over is not None:
                    raise ChainError(f"transaction {index} does not fit {over}")
                try:
                    receipt = self.executor.deliver(overlay, info, ctx)
                except TxError as exc:
                    raise ChainError(
                        f"block includes an invalid transaction: {exc.message}") from exc
                except Exception as exc:
                    raise _Unexecutable(index, exc) from exc
                budget.spend(ctx, receipt)
                receipts.append(receipt)
            _run_hook(self.executor.end_block, overlay, info)
            tree = self.tree.stage(reader.txn, self.store.dbs["sidx"], overlay.writes)
        return receipts, overlay.writes, tree

    def commit(self, staged: StagedBlock, commit: Commit | None = None) -> None:
        """Write a staged block, its receipts, its state and (when given) its own commit
        certificate in ONE LMDB transaction."""
        block = staged.block
        height = block.header.height
        if height != self.height + 1 or block.header.prev_hash != self.latest_hash:
            raise ChainError("staged block no longer follows the chain (staged on old state)")
        block_hash = block.hash()
        batch = self._batch.txn
        if batch is not None:
            self._write_block(batch, staged, commit, block_hash)
        else:
            with self.store.write() as txn:  # commits on exit, aborts on an exception
                self._write_block(txn, staged, commit, block_hash)
        self.tree.install(staged.tree)
        self._latest_hash = (block.header, block_hash)
        self.latest = block.header
        self.height = height
        if PARAMS_KEY in staged.writes:
            self.params = self.read_params()

    def _write_block(self, txn: lmdb.Transaction[bytes], staged: StagedBlock,
                     commit: Commit | None, block_hash: bytes) -> None:
        block = staged.block
        height = block.header.height
        dbs = self.store.dbs
        hkey = _H.pack(height)
        self._put_state(txn, staged.writes)
        self.tree.write(txn, dbs, staged.tree)
        txn.put(hkey, block.encode(), db=dbs["blocks"])
        txn.put(block_hash, hkey, db=dbs["hashes"])
        txn.cursor(db=dbs["txs"]).putmulti(
            [(c.hash, _HI.pack(height, i) + rb)
             for i, (c, rb) in enumerate(zip(staged.included, staged.receipt_bytes,
                                             strict=True))])
        if commit is not None:
            txn.put(hkey, commit.encode(), db=dbs["commits"])
        txn.put(HEIGHT_KEY, hkey, db=dbs["meta"])
        for write in self.block_writers:
            write(txn, staged)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Commit the blocks committed inside (``commit``) in ONE LMDB transaction, with one
        fsync (block sync: an fsync per block caps it near 100 blocks/s). Each block reads
        the ones before it (``reader()`` on this thread sees the batch); on leaving, all of
        them are durable together, or, on an exception, none is and the chain is as before.
        Only the thread that opened it sees the batch: others read committed state."""
        if self._batch.txn is not None:
            raise ChainError("a batch is already open")
        saved = (self.height, self.latest, self.params)
        txn = self.store.write()
        self._batch.txn = txn
        try:
            yield
        except BaseException:
            self._batch.txn = None
            txn.abort()
            self.height, self.latest, self.params = saved
            self.tree = StateTree()
            with self.store.read() as rtxn:
                self.tree.load(rtxn, self.store.dbs["sleaf"])
            raise
        self._batch.txn = None
        txn.commit()

    def prune(self, keep: int, most: int = PRUNE_BATCH) -> int:
        """Delete the oldest blocks (with their commits, hash and transaction index
        entries) so that only the last ``keep`` are held, at most ``most`` per call (one
        store transaction); returns how many went. The state is not versioned: it holds
        the latest state only, so there is no older state to prune."""
        if keep < 1:
            raise ValueError("pruning keeps at least the latest block")
        upto = min(self.height - keep, self.base + most - 1)
        if upto < self.base:
            return 0
        dbs = self.store.dbs
        with self.store.write() as txn:
            for height in range(self.base, upto + 1):
                hkey = _H.pack(height)
                raw = txn.pop(hkey, db=dbs["blocks"])
                txn.delete(hkey, db=dbs["commits"])
                if raw is None:
                    continue
                block = Block.decode(raw)
                txn.delete(block.hash(), db=dbs["hashes"])
                for tx in block.txs:
                    txn.delete(h256(tx), db=dbs["txs"])
            txn.put(BASE_KEY, _H.pack(upto + 1), db=dbs["meta"])
        gone = upto + 1 - self.base
        self.base = upto + 1
        return gone

    def restore(self, block: Block, commit: Commit,
                chunks: Iterable[Iterable[tuple[bytes, bytes]]]) -> None:
        """Install a verified state snapshot taken after ``block`` into a new chain (height
        0): the genesis state is replaced by the chunks' (key, value) entries, ``block``
        and its ``commit`` are stored as the latest, and the base becomes its height (no
        block before it is held). One store transaction: on any error, nothing changed.
        The caller verified every chunk against ``block``'s state root and the commit
        against the signer set of its height; the root is checked again here."""
        if self.height != 0:
            raise ChainError(f"a snapshot restores a new chain only (this one is at height "
                             f"{self.height})")
        h = block.header
        if h.chain_id != self.chain_id:
            raise ChainError(f"snapshot block of chain {h.chain_id!r}")
        dbs = self.store.dbs
        tree = StateTree()
        with self.store.write() as txn:  # aborts on an exception
            for name in ("state", "sidx", "sleaf"):
                txn.drop(dbs[name], delete=False)
            hashes: dict[int, list[bytes]] = {}
            for entries in chunks:
                for key, value in entries:
                    b = bucket_of(key)
                    eh = entry_hash(key, value)
                    hashes.setdefault(b, []).append(eh)
                    txn.put(key, value, db=dbs["state"])
                    txn.put(b.to_bytes(2, "big") + key, eh, db=dbs["sidx"])
            leaves = {b: leaf_of(hs) for b, hs in hashes.items()}
            for b, leaf in leaves.items():
                txn.put(b.to_bytes(2, "big"), leaf, db=dbs["sleaf"])
            tree.load(txn, dbs["sleaf"])
            if tree.root != h.state_root:
                raise ChainError("the snapshot's state does not give its block's state root")
            hkey = _H.pack(h.height)
            txn.put(hkey, block.encode(), db=dbs["blocks"])
            txn.put(block.hash(), hkey, db=dbs["hashes"])
            txn.put(hkey, commit.encode(), db=dbs["commits"])
            txn.put(HEIGHT_KEY, hkey, db=dbs["meta"])
            txn.put(BASE_KEY, hkey, db=dbs["meta"])
        self.tree = tree
        self.height = self.base = h.height
        self.latest = h
        self.params = self.read_params()

    def raw_range(self, start: int, count: int, max_bytes: int) -> list[tuple[bytes, bytes]]:
        """Encoded (block, commit) pairs from ``start`` on: at most ``count`` of them and,
        past the first, ``max_bytes`` together; fewer where the store ends. One read."""
        dbs = self.store.dbs
        out: list[tuple[bytes, bytes]] = []
        size = 0
        with self.store.read() as txn:
            for height in range(start, start + count):
                block = txn.get(_H.pack(height), db=dbs["blocks"])
                commit = txn.get(_H.pack(height), db=dbs["commits"])
                if commit is None and block is not None:
                    nxt = txn.get(_H.pack(height + 1), db=dbs["blocks"])
                    commit = Block.decode(nxt).last_commit.encode() if nxt else None
                if block is None or commit is None:
                    break
                size += len(block) + len(commit)
                if out and size > max_bytes:
                    break
                out.append((block, commit))
        return out

    def _put_state(self, txn: lmdb.Transaction[bytes], writes: dict[bytes, bytes | None]) -> None:
        put, delete = txn.put, txn.delete
        db = self.store.dbs["state"]
        for k, v in writes.items():
            if v is None:
                delete(k, db=db)
            else:
                put(k, v, db=db)

    # --- reads ---------------------------------------------------------------------------

    def get_block(self, height: int) -> Block | None:
        raw = self.store.get("blocks", _H.pack(height))
        return Block.decode(raw) if raw else None

    def _block_at(self, height: int) -> Block:
        """A block the store must hold (at or below the committed height)."""
        block = self.get_block(height)
        if block is None:
            raise ChainError(f"the store has no block {height} below its height")
        return block

    def get_commit(self, height: int) -> Commit | None:
        """The certificate that finalised block ``height`` (stored with it, and carried
        again as ``last_commit`` by the next block)."""
        raw = self.store.get("commits", _H.pack(height))
        if raw is not None:
            return Commit.decode(raw)
        nxt = self.get_block(height + 1)
        return nxt.last_commit if nxt is not None else None

    def height_of(self, block_hash: bytes) -> int | None:
        raw = self.store.get("hashes", block_hash)
        return _H.unpack(raw)[0] if raw else None

    def get_tx(self, tx_hash: bytes) -> tuple[TxRecord, Transaction] | None:
        raw = self.store.get("txs", tx_hash)
        if raw is None:
            return None
        rec = TxRecord.decode(raw)
        block = self.get_block(rec.height)
        assert block is not None
        return rec, Transaction.decode(block.txs[rec.index])

    def has_tx(self, tx_hash: bytes, txn: lmdb.Transaction[bytes] | None = None) -> bool:
        if txn is None:
            return self.store.get("txs", tx_hash) is not None
        return txn.get(tx_hash, db=self.store.dbs["txs"]) is not None

    def simulate(self, checked: CheckedTx) -> Receipt:
        """Execute one transaction as if it came first in the next block, on a throw-away
        overlay of the latest state: nothing is written. Raises ``TxError`` where a block
        would not take it (nonce, fee); ``Executor.deliver`` bounds it by its gas limit."""
        latest = self.latest
        time_ms = latest.time_ms + 1 if latest else self.genesis.time_ms
        info = BlockInfo(self.chain_id, self.height + 1, time_ms, bytes(20), self.params)
        with StateReader(self.store) as reader:
            try:
                return self.executor.deliver(Overlay(reader), info, checked)
            finally:
                info.cache.clear()  # the contracts VM lives for one block: this one

    def reader(self) -> StateReader:
        """A consistent snapshot of committed state (close it when done); on the thread of
        an open ``batch``, the state with the batch's blocks."""
        return StateReader(self.store, self._batch.txn)

    def check_invariants(self, view: StateReader | Overlay) -> list[str]:
        """Every module's broken books in ``view``, as "module: what" (empty when all hold)."""
        return [f"{mod.name}: {violation}" for mod in self.executor.modules
                for violation in mod.invariants(view)]

    def prove(self, key: bytes) -> tuple[bytes | None, StateProof]:
        with self.store.read() as txn:
            value = txn.get(key, db=self.store.dbs["state"])
            return value, self.tree.prove(txn, self.store.dbs["sidx"], key)

    def close(self) -> None:
        self.store.close()

