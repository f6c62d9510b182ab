"""Runs one compute task: a WebAssembly module over an input, the same way on every worker.

``TaskRunner`` is the one entry point for every kind of task module: a module whose first
line is ``--!lua`` is a Lua task and goes to ``lua.LuaTaskRunner`` (see ``compute/lua.py``);
anything else must be WebAssembly, as described here.

Workers are compared by the hash of their output, so a task must give the same output bytes
and the same fuel count on every machine; the requester pays for the fuel. That is what the
engine configuration and this ABI are for.

Task ABI (a module that breaks it gets a per-task error, never a crash):

- The module imports nothing: no WASI, no host functions, no imported memory or table.
- It exports ``memory`` (its one linear memory), ``alloc(len: i32) -> i32`` and
  ``run(input_ptr: i32, input_len: i32) -> i64``.
- The host calls ``alloc(len(input))`` and writes the input at the address returned; then
  calls ``run(ptr, len)``. The result packs the output's place:
  ``(output_ptr << 32) | output_len`` (both unsigned 32-bit), at most ``MAX_OUTPUT`` bytes.
- Fuel (wasmtime's: about one unit per WebAssembly instruction) is counted from the start
  function, if any, through ``alloc`` to the end of ``run``; instantiation itself (data and
  element segments) costs none. Out of fuel: ``fuel_used`` is the whole limit.
- ``memory.grow`` past the memory limit returns -1, as the WebAssembly spec says; a module
  that cannot go on should trap. The error of a trap says when the memory was full.

Determinism (wasmtime is pinned in pyproject.toml: fuel counts depend on its version):
threads, shared memory, SIMD, relaxed SIMD, multi-memory, memory64, GC, function references,
exceptions, stack switching, tail calls, wide arithmetic, custom page sizes and the component
model are off; NaNs are canonicalised; fuel is on. Bulk memory, reference types (one table
still) and multi-value stay on: deterministic, and what current compilers emit. Memory, tables
and instances are capped by the store's limiter. Calls are limited by a deterministic stack
budget (``depth.add_depth_limit``: ``STACK_BUDGET`` units, about 6,500 levels of a small
recursive function); wasmtime's native stack limit (``MAX_WASM_STACK``) is only a backstop,
and its trap says it is machine-dependent.

Errors (``TaskResult.error``; short, and the same on every worker): ``invalid module: …``,
``module too large: …``, ``module imports M.N; tasks may import nothing``, ``module must
export …``, ``out of fuel``, ``memory limit exceeded: …``, ``table limit exceeded: …``,
``call depth limit exceeded``, ``trap: <kind>``, ``input out of bounds: …``,
``output out of bounds: …``, ``output too large: …``.

The host thread needs more than ``MAX_WASM_STACK`` of native stack free (Linux gives the
main thread and glibc threads 8 MiB).
"""

from __future__ import annotations

import atexit
import re
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

import wasmtime

from smartchain.compute.depth import (
    DEPTH_EXPORT,
    RESERVED_EXPORTS,
    START_EXPORT,
    InstrumentError,
    add_depth_limit,
    export_names,
    first_import,
)
from smartchain.compute.lua import LuaTaskRunner, is_lua
from smartchain.compute.result import MAX_OUTPUT, TaskResult
from smartchain.crypto.hashing import h256

if TYPE_CHECKING:
    from wasmtime._instance import InstanceExports  # what Instance.exports() returns

PAGE = 65536
MAX_MODULE = 16 * 1024 * 1024  # compiling is not metered: bound its input
DEFAULT_MAX_MEMORY = 64 * 1024 * 1024
MAX_MEMORY = 4 * 1024 * 1024 * 1024  # a 32-bit memory cannot be larger
MAX_TABLE_ELEMENTS = 100_000
STACK_BUDGET = 64 * 1024  # stack units (~16 bytes each) nested calls may hold: ~1 MiB
MAX_WASM_STACK = 2 * 1024 * 1024  # native backstop; wasmtime allows at most its async stack (2 MiB)
CACHE_SIZE = 64
WASM_MAGIC = b"\0asm"

_TRAPS = {
    # Frames outgrew the depth budget's estimate: the depth this happens at depends on the
    # machine, so verification must not count it as a vote against other workers.
    wasmtime.TrapCode.STACK_OVERFLOW: "native stack overflow (machine-dependent)",
    wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS: "out-of-bounds memory access",
    wasmtime.TrapCode.TABLE_OUT_OF_BOUNDS: "out-of-bounds table access",
    wasmtime.TrapCode.INDIRECT_CALL_TO_NULL: "indirect call to a null table entry",
    wasmtime.TrapCode.BAD_SIGNATURE: "indirect call signature mismatch",
    wasmtime.TrapCode.INTEGER_OVERFLOW: "integer overflow",
    wasmtime.TrapCode.INTEGER_DIVISION_BY_ZERO: "integer divide by zero",
    wasmtime.TrapCode.BAD_CONVERSION_TO_INTEGER: "invalid conversion to integer",
    wasmtime.TrapCode.UNREACHABLE: "unreachable",
}


class _Compiled(NamedTuple):
    module: wasmtime.Module
    min_memory: int  # bytes the memory starts with


class _TaskFault(Exception):
    """A task broke the ABI after it was instantiated (caught inside ``run``)."""


def deterministic_config() -> wasmtime.Config:
    """The engine configuration every worker uses (see the module docstring)."""
    config = wasmtime.Config()
    config.consume_fuel = True
    config.wasm_relaxed_simd = False  # before SIMD: relaxed SIMD needs it
    config.wasm_simd = False
    config.wasm_threads = False
    config.shared_memory = False
    config.wasm_multi_memory = False
    config.wasm_memory64 = False
    config.wasm_gc = False
    config.wasm_function_references = False
    config.wasm_exceptions = False
    config.wasm_stack_switching = False
    config.wasm_tail_call = False
    config.wasm_wide_arithmetic = False
    config.wasm_custom_page_sizes = False
    config.wasm_component_model = False
    config.wasm_bulk_memory = True
    config.wasm_reference_types = True
    config.wasm_multi_value = True
    config.cranelift_nan_canonicalization = True
    config.cranelift_opt_level = "speed"
    config.epoch_interruption = False
    config.max_wasm_stack = MAX_WASM_STACK
    return config


def _signature(ty: object) -> str:
    if not isinstance(ty, wasmtime.FuncType):
        return "not a function"
    params = ", ".join(str(p) for p in ty.params)
    results = ", ".join(str(r) for r in ty.results)
    return f"({params}) -> {results}"


def _check_shape(wasm: bytes) -> str:
    """Why a validated module breaks the ABI before it is rewritten, or ''."""
    imported = first_import(wasm)
    if imported:
        return f"module imports {imported[0]}.{imported[1]}; tasks may import nothing"
    names = export_names(wasm)
    for name in RESERVED_EXPORTS:
        if name in names:
            return f"module exports {name}, a name reserved for the runner"
    return ""


def _check_exports(module: wasmtime.Module) -> str:
    """Why the compiled module's exports break the ABI, or '' when they keep it."""
    exports = {e.name: e.type for e in module.exports}
    if not isinstance(exports.get("memory"), wasmtime.MemoryType):
        return "module must export memory (its linear memory)"
    wanted = {"alloc": "(i32) -> i32", "run": "(i32, i32) -> i64"}
    for name, signature in wanted.items():
        if name not in exports or _signature(exports[name]) != signature:
            return f"module must export {name}: {signature}"
    return ""


_LIVE: weakref.WeakSet[TaskRunner] = weakref.WeakSet()


@atexit.register
def _close_live_runners() -> None:
    for runner in list(_LIVE):
        runner.close()


class TaskRunner:
    """Compiles (and caches) task modules and runs tasks, each in a fresh store. Lua tasks
    (``lua.is_lua``) are handed to a ``LuaTaskRunner``: same calls, same ``TaskResult``."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self.engine = wasmtime.Engine(deterministic_config())
        self._cache: OrderedDict[bytes, _Compiled | str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.lua = LuaTaskRunner()
        _LIVE.add(self)

    def close(self) -> None:
        """Free the compiled modules and the engine now. A runner still alive when the
        interpreter exits is closed before wasmtime's bindings are torn down, which would
        otherwise make each of its objects print an ignored exception."""
        with self._lock:
            for compiled in self._cache.values():
                if isinstance(compiled, _Compiled):
                    compiled.module.close()
            self._cache.clear()
            self.engine.close()

    def check(self, module_bytes: bytes) -> str:
        """Why the module cannot run as a task, or '' if it can (compiling it once)."""
        if is_lua(module_bytes):
            return self.lua.check(module_bytes)
        if len(module_bytes) > MAX_MODULE:
            return _too_large(module_bytes)
        compiled = self._compiled(bytes(module_bytes))
        return compiled if isinstance(compiled, str) else ""

    def run(self, module_bytes: bytes, input_bytes: bytes, *, fuel: int,
            max_memory_bytes: int = DEFAULT_MAX_MEMORY) -> TaskResult:
        """Run one task. Only a wrong argument raises; anything the task does is a result."""
        if not isinstance(fuel, int) or fuel <= 0:
            raise ValueError("fuel must be a positive integer")
        if not 0 < max_memory_bytes <= MAX_MEMORY:
            raise ValueError(f"max_memory_bytes must be in 1..{MAX_MEMORY}")
        module_bytes = bytes(module_bytes)
        if is_lua(module_bytes):
            return self.lua.run(module_bytes, input_bytes, fuel=fuel,
                                max_memory_bytes=max_memory_bytes)
        if len(module_bytes) > MAX_MODULE:
            return TaskResult(False, b"", 0, _too_large(module_bytes))
        compiled = self._compiled(module_bytes)
        if isinstance(compiled, str):
            return TaskResult(False, b"", 0, compiled)
        if compiled.min_memory > max_memory_bytes:
            return TaskResult(False, b"", 0, "memory limit exceeded: the module starts with "
                              f"{compiled.min_memory} bytes, the limit is {max_memory_bytes}")
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=max_memory_bytes, table_elements=MAX_TABLE_ELEMENTS,
                         instances=1, tables=1, memories=1)
        store.set_fuel(fuel)
        output, error = _execute(store, compiled.module, bytes(input_bytes), max_memory_bytes)
        fuel_used = fuel - store.get_fuel()
        return TaskResult(not error, output, fuel_used, error)

    def _compiled(self, module_bytes: bytes) -> _Compiled | str:
        key = h256(module_bytes)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled = self._compile(module_bytes)
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def _compile(self, module_bytes: bytes) -> _Compiled | str:
        """Validate, check the ABI, add the depth limit, compile once: a module or an error."""
        if not module_bytes.startswith(WASM_MAGIC):
            return "invalid module: not a WebAssembly binary"
        try:
            wasmtime.Module.validate(self.engine, module_bytes)
            problem = _check_shape(module_bytes)
            if problem:
                return problem
            rewritten = add_depth_limit(module_bytes, STACK_BUDGET)
        except wasmtime.WasmtimeError as exc:
            return f"invalid module: {_describe(exc)}"
        except InstrumentError as exc:
            return f"invalid module: cannot add the call depth limit: {exc}"
        try:
            module = wasmtime.Module(self.engine, rewritten)
        except wasmtime.WasmtimeError as exc:
            return f"invalid module: {_describe(exc)}"
        problem = _check_exports(module)
        if problem:
            return problem
        memory = next(e.type for e in module.exports if e.name == "memory")
        assert isinstance(memory, wasmtime.MemoryType)
        return _Compiled(module, memory.limits.min * PAGE)


def _too_large(module_bytes: bytes) -> str:
    return f"module too large: {len(module_bytes)} bytes (limit {MAX_MODULE})"


def _describe(exc: Exception) -> str:
    """wasmtime's message on one line: what failed, and its innermost cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if "Caused by:" not in lines:
        return lines[0]
    cause = re.sub(r"^\d+: ", "", lines[-1])
    return f"{lines[0]}: {cause}"


def _execute(store: wasmtime.Store, module: wasmtime.Module, data: bytes,
             max_memory: int) -> tuple[bytes, str]:
    """Instantiate and call the task: (output, '') or (b'', error)."""
    try:
        instance = wasmtime.Instance(store, module, [])
    except wasmtime.Trap as trap:  # not expected: the start function is called below
        return b"", _trap_error(trap, None, store, max_memory)
    except wasmtime.WasmtimeError as exc:
        return b"", _instantiation_error(exc)
    exports = instance.exports(store)
    memory = exports["memory"]
    assert isinstance(memory, wasmtime.Memory)
    try:
        start = exports.get(START_EXPORT)
        if isinstance(start, wasmtime.Func):
            start(store)
        return _call(store, exports, memory, data), ""
    except wasmtime.Trap as trap:
        return b"", _trap_error(trap, exports, store, max_memory, memory)
    except _TaskFault as fault:
        return b"", str(fault)
    except wasmtime.WasmtimeError as exc:  # an engine error that is not a trap code
        return b"", f"trap: {_describe(exc)}"


def _call(store: wasmtime.Store, exports: InstanceExports, memory: wasmtime.Memory,
          data: bytes) -> bytes:
    """alloc, write the input, run, read the output: the ABI's host side."""
    alloc, run = exports["alloc"], exports["run"]
    assert isinstance(alloc, wasmtime.Func) and isinstance(run, wasmtime.Func)
    ptr = alloc(store, len(data)) & 0xFFFFFFFF
    size = memory.data_len(store)
    if ptr + len(data) > size:
        raise _TaskFault(f"input out of bounds: alloc({len(data)}) returned {ptr}, "
                         f"memory is {size} bytes")
    if data:
        memory.write(store, data, ptr)
    packed = run(store, ptr, len(data)) & 0xFFFFFFFFFFFFFFFF
    out_ptr, out_len = packed >> 32, packed & 0xFFFFFFFF
    if out_len > MAX_OUTPUT:
        raise _TaskFault(f"output too large: {out_len} bytes (limit {MAX_OUTPUT})")
    size = memory.data_len(store)
    if out_ptr + out_len > size:
        raise _TaskFault(f"output out of bounds: {out_len} bytes at {out_ptr}, "
                         f"memory is {size} bytes")
    return bytes(memory.read(store, out_ptr, out_ptr + out_len))


def _trap_error(trap: wasmtime.Trap, exports: InstanceExports | None,
                store: wasmtime.Store, max_memory: int,
                memory: wasmtime.Memory | None = None) -> str:
    code = trap.trap_code
    if code == wasmtime.TrapCode.OUT_OF_FUEL:
        return "out of fuel"
    if code == wasmtime.TrapCode.UNREACHABLE and exports is not None:
        depth = exports[DEPTH_EXPORT]
        assert isinstance(depth, wasmtime.Global)
        if depth.value(store) > STACK_BUDGET:
            return "call depth limit exceeded"
    kind = _TRAPS.get(code, code.name.lower().replace("_", " ")) if code else "unknown"
    error = f"trap: {kind}"
    if memory is not None and memory.data_len(store) + PAGE > max_memory:
        error += f" (memory full: no page left under the limit of {max_memory} bytes)"
    return error


def _instantiation_error(exc: wasmtime.WasmtimeError) -> str:
    message = _describe(exc)
    if "table" in message:
        return f"table limit exceeded: {message}"
    if "memory" in message:
        return f"memory limit exceeded: {message}"
    return f"cannot instantiate: {message}"
