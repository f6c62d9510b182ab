"""Load-time determinism check over compiled Lua 5.4 bytecode.

Contracts are integer-only: a float could round differently on another machine, and the
``..`` operator copies strings of any length in one instruction, which no instruction
count can price. Rather than re-lex the source (where a disagreement with Lua's own lexer
would be a hole), we compile with Lua, dump the function (``string.dump``) and scan what
the VM would really execute: float constants (float literals, integer literals too large
for 64 bits, and constant-folded ``1/2`` or ``2^3`` all end up there), ``LOADF``, ``/``,
``^`` and ``..``. The format is ``ldump.c`` of Lua 5.4 (the version lupa 2.8 bundles).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_HEADER = b"\x1bLua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08"
_HEADER_LEN = len(_HEADER) + 16  # then LUAC_INT and LUAC_NUM, 8 bytes each
_ABSLINEINFO = -0x80

_UNMETERED = ("a comparison the source rewrite did not meter (nested over 100 deep?): its "
               "cost grows with string length")
# lopcodes.h (5.4): the opcodes that produce floats or unmetered copies
_FORBIDDEN_OPS = {
    2: "floating-point numbers are not allowed (float literal)",  # LOADF
    26: "the '^' operator is not allowed (it produces floats); use integer arithmetic",  # POWK
    27: "the '/' operator is not allowed (it produces floats); use '//' for integer "
        "division",  # DIVK
    38: "the '^' operator is not allowed (it produces floats); use integer arithmetic",  # POW
    39: "the '/' operator is not allowed (it produces floats); use '//' for integer "
        "division",  # DIV
    53: "the '..' operator is not allowed (its copying cost cannot be metered); "
        "use concat(a, b, ...)",  # CONCAT
    # contracts/rewrite.py makes every comparison a metered call: one left is a rewrite miss
    57: _UNMETERED,
    58: _UNMETERED,
    59: _UNMETERED,
}
_LOADK, _LOADKX, _EQK = 3, 4, 60
_ARITH_K = (22, 31)  # ADDK .. BXORK
_VNUMFLT, _VNUMINT, _VSHRSTR, _VLNGSTR = 0x13, 0x03, 0x04, 0x14


class BytecodeError(ValueError):
    """Source that compiles but breaks a contract rule; ``line`` is 0 when unknown."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.message = message


@dataclass
class _Reader:
    data: bytes
    pos: int = 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise BytecodeError(0, "truncated bytecode")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def size(self) -> int:
        """ldump.c dumpSize: 7 bits per byte, most significant first, last byte | 0x80."""
        x = 0
        while True:
            b = self.byte()
            x = (x << 7) | (b & 0x7F)
            if b & 0x80:
                return x

    def string(self) -> bytes | None:
        n = self.size()
        return None if n == 0 else self.take(n - 1)


def check_bytecode(dump: bytes) -> None:
    """Raise ``BytecodeError`` (with a line number) if the dumped chunk breaks a rule."""
    if not dump.startswith(_HEADER):
        raise BytecodeError(0, "not Lua 5.4 bytecode of the expected format")
    r = _Reader(dump, _HEADER_LEN)
    r.byte()  # number of upvalues of the main closure
    _check_function(r)


def _check_function(r: _Reader) -> None:
    r.string()  # source name
    linedefined = r.size()
    r.size()  # lastlinedefined
    r.take(3)  # numparams, is_vararg, maxstacksize
    ncode = r.size()
    code = struct.unpack(f"<{ncode}I", r.take(4 * ncode))
    float_consts, long_strings = _constants(r)
    for _ in range(r.size()):  # upvalues: instack, idx, kind
        r.take(3)
    for _ in range(r.size()):
        _check_function(r)
    lines = _lines(r, linedefined, len(code))
    for pc, ins in enumerate(code):
        op = ins & 0x7F
        if op in _FORBIDDEN_OPS:
            raise BytecodeError(lines[pc], _FORBIDDEN_OPS[op])
        if op == _EQK and ((ins >> 16) & 0xFF) in long_strings:
            raise BytecodeError(lines[pc], "a comparison with a long string constant the "
                                "source rewrite did not meter")
        if _float_operand(op, ins, code, pc, float_consts):
            raise BytecodeError(lines[pc], "floating-point numbers are not allowed "
                                "(float literal, or an integer literal beyond 64 bits)")
    if float_consts:  # used by an arithmetic instruction with a constant operand
        raise BytecodeError(linedefined, "floating-point numbers are not allowed "
                            "(float constant in the function defined here)")


def _float_operand(op: int, ins: int, code: tuple[int, ...], pc: int, floats: set[int]) -> bool:
    """Whether this instruction reads a float constant (for a line number in the error)."""
    if op == _LOADK:
        return (ins >> 15) in floats
    if op == _LOADKX:
        return pc + 1 < len(code) and (code[pc + 1] >> 7) in floats
    if _ARITH_K[0] <= op <= _ARITH_K[1]:  # R[A] := R[B] op K[C]
        return (ins >> 24) in floats
    if op == _EQK:  # if (R[A] == K[B]) ...
        return ((ins >> 16) & 0xFF) in floats
    return False


def _constants(r: _Reader) -> tuple[set[int], set[int]]:
    """Indices of the float constants and of the long (over 40 bytes, not interned) strings."""
    floats: set[int] = set()
    long_strings: set[int] = set()
    for i in range(r.size()):
        tag = r.byte()
        if tag == _VNUMFLT:
            r.take(8)
            floats.add(i)
        elif tag == _VNUMINT:
            r.take(8)
        elif tag in (_VSHRSTR, _VLNGSTR):
            r.string()
            if tag == _VLNGSTR:
                long_strings.add(i)
    return floats, long_strings


def _lines(r: _Reader, linedefined: int, ncode: int) -> list[int]:
    """Line of each instruction, from the debug section (lineinfo deltas + absolute marks)."""
    ndeltas = r.size()
    deltas = struct.unpack(f"<{ndeltas}b", r.take(ndeltas))
    absolute = {}
    for _ in range(r.size()):
        pc = r.size()
        absolute[pc] = r.size()
    for _ in range(r.size()):  # local variable names
        r.string()
        r.size()
        r.size()
    for _ in range(r.size()):  # upvalue names
        r.string()
    lines, line = [], linedefined
    for pc in range(ncode):
        if pc < len(deltas) and deltas[pc] != _ABSLINEINFO:
            line += deltas[pc]
        elif pc in absolute:
            line = absolute[pc]
        lines.append(line)
    return lines
