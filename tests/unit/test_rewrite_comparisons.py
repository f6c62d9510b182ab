"""Comparisons compiled as metered helper calls (smartchain/contracts/rewrite.py) behave
exactly as Lua's operators: random expressions and statements over integers, strings,
booleans, nil and tables (with and without metamethods) give the same results, and fail or
not alike, in a plain Lua runtime before and after the rewrite. The helpers are the
sandbox's own code (sandbox.lua), run with a free ``charge``."""

from __future__ import annotations

import re
from importlib.resources import files
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lupa import lua54
from test_sandbox import Sandbox, failed, ok

from smartchain.contracts.bytecode import BytecodeError, check_bytecode
from smartchain.contracts.host import ContractError
from smartchain.contracts.rewrite import rewrite

_SANDBOX = files("smartchain.contracts").joinpath("sandbox.lua").read_text()
_HELPERS = _SANDBOX[_SANDBOX.index("function G.__int"):_SANDBOX.index("-- Strings index")]
_POSITION = re.compile(r'^(?:\[string "[^"]*"\]|[\w=]+):\d+: ')

# Values the generated code works on: every kind of comparison operand and outcome.
_ENV = r"""
local G = {}
local raw_type, raw_error, charge = type, error, function() end
local function per_compared(n) return (n + 1) >> 1 end
local function is_int(v) return math.type(v) == "integer" end
HELPERS
local cmp = {__lt = function(a, b) return a.v < b.v end,
             __le = function(a, b) return a.v <= b.v end,
             __eq = function(a, b) return a.v == b.v end}
local env = {
  i0 = 0, i1 = 1, i2 = -7, s1 = "a", s2 = "b", s3 = "10",
  l1 = string.rep("x", 60), l2 = string.rep("x", 59) .. "y", z1 = "\0\0\0a", z2 = "\0\0\0b",
  b1 = true, b2 = false, t1 = {}, t2 = {},
  m1 = setmetatable({v = 1}, cmp), m2 = setmetatable({v = 2}, cmp),
  id = function(...) return ... end, pcall = pcall, type = type, tostring = tostring,
  setmetatable = setmetatable, string = string, table = table, next = next,
}
for k, f in pairs(G) do env[k] = f end
local names = {}  -- tables and functions by name: a new one prints as its type
for k, v in pairs(env) do names[v] = k end
local function show(v)
  local t = type(v)
  if t == "table" or t == "function" then return names[v] or t end
  return tostring(v)
end
return function(src)
  local f, err = load(src, "=x", "t", setmetatable({}, {__index = env}))
  if not f then return "compile", err end
  local out = table.pack(pcall(f))
  for i = 1, out.n do out[i] = show(out[i]) end
  return table.unpack(out, 1, out.n)
end
""".replace("HELPERS", _HELPERS)

_COMPARE = ("==", "~=", "<", "<=", ">", ">=")
_OTHER = ("and", "or", "+", "-", "*", "//", "%", "&", "|", "~", "<<", ">>", "..", "^", "/")
_LEAVES = ("i0", "i1", "i2", "s1", "s2", "s3", "l1", "l2", "z1", "z2", "b1", "b2", "t1", "t2",
           "m1", "m2", "nil", "true", "false", "0", "1", "300", '"a"', '"x"', "'10'",
           '"' + "x" * 60 + '"', "[[b]]", "{}", "undefined")


def _expressions(binary: tuple[str, ...]) -> st.SearchStrategy[str]:
    """Lua expressions mixing comparisons with every other operator, unparenthesised."""
    def extend(e: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(e, st.sampled_from(binary), e).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            st.tuples(st.sampled_from(("not ", "- ", "# ", "~ ")), e).map("".join),
            e.map(lambda x: f"({x})"),
            st.tuples(e, e).map(lambda t: f"id({t[0]}, {t[1]})"),
            st.tuples(e, e).map(lambda t: f"({{{t[0]}; k = {t[1]}}})[1]"),
            st.tuples(e, e).map(lambda t: f"({{[ {t[0]} ] = {t[1]}}})"),
            e.map(lambda x: f"(function(...) return {x}, ... end)(1 < 2)"),
            e.map(lambda x: f'id"s" < {x}'),
        )
    return st.recursive(st.sampled_from(_LEAVES), extend, max_leaves=12)


_ALL = _COMPARE * 3 + _OTHER
_INTEGER_ONLY = _COMPARE * 3 + ("and", "or", "+", "-", "*", "//", "%", "&", "|", "~", "<<", ">>")


@pytest.fixture(scope="module")
def run() -> Any:
    return lua54.LuaRuntime(encoding=None).execute(_ENV)


def _same(run: Any, source: str) -> None:
    before = run(source.encode())
    after = run(rewrite(source.encode()))
    assert before[0] != b"compile", before
    assert after[0] != b"compile", (after, rewrite(source.encode()))
    if before[0] == b"false":  # failed: alike, message and all (but the position)
        assert after[0] == b"false", (source, after)
        assert _POSITION.sub("", before[1].decode()) == _POSITION.sub("", after[1].decode())
    else:
        assert before == after, source


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions(_ALL))
def test_an_expression_gives_the_same_result_or_error_after_the_rewrite(run: Any,
                                                                        expr: str) -> None:
    _same(run, f"return {expr}")


_STATEMENTS = (
    "local a <const>, b = {e}, {e} r[#r + 1] = a r[#r + 1] = b",
    "if {e} then r[#r + 1] = 1 elseif {e} then r[#r + 1] = 2 else r[#r + 1] = {e} end",
    "local n = 0 while n < 3 and {e} do n = n + 1 end r[#r + 1] = n",
    "local n = 0 repeat n = n + 1 until n >= 3 or {e} r[#r + 1] = n",
    "for i = 1, 2 do r[#r + 1] = {e} end",
    "for k, v in next, {{e}} do r[#r + 1] = v end",
    "local function f(x) return x, {e} end r[#r + 1] = f({e})",
    "do local x = {e}; r[#r + 1] = x end",
    "r.x, r.y = {e}, {e} r[#r + 1] = r.x == r.y",
    "do goto skip r[#r + 1] = {e} ::skip:: r[#r + 1] = {e} end",
    "r[ {e} and 1 or 2] = {e}",  # the space: r[[[b]] would open a long string
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_STATEMENTS),
                          st.lists(_expressions(_ALL), min_size=3, max_size=3)),
                min_size=1, max_size=4))
def test_statements_give_the_same_results_after_the_rewrite(
        run: Any, body: list[tuple[str, list[str]]]) -> None:
    lines = []
    for template, exprs in body:
        parts = template.split("{e}")
        lines.append("".join(p + (exprs[i] if i < len(parts) - 1 else "")
                             for i, p in enumerate(parts)))
    source = "local r = {}\n" + "\n".join(lines) + "\nreturn #r, table.unpack(r)"
    _same(run, source)


@settings(max_examples=300, deadline=None)
@given(_expressions(_INTEGER_ONLY))
def test_no_comparison_instruction_is_left_after_the_rewrite(run: Any, expr: str) -> None:
    dump = lua54.LuaRuntime(encoding=None).eval(
        "function(s) return string.dump(load(s)) end")(rewrite(f"return {expr}".encode()))
    check_bytecode(dump)


def test_the_rewrite_adds_no_line_and_keeps_the_authors_layout() -> None:
    src = b"local x = a < b\n  == c -- a < b\nreturn x ~= y or x ~= nil, #t >= 2"
    out = rewrite(src)
    assert out.count(b"\n") == src.count(b"\n")
    assert out.splitlines()[0].endswith(b"local x = (__cmp_eq((__cmp_lt(a , b))")
    assert out.endswith(b"return (not __cmp_eq(x , y)) or x ~= nil, (__cmp_ge(#t , 2))")


def test_equality_with_a_short_constant_stays_an_operator() -> None:
    """EQK/EQI compare in constant time; a constant over 40 bytes is not interned."""
    assert rewrite(b"return x == 'abc', nil ~= x, x == 12") == \
        b"return x == 'abc', nil ~= x, x == 12"
    long = b"'" + b"a" * 41 + b"'"
    assert rewrite(b"return x == " + long) == \
        b"local __cmp_eq = __cmp_eq; return (__cmp_eq(x , " + long + b"))"


@pytest.mark.parametrize("source", [
    b"return a == '" + b"x" * 41 + b"'",  # EQK on a string that is not interned
    b"return a < b",
    b"return a <= b",
    b"return a == b",
])
def test_the_bytecode_check_refuses_a_comparison_the_rewrite_missed(source: bytes) -> None:
    dump = lua54.LuaRuntime(encoding=None).eval("function(s) return string.dump(load(s)) end")
    with pytest.raises(BytecodeError, match="did not meter"):
        check_bytecode(dump(source))


def test_a_comparison_nested_too_deep_for_the_rewrite_is_refused_at_deploy() -> None:
    deep = b"return " + b"(" * 150 + b"a < b" + b")" * 150
    with pytest.raises(ContractError, match="did not meter"):
        Sandbox().vm.check_source(deep)
    assert b"__cmp_lt" in rewrite(b"return " + b"(" * 90 + b"a < b" + b")" * 90)


@pytest.mark.parametrize("name", [b"__cmp_eq", b"__cmp_lt", b"__cmp_le", b"__cmp_gt",
                                  b"__cmp_ge"])
def test_a_contract_cannot_name_a_comparison_helper(name: bytes) -> None:
    with pytest.raises(ContractError, match="reserved"):
        Sandbox().vm.check_source(b"function f() local " + name + b" = 1 end")


@pytest.fixture(scope="module")
def box() -> Sandbox:
    return Sandbox()


def test_comparing_long_strings_costs_gas_by_their_length(box: Sandbox) -> None:
    setup = ('local z = string.rep(string.char(0), 65536) '
             'local y = concat(string.sub(z, 2), "a") local r = ')
    base = box.run(setup + "1")
    less = box.run(setup + "z < y")
    assert less.ok and less.gas_used - base.gas_used >= 65536 // 2


def test_comparisons_in_a_contract_behave_as_lua_operators(box: Sandbox) -> None:
    assert ok(box.run('local t = setmetatable({}, {__lt = function() return true end}) '
                      'return 1 < 2, "b" >= "a", t < t, {} == {}, 3 ~= 3, nil == false')) == \
        (True, True, True, False, False, False)
    assert "attempt to compare number with nil" in failed(box.run("return 1 < nil"))
    assert "attempt to compare two table values" in failed(box.run("return {} <= {}"))
    assert failed(box.run("return nil > 1")) == "contract:2: attempt to compare number with nil"
