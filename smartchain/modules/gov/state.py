"""Where proposals, deposits and votes live in state, and how a proposal moves on.

Every write goes through a ``Writer``: a transaction's context (charged to its gas meter)
or the block hook's store (whose work the transactions that caused it paid for).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from smartchain.modules.bank.module import burn_hpc, move_hpc
from smartchain.modules.gov.types import (
    CHANGED_PREFIX,
    DEPOSIT_PREFIX,
    DEPOSIT_QUEUE,
    MARK,
    MODULE_ACCOUNT,
    NEXT_ID_KEY,
    OPEN_KEY,
    PROPOSAL_PREFIX,
    VOTE_PREFIX,
    VOTING,
    VOTING_QUEUE,
    Proposal,
    be64,
)
from smartchain.state.params import Params
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError


class Writer(Protocol):
    store: Overlay

    def write(self, key: bytes, value: bytes) -> None: ...


class HookWriter:
    """Writes of a block hook: not charged to anybody."""

    __slots__ = ("store",)

    def __init__(self, store: Overlay) -> None:
        self.store = store

    def write(self, key: bytes, value: bytes) -> None:
        self.store.set(key, value)


def fail(message: str, code: Code = Code.FAILED) -> TxError:
    return TxError(code, message)


def _u64(view: Any, key: bytes) -> int:
    raw = view.get(key)
    return int.from_bytes(raw, "big") if raw else 0


def proposal_key(pid: int) -> bytes:
    return PROPOSAL_PREFIX + be64(pid)


def get_proposal(view: Any, pid: int) -> Proposal | None:
    raw = view.get(proposal_key(pid))
    return Proposal.decode(raw) if raw is not None else None


def require_proposal(view: Any, pid: int) -> Proposal:
    p = get_proposal(view, pid)
    if p is None:
        raise fail(f"no proposal {pid}")
    return p


def all_proposals(view: Any) -> list[Proposal]:
    """Every proposal, oldest first (ids are big-endian, so key order is id order)."""
    return [Proposal.decode(raw) for _key, raw in view.iter_prefix(PROPOSAL_PREFIX)]


def put_proposal(w: Writer, p: Proposal) -> None:
    w.write(proposal_key(p.id), p.encode())


def open_count(view: Any) -> int:
    return _u64(view, OPEN_KEY)


def set_open_count(w: Writer, n: int) -> None:
    w.write(OPEN_KEY, be64(n))


def next_id(w: Writer) -> int:
    pid = _u64(w.store, NEXT_ID_KEY) or 1
    w.write(NEXT_ID_KEY, be64(pid + 1))
    return pid


def deposits_of(view: Any, pid: int) -> list[tuple[bytes, int]]:
    """(depositor, amount) of a proposal, in address order."""
    prefix = DEPOSIT_PREFIX + be64(pid)
    return [(key[len(prefix):], int.from_bytes(raw, "big"))
            for key, raw in view.iter_prefix(prefix)]


def votes_of(view: Any, pid: int) -> list[tuple[bytes, int]]:
    """(voter, option) of a proposal, in address order."""
    prefix = VOTE_PREFIX + be64(pid)
    return [(key[len(prefix):], raw[0]) for key, raw in view.iter_prefix(prefix)]


def vote_of(view: Any, pid: int, voter: bytes) -> int | None:
    raw = view.get(VOTE_PREFIX + be64(pid) + voter)
    return raw[0] if raw is not None else None


def add_deposit(w: Writer, p: Proposal, depositor: bytes, amount: int,
                params: Params) -> Proposal:
    """Take ``amount`` from ``depositor`` into the module account and count it."""
    key = DEPOSIT_PREFIX + be64(p.id) + depositor
    raw = w.store.get(key)
    depositors = p.depositors
    if raw is None:
        if depositors >= params.gov_max_depositors:
            raise fail(f"proposal {p.id} already has {depositors} depositors, the most "
                       "gov_max_depositors allows (an earlier depositor may add more)")
        depositors += 1
    before = int.from_bytes(raw, "big") if raw else 0
    move_hpc(w.store, depositor, MODULE_ACCOUNT, amount)
    w.write(key, (before + amount).to_bytes(16, "big"))
    return replace(p, total_deposit=p.total_deposit + amount, depositors=depositors)


def queue(w: Writer, prefix: bytes, height: int, pid: int) -> None:
    w.write(prefix + be64(height) + be64(pid), MARK)


def due(view: Any, prefix: bytes, height: int) -> list[int]:
    """Ids queued under ``prefix`` for ``height``."""
    start = prefix + be64(height)
    return [int.from_bytes(key[len(start):], "big") for key, _ in view.iter_prefix(start)]


def start_voting(w: Writer, p: Proposal, height: int, params: Params, *,
                 queued: bool) -> Proposal:
    """Funded: off the deposit queue (if ``queued`` there), onto the voting queue until
    ``height + gov_voting_blocks``."""
    if queued:
        w.store.delete(DEPOSIT_QUEUE + be64(p.deposit_end) + be64(p.id))
    end = height + params.gov_voting_blocks
    queue(w, VOTING_QUEUE, end, p.id)
    return replace(p, status=VOTING, voting_start=height, voting_end=end)


def settle_deposits(store: Overlay, p: Proposal, burn: bool) -> None:
    """Return every deposit of a closed proposal to its depositor, or burn them all."""
    if burn:
        burn_hpc(store, MODULE_ACCOUNT, p.total_deposit)
        return
    for depositor, amount in deposits_of(store, p.id):
        move_hpc(store, MODULE_ACCOUNT, depositor, amount)


def record_changes(store: Overlay, names: list[str], height: int) -> None:
    for name in names:
        store.set(CHANGED_PREFIX + name.encode(), be64(height))


def changed_at(view: Any, name: str) -> int:
    """The height the last change of param ``name`` took effect (0: as in genesis)."""
    return _u64(view, CHANGED_PREFIX + name.encode())


def held_for_open(view: Any, is_open: Callable[[Proposal], bool]) -> int:
    return sum(p.total_deposit for p in all_proposals(view) if is_open(p))
