"""POCA on a network of real node processes: standby signers take the seats of failed
directors, a recovered director takes its seat back, directors vote one of them out.

Seven genesis validators: nodes 0-3 are the directors (3 HPC of stake each), nodes 4-6 the
standby signers (2 HPC each; every genesis validator is qualified by the genesis
bootstrap). The stakes are chosen so that losing one director is survivable at every step
(its power stays under a third of the set's) and a director slashed for downtime (0.1 %)
still outranks a standby. Small windows and fast blocks keep the tests short. Everything is
learned through the nodes' HTTP APIs (the signer set of each height, the validator list,
metrics) and the CLI; waits poll chain state with deadlines. Run with ``-s`` for figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from framework.harness import wait_until
from framework.netharness import Network
from prometheus_client.parser import text_string_to_metric_families

from smartchain.crypto.address import to_bech32
from smartchain.types.amount import UNITS_PER_HPC

DIRECTORS, STANDBYS = 4, 3
POWERS = [3] * DIRECTORS + [2] * STANDBYS
EPOCH = 30
WINDOW, MISSED, JAIL = 10, 5, 10
POCA = {"poca_epoch_blocks": EPOCH, "poca_downtime_window": WINDOW,
        "poca_downtime_missed": MISSED, "poca_jail_blocks": JAIL,
        "poca_attest_interval": 5, "poca_eliminate_window": 40}
FUNDS = 1_000 * UNITS_PER_HPC  # each node's key: the fees of its poca transactions
WAIT = 60.0


def report(msg: str) -> None:
    print(f"[poca] {msg}")


@pytest.fixture
def poca_network(tmp_path: Path) -> Iterator[Callable[..., Network]]:
    """``make(**Network kwargs)``: 4 directors + 3 standbys; every process killed at the
    end, and a process left behind fails the test."""
    nets: list[Network] = []

    def make(**kwargs: Any) -> Network:
        net = Network(tmp_path / f"net{len(nets)}", DIRECTORS, chain_id="smart-poca-1",
                      standby=STANDBYS, powers=POWERS, params=POCA, fund_nodes=FUNDS,
                      block_time_ms=100, **kwargs)
        nets.append(net)
        return net

    try:
        yield make
    finally:
        orphans = [pid for net in nets for pid in net.close()]
        assert not orphans, f"processes outlived their node (killed now): {orphans}"


# --- reading the chain ------------------------------------------------------------------


def seated(net: Network, via: int, height: int | None = None) -> dict[int, int]:
    """Node index -> power of the signers of ``height`` (default: the next one)."""
    h = net.height(via) + 1 if height is None else height
    keys = {n.public_key.hex(): n.index for n in net.nodes}
    return {keys[v["pubkey"]]: v["power"] for v in net.client(via).signers(h)["validators"]}


def validators(net: Network, via: int) -> dict[int, dict[str, Any]]:
    """Node index -> its row of ``GET /v1/validators``."""
    keys = {n.public_key.hex(): n.index for n in net.nodes}
    return {keys[v["pubkey"]]: v for v in net.client(via).validators()["validators"]}


def seat_change(net: Network, via: int, leaves: int) -> tuple[int, dict[int, int]] | None:
    """(first height without node ``leaves``, its set) once that set is scheduled."""
    h = net.height(via) + 2
    signers = seated(net, via, h)
    if leaves in signers:
        return None
    return net.client(via).signers(h)["start_height"], signers


def signed_by(net: Network, i: int, since: int) -> int | None:
    """The first height from ``since`` whose commit carries node ``i``'s precommit."""
    key = net.nodes[i].public_key.hex()
    for h in range(since, net.height(0)):
        commit = net.block(0, h + 1)["last_commit"]
        keys = [v["pubkey"] for v in net.client(0).signers(h)["validators"]]
        if key in [keys[s["validator_index"]] for s in commit["signatures"]]:
            return h
    return None


def metric(net: Network, i: int, name: str) -> float:
    """The sum of a metric's samples on node ``i``'s /metrics."""
    with urllib.request.urlopen(f"{net.nodes[i].url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(s.value for fam in text_string_to_metric_families(text)
               for s in fam.samples if s.name == name)


def smart(net: Network, node: int, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``smart`` CLI against node ``node``; the key named by ``--from`` (a node's
    name) is imported into its keyring first."""
    home = net.root / "cli"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_")}
    env.update(SMART_HOME=str(home), SMART_NODE=net.nodes[node].url or "")
    cmd = [sys.executable, "-m", "smartchain.cli.main"]
    sender = next(n for n in net.nodes if n.name == args[args.index("--from") + 1])
    if not (home / "imported" / sender.name).exists():
        r = subprocess.run([*cmd, "keys", "import", sender.name, "--insecure"], env=env,
                           input=sender.key.seed.hex(), capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        (home / "imported").mkdir(parents=True, exist_ok=True)
        (home / "imported" / sender.name).touch()
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=60)


def address(net: Network, i: int) -> str:
    return to_bech32(net.nodes[i].key.address)


# --- 1. sequential failures ---------------------------------------------------------------


def test_standbys_take_the_seats_of_three_directors_killed_one_after_another(
        poca_network: Callable[..., Network]) -> None:
    """A static set of 4 halts at the second loss; with takeover, three sequential losses
    are survived: each dead director's seat goes to a standby within the downtime window
    plus 3 blocks, and the chain commits blocks throughout."""
    net = poca_network()
    net.start_all()
    net.wait_all(3, timeout=WAIT)
    assert set(seated(net, 0)) == set(range(DIRECTORS))
    watcher = DIRECTORS + STANDBYS - 1  # a standby that stays a standby until the end
    figures = []
    for victim, n in ((3, 1), (2, 2), (1, 3)):
        before = seated(net, watcher)
        net.kill(victim)
        killed_at = net.height(watcher)
        change = wait_until(lambda v=victim: seat_change(net, watcher, v), WAIT,
                            interval=0.1, what=f"a standby in node{victim}'s seat")
        start, signers = change
        newcomers = set(signers) - set(before)
        assert len(newcomers) == 1 and newcomers <= set(range(DIRECTORS, DIRECTORS + STANDBYS))
        assert start - killed_at <= WINDOW + 3, (start, killed_at)
        figures.append(start - killed_at)
        assert validators(net, watcher)[victim]["status"] == "jailed"
        net.wait_all(start + 3, [i for i in net.running], timeout=WAIT)  # still committing
        assert len(signers) == DIRECTORS and victim not in signers
        report(f"kill {n}: node{victim} killed at height {killed_at}, node"
               f"{newcomers.pop()} signs from {start} ({start - killed_at} blocks)")
    final = seated(net, watcher)
    assert set(final) == {0, *range(DIRECTORS, DIRECTORS + STANDBYS)}
    top = net.height(0)
    net.assert_same_chain(net.running, top)
    net.verify_last_commits(net.blocks(0, range(1, top + 1)), sets_from=0)
    assert metric(net, 0, "smart_consensus_jailed") == 3
    assert metric(net, 0, "smart_consensus_set_changes_total") >= 3
    assert metric(net, 0, "smart_consensus_missed_blocks_total") >= 3 * MISSED
    report(f"takeover within {figures} blocks of the kill (bound {WINDOW + 3})")


# --- 2. recovery and hand-back ------------------------------------------------------------


def test_a_recovered_director_unjails_and_takes_its_seat_back_at_the_next_epoch(
        poca_network: Callable[..., Network]) -> None:
    net = poca_network()
    net.start_all()
    net.wait_all(3, timeout=WAIT)
    victim = 3
    net.kill(victim)
    start, signers = wait_until(lambda: seat_change(net, 0, victim), WAIT, interval=0.1,
                                what="a standby in the victim's seat")
    (standby,) = set(signers) - set(range(DIRECTORS))
    row = validators(net, 0)[victim]
    assert row["status"] == "jailed" and row["tier"] != "director"

    net.start(victim)  # it syncs across the set change, checking each commit's own set
    net.wait_height(victim, net.height(0), timeout=WAIT)
    wait_until(lambda: net.height(0) >= row["jailed_until"], WAIT,
               what="the end of the jail term")
    r = smart(net, victim, "validator", "unjail", "--from", f"node{victim}")
    assert r.returncode == 0, r.stderr
    wait_until(lambda: validators(net, 0)[victim]["status"] == "active", WAIT,
               what="the unjail committed")
    unjailed_at = net.height(0)
    back = wait_until(lambda: seat_change(net, 0, standby), WAIT * 2, interval=0.2,
                      what="the director back in its seat")
    back_start, back_signers = back
    assert victim in back_signers and standby not in back_signers
    # at the next epoch: decided at an epoch's last height, in force two heights later
    assert (back_start - 2 + 1) % EPOCH == 0 and back_start - 2 >= unjailed_at
    rows = validators(net, 0)
    assert rows[victim]["tier"] == "director" and rows[standby]["tier"] == "standby_signer"
    assert int(rows[victim]["stake"]) < 3 * UNITS_PER_HPC  # the downtime slash
    wait_until(lambda: signed_by(net, victim, back_start), WAIT, interval=0.2,
               what="a commit signed by the returned director")
    top = net.height(0)
    net.wait_all(top, timeout=WAIT)
    net.assert_same_chain(range(len(net.nodes)), top)
    # Standbys attested their liveness: an epoch has passed, their uptime counts it.
    assert all(rows[i]["uptime"] > 0 for i in range(DIRECTORS, DIRECTORS + STANDBYS)
               if i != standby)
    report(f"node{victim}: replaced from {start}, unjailed at {unjailed_at}, back from "
           f"{back_start} (epoch of {EPOCH})")


# --- 4. elimination vote ------------------------------------------------------------------


def test_an_elimination_vote_with_two_thirds_removes_a_director_and_one_without_does_not(
        poca_network: Callable[..., Network]) -> None:
    net = poca_network()
    net.start_all()
    net.wait_all(3, timeout=WAIT)
    c = net.client(0)
    keep, target = 2, 3

    # Without 2/3: the proposer and one more (6 of 12) vote, the window closes, it stays.
    proposal = c.eliminate(net.nodes[0].key, address(net, keep), "slow blocks")
    assert proposal["receipt"]["ok"]
    proposed_at = proposal["height"]
    assert c.vote_eliminate(net.nodes[1].key, address(net, keep))["receipt"]["ok"]
    net.wait_all(proposed_at + POCA["poca_eliminate_window"] + 3, timeout=WAIT)
    assert validators(net, 0)[keep]["status"] == "active"
    assert keep in seated(net, 0)

    # With more than 2/3 (9 of 12): out of the set from two heights after the last vote.
    assert c.eliminate(net.nodes[0].key, address(net, target), "double-dealing")["receipt"]["ok"]
    assert c.vote_eliminate(net.nodes[1].key, address(net, target))["receipt"]["ok"]
    assert validators(net, 0)[target]["status"] == "active"  # 6 of 12: not yet
    last = c.vote_eliminate(net.nodes[2].key, address(net, target))
    assert last["receipt"]["ok"]
    start, signers = wait_until(lambda: seat_change(net, 0, target), WAIT, interval=0.1,
                                what="the eliminated director out of the set")
    assert validators(net, 0)[target]["status"] == "eliminated"
    assert start == last["height"] + 2  # decided in the block of the deciding vote
    assert len(signers) == DIRECTORS and keep in signers
    net.wait_all(start + 3, timeout=WAIT)
    report(f"node{target} eliminated: out of the set from height {start}")
