"""Compute jobs through a real node: the HTTP routes, the SDK and ``smart compute``.

One node for the module and no provider nodes: two keys are registered as providers (a job
nobody can take is refused first), and the last test plays them (assignments read over the
API, tasks run with the real ``TaskRunner``, commit, reveal and release sent with the SDK)
while ``smart compute run`` follows the job to its reduced result. The
state-level behaviour (quorum, slashing, deadlines) is tested in ``test_compute_module.py``.
Tests that need no providers run first (pytest keeps file order).
"""

from __future__ import annotations

import re
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from framework.harness import NodeProcess
from test_api import Api
from test_cli import Cli, assert_error, keyed_cli, ok_json

from smartchain.cli.common import CliError
from smartchain.client import Client, SimulationFailed, posted_job_id
from smartchain.compute import TaskRunner
from smartchain.compute.jobspec import (
    JobError,
    load_spec,
    parse_spec,
    slice_bytes,
    slice_params,
    slice_records,
)
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.compute.cli import parse_provide

SMART_NODE_CHAIN_ID = "smart-compute-api-test-1"
HPC = 10**8
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "compute"


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_compute_api/" + tag.encode()))


REQUESTER = _key("requester")
WORKERS = [_key("worker0"), _key("worker1")]
CLI_KEYS = {"alice": _key("alice"), "bob": _key("bob")}
SMART_NODE_GENESIS = [(k.address, 1_000 * HPC)
                      for k in (REQUESTER, *WORKERS, *CLI_KEYS.values())]


def addr(key: PrivateKey) -> str:
    return to_bech32(key.address)


def wasm(name: str) -> bytes:
    return (EXAMPLES / f"{name}.wasm").read_bytes()


@pytest.fixture(scope="module")
def client(smart_node: NodeProcess) -> Client:
    return smart_node.client


@pytest.fixture(scope="module")
def cli(smart_node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    home = Path(tmp_path_factory.mktemp("compute-cli")) / "smart-home"
    return keyed_cli(home, smart_node.url or "", CLI_KEYS)


# --- the spec parser and slicers (no node) -----------------------------------------------------


def test_slice_records_keeps_separators_and_groups() -> None:
    data = b"a b\nc\nd e f\ng\n"
    assert slice_records(data, b"\n", 2) == [b"a b\nc\n", b"d e f\ng\n"]
    assert slice_records(data, b"\n", 3) == [b"a b\nc\nd e f\n", b"g\n"]
    assert slice_records(b"x;y;z", b";", 1) == [b"x;", b"y;", b"z"]
    assert slice_records(b"", b"\n", 1) == []
    with pytest.raises(ValueError):
        slice_records(data, b"", 1)


@pytest.mark.parametrize("size", [1, 3, 7, 16, 50, 1000])
def test_slice_bytes_cuts_on_whitespace(size: int) -> None:
    text = (EXAMPLES / "wordcount.txt").read_bytes()
    text += b"averyveryveryverylongwordindeed\tend"
    slices = slice_bytes(text, size)
    assert b"".join(slices) == text  # contiguous: nothing lost, nothing repeated
    assert sum(len(s.split()) for s in slices) == len(text.split())  # no word split
    for s in slices[:-1]:
        assert s[-1:].isspace()
        assert len(s) <= size or not any(c in s[:-1] for c in b" \t\n\r\v\f")


def test_slice_bytes_sizes() -> None:
    assert slice_bytes(b"aa bb cc dd", 6) == [b"aa bb ", b"cc dd"]
    assert slice_bytes(b"abcdefgh ij", 3) == [b"abcdefgh ", b"ij"]
    assert slice_bytes(b"abcdefgh", 3) == [b"abcdefgh"]


def test_slice_params_packs_u64_little_endian() -> None:
    assert slice_params([1, 2**64 - 1]) == [struct.pack("<Q", 1), b"\xff" * 8]
    assert slice_params([[7, 100]]) == [struct.pack("<QQ", 7, 100)]
    for bad in ([], [-1], [2**64], ["3"], [1.5], "1"):
        with pytest.raises(JobError):
            slice_params(bad)


def test_parse_spec(tmp_path: Path) -> None:
    (tmp_path / "m.wasm").write_bytes(b"not wasm")
    spec = parse_spec({"module": "m.wasm", "input": "one two\nthree\n",
                       "slice": {"by": "records", "per_task": 1}}, tmp_path)
    assert spec.module == b"not wasm" and spec.inputs == [b"one two\n", b"three\n"]
    assert (spec.redundancy, spec.deadline_blocks, spec.reduce) == (2, 20, b"")
    spec = parse_spec({"module": "m.wasm", "input": "x", "redundancy": 3,
                       "fuel_per_task": 5, "max_price_per_fuel": 2}, tmp_path)
    assert spec.inputs == [b"x"] and spec.escrow == 1 * 3 * 5 * 2
    errors = [
        ({"input": "x"}, "module: missing"),
        ({"module": "nope.wasm", "input": "x"}, "cannot read"),
        ({"module": "m.wasm"}, "give input"),
        ({"module": "m.wasm", "input": "x", "input_file": "y"}, "give one of"),
        ({"module": "m.wasm", "input": "x", "input_stored": "00" * 32}, "give one of"),
        ({"module": "m.wasm", "input_stored": "abc"}, "64 hex digits"),
        ({"module": "m.wasm", "input_stored": "00" * 32}, "read when the job is run"),
        ({"module": "m.wasm", "input": "x", "colour": 1}, "unknown keys ['colour']"),
        ({"module": "m.wasm", "input": "x", "slice": {"by": "lines"}}, "by ="),
        ({"module": "m.wasm", "input": "x", "slice": {"by": "bytes"}}, "slice.size"),
        ({"module": "m.wasm", "input": "x", "slice": {"by": "params", "values": [1]}},
         "give no input"),
        ({"module": "m.wasm", "input": "x", "redundancy": 0}, "redundancy"),
        ({"module": "m.wasm", "input": "", "slice": {"by": "bytes", "size": 4}}, "empty"),
    ]
    for doc, fragment in errors:
        with pytest.raises(JobError) as exc:
            parse_spec(doc, tmp_path)
        assert fragment in exc.value.message, (doc, exc.value.message)
    stored = {bytes(range(32)): b"a b c d e f"}  # what `smart store get` would return
    spec = parse_spec({"module": "m.wasm", "input_stored": bytes(range(32)).hex(),
                       "slice": {"by": "bytes", "size": 4}}, tmp_path, stored.__getitem__)
    assert b"".join(spec.inputs) == b"a b c d e f" and len(spec.inputs) == 3


def test_shipped_specs_parse_and_run_locally() -> None:
    runner = TaskRunner()
    wc = load_spec(EXAMPLES / "wordcount.toml")
    assert len(wc.inputs) > 1 and b"".join(wc.inputs) == (EXAMPLES / "wordcount.txt").read_bytes()
    outs = [runner.run(wc.module, i, fuel=wc.fuel_per_task).output for i in wc.inputs]
    total = runner.run(wc.reduce, b"".join(outs), fuel=10**9).output
    assert int.from_bytes(total, "little") == len((EXAMPLES / "wordcount.txt").read_bytes().split())
    pi = load_spec(EXAMPLES / "pi.toml")
    assert pi.inputs[0] == struct.pack("<QQ", 1, 20000) and pi.reduce == wasm("sum_u64")
    sweep = load_spec(EXAMPLES / "sweep.toml")
    assert sweep.inputs[6] == struct.pack("<Q", 7) and not sweep.reduce


def test_parse_provide() -> None:
    assert parse_provide(["compute=2"]) == {"compute": 2}
    assert parse_provide(None) == {}
    for bad, fragment in (("compute=0", "positive"),
                          ("compute", "compute=N"), ("gpu=1", "compute=N")):
        with pytest.raises(CliError) as exc:
            parse_provide([bad])
        assert fragment in exc.value.message


# --- routes -----------------------------------------------------------------------------------


def test_routes_and_errors(api: Api) -> None:
    assert api.ok("/v1/compute/providers") == {"providers": []}
    nobody = to_bech32(h256(b"nobody")[:20])
    assert api.ok(f"/v1/compute/providers/{nobody}/assignments")["assignments"] == []
    cases = [
        ("/v1/compute/providers/smart1bogus", 400, "invalid_address"),
        (f"/v1/compute/providers/{nobody}", 404, "not_found"),
        ("/v1/compute/providers/smart1bogus/assignments", 400, "invalid_address"),
        ("/v1/compute/jobs/abc", 400, "malformed"),
        ("/v1/compute/jobs/-1", 400, "malformed"),
        ("/v1/compute/jobs/99999999999999999999", 400, "malformed"),
        ("/v1/compute/jobs/424242", 404, "not_found"),
        ("/v1/compute/jobs/424242/result", 404, "not_found"),
        ("/v1/compute/jobs/x/result", 400, "malformed"),
        ("/v1/compute/modules/zz", 400, "malformed"),
        (f"/v1/compute/modules/{'ab' * 32}", 404, "not_found"),
    ]
    for path, status, code in cases:
        r = api.get(path)  # Api checks the error shape
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, r.text)
    status = api.status()
    assert int(status["compute_scan_gas"]) > 0 and status["max_tx_bytes"] > 0


def test_a_job_no_provider_can_take_is_refused(client: Client) -> None:
    before = client.balance(addr(REQUESTER))
    with pytest.raises(SimulationFailed) as refused:  # automatic gas: simulated, not sent
        client.post_job(REQUESTER, wasm("wordcount"), [b"a b"], redundancy=2,
                        fuel_per_task=100_000, price_per_fuel=2, deadline_blocks=10)
    assert "redundancy 2 needs" in refused.value.simulation["log"]
    assert client.balance(addr(REQUESTER)) == before
    posted = client.post_job(REQUESTER, wasm("wordcount"), [b"a b"], redundancy=2,
                             fuel_per_task=100_000, price_per_fuel=2, deadline_blocks=10,
                             gas_limit=1_000_000)  # sent anyway: it fails in the block
    assert not posted["receipt"]["ok"]
    assert "redundancy 2 needs" in posted["receipt"]["log"]
    assert client.balance(addr(REQUESTER)) == before - int(posted["receipt"]["fee"])


def test_providers_register_with_owner_and_network(client: Client) -> None:
    for k in WORKERS:
        r = client.register_compute_provider(k, capability=10**9, stake=20 * HPC,
                                             network="127.0.0.1:26656")
        assert r["receipt"]["ok"], r["receipt"]
    providers = client.compute_providers()
    assert {p["address"] for p in providers} == {addr(k) for k in WORKERS}
    one = client.compute_provider(addr(WORKERS[0]))
    assert one["stake"] == str(20 * HPC) and one["owner"] == addr(WORKERS[0])
    assert one["network"] == ""  # loopback says nothing about where a machine is


def test_post_job_is_assigned_and_shown(api: Api, client: Client) -> None:
    tasks = [b"one two three", b"four five", b"six"]
    before = client.balance(addr(REQUESTER))
    posted = client.post_job(REQUESTER, wasm("wordcount"), tasks, redundancy=2,
                             fuel_per_task=100_000, price_per_fuel=2, deadline_blocks=10_000,
                             reduce=wasm("sum_u64"))
    assert posted["receipt"]["ok"], posted["receipt"]
    escrow = 3 * 2 * 100_000 * 2
    module_hash = h256(wasm("wordcount")).hex()
    assert posted["payload"] == {
        "module_hash": module_hash, "module_size": len(wasm("wordcount")), "tasks": 3,
        "input_bytes": sum(map(len, tasks)), "redundancy": 2, "fuel_per_task": "100000",
        "price_per_fuel": "2", "deadline_blocks": "10000", "escrow": str(escrow),
        "escrow_hpc": "0.012", "reduce_hash": h256(wasm("sum_u64")).hex(),
        "reduce_size": len(wasm("sum_u64"))}
    assert int(posted["gas_limit"]) > int(posted["receipt"]["gas_used"])
    job_id = posted_job_id(posted)
    fee = int(posted["receipt"]["fee"])
    assert client.balance(addr(REQUESTER)) == before - fee - escrow

    job = client.compute_job(job_id)
    assert job == api.ok(f"/v1/compute/jobs/{job_id}")
    assert job["status"] == "open" and job["tasks"] == 3 and job["escrow"] == str(escrow)
    assert job["requester"] == addr(REQUESTER) and job["module_hash"] == module_hash
    assert job["counts"] == {"pending": 0, "assigned": 3, "committed": 0, "verified": 0,
                             "failed": 0, "cancelled": 0, "agreed": 0}
    assert [t["status"] for t in job["task_states"]] == ["assigned"] * 3
    assert all({r["provider"] for r in t["replicas"]} == {addr(k) for k in WORKERS}
               for t in job["task_states"])
    summary = client.compute_job(job_id, tasks=False)
    assert "task_states" not in summary and "counts" not in summary
    assert {k: v for k, v in job.items() if k not in ("task_states", "counts")} == summary
    r = api.get(f"/v1/compute/jobs/{job_id}?tasks=maybe")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed")

    result = client.compute_result(job_id)
    assert result["complete"] is False and result["status"] == "open"
    assert result["outputs"] == [{"index": i, "status": "assigned"} for i in range(3)]

    module = client.compute_module(module_hash)
    assert module == {"hash": module_hash, "size": len(wasm("wordcount"))}
    full = api.ok(f"/v1/compute/modules/{module_hash}?bytes=1")
    assert bytes.fromhex(full["hex"]) == wasm("wordcount")
    r = api.get(f"/v1/compute/modules/{module_hash}?bytes=yes")
    assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed")
    cancelled = client.cancel_job(REQUESTER, job_id)["receipt"]
    assert cancelled["ok"] and client.compute_job(job_id)["status"] == "cancelled"
    # nobody had committed: the whole escrow is back
    assert client.balance(addr(REQUESTER)) == before - fee - int(cancelled["fee"])


def test_cli_status_and_cancel(cli: Cli, client: Client) -> None:
    bob = addr(CLI_KEYS["bob"])
    posted = client.post_job(CLI_KEYS["bob"], wasm("collatz"), [struct.pack("<Q", 27)],
                             redundancy=1, fuel_per_task=10_000, price_per_fuel=1,
                             deadline_blocks=10_000)
    job_id = str(posted_job_id(posted))
    before = client.balance(bob)
    status, status_json, unknown, bad_id, not_mine = cli.many(
        ["compute", "status", job_id], ["compute", "status", job_id, "--json"],
        ["compute", "status", "424242"], ["compute", "status", "x1"],
        ["compute", "cancel", job_id, "--from", "alice"])
    assert status.returncode == 0, status.stderr
    assert f"{job_id} (open)" in status.stdout and "assigned 1" in status.stdout
    assert ok_json(status_json)["counts"]["assigned"] == 1
    assert_error(unknown, "no compute job 424242")
    assert_error(bad_id, "job id must be a non-negative integer")
    assert_error(not_mine, "only the requester can cancel")

    r = cli.run("compute", "cancel", job_id, "--from", "bob")
    assert r.returncode == 0 and f"job {job_id} cancelled" in r.stdout, r.stderr
    job = client.compute_job(job_id)
    assert job["status"] == "cancelled" and job["counts"]["cancelled"] == 1
    fee = int(client.tx(re.search(r"tx ([0-9a-f]{64})", r.stdout).group(1))  # type: ignore
              ["receipt"]["fee"])
    assert client.balance(bob) == before + 10_000 - fee  # the escrow came back

    providers = cli.run("compute", "providers")
    assert providers.returncode == 0 and addr(WORKERS[0]) in providers.stdout

    sweep = ok_json(cli.run("compute", "run", str(EXAMPLES / "sweep.toml"), "--from", "bob",
                            "--no-wait", "--json"))
    assert sweep["tasks"] == 12 and sweep["escrow"] == str(12 * 2 * 1_000_000)
    job = client.compute_job(sweep["job"])
    assert job["counts"]["assigned"] == 12 and job["reduce_hash"] is None
    assert client.tx(sweep["hash"])["payload"]["tasks"] == 12
    cancelled = ok_json(cli.run("compute", "cancel", sweep["job"], "--from", "bob", "--json"))
    assert cancelled["receipt"]["ok"]
    assert client.compute_job(sweep["job"])["status"] == "cancelled"


def test_cli_run_refuses_a_bad_module_and_sends_nothing(cli: Cli, client: Client,
                                                        tmp_path: Path) -> None:
    (tmp_path / "bad.wasm").write_bytes(b"\0asm garbage")
    (tmp_path / "job.toml").write_text('module = "bad.wasm"\ninput = "a b c"\n')
    (tmp_path / "broken.toml").write_text('module = "bad.wasm"\ninput = \n')
    (tmp_path / "job.json").write_text('{"module": "missing.wasm", "input": "x"}')
    before = client.account(addr(CLI_KEYS["alice"]))
    bad, broken, missing = cli.many(
        ["compute", "run", str(tmp_path / "job.toml"), "--from", "alice"],
        ["compute", "run", str(tmp_path / "broken.toml"), "--from", "alice"],
        ["compute", "run", str(tmp_path / "job.json"), "--from", "alice"])
    assert_error(bad, "bad.wasm", "nothing was sent")
    assert_error(broken, "broken.toml")
    assert_error(missing, "missing.wasm", "cannot read")
    assert client.account(addr(CLI_KEYS["alice"])) == before  # no transaction, no fee


# --- a job driven to completion: the test plays two providers ---------------------------------


class Workers:
    """Two providers answering their assignments over the API until stopped."""

    def __init__(self, client: Client, keys: list[PrivateKey]) -> None:
        self.client = client
        self.keys = keys
        self.runner = TaskRunner()
        self.modules: dict[str, bytes] = {}
        self.done: set[tuple[str, str, int, str]] = set()
        self.results: dict[tuple[str, str, int], Any] = {}
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _module(self, digest: str) -> bytes:
        if digest not in self.modules:
            doc = self.client.compute_module(digest, with_bytes=True)
            self.modules[digest] = bytes.fromhex(doc["hex"])
        return self.modules[digest]

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                for key in self.keys:
                    for a in self.client.compute_assignments(addr(key)):
                        step = (addr(key), a["job"], a["task"], a["action"])
                        if a["action"] == "wait" or step in self.done:
                            continue
                        self._answer(key, a)
                        self.done.add(step)
                time.sleep(0.2)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)

    def _answer(self, key: PrivateKey, a: dict[str, Any]) -> None:
        slot = (addr(key), a["job"], a["task"])
        if a["action"] == "commit":
            self.results[slot] = self.runner.run(self._module(a["module_hash"]),
                                                 bytes.fromhex(a["input"]), fuel=int(a["fuel"]))
        res = self.results[slot]
        if a["action"] == "release":
            self.client.release_output(key, int(a["job"]), a["task"], res.output, wait=False)
            return
        send = self.client.commit_result if a["action"] == "commit" \
            else self.client.reveal_result
        send(key, int(a["job"]), a["task"], res.output, res.error, res.fuel_used,
             salt=bytes.fromhex(a["salt"]), wait=False)


def test_wordcount_job_runs_to_the_exact_count(cli: Cli, client: Client) -> None:
    for k in WORKERS:  # active again if earlier tests' jobs made them miss deadlines
        r = client.register_compute_provider(k, capability=10**9, stake=0)
        assert r["receipt"]["ok"], r["receipt"]

    workers = Workers(client, WORKERS)
    workers.thread.start()
    try:
        r = cli.run("compute", "run", str(EXAMPLES / "wordcount.toml"), "--from", "alice",
                    "--timeout", "45")
    finally:
        workers.stop.set()
        workers.thread.join(10)
    assert not workers.errors, workers.errors
    words = len((EXAMPLES / "wordcount.txt").read_bytes().split())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(words)
    job_id = re.search(r"job (\d+):", r.stderr).group(1)  # type: ignore[union-attr]
    assert "verified" in r.stderr  # the progress bar

    job = client.compute_job(job_id)
    assert job["status"] == "done" and job["counts"]["verified"] == job["tasks"] > 1
    assert int(job["paid"]) > 0
    res, res_json, raw = cli.many(["compute", "result", job_id],
                                  ["compute", "result", job_id, "--json"],
                                  ["compute", "result", job_id, "--raw"])
    assert res.returncode == 0 and res.stdout.strip() == str(words), res.stderr
    assert ok_json(res_json)["value"] == str(words)
    counts = [int(line.split()[1]) for line in raw.stdout.splitlines()]
    assert len(counts) == job["tasks"] and sum(counts) == words
    outputs = client.compute_result(job_id)["outputs"]
    assert [int(o["value"]) for o in outputs] == counts


def test_node_start_provide_is_checked_before_anything(cli: Cli, tmp_path: Path) -> None:
    home = str(tmp_path / "no-such-home")
    storage, zero, other = cli.many(
        ["node", "start", "--home", home, "--provide", "storage=10 parsecs"],
        ["node", "start", "--home", home, "--provide", "compute=0"],
        ["node", "start", "--home", home, "--provide", "gpu=1"])
    assert_error(storage, "not a size")
    assert_error(zero, "positive number of cores")
    assert_error(other, "expected compute=N")
