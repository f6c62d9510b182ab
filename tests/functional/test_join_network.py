"""Joining a running network as an operator would: `smart node show-id` on a signer,
`smart node init --genesis <its API URL> --seeds ...`, `smart node start`; and a genesis
that is not the network's, refused at init and at start. Real node processes on 127.0.0.1
(tests/framework/netharness.py); waits poll real state with deadlines."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from framework.harness import wait_until
from framework.netharness import Network, free_ports

from smartchain.client import Client
from smartchain.crypto.keys import PrivateKey
from smartchain.launcher import LaunchError, NodeProc, launch
from smartchain.node.home import make_genesis

JOIN_TIMEOUT = 60.0


def smart(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smartchain.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """Four signers, running and past height 3."""
    with Network(tmp_path / "net", 4) as net:
        net.start_all()
        net.wait_all(3, timeout=JOIN_TIMEOUT)
        yield net


@pytest.fixture
def procs() -> Iterator[list[NodeProc]]:
    """Nodes a test launches itself: always stopped."""
    started: list[NodeProc] = []
    yield started
    for proc in started:
        if proc.running:
            proc.kill()


def node_id(net: Network, i: int) -> str:
    result = smart("node", "show-id", "--home", str(net[i].home))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_follower_joins_a_running_network_from_its_api_url_and_seeds_and_syncs(
        network: Network, tmp_path: Path, procs: list[NodeProc]) -> None:
    seeds = ",".join(node_id(network, i) for i in (0, 1))
    assert seeds.split(",")[0] == network[0].p2p_address
    home = tmp_path / "follower"
    port = free_ports(1, taken=[n.config.p2p.port for n in network.nodes])[0]
    init = smart("node", "init", "--home", str(home), "--genesis", str(network[0].url),
                 "--seeds", seeds, "--insecure", "--api-port", "0", "--p2p-port", str(port))
    assert init.returncode == 0, init.stderr
    assert (home / "genesis.json").read_text() == (network[0].home / "genesis.json").read_text()
    follower = launch(home)
    procs.append(follower)
    client = Client(follower.wait_ready(JOIN_TIMEOUT))
    target = network.height(0) + 2  # blocks made before it joined, and after
    wait_until(lambda: int(client.status()["height"]) >= target, JOIN_TIMEOUT,
               what=f"the follower at height {target}")
    status = client.status()
    assert status["signer"] is False
    assert status["genesis_hash"] == network.status(0)["genesis_hash"]
    assert client.block(target)["hash"] == network.client(0).block(target)["hash"]
    assert follower.stop() == 0


def test_genesis_export_prints_the_genesis_file_of_the_network(network: Network) -> None:
    out = smart("genesis", "export", "--node", str(network[0].url))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads((network[0].home / "genesis.json").read_text())


def test_a_genesis_that_is_not_the_networks_is_refused_at_init_and_at_start(
        network: Network, tmp_path: Path, procs: list[NodeProc]) -> None:
    other = make_genesis(network.chain_id, [(PrivateKey.generate().public_key, 1, "x")])
    path = tmp_path / "other.json"
    other.save(path)
    seed = node_id(network, 0)
    home = tmp_path / "wrong"
    init = smart("node", "init", "--home", str(home), "--genesis", str(path), "--seeds", seed,
                 "--insecure", "--api-port", "0", "--p2p-port", "0")
    assert init.returncode == 1
    assert "genesis mismatch" in init.stderr and other.hash().hex() in init.stderr
    assert network.genesis.hash().hex() in init.stderr
    assert not home.exists(), "nothing is written for a refused genesis"

    # Written anyway (--skip-seed-check): the node refuses to start on it.
    forced = smart("node", "init", "--home", str(home), "--genesis", str(path), "--seeds", seed,
                   "--insecure", "--api-port", "0", "--p2p-port", "0", "--skip-seed-check")
    assert forced.returncode == 0, forced.stderr
    node = launch(home)
    procs.append(node)
    with pytest.raises(LaunchError, match="genesis mismatch"):
        node.wait_ready(JOIN_TIMEOUT)
    assert node.proc.wait(JOIN_TIMEOUT) == 1


def test_a_seed_with_a_wrong_key_or_unreachable_is_refused_at_init(network: Network,
                                                                  tmp_path: Path) -> None:
    genesis = str(network[0].home / "genesis.json")
    seed = node_id(network, 0)
    _, _, where = seed.partition("@")
    wrong_key = smart("node", "init", "--home", str(tmp_path / "a"), "--genesis", genesis,
                      "--seeds", f"{'ab' * 32}@{where}", "--insecure")
    assert wrong_key.returncode == 1 and "is not the expected" in wrong_key.stderr
    port = free_ports(1, taken=[n.config.p2p.port for n in network.nodes])[0]
    down = smart("node", "init", "--home", str(tmp_path / "b"), "--genesis", genesis,
                 "--seeds", f"{seed.partition('@')[0]}@127.0.0.1:{port}", "--insecure")
    assert down.returncode == 1 and "cannot reach" in down.stderr
    no_id = smart("node", "init", "--home", str(tmp_path / "c"), "--genesis", genesis,
                  "--seeds", where, "--insecure")
    assert no_id.returncode == 1 and "needs a public key" in no_id.stderr
    assert not any((tmp_path / d).exists() for d in "abc")
