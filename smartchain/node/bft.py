"""The node's consensus service: drives the BFT engine over the P2P network.

The engine (``smartchain.consensus``) is pure; this module gives it a clock (asyncio
timers), a network (P2P topics for proposals, votes and transaction batches, and a
request for blocks by height), and the chain as its application: proposing stages a block
from the mempool, validating re-executes a proposed block, deciding commits the staged
block together with its commit certificate in one store transaction.

Every block execution and every commit runs in the node's one block-builder thread, so
they never overlap and the event loop (P2P, API, timers) stays responsive while a block
executes; the engine is told the outcome when the work is done. Whatever fails inside the
application (a bug, a module that raises) costs at most a round: a proposal that cannot
be built is not sent, a block that cannot be executed is invalid, and the engine's
timeouts were armed before the work started.

A node that is behind (new, or back from a crash) first syncs: it asks its peers for
their height and fetches ranges of blocks with their certificates from several of them at
once (node/blocksync.py), checking each against the signer set of its height and
committing each range in one store transaction, then joins consensus at the next height.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from smartchain.codec import Bytes, CodecError, Struct, list_of
from smartchain.consensus.engine import (
    Action,
    Broadcast,
    BuildProposal,
    ConsensusEngine,
    Decide,
    EngineConfig,
    EvidenceFound,
    InvalidMessage,
    ScheduleTimeout,
    ValidateBlock,
)
from smartchain.consensus.signer import DurableSigner
from smartchain.consensus.validators import ValidatorSet
from smartchain.crypto.hashing import h256
from smartchain.modules.poca.sets import validator_set_at
from smartchain.node.blocksync import (
    REQ_BLOCKS,
    REQ_STATUS,
    BlockRange,
    RangeFetcher,
    SyncStatus,
    serve_range,
)
from smartchain.node.gossip_budget import CheckBudget
from smartchain.node.signer_sets import SCHEDULE_AHEAD
from smartchain.node.snapsync import (
    REQ_CHUNK,
    REQ_MANIFEST,
    REQ_SNAPSHOTS,
    SnapshotSync,
    serve_chunk,
    serve_list,
    serve_manifest,
)
from smartchain.p2p import Penalty
from smartchain.state.chain import ChainError, StagedBlock
from smartchain.state.executor import CheckedTx
from smartchain.state.snapshot import SnapshotChunk
from smartchain.types.block import Block, BlockHeader
from smartchain.types.consensus import (
    EMPTY_COMMIT,
    Commit,
    DuplicateVoteEvidence,
    ProposalMessage,
    Step,
    Vote,
)
from smartchain.types.errors import Code, TxError

if TYPE_CHECKING:
    from smartchain.node.node import Node
    from smartchain.p2p.peers import P2P
    from smartchain.state.store import StateView

log = logging.getLogger("smartchain.bft")

TOPIC_PROPOSAL = "cons/proposal"
TOPIC_VOTE = "cons/vote"
TOPIC_TXS = "mempool/txs"
MAX_STAGED = 16  # staged proposals kept per height (one per round at most, normally)
# What a proposal or a sync reply carries besides its block's transactions (header, last
# commit, evidence, the proposal's fields or the block's commit, the envelope): the rest
# of a P2P message is the most transaction bytes we propose.
BLOCK_FRAME_ROOM = 256 * 1024
TX_BATCH_MS = 20
TX_BATCH_MAX = 2_000
# Gossiped transactions no honest relay forwards (it verified and decoded them before
# re-announcing): the sending peer is blamed for these. Duplicates, used nonces or a full
# mempool are ordinary races between honest nodes and cost nothing.
PEER_TX_FAULTS = frozenset({Code.BAD_SIGNATURE, Code.MALFORMED, Code.WRONG_CHAIN})


@dataclass(frozen=True, slots=True)
class TxBatch(Struct):
    txs: list_of[Bytes]


@dataclass(frozen=True, slots=True)
class SyncBlock(Struct):
    """A block with the certificate that finalised it: everything a follower needs."""

    block: Block
    commit: Commit


# A range of synced blocks whose signatures verified, from the first height asked on, and
# why the block after them did not (``None``: the whole range verified).
# A synced range after its signature checks: each block with the signer set its commit was
# checked against, and why the range stops short (a bad block), if it does.
CheckedRange = tuple[list[tuple[int, SyncBlock, ValidatorSet]], str | None]


def header_of(block_bytes: bytes) -> BlockHeader:
    """The header of an encoded block without decoding its transactions."""
    header, _ = BlockHeader._kind().dec(memoryview(block_bytes), 0)
    return header


class ChainApplication:
    """The chain as the consensus engine's application."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.chain = node.chain
        self.staged: OrderedDict[bytes, StagedBlock] = OrderedDict()
        self._staged_lock = threading.Lock()
        self.evidence: dict[bytes, DuplicateVoteEvidence] = {}
        # Set by the service from its network: a block over one P2P message (max_block_bytes
        # may be far more) could be neither proposed nor served to a syncing node.
        self.max_tx_bytes: int | None = None

    def validators_at(self, height: int) -> ValidatorSet:
        """The signer set of ``height`` as committed state schedules it (the staking
        module's decision; see node/signer_sets.py). ``ValueError`` if not known yet."""
        return self.node.sets.at(height)

    def validators_in(self, view: StateView, height: int) -> ValidatorSet:
        """The set of ``height`` as recorded in ``view``, a state that is not (yet) the
        chain's: a snapshot being verified (node/snapsync.py). Read as ``validators_at``
        reads committed state."""
        try:
            return validator_set_at(view, height)
        except LookupError as exc:
            raise ValueError(str(exc)) from None

    def block_hash(self, block: bytes) -> bytes:
        return header_of(block).hash()

    def _remember(self, staged: StagedBlock) -> None:
        with self._staged_lock:  # the builder thread adds, the event loop clears
            self.staged[staged.block.hash()] = staged
            while len(self.staged) > MAX_STAGED:
                self.staged.popitem(last=False)

    def propose(self, height: int, candidates: list[CheckedTx],
                evidence: tuple[DuplicateVoteEvidence, ...],
                gathered: Commit | None = None) -> bytes | None:
        """Stage our block for ``height`` from ``candidates`` (builder thread); ``None`` if
        the chain cannot build one now: the round then goes on without our proposal.
        ``gathered``: the engine's certificate of the previous height, with the precommits
        that came after the decision (preferred to the stored one when it is for that
        height: it credits more signers)."""
        chain = self.chain
        try:
            if chain.height + 1 != height:
                return None  # committed meanwhile: a stale request
            last_commit = (chain.get_commit(chain.height) if chain.height else None) \
                or EMPTY_COMMIT
            if gathered is not None and gathered.height == chain.height \
                    and gathered.block_hash == last_commit.block_hash:
                last_commit = gathered
            staged = chain.stage_proposal(candidates, chain.next_time(now_ms()),
                                          self.node.key, last_commit=last_commit,
                                          evidence=evidence, max_bytes=self.max_tx_bytes)
        except Exception:  # a bug of ours: never let it stop consensus
            log.exception("cannot build a block at height %d", height)
            return None
        self._remember(staged)
        return staged.block.encode()

    def validate(self, height: int, block_bytes: bytes) -> bool:
        """Check and execute a proposed block (builder thread). Never raises: a block
        that cannot be executed is invalid."""
        try:
            header = header_of(block_bytes)
            if header.height != height:  # before the staged ones: block sync leaves them
                return False
            if header.hash() in self.staged:
                return True  # our own proposal, or one we already executed
            block = Block.decode(block_bytes)
            if height > 1:
                self.validators_at(height - 1).verify_commit(
                    self.chain.chain_id, block.last_commit, self.chain.latest_hash, height - 1,
                    verifier=self.node.verifier.verify)
            for ev in block.evidence:  # well-formedness is the chain's; membership is ours
                if self.validators_at(ev.vote_a.height).index_of(ev.vote_a.validator) is None:
                    raise ValueError("evidence against a key outside the validator set")
            checked = self.node.check_block_txs(block)
            self._remember(self.chain.stage_block(block, checked))
            return True
        except (CodecError, ValueError, ChainError, TxError) as exc:
            log.warning("rejecting proposed block at height %d: %s", height, exc)
            return False
        except Exception:
            log.exception("rejecting proposed block at height %d: it cannot be executed",
                          height)
            return False

    def commit_decided(self, decided: Decide) -> StagedBlock | None:
        """Commit a decided block with its certificate (builder thread); ``None`` if block
        sync committed that height first."""
        chain = self.chain
        if decided.height <= chain.height:
            have = chain.get_block(decided.height)
            if have is None or have.hash() != self.block_hash(decided.block):
                log.error("consensus decided another block at height %d than the one "
                          "committed by block sync", decided.height)
            return None
        staged = self.take(decided.block)
        if staged is None or staged.block.header.height != chain.height + 1:
            block = Block.decode(decided.block)
            staged = chain.stage_block(block, self.node.check_block_txs(block))
        chain.commit(staged, decided.commit)
        return staged

    def take(self, block_bytes: bytes) -> StagedBlock | None:
        return self.staged.get(header_of(block_bytes).hash())

    def clear(self) -> None:
        with self._staged_lock:
            self.staged.clear()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class ConsensusService:
    """Wires engine, chain, mempool and P2P together on the node's event loop."""

    def __init__(self, node: Node, p2p: P2P, signer: DurableSigner | None,
                 config: EngineConfig | None = None, *, test_equivocate_every: int = 0) -> None:
        """``test_equivocate_every`` is a fault injection for tests only (NodeConfig refuses
        [faults] outside them): see ``_equivocate``."""
        self.node = node
        self.test_equivocate_every = test_equivocate_every
        self.p2p = p2p
        self.app = ChainApplication(node)
        self.app.max_tx_bytes = max(0, p2p.max_frame - BLOCK_FRAME_ROOM)
        self.engine = ConsensusEngine(node.chain.chain_id, self.app, signer,
                                      config or EngineConfig())
        self._stopped = False
        self._tx_outbox: list[bytes] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: set[asyncio.Future[None]] = set()
        self._syncing = False
        self._behind = asyncio.Event()
        self._followed: tuple[ValidatorSet, ValidatorSet] | None = None
        # Decodes and checks the signatures of synced ranges ahead of the builder.
        self._checker = ThreadPoolExecutor(1, thread_name_prefix="sync-check")
        self.tx_budget = CheckBudget(node.config.p2p.unproven_sig_checks,
                                     node.config.p2p.unproven_peer_sig_checks)
        node.announce = self._tx_outbox.extend
        p2p.subscribe(TOPIC_PROPOSAL, self._on_proposal)
        p2p.subscribe(TOPIC_VOTE, self._on_vote)
        p2p.subscribe(TOPIC_TXS, self._on_txs)
        p2p.register_request(REQ_BLOCKS, self._serve_blocks)
        p2p.register_request(REQ_STATUS, self._serve_status)
        snaps = node.snapshots
        p2p.register_request(REQ_SNAPSHOTS, lambda _p, _b: _answer(serve_list(snaps)))
        p2p.register_request(REQ_MANIFEST, lambda _p, b: _answer(serve_manifest(snaps, b)))
        p2p.register_request(REQ_CHUNK, lambda _p, b: _answer(serve_chunk(snaps, b)))

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        self._follow_sets()
        await self._await_peers()
        if self.node.config.sync.snapshot and self.node.chain.height == 0:
            await self.snapshot_sync()
        await self.sync()
        self._next_height()
        self._tasks.append(asyncio.create_task(self._flush_txs_forever()))
        self._tasks.append(asyncio.create_task(self._catch_up_forever()))

    async def _await_peers(self, timeout: float = 3.0) -> None:
        """Give the seeds a moment to connect before the first proposal, so a freshly
        started network does not spend its first round proposing to nobody."""
        signers = self.app.validators_at(self.node.chain.height + 1)
        others = len(signers) - (1 if self.node.is_signer else 0)
        want = min(others, len(self.node.config.p2p.seeds))
        enough = asyncio.Event()

        def check(_peer: bytes | None = None) -> None:
            if len(self.p2p.connected_peers()) >= want:
                enough.set()

        self.p2p.on_peer_connected.append(check)
        try:
            check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enough.wait(), timeout)
        finally:
            self.p2p.on_peer_connected.remove(check)

    async def stop(self) -> None:
        self._stopped = True  # pending timers fire into nothing
        self._checker.shutdown(wait=False, cancel_futures=True)
        for task in (*self._tasks, *self._inflight):
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- engine actions ------------------------------------------------------------------

    def _run(self, actions: list[Action]) -> None:
        loop = asyncio.get_running_loop()
        for action in actions:
            if isinstance(action, Broadcast):
                msg = action.message
                topic = TOPIC_PROPOSAL if isinstance(msg, ProposalMessage) else TOPIC_VOTE
                if action.retransmit:
                    # Direct sends: gossip de-duplication would drop a resend at any peer
                    # that saw the message once but could not use it then.
                    for peer in self.p2p.connected_peers():
                        self._spawn(self.p2p.send(peer, topic, msg.encode(), priority=True))
                else:
                    self._spawn(self.p2p.publish(topic, msg.encode(), priority=True))
                if self.test_equivocate_every and not action.retransmit:
                    self._equivocate(msg)
            elif isinstance(action, ScheduleTimeout):
                loop.call_later(action.delay_ms / 1000, self._fire, action)
            elif isinstance(action, BuildProposal):
                self._work(self._build(action))
            elif isinstance(action, ValidateBlock):
                self._work(self._validate(action))
            elif isinstance(action, Decide):
                self._work(self._decide(action))
            elif isinstance(action, EvidenceFound):
                ev = action.evidence
                self.app.evidence[h256(ev.encode())] = ev
                log.warning("double-sign evidence against %s at height %d",
                            ev.vote_a.validator.hex()[:16], ev.vote_a.height)
        self.node.metrics.consensus_height.set(self.engine.height)
        self.node.metrics.consensus_round.set(self.engine.round)

    def _equivocate(self, msg: ProposalMessage | Vote) -> None:
        """TEST ONLY: after our own fresh prevote at a height divisible by
        ``test_equivocate_every``, send a second prevote for another (made-up) block hash,
        signed with the raw key: the DurableSigner would rightly refuse it. Honest nodes
        must report it as ``DuplicateVoteEvidence`` and put that in a block."""
        key = self.node.key
        if (not isinstance(msg, Vote) or msg.step != Step.PREVOTE
                or msg.validator != key.public_key
                or msg.height % self.test_equivocate_every):
            return
        other = h256(b"smartchain/test-equivocation" + msg.encode())
        conflicting = replace(msg, block_hash=other).signed_by(key)
        log.warning("TEST FAULT: double-signing a prevote at height %d round %d",
                    msg.height, msg.round)
        self._spawn(self.p2p.publish(TOPIC_VOTE, conflicting.encode(), priority=True))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        task.add_done_callback(_log_failure)

    def _fire(self, action: ScheduleTimeout) -> None:
        if not self._stopped:
            self._run(self.engine.on_timeout(action.timeout))

    def _work(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run an engine request as a task; a failure is logged, never lost silently."""
        task = asyncio.ensure_future(coro)
        self._inflight.add(task)
        task.add_done_callback(self._work_done)

    def _work_done(self, task: asyncio.Future) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("consensus work failed", exc_info=task.exception())

    async def _in_builder(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.node.builder, fn, *args)

    async def _build(self, request: BuildProposal) -> None:
        candidates = self.node.candidates()  # the mempool and the evidence are the loop's
        evidence = tuple(self.app.evidence[k] for k in sorted(self.app.evidence))
        block = await self._in_builder(self.app.propose, request.height, candidates, evidence,
                                       self.engine.last_commit)
        if not self._stopped:
            self._run(self.engine.on_block_built(request.height, request.round, block))

    async def _validate(self, request: ValidateBlock) -> None:
        ok = await self._in_builder(self.app.validate, request.height, request.block)
        if not self._stopped:
            self._run(self.engine.on_block_validated(request.height, request.block_hash, ok))

    async def _decide(self, action: Decide) -> None:
        started = time.monotonic()
        try:
            staged = await self._in_builder(self.app.commit_decided, action)
        except Exception:  # our state cannot take the decided block: only sync can help
            log.exception("cannot commit the decided block at height %d", action.height)
            self._behind.set()
            return
        finally:
            self.app.clear()
        if staged is not None:
            self._after_commit(staged, started)
        block_time_s = self.node.config.consensus.block_time_ms / 1000
        delay = max(0.0, block_time_s - (time.monotonic() - started))
        asyncio.get_running_loop().call_later(delay, self._next_height)

    def _after_commit(self, staged: StagedBlock, started: float) -> None:
        """After a decided or synced block is committed: its evidence is not proposed
        again; the mempool forgets what it included."""
        included = {e.vote_a.encode() for e in staged.block.evidence}
        if included:
            self.app.evidence = {k: e for k, e in self.app.evidence.items()
                                 if e.vote_a.encode() not in included}
        self.node.after_commit(staged, started)
        self._count_signatures(staged.block)
        self._follow_sets()

    def _count_signatures(self, block: Block) -> None:
        """Metrics of the committed block: who of the previous height's set did not
        sign it (its last commit), and whether the set changed at this height."""
        height = block.header.height
        if height < 2:
            return
        m = self.node.metrics
        before = self.app.validators_at(height - 1)
        signed = {s.validator_index for s in block.last_commit.signatures}
        for i, v in enumerate(before.validators):
            if i not in signed:
                m.consensus_missed_blocks.labels(v.public_key.hex()[:16]).inc()
        if self.app.validators_at(height).validators != before.validators:
            m.consensus_set_changes.inc()

    def _follow_sets(self) -> None:
        """After each commit: the signers of the next two heights (all decided by now)
        are the protected peers, and the metrics say whether we are one of them."""
        chain = self.node.chain
        nxt = self.app.validators_at(chain.height + 1)
        after = self.app.validators_at(chain.height + 2)
        if (nxt, after) != self._followed:
            self._followed = (nxt, after)
            keys = {v.public_key for v in (*nxt.validators, *after.validators)}
            self.p2p.protect(keys - {self.node.key.public_key})
            log.info("signer set of height %d: %d signers%s", chain.height + 1, len(nxt),
                     " (we sign)" if self.node.is_signer else "")
        m = self.node.metrics
        m.consensus_signers.set(len(nxt))
        m.consensus_is_signer.set(1 if nxt.index_of(self.node.key.public_key) is not None
                                  else 0)

    def _next_height(self) -> None:
        """Start consensus on the next height; the last certificate lets the engine help
        peers still finishing the previous one."""
        chain = self.node.chain
        height = chain.height + 1
        if not self._stopped and self.engine.height < height:
            last = chain.get_commit(chain.height) if chain.height else None
            self._run(self.engine.start(height, last_commit=last))

    # --- network input -------------------------------------------------------------------

    async def _on_proposal(self, peer: bytes, payload: bytes) -> bool:
        msg = ProposalMessage.decode(payload)  # CodecError => the transport penalises
        self._note_height(msg.proposal.height)
        try:
            self._run(self.engine.on_proposal(msg.proposal, msg.block))
        except InvalidMessage as exc:
            self.p2p.penalize(peer, 20, f"invalid proposal: {exc}")
            return False
        return True

    async def _on_vote(self, peer: bytes, payload: bytes) -> bool:
        vote = Vote.decode(payload)
        self._note_height(vote.height)
        try:
            self._run(self.engine.on_vote(vote))
        except InvalidMessage as exc:
            self.p2p.penalize(peer, 20, f"invalid vote: {exc}")
            return False
        return True

    def _note_height(self, height: int) -> None:
        if height > self.node.chain.height + 1:
            self._behind.set()

    async def _on_txs(self, peer: bytes, payload: bytes) -> bool:
        batch = TxBatch.decode(payload)
        if len(batch.txs) > TX_BATCH_MAX:  # more than we send: bounds one batch's cost
            self.p2p.penalize(peer, Penalty.MALFORMED_MESSAGE,
                              f"transaction batch of {len(batch.txs)} > {TX_BATCH_MAX}")
            return False
        # Shielded: a peer that hangs up while its batch is being verified (its reader is
        # then cancelled) still gets its verdict, and the valid transactions still go in.
        task = asyncio.ensure_future(self._admit_gossip(peer, list(batch.txs)))
        self._inflight.add(task)
        task.add_done_callback(self._work_done)
        await asyncio.shield(task)
        return False

    async def _admit_gossip(self, peer: bytes, raws: list[bytes]) -> None:
        """The node re-announces only what it admitted (see Node.announce), so a flood of
        duplicates or invalid transactions dies at the first hop; a peer that sends
        provably invalid ones is penalised per transaction and soon banned. Until a peer
        has proven itself, its signature checks (and costly checks such as a contract's
        compile, counted in signature checks) come out of a bounded budget (see
        gossip_budget.py): a new identity costs little, and all of them together at most
        the budget. What is over it is dropped unchecked, so without penalty: it may be
        honest."""
        may_check = None if self._proven(peer) else lambda c: self._may_check(peer, c)
        results = await self.node.submit_many_async(raws, may_check=may_check)
        bad = [r for r in results if isinstance(r, TxError) and r.code in PEER_TX_FAULTS]
        if bad:
            self.p2p.penalize(peer, Penalty.INVALID_TX * len(bad),
                              f"{len(bad)} invalid transactions ({bad[0].code.slug})")
        unchecked = results.count(None)
        if unchecked:
            self.node.metrics.gossip_txs_unchecked.inc(unchecked)
            log.debug("%d transactions from unproven peer %s dropped unchecked: over the "
                      "check budget", unchecked, peer.hex()[:16])

    def _proven(self, peer: bytes) -> bool:
        """Validators and seeds, and peers whose merit outweighs their penalties."""
        return peer in self.p2p.protected or self.p2p.peer_rank(peer) > 0

    def _may_check(self, peer: bytes, checked: CheckedTx) -> bool:
        if not self.tx_budget.take(peer, 1 + checked.msg.signed_check_cost(checked.payload)):
            return False
        self.node.metrics.gossip_unproven_checks.inc()
        return True

    async def _flush_txs_forever(self) -> None:
        while True:
            await asyncio.sleep(TX_BATCH_MS / 1000)
            while self._tx_outbox:
                await self.p2p.publish(TOPIC_TXS, TxBatch(self._next_batch()).encode())

    def _next_batch(self) -> tuple[bytes, ...]:
        """The outbox's first transactions that fit in one P2P message (a larger one
        would be refused, and its error would end the gossip task)."""
        room = self.p2p.max_frame - BLOCK_FRAME_ROOM
        taken, size = 0, 0
        for raw in itertools.islice(self._tx_outbox, TX_BATCH_MAX):
            size += len(raw) + 8  # the list item's length prefix, generously
            if taken and size > room:
                break
            taken += 1
        batch = tuple(self._tx_outbox[:taken])
        del self._tx_outbox[:taken]  # in place: Node.announce is this very list's extend
        return batch

    # --- block sync (the transport: node/blocksync.py) ----------------------------------

    async def _serve_status(self, peer: bytes, payload: bytes) -> bytes:
        chain = self.node.chain
        return SyncStatus(chain.height, chain.base).encode()

    async def _serve_blocks(self, peer: bytes, payload: bytes) -> bytes:
        return serve_range(self.node.chain, payload, self.p2p.max_frame)

    async def _catch_up_forever(self) -> None:
        while True:
            await self._behind.wait()
            self._behind.clear()
            await self.sync()
            self._next_height()

    async def snapshot_sync(self) -> None:
        """Start from a verified state snapshot of a peer (node/snapsync.py), if one is
        offered; block sync then follows from its height."""
        cfg = self.node.config.sync
        genesis_set = self.app.validators_at(1)  # as the staking module ranked genesis
        await SnapshotSync(self.p2p, self.node.chain.chain_id, self._restore,
                           self.app.validators_in, genesis_set, cfg.trust_height,
                           bytes.fromhex(cfg.trust_hash),
                           verifier=self.node.verifier.verify).run()

    async def _restore(self, block: Block, commit: Commit,
                       chunks: list[SnapshotChunk]) -> None:
        entries = [[(e.key, e.value) for e in c.entries] for c in chunks]
        await self._in_builder(self.node.chain.restore, block, commit, entries)
        self.node.metrics.height.set(self.node.chain.height)

    async def sync(self) -> None:
        """Fetch and apply blocks until no peer knows a higher one."""
        if self._syncing:
            return
        self._syncing = True
        try:
            while await RangeFetcher(self.p2p, self.node.chain, self._check_range,
                                     self._apply_range).run():
                pass
        finally:
            self._syncing = False

    async def _check_range(self, blocks: BlockRange, start: int) -> CheckedRange:
        """As soon as a range arrives, in the sync checker thread: decoding it and
        waiting for its signature checks overlap executing the range before it."""
        return await asyncio.get_running_loop().run_in_executor(
            self._checker, self._verify_range, blocks, start)

    async def _apply_range(self, checked: CheckedRange, peer: bytes) -> str | None:
        """Commit a checked range of synced blocks (one store transaction); why not, if a
        block of it did not verify (the blocks before it are committed)."""
        started = time.monotonic()
        staged, why = await self._in_builder(self._commit_range, checked)
        for one in staged:
            self._after_commit(one, started)
        return why

    def _commit_range(self, checked: CheckedRange) -> tuple[list[StagedBlock], str | None]:
        """Builder thread: each block of a checked range executed and committed in one
        store transaction, up to the first that fails."""
        chain = self.node.chain
        verified, why = checked
        committed: list[StagedBlock] = []
        with chain.batch():
            for height, sb, checked_with in verified:
                try:
                    self._recheck_if_set_changed(sb, height, checked_with)
                    staged = self._apply_synced(sb, height)
                except (ValueError, ChainError, TxError) as exc:
                    return committed, f"bad block {height}: {exc}"
                if staged is not None:
                    committed.append(staged)
        return committed, why

    def _recheck_if_set_changed(self, sb: SyncBlock, height: int,
                                checked_with: ValidatorSet) -> None:
        """A range is checked before the blocks below it are executed, so heights whose
        signer set state did not schedule yet were checked against the latest known set.
        Now that state knows the set of ``height``: if the staking module changed it, the
        commit is checked again, against the set of its own height (``ValueError``)."""
        actual = self.app.validators_at(height)
        if actual != checked_with:
            actual.verify_commit(self.node.chain.chain_id, sb.commit,
                                 sb.block.header.hash(), height,
                                 verifier=self.node.verifier.verify)

    def _set_for_check(self, height: int) -> tuple[ValidatorSet, bool]:
        """The set to check ``height``'s commit against ahead of execution, and whether it
        is a guess: its own when state already schedules it, else the latest scheduled
        one (sets change rarely: ``_recheck_if_set_changed`` catches the blocks where it
        did). A commit that fails against a guess is no fault of the peer's."""
        try:
            return self.app.validators_at(height), False
        except ValueError:
            return self.app.validators_at(self.node.chain.height + SCHEDULE_AHEAD), True

    def _verify_range(self, blocks: BlockRange, start: int) -> CheckedRange:
        """The range's blocks above our height, decoded and checked against their commit
        certificates and the signer sets of their heights: every commit signature and
        every proposer signature of the range in ONE batch of the node's parallel
        verifier (three or four checks a block one by one stay under its threshold for
        worker processes). Returns the blocks before the first that fails, and why it
        failed."""
        chain = self.node.chain
        chain_id = chain.chain_id
        decoded: list[tuple[int, SyncBlock, ValidatorSet]] = []
        items: list[tuple[bytes, bytes, bytes]] = []
        ends: list[int] = []  # where each block's checks end in ``items``
        guessed: list[bool] = []  # checked against a guessed set (see ``_set_for_check``)
        why = None
        for i, (raw, raw_commit) in enumerate(zip(blocks.blocks, blocks.commits,
                                                  strict=True)):
            height = start + i
            if height <= chain.height:
                continue  # consensus committed it while we waited: not the peer's fault
            guess = False
            try:
                sb = SyncBlock(Block.decode(raw), Commit.decode(raw_commit))
                header = sb.block.header
                if header.height != height:
                    raise ValueError(f"asked for block {height}, got {header.height}")
                block_hash = header.hash()
                valset, guess = self._set_for_check(height)
                items += valset.commit_checks(chain_id, sb.commit, block_hash, height)
            except (CodecError, ValueError) as exc:
                # against a guessed set: stop here, the rest is asked again once the
                # blocks below are executed and state knows the set
                why = None if guess else f"bad block {height}: {exc}"
                break
            items.append((header.proposer, block_hash, sb.block.signature))
            ends.append(len(items))
            guessed.append(guess)
            decoded.append((height, sb, valset))
        oks = self.node.verifier.verify(items)
        begin = 0
        for n, end in enumerate(ends):
            if not all(oks[begin:end]):
                what = "commit" if not all(oks[begin:end - 1]) else "proposer"
                if guessed[n] and what == "commit":
                    return decoded[:n], None
                return decoded[:n], f"bad block {decoded[n][0]}: invalid {what} signature"
            begin = end
        return decoded, why

    def _apply_synced(self, sb: SyncBlock, height: int) -> StagedBlock | None:
        """Execute and commit a synced block whose signatures ``_verify_range`` checked
        (builder thread); ``None`` if consensus committed that height meanwhile."""
        chain = self.node.chain
        if chain.height >= height:
            return None
        block = sb.block
        staged = chain.stage_block(block, self.node.check_block_txs(block),
                                   proposer_verified=True)
        chain.commit(staged, sb.commit)
        return staged


async def _answer(payload: bytes) -> bytes:
    return payload


def _log_failure(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("consensus send failed: %s", task.exception())
