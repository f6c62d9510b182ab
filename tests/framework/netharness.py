"""A multi-node network of real node processes on 127.0.0.1, for functional tests.

``Network`` builds N validator homes that share one genesis (with the funded accounts
the test passes), seeds every node with every other, gives each a distinct free P2P port
(API port 0: the node reports the port it got in ``HOME/node.json``) and consensus
timeouts suited to loopback, and runs each node as its own process
(started by smartchain/launcher.py, log in ``HOME/node.log``).
``add_follower`` adds a node whose key is not in genesis: it only follows the chain.

Every node runs in its own session (process group), so the harness can find everything a
node started. ``Network`` is a context manager whose exit ALWAYS kills every process it
started and then checks that nothing of theirs is left alive (an orphan is killed and
reported as a failure).

As in ``harness.py``, synchronisation is by polling real state with a deadline.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from framework.harness import HarnessError, log_tail, stat_fields, wait_until
from smartchain.client import ApiError, Client
from smartchain.consensus.engine import EngineConfig
from smartchain.consensus.signer import DurableSigner, SignState
from smartchain.consensus.validators import Validator, ValidatorSet
from smartchain.crypto.keys import PrivateKey
from smartchain.launcher import LOG_FILE, LaunchError, NodeProc, launch
from smartchain.node.config import (
    RUNTIME_FILE,
    ApiSettings,
    ConsensusSettings,
    NodeConfig,
    P2PSettings,
    SyncSettings,
)
from smartchain.node.home import init_home, make_genesis
from smartchain.state.genesis import Genesis
from smartchain.state.params import Params
from smartchain.types.block import BlockHeader
from smartchain.types.consensus import Commit, CommitSig

SIGNER_STATE_FILE = "signer_state.json"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
ORPHAN_GRACE = 5.0  # how long a dead node's children get to notice and exit
# P2P ports are taken below the kernel's ephemeral range, so an outgoing connection's
# source port can never occupy the port of a node that is down and about to restart.
PORT_RANGE = (20_000, 32_000)
FETCH_THREADS = 4  # concurrent API reads when comparing many blocks


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int, taken: Iterable[int] = ()) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1, outside the ephemeral range."""
    low, high = PORT_RANGE[0], min(PORT_RANGE[1], _ephemeral_low() - 1)
    used = set(taken)
    out: list[int] = []
    rng = random.Random()
    for _ in range(n * 200):
        if len(out) == n:
            return out
        port = rng.randint(low, high)
        if port not in used and _port_free(port):
            used.add(port)
            out.append(port)
    raise HarnessError(f"could not find {n} free ports in {low}..{high}")


# --- processes --------------------------------------------------------------------------


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a node started with ``start_new_session``)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = stat_fields(int(entry.name))
            if st is not None and int(st[3]) == sid:
                out.append(int(entry.name))
    return out


class NetNode:
    """One node of a ``Network``: its home, key, config and (when running) its process."""

    def __init__(self, index: int, name: str, home: Path, key: PrivateKey,
                 config: NodeConfig, validator: bool) -> None:
        self.index = index
        self.name = name
        self.home = home
        self.key = key
        self.config = config
        self.validator = validator
        self.launched: NodeProc | None = None
        self.url: str | None = None
        self.starts = 0
        self.sessions: list[int] = []  # every session (= first pid) this node ever ran in

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    @property
    def p2p_address(self) -> str:
        return f"{self.key.public_key.hex()}@127.0.0.1:{self.config.p2p.port}"

    @property
    def log_path(self) -> Path:
        return self.home / LOG_FILE

    @property
    def runtime_path(self) -> Path:
        return self.home / RUNTIME_FILE

    @property
    def signer_state_path(self) -> Path:
        return self.home / SIGNER_STATE_FILE

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.launched.proc if self.launched is not None else None

    @property
    def running(self) -> bool:
        return self.launched is not None and self.launched.running

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, timeout: float = 10.0) -> Client:
        if self.url is None:
            raise HarnessError(f"{self.name} is not running")
        return Client(self.url, timeout=timeout)

    def signer_state(self) -> SignState | None:
        """The durable double-sign guard's last record (None: it never signed)."""
        return DurableSigner(self.key, self.signer_state_path).last

    # --- lifecycle -----------------------------------------------------------------------

    def launch(self) -> None:
        """Start the process; ``wait_ready`` waits for its API."""
        if self.running:
            raise HarnessError(f"{self.name} is already running")
        self.url = None
        self.starts += 1
        self.launched = launch(self.home, banner=f"netharness: start #{self.starts}")
        self.sessions.append(self.launched.pid)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> str:
        assert self.launched is not None
        try:
            self.url = self.launched.wait_ready(timeout)
        except LaunchError as exc:
            self.kill()
            raise HarnessError(f"{self.name}: {exc}") from None
        return self.url

    def start(self, timeout: float = START_TIMEOUT) -> str:
        self.launch()
        return self.wait_ready(timeout)

    def kill(self) -> None:
        """SIGKILL the node process (a crash: no cleanup code runs)."""
        if self.launched is not None:
            self.launched.kill()
        self.url = None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.launched is None:
            return None
        self.url = None
        try:
            return self.launched.stop(timeout)
        except LaunchError as exc:
            raise HarnessError(f"{self.name}: {exc}") from None

    def leftovers(self) -> list[int]:
        """Live processes from any session this node ran in, other than a running node."""
        current = self.proc.pid if self.running and self.proc is not None else None
        return [pid for sid in self.sessions if sid != current for pid in session_members(sid)]

    def __repr__(self) -> str:
        return f"NetNode({self.name}, pid={self.pid}, url={self.url})"


# --- the network ------------------------------------------------------------------------


class Network:
    """N signer nodes (plus optional followers) sharing one genesis, as real processes."""

    def __init__(self, root: Path, n: int = 4, *,
                 accounts: Sequence[tuple[bytes, int]] = (),
                 chain_id: str = "smart-net-1", block_time_ms: int = 150,
                 timeout_propose_ms: int = 600, timeout_vote_ms: int = 300,
                 log_level: str = "info", snapshot_interval: int = 0,
                 snapshot_keep: int = 2, standby: int = 0,
                 powers: Sequence[int] | None = None,
                 params: dict[str, int] | None = None, fund_nodes: int = 0) -> None:
        """``snapshot_interval``: every node takes a state snapshot every that many
        blocks (0: none) and keeps the ``snapshot_keep`` latest. ``standby``: that many
        more genesis validators, nodes ``n..n+standby-1``: with ``poca_max_directors = n``
        in the genesis they are standby signers (give the directors more power in
        ``powers``, one per node, so the ranking puts them first). ``params``: genesis
        chain parameters besides ``block_time_ms``. ``fund_nodes``: base units each node's
        own key holds at genesis (fees of its transactions)."""
        if n < 1:
            raise ValueError("a network needs at least one validator")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.block_time_ms = block_time_ms
        self.timeout_propose_ms = timeout_propose_ms
        self.timeout_vote_ms = timeout_vote_ms
        self.log_level = log_level
        self.snapshot_interval = snapshot_interval
        self.snapshot_keep = snapshot_keep
        keys = [PrivateKey.generate() for _ in range(n + standby)]
        powers = list(powers) if powers is not None else [1] * len(keys)
        extra = dict(params or {})
        if standby:
            extra.setdefault("poca_max_directors", n)
            extra.setdefault("poca_max_standby", standby)
        self.genesis: Genesis = make_genesis(
            chain_id, [(k.public_key, p, f"node{i}")
                       for i, (k, p) in enumerate(zip(keys, powers, strict=True))],
            [*accounts, *((k.address, fund_nodes) for k in keys if fund_nodes)],
            params=Params(block_time_ms=block_time_ms, **extra))
        self.chain_id = chain_id
        # The genesis signer set as the staking module ranks it: stake (power) first,
        # then public key, the top poca_max_directors.
        ranked = sorted(self.genesis.validators, key=lambda v: (-v.power, v.public_key))
        self.valset = ValidatorSet(
            [Validator(v.public_key, v.power, v.name)
             for v in ranked[:self.genesis.params.poca_max_directors]])
        self.nodes: list[NetNode] = []
        ports = free_ports(len(keys))
        for i, (key, port) in enumerate(zip(keys, ports, strict=True)):
            self.nodes.append(NetNode(i, f"node{i}", self.root / f"node{i}", key,
                                      self._config(f"node{i}", port), validator=True))
        for node in self.nodes:
            node.config.p2p.seeds = [o.p2p_address for o in self.nodes if o is not node]
            self._init(node)

    def _config(self, moniker: str, p2p_port: int) -> NodeConfig:
        engine = EngineConfig(timeout_propose_ms=self.timeout_propose_ms,
                              timeout_prevote_ms=self.timeout_vote_ms,
                              timeout_precommit_ms=self.timeout_vote_ms)
        return NodeConfig(moniker=moniker, log_level=self.log_level, api=ApiSettings(port=0),
                          p2p=P2PSettings(port=p2p_port),
                          consensus=ConsensusSettings(block_time_ms=self.block_time_ms,
                                                      engine=engine),
                          sync=SyncSettings(snapshot_interval=self.snapshot_interval,
                                            snapshot_keep=self.snapshot_keep))

    def _init(self, node: NetNode) -> None:
        init_home(node.home, chain_id=self.chain_id, key=node.key, passphrase=None,
                  insecure=True, config=node.config, genesis=self.genesis)

    def add_follower(self, seeds: Iterable[int] = (0,), *, start: bool = False) -> int:
        """A node with its own key, not in genesis, seeded with the nodes ``seeds``;
        returns its index."""
        index = len(self.nodes)
        name = f"follower{index}"
        port = free_ports(1, taken=[n.config.p2p.port for n in self.nodes])[0]
        node = NetNode(index, name, self.root / name, PrivateKey.generate(),
                       self._config(name, port), validator=False)
        node.config.p2p.seeds = [self.nodes[i].p2p_address for i in seeds]
        self._init(node)
        self.nodes.append(node)
        if start:
            node.start()
        return index

    # --- context manager -----------------------------------------------------------------

    def __enter__(self) -> Network:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        orphans = self.close()
        if orphans and exc_type is None:
            raise HarnessError(f"processes outlived their node and were killed: {orphans}")

    def close(self) -> list[int]:
        """Kill every node process, then make sure nothing any node started is alive.

        Returns the pids found alive after their node was gone (orphans), which are
        SIGKILLed; always leaves no process behind."""
        for node in self.nodes:
            try:
                node.kill()
            except Exception:  # keep going: every other node must still be killed
                pass
        deadline = time.monotonic() + ORPHAN_GRACE
        left = self._leftovers()
        while left and time.monotonic() < deadline:
            time.sleep(0.05)
            left = self._leftovers()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return left

    def _leftovers(self) -> list[int]:
        return [pid for node in self.nodes for pid in node.leftovers()]

    # --- lifecycle -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, i: int) -> NetNode:
        return self.nodes[i]

    @property
    def validators(self) -> list[NetNode]:
        return [n for n in self.nodes if n.validator]

    def start(self, i: int, timeout: float = START_TIMEOUT) -> str:
        return self.nodes[i].start(timeout)

    def start_all(self, indices: Iterable[int] | None = None,
                  timeout: float = START_TIMEOUT) -> None:
        """Start nodes at once (all not running, by default) and wait for their APIs."""
        todo = [self.nodes[i] for i in indices] if indices is not None else \
            [n for n in self.nodes if not n.running]
        for node in todo:
            node.launch()
        for node in todo:
            node.wait_ready(timeout)

    def stop(self, i: int, timeout: float = STOP_TIMEOUT) -> int | None:
        return self.nodes[i].stop(timeout)

    def kill(self, i: int) -> None:
        self.nodes[i].kill()

    @property
    def running(self) -> list[int]:
        return [n.index for n in self.nodes if n.running]

    # --- queries -------------------------------------------------------------------------

    def client(self, i: int, timeout: float = 10.0) -> Client:
        return self.nodes[i].client(timeout)

    def status(self, i: int) -> dict[str, Any]:
        return self.client(i).status()

    def height(self, i: int) -> int:
        return int(self.status(i)["height"])

    def heights(self, indices: Iterable[int] | None = None) -> dict[int, int]:
        return {i: self.height(i) for i in (self.running if indices is None else indices)}

    def block(self, i: int, height: int) -> dict[str, Any]:
        return self.client(i).block(height)

    def wait_height(self, i: int, height: int, timeout: float = 15.0) -> int:
        """Wait until node ``i`` has committed ``height``; returns its height then."""
        node = self.nodes[i]

        def reached() -> tuple[int] | None:
            if not node.running:
                raise HarnessError(f"{node.name} is not running (exit code "
                                   f"{node.proc.returncode if node.proc else None}); log "
                                   f"tail:\n{node.log_tail()}")
            try:
                h = self.height(i)
            except ApiError:
                return None
            return (h,) if h >= height else None

        try:
            return wait_until(reached, timeout, interval=0.05,
                              what=f"{node.name} at height {height}")[0]
        except HarnessError as exc:
            if "timed out" not in str(exc):
                raise
            raise HarnessError(f"{exc} (heights now {self.heights()}); {node.name} log "
                               f"tail:\n{node.log_tail(25)}") from None

    def wait_all(self, height: int, indices: Iterable[int] | None = None,
                 timeout: float = 15.0) -> dict[int, int]:
        """Wait until every node of ``indices`` (default: all running) reaches ``height``."""
        deadline = time.monotonic() + timeout
        idx = list(self.running if indices is None else indices)
        return {i: self.wait_height(i, height, max(0.1, deadline - time.monotonic()))
                for i in idx}

    def block_ids(self, i: int, heights: Iterable[int]) -> dict[int, tuple[str, str]]:
        """(block hash, state root) per height, as node ``i`` serves them."""
        client = self.client(i)

        def ids(h: int) -> tuple[str, str]:
            b = client.block(h)
            return b["hash"], b["header"]["state_root"]

        hs = list(heights)
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            return dict(zip(hs, pool.map(ids, hs), strict=True))

    def blocks(self, i: int, heights: Iterable[int]) -> dict[int, dict[str, Any]]:
        """Blocks as node ``i`` serves them (JSON), by height."""
        client = self.client(i)
        hs = list(heights)
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            return dict(zip(hs, pool.map(client.block, hs), strict=True))

    def assert_same_chain(self, indices: Iterable[int], upto: int, start: int = 1) -> None:
        """Every node of ``indices`` serves the same block hash and state root at every
        height ``start..upto`` (they must all have reached ``upto``)."""
        idx = list(indices)
        ref = self.block_ids(idx[0], range(start, upto + 1))
        for i in idx[1:]:
            got = self.block_ids(i, range(start, upto + 1))
            diff = [h for h in ref if got[h] != ref[h]]
            assert not diff, (f"{self.nodes[i].name} disagrees with {self.nodes[idx[0]].name} "
                              f"at heights {diff[:10]}: {got[diff[0]]} vs {ref[diff[0]]}")

    # --- certificates --------------------------------------------------------------------

    @staticmethod
    def check_linked(blocks: dict[int, dict[str, Any]]) -> None:
        """Each block's hash is its header's (recomputed here) and each header names the
        block before as ``prev_hash``: a chain of consecutive heights, so two nodes with the
        same hash at its top hold the same block at every height below."""
        prev: str | None = None
        for h in sorted(blocks):
            b = blocks[h]
            hd = b["header"]
            header = BlockHeader(
                hd["chain_id"], int(hd["height"]), int(hd["time_ms"]),
                *(bytes.fromhex(hd[k]) for k in ("prev_hash", "tx_root", "receipts_root",
                                                 "state_root", "last_commit_hash",
                                                 "evidence_hash", "proposer")))
            assert header.height == h and header.hash().hex() == b["hash"], f"block {h}"
            if prev is not None:
                assert hd["prev_hash"] == prev, f"block {h} does not link to block {h - 1}"
            prev = b["hash"]

    @staticmethod
    def commit_of(doc: dict[str, Any]) -> Commit:
        """A ``Commit`` from its JSON form (``block["last_commit"]``)."""
        return Commit(int(doc["height"]), int(doc["round"]), bytes.fromhex(doc["block_hash"]),
                      tuple(CommitSig(int(s["validator_index"]), bytes.fromhex(s["signature"]))
                            for s in doc["signatures"]))

    def verify_last_commits(self, blocks: dict[int, dict[str, Any]],
                            sets_from: int | None = None) -> list[set[int]]:
        """Check every block's ``last_commit`` against the signer set of its height and
        the previous block's hash; returns, per checked certificate, the signer indices.
        The set is the genesis one, or (``sets_from``: a node index) the one that node
        serves for that height (a network whose set changes)."""
        signers = []
        for h in sorted(blocks):
            if h < 2 or h - 1 not in blocks:
                continue
            commit = self.commit_of(blocks[h]["last_commit"])
            prev_hash = bytes.fromhex(blocks[h - 1]["hash"])
            valset = self.valset if sets_from is None else self.signer_set(sets_from, h - 1)
            valset.verify_commit(self.chain_id, commit, prev_hash, h - 1)
            signers.append({s.validator_index for s in commit.signatures})
        return signers

    def signer_set(self, i: int, height: int) -> ValidatorSet:
        """The signer set of ``height`` as node ``i`` serves it."""
        doc = self.client(i).signers(height)
        return ValidatorSet([Validator(bytes.fromhex(v["pubkey"]), v["power"], v["name"])
                             for v in doc["validators"]], doc["start_height"])

