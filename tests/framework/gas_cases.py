"""Adversarial calls of every function the contract sandbox exposes, with the work each does.

Shared by ``tests/unit/test_gas_schedule.py`` (gas charged >= work, exactly) and ``bench/gas.py``
(CPU seconds per gas against a plain loop). ``work`` is in gas: what the call touches at
the rates of docs/gas.md (16 bytes copied, 2 bytes compared by strcoll, 256 bytes
compared by memcmp or memcmp search, or 1 value, per gas). A case that must be refused has work 0:
it may not do its work for free.
"""

from __future__ import annotations

from typing import NamedTuple

# Built once per call (the baseline runs it too): long strings with long equal prefixes,
# strings of NULs (Lua's `<` calls strcoll once per NUL-separated piece), 256 values.
SETUP = """
local A = string.rep("a", 65536)
local B = concat(string.rep("a", 65535), "b")
local H = string.rep("a", 32768)
local NEEDLE = concat(string.rep("a", 16384), "b")
local D = string.rep("1", 65536)
local Z = string.rep(string.char(0), 65536)
local Z2 = concat(string.sub(Z, 2), "a")
local T = {} for i = 1, 256 do T[i] = i - 1 end
local S, K = {}, {}
for i = 1, 200 do S[i] = concat(string.rep(string.char(0), 300), i); K[S[i]] = i end
local co = coroutine.create(function(...)
  local a = {...} while true do a = {coroutine.yield(unpack(a))} end
end)
local ADDR = ctx.self
"""


class Case(NamedTuple):
    name: str  # the function it exercises, as sandbox names it (``string.byte``)
    stmt: str  # one Lua statement
    work: int  # gas the call must cost at least


_SORT_S = 200 * 8 * 300 // 2  # 200 strings with a 300-byte common prefix, ~8 levels

CASES: tuple[Case, ...] = (
    Case("__int", "for i = 1, 2 do end", 0),  # the rewritten for header calls it
    # the rewritten comparisons call these: == by memcmp, < by strcoll per NUL-separated piece
    Case("__cmp_eq", "local r = A == B", 65536 // 256),
    Case("__cmp_eq", "local r = A ~= B", 65536 // 256),
    Case("__cmp_eq", "local r = {} == {}", 0),
    Case("__cmp_lt", "local r = A < B", 65536 // 2),
    Case("__cmp_lt", "local r = Z < Z2", 65536 // 2),
    Case("__cmp_lt", "local r = pcall(function() return {} < 1 end)", 0),
    Case("__cmp_le", "local r = Z <= Z2", 65536 // 2),
    Case("__cmp_gt", "local r = Z2 > Z", 65536 // 2),
    Case("__cmp_ge", "local r = Z2 >= Z", 65536 // 2),
    Case("__cmp_ge", "local r = pcall(function() return nil >= 1 end)", 0),
    Case("assert", "local r = assert(A, B, Z)", 0),
    Case("error", "local r = pcall(error, A)", 65536 // 16),
    Case("error", "local r = pcall(error, A, math.maxinteger)", 65536 // 16),
    Case("ipairs", "local r = ipairs(T)", 0),
    Case("pairs", "for k in pairs(K) do end", _SORT_S),
    Case("pairs", "for k in pairs(T) do end", 256),
    Case("pcall", "local r = pcall(type, A)", 0),
    Case("xpcall", "local r = xpcall(type, type, A)", 0),
    Case("select", "local r = select(1, unpack(T))", 512),
    Case("select", "local r = pcall(select, math.mininteger, 1)", 0),
    Case("type", "local r = type(A)", 0),
    Case("tostring", "local r = tostring(A)", 0),
    Case("tonumber", "local r = tonumber(D)", 65536 // 16),
    Case("tonumber", "local r = tonumber(D, 36)", 65536 // 16),
    Case("getmetatable", "local r = getmetatable(A)", 0),
    Case("setmetatable", "local r = setmetatable({}, {__index = T})", 0),
    Case("rawequal", "local r = rawequal(A, B)", 65536 // 2),
    Case("rawequal", "local r = rawequal(Z, A)", 65536 // 2),
    Case("rawget", "local r = rawget(T, A)", 0),
    Case("rawlen", "local r = rawlen(A)", 0),
    Case("unpack", "local r = unpack(T)", 256),
    Case("unpack", "local r = pcall(unpack, T, math.mininteger, math.maxinteger)", 0),
    Case("concat", "local r = concat(H, H)", 65536 // 16),
    Case("emit", "local r = pcall(emit, 'e', A, A, A)", 0),
    Case("emit", "emit('e', string.sub(A, 1, 4000))", 4000),
    Case("balance", "local r = pcall(balance, A)", 0),
    Case("balance", "local r = balance(ADDR)", 0),
    Case("transfer", "local r = pcall(transfer, A, 1)", 0),
    Case("call", "local r = pcall(call, A, 'f')", 0),
    Case("coroutine.create", "local r = coroutine.create(type)", 0),
    Case("coroutine.resume", "local r = coroutine.resume(co, unpack(T))", 256),
    Case("coroutine.yield", "local r = coroutine.resume(co, unpack(T))", 256),
    Case("coroutine.wrap", "local r = coroutine.wrap(type)", 0),
    Case("coroutine.status", "local r = coroutine.status(co)", 0),
    Case("coroutine.running", "local r = coroutine.running()", 0),
    Case("coroutine.isyieldable", "local r = coroutine.isyieldable()", 0),
    Case("coroutine.close", "local r = coroutine.close(coroutine.create(type))", 0),
    Case("math.abs", "local r = math.abs(math.mininteger)", 0),
    Case("math.max", "local r = math.max(unpack(T))", 256),
    Case("math.min", "local r = math.min(unpack(T))", 256),
    Case("math.tointeger", "local r = math.tointeger(A)", 0),
    Case("math.type", "local r = math.type(A)", 0),
    Case("math.ult", "local r = math.ult(math.mininteger, math.maxinteger)", 0),
    Case("storage.get", "local r = pcall(storage.get, A)", 0),
    Case("storage.get", "local r = storage.get(1)", 0),
    Case("storage.set", "storage.set(1, string.sub(A, 1, 16384))", 16384),
    Case("storage.delete", "storage.delete(1)", 0),
    Case("string.byte", "local r = string.byte(A, 1, 256)", 256),
    Case("string.byte", "local r = pcall(string.byte, A, math.mininteger, math.maxinteger)", 0),
    Case("string.byte", "local r = string.byte(A, math.maxinteger, math.mininteger)", 0),
    Case("string.char", "local r = string.char(unpack(T))", 512),
    Case("string.find", "local r = string.find(H, NEEDLE, 1, true)", 16384 * 16384 // 256),
    Case("string.find", "local r = string.find(A, B, math.mininteger, true)", 65536 // 16),
    Case("string.format", "local r = string.format('%s%s', H, H)", 65536 // 16),
    Case("string.len", "local r = string.len(A)", 0),
    Case("string.lower", "local r = string.lower(A)", 65536 // 16),
    Case("string.upper", "local r = string.upper(A)", 65536 // 16),
    Case("string.reverse", "local r = string.reverse(A)", 65536 // 16),
    Case("string.rep", "local r = string.rep('a', 65536)", 65536 // 16),
    Case("string.rep", "local r = pcall(string.rep, A, math.maxinteger)", 0),
    Case("string.sub", "local r = string.sub(A, math.mininteger, math.maxinteger)", 65536 // 16),
    Case("table.concat", "local r = table.concat(S)", 200 * 302 // 16),
    Case("table.concat", "local r = pcall(table.concat, S, '', math.mininteger, 0)", 0),
    Case("table.insert", "table.insert(T, 1, 0) table.remove(T)", 256),
    Case("table.remove", "table.insert(T, 0) table.remove(T, 1)", 256),
    Case("table.pack", "local r = table.pack(unpack(T))", 512),
    Case("table.unpack", "local r = table.unpack(T)", 256),
    Case("table.sort", "table.sort(S)", _SORT_S),
    Case("table.sort", "table.sort(T)", 256 * 8),
    Case("token.balance", "local r = pcall(token.balance, A, A)", 0),
    Case("token.transfer", "local r = pcall(token.transfer, A, A, 1)", 0),
    Case("token.transfer_from", "local r = pcall(token.transfer_from, A, A, A, 1)", 0),
)
