"""Network faults against real node processes: a 2 | 2 partition, an equivocating signer
and hostile peers.

Every node is its own process (``python -m smartchain.cli.main node start --home HOME``)
on 127.0.0.1, in its own session; ``Cluster.close`` (run by the fixture whatever the test
did) SIGTERMs each session, then SIGKILLs what is left. The test learns everything through
the HTTP API, the node logs, its own sockets and, once a node is stopped, its block store.
Synchronisation is always by polling real state against a deadline.

* Partition: every link between the four signers runs through a ``faultproxy`` link in
  this process (one per directed pair; ``pex = false`` so nobody dials around it). The
  links between {0, 1} and {2, 3} are cut (connections reset), then healed; then the same
  again as a black hole (connections stall, their bytes arrive after the heal).
* Equivocation: one signer runs the test-only ``test_equivocate_every`` mode and
  double-signs prevotes; the evidence must reach a block, valid and naming it, and the
  offender is slashed, tombstoned and out of the signer set.
* Hostile peers: garbage, truncated frames, oversize length prefixes and a replayed
  handshake from raw sockets, and a flood from a real ``P2P`` client, against one signer
  of a running network; the node must stay up, keep committing, and ban the flooder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
from framework.faultproxy import ProxyNet
from framework.harness import wait_until

from smartchain import launcher
from smartchain.app import open_chain
from smartchain.client import Client
from smartchain.consensus.engine import EngineConfig
from smartchain.consensus.votes import make_evidence
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.node.bft import (
    TOPIC_TXS,
    TX_BATCH_MAX,
    ConsensusService,
    TxBatch,
)
from smartchain.node.blocksync import BlockRange
from smartchain.node.config import (
    DATA_DIR,
    TEST_FAULTS_ENV,
    ApiSettings,
    ConfigError,
    ConsensusSettings,
    FaultSettings,
    NodeConfig,
    P2PSettings,
)
from smartchain.node.home import init_home, make_genesis
from smartchain.node.node import Node
from smartchain.p2p import P2P, P2PConfig, P2PError, handshake
from smartchain.state.genesis import Genesis
from smartchain.state.params import Params
from smartchain.types.amount import UNITS_PER_HPC
from smartchain.types.consensus import Commit, CommitSig, Step, Vote
from smartchain.types.tx import Transaction

CHAIN_ID = "smart-faults-1"
BLOCK_TIME_MS = 150
TIMEOUT_PROPOSE_MS = 500
TIMEOUT_VOTE_MS = 200
START_TIMEOUT = 30.0
HEAL_TIMEOUT = 10.0  # the chain must resume within this after a partition heals
PORT_RANGE = (20_000, 32_000)  # P2P ports: below the ephemeral range (see _free_ports)

T = TypeVar("T")


# --- polling -------------------------------------------------------------------------------


async def async_wait_until(predicate: Callable[[], T], timeout: float, what: str,
                           interval: float = 0.02) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


# --- a network of node processes ----------------------------------------------------------

def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _free_ports(n: int) -> list[int]:
    """Free ports below the ephemeral range: no outgoing connection can take one of them
    between our check and the node binding it."""
    low, high = PORT_RANGE[0], min(PORT_RANGE[1], _ephemeral_low() - 1)
    out: list[int] = []
    while len(out) < n:
        port = random.randint(low, high)
        if port in out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        out.append(port)
    return out


@dataclass
class NodeProc:
    index: int
    home: Path
    key: PrivateKey
    config: NodeConfig
    env: dict[str, str] = field(default_factory=dict)
    launched: launcher.NodeProc | None = None
    url: str | None = None

    @property
    def pk(self) -> str:
        return self.key.public_key.hex()

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def launch(self) -> None:
        self.config.save(self.home)
        self.launched = launcher.launch(self.home, env=self.env)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        assert self.launched is not None
        try:
            self.url = self.launched.wait_ready(timeout)
        except launcher.LaunchError as exc:
            raise AssertionError(f"node{self.index}: {exc}") from None

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.launched.proc if self.launched is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout: float = 5.0) -> Client:
        assert self.url is not None
        return Client(self.url, timeout=timeout)

    def status(self) -> dict[str, Any]:
        return self.client().status()

    def height(self) -> int:
        return int(self.status()["height"])

    def block(self, height: int) -> dict[str, Any]:
        return self.client().block(height)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the node's session and wait; SIGKILL whatever is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.proc.pid, signal.SIGKILL)  # stragglers of the session, if any
        if self.proc.poll() is None:
            self.proc.wait(5)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # the node leads its own session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


class Cluster:
    """``n`` signers sharing one genesis (funding ``accounts``); ``tweak(i, config)`` and
    ``env(i)`` shape each node. Homes are written at construction (the config again at
    launch), ``start`` runs them."""

    def __init__(self, root: Path, n: int, *,
                 tweak: Callable[[int, NodeConfig], None] | None = None,
                 env: Callable[[int], dict[str, str]] | None = None,
                 accounts: list[tuple[bytes, int]] | None = None) -> None:
        self.keys = [PrivateKey.generate() for _ in range(n)]
        self.genesis: Genesis = make_genesis(
            CHAIN_ID, [(k.public_key, 1, f"node{i}") for i, k in enumerate(self.keys)],
            accounts, params=Params(block_time_ms=BLOCK_TIME_MS))
        self.ports = _free_ports(n)
        self.nodes: list[NodeProc] = []
        for i, key in enumerate(self.keys):
            engine = EngineConfig(timeout_propose_ms=TIMEOUT_PROPOSE_MS,
                                  timeout_prevote_ms=TIMEOUT_VOTE_MS,
                                  timeout_precommit_ms=TIMEOUT_VOTE_MS)
            cfg = NodeConfig(moniker=f"node{i}", api=ApiSettings(port=0),
                             p2p=P2PSettings(port=self.ports[i]),
                             consensus=ConsensusSettings(block_time_ms=BLOCK_TIME_MS,
                                                         engine=engine))
            if tweak is not None:
                tweak(i, cfg)
            home = root / f"node{i}"
            init_home(home, chain_id=CHAIN_ID, key=key, passphrase=None, insecure=True,
                      config=cfg, genesis=self.genesis)
            self.nodes.append(NodeProc(i, home, key, cfg, env(i) if env else {}))
        for node in self.nodes:  # everyone seeds everyone (a test may rewrite this)
            node.config.p2p.seeds = [self.address(j) for j in range(n) if j != node.index]

    @property
    def network_id(self) -> str:
        return self.genesis.hash().hex()

    def address(self, i: int, port: int | None = None) -> str:
        return f"{self.keys[i].public_key.hex()}@127.0.0.1:{port or self.ports[i]}"

    def start(self) -> None:
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready()

    def close(self) -> None:
        for node in self.nodes:  # SIGTERM all first: they shut down in parallel
            if node.proc is not None and node.proc.poll() is None:
                _signal_group(node.proc.pid, signal.SIGTERM)
        for node in self.nodes:
            node.stop()

    def heights(self, nodes: Iterable[int] | None = None) -> dict[int, int]:
        return {i: self.nodes[i].height() for i in (nodes if nodes is not None
                                                    else range(len(self.nodes)))}

    def wait_all(self, height: int, timeout: float, nodes: Iterable[int] | None = None
                 ) -> dict[int, int]:
        idx = list(nodes) if nodes is not None else list(range(len(self.nodes)))

        def reached() -> dict[int, int] | None:
            hs = self.heights(idx)
            return hs if min(hs.values()) >= height else None

        return wait_until(reached, timeout, what=f"nodes {idx} at height {height}",
                          interval=0.05)

    def assert_same_chain(self, upto: int) -> dict[int, str]:
        """Every node holds the same block at every height 1..upto; returns the hashes."""
        hashes: dict[int, str] = {}
        for h in range(1, upto + 1):
            seen = {node.index: node.block(h)["hash"] for node in self.nodes}
            assert len(set(seen.values())) == 1, f"fork at height {h}: {seen}"
            hashes[h] = seen[0]
        return hashes

    def assert_no_tracebacks(self) -> None:
        for node in self.nodes:
            text = node.log_text()
            assert "Traceback" not in text, f"node{node.index} logged a traceback:\n" + \
                text[text.index("Traceback") - 400:][:4000]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(n: int = 4, **kwargs: Any) -> Cluster:
        c = Cluster(tmp_path / f"net{len(made)}", n, **kwargs)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in made:
            c.close()


class ForkWatch:
    """Everything the test saw each node hold: (height -> block hash) per node. A second
    hash at a height anywhere is a fork."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.seen: dict[int, dict[int, str]] = {}  # height -> node -> hash

    def sample(self) -> dict[int, int]:
        heights: dict[int, int] = {}
        for node in self.cluster.nodes:
            st = node.status()
            h = int(st["height"])
            heights[node.index] = h
            if h:
                self.seen.setdefault(h, {})[node.index] = st["latest_hash"]
                assert len(set(self.seen[h].values())) == 1, \
                    f"two blocks at height {h}: {self.seen[h]}"
        return heights

    def observe(self, seconds: float, interval: float = 0.1) -> list[tuple[float, dict[int, int]]]:
        """Sample for ``seconds``: a measurement window, not a synchronisation point."""
        out: list[tuple[float, dict[int, int]]] = []
        start = time.monotonic()
        while (now := time.monotonic()) - start < seconds:
            out.append((now - start, self.sample()))
            time.sleep(interval)
        return out


# --- 0. the test-only settings are gated -----------------------------------------------------

def test_fault_settings_are_gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = NodeConfig(p2p=P2PSettings(transport=P2PConfig(pex=False)),
                     faults=FaultSettings(equivocate_every=2))
    cfg.save(tmp_path)
    monkeypatch.delenv(TEST_FAULTS_ENV, raising=False)
    with pytest.raises(ConfigError, match="tests only"):
        NodeConfig.load(tmp_path)
    monkeypatch.setenv(TEST_FAULTS_ENV, "1")
    loaded = NodeConfig.load(tmp_path)
    assert loaded.faults.equivocate_every == 2 and loaded.p2p.transport.pex is False
    # An ordinary config file does not even mention the fault settings.
    assert "[faults]" not in NodeConfig().to_toml()
    (tmp_path / "config.toml").write_text('[p2p]\npex = "no"\n')
    with pytest.raises(ConfigError, match="pex must be bool"):
        NodeConfig.load(tmp_path)


def test_pex_off_means_seeds_only() -> None:
    """What the partition test relies on: without peer exchange a node connects to its
    seeds and to nobody it could learn of. Two spokes of a hub find each other through it
    when peer exchange is on (the control), and never when it is off."""

    async def spokes_meet(pex: bool, window: float) -> bool:
        cfg = P2PConfig(pex=pex, pex_interval=0.05)
        hub = P2P(PrivateKey.generate(), "pex-test", config=cfg)
        await hub.start()
        spokes = [P2P(PrivateKey.generate(), "pex-test", seeds=[hub.address], config=cfg)
                  for _ in range(2)]
        try:
            for s in spokes:
                await s.start()
            a, b = spokes
            await async_wait_until(lambda: len(hub.connected_peers()) == 2, 5, "both spokes")
            deadline = time.monotonic() + window
            while time.monotonic() < deadline:  # a measurement window
                if b.peer_id in a.connected_peers():
                    return True
                await asyncio.sleep(0.02)
            assert all(s.stats["pex_dials"] == 0 for s in spokes)
            assert b.address not in a.known_addresses()
            return False
        finally:
            for p in (*spokes, hub):
                await p.stop()

    assert asyncio.run(spokes_meet(True, 5.0)), "control: peer exchange links the spokes"
    assert not asyncio.run(spokes_meet(False, 1.0))


# --- 1. partition 2 | 2 -------------------------------------------------------------------

def _link(i: int, j: int) -> str:
    return f"{i}->{j}"


def _bypassing_links(ports: list[int]) -> list[str]:
    """Established TCP connections into a node's P2P port whose other end is not a
    socket of this process (the proxy): links that go around the fault injection.
    Linux only (``/proc/net/tcp``); an empty list elsewhere."""
    try:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    except OSError:
        return []
    ours: set[str] = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            ours.add(target[8:-1])
    established = [(int(r[1].split(":")[1], 16), int(r[2].split(":")[1], 16), r[9])
                   for r in rows if r[3] == "01"]  # (local port, remote port, inode)
    inode_at = {(lp, rp): inode for lp, rp, inode in established}
    bad = []
    for lp, rp, _ in established:
        if lp in ports:  # accepted by a node: who dialled?
            dialer = inode_at.get((rp, lp))
            if dialer is not None and dialer not in ours:
                bad.append(f"127.0.0.1:{rp} -> node port {lp}")
    return bad


def _check_partition(windows: list[tuple[float, dict[int, int]]], grace: float,
                     sides: list[list[int]]) -> int:
    """After ``grace`` seconds no side commits a new block (a lagging node may still catch
    up with its own side's head). Returns the highest height seen."""
    frozen = [(t, hs) for t, hs in windows if t >= grace]
    assert len(frozen) >= 10, f"too few samples in the partition window: {len(frozen)}"
    for side in sides:
        heads = {max(hs[i] for i in side) for _, hs in frozen}
        assert len(heads) == 1, f"side {side} committed during the partition: {sorted(heads)}"
    return max(max(hs.values()) for _, hs in windows)


def test_partition_2_2_and_heal(cluster: Callable[..., Cluster]) -> None:
    sides = [[0, 1], [2, 3]]
    cross = [_link(i, j) for a, b in (sides, sides[::-1]) for i in a for j in b]
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    cross_pairs = [(i, j) for i, j in pairs if (i in sides[0]) != (j in sides[0])]
    with ProxyNet() as proxies:

        def tweak(i: int, cfg: NodeConfig) -> None:
            # nobody may learn a real address and dial around the proxy
            cfg.p2p.transport = replace(cfg.p2p.transport, pex=False)

        net = cluster(4, tweak=tweak)
        for node in net.nodes:  # node i reaches node j only through link "i->j"
            node.config.p2p.seeds = [
                f"{net.nodes[j].pk}@127.0.0.1:"
                f"{proxies.add(_link(node.index, j), ('127.0.0.1', net.ports[j]))}"
                for j in range(4) if j != node.index]

        def through_links(i: int, j: int) -> int:
            links = proxies.links
            return links[_link(i, j)].forwarded + links[_link(j, i)].forwarded

        net.start()
        watch = ForkWatch(net)
        net.wait_all(3, 30)
        assert all(through_links(i, j) for i, j in pairs), "every pair is linked by a proxy"
        assert _bypassing_links(net.ports) == []

        for reset in (True, False):
            mode = "reset" if reset else "black hole"
            watch.sample()
            used = {pair: through_links(*pair) for pair in cross_pairs}
            proxies.cut(cross, reset=reset)
            windows = watch.observe(5.0)
            frozen_head = _check_partition(windows, 1.0, sides)
            healed_at = time.monotonic()
            proxies.heal(cross)
            wait_until(lambda h=frozen_head: max(watch.sample().values()) > h, HEAL_TIMEOUT,
                       what=f"a new block after healing the {mode} partition")
            resumed = time.monotonic() - healed_at
            print(f"{mode}: frozen at {frozen_head}, resumed {resumed:.1f}s after healing")
            net.wait_all(frozen_head + 2, HEAL_TIMEOUT)
            if reset:  # the pairs reconnected, and through their links (not around them)
                wait_until(lambda u=used: all(through_links(*p) > u[p] for p in cross_pairs),
                           HEAL_TIMEOUT, what="every cut pair to reconnect through its link")
            else:  # the black hole only delayed bytes: the connections survived it
                assert all(through_links(*p) == used[p] for p in cross_pairs)

        assert _bypassing_links(net.ports) == []
        final = min(watch.sample().values())
        net.assert_same_chain(final)
        for h, hashes in watch.seen.items():
            assert len(set(hashes.values())) == 1, f"fork at {h}: {hashes}"
    net.assert_no_tracebacks()


# --- 2. an equivocating signer ------------------------------------------------------------

EQUIVOCATOR = 3


def test_equivocating_signer_is_reported_slashed_and_out_of_the_set(
        cluster: Callable[..., Cluster]) -> None:
    """The evidence reaches a block; the staking module slashes the offender 5 %,
    tombstones it, and the set without it signs from two heights after that block."""
    def tweak(i: int, cfg: NodeConfig) -> None:
        if i == EQUIVOCATOR:
            cfg.faults = FaultSettings(equivocate_every=2)

    net = cluster(4, tweak=tweak,
                  env=lambda i: {TEST_FAULTS_ENV: "1"} if i == EQUIVOCATOR else {})
    net.start()
    bad = net.keys[EQUIVOCATOR].public_key.hex()
    node0 = net.nodes[0]
    scanned = 0
    found: list[tuple[int, dict[str, Any]]] = []

    def evidence_in_a_block() -> bool:
        nonlocal scanned
        top = node0.height()
        for h in range(scanned + 1, top + 1):
            found.extend((h, ev) for ev in node0.block(h)["evidence"])
        scanned = top
        return bool(found)

    wait_until(evidence_in_a_block, 30, what="double-sign evidence in a block", interval=0.1)
    ev_height, ev = found[0]
    assert ev["validator"] == bad
    assert ev["step"] == int(Step.PREVOTE) and ev["height"] % 2 == 0
    assert ev["height"] < ev_height
    assert ev["block_hashes"][0] != ev["block_hashes"][1]
    # Punished: 5 % of its stake (1 HPC) to the community pool, tombstoned, and out of
    # the signer set from two heights after the block that recorded the evidence.
    client = node0.client()
    row = next(v for v in client.validators()["validators"] if v["pubkey"] == bad)
    assert row["status"] == "tombstoned" and row["tier"] == "ordinary"
    assert int(row["stake"]) == UNITS_PER_HPC * 95 // 100
    assert client.community_pool() == UNITS_PER_HPC * 5 // 100
    in_set = {h: bad in [v["pubkey"] for v in client.signers(h)["validators"]]
              for h in (ev_height, ev_height + 1, ev_height + 2)}
    assert in_set == {ev_height: True, ev_height + 1: True, ev_height + 2: False}
    # The chain keeps going without it, and everyone agrees.
    net.wait_all(ev_height + 6, 20)
    top = min(net.heights().values())
    signers = {h: [v["pubkey"] for v in client.signers(h)["validators"]]
               for h in range(ev_height + 2, top)}
    for h in range(ev_height + 2, top):
        commit = node0.block(h + 1)["last_commit"]
        assert bad not in [signers[h][s["validator_index"]] for s in commit["signatures"]]
    hashes = net.assert_same_chain(top)
    for node in net.nodes:
        assert node.block(ev_height)["evidence"] == node0.block(ev_height)["evidence"]
    assert "TEST FAULT: double-signing" in net.nodes[EQUIVOCATOR].log_text()
    assert any(f"double-sign evidence against {bad[:16]}" in n.log_text()
               for n in net.nodes if n.index != EQUIVOCATOR)
    net.assert_no_tracebacks()

    # The block itself, from node 0's store: the evidence's two votes are signed by the
    # equivocator, valid and conflicting, and no equivocation is reported twice.
    node0.stop()
    chain = open_chain(node0.home / DATA_DIR, net.genesis)
    try:
        block = chain.get_block(ev_height)
        assert block is not None and block.hash().hex() == hashes[ev_height]
        assert block.evidence, "the API showed evidence the block does not carry"
        for e in block.evidence:
            assert e.is_valid(CHAIN_ID)
            a, b = e.vote_a, e.vote_b
            assert a.validator == b.validator == net.keys[EQUIVOCATOR].public_key
            assert (a.height, a.round, a.step) == (b.height, b.round, b.step)
            assert a.block_hash != b.block_hash
        reported: list[tuple[bytes, int, int, int]] = []
        for h in range(1, chain.height + 1):
            blk = chain.get_block(h)
            assert blk is not None
            reported += [(e.vote_a.validator, e.vote_a.height, e.vote_a.round, e.vote_a.step)
                         for e in blk.evidence]
        assert len(reported) == len(set(reported)), f"evidence included twice: {reported}"
        assert {r[0] for r in reported} == {net.keys[EQUIVOCATOR].public_key}
    finally:
        chain.close()


def test_evidence_in_a_synced_block_is_not_proposed_again(tmp_path: Path) -> None:
    """Regression: a node that saw an equivocation itself but then *synced* the block
    carrying its evidence (instead of deciding it in consensus) kept the evidence and
    would have put it in a second block when proposing. In-process: the sync path only."""
    keys = [PrivateKey.generate() for _ in range(4)]
    genesis = make_genesis(CHAIN_ID, [(k.public_key, 1, f"v{i}") for i, k in enumerate(keys)],
                           params=Params(block_time_ms=BLOCK_TIME_MS))

    def vote(key: PrivateKey, step: Step, block_hash: bytes) -> Vote:
        return Vote(CHAIN_ID, 1, 0, int(step), block_hash, key.public_key,
                    bytes(64)).signed_by(key)

    ev = make_evidence(vote(keys[3], Step.PREVOTE, b"\x01" * 32),
                       vote(keys[3], Step.PREVOTE, b"\x02" * 32))
    maker = open_chain(tmp_path / "maker", genesis)
    init_home(tmp_path / "node", chain_id=CHAIN_ID, key=keys[1], passphrase=None,
              insecure=True, genesis=genesis)
    node = Node(tmp_path / "node", keys[1])
    try:
        block = maker.stage_proposal([], genesis.time_ms + 1, keys[0], evidence=(ev,)).block
        service = ConsensusService(node, P2P(keys[1], genesis.hash().hex()), None)
        valset = service.app.validators_at(1)
        sigs = sorted((valset.index_of(k.public_key),
                       vote(k, Step.PRECOMMIT, block.hash()).signature) for k in keys[:3])
        commit = Commit(1, 0, block.hash(), tuple(CommitSig(i, sig) for i, sig in sigs))
        service.app.evidence[h256(ev.encode())] = ev  # as if its engine had reported it
        synced = BlockRange((block.encode(),), (commit.encode(),))
        checked = service._verify_range(synced, 1)  # the sync checker's part
        staged, why = service._commit_range(checked)  # the builder's part
        assert why is None and len(staged) == 1
        service._after_commit(staged[0], 0.0)  # the event loop's part
        assert node.chain.height == 1 and node.chain.get_block(1).evidence == (ev,)
        assert service.app.evidence == {}, "evidence already in a block would be re-proposed"
    finally:
        node.close()
        maker.close()


# --- 3. hostile peers ---------------------------------------------------------------------

RATE_FRAMES = 2_000  # the target's inbound limit per peer: far above consensus traffic
BURST_FRAMES = 4_000
FRAME_LEN = struct.Struct(">I")


async def _closed_by_peer(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Read until the node hangs up; returns what it sent. Fails if it never does."""
    got = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while chunk := await reader.read(65536):
                got += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    except TimeoutError:
        raise AssertionError(f"the node kept the connection open for {timeout}s "
                             f"(it sent {len(got)} bytes)") from None
    return bytes(got)


def _frames(data: bytes) -> list[bytes]:
    out: list[bytes] = []
    while len(data) >= 4:
        (n,) = FRAME_LEN.unpack(data[:4])
        if len(data) < 4 + n:
            break
        out.append(data[4:4 + n])
        data = data[4 + n:]
    return out


async def _raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _probe(port: int, data: bytes, *, eof: bool = False, timeout: float = 3.0) -> bytes:
    """Send ``data`` on a fresh socket (then maybe EOF); what the node sent before it hung up."""
    r, w = await _raw(port)
    try:
        w.write(data)
        if eof:
            w.write_eof()
        return await _closed_by_peer(r, timeout)
    finally:
        w.close()


async def _pre_handshake_attacks(port: int) -> dict[str, bytes]:
    """Raw sockets that never complete a handshake; each must be hung up on."""
    half_frame = FRAME_LEN.pack(200) + os.urandom(20)
    probes = {
        "garbage": _probe(port, b"\x7f" + os.urandom(511)),  # a huge length prefix
        "garbage_hello": _probe(port, FRAME_LEN.pack(80) + os.urandom(80)),  # not a Hello
        "oversize": _probe(port, b"\xff\xff\xff\xff" + os.urandom(64)),
        "truncated_then_eof": _probe(port, half_frame, eof=True),
        # silent in mid-frame: the handshake timeout (5 s) must free the slot
        "truncated_then_silent": _probe(port, half_frame, timeout=8.0),
    }
    results = await asyncio.gather(*probes.values())
    return dict(zip(probes, results, strict=True))


async def _post_handshake_attacks(port: int, network_id: str, node_pk: bytes
                                  ) -> dict[str, bytes]:
    """A real handshake with a fresh identity each, then a broken frame."""

    async def attack(payload: bytes, eof: bool) -> bytes:
        r, w = await _raw(port)
        me = PrivateKey.generate()
        try:
            await handshake.initiate(r, w, me, network_id, expected_peer=node_pk)
            w.write(payload)
            if eof:
                w.write_eof()
            await _closed_by_peer(r, 5)
        finally:
            w.close()
        return me.public_key

    oversize = await attack(b"\xff\xff\xff\xf0" + os.urandom(32), False)
    corrupt = await attack(FRAME_LEN.pack(64) + os.urandom(64), False)
    truncated = await attack(FRAME_LEN.pack(1000) + os.urandom(10), True)
    return {"oversize": oversize, "corrupt": corrupt, "truncated": truncated}


async def _replayed_handshake(proxies: ProxyNet, net: Cluster, target: int) -> None:
    """Record a real client's connection through a recording link, then replay what it
    sent on a fresh socket straight to the node."""
    port = proxies.add("recorder", ("127.0.0.1", net.ports[target]), record=True)
    client = P2P(PrivateKey.generate(), net.network_id, port=0, config=P2PConfig(pex=False))
    await client.start()
    try:
        peer = await client.connect(net.address(target, port))
        # Wait until the node has sent us something after the handshake (consensus
        # gossip or its peer list), so the recording holds a complete session start.
        await async_wait_until(lambda: client.stats["frames_in"] > 0, 10,
                               "a frame from the node on the legit connection")
        assert peer in client.connected_peers()
    finally:
        await client.stop()
    link = proxies.links["recorder"]
    await async_wait_until(lambda: link.connections and len(_frames(
        bytes(link.connections[0].up))) >= 2, 5, "the recorded handshake")
    sent = bytes(link.connections[0].up)
    hello_i = FRAME_LEN.pack(len(_frames(sent)[0])) + _frames(sent)[0]
    assert sent.startswith(hello_i)

    # 1. Hello_I replayed alone: the node answers it (Hello_R and Auth_R are public
    #    anyway), then the rest of the recorded stream: it rejects the recorded Auth_I,
    #    hangs up, and never sends a single frame of a session.
    r, w = await _raw(net.ports[target])
    w.write(hello_i)
    async with asyncio.timeout(5):
        for _ in range(2):
            (n,) = FRAME_LEN.unpack(await r.readexactly(4))
            await r.readexactly(n)
    w.write(sent[len(hello_i):])
    rest = await _closed_by_peer(r, 5)
    assert rest == b"", f"the node sent {len(rest)} more bytes to a replayed handshake"
    w.close()

    # 2. The whole recorded stream at once: same outcome.
    r, w = await _raw(net.ports[target])
    w.write(sent)
    answer = await _closed_by_peer(r, 5)
    assert len(_frames(answer)) == 2
    w.close()


async def _flood(net: Cluster, target: int) -> tuple[bytes, int, float]:
    """A real client that floods gossip and requests until the node cuts it off.
    Returns (its id, frames sent, seconds until disconnected)."""
    me = PrivateKey.generate()
    # pex off: it must flood the target only (with peer exchange it would learn and dial
    # the other validators from the target's peer list, and flood them as well).
    client = P2P(me, net.network_id, port=0,
                 config=P2PConfig(pex=False, normal_queue_size=100_000, send_timeout=30.0))
    await client.start()
    try:
        peer = await client.connect(net.address(target))
        sent = 0
        requests: set[asyncio.Task[None]] = set()
        started = time.monotonic()
        stop = time.monotonic() + 15
        while peer in client.connected_peers() and time.monotonic() < stop:
            for _ in range(200):
                await client.publish("flood/spam", os.urandom(16) + sent.to_bytes(8, "big"))
                sent += 1
            for _ in range(20):
                task = asyncio.ensure_future(_quiet(client.request(peer, "sync/status", b"", 5)))
                requests.add(task)
                task.add_done_callback(requests.discard)
                sent += 1
            await asyncio.sleep(0)
        elapsed = time.monotonic() - started
        assert peer not in client.connected_peers(), \
            f"the flooder is still connected after {sent} frames in {elapsed:.1f}s"
        assert client.stats["connections"] == 1, "the flooder talked to the target only"
        # Banned: a new connection is dropped right after the handshake.
        with_retry = await client.connect(net.address(target))
        assert with_retry == peer
        await async_wait_until(lambda: peer not in client.connected_peers(), 5,
                               "the banned flooder's new connection to be dropped")
        return me.public_key, sent, elapsed
    finally:
        await client.stop()


async def _quiet(coro: Any) -> None:
    try:
        await coro
    except Exception:
        pass


def test_hostile_peers(cluster: Callable[..., Cluster]) -> None:
    target = 0

    def tweak(i: int, cfg: NodeConfig) -> None:
        cfg.p2p.transport = replace(cfg.p2p.transport, rate_frames=RATE_FRAMES,
                                    burst_frames=BURST_FRAMES)

    net = cluster(4, tweak=tweak)
    net.start()
    net.wait_all(2, 30)
    node = net.nodes[target]
    port = net.ports[target]
    before = node.height()

    async def attacks() -> tuple[dict[str, bytes], dict[str, bytes], tuple[bytes, int, float]]:
        pre = await _pre_handshake_attacks(port)
        post = await _post_handshake_attacks(port, net.network_id, net.keys[target].public_key)
        with ProxyNet() as proxies:
            await _replayed_handshake(proxies, net, target)
        flood = await _flood(net, target)
        return pre, post, flood

    pre, post, (flooder, sent, took) = asyncio.run(attacks())
    print(f"flood: {sent} frames, cut off after {took:.2f}s")

    # Hung up on before any handshake: at most the node's own Hello came back.
    for name, answer in pre.items():
        assert len(_frames(answer)) <= 1, f"{name}: the node sent {answer[:80]!r}"

    # Still up, still committing, API answering, the rest of the network in agreement.
    assert node.running
    net.wait_all(before + 5, 20)
    assert node.status()["chain_id"] == CHAIN_ID
    net.assert_same_chain(min(net.heights().values()))

    log = wait_until(lambda: (t := node.log_text()) and f"banned peer {flooder.hex()[:16]}"
                     in t and t, 5, what="the flooder's ban in the log")
    ban_line = next(line for line in log.splitlines()
                    if f"banned peer {flooder.hex()[:16]}" in line)
    assert "inbound rate limit exceeded" in ban_line
    for name in ("oversize", "corrupt"):  # a broken frame after a handshake costs a ban
        assert f"banned peer {post[name].hex()[:16]}" in log, f"{name} attacker not banned"
    assert f"peer {post['truncated'].hex()[:16]} penalised" in log
    # Honest validators were never punished, by the target or by anyone else; and the
    # attacks reached the target only.
    assert not any(f"banned peer {o.pk[:16]}" in log for o in net.nodes)
    for other in net.nodes:
        if other.index != target:
            bans = [ln for ln in other.log_text().splitlines() if "banned peer" in ln]
            assert not bans, f"node{other.index} banned someone: {bans}"
    net.assert_no_tracebacks()


# --- 4. a peer gossiping invalid transactions (red-team finding 14) -----------------------


def _rejected(url: str, code: str) -> int:
    """The node's count of transactions refused with ``code`` (its /metrics)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    needle = f'smart_txs_rejected_total{{code="{code}"}} '
    line = next((ln for ln in text.splitlines() if ln.startswith(needle)), None)
    return 0 if line is None else int(float(line[len(needle):]))


def _node_with_budget(smart_node_factory: Callable[..., Any],
                      accounts: list[tuple[bytes, int]], rate: int, share: int) -> Any:
    """A started single-validator node whose unproven peers get ``rate`` signature checks
    per second together and ``share`` each."""
    node = smart_node_factory(start=False, accounts=accounts, chain_id=CHAIN_ID)
    node.config.p2p.unproven_sig_checks = rate
    node.config.p2p.unproven_peer_sig_checks = share
    node.config.save(node.home)
    node.start()
    return node


def test_peer_gossiping_bad_signatures_is_banned_and_its_flood_stops_costing(
        smart_node_factory: Callable[..., Any]) -> None:
    sender = PrivateKey.generate()
    # This peer's share of signature checks covers a whole batch here: what is shown is
    # the penalty per invalid transaction (the check budget has tests of its own below).
    node = _node_with_budget(smart_node_factory, [(sender.address, 10**12)],
                             TX_BATCH_MAX, TX_BATCH_MAX)
    url = node.url
    address = json.loads(node.runtime_path.read_text())["p2p_address"]
    me, other = PrivateKey.generate(), PrivateKey.generate()
    tag, other_tag = me.public_key.hex()[:16], other.public_key.hex()[:16]

    def tx(nonce: int, *, forge: bool = False) -> bytes:
        raw = Transaction.create(sender, chain_id=CHAIN_ID, nonce=nonce, kind="bank/transfer",
                                 payload=Transfer(me.address, 1).encode(), gas_limit=20_000,
                                 gas_price=1).encode()
        return raw[:-1] + bytes([raw[-1] ^ 1]) if forge else raw

    async def scenario() -> None:
        client = P2P(me, node.genesis.hash().hex(), port=0, config=P2PConfig(pex=False))
        await client.start()
        try:
            peer = await client.connect(address)
            # Honest races first: a batch, then the same transactions again with one more.
            await client.publish(TOPIC_TXS, TxBatch(tuple(tx(n) for n in range(5))).encode())
            await client.publish(TOPIC_TXS, TxBatch(tuple(tx(n) for n in range(6))).encode())
            await async_wait_until(lambda: _rejected(url, "duplicate") == 5, 10,
                                   "the duplicates to be refused")
            assert peer in client.connected_peers()
            # A batch larger than any node sends is refused unchecked (another peer).
            big = P2P(other, node.genesis.hash().hex(), port=0, config=P2PConfig(pex=False))
            await big.start()
            try:
                await big.connect(address)
                oversize = tuple(tx(100_000 + i, forge=True) for i in range(TX_BATCH_MAX + 1))
                await big.publish(TOPIC_TXS, TxBatch(oversize).encode())
                await async_wait_until(lambda: f"peer {other_tag} penalised" in
                                       node.log_path.read_text(), 10, "the oversize batch")
            finally:
                await big.stop()
            # Then a flood of forged signatures: 20 batches of 500.
            for b in range(20):
                forged = tuple(tx(1_000 + 500 * b + i, forge=True) for i in range(500))
                await client.publish(TOPIC_TXS, TxBatch(forged).encode())
            await async_wait_until(lambda: peer not in client.connected_peers(), 15,
                                   "the node to disconnect the forger")
            # Banned: a new connection is dropped right after the handshake, and whatever
            # it sends meanwhile is never verified.
            await client.connect(address)
            for b in range(5):
                forged = tuple(tx(50_000 + 500 * b + i, forge=True) for i in range(500))
                await client.publish(TOPIC_TXS, TxBatch(forged).encode())
            await async_wait_until(lambda: peer not in client.connected_peers(), 5,
                                   "the banned forger's new connection to be dropped")
        finally:
            await client.stop()

    asyncio.run(scenario())
    # The first forged batch was checked, and then nothing from this peer any more (nor
    # the oversize batch).
    assert _rejected(url, "bad_signature") == 500
    log = node.log_path.read_text()
    blamed = [ln for ln in log.splitlines() if f"peer {tag} penalised" in ln]
    assert blamed and all("invalid transactions (bad_signature)" in ln for ln in blamed)
    assert f"banned peer {tag}" in log
    # Still serving: the honest transfers commit, and the node is still making blocks.
    assert node.client.wait_tx(h256(tx(5)).hex(), timeout=20)["receipt"]["ok"]
    assert node.running and node.log_errors() == []


def test_node_applies_its_p2p_inbound_limits_from_config(
        smart_node_factory: Callable[..., Any]) -> None:
    """The slot settings reach the node's transport: with the per-IP limit applied to
    loopback, a third silent connection from 127.0.0.1 is closed before any handshake."""
    node = smart_node_factory(start=False, chain_id=CHAIN_ID)
    node.config.p2p.transport = replace(node.config.p2p.transport, limit_loopback=True,
                                        max_inbound_per_ip=2)
    node.config.save(node.home)
    node.start()
    port = int(json.loads(node.runtime_path.read_text())["p2p_address"].rsplit(":", 1)[1])

    async def third_is_refused() -> bytes:
        held = [await _raw(port) for _ in range(2)]
        try:
            r, w = await _raw(port)
            try:
                return await _closed_by_peer(r, 3)  # fails if the node keeps it open
            finally:
                w.close()
        finally:
            for _, hw in held:
                hw.close()

    assert asyncio.run(third_is_refused()) == b""
    assert node.running and node.log_errors() == []


# --- 5. the check budget for unproven peers (red-team finding 14, attackers with many IPs) --

BUDGET_RATE = 300  # signature checks per second for all unproven peers together...
BUDGET_SHARE = 50  # ...and for each one
FLOOD_SECONDS = 4.0
# Between one attacker's batches: still far beyond any budget, and it leaves this 2-core
# machine's CPU to the node rather than to encrypting and decrypting the flood.
FLOOD_PAUSE = 0.02


def _metric(url: str, name: str) -> int:
    """An unlabelled metric from the node's /metrics (0 before a counter's first
    increment)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    needle = f"{name} "
    line = next((ln for ln in text.splitlines() if ln.startswith(needle)), None)
    return 0 if line is None else int(float(line[len(needle):]))


def _transfer(key: PrivateKey, nonce: int, *, forge: bool = False) -> bytes:
    raw = Transaction.create(key, chain_id=CHAIN_ID, nonce=nonce, kind="bank/transfer",
                             payload=Transfer(bytes(20), 1).encode(), gas_limit=20_000,
                             gas_price=1).encode()
    return raw[:-1] + bytes([raw[-1] ^ 1]) if forge else raw


async def _send_until_cut_off(client: P2P, peer: bytes, batches: list[bytes],
                              deadline: float) -> int:
    """Send ``batches`` round and round as direct messages (never de-duplicated), one
    every ``FLOOD_PAUSE`` at most, until the node hangs up or ``deadline``; a few at most
    queued ahead of the socket. Returns the batches written."""
    queued = i = 0
    with contextlib.suppress(P2PError):  # PeerNotConnected: cut off
        while peer in client.connected_peers() and time.monotonic() < deadline:
            if queued - client.stats["frames_out"] < 4:
                await client.send(peer, TOPIC_TXS, batches[i % len(batches)])
                queued += 1
                i += 1
            await asyncio.sleep(FLOOD_PAUSE)
    return min(queued, client.stats["frames_out"])


async def _fresh_identities(address: str, network_id: str, batches: list[bytes],
                            deadline: float) -> tuple[int, int]:
    """A new identity each time the node hangs up, flooding ``batches``. Returns
    (identities, batches written)."""
    identities = written = 0
    while time.monotonic() < deadline:
        client = P2P(PrivateKey.generate(), network_id, port=0, config=P2PConfig(pex=False))
        await client.start()
        identities += 1
        try:
            peer = await client.connect(address)
            written += await _send_until_cut_off(client, peer, batches, deadline)
        except P2PError:
            pass  # refused or dropped at once: next identity
        finally:
            await client.stop()
    return identities, written


def test_a_flood_from_many_fresh_identities_checks_at_most_the_budget_while_transfers_commit(
        smart_node_factory: Callable[..., Any]) -> None:
    """Attackers with an address per identity (loopback is exempt from the IP limits): six
    at a time, each replaced by a fresh one when banned, gossip forged transfers. The node
    checks at most the budget's worth of signatures per second, penalises exactly what it
    checked, and a batch of twice the budget sent to its API goes in whole and commits."""
    sender, forger = PrivateKey.generate(), PrivateKey.generate()
    node = _node_with_budget(smart_node_factory, [(sender.address, 10**12)],
                             BUDGET_RATE, BUDGET_SHARE)
    url, address = node.url, json.loads(node.runtime_path.read_text())["p2p_address"]
    batches = [TxBatch(tuple(_transfer(forger, 500 * b + i, forge=True) for i in range(500)
                             )).encode() for b in range(4)]
    honest = [_transfer(sender, n) for n in range(2 * BUDGET_RATE)]
    # The first half before the flood: the node starts its verifier processes on the
    # first big batch, and every later batch enters the mempool after it.
    accepted = node.client.submit_batch(honest[:BUDGET_RATE])

    async def scenario() -> tuple[list[tuple[int, int]], list[dict[str, Any]]]:
        deadline = time.monotonic() + FLOOD_SECONDS
        lanes = [_fresh_identities(address, node.genesis.hash().hex(), batches, deadline)
                 for _ in range(6)]
        *floods, during = await asyncio.gather(
            *lanes, asyncio.to_thread(node.client.submit_batch, honest[BUDGET_RATE:]))
        return floods, during

    def penalised() -> int:
        log = node.log_path.read_text()
        return sum(int(m) for m in re.findall(r"penalised \d+ \((\d+) invalid transactions",
                                              log))

    def settled() -> int | None:
        """The checks, once every check granted has been verified and blamed: what the
        node penalised is exactly what it checked, nothing it dropped unchecked."""
        checked = _metric(url, "smart_gossip_unproven_checks_total")
        ok = checked == _rejected(url, "bad_signature") == penalised()
        return checked if ok else None

    t0 = time.monotonic()
    floods, during = asyncio.run(scenario())
    accepted += during
    checked = wait_until(settled, 10, what="checked forgeries to be rejected and penalised")
    elapsed = time.monotonic() - t0
    identities = sum(n for n, _ in floods)
    written = sum(b for _, b in floods) * 500
    dropped = _metric(url, "smart_gossip_txs_unchecked_total")
    print(f"{identities} identities wrote {written} forged transactions in {elapsed:.1f}s; "
          f"the node checked {checked}, dropped {dropped} unchecked")

    # The bucket holds a second's worth at most, then refills at BUDGET_RATE.
    assert 0 < checked <= BUDGET_RATE * (1 + elapsed)
    assert dropped > checked and identities > 12, "the flood did not outrun the budget"
    # Our own API is outside the budget: twice its worth admitted in two batches (one of
    # them during the flood), and committed.
    assert all("hash" in r for r in accepted), [r for r in accepted if "hash" not in r][:3]
    assert node.client.wait_tx(accepted[-1]["hash"], timeout=30)["receipt"]["ok"]
    assert node.running and node.log_errors() == []


def test_one_peer_flooding_unadmittable_transactions_gets_its_share_and_a_newcomer_gets_in(
        smart_node_factory: Callable[..., Any]) -> None:
    """Validly signed transactions that cannot enter the mempool (nonces skipping ahead)
    are no offence, so the flooder is never banned: its share alone bounds what it costs,
    and a peer that connects during its flood still gets its transfers in."""
    sender, broke = PrivateKey.generate(), PrivateKey.generate()
    node = _node_with_budget(smart_node_factory, [(sender.address, 10**12)],
                             BUDGET_RATE, BUDGET_SHARE)
    url, address = node.url, json.loads(node.runtime_path.read_text())["p2p_address"]
    network_id = node.genesis.hash().hex()
    batches = [TxBatch(tuple(_transfer(broke, 1 + 200 * b + i) for i in range(200))).encode()
               for b in range(4)]
    flooder_key, newcomer_key = PrivateKey.generate(), PrivateKey.generate()
    mine = [_transfer(sender, n) for n in range(5)]

    async def scenario() -> tuple[int, float, bool]:
        flooder = P2P(flooder_key, network_id, port=0, config=P2PConfig(pex=False))
        newcomer = P2P(newcomer_key, network_id, port=0, config=P2PConfig(pex=False))
        await flooder.start()
        await newcomer.start()
        try:
            peer = await flooder.connect(address)
            t0 = time.monotonic()
            flood = asyncio.ensure_future(_send_until_cut_off(
                flooder, peer, batches, t0 + FLOOD_SECONDS))
            await async_wait_until(lambda: _rejected(url, "nonce_skipped") > 0, 10,
                                   "the flood to reach the node")
            await newcomer.connect(address)
            for raw in mine:  # one gossip batch each
                await newcomer.publish(TOPIC_TXS, TxBatch((raw,)).encode())
            written = await flood
            still_connected = peer in flooder.connected_peers()
            return written, t0, still_connected
        finally:
            await flooder.stop()
            await newcomer.stop()

    written, t0, still_connected = asyncio.run(scenario())
    checked = _rejected(url, "nonce_skipped")
    elapsed = time.monotonic() - t0
    print(f"the flooder wrote {written * 200} transactions in {FLOOD_SECONDS}s; "
          f"the node checked {checked}")

    assert 0 < checked <= BUDGET_SHARE * (1 + elapsed)
    assert written * 200 > 3 * BUDGET_SHARE * (1 + elapsed), "the flood was too slow"
    assert still_connected
    assert f"peer {flooder_key.public_key.hex()[:16]} penalised" not in node.log_path.read_text()
    for raw in mine:
        assert node.client.wait_tx(h256(raw).hex(), timeout=20)["receipt"]["ok"]
    assert node.running and node.log_errors() == []


def test_validators_gossip_is_outside_the_unproven_budget(
        cluster: Callable[..., Cluster]) -> None:
    """With a budget of one check per second, a validator still checks and admits every
    transaction another validator gossips to it. Two of three signers run, so nothing
    commits: the transactions stay in the mempools, where the test counts them."""
    sender = PrivateKey.generate()

    def tweak(i: int, cfg: NodeConfig) -> None:
        cfg.p2p.unproven_sig_checks = cfg.p2p.unproven_peer_sig_checks = 1

    net = cluster(3, tweak=tweak, accounts=[(sender.address, 10**12)])
    for node in net.nodes[:2]:
        node.launch()
    for node in net.nodes[:2]:
        node.wait_ready()
    gossiper, receiver = net.nodes[1], net.nodes[0]
    wait_until(lambda: gossiper.status()["peers"] >= 1, 15, what="the two signers connected")
    txs = [_transfer(sender, n) for n in range(300)]
    accepted = gossiper.client().submit_batch(txs)
    assert all("hash" in r for r in accepted)
    assert receiver.url is not None
    wait_until(lambda: _metric(receiver.url, "smart_mempool_size") == len(txs), 15,
               what="every transaction in the other validator's mempool")
    assert _metric(receiver.url, "smart_gossip_txs_unchecked_total") == 0
    assert _metric(receiver.url, "smart_gossip_unproven_checks_total") == 0
    assert net.heights([0, 1]) == {0: 0, 1: 0}
    net.assert_no_tracebacks()
