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


class SourceError(ValueError):
    """A source the rewrite refuses (the compiler would refuse most of these too)."""

CHECK = b"__int"
_PREFIX = b"local __int = __int "  # on the first line: line numbers stay
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
            i = _SPACE.match(src, i).end()  # type: ignore[union-attr]
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
            end = _NUMBER.match(src, i).end()  # type: ignore[union-attr]
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


@lru_cache(maxsize=256)
def rewrite(src: bytes) -> bytes:
    """The source with every numeric ``for`` bound wrapped in ``__int(...)``."""
    toks = tokens(src)
    if any(src[a:b] == CHECK for a, b in toks):
        raise SourceError(f"the name {CHECK.decode()} is reserved")
    edits: list[tuple[int, bytes]] = []
    for exprs in _headers(src, toks):
        for a, b in exprs:
            edits += [(a, CHECK + b"("), (b, b")")]
    if not edits:
        return src
    # A local taken before any contract code runs: assigning _ENV["__int"] cannot replace it.
    out, last = [_PREFIX], 0
    for at, text in sorted(edits, key=lambda e: e[0]):
        out += [src[last:at], text]
        last = at
    out.append(src[last:])
    return b"".join(out)
