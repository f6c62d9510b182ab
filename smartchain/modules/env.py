"""What a resource module (compute, storage) works with while it changes state.

Both modules touch the same provider record many times in one transaction or block hook
(load, reputation, capacity used): ``ModuleEnv`` keeps those records cached and writes each
once, in address order, at ``flush``, and charges writes to the transaction's gas meter (or
to nobody in block hooks, whose work the transactions that caused it paid for).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from smartchain.modules.bank.module import move_hpc
from smartchain.state.module import BlockInfo, GasMeter
from smartchain.state.store import Overlay
from smartchain.types.tx import Event

R = TypeVar("R")


class ModuleEnv(Generic[R]):
    """The store, the block and, inside a transaction, its gas meter (``None`` in block
    hooks). Subclasses say where a provider record ``R`` lives: ``provider_key`` and
    ``load_provider``."""

    __slots__ = ("block", "dirty", "events", "gas", "params", "providers", "store")

    def __init__(self, store: Overlay, block: BlockInfo, gas: GasMeter | None,
                 events: list[Event]) -> None:
        self.store = store
        self.block = block
        self.params = block.params
        self.gas = gas
        self.events = events
        self.providers: dict[bytes, R] = {}
        self.dirty: set[bytes] = set()

    def provider_key(self, address: bytes) -> bytes:
        raise NotImplementedError

    def load_provider(self, address: bytes) -> R | None:
        raise NotImplementedError

    def charge(self, amount: int) -> None:
        if self.gas is not None:
            self.gas.consume(amount)

    def set(self, key: bytes, value: bytes) -> None:
        self.charge(self.params.gas_per_write)
        self.store.set(key, value)

    def delete(self, key: bytes) -> None:
        if self.store.get(key) is not None:
            self.charge(self.params.gas_per_write)
            self.store.delete(key)

    def move(self, frm: bytes, to: bytes, amount: int) -> None:
        if amount:
            self.charge(2 * self.params.gas_per_write)
            move_hpc(self.store, frm, to, amount)

    def emit(self, kind: str, **attrs: object) -> None:
        self.events.append(Event.of(kind, **attrs))

    def provider(self, address: bytes) -> R | None:
        p = self.providers.get(address)
        if p is None:
            p = self.load_provider(address)
            if p is not None:
                self.providers[address] = p
        return p

    def put_provider(self, address: bytes, p: R) -> None:
        self.providers[address] = p
        self.dirty.add(address)

    def flush(self) -> None:
        for address in sorted(self.dirty):
            record: Any = self.providers[address]
            self.set(self.provider_key(address), record.encode())
        self.dirty.clear()
