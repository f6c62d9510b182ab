"""Runs one compute task written in Lua, in the contracts sandbox, the same way on every worker.

A task module is Lua source when its bytes start with the line ``--!lua`` (``is_lua``: the
six bytes ``--!lua`` followed by a newline, a space, a tab or the end; the rest of that
line is free, e.g. ``--!lua word count``). It is a Lua comment, so the module is plain Lua
5.4 source; WebAssembly starts with ``\\0asm``, so the two kinds can never be confused.

Task ABI:

- The module defines a global function ``run(input)``. The host calls it with the task's
  input as one Lua string; it returns one string: the output bytes (at most ``MAX_OUTPUT``).
  Numbers go in and out as bytes: the sandbox has no ``string.pack``, so build them with
  ``string.char`` and ``string.byte`` over shifted integers (``examples/compute/wordcount.lua``).
- Everything else is the contracts' rules (``smartchain/contracts/``): the source is compiled
  as text (no binary chunks) and its bytecode must be integer-only (no float literals, no
  ``/``, ``^`` or ``..``: use ``//`` and ``concat``); it runs with the contracts' whitelisted
  globals (``string`` without patterns, ``table``, integer ``math``, ``coroutine``,
  ``pcall``, ``pairs`` in sorted order, ``concat``, ...) and their caps (strings of at most
  64 KiB are built). A task has no chain access: ``storage``, ``token``, ``emit``,
  ``transfer``, ``balance``, ``call`` and ``ctx`` are absent (``_TaskVM`` has the sandbox
  drop the first six from its globals, ``without_chain``, in its own runtime only; a
  prelude on the module's first line clears ``ctx``), and the host behind the sandbox
  refuses every chain call anyway.
- Memory: what the task adds to the Lua heap (garbage included until it is collected, as
  for contracts) is limited to ``max_memory_bytes`` (``TaskRunner``'s default, 64 MiB; at
  most ``MAX_TASK_MEMORY``); the input string is not counted.

Fuel is the contracts' gas: one unit per Lua VM instruction, paid ahead in periods of
``vm.PERIOD`` instructions (a task pays at least one period), plus what the sandbox charges
by size (string copies, sorting, coroutines), plus one unit per byte of the module for
compiling it. It runs from the module's top level (run again for every task) to the end of
``run``. Out of fuel, or over the memory limit (the sandbox aborts the task for both):
``fuel_used`` is the whole limit. The same module and input give the same output and the
same fuel everywhere: each task runs in a fresh ``LuaVM`` (so allocation and garbage
collection, which the memory limit watches, start from the same state), with no watchdog
and nothing that depends on the process (the sandbox orders ``pairs`` and hides addresses).

Checking a module (``check``, before the mempool) compiles it, runs the bytecode check, then
runs its top level once (at most ``CHECK_FUEL``) to see that it defines ``run``.

Errors (``TaskResult.error``; short, at most ``MAX_ERROR_TEXT`` characters, the same on
every worker; positions read ``task:LINE:``): ``module too large: …``, ``invalid Lua task:
…`` (syntax, a determinism rule, a top level that fails or needs more than ``CHECK_FUEL``),
``Lua task must define a global function run(input)``, ``out of fuel``, ``memory limit
exceeded``, ``runtime error: …``, ``run must return one string …``, ``output too large: …``.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any, NoReturn

from smartchain.compute.result import MAX_OUTPUT, TaskResult
from smartchain.contracts.host import ContractError, Host
from smartchain.contracts.rewrite import SourceError, rewrite
from smartchain.contracts.vm import MAX_CODE, MAX_MEMORY, LuaVM
from smartchain.crypto.hashing import h256

MARKER = b"--!lua"
MAX_MODULE = MAX_CODE  # the contracts' source limit (64 KiB)
CHECK_FUEL = 1_000_000  # what a module's top level may cost when it is checked
MAX_FUEL = 1 << 62  # a Lua integer holds the gas counter; larger limits are clamped
MAX_TASK_MEMORY = MAX_MEMORY // 2  # per task, under the runtime's own limit
MAX_ERROR_TEXT = 200  # the chain takes error texts of at most 256 characters
CACHE_SIZE = 256
ADDRESS = b"task"  # what the sandbox calls the running "contract" (never shown to the task)
# Runs before the module, on its first line (so line numbers stay): no ``ctx`` either.
_PRELUDE = b"ctx=nil "
_CHECK_FUNCTION = b"__smartchain_check"
_CHUNK_POSITION = re.compile(r"\bcontract:(\d+):")
_SANDBOX_POSITION = re.compile(r'\[string "<python>"\]:\d+: ')  # inside the sandbox itself

def is_lua(module: bytes) -> bool:
    """Whether the module is a Lua task: its first line starts with ``--!lua``."""
    return module[:len(MARKER)] == MARKER and module[len(MARKER):len(MARKER) + 1] in (
        b"", b"\n", b"\r", b" ", b"\t")


class _TaskHost(Host):
    """The host of a task VM: the module's source, and no chain. The sandbox only asks it for
    the code; every other call is refused (they are not even reachable from a task)."""

    def __init__(self, source: bytes) -> None:
        super().__init__()
        self.source = source

    def code(self, address: Any) -> tuple[bytes, int]:
        try:  # compiling: a unit a byte of the module
            return rewrite(self.source), len(self.source) - len(_PRELUDE)
        except SourceError as exc:
            raise ContractError(f"invalid Lua task: {exc}") from exc

    def _refuse(self, *_args: Any, **_kwargs: Any) -> NoReturn:
        raise ContractError("compute tasks have no chain access")

    get = emit = balance = transfer = token_balance = _refuse
    token_transfer = token_transfer_from = enter = _refuse


class _TaskVM(LuaVM):
    """The contracts' ``LuaVM`` with the chain's globals taken out of the sandbox."""

    def __init__(self, source: bytes) -> None:
        super().__init__(_TaskHost(source))
        self.without_chain()

    def call(self, function: bytes, args: tuple[Any, ...], fuel: int, memory_kb: int) -> Any:
        return self.invoke(ADDRESS, function, args, gas=fuel, caller=b"", value=0, origin=b"",
                           height=0, time_ms=0, memory_kb=memory_kb)


def _text(message: str) -> str:
    """An error as workers report it: positions as ``task:LINE:``, short."""
    message = _CHUNK_POSITION.sub(r"task:\1:", message)
    message = _SANDBOX_POSITION.sub("", message)
    if len(message) > MAX_ERROR_TEXT:
        message = message[:MAX_ERROR_TEXT - 1] + "…"
    return message


def _runtime_error(error: str) -> str:
    if error == "out of gas":
        return "out of fuel"
    if error == "memory limit exceeded":
        return error
    if "a returned value must be" in error:  # raised inside the sandbox: no task position
        kind = error.rsplit("(got ", 1)[-1].rstrip(")")
        return _text(f"run must return one string (got a {kind})")
    if error == "contract yielded outside a coroutine":
        return _text("runtime error: the task yielded outside a coroutine")
    return _text(f"runtime error: {error}")


def _describe(results: tuple[Any, ...]) -> str:
    if len(results) != 1:
        return f"{len(results)} values"
    v = results[0]
    if v is None:
        return "nil"
    return "a boolean" if type(v) is bool else "an integer"


class LuaTaskRunner:
    """Checks (and caches the verdict on) Lua task modules and runs tasks, each in a fresh VM.
    Safe to share between threads: every VM is used by the thread that made it."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._verdicts: OrderedDict[bytes, str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def check(self, module: bytes) -> str:
        """Why the module cannot run as a task, or '' if it can."""
        module = bytes(module)
        if len(module) > MAX_MODULE:
            return f"module too large: {len(module)} bytes (limit {MAX_MODULE})"
        key = h256(module)
        with self._lock:
            hit = self._verdicts.get(key)
            if hit is not None:
                self._verdicts.move_to_end(key)
                return hit
        verdict = _check(module)
        with self._lock:
            self._verdicts[key] = verdict
            while len(self._verdicts) > self._cache_size:
                self._verdicts.popitem(last=False)
        return verdict

    def run(self, module: bytes, input_bytes: bytes, *, fuel: int,
            max_memory_bytes: int = MAX_TASK_MEMORY) -> TaskResult:
        """Run one task. Only a wrong argument raises; anything the task does is a result."""
        if not isinstance(fuel, int) or fuel <= 0:
            raise ValueError("fuel must be a positive integer")
        if max_memory_bytes <= 0:
            raise ValueError("max_memory_bytes must be positive")
        problem = self.check(module)
        if problem:
            return TaskResult(False, b"", 0, problem)
        fuel = min(fuel, MAX_FUEL)
        memory_kb = min(max_memory_bytes, MAX_TASK_MEMORY) // 1024
        vm = _TaskVM(_PRELUDE + bytes(module))
        out = vm.call(b"run", (bytes(input_bytes),), fuel, memory_kb)
        if not out.ok:
            return TaskResult(False, b"", min(out.gas_used, fuel), _runtime_error(out.error))
        if len(out.results) != 1 or type(out.results[0]) is not bytes:
            return TaskResult(False, b"", out.gas_used,
                              f"run must return one string (got {_describe(out.results)})")
        output = out.results[0]
        if len(output) > MAX_OUTPUT:
            return TaskResult(False, b"", out.gas_used,
                              f"output too large: {len(output)} bytes (limit {MAX_OUTPUT})")
        return TaskResult(True, output, out.gas_used, "")


def _check(module: bytes) -> str:
    """Compile, check the bytecode, run the top level once: '' or why not."""
    if not is_lua(module):
        return f"invalid Lua task: the first line must start with {MARKER.decode()}"
    # The module's top level in a function, then a function that says what it left in `run`
    # (with the sandbox's `type`, taken before the module could replace it; declared after
    # the module's function, so the module does not see it). The module compiles alone
    # (checked first), so wrapping it cannot change its meaning; the wrapper starts on the
    # module's first line, so line numbers stay.
    source = (_PRELUDE + b"local __task = function(...) " + module + b"\nend "
              b"local __type = type __task() "
              b"function " + _CHECK_FUNCTION + b"() return __type(run) end")
    vm = _TaskVM(source)
    try:
        vm.check_source(module)
    except ContractError as exc:
        return _text(f"invalid Lua task: {exc.message}")
    out = vm.call(_CHECK_FUNCTION, (), CHECK_FUEL, MAX_TASK_MEMORY // 1024)
    if not out.ok:
        if out.error == "out of gas":
            return f"invalid Lua task: its top level needs more than {CHECK_FUEL} fuel"
        return _text(f"invalid Lua task: its top level failed: {out.error}")
    if out.results != (b"function",):
        return "Lua task must define a global function run(input)"
    return ""
