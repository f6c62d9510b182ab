"""The compute module on a real chain: providers, jobs, assignment, commit-reveal, quorum,
payment, slashing, deadlines, cancelling, and two chains fed the same blocks agreeing.

The test code plays the workers: it reads each provider's assignments from state, runs the
task with the real wasmtime ``TaskRunner`` and sends signed commit and reveal transactions.
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from framework.chain import ChainNet

from smartchain.compute import TaskRunner
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.module import Bank, get_account, total_minted, total_supply
from smartchain.modules.compute import module as cm
from smartchain.modules.compute.module import (
    Compute,
    Slot,
    assignments,
    get_module,
    get_provider,
    job_outputs,
    job_view,
    swrr_pick,
)
from smartchain.modules.compute.types import (
    MODULE_ACCOUNT,
    CancelJob,
    CommitResult,
    CommitResults,
    Deregister,
    PostJob,
    RegisterProvider,
    ReleaseOutput,
    ReleaseOutputs,
    RevealResult,
    RevealResults,
    commitment,
    output_digest,
)
from smartchain.modules.contracts.module import Contracts
from smartchain.modules.tokens.module import Tokens
from smartchain.state.chain import Chain
from smartchain.state.params import Params
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Receipt

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "compute"
HPC = 10**8
STAKE = 100 * HPC
CAPABILITY = 1_000_000_000  # fuel/s
FUEL = 1_000_000
PRICE = 3
TEXT = (b"It was the best of times, it was the worst of times, it was the age of wisdom, "
        b"it was the age of foolishness,\nit was the epoch of belief, it was the epoch of "
        b"incredulity,\tit was the season of Light, it was the season of Darkness ") * 3
RUNNER = TaskRunner()


def key(i: int) -> PrivateKey:
    return PrivateKey.from_seed(bytes([i]) * 32)


REQUESTER = key(60)
PROVIDERS = [key(61 + i) for i in range(5)]
PROPOSER = key(69)


def wasm(name: str) -> bytes:
    return (EXAMPLES / f"{name}.wasm").read_bytes()


def slices(text: bytes, words_per_task: int) -> tuple[bytes, ...]:
    """Cut at whitespace so no word is split: the slicer's job, done by the client."""
    words = text.split()
    return tuple(b" ".join(words[i:i + words_per_task])
                 for i in range(0, len(words), words_per_task))


def u64(data: bytes) -> int:
    return struct.unpack("<Q", data)[0]


class Net(ChainNet):
    """The compute tests' chain: fees are kept per sender, for the books."""

    gas_limit = 20_000_000

    def __init__(self, kit: Any, chain: Chain) -> None:
        super().__init__(kit, chain, PROPOSER)
        self.fees: Counter[bytes] = Counter()

    def on_block(self, checked: list[Any], receipts: list[Receipt]) -> None:
        for c, r in zip(checked, receipts, strict=True):
            self.fees[c.sender] += r.fee

    def balance(self, k: PrivateKey | bytes) -> int:
        address = k if isinstance(k, bytes) else k.address
        return self.read(get_account, address).balance

    def post(self, tasks: tuple[bytes, ...], *, module: str = "wordcount", redundancy: int = 2,
             fuel: int = FUEL, deadline: int = 5, reduce: bytes = b"", price: int = PRICE) -> int:
        receipt = self.ok(REQUESTER, PostJob(wasm(module), tasks, fuel, price, deadline,
                                             redundancy, reduce))
        (event,) = [e.to_json() for e in receipt.events if e.kind == "compute_job_post"]
        return int(event["attributes"]["job"])

    def register(self, providers: list[PrivateKey], capabilities: list[int] | None = None,
                 *, owner: bytes = bytes(20), network: str = "") -> None:
        caps = capabilities or [CAPABILITY] * len(providers)
        receipts = self.block(*(self.sign(p, RegisterProvider(c, STAKE, owner, network))
                                for p, c in zip(providers, caps, strict=True)))
        assert all(r.ok for r in receipts), [r.log for r in receipts]


class Workers:
    """Honest workers by default; ``cheats`` reveal a wrong count, ``silent`` never answer,
    ``abstains`` report a machine-dependent error (a native stack overflow), ``hoarders``
    never release an output they were paid for."""

    def __init__(self, net: Net, keys: list[PrivateKey], *, cheats: tuple[PrivateKey, ...] = (),
                 silent: tuple[PrivateKey, ...] = (), abstains: tuple[PrivateKey, ...] = (),
                 hoarders: tuple[PrivateKey, ...] = ()) -> None:
        self.net = net
        self.keys = keys
        self.cheats = {k.address for k in cheats}
        self.silent = {k.address for k in silent}
        self.abstains = {k.address for k in abstains}
        self.hoarders = {k.address for k in hoarders}
        self.results: dict[tuple[bytes, int, int], tuple[bytes, str, int]] = {}

    def result(self, k: PrivateKey, a: cm.Assignment) -> tuple[bytes, str, int]:
        module = self.net.read(get_module, a.module_hash)
        res = RUNNER.run(module, a.input, fuel=a.fuel)
        output = res.output
        if k.address in self.abstains:
            return b"", "trap: native stack overflow (machine-dependent)", res.fuel_used
        if k.address in self.cheats and res.ok:
            output = struct.pack("<Q", u64(output) + 1)
        return output, res.error, res.fuel_used

    def answer(self, k: PrivateKey, a: cm.Assignment) -> Any:
        """The message a worker sends for one assignment (None: nothing to send)."""
        slot = (k.address, a.job, a.task)
        if a.action == "commit":
            self.results[slot] = out = self.result(k, a)
            return CommitResult(a.job, a.task, commitment(*out, k.address, a.salt))
        if a.action == "reveal":
            output, error, fuel = self.results[slot]
            return RevealResult(a.job, a.task, output_digest(output, a.salt), error, fuel)
        if a.action == "release" and k.address not in self.hoarders:
            return ReleaseOutputs((ReleaseOutput(a.job, a.task, self.results[slot][0]),))
        return None

    def txs(self) -> list[bytes]:
        raws = []
        for k in self.keys:
            if k.address in self.silent:
                continue
            for a in self.net.read(assignments, k.address):
                msg = self.answer(k, a)
                if msg is not None:
                    raws.append(self.net.sign(k, msg))
        return raws

    def run(self, job_id: int, max_blocks: int = 60) -> cm.JobView:
        for _ in range(max_blocks):
            receipts = self.net.block(*self.txs())
            assert all(r.ok for r in receipts), [r.log for r in receipts if not r.ok]
            view = self.net.read(job_view, job_id)
            if view.status not in ("open", "cancelling"):
                return view
        raise AssertionError(f"job {job_id} did not finish in {max_blocks} blocks")


def params(**kw: Any) -> Params:
    return Params(compute_min_stake=10 * HPC, **kw)


@pytest.fixture
def make_net(chainkit) -> Any:
    opened: list[Chain] = []

    def make(name: str = "a", **kw: Any) -> Net:
        gen = chainkit.genesis({k: 10_000 * HPC for k in [REQUESTER, *PROVIDERS]},
                               params=params(**kw))
        chain = Chain(chainkit.root / name, gen,
                      modules=[Bank(), Tokens(), Contracts(), Compute()])
        opened.append(chain)
        return Net(chainkit, chain)

    yield make
    for chain in opened:
        chain.close()


@pytest.fixture
def net(make_net: Any) -> Net:
    return make_net()



def winners(view: cm.JobView) -> Counter[bytes]:
    """Units paid per provider by a finished job, recomputed from its task records."""
    paid: Counter[bytes] = Counter()
    for t in view.tasks:
        if t.status == "verified":
            for r in t.replicas:
                if r.status == "revealed" and (r.digest, r.error, r.fuel_used) == (
                        t.digest, t.error, t.fuel_used):
                    paid[r.provider] += t.fuel_used * PRICE
    return paid


# --- providers ---------------------------------------------------------------------------------


def test_register_locks_stake_and_deregister_returns_it(net: Net) -> None:
    p = PROVIDERS[0]
    before = net.balance(p)
    net.ok(p, RegisterProvider(CAPABILITY, STAKE))
    info = net.read(get_provider, p.address)
    assert (info.capability, info.stake, info.reputation, info.active) == (
        CAPABILITY, STAKE, 1_000, True)
    assert net.balance(MODULE_ACCOUNT) == STAKE
    assert net.balance(p) == before - STAKE - net.fees[p.address]
    low = net.send(PROVIDERS[1], RegisterProvider(CAPABILITY, HPC))
    assert low.code == Code.FAILED and "below the minimum" in low.log
    net.ok(p, Deregister())
    assert net.balance(p) == before - net.fees[p.address]
    assert not net.read(get_provider, p.address).active
    assert net.send(p, Deregister()).code == Code.FAILED


def test_zero_capability_is_refused_before_the_mempool(net: Net) -> None:
    with pytest.raises(TxError) as err:
        net.kit.check(net.chain, net.sign(PROVIDERS[0], RegisterProvider(0, STAKE)))
    assert err.value.code == Code.INVALID_PAYLOAD


# --- a whole job --------------------------------------------------------------------------------


def test_wordcount_job_verifies_pays_and_returns_the_unused_escrow(net: Net) -> None:
    net.register(PROVIDERS[:3])
    supply0, minted0 = net.read(total_supply), net.read(total_minted)
    tasks = slices(TEXT, 7)
    start = net.balance(REQUESTER)
    job_id = net.post(tasks, reduce=wasm("sum_u64"))
    assert net.balance(MODULE_ACCOUNT) == 3 * STAKE + len(tasks) * 2 * FUEL * PRICE
    placed = sum(len(net.read(assignments, p.address)) for p in PROVIDERS[:3])
    assert placed == 2 * len(tasks)  # assigned when posted: r = 2 replicas on 2 providers
    view = Workers(net, PROVIDERS[:3]).run(job_id)
    assert view.status == "done"
    assert all(t.status == "verified" and t.error == "" for t in view.tasks)
    for t in view.tasks:
        assert len({r.provider for r in t.replicas}) == 2
    outputs = net.read(job_outputs, job_id)
    assert [u64(o) for o in outputs] == [len(s.split()) for s in tasks]
    reduced = RUNNER.run(wasm("sum_u64"), b"".join(outputs), fuel=FUEL)  # client-side reduce
    assert u64(reduced.output) == len(TEXT.split())
    assert view.job.reduce_hash is not None and net.read(get_module, view.job.reduce_hash)
    paid = winners(view)
    assert sum(paid.values()) == view.job.paid > 0 and view.job.escrow == 0
    for p in PROVIDERS[:3]:
        info = net.read(get_provider, p.address)
        assert net.balance(p) == 10_000 * HPC - STAKE - net.fees[p.address] + paid[p.address]
        assert info.load == 0 and info.reserved == 0 and info.slashed == 0
        assert info.reputation > 1_000 and info.verified_fuel > 0
        assert net.read(assignments, p.address) == []
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address] - view.job.paid
    assert net.balance(MODULE_ACCOUNT) == 3 * STAKE
    # only the epoch mint (docs/rewards.md) moved it
    assert net.read(total_supply) - supply0 == net.read(total_minted) - minted0
    net.ok(PROVIDERS[0], Deregister())  # nothing held any more: the stake comes back


def test_tasks_queue_while_providers_are_full_and_are_placed_whole(make_net: Any) -> None:
    # each provider has room for one replica at a time: two tasks of two replicas queue
    net = make_net()
    net.register(PROVIDERS[:2], [FUEL // 5, FUEL // 5])
    job_id = net.post(slices(TEXT, 20))
    view = net.read(job_view, job_id)
    assert [t.status for t in view.tasks].count("assigned") == 1
    waiting = [t for t in view.tasks if t.status == "pending"]
    assert waiting and all(t.replicas == () for t in waiting)  # no half-placed task
    wait = Params().compute_place_wait_blocks  # it holds nothing: it may wait, not for ever
    assert all(t.deadline == net.chain.height + wait for t in waiting)
    assert Workers(net, PROVIDERS[:2]).run(job_id).status == "done"


def test_a_task_error_is_a_result_paid_for_its_fuel_and_nobody_is_punished(net: Net) -> None:
    net.register(PROVIDERS[:2])
    job_id = net.post((struct.pack("<Q", 27), struct.pack("<Q", 97)), module="collatz",
                      fuel=200)
    view = Workers(net, PROVIDERS[:2]).run(job_id)
    assert [(t.status, t.error, t.fuel_used) for t in view.tasks] == [
        ("verified", "out of fuel", 200)] * 2
    assert view.job.paid == 2 * 2 * 200 * PRICE
    for p in PROVIDERS[:2]:
        assert net.read(get_provider, p.address).slashed == 0


# --- faults --------------------------------------------------------------------------------------


def test_a_cheater_is_outvoted_by_adaptive_replication_and_slashed(net: Net) -> None:
    net.register(PROVIDERS[:4])
    cheater = PROVIDERS[3]
    tasks = slices(TEXT, 5)
    start = net.balance(REQUESTER)
    job_id = net.post(tasks)
    view = Workers(net, PROVIDERS[:4], cheats=(cheater,)).run(job_id)
    assert view.status == "done"
    assert [u64(t.output) for t in view.tasks] == [len(s.split()) for s in tasks]
    disputed = [t for t in view.tasks if any(r.provider == cheater.address for r in t.replicas)]
    assert disputed and all(t.want == 3 and len(t.replicas) == 3 for t in disputed)
    bad = net.read(get_provider, cheater.address)
    slashed = bad.slashed
    assert slashed > 0 and bad.stake == STAKE - slashed
    assert bad.reputation < 1_000 and bad.load == 0
    assert net.balance(cheater) == 10_000 * HPC - STAKE - net.fees[cheater.address]
    for p in PROVIDERS[:3]:
        assert net.read(get_provider, p.address).slashed == 0
    paid = winners(view)
    assert cheater.address not in paid and sum(paid.values()) == view.job.paid
    # the slashed stake paid the extra replicas; what is left went back to the requester
    assert net.balance(REQUESTER) == (start - net.fees[REQUESTER.address] - view.job.paid
                                      + slashed)


def test_a_silent_provider_is_replaced_after_the_deadline(net: Net) -> None:
    net.register(PROVIDERS[:4])
    silent = PROVIDERS[0]
    tasks = slices(TEXT, 6)
    job_id = net.post(tasks, deadline=3)
    assert net.read(assignments, silent.address)  # it was given work
    view = Workers(net, PROVIDERS[:4], silent=(silent,)).run(job_id)
    assert view.status == "done"
    assert [u64(t.output) for t in view.tasks] == [len(s.split()) for s in tasks]
    expired = [r for t in view.tasks for r in t.replicas if r.status == "expired"]
    assert expired and {r.provider for r in expired} == {silent.address}
    info = net.read(get_provider, silent.address)
    assert info.slashed > 0 and info.stake == STAKE - info.slashed and info.load == 0
    assert info.reputation < 1_000 and info.misses >= 3 and not info.active
    assert net.read(assignments, silent.address) == []


def test_a_machine_dependent_error_abstains_and_another_replica_decides(net: Net) -> None:
    net.register(PROVIDERS[:3])
    tasks = slices(TEXT, 9)
    job_id = net.post(tasks)
    odd = PROVIDERS[2]
    view = Workers(net, PROVIDERS[:3], abstains=(odd,)).run(job_id)
    assert [u64(t.output) for t in view.tasks] == [len(s.split()) for s in tasks]
    abstained = [r for t in view.tasks for r in t.replicas if r.status == "abstained"]
    assert abstained and {r.provider for r in abstained} == {odd.address}
    info = net.read(get_provider, odd.address)
    assert (info.slashed, info.reputation, info.load) == (0, 1_000, 0)
    assert odd.address not in winners(view)


def test_without_a_majority_the_task_fails_and_its_escrow_returns(make_net: Any) -> None:
    net = make_net(compute_max_extra_replicas=0)
    net.register(PROVIDERS[:2])
    start = net.balance(REQUESTER)
    job_id = net.post((b"a b c",))
    view = Workers(net, PROVIDERS[:2], cheats=(PROVIDERS[1],)).run(job_id)
    assert view.status == "done" and view.job.failed == 1 and view.job.paid == 0
    assert view.tasks[0].status == "failed"
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address]
    for p in PROVIDERS[:2]:  # nobody can tell who was wrong: nobody is slashed
        assert net.read(get_provider, p.address).slashed == 0


def test_a_task_that_loses_too_many_replicas_fails(make_net: Any) -> None:
    net = make_net(compute_max_reassign=0)
    net.register(PROVIDERS[:3])
    job_id = net.post((b"a b c",), deadline=2)
    holders = [r.provider for r in net.read(job_view, job_id).tasks[0].replicas]
    silent = next(p for p in PROVIDERS if p.address == holders[0])
    view = Workers(net, PROVIDERS[:3], silent=(silent,)).run(job_id)
    assert view.tasks[0].status == "failed" and view.job.paid == 0
    assert all(net.read(get_provider, p.address).load == 0 for p in PROVIDERS[:3])


def test_a_reveal_that_does_not_match_the_commitment_is_refused(net: Net) -> None:
    net.register(PROVIDERS[:2])
    job_id = net.post((b"one two three",))
    a, b = PROVIDERS[:2]
    count = struct.pack("<Q", 3)
    fuel = RUNNER.run(wasm("wordcount"), b"one two three", fuel=FUEL).fuel_used
    net.block(*(net.sign(p, CommitResult(job_id, 0, commitment(count, "", fuel, p.address)))
                for p in (a, b)))
    wrong = net.send(a, RevealResult(job_id, 0, output_digest(struct.pack("<Q", 4)), "", fuel))
    assert wrong.code == Code.FAILED and "does not match the commitment" in wrong.log
    copied = net.send(a, RevealResult(job_id, 0, output_digest(count), "", fuel + 1))
    assert copied.code == Code.FAILED
    net.block(*(net.sign(p, RevealResult(job_id, 0, output_digest(count), "", fuel))
                for p in (a, b)))
    net.ok(b, ReleaseOutputs((ReleaseOutput(job_id, 0, count),)))
    view = net.read(job_view, job_id)
    assert view.status == "done" and u64(view.tasks[0].output) == 3


def test_batched_answers_verify_and_a_bad_item_fails_the_whole_batch(net: Net) -> None:
    net.register(PROVIDERS[:2])
    texts = (b"one two three", b"a b", b"x")
    job_id = net.post(texts)
    a, b = PROVIDERS[:2]
    outs = [(struct.pack("<Q", len(t.split())), "",
             RUNNER.run(wasm("wordcount"), t, fuel=FUEL).fuel_used) for t in texts]

    def commits(p: PrivateKey, *, spoil: int = -1) -> CommitResults:
        return CommitResults(tuple(
            CommitResult(job_id, i, commitment(*o, p.address) if i != spoil else bytes(32))
            for i, o in enumerate(outs)))

    root = net.chain.state_root
    assert net.send(a, CommitResults((*commits(a).commits, CommitResult(job_id, 7, bytes(32))))
                    ).code == Code.FAILED  # task 7 does not exist: nothing of it applies
    assert net.chain.state_root != root  # the fee was paid...
    assert all(t.status == "assigned" for t in net.read(job_view, job_id).tasks)  # ...only
    net.block(net.sign(a, commits(a)), net.sign(b, commits(b, spoil=1)))
    reveal = RevealResults(tuple(RevealResult(job_id, i, output_digest(o[0]), *o[1:])
                                 for i, o in enumerate(outs)))
    bad = net.send(b, reveal)
    assert bad.code == Code.FAILED and "reveal for job" in bad.log and "task 1" in bad.log
    net.ok(a, reveal)
    view = net.read(job_view, job_id)
    assert [t.status for t in view.tasks] == ["committed"] * 3  # b's batch changed nothing
    net.ok(b, RevealResults((reveal.reveals[0], reveal.reveals[2])))
    view = net.read(job_view, job_id)
    assert [t.status for t in view.tasks] == ["agreed", "committed", "agreed"]
    for msg, reason in [(CommitResults(()), "1 to 1024"),
                        (CommitResults(commits(a).commits[:1] * 2), "names a task twice"),
                        (RevealResults((RevealResult(job_id, 0, output_digest(b"x"), "trap",
                                                     1),)), "no output"),
                        (ReleaseOutputs(()), "1 to 1024")]:
        with pytest.raises(TxError, match=reason):
            net.kit.check(net.chain, net.sign(a, msg))



def test_a_replica_placed_after_a_public_reveal_cannot_copy_it_to_get_paid(net: Net) -> None:
    """A revealed, B never revealed and lost its replica; C, placed after A's reveal was on
    chain, commits to A's digest without running the task. Every live replica commits again
    to the new round's salt, so the copy matches nobody and earns nothing."""
    net.register(PROVIDERS[:4])
    job_id = net.post((b"one two three four",), deadline=3)
    a, b = (next(k for k in PROVIDERS if k.address == r.provider)
            for r in net.read(job_view, job_id).tasks[0].replicas)
    workers = Workers(net, [a, b])
    net.block(*workers.txs())  # both commit
    workers.keys = [a]
    net.block(*workers.txs())  # a reveals: its digest is public, in a block and in state
    (seen,) = [r for r in net.read(job_view, job_id).tasks[0].replicas if r.status == "revealed"]
    while net.read(get_provider, b.address).misses == 0:  # b misses its deadline
        net.block()
    (late,) = [r.provider for r in net.read(job_view, job_id).tasks[0].replicas
               if r.provider not in (a.address, b.address)]
    c = next(k for k in PROVIDERS if k.address == late)
    copy = cm.digest_commitment(seen.digest, seen.error, seen.fuel_used, c.address)
    net.ok(c, CommitResult(job_id, 0, copy))
    net.block(*workers.txs())  # a answers what it owes now
    net.send(c, RevealResult(job_id, 0, seen.digest, seen.error, seen.fuel_used))
    workers.keys = [k for k in PROVIDERS[:4] if k is not c]  # c does nothing more
    view = workers.run(job_id)
    assert view.tasks[0].status == "verified" and u64(view.tasks[0].output) == 4
    assert c.address not in winners(view)
    assert net.balance(c) == 10_000 * HPC - STAKE - net.fees[c.address]  # never paid
    assert net.read(get_provider, c.address).slashed > 0  # and its silence cost stake


def test_a_commitment_cannot_be_copied_from_another_provider(net: Net) -> None:
    net.register(PROVIDERS[:2])
    job_id = net.post((b"a b",))
    a, b = PROVIDERS[:2]
    out = (struct.pack("<Q", 2), "", RUNNER.run(wasm("wordcount"), b"a b", fuel=FUEL).fuel_used)
    theirs = commitment(*out, a.address)
    net.block(net.sign(a, CommitResult(job_id, 0, theirs)),
              net.sign(b, CommitResult(job_id, 0, theirs)))  # b copies a's hash
    net.ok(a, RevealResult(job_id, 0, output_digest(out[0]), *out[1:]))
    assert net.send(b, RevealResult(job_id, 0, output_digest(out[0]),
                                    *out[1:])).code == Code.FAILED


def test_only_an_assigned_provider_can_commit_or_reveal(net: Net) -> None:
    net.register(PROVIDERS[:3])
    job_id = net.post((b"a b c",), redundancy=2)
    view = net.read(job_view, job_id)
    holders = {r.provider for r in view.tasks[0].replicas}
    outsider = next(p for p in PROVIDERS[:3] if p.address not in holders)  # registered, idle
    refused = net.send(outsider, CommitResult(job_id, 0, bytes(32)))
    assert refused.code == Code.FAILED and "not assigned" in refused.log
    assert net.send(outsider, RevealResult(job_id, 0, bytes(32), "", 1)).code == Code.FAILED
    assert net.send(REQUESTER, CommitResult(job_id, 9, bytes(32))).code == Code.FAILED
    assert net.send(REQUESTER, CommitResult(99, 0, bytes(32))).code == Code.FAILED


def test_a_provider_holding_work_cannot_deregister(net: Net) -> None:
    net.register(PROVIDERS[:2])
    net.post((b"a b c",))
    refused = net.send(PROVIDERS[0], Deregister())
    assert refused.code == Code.FAILED and "holds 1 replicas" in refused.log


def test_cancel_before_any_commit_returns_the_whole_escrow_and_frees_the_providers(
        net: Net) -> None:
    net.register(PROVIDERS[:2])
    start = net.balance(REQUESTER)
    job_id = net.post(slices(TEXT, 10))
    assert net.send(PROVIDERS[0], CancelJob(job_id)).code == Code.FAILED  # not the requester
    net.ok(REQUESTER, CancelJob(job_id))
    view = net.read(job_view, job_id)
    assert view.status == "cancelled" and view.job.paid == 0 and view.job.escrow == 0
    assert {t.status for t in view.tasks} == {"cancelled"}
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address]
    for p in PROVIDERS[:2]:
        info = net.read(get_provider, p.address)
        assert (info.load, info.reserved) == (0, 0)
        assert net.read(assignments, p.address) == []
    assert net.balance(MODULE_ACCOUNT) == 2 * STAKE
    assert net.send(REQUESTER, CancelJob(job_id)).code == Code.FAILED


def test_a_cancel_sent_after_a_reveal_does_not_take_the_workers_pay(net: Net) -> None:
    """The red-team case: the requester sees a reveal in gossip and front-runs the other
    reveal with a cancel. The committed task runs on and is paid; the uncommitted ones are
    cancelled and refunded at once."""
    net.register(PROVIDERS[:3])
    tasks = slices(TEXT, 10)
    start = net.balance(REQUESTER)
    job_id = net.post(tasks)
    workers = Workers(net, PROVIDERS[:3])
    first = [a for a in net.read(job_view, job_id).tasks[0].replicas]
    holders = [next(k for k in PROVIDERS if k.address == r.provider) for r in first]
    for k in holders:  # only task 0 is worked on
        (a,) = [a for a in net.read(assignments, k.address) if a.task == 0]
        net.ok(k, workers.answer(k, a))
    reveal = workers.answer(holders[0], next(a for a in net.read(assignments, holders[0].address)
                                             if a.task == 0))
    late = workers.answer(holders[1], next(a for a in net.read(assignments, holders[1].address)
                                           if a.task == 0))
    assert isinstance(reveal, RevealResult) and not hasattr(reveal, "output")  # a hash only
    receipts = net.block(net.sign(holders[0], reveal), net.sign(REQUESTER, CancelJob(job_id)),
                         net.sign(holders[1], late))
    assert all(r.ok for r in receipts), [r.log for r in receipts]
    view = net.read(job_view, job_id)
    assert view.status == "cancelling"
    assert view.tasks[0].status == "agreed" and view.job.paid > 0  # paid before any output
    assert {t.status for t in view.tasks[1:]} == {"cancelled"}
    # the cancelled tasks' budgets are back already: only task 0's stays locked or paid
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address] - 2 * FUEL * PRICE
    assert net.read(job_outputs, job_id)[0] is None
    view = workers.run(job_id)
    assert view.status == "cancelled" and view.tasks[0].status == "verified"
    assert u64(view.tasks[0].output) == len(tasks[0].split())
    paid = winners(view)
    assert set(paid) == {k.address for k in holders} and sum(paid.values()) == view.job.paid
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address] - view.job.paid
    for p in PROVIDERS[:3]:
        assert net.read(get_provider, p.address).load == 0


def test_the_output_is_on_chain_only_after_its_payment(net: Net) -> None:
    net.register(PROVIDERS[:2])
    job_id = net.post((b"one two three four",))
    workers = Workers(net, PROVIDERS[:2])
    for _ in range(2):  # commits, then reveals
        net.block(*workers.txs())
    view = net.read(job_view, job_id)
    assert view.tasks[0].status == "agreed" and view.job.paid > 0
    assert view.tasks[0].output == b"" and net.read(job_outputs, job_id) == [None]
    for block in net.blocks:  # no transaction so far carried the output
        for raw in block.txs:
            assert struct.pack("<Q", 4) not in raw
    owed = {a.action for p in PROVIDERS[:2] for a in net.read(assignments, p.address)}
    assert owed == {"release"}
    wrong = net.send(REQUESTER, ReleaseOutputs((ReleaseOutput(job_id, 0, struct.pack("<Q", 5)),)))
    assert wrong.code == Code.FAILED and "does not match" in wrong.log
    assert net.send(PROVIDERS[0], Deregister()).code == Code.FAILED  # owes the output
    view = workers.run(job_id)
    assert view.status == "done" and net.read(job_outputs, job_id) == [struct.pack("<Q", 4)]
    assert all(net.read(assignments, p.address) == [] for p in PROVIDERS[:2])


def test_winners_who_never_release_the_output_give_their_pay_back(net: Net) -> None:
    net.register(PROVIDERS[:2])
    start = net.balance(REQUESTER)
    job_id = net.post((b"one two three four",))
    view = Workers(net, PROVIDERS[:2], hoarders=tuple(PROVIDERS[:2])).run(job_id)
    assert view.status == "done" and view.tasks[0].status == "failed"
    assert net.read(job_outputs, job_id) == [None]
    assert net.balance(REQUESTER) > start - net.fees[REQUESTER.address]  # refund + penalty
    for p in PROVIDERS[:2]:
        info = net.read(get_provider, p.address)
        earned = net.balance(p) - (10_000 * HPC - STAKE - net.fees[p.address])
        assert info.slashed > earned > 0  # the pay came back out of the stake, and more
        assert info.misses == 1



def test_withholding_a_paid_output_never_pays_even_when_the_pay_exceeds_the_stake(
        net: Net) -> None:
    """Two colluding providers agree on an output and keep it: they were paid on agreement,
    so what they give back must cover the pay. A replica is only placed on a provider whose
    stake, beyond what its other replicas hold bonded, covers the most the replica pays."""
    net.register(PROVIDERS[:2])
    price, fuel = 2 * 10**7, 2_000  # a replica pays up to 400 HPC, 985 fuel = 197 HPC
    rich = PostJob(wasm("wordcount"), (b"one two three four",), fuel, price, 5)
    refused = net.send(REQUESTER, rich)
    assert refused.code == Code.FAILED and "stake of at least" in refused.log
    for p in PROVIDERS[:2]:  # enough stake for one such replica, not two
        net.ok(p, RegisterProvider(CAPABILITY, 4 * STAKE))
    start = {p.address: net.balance(p) + net.read(get_provider, p.address).stake
             for p in PROVIDERS[:2]}
    job_id = net.post((b"one two three four", b"five six"), fuel=fuel, price=price)
    view = net.read(job_view, job_id)
    assert [t.status for t in view.tasks] == ["assigned", "pending"]  # bond: one at a time
    assert net.read(get_provider, PROVIDERS[0].address).bonded == fuel * price
    workers = Workers(net, PROVIDERS[:2], hoarders=tuple(PROVIDERS[:2]))
    net.block(*workers.txs())  # commits
    net.ok(REQUESTER, CancelJob(job_id))  # the waiting task goes, the committed one runs on
    view = workers.run(job_id)
    assert [t.status for t in view.tasks] == ["failed", "cancelled"] and view.job.paid > 0
    for p in PROVIDERS[:2]:
        info = net.read(get_provider, p.address)
        assert net.balance(p) + info.stake < start[p.address] - net.fees[p.address]
        assert info.bonded == 0 and info.load == 0


def test_a_replica_outvoted_before_the_winners_withhold_the_output_is_not_fined_again(
        net: Net) -> None:
    net.register(PROVIDERS[:3])
    job_id = net.post((b"a b c",))
    (first,) = [k for k in PROVIDERS[:3]
                if k.address == net.read(job_view, job_id).tasks[0].replicas[0].provider]
    others = tuple(k for k in PROVIDERS[:3] if k is not first)
    view = Workers(net, PROVIDERS[:3], cheats=(first,), hoarders=others).run(job_id)
    assert view.tasks[0].status == "failed"
    cheat = net.read(get_provider, first.address)
    assert cheat.slashed == STAKE * 1_000 // 10_000  # out-voted once, nothing more
    assert cheat.misses == 0
    for k in others:
        assert net.read(get_provider, k.address).misses == 1


def test_bad_modules_are_refused_before_the_mempool(net: Net) -> None:
    importing = wasmtime.wat2wasm('(module (import "env" "f" (func)) (memory (export "memory") 1)'
                                  ' (func (export "alloc") (param i32) (result i32) i32.const 0)'
                                  ' (func (export "run") (param i32 i32) (result i64)'
                                  ' i64.const 0))')
    bad = [(b"not wasm at all", "not a WebAssembly binary"),
           (bytes(importing), "imports env.f"),
           (wasmtime.wat2wasm("(module)"), "must export memory")]
    for module, reason in bad:
        raw = net.sign(REQUESTER, PostJob(bytes(module), (b"x",), FUEL, PRICE, 5))
        with pytest.raises(TxError) as err:
            net.kit.check(net.chain, raw)
        assert err.value.code == Code.INVALID_PAYLOAD and reason in err.value.message
    raw = net.sign(REQUESTER, PostJob(wasm("wordcount"), (b"x",), FUEL, PRICE, 5, 2, b"junk"))
    with pytest.raises(TxError, match="reduce module rejected"):
        net.kit.check(net.chain, raw)
    for msg in [PostJob(wasm("wordcount"), (), FUEL, PRICE, 5),
                PostJob(wasm("wordcount"), (b"x",), FUEL, PRICE, 5, 0),
                PostJob(wasm("wordcount"), (b"x",), 0, PRICE, 5),
                PostJob(wasm("wordcount"), (b"x",), FUEL, PRICE, 0)]:
        with pytest.raises(TxError):
            net.kit.check(net.chain, net.sign(REQUESTER, msg))


def test_a_job_the_requester_cannot_pay_for_fails_and_changes_nothing(net: Net) -> None:
    net.register(PROVIDERS[:2])
    big = PostJob(wasm("wordcount"), (b"x",) * 2, 10**11, 10**2, 500)  # 4 * 10^13 units
    failed = net.send(REQUESTER, big)
    assert failed.code == Code.INSUFFICIENT_FUNDS
    assert net.balance(MODULE_ACCOUNT) == 2 * STAKE
    assert all(net.read(assignments, p.address) == [] for p in PROVIDERS[:2])


# --- capacity is never locked for ever --------------------------------------------------------


def test_a_job_needing_more_unrelated_providers_than_exist_is_refused(net: Net) -> None:
    net.register(PROVIDERS[:2])
    start = net.balance(REQUESTER)
    refused = net.send(REQUESTER, PostJob(wasm("wordcount"), (b"a b",), FUEL, PRICE, 5, 3))
    assert refused.code == Code.FAILED and "redundancy 3 needs" in refused.log
    assert "there are 2" in refused.log
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address]  # only the fee
    assert net.balance(MODULE_ACCOUNT) == 2 * STAKE
    assert all(net.read(get_provider, p.address).load == 0 for p in PROVIDERS[:2])


def test_a_task_that_cannot_get_its_extra_replica_fails_at_its_deadline(net: Net) -> None:
    """Two providers disagree and no third exists: the replicas' capacity is released at
    the job's deadline, the task fails and the requester gets its escrow back."""
    net.register(PROVIDERS[:2])
    start = net.balance(REQUESTER)
    job_id = net.post((b"a b c",), deadline=4)
    workers = Workers(net, PROVIDERS[:2], cheats=(PROVIDERS[1],))
    net.block(*workers.txs())  # commits
    net.block(*workers.txs())  # reveals: no majority, a third replica wanted
    view = net.read(job_view, job_id)
    (task,) = view.tasks
    assert task.status == "pending" and task.want == 3 and task.deadline == net.chain.height + 4
    assert all(net.read(get_provider, p.address).load == 1 for p in PROVIDERS[:2])
    view = workers.run(job_id, max_blocks=5)
    assert view.status == "done" and view.tasks[0].status == "failed"
    for p in PROVIDERS[:2]:
        info = net.read(get_provider, p.address)
        assert (info.load, info.reserved, info.slashed) == (0, 0, 0)
        assert net.read(assignments, p.address) == []
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address]


def test_every_replica_a_provider_holds_has_an_end(net: Net) -> None:
    """Whatever the providers do, a job ends within its deadlines and nothing stays held."""
    net.register(PROVIDERS[:3])
    job_id = net.post(slices(TEXT, 8), deadline=3)
    view = Workers(net, PROVIDERS[:3], silent=(PROVIDERS[0],), cheats=(PROVIDERS[1],),
                   hoarders=(PROVIDERS[2],)).run(job_id, max_blocks=80)
    assert view.status == "done"
    for p in PROVIDERS[:3]:
        info = net.read(get_provider, p.address)
        assert (info.load, info.reserved) == (0, 0)
        assert net.read(assignments, p.address) == []


# --- placing in end_block is bounded and fair ------------------------------------------------


def jam(net: Net, tasks: int) -> tuple[int, int]:
    """Post a job of ``tasks`` tasks (redundancy 2) nobody can ever place, and return
    (filler, jam) job ids. PROVIDERS[1] is kept full by a one-task filler job, so the jam
    waits; then PROVIDERS[0], the only other provider, declares PROVIDERS[1] its owner."""
    busy, other = PROVIDERS[1], PROVIDERS[0]
    net.register([busy], [1_000_000])
    filler = net.post((b"fill",), redundancy=1, fuel=5_000_000)  # 1,000,000 fuel/s: all of it
    net.register([other], [300_000])
    stuck = net.post(tuple(b"x %d" % i for i in range(tasks)))  # 200,000 fuel/s
    assert {t.status for t in net.read(job_view, stuck).tasks} == {"pending"}
    net.ok(other, RegisterProvider(300_000, 0, busy.address))
    return filler, stuck


def test_a_flood_of_tasks_nobody_can_place_does_not_hold_up_a_later_job(net: Net) -> None:
    """More stuck tasks than one block used to retry sit at the front of the queue; a later
    job's task, which waited only for room, is placed as soon as there is room."""
    busy = PROVIDERS[1]
    filler, stuck = jam(net, 1_100)
    later = net.post((b"later job",), redundancy=1, fuel=2_500_000)  # 500,000 fuel/s
    assert net.read(job_view, later).tasks[0].status == "pending"  # nobody has room yet
    worker = Workers(net, [busy])
    worker.run(filler)  # the busy provider's capacity is free again
    (task,) = net.read(job_view, later).tasks
    assert task.status != "pending" and [r.provider for r in task.replicas] == [busy.address]
    view = worker.run(later)
    assert view.tasks[0].status == "verified"
    jammed = net.read(job_view, stuck)
    assert jammed.status == "open" and all(t.replicas == () for t in jammed.tasks)


def test_end_block_never_spends_more_provider_looks_than_its_budget(make_net: Any) -> None:
    """Each block's placing stays within the budget, however many tasks wait: placing one
    replica looks at every provider at least once, so the tasks placed in a block times
    the providers is a floor for the looks it reports."""
    budget = 120
    net = make_net(compute_place_looks_per_block=budget)
    providers = PROVIDERS[:4]
    net.register(providers, [200_000] * 4)  # room for one replica each
    job_id = net.post(tuple(b"t %d" % i for i in range(40)), redundancy=1)
    placed = sum(t.status != "pending" for t in net.read(job_view, job_id).tasks)
    assert placed == 4
    net.block(*(net.sign(k, RegisterProvider(100 * 200_000, 0)) for k in providers))
    per_block = []
    for _ in range(20):
        done = sum(t.status != "pending" for t in net.read(job_view, job_id).tasks)
        stats = net.read(cm.placing)
        assert stats.height == net.chain.height and stats.looks <= budget
        assert stats.placed == done - placed and (done - placed) * len(providers) <= stats.looks
        per_block.append(done - placed)
        placed = done
        if placed == 40:
            break
        net.block()
    assert placed == 40 and max(per_block) < 36  # all placed, over several blocks


def test_a_partly_placed_task_gets_its_missing_replica_before_a_fresh_task(net: Net) -> None:
    """A third replica is wanted after a disagreement, and an older job's fresh task waits
    for the same provider: the partly placed task gets it, or the work its replicas
    committed would fail unpaid at its deadline."""
    small, large = 10 * HPC, 100 * HPC  # only the large stake backs a 12 HPC replica bond
    net.block(*(net.sign(k, RegisterProvider(1_000_000, stake))
                for k, stake in zip(PROVIDERS[:3], [small, small, large], strict=True)))
    third = PROVIDERS[2]
    filler = net.post((b"fill",), redundancy=1, fuel=6_000_000, deadline=10, price=200)
    fresh = net.post((b"older fresh task",), redundancy=1, fuel=3_000_000, price=400)
    short = net.post((b"a b c",), fuel=2_500_000)  # on the two others: no room on the third
    assert net.read(job_view, fresh).tasks[0].status == "pending"
    pair = Workers(net, PROVIDERS[:2], cheats=(PROVIDERS[1],))
    net.block(*pair.txs())  # commits
    net.block(*pair.txs())  # reveals disagree: a third replica is wanted
    (task,) = net.read(job_view, short).tasks
    assert task.status == "pending" and task.want == 3 and len(task.replicas) == 2
    alone = Workers(net, [third])
    net.block(*alone.txs())  # the filler's commit
    net.block(*alone.txs())  # its reveal: the third provider's capacity is free
    (task,) = net.read(job_view, short).tasks
    assert third.address in {r.provider for r in task.replicas if r.status == "assigned"}
    assert net.read(job_view, fresh).tasks[0].replicas == ()  # no room left for it
    for _ in range(30):
        views = [net.read(job_view, j) for j in (filler, fresh, short)]
        if all(v.status == "done" for v in views):
            break
        receipts = net.block(*pair.txs(), *alone.txs())
        assert all(r.ok for r in receipts), [r.log for r in receipts if not r.ok]
    assert [v.tasks[0].status for v in views] == ["verified"] * 3


def test_a_task_nobody_can_ever_place_fails_within_the_wait_and_its_escrow_returns(
        make_net: Any) -> None:
    wait = 8
    net = make_net(compute_place_wait_blocks=wait)
    start = net.balance(REQUESTER)
    filler, stuck = jam(net, 3)
    posted = net.read(job_view, stuck).job.height
    assert all(t.deadline == posted + wait for t in net.read(job_view, stuck).tasks)
    Workers(net, [PROVIDERS[1]]).run(filler)
    while net.chain.height < posted + wait:
        net.block()
    view = net.read(job_view, stuck)
    assert view.status == "done" and view.job.finished == posted + wait
    assert [t.status for t in view.tasks] == ["failed"] * 3
    assert all(t.replicas == () for t in view.tasks) and view.job.escrow == 0
    net.block()
    assert net.read(cm.placing).height <= posted + wait  # nothing is retried any more
    paid = net.read(job_view, filler).job.paid
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address] - paid


# --- Sybil resistance -------------------------------------------------------------------------


def test_new_identities_declaring_a_huge_capability_do_not_take_the_tasks(net: Net) -> None:
    honest, sybils = PROVIDERS[:3], PROVIDERS[3:5]
    net.register(honest)
    Workers(net, honest).run(net.post(slices(TEXT, 10)))  # the honest have verified work
    net.register(sybils, [1000 * CAPABILITY] * 2)
    job_id = net.post(slices(TEXT, 2))
    view = net.read(job_view, job_id)
    bad = {k.address for k in sybils}
    held = Counter(r.provider in bad for t in view.tasks for r in t.replicas)
    captured = sum({r.provider for r in t.replicas} <= bad for t in view.tasks)
    assert held[True] <= 0.45 * (held[True] + held[False])  # about an equal share (2 of 5)
    assert captured <= 0.2 * len(view.tasks), captured


def test_replicas_never_go_to_providers_sharing_an_owner_or_a_network(net: Net) -> None:
    operator = key(90).address
    net.register(PROVIDERS[:2], owner=operator)  # one operator's two machines
    net.register(PROVIDERS[2:4], network="203.0.114.7")  # two machines in one /24
    assert net.read(get_provider, PROVIDERS[3].address).network == "203.0.114.0/24"
    refused = net.send(REQUESTER, PostJob(wasm("wordcount"), (b"a",), FUEL, PRICE, 5, 3))
    assert refused.code == Code.FAILED and "there are 2" in refused.log
    job_id = net.post(slices(TEXT, 3))
    view = Workers(net, PROVIDERS[:4]).run(job_id)
    assert view.status == "done" and view.job.verified == len(view.tasks)
    pairs = {frozenset(PROVIDERS.index(next(k for k in PROVIDERS if k.address == r.provider))
                       for r in t.replicas) for t in view.tasks}
    assert frozenset({0, 1}) not in pairs and frozenset({2, 3}) not in pairs
    with pytest.raises(TxError, match="not an IP address or a host name"):
        net.kit.check(net.chain, net.sign(PROVIDERS[4], RegisterProvider(
            CAPABILITY, STAKE, bytes(20), "no such host!")))


def test_a_provider_holding_work_cannot_change_its_owner_or_network(net: Net) -> None:
    net.register(PROVIDERS[:2])
    net.post((b"a b",))
    moved = net.send(PROVIDERS[0], RegisterProvider(CAPABILITY, 0, bytes(20), "203.0.114.7"))
    assert moved.code == Code.FAILED and "owner and network stay" in moved.log
    net.ok(PROVIDERS[0], RegisterProvider(2 * CAPABILITY, 0))  # other terms may change


def test_misses_cost_stake_and_registering_again_forgives_none(make_net: Any) -> None:
    net = make_net(compute_max_misses=1)
    net.register(PROVIDERS[:3])
    silent = PROVIDERS[0]
    start = net.balance(REQUESTER)
    job_id = net.post((b"a b c", b"d e"), deadline=2)
    view = Workers(net, PROVIDERS[:3], silent=(silent,)).run(job_id)
    info = net.read(get_provider, silent.address)
    assert info.misses >= 1 and not info.active and info.stake < STAKE
    lost = STAKE - info.stake
    # the stake it lost went to the requester, with the escrow the job did not spend
    assert net.balance(REQUESTER) == start - net.fees[REQUESTER.address] - view.job.paid + lost
    net.ok(silent, RegisterProvider(CAPABILITY, 0))
    again = net.read(get_provider, silent.address)
    assert again.active and again.misses == info.misses and again.stake == info.stake
    job_id = net.post((b"f g h",), deadline=2)
    while silent.address not in {r.provider for r in net.read(job_view, job_id).tasks[0].replicas}:
        job_id = net.post((b"f g h",), deadline=2)
    Workers(net, PROVIDERS[:3], silent=(silent,)).run(job_id)
    after = net.read(get_provider, silent.address)
    assert not after.active and after.stake < again.stake  # one more miss: off again, and paid


def test_a_replica_reporting_other_fuel_than_the_quorum_is_outvoted_and_not_credited(
        net: Net) -> None:
    net.register(PROVIDERS[:3])
    job_id = net.post((b"a b c",))
    workers = Workers(net, PROVIDERS[:3])
    (liar,) = [k for k in PROVIDERS[:3]
               if k.address == net.read(job_view, job_id).tasks[0].replicas[0].provider]
    honest = workers.result

    def inflated(k: PrivateKey, a: cm.Assignment) -> tuple[bytes, str, int]:
        out, err, fuel = honest(k, a)
        return (out, err, FUEL) if k is liar else (out, err, fuel)

    workers.result = inflated  # type: ignore[method-assign]
    view = workers.run(job_id)
    (task,) = view.tasks
    assert task.status == "verified" and task.fuel_used < FUEL
    info = net.read(get_provider, liar.address)
    assert info.slashed > 0 and info.verified_fuel == 0
    assert liar.address not in winners(view)


# --- scheduling --------------------------------------------------------------------------------


def shares(slots: list[Slot], tasks: int, redundancy: int, rate: int, *,
           release: bool) -> Counter[bytes]:
    got: Counter[bytes] = Counter()
    for t in range(tasks):
        chosen: list[Slot] = []
        for _ in range(redundancy):
            s = swrr_pick(slots, rate, {c.address for c in chosen}, t.to_bytes(4, "big"))
            assert s is not None
            chosen.append(s)
            got[s.address] += 1
        if release:  # tasks finish before the next one: a steady state
            for s in chosen:
                s.reserved -= rate
    return got


@pytest.mark.parametrize(("redundancy", "release"), [(1, True), (2, True), (2, False)])
def test_swrr_shares_follow_capability_within_20_percent(redundancy: int, release: bool) -> None:
    caps = [1_000_000, 2_000_000, 3_000_000, 4_000_000, 7_000_000]
    slots = [Slot(bytes([i]) * 20, c, c) for i, c in enumerate(caps)]
    got = shares(slots, 300, redundancy, rate=5_000, release=release)
    total = sum(got.values())
    assert total == 300 * redundancy
    for s, c in zip(slots, caps, strict=True):
        want = c / sum(caps)
        assert abs(got[s.address] / total - want) <= 0.2 * want, (got, caps)
    for s in slots:
        assert s.reserved <= s.capacity


def test_swrr_never_overloads_and_waits_when_everyone_is_full() -> None:
    slots = [Slot(b"a" * 20, 10, 10), Slot(b"b" * 20, 30, 30)]
    got = Counter()
    while (s := swrr_pick(slots, 5, ())) is not None:
        got[s.address] += 1
    assert got == {b"a" * 20: 2, b"b" * 20: 6}  # 10/5 and 30/5: then nobody has room
    assert all(s.reserved <= s.capacity for s in slots)


def provider(capability: int, stake: int, verified_fuel: int) -> cm.Provider:
    return cm.Provider(capability, stake, 1_000, verified_fuel, 0, 0, 0, 0, True, 0, 0, 0, 1,
                       bytes(20), "")


def test_weight_is_verified_work_capped_by_stake_never_the_declared_capability() -> None:
    p = Params(compute_probation_weight=1_000, compute_weight_per_hpc=10_000)
    assert cm.effective_capability(provider(10**12, 100 * HPC, 0), p) == 1_000  # probation
    assert cm.effective_capability(provider(10**12, 100 * HPC, 5_000), p) == 6_000
    # a share of the tasks needs a proportional stake: twice the stake, twice the weight
    assert cm.effective_capability(provider(10**12, 20 * HPC, 10**9), p) == 200_000
    assert cm.effective_capability(provider(10**12, 40 * HPC, 10**9), p) == 400_000
    assert cm.effective_capability(provider(3_000, 100 * HPC, 10**9), p) == 3_000


def test_network_addresses_group_by_slash_24_and_private_ones_say_nothing() -> None:
    assert cm.network_group("203.0.114.7") == cm.network_group("203.0.114.200:26656") \
        == "203.0.114.0/24"
    assert cm.network_group("2a00:1450:4001:81c::200e") == "2a00:1450:4001::/48"
    assert cm.network_group("[2a00:1450:4001:9::1]:26656") == "2a00:1450:4001::/48"
    for private in ("", "127.0.0.1", "10.1.2.3", "192.168.0.9:1", "::1"):
        assert cm.network_group(private) == ""
    assert cm.network_group("Node-1.Example.com:26656") == "node-1.example.com"
    for bad in ("not a host!", "a..b", "x" * 300):
        with pytest.raises(ValueError):
            cm.network_group(bad)


def test_the_rotation_continues_across_jobs_on_chain(make_net: Any) -> None:
    net = make_net(compute_probation_weight=10**15, compute_weight_per_hpc=10**12)  # no caps
    net.register(PROVIDERS[:3], [CAPABILITY, 2 * CAPABILITY, 3 * CAPABILITY])
    got: Counter[bytes] = Counter()
    for i in range(12):
        job_id = net.post((b"w" * (i + 1),), redundancy=1)
        (replica,) = net.read(job_view, job_id).tasks[0].replicas
        got[replica.provider] += 1
    counts = [got[p.address] for p in PROVIDERS[:3]]
    assert sum(counts) == 12
    assert all(abs(c - w) <= 1 for c, w in zip(counts, [2, 4, 6], strict=True)), counts


# --- determinism ---------------------------------------------------------------------------------


def test_two_chains_fed_the_same_blocks_reach_the_same_state_root(make_net: Any) -> None:
    net = make_net("a")
    net.register(PROVIDERS[:4])
    job_id = net.post(slices(TEXT, 5), deadline=3)
    view = Workers(net, PROVIDERS[:4], cheats=(PROVIDERS[3],), silent=(PROVIDERS[0],)).run(job_id)
    assert view.status == "done"
    twin = make_net("b")
    for block in net.blocks:
        twin.chain.apply_block(block, twin.kit.checked_of_block(twin.chain, block.txs))
    assert twin.chain.state_root == net.chain.state_root
    assert twin.chain.height == net.chain.height
