"""A host over plain dicts: runs contracts with no chain (the VM benchmark, sandbox tests).

Money rules are the chain's in miniature: balances cannot go negative, allowances are
spent; a failed nested call reverts through the same write journal idea as ``Overlay``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smartchain.contracts.host import ContractError, Host

_MISSING = object()


@dataclass(eq=False)
class MemoryHost(Host):
    state: dict[bytes, bytes] = field(default_factory=dict)
    sources: dict[bytes, bytes] = field(default_factory=dict)
    hpc: dict[bytes, int] = field(default_factory=dict)
    tokens: dict[tuple[str, bytes], int] = field(default_factory=dict)
    allowances: dict[tuple[str, bytes, bytes], int] = field(default_factory=dict)
    journal: list[tuple[dict, object, object]] = field(default_factory=list)

    def _put(self, table: dict, key: object, value: object) -> None:
        self.journal.append((table, key, table.get(key, _MISSING)))
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value

    def commit(self) -> None:
        """Forget the undo journal (a block was committed): nothing before can be reverted."""
        self.journal.clear()

    def _load(self, key: bytes) -> bytes | None:
        return self.state.get(key)

    def _store(self, key: bytes, value: bytes | None) -> None:
        self._put(self.state, key, value)

    def _checkpoint(self) -> int:
        return len(self.journal)

    def _revert(self, checkpoint: int) -> None:
        while len(self.journal) > checkpoint:
            table, key, old = self.journal.pop()
            if old is _MISSING:
                table.pop(key, None)
            else:
                table[key] = old

    def _source(self, address: bytes) -> bytes | None:
        return self.sources.get(address)

    def _balance(self, address: bytes) -> int:
        return self.hpc.get(address, 0)

    def _move_hpc(self, frm: bytes, to: bytes, amount: int) -> None:
        have = self.hpc.get(frm, 0)
        if have < amount:
            raise ContractError(f"insufficient funds: balance {have} < amount {amount}")
        self._put(self.hpc, frm, have - amount)
        self._put(self.hpc, to, self.hpc.get(to, 0) + amount)

    def _token_balance(self, symbol: str, address: bytes) -> int:
        return self.tokens.get((symbol, address), 0)

    def _move_tokens(self, symbol: str, frm: bytes, to: bytes, amount: int) -> None:
        have = self.tokens.get((symbol, frm), 0)
        if have < amount:
            raise ContractError(f"insufficient {symbol}: balance {have} < amount {amount}")
        self._put(self.tokens, (symbol, frm), have - amount)
        self._put(self.tokens, (symbol, to), self.tokens.get((symbol, to), 0) + amount)

    def _spend_allowance(self, symbol: str, owner: bytes, spender: bytes, amount: int) -> None:
        left = self.allowances.get((symbol, owner, spender), 0)
        if left < amount:
            raise ContractError(f"allowance {left} < amount {amount}")
        self._put(self.allowances, (symbol, owner, spender), left - amount)
