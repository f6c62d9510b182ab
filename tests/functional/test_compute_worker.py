"""Compute providers as real node processes: the in-node worker (node/compute_worker.py)
registers, runs the tasks the chain assigns it and answers with commit and reveal
transactions, then releases the outputs it was paid for; a word-count job over an inline
text comes back exact. A cheating provider is
out-voted and slashed, and a provider killed mid-job does not stop the job.

What the tests observe goes through the HTTP API only: blocks, and each transaction with its
receipt (the module's events: ``compute_job_post``, ``compute_task_verified``,
``compute_slash``, ``compute_job_done``); outputs are read from the ``release_outputs``
transactions, and which providers agreed from the ``reveal_results`` ones.
"""

from __future__ import annotations

import collections
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framework.harness import HarnessError, wait_until
from framework.netharness import NetNode, Network, free_ports

from smartchain.compute import TaskRunner
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.compute.types import PostJob, output_digest, round_salt
from smartchain.node.compute_worker import Result, cheat, measure_capability
from smartchain.node.config import (
    TEST_FAULTS_ENV,
    ComputeSettings,
    ConfigError,
    FaultSettings,
    NodeConfig,
)
from smartchain.types.amount import UNITS_PER_HPC

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "compute"
TEXT = (b"It was the best of times, it was the worst of times, it was the age of wisdom, "
        b"it was the age of foolishness,\nit was the epoch of belief, it was the epoch of "
        b"incredulity,\tit was the season of Light, it was the season of Darkness ") * 4
FUEL = 1_000_000
PRICE = 1
CAPABILITY_STEP = 1_000_000_000


def slices(text: bytes, words_per_task: int) -> tuple[bytes, ...]:
    words = text.split()
    return tuple(b" ".join(words[i:i + words_per_task])
                 for i in range(0, len(words), words_per_task))


def add_provider(net: Network, key: PrivateKey, index: int, *, cheat_mode: bool = False) -> int:
    """A follower node offering one core, its key funded in genesis (see ``network``)."""
    i = len(net.nodes)
    name = f"provider{index}"
    port = free_ports(1, taken=[n.config.p2p.port for n in net.nodes])[0]
    node = NetNode(i, name, net.root / name, key, net._config(name, port), validator=False)
    node.config.p2p.seeds = [v.p2p_address for v in net.validators]
    node.config.compute = ComputeSettings(cores=1,
                                          capability_override=(index + 1) * CAPABILITY_STEP)
    node.config.faults = FaultSettings(cheat_compute=cheat_mode)
    net._init(node)
    net.nodes.append(node)
    return i


@pytest.fixture
def network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``make(signers, providers, cheaters=())`` → (net, requester key, provider indices)."""
    monkeypatch.setenv(TEST_FAULTS_ENV, "1")  # only the cheat test's config needs it
    nets: list[Network] = []

    def make(signers: int, providers: int, cheaters: tuple[int, ...] = ()
             ) -> tuple[Network, PrivateKey, list[int]]:
        requester = PrivateKey.generate()
        pkeys = [PrivateKey.generate() for _ in range(providers)]
        funded = [(requester.address, 1_000_000 * UNITS_PER_HPC)] + \
            [(k.address, 10_000 * UNITS_PER_HPC) for k in pkeys]
        net = Network(tmp_path / f"net{len(nets)}", signers, accounts=funded,
                      chain_id="smart-compute-1")
        nets.append(net)
        idx = [add_provider(net, k, j, cheat_mode=j in cheaters) for j, k in enumerate(pkeys)]
        net.start_all()
        return net, requester, idx

    yield make
    for net in nets:
        net.close()


def wait_registered(net: Network, providers: list[int], timeout: float = 30.0) -> None:
    for i in providers:
        node = net[i]
        wait_until(lambda node=node: "compute: registered on chain" in node.log_text(),
                   timeout, interval=0.1, what=f"{node.name} registered as a provider")


def post_job(net: Network, requester: PrivateKey, tasks: tuple[bytes, ...], *,
             deadline_blocks: int = 20, module: str = "wordcount.wasm") -> tuple[int, int]:
    msg = PostJob((EXAMPLES / module).read_bytes(), tasks, FUEL, PRICE,
                  deadline_blocks, 2, (EXAMPLES / "sum_u64.wasm").read_bytes())
    doc = net.client(0).send_tx(requester, "compute/post_job", msg, gas_limit=40_000_000)
    assert doc["receipt"]["ok"], doc["receipt"]["log"]
    (event,) = [e for e in doc["receipt"]["events"] if e["kind"] == "compute_job_post"]
    return int(event["attributes"]["job"]), int(doc["height"])


class JobWatch:
    """Reads every committed transaction from ``start`` on, collecting the job's reveals
    (who revealed which output hash), released outputs and events, until the job is
    done."""

    def __init__(self, net: Network, job: int, start: int) -> None:
        self.net = net
        self.job = job
        self.next = start
        self.events: list[dict[str, Any]] = []
        self.reveals: dict[int, list[tuple[str, str]]] = collections.defaultdict(list)
        self.outputs: dict[int, bytes] = {}

    def poll(self) -> bool:
        client = self.net.client(0)
        top = int(client.status()["height"])
        while self.next <= top:
            for tx_hash in client.block(self.next)["txs"]:
                doc = client.tx(tx_hash)
                receipt = doc.get("receipt") or {}
                for e in receipt.get("events", []):
                    if e["kind"].startswith("compute_") and \
                            str(e["attributes"].get("job")) == str(self.job):
                        self.events.append(e)
                if doc["kind"] == "compute/reveal_results" and receipt.get("ok"):
                    for r in doc["payload"]["reveals"]:
                        if int(r["job"]) == self.job:
                            self.reveals[r["task"]].append((doc["sender"], r["digest"]))
                if doc["kind"] == "compute/release_outputs" and receipt.get("ok"):
                    for r in doc["payload"]["releases"]:
                        if int(r["job"]) == self.job:
                            self.outputs[r["task"]] = bytes.fromhex(r["output"])
            self.next += 1
        return any(e["kind"] == "compute_job_done" for e in self.events)

    def wait(self, timeout: float) -> None:
        try:
            wait_until(self.poll, timeout, interval=0.2, what=f"job {self.job} done")
        except HarnessError as exc:
            kinds = collections.Counter(e["kind"] for e in self.events)
            raise HarnessError(f"{exc}; events so far {dict(kinds)}") from None

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] == kind]

    def count(self, tasks: int) -> int:
        """The reduced word count: the released outputs, each one a quorum of revealers
        agreed on (in the task's last round: a replica added after a public reveal starts
        a new round, with its own salt)."""
        total = 0
        states = self.net.client(0).compute_job(self.job)["task_states"]
        for t in range(tasks):
            digests = collections.Counter(d for _, d in self.reveals[t])
            salt = round_salt(self.job, t, states[t]["round"])
            votes = digests[output_digest(self.outputs[t], salt).hex()]
            assert votes >= 2, f"task {t}: the released output has no quorum in {digests}"
            total += struct.unpack("<Q", self.outputs[t])[0]
        return total


# --- units --------------------------------------------------------------------------------


def test_benchmark_gives_a_positive_integer_capability() -> None:
    cap = measure_capability(TaskRunner(), cores=2)
    assert isinstance(cap, int) and cap > 0


def test_cheat_flips_output_but_keeps_errors() -> None:
    assert cheat(Result(b"\x05\x00", "", 7)) == Result(b"\xfa\x00", "", 7)
    assert cheat(Result(b"", "out of fuel", 9)) == Result(b"", "out of fuel", 9)


def test_cheat_config_needs_the_faults_variable(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    NodeConfig(faults=FaultSettings(cheat_compute=True),
               compute=ComputeSettings(cores=1)).save(tmp_path)
    monkeypatch.delenv(TEST_FAULTS_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"\[faults\].*tests only"):
        NodeConfig.load(tmp_path)
    monkeypatch.setenv(TEST_FAULTS_ENV, "1")
    assert NodeConfig.load(tmp_path).faults.cheat_compute
    NodeConfig(compute=ComputeSettings(cores=-1)).save(tmp_path)
    with pytest.raises(ConfigError, match=r"\[compute\] cores"):
        NodeConfig.load(tmp_path)


# --- real processes -----------------------------------------------------------------------


def test_providers_run_a_word_count_job(network: Any) -> None:
    net, requester, providers = network(1, 3)
    wait_registered(net, providers)
    tasks = slices(TEXT, 9)
    job, height = post_job(net, requester, tasks)
    watch = JobWatch(net, job, height)
    watch.wait(60)
    assert len(watch.kinds("compute_task_verified")) == len(tasks)
    assert not watch.kinds("compute_slash")
    assert watch.count(len(tasks)) == len(TEXT.split())
    # Every provider did some of the work, and the requester paid only for fuel used.
    revealers = {s for rs in watch.reveals.values() for s, _ in rs}
    assert revealers == {to_bech32(net[i].key.address) for i in providers}
    # The same count from the Lua task, run in the contracts sandbox by the same workers.
    job, height = post_job(net, requester, tasks, module="wordcount.lua")
    watch = JobWatch(net, job, height)
    watch.wait(60)
    assert watch.count(len(tasks)) == len(TEXT.split())
    for i in providers:
        assert "Traceback" not in net[i].log_text()


def test_cheater_is_slashed_and_killed_provider_does_not_stop_the_job(network: Any) -> None:
    net, requester, providers = network(1, 4, cheaters=(0,))
    cheater, victim = providers[0], providers[1]
    wait_registered(net, providers)
    assert "TEST CHEAT MODE" in net[cheater].log_text()
    tasks = slices(TEXT, 6)
    job, height = post_job(net, requester, tasks, deadline_blocks=8)
    # Kill the victim as soon as it has run its first task: it holds replicas it will never
    # commit or reveal; they expire and go to other providers.
    wait_until(lambda: "compute: ran " in net[victim].log_text(), 30, interval=0.01,
               what="the victim running a task")
    net.kill(victim)
    killed_at = time.monotonic()
    watch = JobWatch(net, job, height)
    watch.wait(90)
    assert len(watch.kinds("compute_task_verified")) == len(tasks)
    assert watch.count(len(tasks)) == len(TEXT.split())
    slashed = {e["attributes"]["address"] for e in watch.kinds("compute_slash")}
    assert slashed == {to_bech32(net[cheater].key.address)}, slashed
    assert time.monotonic() - killed_at < 90
