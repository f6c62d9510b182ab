"""The network across hosts: each node in its own Linux network namespace with its own
address, joined by veth pairs to one bridge, every link delayed 50 ms one way with 1 %
loss (``tc netem``). The test creates and removes the namespaces itself (always, even on
failure: processes first, then namespaces and the bridge) and is skipped, with the
kernel's reason, where namespaces cannot be made (not root, no CAP_NET_ADMIN). A kernel
without netem (sch_netem) still runs them, undelayed, with a warning saying so.

Tests: 4 signers and a follower that joins by `smart node init --genesis <URL> --seeds
... --snapshot`; a follower's host cut off and healed; a signer's host cut off and back."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from framework.harness import wait_until

from smartchain.client import ApiError, Client
from smartchain.consensus.signer import DurableSigner
from smartchain.crypto.keys import PrivateKey
from smartchain.launcher import NodeProc, launch
from smartchain.node.config import (
    ApiSettings,
    ConsensusSettings,
    NodeConfig,
    P2PSettings,
    SyncSettings,
)
from smartchain.node.home import init_home, load_validator_key, make_genesis
from smartchain.p2p import P2PConfig
from smartchain.state.params import Params

TAG = f"sc{os.getpid() % 10000}"  # names unique to this test process
SUBNET = "10.77"  # 10.77.0.0/24 on the bridge: hosts .1.., the test (root namespace) .254
P2P_PORT, API_PORT = 26656, 26657
DELAY_MS, LOSS = 50, "1%"
BLOCK_MS = 500
TIMEOUT = 120.0


def sh(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


class Lab:
    """Namespaces ``{TAG}-{i}`` with address ``10.77.0.{i+1}``, on bridge ``{TAG}-br``."""

    def __init__(self) -> None:
        self.bridge = f"{TAG}-br"
        self.hosts: list[str] = []
        self.procs: list[NodeProc] = []
        self.netem_refused: str | None = None  # why links are not delayed, if they are not

    def ip(self, i: int) -> str:
        return f"{SUBNET}.0.{i + 1}"

    def must(self, *cmd: str) -> None:
        out = sh(*cmd)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")

    def up(self, n: int) -> None:
        self.must("ip", "link", "add", self.bridge, "type", "bridge")
        self.must("ip", "addr", "add", f"{SUBNET}.0.254/24", "dev", self.bridge)
        self.must("ip", "link", "set", self.bridge, "up")
        for i in range(n):
            self.add_host(i)

    def add_host(self, i: int) -> None:
        ns, host_end, ns_end = f"{TAG}-{i}", f"{TAG}v{i}", f"{TAG}p{i}"
        self.must("ip", "netns", "add", ns)
        self.hosts.append(ns)
        self.must("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        self.must("ip", "link", "set", ns_end, "netns", ns)
        self.must("ip", "link", "set", host_end, "master", self.bridge)
        self.must("ip", "link", "set", host_end, "up")
        run = ("ip", "netns", "exec", ns)
        self.must(*run, "ip", "addr", "add", f"{self.ip(i)}/24", "dev", ns_end)
        self.must(*run, "ip", "link", "set", ns_end, "up")
        self.must(*run, "ip", "link", "set", "lo", "up")
        netem = sh(*run, "tc", "qdisc", "add", "dev", ns_end, "root", "netem",
                   "delay", f"{DELAY_MS}ms", "loss", LOSS)
        if netem.returncode != 0 and self.netem_refused is None:
            self.netem_refused = netem.stderr.strip()
            warnings.warn(f"tc netem refused ({self.netem_refused}): the links between "
                          f"namespaces run without delay or loss", stacklevel=1)

    def cut(self, i: int, down: bool) -> None:
        """Unplug (or plug back) host ``i``'s cable: its veth end on the bridge."""
        self.must("ip", "link", "set", f"{TAG}v{i}", "down" if down else "up")

    def launch(self, i: int, home: Path) -> NodeProc:
        proc = launch(home, prefix=["ip", "netns", "exec", self.hosts[i]])
        self.procs.append(proc)
        return proc

    def down(self) -> None:
        for proc in self.procs:
            if proc.running:
                proc.kill()
        for ns in self.hosts:
            sh("ip", "netns", "del", ns)
        sh("ip", "link", "del", self.bridge)


@pytest.fixture
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CAP_NET_ADMIN)")
    lab = Lab()
    try:
        try:
            lab.up(5)
        except (RuntimeError, OSError) as exc:
            pytest.skip(f"the kernel refused the namespaces: {exc}")
        yield lab
    finally:
        lab.down()


def config(lab: Lab, i: int, seeds: list[str], snapshot: bool = False) -> NodeConfig:
    return NodeConfig(moniker=f"host{i}", api=ApiSettings(host=lab.ip(i), port=API_PORT),
                      p2p=P2PSettings(host=lab.ip(i), port=P2P_PORT, seeds=seeds,
                                      transport=P2PConfig()),
                      consensus=ConsensusSettings(block_time_ms=BLOCK_MS),
                      sync=SyncSettings(snapshot=snapshot, snapshot_interval=10))


@pytest.fixture
def signers(lab: Lab, tmp_path: Path) -> list[Client]:
    """Four signers on hosts 0..3, running and past height 3."""
    keys = [PrivateKey.generate() for _ in range(4)]
    ids = [f"{k.public_key.hex()}@{lab.ip(i)}:{P2P_PORT}" for i, k in enumerate(keys)]
    genesis = make_genesis("smart-wan-1", [(k.public_key, 1, f"v{i}")
                                           for i, k in enumerate(keys)],
                           params=Params(block_time_ms=BLOCK_MS))
    clients = []
    for i, key in enumerate(keys):
        home = tmp_path / f"host{i}"
        init_home(home, chain_id=genesis.chain_id, key=key, passphrase=None, insecure=True,
                  config=config(lab, i, [s for s in ids if s != ids[i]]), genesis=genesis)
        lab.launch(i, home)
    for proc in lab.procs:
        clients.append(Client(proc.wait_ready(TIMEOUT)))
    for c in clients:
        wait_until(lambda c=c: int(c.status()["height"]) >= 3, TIMEOUT, what="signers at 3")
    return clients


def height(c: Client) -> int:
    try:
        return int(c.status()["height"])
    except ApiError:
        return -1


def join_follower(lab: Lab, signers: list[Client], tmp_path: Path) -> Client:
    """Host 4 joins as an operator would, through the CLI, by snapshot."""
    ids = []
    for i in (0, 1):
        out = sh(sys.executable, "-m", "smartchain.cli.main", "node", "show-id", "--home",
                 str(tmp_path / f"host{i}"))
        assert out.returncode == 0, out.stderr
        ids.append(out.stdout.strip())
    assert ids[0].endswith(f"@{lab.ip(0)}:{P2P_PORT}")
    home = tmp_path / "host4"
    init = subprocess.run(
        ["ip", "netns", "exec", lab.hosts[4], sys.executable, "-m", "smartchain.cli.main",
         "node", "init", "--home", str(home), "--genesis", signers[0].url, "--seeds",
         ",".join(ids), "--listen", lab.ip(4), "--advertise", lab.ip(4), "--insecure",
         "--snapshot"], capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    return Client(lab.launch(4, home).wait_ready(TIMEOUT))


def test_a_follower_on_its_own_host_joins_by_snapshot_over_a_slow_lossy_network(
        lab: Lab, signers: list[Client], tmp_path: Path) -> None:
    wait_until(lambda: height(signers[0]) >= 12, TIMEOUT, what="a first snapshot (10)")
    follower = join_follower(lab, signers, tmp_path)
    target = height(signers[0]) + 3
    wait_until(lambda: height(follower) >= target, TIMEOUT, what=f"the follower at {target}")
    assert "state restored from the snapshot" in (tmp_path / "host4" / "node.log").read_text()
    assert follower.block(target)["header"]["state_root"] == \
        signers[3].block(target)["header"]["state_root"]


def test_a_partitioned_host_falls_behind_and_catches_up_when_healed(
        lab: Lab, signers: list[Client], tmp_path: Path) -> None:
    follower = join_follower(lab, signers, tmp_path)
    wait_until(lambda: height(follower) >= height(signers[0]) - 1, TIMEOUT,
               what="the follower in step")
    lab.cut(4, down=True)
    cut_at = height(signers[0])
    wait_until(lambda: min(height(c) for c in signers) >= cut_at + 6, TIMEOUT,
               what="the rest moving on")
    lab.cut(4, down=False)
    target = height(signers[0]) + 2
    wait_until(lambda: height(follower) >= target, TIMEOUT, what="the healed host caught up")
    assert follower.block(target)["hash"] == signers[2].block(target)["hash"]


def test_a_signers_host_cut_off_leaves_three_finalising_and_it_rejoins(
        lab: Lab, signers: list[Client], tmp_path: Path) -> None:
    lab.cut(3, down=True)
    cut_at = height(signers[0])
    wait_until(lambda: height(signers[0]) >= cut_at + 6, TIMEOUT,
               what="3 of 4 signers still finalising")
    lab.cut(3, down=False)
    target = height(signers[0]) + 3
    wait_until(lambda: height(signers[3]) >= target, TIMEOUT, what="the signer back in step")
    assert signers[3].block(target)["hash"] == signers[0].block(target)["hash"]
    # and it signs again (its double-sign guard records each height it signs at)
    key = load_validator_key(tmp_path / "host3", None)
    wait_until(lambda: last_signed(key, tmp_path / "host3") > target, TIMEOUT,
               what="the rejoined signer signing")


def last_signed(key: PrivateKey, home: Path) -> int:
    last = DurableSigner(key, home / "signer_state.json").last
    return last.height if last is not None else 0
