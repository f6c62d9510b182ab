"""The contract sandbox, rule by rule: escapes, denial of service and determinism.

Each test runs real Lua 5.4 (lupa) with the real sandbox over an in-memory host, so a
failure here means a contract could do it on chain.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest

from smartchain.contracts.host import ContractError
from smartchain.contracts.memhost import MemoryHost
from smartchain.contracts.vm import (
    CALL_MEMORY_KB,
    HELD_BUDGET,
    MAX_MEMORY,
    MAX_STRING,
    PERIOD,
    CallOutcome,
    LuaVM,
)
from smartchain.crypto.address import to_bech32

ALICE = bytes([1]) * 20
ALICE_TEXT = to_bech32(ALICE).encode()


class Sandbox:
    """Deploys sources at made-up addresses and calls them, one VM for the test."""

    def __init__(self) -> None:
        self.host = MemoryHost()
        self.vm = LuaVM(self.host)
        self.n = 0

    def deploy(self, source: str) -> bytes:
        src = textwrap.dedent(source).encode()
        self.vm.check_source(src)
        self.n += 1
        address = bytes([0xC0, self.n]) + bytes(18)
        self.host.sources[address] = src
        return address

    def call(self, address: bytes, function: str, *args: object, gas: int = 1_000_000,
             value: int = 0) -> CallOutcome:
        self.host.begin(address)
        start = self.host.frames[0].checkpoint
        out = self.vm.invoke(to_bech32(address).encode(), function.encode(), args, gas=gas,
                             caller=ALICE_TEXT, value=value, origin=ALICE_TEXT, height=7,
                             time_ms=1_000)
        if out.ok:  # as the chain does after a successful call
            self.host.apply_writes(out.writes)
        else:  # as the executor does with a failed transaction
            self.host._revert(start)
        return out

    def run(self, body: str, *args: object, gas: int = 1_000_000) -> CallOutcome:
        """Deploy ``function f(...) <body> end`` and call f."""
        return self.call(self.deploy("function f(...)\n" + textwrap.dedent(body) + "\nend"),
                         "f", *args, gas=gas)


@pytest.fixture
def box() -> Sandbox:
    return Sandbox()


def ok(outcome: CallOutcome) -> tuple:
    assert outcome.ok, outcome.error
    return outcome.results


def failed(outcome: CallOutcome) -> str:
    assert not outcome.ok, f"expected a failure, got {outcome.results}"
    return outcome.error


# --- rule 1: no Python object ever reaches contract code -------------------------------

def test_no_value_reachable_from_the_environment_is_python(box: Sandbox) -> None:
    """Walk everything a contract can reach (globals, libraries, metatables): no userdata."""
    seen = ok(box.run("""
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
        return #found, python, _G
    """))
    assert seen == (0, None, None)


def test_host_functions_are_lua_closures_without_attributes(box: Sandbox) -> None:
    res = ok(box.run("""
        return type(storage.get), getmetatable(storage.get), type(emit),
               pcall(function() return storage.get.__class__ end)
    """))
    assert res[:3] == (b"function", None, b"function")
    assert res[3] is False  # indexing a function is an error, not an attribute lookup


def test_errors_from_the_host_are_strings_not_python_exceptions(box: Sandbox) -> None:
    res = ok(box.run("""
        local ok, err = pcall(storage.set, {}, 1)
        return ok, type(err), err
    """))
    assert res[0] is False and res[1] == b"string"
    assert b"storage key must be a string or an integer" in res[2]


# --- rule 2: only whitelisted functions, text-only loading -----------------------------

@pytest.mark.parametrize("name", [
    "load", "loadstring", "dofile", "loadfile", "require", "os", "io", "debug", "package",
    "collectgarbage", "print", "next", "rawset", "_G", "python", "utf8",
    "string.dump", "math.random", "math.randomseed", "table.move", "string.pack",
    "string.gsub", "string.match", "string.gmatch", "math.huge", "math.pi", "math.floor",
])
def test_dangerous_globals_are_absent(box: Sandbox, name: str) -> None:
    path = name.split(".")
    expr = path[0] if len(path) == 1 else f"{path[0]} and {path[0]}.{path[1]}"
    assert ok(box.run(f"return type({expr})")) == (b"nil",)


def test_binary_chunks_cannot_be_deployed(box: Sandbox) -> None:
    with pytest.raises(ContractError, match="syntax error"):
        box.vm.check_source(b"\x1bLua\x54\x00 garbage")


# --- rule 3: a restricted, shared-but-unpoisonable string library -----------------------

def test_one_contract_cannot_poison_the_string_library_of_another(box: Sandbox) -> None:
    attacker = box.deploy("""
        function f()
          local tries = {
            function() string.len = function() return 99 end end,
            function() getmetatable("").__index = {len = function() return 99 end} end,
            function() setmetatable(string, {__index = function() return nil end}) end,
            function() local s = ""; s.len = nil end,
          }
          local refused = 0
          for _, t in ipairs(tries) do if not pcall(t) then refused = refused + 1 end end
          return refused
        end
    """)
    assert ok(box.call(attacker, "f")) == (4,)
    assert ok(box.run('return ("abc"):len(), string.upper("x")')) == (3, b"X")


def test_string_functions_are_capped(box: Sandbox) -> None:
    assert "too long" in failed(box.run("return string.rep('ab', 40000)"))
    assert "too long" in failed(box.run(
        "local s = string.rep('a', 60000) return concat(s, s)"))
    assert "too long" in failed(box.run(
        "local t = {} for i = 1, 5000 do t[i] = 'abcdefghijklmnop' end return table.concat(t)"))
    assert ok(box.run(f"return #string.rep('a', {MAX_STRING})")) == (MAX_STRING,)


def test_patterns_are_refused_plain_find_works(box: Sandbox) -> None:
    assert ok(box.run("return string.find('hello.world', '.', 1, true)")) == (6, 6)
    assert ok(box.run("return ('a+b'):find('+')")) == (2, 2)
    assert "patterns are not available" in failed(box.run(
        "return string.find(string.rep('a', 30), '(a*)*b', 1, false)"))


def test_format_allows_only_integer_and_string_specs(box: Sandbox) -> None:
    assert ok(box.run("return string.format('%d-%s-%x %%', 42, 'ok', 255)")) == \
        (b"42-ok-ff %",)
    assert "only %d" in failed(box.run("return string.format('%f', 1)"))
    assert "only %d" in failed(box.run("return string.format('%99999s', 'x')"))


def test_string_copies_cost_gas_by_size(box: Sandbox) -> None:
    small = ok_gas(box.run("local s = string.rep('a', 16) return #s"))
    big = ok_gas(box.run("local s = string.rep('a', 60000) return #s"))
    assert big - small >= (60000 - 16) // 16


def ok_gas(outcome: CallOutcome) -> int:
    assert outcome.ok, outcome.error
    return outcome.gas_used


# --- rule 4: metering cannot be escaped --------------------------------------------------

@pytest.mark.parametrize("body", [
    "while true do end",
    "local co = coroutine.create(function() while true do end end) coroutine.resume(co)",
    "local w = coroutine.wrap(function() while true do end end) w()",
    "pcall(function() while true do end end) while true do end",
    "for i = 1, 100 do pcall(function() while true do end end) end",
    "xpcall(function() while true do end end, function() while true do end end)",
    "local co = coroutine.create(function() while true do coroutine.yield() end end)\n"
    "while true do coroutine.resume(co) end",
    "local t <close> = setmetatable({}, {__close = function() while true do end end})\n"
    "while true do end",
    "local function r() return pcall(r) end r() while true do end",
    "while true do local ok = pcall(storage.set, 'k', 'v') end",
])
def test_an_infinite_loop_costs_exactly_the_gas_limit(box: Sandbox, body: str) -> None:
    outcome = box.run(body, gas=200_000)
    assert (outcome.ok, outcome.error, outcome.gas_used) == (False, "out of gas", 200_000)


def test_out_of_gas_reverts_writes(box: Sandbox) -> None:
    outcome = box.run("storage.set('k', 1) while true do end", gas=50_000)
    assert outcome.error == "out of gas"
    assert box.host.state == {}


def test_gc_and_weak_metatables_are_refused(box: Sandbox) -> None:
    assert "__gc is not allowed" in failed(box.run(
        "setmetatable({}, {__gc = function() end})"))
    assert "__mode is not allowed" in failed(box.run("setmetatable({}, {__mode = 'k'})"))
    # adding __mode later changes a private copy's original, not what Lua uses
    assert ok(box.run("""
        local mt = {}
        local t = setmetatable({}, mt)
        mt.__mode = "k"
        return getmetatable(t) == mt
    """)) == (True,)


def test_error_objects_are_reduced_without_running_metamethods(box: Sandbox) -> None:
    outcome = box.run("""
        local e = setmetatable({}, {__tostring = function() while true do end end})
        error(e)
    """)
    assert outcome.error == "error object is a table value"
    assert outcome.gas_used < PERIOD * 4


def test_results_are_plain_values(box: Sandbox) -> None:
    assert "must be nil, a boolean, an integer or a string" in failed(box.run("return {}"))
    assert ok(box.run("return nil, true, -5, 'x'")) == (None, True, -5, b"x")


def test_memory_limit_stops_a_call(box: Sandbox) -> None:
    outcome = box.run("local t = {} for i = 1, 100000000 do t[i] = {i} end",
                      gas=500_000_000)
    assert outcome.error == "memory limit exceeded"
    assert outcome.gas_used == 500_000_000


# --- rule 5: determinism -------------------------------------------------------------------

@pytest.mark.parametrize("source,message", [
    ("return 1.5", "floating-point"),
    ("local a = 2 return a ^ 3", "'^'"),
    ("local a = 1 return a / 2", "'/'"),
    ("local a = 'x' return a .. 'y'", "'..'"),
    ("return 9223372036854775808", "floating-point"),
    ("return 1e3", "floating-point"),
    ("local a = 3 return a * 0.5", "floating-point"),
])
def test_float_producing_code_is_rejected_at_load(box: Sandbox, source: str, message: str
                                                  ) -> None:
    with pytest.raises(ContractError, match=re.escape(message)):
        box.vm.check_source(f"function f()\n  {source}\nend".encode())


def test_no_runtime_path_produces_a_float(box: Sandbox) -> None:
    assert ok(box.run("""
        return tonumber("1.5"), tonumber("1e3"), tonumber("42"), tonumber("ff", 16),
               pcall(function() return "10" + 1 end), 7 // 2, -7 % 3
    """)) == (None, None, 42, 255, False, 3, 2)


def test_tostring_shows_no_addresses(box: Sandbox) -> None:
    assert ok(box.run(
        "return tostring({}), tostring(print or tostring), tostring(coroutine.running())"
    )) == (b"table", b"function", b"thread")


def test_table_sort_only_default_order_on_uniform_arrays(box: Sandbox) -> None:
    assert ok(box.run(
        "local t = {3, 1, 2} table.sort(t) return t[1], t[2], t[3]")) == (1, 2, 3)
    assert "default order" in failed(box.run(
        "local t = {3, 1} table.sort(t, function(a, b) return a > b end)"))
    assert "only arrays of integers or of strings" in failed(box.run(
        "local t = {3, 'a'} table.sort(t)"))


DETERMINISM_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from tests.unit.test_sandbox import Sandbox
box = Sandbox()
c = box.deploy('''
function f(n)
  local t = {{}}
  for i = 1, n do t[concat("k", i * 7919 % 1000)] = i; t[i * 31 % 97] = i end
  local keys = {{}}
  for k, v in pairs(t) do keys[#keys + 1] = concat(tostring(k), "=", v) end
  storage.set("order", table.concat(keys, ",", 1, 20))
  emit("done", {{count = #keys}})
  return #keys
end
''')
out = box.call(c, "f", 300)
print(json.dumps([out.ok, out.gas_used, [r if isinstance(r, int) else r.decode()
                  for r in out.results], sorted((k.hex(), v.hex())
                  for k, v in box.host.state.items()),
                  [e.to_json() for e in box.host.events]]))
"""


def test_two_processes_produce_identical_storage_gas_and_events(tmp_path) -> None:
    """Lua seeds its string hash per process: sorted pairs must hide it."""
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])
    script = DETERMINISM_SCRIPT.format(root=root)
    outs = []
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
                              timeout=60, cwd=root)
        assert proc.returncode == 0, proc.stderr
        outs.append(json.loads(proc.stdout))
    assert outs[0] == outs[1]
    assert outs[0][0] is True


# --- rule 6: the watchdog is for queries only ------------------------------------------------

def test_watchdog_stops_a_slow_query_but_block_vms_have_none() -> None:
    host = MemoryHost()
    query_vm = LuaVM(host, watchdog_seconds=0.05)
    address = bytes([0xC1]) + bytes(19)
    host.sources[address] = b"function f() while true do end end"
    host.begin(address)
    out = query_vm.invoke(to_bech32(address).encode(), b"f", (), gas=10**12,
                          caller=ALICE_TEXT, value=0, origin=ALICE_TEXT, height=1, time_ms=1)
    assert out.error.startswith("stopped by the watchdog")
    assert LuaVM(host).watchdog_seconds is None


# --- contract-to-contract calls ---------------------------------------------------------------

def test_nested_call_failure_reverts_only_the_callee(box: Sandbox) -> None:
    callee = box.deploy("""
        function bump() storage.set("n", (storage.get("n") or 0) + 1) end
        function bump_and_fail() bump() error("callee refuses") end
    """)
    addr = to_bech32(callee)
    caller = box.deploy(f"""
        function f()
          call("{addr}", "bump")
          local ok, err = pcall(call, "{addr}", "bump_and_fail")
          storage.set("mine", 1)
          return ok, err
        end
    """)
    res = ok(box.call(caller, "f"))
    assert res[0] is False and b"callee refuses" in res[1]
    values = {k[-2:]: v for k, v in box.host.state.items()}
    assert values[b"sn"] == b"\x01" + (1).to_bytes(8, "big")  # one bump kept, one reverted


def test_call_depth_is_limited(box: Sandbox) -> None:
    me = box.deploy("function f(a) return call(a, 'f', a) end")
    assert "call depth limit" in failed(box.call(me, "f", to_bech32(me).encode()))


def test_a_callee_cannot_yield_into_its_caller(box: Sandbox) -> None:
    callee = box.deploy("function f() coroutine.yield(1) storage.set('x', 1) end")
    caller = box.deploy(f"""
        function f()
          local co = coroutine.create(function() return call("{to_bech32(callee)}", "f") end)
          local ok, err = coroutine.resume(co)
          return ok, err
        end
    """)
    res = ok(box.call(caller, "f"))
    assert res[0] is False and b"yielded" in res[1]


def test_contract_cannot_call_init_or_private_functions(box: Sandbox) -> None:
    target = box.deploy("function init() end function _secret() end")
    for name in ("init", "_secret"):
        assert "not a public function" in failed(box.run(
            f'return call("{to_bech32(target)}", "{name}")'))


def test_a_handler_never_runs_unmetered_after_the_gas_runs_out(box: Sandbox) -> None:
    """Lua turns hooks off inside a hook; an xpcall handler or a coroutine's pending
    __close called after an abort from the hook would otherwise run for free."""
    outcome = box.run("""
        local co = coroutine.create(function()
          local t <close> = setmetatable({}, {__close = function() while true do end end})
          while true do end
        end)
        local guard <close> = setmetatable({}, {__close = function() coroutine.close(co) end})
        coroutine.resume(co)
    """, gas=100_000)
    assert (outcome.error, outcome.gas_used) == ("out of gas", 100_000)


def test_costly_string_searches_and_slices_are_priced_or_refused(box: Sandbox) -> None:
    """A plain find compares up to #s * #needle bytes; byte() with negative indices could
    push 64 Ki values: both are covered."""
    cheap = ok_gas(box.run("return string.find('abcdef', 'cd', 1, true)"))
    costly = box.run("""
        local s = string.rep('a', 60000)
        return string.find(s, concat(string.rep('a', 30000), 'b'), 1, true)
    """, gas=1_000_000)
    assert cheap < 2 * PERIOD and costly.error == "out of gas"
    assert "at most 256 values" in failed(box.run(
        "return string.byte(string.rep('a', 60000), 1, -1)"))


def test_writes_flushed_by_a_callee_are_undone_when_an_outer_call_fails(box: Sandbox) -> None:
    """C succeeds inside B, B then fails: C's write must vanish, the caller's stay; and a
    top-level call that fails after its callee succeeded leaves nothing at all."""
    c = box.deploy('function put(v) storage.set("c", v) end')
    b = box.deploy(f"""
        function work(fail)
          storage.set("b", 1)
          call("{to_bech32(c)}", "put", 7)
          if fail then error("b fails") end
        end
    """)
    a = box.deploy(f"""
        function f(fail)
          storage.set("a", 1)
          local ok = pcall(call, "{to_bech32(b)}", "work", fail)
          return ok, storage.get("a")
        end
        function g() call("{to_bech32(b)}", "work", false) error("a fails after") end
    """)
    assert ok(box.call(a, "f", True)) == (False, 1)
    assert stored(box) == {(a, b"sa"): 1}
    assert "a fails after" in failed(box.call(a, "g"))
    assert stored(box) == {(a, b"sa"): 1}
    assert ok(box.call(a, "f", False)) == (True, 1)
    assert stored(box) == {(a, b"sa"): 1, (b, b"sb"): 1, (c, b"sc"): 7}


def stored(box: Sandbox) -> dict[tuple[bytes, bytes], int]:
    """Contract storage in the host: (contract, encoded key) -> integer value."""
    prefix = b"contracts/store/"
    return {(k[len(prefix):len(prefix) + 20], k[len(prefix) + 20:]):
            int.from_bytes(v[1:], "big", signed=True)
            for k, v in box.host.state.items() if k.startswith(prefix)}


# --- floats cannot appear at run time (strings are not coerced) ------------------------------

@pytest.mark.parametrize("body", [
    'return math.abs("1.5")',
    'return math.max("1.5", 1)',
    'return math.min(1, "0.5")',
    'return math.ult("1", 2)',
    'for i = 1, 2, "0.25" do return math.type(i) end',
    'for i = "0.5", 2 do return math.type(i) end',
    'for i = 1, "2.5" do end',
    'local s = "1.5" _ENV["__int"] = function(v) return v end for i = s, 2 do return i end',
])
def test_no_float_comes_out_of_math_or_a_for_loop(box: Sandbox, body: str) -> None:
    assert "integer" in failed(box.run(body))


def test_math_tointeger_lets_only_integers_through(box: Sandbox) -> None:
    assert ok(box.run('return math.tointeger("3"), math.tointeger("1.5"), math.tointeger(7),'
                      ' math.abs(-3), math.max(1, 9, 4), math.min(5, -2)')) == \
        (None, None, 7, 3, 9, -2)
    assert ok(box.run("local n = 0 for i = 10, 1, -3 do n = n + i end return n")) == (22,)


def test_a_contract_cannot_name_the_for_loop_check(box: Sandbox) -> None:
    with pytest.raises(ContractError, match="reserved"):
        box.vm.check_source(b"function f() local __int = 1 end")


# --- index arithmetic cannot wrap ---------------------------------------------------------------

@pytest.mark.parametrize("call", [
    "string.byte(s, math.mininteger, math.maxinteger)",
    "string.byte(s, -60000, math.maxinteger)",
    "unpack(t, math.mininteger, math.maxinteger)",
    "table.unpack(t, 1, math.maxinteger)",
])
def test_value_lists_are_capped_whatever_the_indices(box: Sandbox, call: str) -> None:
    assert "at most 256 values" in failed(box.run(
        f"local s, t = string.rep('a', 60000), {{}} return select('#', {call})"))


def test_string_byte_reads_positions_like_string_sub(box: Sandbox) -> None:
    assert ok(box.run("return string.byte('abc', -2, 99)")) == (98, 99)
    assert ok(box.run("return select('#', string.byte('abc', math.maxinteger, 1))")) == (0,)


# --- a VM holds no more than its budget plus one call, whatever the number of calls ------------

def test_many_calls_in_one_vm_keep_the_heap_bounded(box: Sandbox) -> None:
    """60 calls writing 300 distinct 16 KB values, then reading them all back: each call's
    writes leave with it, and what the VM caches is dropped past the budget."""
    writer = box.deploy("""
        local pad = string.rep("v", 16 * 1024 - 24)
        function fill(base) for k = base + 1, base + 300 do storage.set(k, concat(pad, k)) end end
        function count(base, n)
          local t = 0 for k = base + 1, base + n do t = t + #storage.get(k) end return t
        end
    """)
    heap = box.vm.rt.eval("function() return collectgarbage('count') end")
    limit_kb = (HELD_BUDGET // 1024 + CALL_MEMORY_KB) * 5 // 4
    peak = 0
    for i in range(60):
        ok(box.call(writer, "fill", 300 * i, gas=50_000_000))
        peak = max(peak, heap())
    for i in range(10):
        assert ok(box.call(writer, "count", 1800 * i, 1800, gas=10_000_000))[0] > 0
        peak = max(peak, heap())
    assert peak < limit_kb < MAX_MEMORY // 1024


def test_a_vm_fault_fails_the_call_and_nothing_escapes(box: Sandbox) -> None:
    c = box.deploy("function f() storage.set('k', 1) return 1 end")
    box.vm._invoke = None  # the VM itself cannot run anything any more
    out = box.call(c, "f", gas=100_000)
    assert (out.ok, out.gas_used, out.error, out.writes) == (
        False, 100_000, "the contract VM failed", ())
    assert box.vm.broken and box.host.state == {}


# --- one VM, many calls: nothing of a call reaches the next ---------------------------------------

def test_nothing_a_call_leaves_behind_reaches_the_next_call(box: Sandbox) -> None:
    """Every call runs its contract's chunk again in a fresh _ENV: globals it set, globals it
    replaced, the ctx it changed, metatables it put on its env or its tables, and chunk
    locals it counted up are all gone at the next call of the same VM."""
    c = box.deploy("""
        local count = 0
        config = {n = 0}
        function dirty()
          count = count + 1
          config.n = config.n + 1
          leaked = "yes"
          _ENV.direct = 1
          ctx.caller = "mallory"
          setmetatable(config, {__index = function() return "trap" end})
          dirty = nil
          return count, config.n
        end
        function look()
          return count, config.n, leaked, direct, ctx.caller == "mallory", config.missing,
                 dirty == nil
        end
    """)
    for _ in range(3):
        assert ok(box.call(c, "dirty")) == (1, 1)
        assert ok(box.call(c, "look")) == (0, 0, None, None, False, None, False)


def test_a_call_hands_back_every_write_however_many(box: Sandbox) -> None:
    """Up to 64 writes come back with the call's results, more through the drain: either
    way every write (deletions too) arrives, in first-write order, and none twice."""
    c = box.deploy("""
        function put(n) for k = 1, n do storage.set(k, k * 10) end return n end
        function clear(n) for k = 1, n do storage.delete(k) end return "done", n end
    """)
    address = to_bech32(c).encode()
    for n in (1, 63, 64, 65, 4097):
        out = box.call(c, "put", n, gas=50_000_000)
        assert ok(out) == (n,)
        assert out.writes == tuple((address, k, k * 10) for k in range(1, n + 1))
        out = box.call(c, "clear", n, gas=50_000_000)
        assert ok(out) == (b"done", n)
        assert out.writes == tuple((address, k, None) for k in range(1, n + 1))
        assert box.host.state == {}
