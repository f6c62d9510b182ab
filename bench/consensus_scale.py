"""How the consensus engine scales with the number of directors (issue 13's benchmark).

Every director runs the real ``ConsensusEngine`` in this one process, with real Ed25519
keys, signatures and signature checks, over a deterministic discrete-event network: a
virtual clock, a one-way delay of ``--delay-ms`` (uniform jitter of ``--jitter-ms``) and
independent loss of ``--loss`` of the copies sent. The engines' timeouts run on the virtual
clock; building and validating a block take ``--exec-ms``. The transport is the node's:
validators keep connections to every other validator (they are protected peers), a fresh
message is published as gossip and every node relays the first copy it sees to all its
peers but the sender; the engine's retransmissions are direct sends (never relayed). A node
that sees a message above the next height syncs as ``node/bft.py`` does (status, then the
block and its commit, one round trip each; requests are not lost). ``--transport direct``
drops the relaying, to show what it costs and what it buys.

Per size it prints blocks per second of virtual time, p50 and p99 of the time to finality
(from the first node starting a height to each node deciding it, over all nodes and
heights), copies sent and payload bytes per block per node (without framing or
encryption), the share of heights decided in round 0, syncs, and the real CPU per block per
node spent in the engines (rules, signing, signature checks, commit checks). Baselines
measured in the same run: the CPU of 2N bare Ed25519 checks (the N prevotes and N
precommits a node must check per block), and the CPU per block of the first size.
Everything but the CPU figures is a function of ``--seed``.

Then, at the largest size, whether BLS aggregation of commits would pay off: verifying a
commit of N signatures (Ed25519 through ``verify_many`` against one aggregate BLS check)
and its size. That part runs only when ``blspy`` is importable; it is not a dependency of
the project. To run it: ``pip install --target /tmp/blsenv blspy`` and put ``/tmp/blsenv``
on PYTHONPATH (after the worktree).

    python bench/consensus_scale.py [--sizes 4,21,49,99] [--blocks 20] [--seed 1]
        [--delay-ms 50] [--jitter-ms 5] [--loss 0.01] [--exec-ms 1] [--block-time-ms 0]
        [--transport flood|direct] [--timeout-propose-ms ...] [--gossip-interval-ms ...]
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from smartchain.consensus import (
    Action,
    Broadcast,
    BuildProposal,
    ConsensusEngine,
    Decide,
    DurableSigner,
    EngineConfig,
    InvalidMessage,
    LockRecord,
    Message,
    ScheduleTimeout,
    SignState,
    Timeout,
    ValidateBlock,
    Validator,
    ValidatorSet,
)
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey, verify_many
from smartchain.types.consensus import Commit, CommitSig, ProposalMessage, Step, Vote

CHAIN = "smart-bench-consensus"
NEVER = 1 << 62


class MemorySigner(DurableSigner):
    """The real double-sign guard and signing, with its records kept in memory: the fsyncs
    of the durable file are the disk's cost, not the engine's, and would swamp the CPU
    figure."""

    def __init__(self, key: PrivateKey) -> None:
        self._locks: dict[int, LockRecord] = {}
        super().__init__(key, Path("/nonexistent/sign_state"))

    def _load(self) -> SignState | None:
        return None

    def _persist(self, state: SignState) -> None:
        pass

    def save_lock(self, record: LockRecord) -> None:
        self._locks = {record.height: record}

    def lock_record(self, height: int) -> LockRecord | None:
        return self._locks.get(height)


class BenchApp:
    """A block is its header (height, round, proposer), the previous commit as a real block
    carries it, and ``tx_bytes`` of filler."""

    def __init__(self, name: str, valset: ValidatorSet, tx_bytes: int) -> None:
        self.name = name
        self.valset = valset
        self.filler = bytes(tx_bytes)
        self.last_commit = b""

    def propose(self, height: int, round: int) -> bytes:
        head = f"h={height}|r={round}|by={self.name}|".encode()
        return head + self.last_commit + self.filler

    def validate(self, height: int, block: bytes) -> bool:
        return block.startswith(f"h={height}|".encode())

    def block_hash(self, block: bytes) -> bytes:
        return h256(block)

    def validators_at(self, height: int) -> ValidatorSet:
        return self.valset


@dataclass(frozen=True, slots=True)
class SimConfig:
    n: int
    blocks: int
    seed: int = 1
    delay_ms: int = 50
    jitter_ms: int = 5
    loss: float = 0.01
    exec_ms: int = 1
    block_time_ms: int = 0
    tx_bytes: int = 0
    transport: str = "flood"
    down: int = 0  # directors crashed from the start, drawn by the seed
    engine: EngineConfig = field(default_factory=EngineConfig)


@dataclass(slots=True)
class Result:
    n: int
    nodes: int  # live ones
    blocks: int
    virtual_ms: int
    latencies: list[int]
    sent: int
    sent_bytes: int
    round0: int
    syncs: int
    cpu_s: float
    wall_s: float
    commit: Commit | None

    @property
    def blocks_per_s(self) -> float:
        return self.blocks * 1000 / max(self.virtual_ms, 1)

    def percentile(self, q: float) -> int:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def per_node_block(self, total: float) -> float:
        return total / (self.nodes * self.blocks)


def make_keys(n: int) -> list[PrivateKey]:
    return [PrivateKey.from_seed(h256(b"bench-director-%d" % i)) for i in range(n)]


class Simulation:
    """One network of ``n`` equal-power directors, driven event by event."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.n = cfg.n
        if cfg.transport == "flood" and 3 * cfg.jitter_ms > cfg.delay_ms:
            raise ValueError("flood transport needs jitter <= delay / 3 (hop ordering)")
        keys = make_keys(cfg.n)
        self.valset = ValidatorSet([Validator(k.public_key, 1, f"d{i}")
                                    for i, k in enumerate(keys)])
        self.rng = random.Random(cfg.seed)
        dead = set(self.rng.sample(range(cfg.n), cfg.down))
        self.live = [i for i in range(cfg.n) if i not in dead]
        self.now = 0
        self._queue: list[tuple[int, int, str, int, object]] = []
        self._seq = 0
        self.apps = [BenchApp(f"d{i}", self.valset, cfg.tx_bytes) for i in range(cfg.n)]
        self.engines = [ConsensusEngine(CHAIN, self.apps[i], MemorySigner(keys[i]), cfg.engine)
                        for i in range(cfg.n)]
        self.applied = [0] * cfg.n  # the node's chain height
        self.decided: list[dict[int, tuple[bytes, Commit]]] = [{} for _ in range(cfg.n)]
        self.decide_at: dict[int, list[int]] = {}
        self.first_start: dict[int, int] = {}
        self.rounds: dict[int, int] = {}
        self.syncing = [False] * cfg.n
        self.syncs = 0
        self.finished = 0  # nodes that decided the last height
        self.sent = 0
        self.sent_bytes = 0
        self.cpu = 0.0

    # -- plumbing -----------------------------------------------------------------------

    def _push(self, at: int, kind: str, node: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, node, payload))

    def _delay(self) -> int:
        j = self.cfg.jitter_ms
        return self.cfg.delay_ms + (self.rng.randint(-j, j) if j else 0)

    def _lost(self) -> bool:
        return self.rng.random() < self.cfg.loss

    def _engine_call(self, i: int, call: Callable[[], list[Action]]) -> None:
        """Run one engine entry point, timing it (the CPU figure), and carry out its actions."""
        t = time.process_time()
        try:
            actions = call()
        except InvalidMessage as exc:  # no forger here: a bug in the harness or the engine
            raise AssertionError(f"node {i} rejected an honest message: {exc}") from exc
        self.cpu += time.process_time() - t
        self._handle(i, actions)

    def _handle(self, i: int, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, Broadcast):
                self._broadcast(i, a.message, a.retransmit)
            elif isinstance(a, ScheduleTimeout):
                self._push(self.now + a.delay_ms, "timeout", i, a.timeout)
            elif isinstance(a, Decide):
                self._record(i, a)
            elif isinstance(a, (BuildProposal, ValidateBlock)):
                self._push(self.now + self.cfg.exec_ms, "app", i, a)
            # EvidenceFound: no equivocator here

    # -- transport ----------------------------------------------------------------------

    def _broadcast(self, src: int, msg: Message, retransmit: bool) -> None:
        size = len(msg.encode())
        peers = len(self.live) - 1  # a crashed node is nobody's peer
        if retransmit or self.cfg.transport == "direct":
            self._count(peers, size)
            for j in self.live:
                if j != src and not self._lost():
                    self._push(self.now + self._delay(), "deliver", j, msg)
            return
        for j, at in self._flood_arrivals(src, size, peers).items():
            self._push(at, "deliver", j, msg)

    def _flood_arrivals(self, src: int, size: int, peers: int) -> dict[int, int]:
        """When each node first holds a gossiped message. The origin sends to every peer,
        each receiver relays to every peer but the one it heard from; a copy's path of h hops
        always beats any of h + 1 (jitter <= delay / 3), so nodes are reached hop by hop."""
        reached: dict[int, int] = {}
        missing: list[int] = []
        for j in self.live:
            if j != src:
                if self._lost():
                    missing.append(j)
                else:
                    reached[j] = self.now + self._delay()
        self._count(peers, size)
        frontier = list(reached)
        while missing and frontier:
            found: list[int] = []
            for j in missing:
                best = min((reached[k] + self._delay() for k in frontier if not self._lost()),
                           default=NEVER)
                if best < NEVER:
                    reached[j] = best
                    found.append(j)
            missing = [j for j in missing if j not in reached]
            frontier = found
        self._count(len(reached) * (peers - 1), size)
        return reached

    def _count(self, copies: int, size: int) -> None:
        self.sent += copies
        self.sent_bytes += copies * size

    # -- decisions and sync -------------------------------------------------------------

    def _record(self, i: int, d: Decide) -> None:
        self.decided[i][d.height] = (d.block, d.commit)
        self.decide_at.setdefault(d.height, []).append(self.now)
        self.rounds.setdefault(d.height, d.commit.round)
        self.apps[i].last_commit = d.commit.encode()
        self.applied[i] = d.height
        self.finished += d.height == self.cfg.blocks
        self._push(self.now + max(self.cfg.exec_ms, self.cfg.block_time_ms), "start", i,
                   d.height + 1)

    def _start(self, i: int, height: int) -> None:
        eng = self.engines[i]
        if eng.height >= height:
            return  # a sync already moved it on
        self.first_start.setdefault(height, self.now)
        self._engine_call(i, lambda: eng.start(height))

    def _note_height(self, i: int, height: int) -> None:
        """Above our next height: some peer is ahead, sync (node/bft.py ``_note_height``)."""
        if height > self.applied[i] + 1 and not self.syncing[i]:
            self.syncing[i] = True
            self.syncs += 1
            self._count(2, 16)  # status request and answer
            self._push(self.now + 2 * self.cfg.delay_ms, "sync", i, None)

    def _sync_step(self, i: int) -> None:
        """Fetch the next block and commit from the most advanced peer (one round trip)."""
        h = self.applied[i] + 1
        peer = max(self.live, key=lambda j: self.applied[j])
        eng = self.engines[i]
        if self.applied[peer] < h or eng.height != h or eng.decided:
            self.syncing[i] = False
            return
        block, commit = self.decided[peer][h]
        self._count(1, 16)  # the request
        self._count(1, len(block) + len(commit.encode()))
        self._push(self.now + 2 * self.cfg.delay_ms, "fetched", i, (h, block, commit))

    def _fetched(self, i: int, payload: tuple[int, bytes, Commit]) -> None:
        h, block, commit = payload
        eng = self.engines[i]
        if eng.height == h and not eng.decided:
            self._engine_call(i, lambda: eng.on_decided_block(h, block, commit))
        if self.applied[i] >= h:
            self._push(self.now + self.cfg.exec_ms, "sync", i, None)  # anything further?
        else:
            self.syncing[i] = False

    # -- running ------------------------------------------------------------------------

    def _step(self) -> None:
        at, _, kind, i, payload = heapq.heappop(self._queue)
        self.now = at
        eng = self.engines[i]
        if kind == "deliver":
            assert isinstance(payload, (Vote, ProposalMessage))
            self._note_height(i, _height_of(payload))
            self._engine_call(i, lambda: eng.on_message(payload))
        elif kind == "timeout":
            assert isinstance(payload, Timeout)
            self._engine_call(i, lambda: eng.on_timeout(payload))
        elif kind == "app":
            self._answer(i, payload)
        elif kind == "start":
            assert isinstance(payload, int)
            self._start(i, payload)
        elif kind == "sync":
            self._sync_step(i)
        else:
            assert isinstance(payload, tuple)
            self._fetched(i, payload)

    def _answer(self, i: int, request: object) -> None:
        eng, app = self.engines[i], self.apps[i]
        if isinstance(request, BuildProposal):
            block = app.propose(request.height, request.round)
            self._engine_call(i, lambda: eng.on_block_built(request.height, request.round,
                                                            block))
        else:
            assert isinstance(request, ValidateBlock)
            ok = app.validate(request.height, request.block)
            self._engine_call(i, lambda: eng.on_block_validated(request.height,
                                                                request.block_hash, ok))

    def run(self, max_virtual_ms: int) -> Result:
        wall = time.perf_counter()
        for i in self.live:
            self._start(i, 1)
        while self._queue and self.finished < len(self.live) and self.now <= max_virtual_ms:
            self._step()
        return self._result(time.perf_counter() - wall)

    def _result(self, wall_s: float) -> Result:
        target = self.cfg.blocks
        nodes = len(self.live)
        done = [h for h in range(1, target + 1) if len(self.decide_at.get(h, ())) == nodes]
        if len(done) < target:
            raise SystemExit(f"n={self.n}: only {len(done)} of {target} heights decided by all "
                             f"nodes within {self.now} ms of virtual time")
        latencies = [t - self.first_start[h] for h in done for t in self.decide_at[h]]
        end = statistics.median_low(self.decide_at[target])
        last = self.decided[0][target][1]
        return Result(self.n, nodes, target, end, latencies, self.sent, self.sent_bytes,
                      sum(1 for h in done if self.rounds[h] == 0), self.syncs, self.cpu,
                      wall_s, last)


def _height_of(msg: Message) -> int:
    return msg.proposal.height if isinstance(msg, ProposalMessage) else msg.height


# -- baselines --------------------------------------------------------------------------


def precommits(n: int, height: int = 1) -> list[Vote]:
    """N real precommits for one block, as a commit carries them."""
    block_hash = h256(b"bench-block")
    return [Vote(CHAIN, height, 0, int(Step.PRECOMMIT), block_hash, k.public_key, bytes(64))
            .signed_by(k) for k in make_keys(n)]


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Least process time of ``repeat`` calls: the least disturbed by the other agents."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best


def verify_cost(n: int) -> float:
    """Seconds of CPU for one bare Ed25519 check (``verify_many`` over n real votes)."""
    items = [(v.validator, v.sign_bytes(), v.signature) for v in precommits(n)]
    items = items * max(1, 2000 // n)

    def run() -> None:
        if not all(verify_many(items)):
            raise SystemExit("bad signature in benchmark data")

    return best_of(run) / len(items)


# -- BLS --------------------------------------------------------------------------------


def bls_findings(n: int, commit: Commit | None) -> list[str]:
    """Commit verification and size: N Ed25519 signatures against one BLS aggregate."""
    try:
        import blspy  # type: ignore[import-not-found]  # optional, not a project dependency
    except ImportError:
        return ["BLS: blspy is not importable (see the docstring to install it); skipped"]
    votes = precommits(n)
    items = [(v.validator, v.sign_bytes(), v.signature) for v in votes]
    ed = best_of(lambda: verify_many(items))
    pop = blspy.PopSchemeMPL
    sks = [pop.key_gen(h256(b"bench-bls-%d" % i)) for i in range(n)]
    pks = [sk.get_g1() for sk in sks]
    same = votes[0].sign_bytes()[:-32]  # what a vote without its validator field would sign
    agg = bytes(pop.aggregate([pop.sign(sk, same) for sk in sks]))
    fast = best_of(lambda: pop.fast_aggregate_verify(pks, same, blspy.G2Element.from_bytes(agg)))
    aug = blspy.AugSchemeMPL
    msgs = [v.sign_bytes() for v in votes]
    agg_aug = aug.aggregate([aug.sign(sk, m) for sk, m in zip(sks, msgs, strict=True)])
    distinct = best_of(lambda: aug.aggregate_verify(pks, msgs, agg_aug), 2)
    one_sig = pop.sign(sks[0], same)
    single = best_of(lambda: pop.verify(pks[0], same, one_sig))
    full = Commit(1, 0, votes[0].block_hash,
                  tuple(CommitSig(i, v.signature) for i, v in enumerate(votes)))
    ed_size = len(full.encode())
    decided = "" if commit is None else (f" (one decided in the run: {len(commit.encode())} B, "
                                         f"{len(commit.signatures)} signatures)")
    bls_size = 8 + 4 + 32 + (n + 7) // 8 + 96  # height, round, block hash, signer bitmap, sig
    return [
        f"BLS at {n} directors (blspy {getattr(blspy, '__version__', '?')}), commit of {n} "
        f"precommits:",
        f"  verify: Ed25519 verify_many {ed * 1e3:.2f} ms; BLS fast aggregate verify (one "
        f"message) {fast * 1e3:.2f} ms = {ed / fast:.1f}x faster; BLS aggregate verify of "
        f"{n} distinct messages (today's votes sign their validator key) "
        f"{distinct * 1e3:.1f} ms = {distinct / ed:.1f}x slower",
        f"  size: Ed25519 commit of {n} signatures {ed_size} B{decided}; BLS (bitmap + 96 B "
        f"signature) {bls_size} B = {ed_size / bls_size:.0f}x smaller",
        f"  per vote on the way (gossip, no aggregate yet): BLS verify {single * 1e3:.2f} ms "
        f"against Ed25519 {ed / n * 1e3:.3f} ms = {single / (ed / n):.0f}x dearer",
    ]


# -- report -----------------------------------------------------------------------------


def run_sizes(args: argparse.Namespace, engine: EngineConfig) -> list[Result]:
    results = []
    for n in args.sizes:
        cfg = SimConfig(n, args.blocks, args.seed, args.delay_ms, args.jitter_ms, args.loss,
                        args.exec_ms, args.block_time_ms, args.tx_bytes, args.transport,
                        min(args.down, (n - 1) // 3), engine)
        results.append(Simulation(cfg).run(args.blocks * 60_000))
    return results


def print_table(results: list[Result], verify_s: float) -> None:
    head = (f"{'N':>4} {'blk/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'round0':>6} {'syncs':>5} "
            f"{'msgs/blk/node':>13} {'KB/blk/node':>11} {'CPU ms/blk/node':>15} "
            f"{'x 2N verifies':>13} {'x first':>7} {'sim s':>6}")
    print(head)
    base = results[0].per_node_block(results[0].cpu_s)
    for r in results:
        cpu = r.per_node_block(r.cpu_s)
        print(f"{r.n:>4} {r.blocks_per_s:>6.2f} {r.percentile(0.5):>7} {r.percentile(0.99):>7} "
              f"{r.round0 * 100 // r.blocks:>5}% {r.syncs:>5} "
              f"{r.per_node_block(r.sent):>13,.0f} {r.per_node_block(r.sent_bytes) / 1024:>11.1f} "
              f"{cpu * 1e3:>15.2f} {cpu / (2 * r.n * verify_s):>13.2f} {cpu / base:>7.1f} "
              f"{r.wall_s:>6.1f}")


def engine_config(args: argparse.Namespace) -> EngineConfig:
    overrides = {f.name: getattr(args, f.name) for f in fields(EngineConfig)
                 if getattr(args, f.name, None) is not None}
    return replace(EngineConfig(), **overrides)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                    default=[4, 21, 49, 99])
    ap.add_argument("--blocks", type=int, default=20, help="heights every node must decide")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--delay-ms", type=int, default=50, help="one-way delay")
    ap.add_argument("--jitter-ms", type=int, default=5, help="uniform, either side")
    ap.add_argument("--loss", type=float, default=0.01, help="share of copies lost")
    ap.add_argument("--exec-ms", type=int, default=1, help="building or validating a block")
    ap.add_argument("--block-time-ms", type=int, default=0,
                    help="least time from a decision to the next height (node default 1000)")
    ap.add_argument("--tx-bytes", type=int, default=0, help="filler carried by each block")
    ap.add_argument("--transport", choices=["flood", "direct"], default="flood")
    ap.add_argument("--down", type=int, default=0,
                    help="directors crashed from the start (at most (N-1)//3 of each size)")
    for f in fields(EngineConfig):
        if f.name.endswith("_ms"):
            ap.add_argument("--" + f.name.replace("_", "-"), type=int, default=None,
                            help=f"EngineConfig.{f.name} (default {f.default})")
    ap.add_argument("--stall-ticks", type=int, default=None)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    engine = engine_config(args)
    print(f"{args.blocks} blocks per size, seed {args.seed}, delay {args.delay_ms}±"
          f"{args.jitter_ms} ms, loss {args.loss:.1%}, transport {args.transport}, "
          f"exec {args.exec_ms} ms, block time {args.block_time_ms} ms, {args.down} down")
    print(f"engine: {engine}")
    verify_s = verify_cost(max(args.sizes))
    results = run_sizes(args, engine)
    print_table(results, verify_s)
    print(f"baseline: one bare Ed25519 check (verify_many) {verify_s * 1e6:.1f} µs of CPU; "
          "'x 2N verifies' = CPU per block per node / 2N of them; 'x first' = against the "
          f"first size ({results[0].n})")
    for line in bls_findings(results[-1].n, results[-1].commit):
        print(line)


if __name__ == "__main__":
    main()
