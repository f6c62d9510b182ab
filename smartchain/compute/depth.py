"""A deterministic call-depth limit, added to a task's module by rewriting its binary.

wasmtime's own stack limit (``max_wasm_stack``) counts native bytes, and a native frame's size
depends on the CPU architecture, its detected features and the compiler version: a recursion
near the limit could finish on one worker and overflow on another. So every function gets a
cost in *stack units*, charged against a budget kept in a mutable global the module cannot
see, and a call that would exceed the budget traps on every node alike. The native limit stays
as a backstop, about twice what the budget is estimated to use (see ``wasm.MAX_WASM_STACK``).

How: function ``i`` keeps its index but becomes a small wrapper (same type) that adds the cost
of ``i`` to the depth global, traps above the budget, calls the original body — moved to index
``n + i`` — and subtracts the cost again. Calls, exports, table elements, ``ref.func`` and the
start function all still name index ``i``, so no instruction of the original code is touched.
The depth global is exported as ``DEPTH_EXPORT`` so the host can tell a depth trap from the
module's own ``unreachable``. A start function is no longer run by instantiation but exported
as ``START_EXPORT`` for the host to call first (same semantics, same fuel): a trap inside
instantiation would leave no instance to read the depth global from. Custom sections (names,
debug info) are dropped.

The input must be a module wasmtime has already validated under the runner's configuration
(no imports, no GC types, no SIMD): then every value type is one byte and the layout below
is all there is to parse.
"""

from __future__ import annotations

from typing import NamedTuple

DEPTH_EXPORT = "__smartchain_depth"
START_EXPORT = "__smartchain_start"
RESERVED_EXPORTS = (DEPTH_EXPORT, START_EXPORT)
# A call costs FRAME_UNITS + parameters + locals + code bytes // CODE_BYTES_PER_UNIT stack
# units. A unit stands for 16 bytes of native stack: a parameter or local is one (an 8-byte
# spill slot with room for a temporary); the fixed part covers the return address, saved
# registers and the wrapper's frame; the code term stands for the values a long body keeps
# on its operand stack across a call, which cannot be seen without decoding every
# instruction. It is an estimate, not a bound: measured with wasmtime 50 on x86-64, a small
# recursive function uses 96 bytes a level and is charged 160, but a body that holds a
# hundred computed values across its recursive call uses 832 and is charged 752. Such a
# frame can reach the native backstop first, a trap the runner marks machine-dependent.
FRAME_UNITS = 8
CODE_BYTES_PER_UNIT = 16

_MAGIC = b"\0asm\x01\0\0\0"
_ORDER = (1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11)  # section order of the binary format
_FUNC_TYPE = 0x60


class InstrumentError(ValueError):
    """The module has a shape the rewriter does not handle (it was validated first)."""


class _Reader:
    """A cursor over a byte string with the binary format's LEB128 integers."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise InstrumentError("unexpected end of module")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u32(self) -> int:
        result = shift = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 28:
                raise InstrumentError("LEB128 integer too long")

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise InstrumentError("unexpected end of module")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _vec(count: int, items: bytes) -> bytes:
    return _uleb(count) + items


def _split_sections(wasm: bytes) -> dict[int, bytes]:
    """Section id -> contents; custom sections are dropped."""
    if not wasm.startswith(_MAGIC):
        raise InstrumentError("not a core WebAssembly module")
    reader = _Reader(wasm, len(_MAGIC))
    sections: dict[int, bytes] = {}
    while reader.pos < len(wasm):
        section_id = reader.byte()
        contents = reader.take(reader.u32())
        if section_id == 0:
            continue
        if section_id in sections or section_id not in _ORDER:
            raise InstrumentError(f"unexpected section {section_id}")
        sections[section_id] = contents
    return sections


def _param_counts(type_section: bytes) -> list[int]:
    """Number of parameters of each type in the type section."""
    reader = _Reader(type_section)
    counts = []
    for _ in range(reader.u32()):
        if reader.byte() != _FUNC_TYPE:
            raise InstrumentError("only function types are supported")
        params = reader.u32()
        reader.take(params)
        reader.take(reader.u32())  # results
        counts.append(params)
    return counts


def _body_costs(code_section: bytes) -> tuple[list[int], bytes]:
    """Each body's stack units beyond its parameters, and the bodies' raw bytes."""
    reader = _Reader(code_section)
    total = reader.u32()
    start = reader.pos
    costs = []
    for _ in range(total):
        size = reader.u32()
        end = reader.pos + size
        locals_total = 0
        for _ in range(reader.u32()):
            locals_total += reader.u32()
            reader.byte()  # value type: one byte without GC types
        costs.append(FRAME_UNITS + locals_total + size // CODE_BYTES_PER_UNIT)
        reader.pos = end
    if reader.pos != len(code_section):
        raise InstrumentError("trailing bytes in the code section")
    return costs, code_section[start:]


def _count_and_rest(contents: bytes | None) -> tuple[int, bytes]:
    if contents is None:
        return 0, b""
    reader = _Reader(contents)
    count = reader.u32()
    return count, contents[reader.pos:]


class _Function(NamedTuple):
    params: int
    cost: int


def _wrapper(fn: _Function, inner: int, depth: int, budget: int) -> bytes:
    """The body of a wrapper: charge the depth budget, call the original, give it back."""
    get, set_ = b"\x23" + _uleb(depth), b"\x24" + _uleb(depth)
    cost = b"\x41" + _sleb(fn.cost)
    code = (
        get + cost + b"\x6a" + set_                              # depth += cost
        + get + b"\x41" + _sleb(budget) + b"\x4b"                # depth > budget (unsigned)?
        + b"\x04\x40\x00\x0b"                                    # if: unreachable
        + b"".join(b"\x20" + _uleb(i) for i in range(fn.params))  # forward the arguments
        + b"\x10" + _uleb(inner)                                 # call the original
        + get + cost + b"\x6b" + set_                            # depth -= cost
        + b"\x0b"
    )
    body = b"\x00" + code  # no locals of its own
    return _uleb(len(body)) + body


def _name(reader: _Reader) -> str:
    return reader.take(reader.u32()).decode("utf-8", "replace")


def first_import(wasm: bytes) -> tuple[str, str] | None:
    """The (module, name) of a validated module's first import, if it has any."""
    count, rest = _count_and_rest(_split_sections(wasm).get(2))
    if not count:
        return None
    reader = _Reader(rest)
    return _name(reader), _name(reader)


def export_names(wasm: bytes) -> list[str]:
    """The names a validated module exports, in order."""
    count, rest = _count_and_rest(_split_sections(wasm).get(7))
    reader, names = _Reader(rest), []
    for _ in range(count):
        names.append(_name(reader))
        reader.byte()  # kind
        reader.u32()  # index
    return names


def _export(name: str, kind: int, index: int) -> bytes:
    encoded = name.encode()
    return _uleb(len(encoded)) + encoded + bytes([kind]) + _uleb(index)


def add_depth_limit(wasm: bytes, budget: int) -> bytes:
    """``wasm`` rewritten so that nested calls may spend at most ``budget`` stack units."""
    sections = _split_sections(wasm)
    if 2 in sections and _count_and_rest(sections[2])[0]:
        raise InstrumentError("modules with imports are not instrumented")
    params = _param_counts(sections.get(1, b"\0"))
    n_funcs, func_rest = _count_and_rest(sections.get(3))
    reader = _Reader(func_rest)
    type_ids = [reader.u32() for _ in range(n_funcs)]
    costs, bodies = _body_costs(sections.get(10, b"\0"))
    if len(costs) != n_funcs:
        raise InstrumentError("function and code sections disagree")
    functions = [_Function(params[t], params[t] + cost)
                 for t, cost in zip(type_ids, costs, strict=True)]

    n_globals, global_rest = _count_and_rest(sections.get(6))
    depth = n_globals
    sections[6] = _vec(n_globals + 1, global_rest + b"\x7f\x01\x41\x00\x0b")  # mut i32 = 0
    exports = [_export(DEPTH_EXPORT, 0x03, depth)]
    if 8 in sections:
        exports.append(_export(START_EXPORT, 0x00, _Reader(sections.pop(8)).u32()))
    n_exports, export_rest = _count_and_rest(sections.get(7))
    sections[7] = _vec(n_exports + len(exports), export_rest + b"".join(exports))
    sections[3] = _vec(2 * n_funcs, func_rest + func_rest)
    wrappers = b"".join(_wrapper(fn, n_funcs + i, depth, budget)
                        for i, fn in enumerate(functions))
    sections[10] = _vec(2 * n_funcs, wrappers + bodies)

    out = bytearray(_MAGIC)
    for section_id in _ORDER:
        if section_id in sections:
            out += bytes([section_id]) + _uleb(len(sections[section_id])) + sections[section_id]
    return bytes(out)
