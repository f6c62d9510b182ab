"""Lua compute tasks: modules whose first line is ``--!lua``, run in the contracts sandbox
(``smartchain/compute/lua.py``) through the same ``TaskRunner`` as WebAssembly.

The runner tests use the real sandbox (lupa); the chain test reuses the compute module
tests' chain and workers (``test_compute_module``), so a Lua job goes through assignment,
commit-reveal and verification exactly like a WebAssembly one.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from test_compute_module import (  # noqa: F401 (make_net: a fixture)
    FUEL,
    PRICE,
    PROVIDERS,
    REQUESTER,
    TEXT,
    Net,
    Workers,
    make_net,
    slices,
    u64,
    wasm,
)

from smartchain.compute import TaskResult, TaskRunner
from smartchain.compute.jobspec import JobError, check_modules, load_spec, parse_spec
from smartchain.compute.lua import (
    CHECK_FUEL,
    MAX_ERROR_TEXT,
    MAX_MODULE,
    LuaTaskRunner,
    _TaskHost,
    is_lua,
)
from smartchain.compute.result import MAX_OUTPUT
from smartchain.contracts.host import ContractError
from smartchain.contracts.vm import PERIOD
from smartchain.modules.compute import module as cm
from smartchain.modules.compute.module import job_view
from smartchain.modules.compute.types import PostJob
from smartchain.types.errors import Code, TxError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "compute"
WORDCOUNT = (EXAMPLES / "wordcount.lua").read_bytes()
BIG = 10**9


@pytest.fixture(scope="module")
def runner() -> TaskRunner:
    return TaskRunner()


def lua(body: str) -> bytes:
    """A Lua task module: the marker line, then ``body``."""
    return b"--!lua\n" + textwrap.dedent(body).encode()


def run(runner: TaskRunner, body: str, data: bytes = b"", fuel: int = BIG) -> TaskResult:
    return runner.run(lua(body), data, fuel=fuel)


def error(runner: TaskRunner, body: str, data: bytes = b"", fuel: int = BIG) -> str:
    res = run(runner, body, data, fuel)
    assert not res.ok and res.output == b"", res
    assert res.error and len(res.error) <= MAX_ERROR_TEXT
    return res.error


# --- the marker ---------------------------------------------------------------------------


@pytest.mark.parametrize(("module", "expected"), [
    (b"--!lua\nfunction run(x) return x end", True),
    (b"--!lua word count\n", True),
    (b"--!lua\r\n", True),
    (b"--!lua\tx\n", True),
    (b"--!lua", True),
    (b"--!luax\n", False),
    (b"-- !lua\n", False),
    (b" --!lua\n", False),
    (b"\xef\xbb\xbf--!lua\n", False),  # no byte-order mark: the first bytes are the marker
    (b"function run(x) return x end", False),
    (b"\0asm\x01\0\0\0", False),
    (b"", False),
])
def test_the_marker_is_the_first_line(module: bytes, expected: bool) -> None:
    assert is_lua(module) is expected


def test_lua_without_the_marker_is_not_taken_for_a_task(runner: TaskRunner) -> None:
    res = runner.run(b"function run(x) return x end", b"", fuel=FUEL)
    assert res == TaskResult(False, b"", 0, "invalid module: not a WebAssembly binary")
    assert LuaTaskRunner().check(b"function run(x) return x end") == (
        "invalid Lua task: the first line must start with --!lua")


# --- word count -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    b"", b"   ", b"one", b" one", b"one ", b"the quick  brown\tfox\njumps\n",
    b"a\vb\fc\rd e\tf\ng", b"\x00\xff \x80x\x7f", TEXT,
    (EXAMPLES / "wordcount.txt").read_bytes(),
])
def test_wordcount_is_exact_and_matches_the_wasm_module(runner: TaskRunner, text: bytes) -> None:
    res = runner.run(WORDCOUNT, text, fuel=BIG)
    assert res.ok and res.error == "", res
    assert res.output == struct.pack("<Q", len(text.split()))
    assert res.output == runner.run(wasm("wordcount"), text, fuel=BIG).output


def test_wordcount_outputs_reduce_with_the_wasm_sum(runner: TaskRunner) -> None:
    parts = slices(TEXT, 7)
    outputs = [runner.run(WORDCOUNT, p, fuel=FUEL).output for p in parts]
    total = runner.run(wasm("sum_u64"), b"".join(outputs), fuel=FUEL)
    assert u64(total.output) == len(TEXT.split())


def test_large_counts_use_all_eight_bytes(runner: TaskRunner) -> None:
    module = lua("""
        local function u64le(n)
          local t = {}
          for i = 0, 7 do t[i + 1] = (n >> (8 * i)) & 255 end
          return string.char(table.unpack(t))
        end
        function run(x) return concat(u64le(tonumber(x)), u64le(-2)) end
    """)
    res = runner.run(module, b"1234605616436508552", fuel=FUEL)
    assert res.output == struct.pack("<Qq", 1234605616436508552, -2)


# --- fuel -----------------------------------------------------------------------------------


def test_fuel_is_deterministic_and_pinned(runner: TaskRunner) -> None:
    text = b"the quick  brown\tfox\njumps\n"
    first = runner.run(WORDCOUNT, text, fuel=FUEL)
    assert all(runner.run(WORDCOUNT, text, fuel=FUEL) == first for _ in range(3))
    assert LuaTaskRunner().run(WORDCOUNT, text, fuel=FUEL) == first  # a fresh runner too
    # Fuel is part of what workers agree on: pinned here for the pinned lupa and sandbox.
    assert first.fuel_used == 4577


def test_fuel_grows_with_the_input_and_includes_compiling(runner: TaskRunner) -> None:
    short = runner.run(WORDCOUNT, b"a b", fuel=BIG).fuel_used
    longer = runner.run(WORDCOUNT, b"a b" * 100, fuel=BIG).fuel_used
    assert longer > short + 100 * 3  # at least an instruction a byte
    empty = lua("function run(x) return '' end")
    padded = lua("function run(x) return '' end\n" + "-" * 2000)
    cost = runner.run(empty, b"", fuel=BIG).fuel_used
    assert cost >= PERIOD
    assert runner.run(padded, b"", fuel=BIG).fuel_used == cost + 2001  # a unit a source byte


@pytest.mark.parametrize("fuel", [1, 100, PERIOD, 5_000])
def test_out_of_fuel_uses_the_whole_limit(runner: TaskRunner, fuel: int) -> None:
    res = runner.run(WORDCOUNT, TEXT, fuel=fuel)
    assert res == TaskResult(False, b"", fuel, "out of fuel")


@pytest.mark.parametrize("body", [
    "function run(x) while true do end end",
    "function run(x) pcall(function() while true do end end) return 'escaped' end",
    "function run(x) local co = coroutine.wrap(function() while true do end end) co() end",
    "function run(x) local s = x for i = 1, 1000000 do s = string.sub(concat(s, s), 1, 30000) "
    "end return s end",
])
def test_metering_cannot_be_escaped(runner: TaskRunner, body: str) -> None:
    assert run(runner, body, b"ab", fuel=2_000_000) == TaskResult(
        False, b"", 2_000_000, "out of fuel")


def test_enough_fuel_is_exactly_what_a_run_uses(runner: TaskRunner) -> None:
    used = runner.run(WORDCOUNT, TEXT, fuel=BIG).fuel_used
    assert runner.run(WORDCOUNT, TEXT, fuel=used).fuel_used == used
    assert runner.run(WORDCOUNT, TEXT, fuel=used // 2).error == "out of fuel"


# --- errors are results -----------------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    ("function run(x) error('boom') end", "runtime error: task:2: boom"),
    ("function run(x) error('boom', 0) end", "runtime error: boom"),
    ("function run(x) error({}) end", "runtime error: error object is a table value"),
    ("function run(x) local t = nil return t.x end",
     "runtime error: task:2: attempt to index a nil value (local 't')"),
    ("function run(x) return 1 end", "run must return one string (got an integer)"),
    ("function run(x) return true end", "run must return one string (got a boolean)"),
    ("function run(x) end", "run must return one string (got 0 values)"),
    ("function run(x) return nil end", "run must return one string (got nil)"),
    ("function run(x) return x, x end", "run must return one string (got 2 values)"),
    ("function run(x) return {} end", "run must return one string (got a table)"),
    ("function run(x) return run end", "run must return one string (got a function)"),
    ("function run(x) coroutine.yield() end",
     "runtime error: the task yielded outside a coroutine"),
    ("function run(x) local i = string.find(x, '.*', 1, false) return i end",
     "runtime error: task:2: string.find: patterns are not available in contracts "
     "(plain search only)"),
    ("function run(x) return string.find(x, '.*', 1, false) end",  # a tail call: no line
     "runtime error: string.find: patterns are not available in contracts (plain search only)"),
])
def test_task_errors(runner: TaskRunner, body: str, expected: str) -> None:
    assert error(runner, body) == expected


def test_a_failed_task_reports_the_fuel_it_used(runner: TaskRunner) -> None:
    res = run(runner, "function run(x) for i = 1, 10000 do end error('late') end")
    assert res.error == "runtime error: task:2: late"
    assert 10_000 < res.fuel_used < 20_000


def test_long_errors_are_cut(runner: TaskRunner) -> None:
    text = error(runner, "function run(x) error(string.rep('y', 900)) end")
    assert len(text) == MAX_ERROR_TEXT and text.endswith("…")


def test_memory_limit(runner: TaskRunner) -> None:
    body = "function run(x) local t = {} for i = 1, 100000000 do t[i] = i end return '' end"
    res = run(runner, body, fuel=10**9)
    assert res == TaskResult(False, b"", 10**9, "memory limit exceeded")
    small = runner.run(lua(body), b"", fuel=10**9, max_memory_bytes=1024 * 1024)
    assert small.error == "memory limit exceeded"


def test_output_limit(runner: TaskRunner) -> None:
    echo = lua("function run(x) return x end")
    assert runner.run(echo, bytes(MAX_OUTPUT), fuel=FUEL).output == bytes(MAX_OUTPUT)
    res = runner.run(echo, bytes(MAX_OUTPUT + 1), fuel=FUEL)
    assert not res.ok and res.error == (
        f"output too large: {MAX_OUTPUT + 1} bytes (limit {MAX_OUTPUT})")


def test_only_bad_arguments_raise(runner: TaskRunner) -> None:
    with pytest.raises(ValueError):
        runner.run(WORDCOUNT, b"", fuel=0)
    with pytest.raises(ValueError):
        runner.run(WORDCOUNT, b"", fuel=FUEL, max_memory_bytes=0)


def test_concurrent_tasks_agree(runner: TaskRunner) -> None:
    from concurrent.futures import ThreadPoolExecutor

    alone = runner.run(WORDCOUNT, TEXT, fuel=FUEL)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: runner.run(WORDCOUNT, TEXT, fuel=FUEL), range(16)))
    assert set(results) == {alone}


# --- determinism across processes -----------------------------------------------------------

_TASKS = {
    # pairs over string keys: Lua's string hashes are seeded per process
    "pairs": """
        function run(x)
          local t, out = {}, {}
          for i = 1, #x do t[string.sub(x, i, i + 2)] = i end
          for k, v in pairs(t) do out[#out + 1] = concat(k, "=", v) end
          return table.concat(out, ",")
        end
    """,
    "sort": """
        function run(x)
          local words = {}
          local start = 1
          while true do
            local at = string.find(x, " ", start, true)
            words[#words + 1] = string.sub(x, start, (at or #x + 1) - 1)
            if not at then break end
            start = at + 1
          end
          table.sort(words)
          return concat(table.concat(words, "|"), tostring({}), tostring(run))
        end
    """,
    "memory": """
        function run(x)
          local t = {}
          for i = 1, 100000000 do t[concat(x, i)] = {i} end
        end
    """,
}

_CHILD = """
import json, sys
from pathlib import Path
from typing import Any
from smartchain.compute import TaskRunner
runner = TaskRunner()
tasks = json.loads(sys.argv[1])
data = bytes.fromhex(sys.argv[2])
out = {}
for name, module in tasks.items():
    r = runner.run(module.encode(), data, fuel=10**8, max_memory_bytes=8 * 1024 * 1024)
    out[name] = [r.ok, r.output.hex(), r.fuel_used, r.error]
print(json.dumps(out))
"""


def test_same_output_and_fuel_in_processes_with_other_hash_seeds(runner: TaskRunner) -> None:
    tasks = {name: lua(body).decode() for name, body in _TASKS.items()}
    tasks["wordcount"] = WORDCOUNT.decode()
    runs = []
    for seed in ("0", "1", "12345"):
        proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(tasks), TEXT.hex()],
                              capture_output=True, text=True, timeout=120, check=True,
                              env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"})
        runs.append(json.loads(proc.stdout))
    assert runs[0] == runs[1] == runs[2]
    assert runs[0]["wordcount"] == [True, struct.pack("<Q", len(TEXT.split())).hex(),
                                    runner.run(WORDCOUNT, TEXT, fuel=10**8).fuel_used, ""]
    assert runs[0]["pairs"][0] and runs[0]["sort"][0]
    assert runs[0]["memory"][2:] == [10**8, "memory limit exceeded"]


# --- no chain access -----------------------------------------------------------------------


def test_no_chain_function_or_python_object_is_reachable(runner: TaskRunner) -> None:
    res = run(runner, """
      function run(x)
        local seen, found = {}, {}
        local function walk(v, path)
          local t = type(v)
          if t == "userdata" then found[#found + 1] = path end
          if t ~= "table" or seen[v] then return end
          seen[v] = true
          for k, x in pairs(v) do walk(x, concat(path, ".", tostring(k))) end
          local mt = getmetatable(v)
          if mt then walk(mt, concat(path, "<mt>")) end
        end
        walk(_ENV, "_ENV")
        walk(getmetatable(""), "string<mt>")
        local names = {"storage", "token", "emit", "transfer", "balance", "call", "ctx",
                       "python", "_G", "load", "require", "os", "io", "debug", "print"}
        local present = {}
        for _, n in ipairs(names) do
          if _ENV[n] ~= nil then present[#present + 1] = n end
        end
        return concat(#found, ":", table.concat(present, ","))
      end
    """)
    assert res.output == b"0:", res


CHAIN_GLOBALS = (b"storage", b"token", b"emit", b"transfer", b"balance", b"call")


def test_chain_globals_are_gone_even_by_computed_name(runner: TaskRunner) -> None:
    for name in CHAIN_GLOBALS:
        first, rest = name[:2].decode(), name[2:].decode()
        body = f"function run(x) return type(_ENV[concat('{first}', '{rest}')]) end"
        assert run(runner, body).output == b"nil"


def test_the_task_host_refuses_every_chain_call() -> None:
    host = _TaskHost(b"ctx=nil --!lua\n")
    for call, args in [(host.get, (b"k",)), (host.transfer, (b"x", 1)),
                       (host.balance, (b"x",)), (host.emit, (b"e", False)),
                       (host.token_transfer, (b"T", b"x", 1)), (host.enter, (b"x", b"f"))]:
        with pytest.raises(ContractError, match="no chain access"):
            call(*args)


def test_contracts_keep_their_chain_functions() -> None:
    """Removing the chain's globals from a task VM leaves every contract VM alone."""
    from smartchain.contracts.memhost import MemoryHost
    from smartchain.contracts.vm import LuaVM
    from smartchain.crypto.address import to_bech32

    TaskRunner().run(WORDCOUNT, b"x", fuel=FUEL)
    host = MemoryHost()
    vm = LuaVM(host)
    address = bytes([0xC0]) + bytes(19)
    host.sources[address] = b"function f() return type(storage), type(call), type(ctx) end"
    host.begin(address)
    text = to_bech32(address).encode()
    out = vm.invoke(text, b"f", (), gas=FUEL, caller=text, value=0, origin=text, height=1,
                    time_ms=0)
    assert out.results == (b"table", b"function", b"table")


# --- checking modules -------------------------------------------------------------------------


def test_valid_modules_pass_the_check(runner: TaskRunner) -> None:
    assert runner.check(WORDCOUNT) == ""
    assert runner.check(lua("local run2 = 1\nfunction run(x) return x end\nreturn 5")) == ""
    assert runner.check(lua("run = function(x) return x end")) == ""


@pytest.mark.parametrize(("body", "expected"), [
    ("function run(x) return x", "invalid Lua task: syntax error: task:2: 'end' expected "
                                 "near <eof>"),
    ("function run(x) return 1.5 end",
     "invalid Lua task: line 2: floating-point numbers are not allowed (float literal, or "
     "an integer literal beyond 64 bits)"),
    ("function run(x) return x / 2 end", "invalid Lua task: line 2: the '/' operator is not "
                                         "allowed (it produces floats); use '//' for integer "
                                         "division"),
    ("function run(x) return x .. x end", "invalid Lua task: line 2: the '..' operator is not "
                                          "allowed (its copying cost cannot be metered); use "
                                          "concat(a, b, ...)"),
    ("x = 1", "Lua task must define a global function run(input)"),
    ("run = 'not a function'", "Lua task must define a global function run(input)"),
    ("local function run(x) return x end", "Lua task must define a global function run(input)"),
    ("type = function() return 'function' end",  # cannot fool the check
     "Lua task must define a global function run(input)"),
    ("function run(x) return x end run = nil", "Lua task must define a global function run(input)"),
    ("error('at load')", "invalid Lua task: its top level failed: task:2: at load"),
    ("storage.set('k', 1) function run(x) return x end",
     "invalid Lua task: its top level failed: task:2: attempt to index a nil value "
     "(global 'storage')"),
    ("while true do end function run(x) return x end",
     f"invalid Lua task: its top level needs more than {CHECK_FUEL} fuel"),
])
def test_bad_modules_fail_the_check(runner: TaskRunner, body: str, expected: str) -> None:
    module = lua(body)
    assert runner.check(module) == expected
    assert runner.run(module, b"x", fuel=FUEL) == TaskResult(False, b"", 0, expected)


def test_too_large_and_binary_modules(runner: TaskRunner) -> None:
    big = lua("function run(x) return x end\n" + "-" * MAX_MODULE)
    assert runner.check(big) == f"module too large: {len(big)} bytes (limit {MAX_MODULE})"
    binary = b"--!lua\n" + b"\x1bLua\x54\x00" + bytes(20)
    assert runner.check(binary).startswith("invalid Lua task: syntax error: task:2:")


def test_check_module_accepts_lua_and_refuses_bad_lua_before_the_mempool(net: Net) -> None:
    cm.check_module(WORDCOUNT)
    for body, reason in [("function run(x) return 1.5 end", "floating-point"),
                         ("x = 1", "must define a global function run"),
                         ("function run(", "syntax error")]:
        with pytest.raises(TxError) as err:
            cm.check_module(lua(body))
        assert err.value.code == Code.INVALID_PAYLOAD
        assert err.value.message.startswith("module rejected: ") and reason in err.value.message
        raw = net.sign(REQUESTER, PostJob(lua(body), (b"x",), FUEL, PRICE, 5))
        with pytest.raises(TxError) as err:
            net.kit.check(net.chain, raw)
        assert err.value.code == Code.INVALID_PAYLOAD and reason in err.value.message
    net.kit.check(net.chain, net.sign(REQUESTER, PostJob(WORDCOUNT, (b"x",), FUEL, PRICE, 5)))
    raw = net.sign(REQUESTER, PostJob(WORDCOUNT, (b"x",), FUEL, PRICE, 5, 2, lua("x = 1")))
    with pytest.raises(TxError, match="reduce module rejected: Lua task must define"):
        net.kit.check(net.chain, raw)


# --- a Lua job on the chain -------------------------------------------------------------------


@pytest.fixture
def net(make_net: Any) -> Net:  # noqa: F811 (make_net: the imported fixture)
    return make_net()


def test_lua_wordcount_job_runs_to_verification(net: Net) -> None:
    net.register(PROVIDERS[:3])
    tasks = slices(TEXT, 7)
    receipt = net.ok(REQUESTER, PostJob(WORDCOUNT, tasks, FUEL, PRICE, 5, 2, wasm("sum_u64")))
    (event,) = [e.to_json() for e in receipt.events if e.kind == "compute_job_post"]
    job_id = int(event["attributes"]["job"])
    view = Workers(net, PROVIDERS[:3]).run(job_id)
    assert view.status == "done"
    runner = TaskRunner()
    for t, data in zip(view.tasks, tasks, strict=True):
        assert t.status == "verified" and t.error == ""
        assert u64(t.output) == len(data.split())
        assert t.fuel_used == runner.run(WORDCOUNT, data, fuel=FUEL).fuel_used
    total = runner.run(wasm("sum_u64"), b"".join(t.output for t in view.tasks), fuel=FUEL)
    assert u64(total.output) == len(TEXT.split())


def test_lua_task_errors_verify_and_a_cheater_is_outvoted(net: Net) -> None:
    """A task that fails (here: on input 'bad') is a verified error, paid by fuel; a worker
    that changes a good answer loses the vote."""
    module = lua("""
        function run(x)
          if x == "bad" then error("bad input", 0) end
          return string.char(#x, 0, 0, 0, 0, 0, 0, 0)
        end
    """)
    net.register(PROVIDERS[:4])
    receipt = net.ok(REQUESTER, PostJob(module, (b"good", b"bad"), FUEL, PRICE, 5, 2))
    (event,) = [e.to_json() for e in receipt.events if e.kind == "compute_job_post"]
    job_id = int(event["attributes"]["job"])
    view = Workers(net, PROVIDERS[:4], cheats=(PROVIDERS[0],)).run(job_id)
    assert view.status == "done"
    good, bad = view.tasks
    assert (good.status, u64(good.output)) == ("verified", 4)
    assert (bad.status, bad.output, bad.error) == ("verified", b"", "runtime error: bad input")
    assert bad.fuel_used == TaskRunner().run(module, b"bad", fuel=FUEL).fuel_used
    assert net.read(job_view, job_id).status == "done"


# --- the CLI's job specs ----------------------------------------------------------------------


def test_the_shipped_lua_spec_loads_checks_and_counts(runner: TaskRunner) -> None:
    spec = load_spec(EXAMPLES / "wordcount_lua.toml")
    assert spec.module == WORDCOUNT and spec.module_name.endswith("wordcount.lua")
    check_modules(spec)
    outputs = [runner.run(spec.module, data, fuel=spec.fuel_per_task) for data in spec.inputs]
    assert all(o.ok for o in outputs)
    total = runner.run(spec.reduce, b"".join(o.output for o in outputs), fuel=spec.reduce_fuel)
    text = (EXAMPLES / "wordcount.txt").read_bytes()
    assert u64(total.output) == len(text.split()) == 120


def test_a_spec_with_a_bad_lua_module_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nomarker.lua").write_bytes(b"function run(x) return x end")
    (tmp_path / "float.lua").write_bytes(lua("function run(x) return 0.5 end"))
    for name, reason in [("nomarker.lua", "first line must start with --!lua"),
                         ("float.lua", "floating-point numbers are not allowed")]:
        spec = parse_spec({"module": name, "input": "a b c"}, tmp_path)
        with pytest.raises(JobError, match=reason) as exc:
            check_modules(spec)
        assert "nothing was sent" in str(exc.value)
