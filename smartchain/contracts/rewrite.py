"""Contract source as the VM compiles it: every numeric ``for`` checks its bounds are integers.

Lua turns a string start or step of a numeric ``for`` into a float (``for i = 1, 2, "0.25"``),
inside the VM where no library wrapper sees it. So before compiling, each expression of a
numeric ``for`` header is wrapped in ``__int(...)``, a sandbox function that refuses
anything but an integer, taken into a local on the first line. No line break is added, so
error positions stay. The source kept on chain is the author's; every node rewrites it the same way.

The scan is token-level (a Lua 5.4 lexer for strings, long brackets, comments, numbers and
names): a header is ``for Name =`` up to the ``do`` at bracket depth 0. A header holding a
function body (its own ``do``/``end``) is refused rather than guessed at, and so is a source
that names ``__int`` itself (it could replace the check).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple


class SourceError(ValueError):
    """A source the rewrite refuses (the compiler would refuse most of these too)."""

CHECK = b"__int"
_LONG_OPEN = re.compile(rb"\[(=*)\[")
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(rb"0[xX](?:[0-9a-fA-F.]|[pP][+-]?)*|(?:[0-9.]|[eE][+-]?)+[A-Za-z0-9_]*")
_SPACE = re.compile(rb"\s+")
_OPERATORS = (b"...", b"..", b"==", b"~=", b"<=", b">=", b"<<", b">>", b"//", b"::")
_OPEN, _CLOSE = b"([{", b")]}"


def _long_end(src: bytes, pos: int) -> int:
    """End of the long bracket opening at ``pos`` (``[==[``), or -1 if not one."""
    m = _LONG_OPEN.match(src, pos)
    if m is None:
        return -1
    close = b"]" + m.group(1) + b"]"
    end = src.find(close, m.end())
    if end < 0:
        raise SourceError("unfinished long string or comment")
    return end + len(close)


def _string_end(src: bytes, pos: int) -> int:
    quote, i = src[pos], pos + 1
    while i < len(src):
        c = src[i]
        if c == quote:
            return i + 1
        if c == 0x5C:  # backslash: the next character is escaped (digits and all, harmlessly)
            i += 2
            continue
        if c in b"\r\n":
            break
        i += 1
    raise SourceError("unfinished string")


def tokens(src: bytes) -> list[tuple[int, int]]:
    """(start, end) of every token, comments and white space left out."""
    out: list[tuple[int, int]] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i:i + 1]
        if c.isspace():
            i = _SPACE.match(src, i).end()  # type: ignore[union-attr]  # c is white space
            continue
        if src.startswith(b"--", i):
            end = _long_end(src, i + 2)
            if end < 0:
                nl = src.find(b"\n", i)
                end = n if nl < 0 else nl
            i = end
            continue
        if c in (b"'", b'"'):
            end = _string_end(src, i)
        elif c == b"[" and (end := _long_end(src, i)) >= 0:
            pass
        elif m := _NAME.match(src, i):
            end = m.end()
        elif c.isdigit() or (c == b"." and src[i + 1:i + 2].isdigit()):
            end = _NUMBER.match(src, i).end()  # type: ignore[union-attr]  # a digit is a number
        else:
            end = i + next((len(op) for op in _OPERATORS if src.startswith(op, i)), 1)
        out.append((i, end))
        i = end
    return out


def _headers(src: bytes, toks: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """For each numeric ``for``: the token ranges of its 2 or 3 expressions."""
    text = [src[a:b] for a, b in toks]
    found = []
    for k, t in enumerate(text):
        if t != b"for" or k + 2 >= len(text) or text[k + 2] != b"=":
            continue
        exprs, start, depth, j = [], k + 3, 0, k + 3
        while j < len(text):
            t = text[j]
            if t == b"function":
                raise SourceError("a numeric for's start, limit and step cannot define "
                                    "functions")
            if t in (b"(", b"[", b"{"):
                depth += 1
            elif t in (b")", b"]", b"}"):
                depth -= 1
            elif depth == 0 and t in (b",", b"do"):
                exprs.append((start, j - 1))
                start = j + 1
                if t == b"do":
                    break
            j += 1
        if exprs and all(a <= b for a, b in exprs):
            found.append([(toks[a][0], toks[b][1]) for a, b in exprs])
    return found


# --- comparisons ---------------------------------------------------------------------------
# Lua 5.4 lparser.c: (left, right) priority of each binary operator, and unary's.
_BINARY = {
    b"or": (1, 1), b"and": (2, 2),
    b"<": (3, 3), b">": (3, 3), b"<=": (3, 3), b">=": (3, 3), b"~=": (3, 3), b"==": (3, 3),
    b"|": (4, 4), b"~": (5, 5), b"&": (6, 6), b"<<": (7, 7), b">>": (7, 7),
    b"..": (9, 8), b"+": (10, 10), b"-": (10, 10),
    b"*": (11, 11), b"/": (11, 11), b"//": (11, 11), b"%": (11, 11), b"^": (14, 13),
}
_UNARY = (b"not", b"-", b"#", b"~")
_UNARY_PRIORITY = 12
_KEYWORDS = frozenset(b"and break do else elseif end false for function goto if in local nil "
                      b"not or repeat return then true until while".split())
_BLOCK_END = (b"else", b"elseif", b"end", b"until", b"")
_CMP = {b"==": b"__cmp_eq", b"~=": b"__cmp_eq", b"<": b"__cmp_lt", b"<=": b"__cmp_le",
        b">": b"__cmp_gt", b">=": b"__cmp_ge"}
HELPERS = (b"__cmp_eq", b"__cmp_lt", b"__cmp_le", b"__cmp_gt", b"__cmp_ge")
RESERVED = (CHECK, *HELPERS)
_MAX_NESTING = 100  # blocks and expressions in one another: Lua's own limit is 200 C levels
_SHORT = 40  # Lua interns strings this long: == on them compares pointers


class _Unparsed(Exception):
    """The parser cannot follow the source: Lua's compiler says why (or the bytecode check)."""


def _is_name(t: bytes) -> bool:
    return _NAME.fullmatch(t) is not None and t not in _KEYWORDS


def _is_string(t: bytes) -> bool:
    return t[:1] in (b"'", b'"') or (t[:1] == b"[" and len(t) > 1 and t[1:2] in b"[=")


def _is_number(t: bytes) -> bool:
    return t[:1].isdigit() or (t[:1] == b"." and t[1:2].isdigit())


class _Parser:
    """Lua 5.4's grammar over the tokens, as lparser.c reads it; it records every comparison
    as (first token, operator token, last token)."""

    def __init__(self, text: list[bytes]) -> None:
        self.text = text
        self.i = 0
        self.depth = 0
        self.comparisons: list[tuple[int, int, int]] = []

    def peek(self, k: int = 0) -> bytes:
        j = self.i + k
        return self.text[j] if j < len(self.text) else b""

    def take(self) -> bytes:
        t = self.peek()
        if not t:
            raise _Unparsed("unexpected end")
        self.i += 1
        return t

    def expect(self, t: bytes) -> None:
        if self.take() != t:
            raise _Unparsed(f"{t!r} expected")

    def name(self) -> None:
        if not _is_name(self.take()):
            raise _Unparsed("name expected")

    def nest(self, delta: int) -> None:
        self.depth += delta
        if self.depth > _MAX_NESTING:
            raise _Unparsed("too deeply nested")

    def chunk(self) -> None:
        self.block()
        if self.i != len(self.text):
            raise _Unparsed("'<eof>' expected")

    def block(self) -> None:
        self.nest(1)
        while self.peek() not in _BLOCK_END:
            if self.peek() == b"return":
                self.take()
                if self.peek() not in _BLOCK_END and self.peek() != b";":
                    self.exprlist()
                if self.peek() == b";":
                    self.take()
                break
            self.statement()
        self.nest(-1)

    def statement(self) -> None:
        t = self.take()
        if t in (b";", b"break"):
            return
        if t == b"if":
            self.expr()
            self.expect(b"then")
            self.block()
            while self.peek() == b"elseif":
                self.take()
                self.expr()
                self.expect(b"then")
                self.block()
            if self.peek() == b"else":
                self.take()
                self.block()
            self.expect(b"end")
        elif t == b"while":
            self.expr()
            self.expect(b"do")
            self.block()
            self.expect(b"end")
        elif t == b"do":
            self.block()
            self.expect(b"end")
        elif t == b"for":
            self.for_statement()
        elif t == b"repeat":
            self.block()
            self.expect(b"until")
            self.expr()
        elif t == b"function":
            self.name()
            while self.peek() in (b".", b":"):
                colon = self.take() == b":"
                self.name()
                if colon:
                    break
            self.body()
        elif t == b"local":
            self.local_statement()
        elif t == b"::":
            self.name()
            self.expect(b"::")
        elif t == b"goto":
            self.name()
        else:
            self.i -= 1
            self.suffixed()
            if self.peek() in (b"=", b","):
                while self.peek() == b",":
                    self.take()
                    self.suffixed()
                self.expect(b"=")
                self.exprlist()

    def for_statement(self) -> None:
        self.name()
        if self.peek() == b"=":
            self.take()
            self.expr()
            self.expect(b",")
            self.expr()
            if self.peek() == b",":
                self.take()
                self.expr()
        else:
            while self.peek() == b",":
                self.take()
                self.name()
            self.expect(b"in")
            self.exprlist()
        self.expect(b"do")
        self.block()
        self.expect(b"end")

    def local_statement(self) -> None:
        if self.peek() == b"function":
            self.take()
            self.name()
            self.body()
            return
        while True:
            self.name()
            if self.peek() == b"<":  # an attribute: <const> or <close>
                self.take()
                self.name()
                self.expect(b">")
            if self.peek() != b",":
                break
            self.take()
        if self.peek() == b"=":
            self.take()
            self.exprlist()

    def body(self) -> None:
        self.expect(b"(")
        while self.peek() != b")":
            t = self.take()
            if not (_is_name(t) or t in (b",", b"...")):
                raise _Unparsed("bad parameter list")
        self.take()
        self.block()
        self.expect(b"end")

    def exprlist(self) -> None:
        self.expr()
        while self.peek() == b",":
            self.take()
            self.expr()

    def expr(self, limit: int = 0) -> None:
        """lparser.c subexpr: operators binding tighter than ``limit``."""
        self.nest(1)
        start = self.i
        if self.peek() in _UNARY:
            self.take()
            self.expr(_UNARY_PRIORITY)
        else:
            self.simple()
        while (op := self.peek()) in _BINARY and _BINARY[op][0] > limit:
            at = self.i
            self.take()
            self.expr(_BINARY[op][1])
            if op in _CMP:
                self.comparisons.append((start, at, self.i - 1))
        self.nest(-1)

    def simple(self) -> None:
        t = self.peek()
        if _is_number(t) or _is_string(t) or t in (b"nil", b"true", b"false", b"..."):
            self.take()
        elif t == b"{":
            self.constructor()
        elif t == b"function":
            self.take()
            self.body()
        else:
            self.suffixed()

    def suffixed(self) -> None:
        t = self.take()
        if t == b"(":
            self.expr()
            self.expect(b")")
        elif not _is_name(t):
            raise _Unparsed("unexpected symbol")
        while True:
            t = self.peek()
            if t == b".":
                self.take()
                self.name()
            elif t == b"[":
                self.take()
                self.expr()
                self.expect(b"]")
            elif t == b":":
                self.take()
                self.name()
                self.args()
            elif t in (b"(", b"{") or _is_string(t):
                self.args()
            else:
                return

    def args(self) -> None:
        t = self.peek()
        if t == b"{":
            self.constructor()
            return
        self.take()
        if t == b"(":
            if self.peek() != b")":
                self.exprlist()
            self.expect(b")")
        elif not _is_string(t):
            raise _Unparsed("function arguments expected")

    def constructor(self) -> None:
        self.expect(b"{")
        while self.peek() != b"}":
            if self.peek() == b"[":
                self.take()
                self.expr()
                self.expect(b"]")
                self.expect(b"=")
                self.expr()
            elif _is_name(self.peek()) and self.peek(1) == b"=":
                self.i += 2
                self.expr()
            else:
                self.expr()
            if self.peek() not in (b",", b";"):
                break
            self.take()
        self.expect(b"}")


def _is_constant(t: bytes) -> bool:
    """A literal ``==`` compares in constant time: nil, a boolean, a number, a short string
    (a token this long holds at most this many bytes)."""
    return t in (b"nil", b"true", b"false") or _is_number(t) or (
        _is_string(t) and len(t) <= _SHORT)


class _Wrap(NamedTuple):
    """``opening`` before the bytes ``start:end`` and ``closing`` after; ``rank`` orders two
    wraps of the same range (the for bound's check outside the comparison)."""

    start: int
    end: int
    opening: bytes
    closing: bytes
    rank: int


def _comparisons(src: bytes, toks: list[tuple[int, int]]) -> tuple[list[_Wrap],
                                                                    list[tuple[int, int]]]:
    """A helper call wrapping every comparison, and the operators to turn into commas; none
    if the parser cannot follow the source (Lua's compiler then reports the error)."""
    text = [src[a:b] for a, b in toks]
    parser = _Parser(text)
    try:
        parser.chunk()
    except _Unparsed:
        return [], []
    wraps, operators = [], []
    for first, at, last in parser.comparisons:
        op = text[at]
        if op in (b"==", b"~=") and ((first == at - 1 and _is_constant(text[first])) or
                                     (last == at + 1 and _is_constant(text[last]))):
            continue  # EQK/EQI: constant time (the bytecode check refuses a long constant)
        opening = b"(" + (b"not " if op == b"~=" else b"") + _CMP[op] + b"("
        wraps.append(_Wrap(toks[first][0], toks[last][1], opening, b"))", 1))
        operators.append(toks[at])
    return wraps, operators


def _apply(src: bytes, wraps: list[_Wrap], operators: list[tuple[int, int]]) -> bytes:
    """The source with the wraps (properly nested ranges) and the operators as commas. At one
    position: closings (inner first), then an operator, then openings (outer first)."""
    edits: list[tuple[int, int, int, int, int, bytes]] = []  # position, phase, keys, skip, text
    for w in wraps:
        edits.append((w.end, 0, -w.start, -w.rank, 0, w.closing))
        edits.append((w.start, 2, -w.end, w.rank, 0, w.opening))
    edits += [(a, 1, 0, 0, b - a, b",") for a, b in operators]
    out, last = [], 0
    for at, _phase, _k1, _k2, skip, text in sorted(edits):
        out += [src[last:at], text]
        last = at + skip
    out.append(src[last:])
    return b"".join(out)


@lru_cache(maxsize=256)
def rewrite(src: bytes) -> bytes:
    """The source with every numeric ``for`` bound wrapped in ``__int(...)`` and every
    comparison (but ``==`` with a short constant) made a call to a metered helper."""
    toks = tokens(src)
    for a, b in toks:
        if src[a:b] in RESERVED:
            raise SourceError(f"the name {src[a:b].decode()} is reserved")
    wraps = [_Wrap(a, b, CHECK + b"(", b")", 0)
             for exprs in _headers(src, toks) for a, b in exprs]
    compared, operators = _comparisons(src, toks)
    if not wraps and not compared:
        return src
    names = [n for n in RESERVED if any(w.opening.endswith(n + b"(") for w in wraps + compared)]
    # Locals taken before any contract code runs: assigning _ENV["__int"] cannot replace them.
    # The semicolon: a source starting with "(" must not call the last name.
    prefix = b"local " + b", ".join(names) + b" = " + b", ".join(names) + b"; "
    return prefix + _apply(src, wraps + compared, operators)
