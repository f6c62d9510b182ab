"""Snapshot sync as an operator uses it: a running 4-signer network that takes snapshots,
a new node made with `smart node init --genesis <API URL> --seeds ... --snapshot` that
starts from one and then follows blocks. Real node processes on 127.0.0.1
(tests/framework/netharness.py); waits poll real state with deadlines."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from framework.harness import wait_until
from framework.netharness import Network, free_ports

from smartchain.client import ApiError, Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.launcher import NodeProc, launch

TIMEOUT = 60.0
INTERVAL = 8
KEEP = 10  # snapshots stay a while: a trusted height read before `node init` has one below
FUNDED = PrivateKey.from_seed(b"\x5a" * 32)


def smart(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smartchain.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """Four signers taking a snapshot every INTERVAL blocks, past two snapshots."""
    with Network(tmp_path / "net", 4, accounts=[(FUNDED.address, 10**12)],
                 snapshot_interval=INTERVAL, snapshot_keep=KEEP) as net:
        net.start_all()
        net.wait_all(2 * INTERVAL + 2, timeout=TIMEOUT)
        yield net


@pytest.fixture
def procs() -> Iterator[list[NodeProc]]:
    started: list[NodeProc] = []
    yield started
    for proc in started:
        if proc.running:
            proc.kill()


def same_block(a: Client, b: Client, height: int) -> bool:
    """Both hold the same block at ``height`` (a range of synced blocks becomes readable
    when its store transaction commits)."""
    try:
        return bool(a.block(height)["hash"] == b.block(height)["hash"])
    except ApiError as exc:
        if exc.status != 404:
            raise
        return False


def init_joiner(net: Network, home: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    seeds = ",".join(net[i].p2p_address for i in (0, 1, 2))
    port = free_ports(1, taken=[n.config.p2p.port for n in net.nodes])[0]
    return smart("node", "init", "--home", str(home), "--genesis", str(net[0].url),
                 "--seeds", seeds, "--insecure", "--api-port", "0", "--p2p-port", str(port),
                 "--snapshot", *extra)


def test_a_new_node_joins_by_snapshot_then_follows_blocks_with_the_same_state(
        network: Network, tmp_path: Path, procs: list[NodeProc]) -> None:
    receiver = to_bech32(PrivateKey.from_seed(b"\x5b" * 32).address)
    network.client(0).transfer(FUNDED, receiver, 12_345)  # state beyond the genesis one
    start = network.height(0)
    wait_until(lambda: network.height(0) >= (start // INTERVAL + 1) * INTERVAL + 1, TIMEOUT,
               what="a snapshot taken after the transfer")
    home = tmp_path / "joiner"
    init = init_joiner(network, home)
    assert init.returncode == 0, init.stderr
    joiner = launch(home)
    procs.append(joiner)
    client = Client(joiner.wait_ready(TIMEOUT))
    target = network.height(0) + 3
    wait_until(lambda: int(client.status()["height"]) >= target, TIMEOUT,
               what=f"the joiner at height {target}")
    log = (home / "node.log").read_text()
    assert "state restored from the snapshot at height" in log
    with pytest.raises(ApiError) as missing:  # it never replayed the first blocks
        client.block(1)
    assert missing.value.status == 404
    for c in (client, network.client(1)):
        assert c.balance(receiver) == 12_345
    assert client.block(target)["header"]["state_root"] == \
        network.client(2).block(target)["header"]["state_root"]
    assert client.status()["signer"] is False
    assert joiner.stop() == 0


def test_a_trusted_hash_anchors_the_snapshot_and_a_wrong_one_is_never_applied(
        network: Network, tmp_path: Path, procs: list[NodeProc]) -> None:
    trusted = network.height(0)
    good = network.client(0).block(trusted)["hash"]
    home = tmp_path / "trusting"
    assert init_joiner(network, home, "--trust-height", str(trusted),
                       "--trust-hash", good).returncode == 0
    node = launch(home)
    procs.append(node)
    client = Client(node.wait_ready(TIMEOUT))
    wait_until(lambda: int(client.status()["height"]) >= trusted + 2, TIMEOUT,
               what="the trusting joiner past the trusted height")
    assert "state restored from the snapshot" in (home / "node.log").read_text()

    wrong = tmp_path / "wrong"
    trusted = network.height(0)  # recent: the snapshots below it are still held
    assert init_joiner(network, wrong, "--trust-height", str(trusted),
                       "--trust-hash", "ab" * 32).returncode == 0
    node = launch(wrong)
    procs.append(node)
    client = Client(node.wait_ready(TIMEOUT))
    wait_until(lambda: "not an ancestor of the trusted block" in
               (wrong / "node.log").read_text(), TIMEOUT, what="the snapshot refused")
    # It falls back to block sync from genesis: block 1 is replayed and checked.
    wait_until(lambda: int(client.status()["height"]) >= trusted, TIMEOUT, what="block sync")
    wait_until(lambda: same_block(client, network.client(0), 1)
               and same_block(client, network.client(0), trusted),
               TIMEOUT, what="blocks 1 and the trusted one as the network's")


def test_init_refuses_a_malformed_trust_hash_and_trust_without_snapshot(
        network: Network, tmp_path: Path) -> None:
    bad = init_joiner(network, tmp_path / "a", "--trust-height", "5", "--trust-hash", "zz")
    assert bad.returncode == 1 and "trust_hash must be a block hash" in bad.stderr
    assert not (tmp_path / "a").exists()
    seeds = network[0].p2p_address
    alone = smart("node", "init", "--home", str(tmp_path / "b"), "--genesis",
                  str(network[0].url), "--seeds", seeds, "--insecure",
                  "--trust-height", "5", "--trust-hash", "ab" * 32)
    assert alone.returncode == 1 and "anchor a --snapshot" in alone.stderr
