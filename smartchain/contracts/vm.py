"""The Lua 5.4 virtual machine contracts run in (lupa 2.8, pinned: gas counts depend on it).

One ``LuaVM`` is one ``LuaRuntime`` with the sandbox of ``sandbox.lua`` loaded. The chain
makes a fresh one for every block it executes, so every node starts each block from the
same VM state: allocation, garbage collection and therefore the per-call memory limit
behave identically everywhere. Between calls the VM keeps only a cache of state (storage
read or written, compiled contracts), dropped past ``HELD_BUDGET``: a call's writes leave
with its outcome, so the heap stays under ``HELD_BUDGET`` plus one call's ``CALL_MEMORY_KB``
however many calls a block has, far from ``MAX_MEMORY``. Queries get their own VM and a
wall-clock watchdog, which never runs while a block is executed: it must not decide a
consensus result.

Python never hands a Python object to contract code: the host callbacks are upvalues of
the sandbox, they return only None, booleans, integers and bytes, and they never raise
into Lua (an exception would carry a Python object into the contract's ``pcall``).
"""

from __future__ import annotations

import locale
import logging
import time
from collections.abc import Callable
from importlib.resources import files
from typing import Any, NamedTuple

from lupa import lua54

from smartchain.contracts.bytecode import BytecodeError, check_bytecode
from smartchain.contracts.host import MAX_KEY, MAX_VALUE, ContractError, Host
from smartchain.contracts.rewrite import SourceError, rewrite

log = logging.getLogger("smartchain.contracts")

PERIOD = 256  # instructions paid per hook firing; a call pays at least one period
MAX_STRING = 64 * 1024  # longest string a contract can build
MAX_DEPTH = 8  # nested contract calls
MAX_CODE = 64 * 1024
MAX_MEMORY = 256 * 1024 * 1024  # the whole runtime: a last resort under the per-call limit
CALL_MEMORY_KB = 32 * 1024  # what one top-level call may add to the heap
HELD_BUDGET = 48 * 1024 * 1024  # what the VM may keep between calls (sandbox.lua's `held`)
HOST_ROOM_KB = MAX_MEMORY // 1024 - 48 * 1024  # no host call hands Lua a value past this heap
_DRAIN_CHUNK = 4096  # writes per drain call (sandbox.lua's DRAIN): Lua's stack bounds it


class CallOutcome(NamedTuple):  # a tuple: built once per call on the hot path
    ok: bool
    gas_used: int
    error: str
    results: tuple[Any, ...]  # None, bool, int or bytes each
    writes: tuple[tuple[bytes, Any, Any], ...] = ()  # storage writes: (address text, key,
    # value or None for a deletion), in first-write order; only a successful call has any


def _deny_attribute(*_args: object) -> None:
    raise AttributeError("attribute access is not available in contracts")


# Lua compares strings with strcoll: pin the collation so every node orders alike (once, at
# import: setlocale is process-wide and not thread-safe).
locale.setlocale(locale.LC_COLLATE, "C")
_SANDBOX = files("smartchain.contracts").joinpath("sandbox.lua").read_bytes()
_HOST_METHODS = ("get", "emit", "balance", "transfer", "token_balance",
                 "token_transfer", "token_transfer_from", "enter", "leave", "code")


def _guarded(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    """A host call that never raises into Lua: failures become (nil, nil, message[, fatal])."""
    def call(*args: Any) -> Any:
        try:
            return method(*args)
        except ContractError as exc:
            return None, None, exc.message.encode()
        except Exception:  # a bug of ours: abort the call, never leak the exception
            log.exception("host call %s failed", name)
            return None, None, b"internal error in the host", True
    return call


class LuaVM:
    """One runtime with the sandbox loaded, serving one ``Host``."""

    def __init__(self, host: Host, *, watchdog_seconds: float | None = None) -> None:
        self.host = host
        self._deadline = 0.0
        self.watchdog_seconds = watchdog_seconds
        self.rt = lua54.LuaRuntime(
            register_eval=False, register_builtins=False, unpack_returned_tuples=True,
            attribute_handlers=(_deny_attribute, _deny_attribute), max_memory=MAX_MEMORY,
            encoding=None,
        )
        callbacks = self.rt.table_from({name.encode(): _guarded(getattr(host, name), name)
                                        for name in _HOST_METHODS})
        watchdog = self._watchdog_fired if watchdog_seconds is not None else None
        schedule = self.rt.table_from({
            **{k.encode(): getattr(host.gas, k) for k in ("coroutine", "read", "write", "byte")},
            b"max_key": MAX_KEY, b"max_value": MAX_VALUE, b"held_budget": HELD_BUDGET,
            b"host_room_kb": HOST_ROOM_KB})
        api = self.rt.execute(_SANDBOX, callbacks, PERIOD, MAX_STRING, MAX_DEPTH, schedule,
                              watchdog)
        self._invoke = api[b"invoke"]
        self._drain = api[b"drain"]
        self._compile = api[b"compile"]
        self.without_chain = api[b"without_chain"]  # for compute tasks (compute/lua.py)
        self.names = api[b"names"]  # every function a contract can reach (tests, docs)
        self.broken = False  # a call failed inside the VM itself: use a fresh VM from now on

    def _watchdog_fired(self) -> bool:
        return time.monotonic() > self._deadline

    def _take_writes(self) -> tuple[tuple[bytes, Any, Any], ...]:
        """The last call's storage writes; the VM forgets them (it keeps the values cached)."""
        writes: list[tuple[bytes, Any, Any]] = []
        start = 1
        while True:
            out = self._drain(start)  # lupa returns a lone count as an int, not a tuple
            count, flat = (out[0], out[1:]) if isinstance(out, tuple) else (out, ())
            writes.extend(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))
            if count < _DRAIN_CHUNK:
                return tuple(writes)
            start += count

    def check_source(self, source: bytes) -> None:
        """Raise ``ContractError`` unless the source compiles and keeps the contract rules."""
        if len(source) > MAX_CODE:
            raise ContractError(f"contract source is {len(source)} bytes, limit {MAX_CODE}")
        try:
            dumped, err = self._compile(rewrite(source))
        except SourceError as exc:
            raise ContractError(f"syntax error: {exc}") from exc
        if dumped is None:
            raise ContractError(f"syntax error: {err.decode(errors='replace')}")
        try:
            check_bytecode(dumped)
        except BytecodeError as exc:
            raise ContractError(str(exc)) from exc

    def invoke(self, address: bytes, function: bytes, args: tuple[Any, ...], *,
               gas: int, caller: bytes, value: int, origin: bytes, height: int, time_ms: int,
               memory_kb: int = CALL_MEMORY_KB, optional: bool = False) -> CallOutcome:
        """Run ``function`` of the contract at ``address`` (bech32 bytes) with ``args``.

        The host must have ``begin`` the call (its frame stack and checkpoint). With
        ``optional``, a missing function is a successful call that does nothing (``init``).
        The outcome carries the call's storage writes, for the caller to apply. Nothing
        raises out of here but a bad argument: a call the VM itself cannot run (a fault,
        the runtime out of memory) fails, costs its whole gas and marks the VM ``broken``.
        """
        for a in args:
            if not (a is None or type(a) in (bool, bytes) or
                    (type(a) is int and -(1 << 63) <= a < 1 << 63)):
                raise ContractError(f"a call argument must be nil, a boolean, a 64-bit "
                                    f"integer or bytes, not {type(a).__name__}")
        if self.watchdog_seconds is not None:
            self._deadline = time.monotonic() + self.watchdog_seconds
        if self.broken:
            return CallOutcome(False, gas, "the contract VM failed", ())
        try:
            out = self._invoke(address, function, gas, memory_kb, optional, caller, value,
                               origin, height, time_ms, *args)
            if not out[0]:
                return CallOutcome(False, out[1], out[2].decode(errors="replace"), ())
            n = out[2]
            if n >= 0:
                return CallOutcome(True, out[1], "", out[4:], self._take_writes() if n else ())
            end = 4 - 3 * n  # the writes came inline, before the results
            flat = out[4:end]
            return CallOutcome(True, out[1], "", out[end:],
                               tuple(zip(flat[0::3], flat[1::3], flat[2::3], strict=True)))
        except Exception as exc:  # the sandbox returns errors as values: a VM fault
            log.error("contract VM fault: %r", exc)
            self.broken = True
            return CallOutcome(False, gas, "the contract VM failed", ())
