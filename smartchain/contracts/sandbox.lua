-- The contract sandbox. Runs once per LuaRuntime, with the full standard library, and
-- returns the few entry points Python uses. Contract code never sees this chunk's
-- locals: it runs in a fresh environment per call whose globals are the whitelist
-- built below, and every value that crosses to Python is reduced to nil, boolean,
-- integer or string here, inside Lua, where the gas meter runs.
--
-- Gas: a count hook on every thread that runs contract code. Each thread pays for
-- PERIOD instructions in advance (fewer when less gas is left); when the period is
-- used up the hook takes the next one. When nothing is left the call is aborted:
-- `aborted` is set, the hook then fires on every instruction, and every pcall,
-- xpcall and coroutine.resume re-raises it, so no handler can swallow it.

local H, PERIOD, MAX_STRING, MAX_DEPTH, GAS, watchdog = ...
local COROUTINE_GAS, GAS_READ, GAS_WRITE, GAS_BYTE = GAS.coroutine, GAS.read, GAS.write, GAS.byte
local MAX_KEY, MAX_VALUE = GAS.max_key, GAS.max_value  -- the host's limits (contracts/host.py)
-- What the VM may keep between calls (cached storage, compiled contracts), counted in bytes
-- by a deterministic estimate (`held`); and the heap size past which no host call may
-- hand Lua a value (lupa must never hit the runtime's own limit inside a callback).
local HELD_BUDGET, HOST_ROOM_KB = GAS.held_budget, GAS.host_room_kb
local ENTRY_BYTES, CHUNK_BYTES_PER_SOURCE_BYTE = 96, 16

local raw_pcall, raw_xpcall, raw_error, raw_type = pcall, xpcall, error, type
local raw_select, raw_tostring, raw_tonumber, raw_rawget = select, tostring, tonumber, rawget
local raw_setmetatable, raw_getmetatable, raw_next, raw_ipairs = setmetatable, getmetatable, next, ipairs
local raw_rawlen, raw_rawequal, raw_assert = rawlen, rawequal, assert
local co_create, co_resume, co_status, co_yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local co_running, co_isyieldable, co_close = coroutine.running, coroutine.isyieldable, coroutine.close
local sethook, upvaluejoin = debug.sethook, debug.upvaluejoin
local dbg_getmetatable, dbg_setmetatable = debug.getmetatable, debug.setmetatable
local gc_count, load, dump = collectgarbage, load, string.dump
local math_type, str_sub, str_byte, str_char = math.type, string.sub, string.byte, string.char
local math_abs, math_ult = math.abs, math.ult
local str_rep, str_find, str_format = string.rep, string.find, string.format
local str_upper, str_lower, str_reverse, str_len = string.upper, string.lower, string.reverse, string.len
local tbl_concat, tbl_sort, tbl_insert, tbl_remove = table.concat, table.sort, table.insert, table.remove
local tbl_unpack, tbl_pack = table.unpack, table.pack

-- Nothing of Python stays reachable from the global table either.
python = nil
package.loaded.python = nil

local h_get, h_emit = H.get, H.emit
local h_balance, h_transfer = H.balance, H.transfer
local h_token_balance, h_token_transfer, h_token_transfer_from = H.token_balance, H.token_transfer, H.token_transfer_from
local h_enter, h_leave, h_code = H.enter, H.leave, H.code
H = nil

local frames = {}   -- the call stack: {self=, caller=, value=}

-- --- gas -------------------------------------------------------------------------------

local remaining = 0      -- gas left in the current top-level call
local aborted = nil      -- why the call is being aborted (nil while it runs)
local mem_start, mem_limit_kb = 0, 0
local hook

local function abort_now(why)
  aborted = aborted or why
  sethook(hook, "", 1)
  raw_error(aborted, 0)
end

hook = function()
  if aborted then sethook(hook, "", 1); raw_error(aborted, 0) end
  if gc_count("count") - mem_start > mem_limit_kb then abort_now("memory limit exceeded") end
  if watchdog and watchdog() then abort_now("stopped by the watchdog (query too slow)") end
  local left = remaining
  if left >= PERIOD then remaining = left - PERIOD; return end
  if left <= 0 then abort_now("out of gas") end
  remaining = 0
  sethook(hook, "", left)
end

local function charge(n)
  if n > remaining then remaining = 0; abort_now("out of gas") end
  remaining = remaining - n
end

local function per_bytes(n) return (n + 15) >> 4 end  -- 1 gas per 16 bytes copied
-- Comparing strings costs more than copying them: Lua's `<` calls strcoll once per
-- NUL-separated piece (about 3 ns a byte for a string of NULs): 1 gas per 2 bytes compared.
local function per_compared(n) return (n + 1) >> 1 end

-- A new metered thread: it prepays its first period.
local function metered_thread(f)
  local co = co_create(f)
  local p = remaining >= PERIOD and PERIOD or remaining
  if p <= 0 then remaining = 0; abort_now("out of gas") end
  remaining = remaining - p
  sethook(co, hook, "", p)
  return co
end

-- A caught error is not free: Lua builds its message (position, argument names).
local ERROR_GAS = 200
local function caught(ok, ...)
  if aborted then raw_error(aborted, 0) end
  if not ok then charge(ERROR_GAS) end
  return ok, ...
end

-- --- values ----------------------------------------------------------------------------

local function is_int(v) return math_type(v) == "integer" end

local function check_string(v, what, limit)
  if raw_type(v) ~= "string" then raw_error(what .. " must be a string", 3) end
  if #v > (limit or MAX_STRING) then raw_error(what .. " is too long", 3) end
  return v
end

local function check_int(v, what)
  if not is_int(v) then raw_error(what .. " must be an integer", 3) end
  return v
end

-- A value that may leave the sandbox: nil, boolean, integer or string. No metamethod runs.
local function plain(v, what)
  local t = raw_type(v)
  if t == "nil" or t == "boolean" or t == "string" or (t == "number" and is_int(v)) then
    return v
  end
  raw_error(what .. " must be nil, a boolean, an integer or a string (got " .. t .. ")", 3)
end

local function plain_results(n, ...)
  if n > 16 then raw_error("a contract function returns at most 16 values", 0) end
  for i = 1, n do plain((raw_select(i, ...)), "a returned value") end
  return ...
end

local function error_text(e)
  local t = raw_type(e)
  if t == "string" then return #e > 1024 and str_sub(e, 1, 1024) or e end
  if t == "number" and is_int(e) then return raw_tostring(e) end
  return "error object is a " .. t .. " value"
end

-- --- the whitelisted library -------------------------------------------------------------

local PROTECTED = {}  -- private key marking a metatable contracts may not replace

local function readonly(lib, name)
  return raw_setmetatable({}, {
    __index = lib,
    __newindex = function() raw_error(name .. " is read-only", 2) end,
    __metatable = false,
    [PROTECTED] = true,
  })
end

local function safe_tostring(v)
  local t = raw_type(v)
  if t == "string" then return v end
  if t == "number" then
    if is_int(v) then return raw_tostring(v) end
    raw_error("floating-point numbers are not allowed", 2)
  end
  if t == "nil" or t == "boolean" then return raw_tostring(v) end
  if t == "table" then
    local mt = dbg_getmetatable(v)
    local f = mt and raw_rawget(mt, "__tostring")
    if f ~= nil then
      local s = f(v)
      if raw_type(s) ~= "string" then raw_error("'__tostring' must return a string", 2) end
      return s
    end
    local name = mt and raw_rawget(mt, "__name")
    if raw_type(name) == "string" then return name end
  end
  return t  -- never an address: "table", "function", "thread"
end

local function safe_tonumber(v, base)
  if base ~= nil then
    check_int(base, "base")
    if raw_type(v) ~= "string" then raw_error("tonumber with a base takes a string", 2) end
    charge(per_bytes(#v))
    return raw_tonumber(v, base)  -- always an integer (or nil) when a base is given
  end
  if is_int(v) then return v end
  if raw_type(v) ~= "string" then return nil end
  charge(per_bytes(#v))
  local n = raw_tonumber(v)
  if n ~= nil and not is_int(n) then return nil end  -- "1.5", "1e3", overlong digits
  return n
end

-- Sorting n values compares each about log2(n) times on average (Lua's quicksort picks a
-- random pivot when a partition comes out lopsided); a string comparison costs up to the
-- shorter string's length.
local function sort_cost(n, bytes)
  local log = 1
  while (1 << log) < n do log = log + 1 end
  charge(log * (n + per_compared(bytes) * 2))
end

-- pairs in sorted key order: Lua seeds its string hash per process, so next() differs
-- between nodes. Integer keys first (ascending), then strings (byte order), then false, true.
local function sorted_pairs(t)
  if raw_type(t) ~= "table" then raw_error("pairs: table expected", 2) end
  local ints, strs, nb, bools, strbytes = {}, {}, 0, {}, 0
  for k in raw_next, t do
    local kt = raw_type(k)
    if kt == "number" then ints[#ints + 1] = k
    elseif kt == "string" then strs[#strs + 1] = k; strbytes = strbytes + #k
    elseif kt == "boolean" then bools[k] = true
    else raw_error("pairs: cannot order a key of type " .. kt, 2) end
    nb = nb + 1
  end
  local function sort(a, bytes)
    local n = #a
    if n > 1 then sort_cost(n, bytes); tbl_sort(a) end
  end
  sort(ints, 0); sort(strs, strbytes)
  local keys = ints
  for i = 1, #strs do keys[#keys + 1] = strs[i] end
  if bools[false] then keys[#keys + 1] = false end
  if bools[true] then keys[#keys + 1] = true end
  local i = 0
  return function()
    i = i + 1
    local k = keys[i]
    if k == nil then return nil end
    return k, raw_rawget(t, k)
  end, t, nil
end

local function safe_setmetatable(t, mt)
  if raw_type(t) ~= "table" then raw_error("setmetatable: table expected", 2) end
  local cur = dbg_getmetatable(t)
  if cur and raw_rawget(cur, PROTECTED) then raw_error("cannot change a protected metatable", 2) end
  if mt == nil then dbg_setmetatable(t, nil); return t end
  if raw_type(mt) ~= "table" then raw_error("setmetatable: metatable must be a table", 2) end
  -- A private copy: the contract keeps `mt` (getmetatable returns it) but can never add
  -- __gc or __mode to what Lua really uses.
  local copy = {}
  for k, v in raw_next, mt do
    if k == "__gc" or k == "__mode" then
      raw_error("setmetatable: " .. k .. " is not allowed in contracts", 2)
    end
    copy[k] = v
  end
  if raw_rawget(mt, "__metatable") ~= nil then copy[PROTECTED] = true
  else copy.__metatable = mt end
  dbg_setmetatable(t, copy)
  return t
end

local S = {}  -- strings: every copy is charged, every result capped
S.len = str_len
function S.sub(s, i, j)
  local r = str_sub(s, i, j); charge(per_bytes(#r)); return r
end
function S.upper(s) charge(per_bytes(#s)); return str_upper(s) end
function S.lower(s) charge(per_bytes(#s)); return str_lower(s) end
function S.reverse(s) charge(per_bytes(#s)); return str_reverse(s) end
-- How many values i..j is, or MAX_VALUES + 1 when more (j - i may wrap around 64 bits).
local MAX_VALUES = 256
local function span(i, j)
  if j < i then return 0 end
  local d = j - i
  if d < 0 or d >= MAX_VALUES then return MAX_VALUES + 1 end
  return d + 1
end

-- A string position as string.sub reads it, clamped to 0..n+1 (no overflow: |n| <= 64 Ki).
local function clamp(p, n)
  if p < 0 then p = n + p + 1; return p < 0 and 0 or p end
  return p > n + 1 and n + 1 or p
end

function S.byte(s, i, j)
  check_string(s, "string.byte argument")
  i = i or 1; j = j or i
  check_int(i, "string.byte start"); check_int(j, "string.byte end")
  local n = #s
  i, j = clamp(i, n), clamp(j, n)
  if i < 1 then i = 1 end
  if j > n then j = n end
  local count = span(i, j)
  if count > MAX_VALUES then raw_error("string.byte returns at most 256 values", 2) end
  charge(count)
  return str_byte(s, i, j)
end
function S.char(...)
  local n = raw_select("#", ...)
  if n > MAX_VALUES then raw_error("string.char takes at most 256 values", 2) end
  charge(n)
  return str_char(...)
end
function S.rep(s, n, sep)
  check_string(s, "string.rep argument"); check_int(n, "string.rep count")
  sep = sep or ""
  check_string(sep, "string.rep separator")
  if n <= 0 then return "" end
  local size = #s * n + #sep * (n - 1)
  if n > MAX_STRING or size > MAX_STRING then raw_error("string.rep result too long", 2) end
  charge(per_bytes(size) + (n >> 1))  -- str_rep appends piece by piece
  return str_rep(s, n, sep)
end
function S.find(s, sub, init, plain_flag)
  -- plain search only: Lua patterns backtrack, and their cost is not a function of size
  if plain_flag ~= nil and plain_flag ~= true then
    raw_error("string.find: patterns are not available in contracts (plain search only)", 2)
  end
  check_string(s, "string.find subject"); check_string(sub, "string.find needle")
  charge(per_bytes(#s) + ((#s * #sub) >> 8))  -- a naive search compares up to #s * #sub bytes
  return str_find(s, sub, init, true)
end
local FORMAT_SPECS = {d = true, i = true, x = true, X = true, s = true}
function S.format(fmt, ...)
  check_string(fmt, "format string")
  local parts, argi, pos, size = {}, 0, 1, 0
  while true do
    local at = str_find(fmt, "%", pos, true)
    local piece = str_sub(fmt, pos, at and at - 1 or #fmt)
    parts[#parts + 1] = piece
    size = size + #piece
    if not at then break end
    local spec = str_sub(fmt, at + 1, at + 1)
    if spec == "%" then
      parts[#parts + 1] = "%"
    elseif FORMAT_SPECS[spec] then
      argi = argi + 1
      local v = raw_select(argi, ...)
      local s
      if spec == "s" then s = safe_tostring(v)
      else s = str_format("%" .. spec, check_int(v, "format argument " .. argi)) end
      parts[#parts + 1] = s
      size = size + #s
    else
      raw_error("format: only %d, %i, %x, %X, %s and %% are available", 2)
    end
    if size > MAX_STRING then raw_error("format result too long", 2) end
    pos = at + 2
  end
  charge(per_bytes(size))
  return tbl_concat(parts)
end

-- concat(a, b, ...): what `..` would do, charged and capped. table.concat refuses
-- anything but strings and numbers, and numbers here are integers.
local function safe_concat(a, b, ...)
  local s
  local ta, tb = raw_type(a), raw_type(b)
  if (ta == "string" or ta == "number") and (tb == "string" or tb == "number")
      and raw_select("#", ...) == 0 then
    s = a .. b  -- the common case, without a table
  else
    if raw_select("#", ...) > 62 then raw_error("concat takes at most 64 values", 2) end
    s = tbl_concat({a, b, ...})
  end
  local n = #s
  if n > MAX_STRING then raw_error("concat: result too long", 2) end
  local r = remaining - (n >> 4)
  if r < 0 then remaining = 0; abort_now("out of gas") end
  remaining = r
  return s
end

local T = {}
function T.insert(t, ...)
  local n = raw_select("#", ...)
  if n == 1 then return tbl_insert(t, (...)) end  -- append
  if n ~= 2 then raw_error("wrong number of arguments to 'insert'", 2) end
  local pos, v = ...
  check_int(pos, "table.insert position")
  charge(#t - pos + 1 > 0 and #t - pos + 1 or 0)  -- the C loop shifts these elements
  return tbl_insert(t, pos, v)
end
function T.remove(t, pos)
  if pos ~= nil then
    check_int(pos, "table.remove position")
    charge(#t - pos > 0 and #t - pos or 0)
  end
  return tbl_remove(t, pos)
end
function T.concat(t, sep, i, j)
  sep = sep or ""; i = i or 1; j = j or #t
  check_string(sep, "table.concat separator")
  check_int(i, "table.concat start"); check_int(j, "table.concat end")
  local size = 0
  for k = i, j do
    local v = t[k]
    if raw_type(v) ~= "string" and not is_int(v) then
      raw_error("table.concat: element " .. k .. " must be a string or an integer", 2)
    end
    size = size + #safe_tostring(v) + #sep
    if size > MAX_STRING then raw_error("table.concat: result too long", 2) end
  end
  charge(per_bytes(size))
  return tbl_concat(t, sep, i, j)
end
function T.sort(t, cmp)
  if cmp ~= nil then raw_error("table.sort: only the default order is available in contracts", 2) end
  local n = #t
  if n < 2 then return end
  local kind = raw_type(t[1])
  if kind ~= "string" and not is_int(t[1]) then
    raw_error("table.sort: only arrays of integers or of strings can be sorted", 2)
  end
  local bytes = 0
  for k = 1, n do
    local v = t[k]
    if raw_type(v) ~= kind or (kind == "number" and not is_int(v)) then
      raw_error("table.sort: only arrays of integers or of strings can be sorted", 2)
    end
    if kind == "string" then bytes = bytes + #v end
  end
  sort_cost(n, bytes)
  tbl_sort(t)
end
local function safe_unpack(t, i, j)
  i = i or 1; j = j or #t
  check_int(i, "unpack start"); check_int(j, "unpack end")
  local n = span(i, j)
  if n > MAX_VALUES then raw_error("unpack returns at most 256 values", 2) end
  charge(n)
  return tbl_unpack(t, i, j)
end
T.unpack = safe_unpack
function T.pack(...)
  charge(raw_select("#", ...))
  return tbl_pack(...)
end

-- Integers only, at run time too: a string argument is not converted (math.abs("1.5")
-- would make a float) and math.tointeger lets nothing else through.
local M = {type = math_type, maxinteger = math.maxinteger, mininteger = math.mininteger}
function M.abs(x) return math_abs(check_int(x, "math.abs argument")) end
function M.ult(a, b)
  return math_ult(check_int(a, "math.ult argument"), check_int(b, "math.ult argument"))
end
function M.tointeger(x) if is_int(x) then return x end return nil end
function M.max(x, ...)
  local m = check_int(x, "math.max argument")
  for i = 1, raw_select("#", ...) do
    local v = check_int((raw_select(i, ...)), "math.max argument")
    if v > m then m = v end
  end
  return m
end
function M.min(x, ...)
  local m = check_int(x, "math.min argument")
  for i = 1, raw_select("#", ...) do
    local v = check_int((raw_select(i, ...)), "math.min argument")
    if v < m then m = v end
  end
  return m
end

local C = {}
function C.create(f)
  if raw_type(f) ~= "function" then raw_error("coroutine.create: function expected", 2) end
  charge(COROUTINE_GAS)
  return metered_thread(f)
end
function C.resume(co, ...) return caught(co_resume(co, ...)) end
local function wrap_result(ok, ...)
  if aborted then raw_error(aborted, 0) end
  if not ok then raw_error((...), 0) end
  return ...
end
function C.wrap(f)
  local co = C.create(f)
  return function(...) return wrap_result(co_resume(co, ...)) end
end
C.yield, C.status, C.running, C.isyieldable = co_yield, co_status, co_running, co_isyieldable
-- An aborted coroutine died inside the hook, where Lua turns hooks off for that thread:
-- its pending __close handlers must never run.
function C.close(co)
  if aborted then raw_error(aborted, 0) end
  return co_close(co)
end

local function safe_pcall(f, ...) return caught(raw_pcall(f, ...)) end

-- error(msg, level) prefixes a position to a string message: a copy, charged.
local function safe_error(msg, level)
  if level == nil then level = 1 end
  check_int(level, "error level")
  if raw_type(msg) == "string" then charge(per_bytes(#msg)) end
  raw_error(msg, level > 0 and level + 1 or level)
end

-- Two long strings of one length are compared byte by byte.
local function safe_rawequal(a, b)
  if raw_type(a) == "string" and raw_type(b) == "string" and #a == #b then
    charge(per_compared(#a))
  end
  return raw_rawequal(a, b)
end

-- select(n, ...) copies the values from n on.
local function safe_select(n, ...)
  charge(raw_select("#", ...))
  return raw_select(n, ...)
end

-- A message handler runs before the stack unwinds; when the error came from the gas hook,
-- hooks are still off at that point, so the contract's handler must not run at all.
local function safe_xpcall(f, handler, ...)
  return caught(raw_xpcall(f, function(e)
    if aborted then return e end
    return handler(e)
  end, ...))
end

-- --- the contract API -------------------------------------------------------------------

-- Host calls validate their arguments in Python and return (value, cost), or
-- (nil, nil, message, fatal). `pay` charges the cost; it is always tail-called, so an
-- error at level 3 points at the contract's line.
-- Before a host call that may hand Lua a value: the heap must have room for it here, in Lua,
-- where running out is an ordinary abort (deterministic: the heap is the same everywhere).
local function room()
  local kb = gc_count("count")
  if kb > HOST_ROOM_KB or kb - mem_start > mem_limit_kb then abort_now("memory limit exceeded") end
end

local function pay(v, cost, err, fatal)
  if cost == nil then
    if fatal then abort_now(err) end
    charge(GAS_READ * 4)  -- the host did the checking in Python: a refused call is not free
    raw_error(err, 3)
  end
  local r = remaining - cost
  if r < 0 then remaining = 0; abort_now("out of gas") end
  remaining = r
  return v
end

-- Storage. Only contracts write contract storage, and only through here, so the VM keeps
-- the block's view of it: reads go through a cache, writes wait in the running frame's
-- buffer until the frame ends well (or calls out), then join the call's writes, which
-- LuaVM.invoke takes when the call succeeded (settle, below, bounds the cache). What a
-- failed call had added is undone from a journal. Gas is the same whether a read hits
-- the cache or not.
local cache = {}       -- contract address -> key -> value (NONE: known absent)
local held = 0         -- bytes the cache and the compiled chunks hold (an estimate, see top)
local NONE = {}
local dkeys, dvals, dpos, dn = {}, {}, {}, 0  -- the frame's buffer, in first-write order
local written = {}     -- address -> key -> true: written in this block
local waddr, wkey, wn = {}, {}, 0  -- the block's written keys, in first-write order
local ua, uk, uold, unew, un = {}, {}, {}, {}, 0  -- undo journal of the running transaction

local function concat_limit(text, n) return text .. raw_tostring(n) .. " bytes" end

local function check_key(k)
  if raw_type(k) == "string" then
    if #k > MAX_KEY then raw_error(concat_limit("storage key is longer than ", MAX_KEY), 3) end
    return #k + 1
  end
  if not is_int(k) then raw_error("a storage key must be a string or an integer", 3) end
  return 9
end

local function contract_cache()
  local me = frames[#frames].self
  local c = cache[me]
  if not c then c = {}; cache[me] = c end
  return c
end

-- What a cached storage entry holds, as `held` counts it.
local function entry_bytes(k, v)
  return ENTRY_BYTES + (raw_type(k) == "string" and #k or 8) + (raw_type(v) == "string" and #v or 8)
end

local STORAGE = {}
function STORAGE.get(k)
  check_key(k)
  local v
  local i = dpos[k]
  if i then v = dvals[i] else
    local c = contract_cache()
    v = c[k]
    if v == nil then
      room()
      v = pay(h_get(k))
      if v == nil then v = NONE end
      held = held + entry_bytes(k, v)
      c[k] = v
    end
  end
  if v == NONE then charge(GAS_READ); return nil end
  charge(raw_type(v) == "string" and GAS_READ + (#v >> 4) or GAS_READ)
  return v
end

function STORAGE.set(k, v)
  local klen = check_key(k)
  local vt = raw_type(v)
  if v == nil then charge(GAS_WRITE); v = NONE
  elseif vt == "string" then
    if #v > MAX_VALUE then raw_error(concat_limit("a storage value is at most ", MAX_VALUE), 2) end
    charge(GAS_WRITE + GAS_BYTE * (klen + #v + 1))
  elseif is_int(v) then charge(GAS_WRITE + GAS_BYTE * (klen + 9))
  else raw_error("a storage value must be a string or an integer (nil deletes)", 2) end
  local i = dpos[k]
  if not i then dn = dn + 1; i = dn; dkeys[i] = k; dpos[k] = i end
  dvals[i] = v
end

function STORAGE.delete(k) return STORAGE.set(k, nil) end

local function discard_buffer()
  for i = 1, dn do dpos[dkeys[i]] = nil; dkeys[i] = nil; dvals[i] = nil end
  dn = 0
end

-- The frame's buffer joins the block's writes (metered: it runs on the contract's thread).
local function flush()
  local n = dn
  if n == 0 then return end
  local me = frames[#frames].self
  local c = contract_cache()
  local w = written[me]
  if not w then w = {}; written[me] = w end
  for i = 1, n do
    local k, v = dkeys[i], dvals[i]
    local new = not w[k]
    un = un + 1
    ua[un], uk[un], uold[un], unew[un] = me, k, c[k], new
    c[k] = v
    held = held + entry_bytes(k, v)
    if new then w[k] = true; wn = wn + 1; waddr[wn] = me; wkey[wn] = k end
  end
  discard_buffer()
end

-- A call failed: drop its buffer and undo what it (and its callees) flushed since `mark`.
local function forget_since(mark)
  discard_buffer()
  for i = un, mark + 1, -1 do
    local a, k = ua[i], uk[i]
    cache[a][k] = uold[i]
    if unew[i] then written[a][k] = nil; waddr[wn], wkey[wn] = nil, nil; wn = wn - 1 end
    ua[i], uk[i], uold[i] = nil, nil, nil
  end
  un = mark
end

local function emit(name, ...)
  local n = raw_select("#", ...)
  if n == 1 and raw_type((...)) == "table" then  -- named attributes, in sorted order
    local flat = {}
    for k, v in sorted_pairs((...)) do
      if raw_type(k) ~= "string" then raw_error("event attribute names must be strings", 2) end
      flat[#flat + 1] = k; flat[#flat + 1] = safe_tostring(plain(v, "event attribute value"))
      if #flat > 32 then raw_error("an event has at most 16 attributes", 2) end
    end
    return pay(h_emit(name, true, tbl_unpack(flat)))
  end
  if n > 16 then raw_error("an event has at most 16 attributes", 2) end
  return pay(h_emit(name, false, ...))
end

local TOKEN = {}
function TOKEN.balance(symbol, addr) return pay(h_token_balance(symbol, addr)) end
function TOKEN.transfer(symbol, to, amount) return pay(h_token_transfer(symbol, to, amount)) end
function TOKEN.transfer_from(symbol, owner, to, amount)
  return pay(h_token_transfer_from(symbol, owner, to, amount))
end

local function balance(addr) return pay(h_balance(addr)) end
local function transfer(to, amount) return pay(h_transfer(to, amount)) end

local G = {
  assert = raw_assert, error = safe_error, ipairs = raw_ipairs, pairs = sorted_pairs,
  pcall = safe_pcall, xpcall = safe_xpcall, select = safe_select, type = raw_type,
  tostring = safe_tostring, tonumber = safe_tonumber,
  getmetatable = raw_getmetatable, setmetatable = safe_setmetatable,
  rawequal = safe_rawequal, rawget = raw_rawget, rawlen = raw_rawlen, unpack = safe_unpack,
  string = readonly(S, "string"), table = readonly(T, "table"), math = readonly(M, "math"),
  coroutine = readonly(C, "coroutine"), storage = readonly(STORAGE, "storage"),
  token = readonly(TOKEN, "token"),
  emit = emit, transfer = transfer, balance = balance, concat = safe_concat,
}

-- A numeric for's start, limit and step (contracts/rewrite.py wraps them): Lua would turn
-- a string into a float there.
function G.__int(v)
  if is_int(v) then return v end
  raw_error("a for loop's start, limit and step must be integers", 2)
end

-- Comparisons (contracts/rewrite.py turns `a < b` into `__cmp_lt(a, b)`, `a ~= b` into
-- `not __cmp_eq(a, b)`): the VM compares two strings in one instruction however long they
-- are, `==` by memcmp (1 gas per 256 bytes), `<` by strcoll per NUL-separated piece (1 gas
-- per 2 bytes). Anything else behaves as the operator, metamethods and errors included.
function G.__cmp_eq(a, b)
  if raw_type(a) == "string" and raw_type(b) == "string" then
    local n = #a
    if n > 255 and n == #b then charge(n >> 8) end
  end
  return a == b
end

-- Charges ordering a before b, or raises Lua's error for operands it cannot order.
local function ordered(a, b)
  local ta, tb = raw_type(a), raw_type(b)
  if ta == "string" and tb == "string" then
    local n, m = #a, #b
    charge(per_compared(n < m and n or m))
  elseif ta ~= "table" and tb ~= "table" and (ta ~= "number" or tb ~= "number") then
    if ta == tb then raw_error("attempt to compare two " .. ta .. " values", 3) end
    raw_error("attempt to compare " .. ta .. " with " .. tb, 3)
  end
end
function G.__cmp_lt(a, b) ordered(a, b); return a < b end
function G.__cmp_le(a, b) ordered(a, b); return a <= b end
function G.__cmp_gt(a, b) ordered(b, a); return b < a end
function G.__cmp_ge(a, b) ordered(b, a); return b <= a end

-- Strings index the restricted library, cannot be given arithmetic, and hide their metatable.
dbg_setmetatable("", {__index = G.string, __metatable = false, [PROTECTED] = true})

local ENV_MT = {__index = G, __metatable = false, [PROTECTED] = true}

-- --- running contracts -------------------------------------------------------------------

local chunks = {}   -- address -> compiled main chunk (one runtime lives for one block)
local origin, height, time = nil, 0, 0

local function chunk_of(address)
  local chunk = chunks[address]
  if chunk then return chunk end
  room()
  local src = pay(h_code(address))  -- its cost is the compiling, by size, once per block
  local f, err = load(src, "=contract", "t", {})
  if not f then abort_now("stored contract does not compile: " .. err) end
  held = held + ENTRY_BYTES + CHUNK_BYTES_PER_SOURCE_BYTE * #src
  chunks[address] = f
  return f
end

local function concat_names(a, b) return a .. "." .. b end

local function env_holder(env) return function() return env end end

-- Instantiate a contract for one call: its chunk runs again in a fresh environment, so
-- nothing a call leaves in globals survives it.
local function instantiate(address, frame)
  -- the nil fields only size the table for the globals a contract defines (no rehashing)
  local env = raw_setmetatable({ctx = {
    self = address, caller = frame.caller, value = frame.value, origin = origin,
    height = height, time = time,
  }, _1 = nil, _2 = nil, _3 = nil, _4 = nil, _5 = nil, _6 = nil, _7 = nil}, ENV_MT)
  local chunk = chunk_of(address)
  upvaluejoin(chunk, 1, env_holder(env), 1)
  chunk()
  return env
end

local function finish_frame(...)
  plain_results(raw_select("#", ...), ...)
  flush()
  return ...
end

local optional = false  -- a missing function is no error (a contract without init)

local function run(address, fname, ...)
  local env = instantiate(address, frames[#frames])
  local f = raw_rawget(env, fname)
  if raw_type(f) ~= "function" then
    if optional and #frames == 1 then return end
    raw_error("contract has no function '" .. fname .. "'", 0)
  end
  return finish_frame(f(...))
end

local function finish_thread(co, ok, ...)
  if aborted then return false, aborted end
  if not ok then return false, error_text((...)) end
  if co_status(co) ~= "dead" then return false, "contract yielded outside a coroutine" end
  return true, ...
end

local function check_args(n, ...)
  for i = 1, n do plain((raw_select(i, ...)), "a call argument") end
end

local function enter(address, fname)
  return pay(h_enter(address, fname))
end

function G.call(address, fname, ...)
  if #frames >= MAX_DEPTH then raw_error("call depth limit reached", 2) end
  check_args(raw_select("#", ...), ...)
  flush()  -- the callee (or a re-entered caller) must see what this frame wrote
  local mark = un
  enter(address, fname)
  local caller = frames[#frames].self
  frames[#frames + 1] = {self = address, caller = caller, value = 0}
  local co = metered_thread(run)
  local res = tbl_pack(finish_thread(co, co_resume(co, address, fname, ...)))
  frames[#frames] = nil
  if aborted then raw_error(aborted, 0) end
  if not res[1] then forget_since(mark) end
  h_leave(res[1])
  if not res[1] then raw_error(res[2], 0) end
  return tbl_unpack(res, 2, res.n)
end

local api = {}

-- One top-level call. Returns ok, gas_used, error (the number of pending writes when ok),
-- nresults, results...
local top = {}  -- the top-level frame, reused from call to call

-- A call that wrote at most INLINE keys hands them back with its results (one crossing
-- into Python instead of two): ok, gas_used, -wn, nresults, then address, key, value for
-- each write (nil: deleted), then the results. More writes wait for `drain`: ok, gas_used,
-- wn, nresults, results.
local INLINE = 64
local inline, inline_n = {}, 0  -- reused: the last call's writes and results, flat

local function take_inline(used, nres, ...)
  local j = 0
  for i = 1, wn do
    local a, k = waddr[i], wkey[i]
    local v = cache[a][k]
    inline[j + 1], inline[j + 2], inline[j + 3] = a, k, v ~= NONE and v or nil
    j = j + 3
    written[a][k], waddr[i], wkey[i] = nil, nil, nil
  end
  for i = 1, nres do inline[j + i] = (raw_select(i, ...)) end
  local n = wn
  wn, inline_n = 0, j + nres
  return true, used, -n, nres, tbl_unpack(inline, 1, j + nres)
end

local function finish_top(gas, mark, co, ok, ...)
  for i = #frames, 2, -1 do frames[i] = nil end  -- an abort skips the nested frames' pops
  if aborted or not ok then forget_since(mark) end
  if aborted then return false, gas, aborted, 0 end
  if not ok then return false, gas - remaining, error_text((...)), 0 end
  if co_status(co) ~= "dead" then
    return false, gas - remaining, "contract yielded outside a coroutine", 0
  end
  local nres = raw_select("#", ...)
  if wn == 0 or wn > INLINE then
    return true, gas - remaining, wn, nres, ...  -- wn: writes to drain
  end
  return take_inline(gas - remaining, nres, ...)
end

-- Between calls (no write is pending: LuaVM.invoke drains them after every call), what the
-- VM keeps is only a cache of state: over the budget it is dropped and the heap collected,
-- so a block's VM holds at most the budget plus what one call may add, however many calls
-- the block has. The decision depends only on `held`, so every node drops it at the same
-- call; the gas charged does not depend on it except for compiling a contract again
-- (charged by size, at the same call everywhere).
local function settle()
  if held <= HELD_BUDGET or wn > 0 then return end
  cache, chunks, held = {}, {}, 0
  written, waddr, wkey, wn = {}, {}, {}, 0
  ua, uk, uold, unew, un = {}, {}, {}, {}, 0
  dkeys, dvals, dpos, dn = {}, {}, {}, 0
  gc_count("collect")
end

function api.invoke(address, fname, gas, mem_kb, optional_, caller, value, origin_, height_, time_, ...)
  if gas <= 0 then return false, 0, "out of gas", 0 end
  settle()
  remaining, aborted = gas, nil
  mem_start, mem_limit_kb = gc_count("count"), mem_kb
  origin, height, time, optional = origin_, height_, time_, optional_
  top.self, top.caller, top.value = address, caller, value
  frames[1] = top
  local co = metered_thread(run)  -- gas > 0, so this cannot abort on the main thread
  for i = 1, un do ua[i], uk[i], uold[i] = nil, nil, nil end  -- the last call is settled
  un = 0
  for i = 1, inline_n do inline[i] = nil end  -- nothing of it is held past its call
  inline_n = 0
  return finish_top(gas, 0, co, co_resume(co, address, fname, ...))
end

-- The pending writes, up to DRAIN at a time from position `from`: count, then address,
-- key, value (nil: deleted) for each. LuaVM.invoke takes them after every successful call.
local DRAIN = 4096
function api.drain(from)
  local last = from + DRAIN - 1
  if last > wn then last = wn end
  local out, j = {}, 0
  for i = from, last do
    local a, k = waddr[i], wkey[i]
    local v = cache[a][k]
    out[j + 1], out[j + 2] = a, k
    if v ~= NONE then out[j + 3] = v end
    j = j + 3
  end
  if last >= wn then written, waddr, wkey, wn = {}, {}, {}, 0 end
  return last - from + 1, tbl_unpack(out, 1, j)
end

-- Compute tasks (smartchain/compute/lua.py) run in this sandbox with no chain access: the
-- runtime of a task VM drops the chain's globals once, before any code runs.
local CHAIN_GLOBALS = {"storage", "token", "emit", "transfer", "balance", "call"}
function api.without_chain()
  for _, name in raw_ipairs(CHAIN_GLOBALS) do G[name] = nil end
end

-- The dotted names of every function a contract can reach (a test checks each is priced).
function api.names()
  local out = {}
  for k, v in raw_next, G do
    if raw_type(v) == "function" then out[#out + 1] = k
    elseif raw_type(v) == "table" then
      local lib = raw_getmetatable(v) == false and dbg_getmetatable(v).__index or v
      for name, f in raw_next, lib do
        if raw_type(f) == "function" then out[#out + 1] = concat_names(k, name) end
      end
    end
  end
  tbl_sort(out)
  return tbl_unpack(out)
end

-- Compile without running; returns the bytecode dump for the determinism check, or nil
-- and the syntax error.
function api.compile(src)
  local f, err = load(src, "=contract", "t", {})
  if not f then return nil, err end
  return dump(f), nil
end

return api
