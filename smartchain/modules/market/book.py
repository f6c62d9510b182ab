"""What a block knows of its books while it runs: where each book side's live entries
start, so a scan does not walk the entries the block already removed from its front.

Filling an order removes the best resting orders: their keys stay in the block's overlay
as deletions until the block commits, and a plain prefix scan walks every one of them
(the 1,000th bid of a block into one book would walk 999). Instead each book side keeps,
in the block's scratch (``BlockInfo.cache``), a ``floor``: every entry below it is gone,
but for the entries the block itself put there since (``below``, few). A scan reads those,
then the store from the floor on. An order whose scan removed every entry it visited, from
the first, moves the floor past the last one.

The scratch follows the overlay exactly: every change is journalled, and a handler that
fails (its writes reverted by the executor) undoes its changes here too (``undoing``). So
every node, whatever order it ran what, sees the same floors, and gas never depends on a
cache. Removals the floor does not cover (a cancel mid-book, an entry after one a scan
skipped) are tombstones later scans walk past: each scan pays ``market_tombstone_gas`` per
such removal made earlier in the block on that side.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any, NamedTuple

from smartchain.state.module import TxContext

_KEY = "market/books"


class Side(NamedTuple):
    floor: bytes = b""  # every entry below it is removed (but for ``below``)
    below: tuple[bytes, ...] = ()  # entries this block put below the floor, sorted
    tombstones: int = 0  # removals above the floor: what a scan walks past


class Books:
    """The block's book sides (by side prefix) and the journal of their changes."""

    __slots__ = ("journal", "sides")

    def __init__(self) -> None:
        self.sides: dict[bytes, Side] = {}
        self.journal: list[tuple[bytes, Side | None]] = []

    def get(self, side: bytes) -> Side:
        return self.sides.get(side) or Side()

    def set(self, side: bytes, state: Side) -> None:
        self.journal.append((side, self.sides.get(side)))
        self.sides[side] = state

    def undo(self, mark: int) -> None:
        while len(self.journal) > mark:
            side, old = self.journal.pop()
            if old is None:
                del self.sides[side]
            else:
                self.sides[side] = old


def books(ctx: TxContext) -> Books:
    found: Books | None = ctx.block.cache.get(_KEY)
    if found is None:
        found = ctx.block.cache[_KEY] = Books()
    return found


def undoing(handler: Callable[[TxContext, Any], None]) -> Callable[[TxContext, Any], None]:
    """``handler``, whose changes to the block's books are undone if it fails (as the
    executor reverts its writes)."""

    def run(ctx: TxContext, msg: Any) -> None:
        b = books(ctx)
        mark = len(b.journal)
        try:
            handler(ctx, msg)
        except BaseException:
            b.undo(mark)
            raise

    return run


def scan(ctx: TxContext, side: bytes) -> tuple[int, Any]:
    """(tombstones the scan walks past, the side's live entries in key order): first those
    the block put below the floor, then the store's from the floor on. Read as the caller
    goes: a scan that stops at its first entry reads one, however many the block put
    below the floor (those removed since are tombstones, paid for)."""
    state = books(ctx).get(side)
    return state.tombstones, _chain(ctx, state.below, ctx.store.iter_prefix(side, state.floor))


def _chain(ctx: TxContext, below: tuple[bytes, ...], rest: Any) -> Any:
    for key in below:
        if ctx.store.get(key) is not None:
            yield key
    for key, _v in rest:
        yield key


def put(ctx: TxContext, side: bytes, key: bytes) -> None:
    """An entry enters the side: noted if it lands below the floor (else a scan finds it)."""
    b = books(ctx)
    state = b.get(side)
    if key < state.floor:
        at = bisect_left(state.below, key)
        b.set(side, state._replace(below=(*state.below[:at], key, *state.below[at:])))


def removed(ctx: TxContext, side: bytes, key: bytes, front: bool) -> None:
    """An entry left the side; ``front``: every entry of the side before it is gone too (a
    scan removed all it visited up to it), so the floor moves past it."""
    b = books(ctx)
    state = b.get(side)
    if front:
        b.set(side, state._replace(floor=max(state.floor, key + b"\0"),
                                   below=state.below[bisect_right(state.below, key):]))
    else:
        b.set(side, state._replace(tombstones=state.tombstones + 1))
