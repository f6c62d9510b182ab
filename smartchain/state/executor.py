"""The executor: runs transactions through the registered modules.

It knows nothing about any feature: it looks up the message kind, charges intrinsic gas,
runs the auth step (nonce, fee), runs the handler in its own overlay so a failure
reverts every write of the handler, then settles the fee. The same checks run before a
transaction enters the mempool (``check``) so bad input is refused before it costs anyone
anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from smartchain.codec import CodecError
from smartchain.crypto.keys import verify
from smartchain.state.module import Auth, BlockInfo, GasMeter, Module, Msg, TxContext
from smartchain.state.params import Params
from smartchain.state.store import Overlay
from smartchain.types.errors import Code, TxError
from smartchain.types.tx import Event, Receipt, Transaction

log = logging.getLogger("smartchain.executor")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CheckedTx:
    """A transaction that passed every stateless check: decoded and ready to execute."""

    raw: bytes
    tx: Transaction
    hash: bytes
    sender: bytes  # address
    msg: Msg
    payload: Any
    spend: int  # HPC it can take from the sender: max fee + what the message moves


def _checked(kind: str, check: Callable[[], T]) -> T:
    """Run a message's stateless check: a bug of ours in it refuses the input, never
    crashes on it."""
    try:
        return check()
    except TxError:
        raise
    except Exception as exc:
        log.exception("checking a %s payload failed", kind)
        raise TxError(Code.INVALID_PAYLOAD, f"bad {kind} payload: cannot be checked") from exc


def carried_error(whose: str) -> TxError:
    """A signature a payload carries does not verify (``Msg.signatures``)."""
    return TxError(Code.BAD_SIGNATURE, f"{whose} signature does not verify")


def _the_auth(modules: list[Module]) -> Auth:
    """The one module playing the ``Auth`` role: without it no fee could be charged."""
    found = [m for m in modules if isinstance(m, Auth)]
    if len(found) != 1:
        names = [m.name for m in found]
        raise ValueError(f"an app needs exactly one Auth module (ante, settle_fee), got {names}")
    return found[0]


class Executor:
    def __init__(self, modules: list[Module]) -> None:
        self.modules = modules
        self.auth = _the_auth(modules)
        self.msgs: dict[str, Msg] = {}
        self.queries: dict[str, Any] = {}
        for mod in modules:
            for kind, msg in mod.messages().items():
                if kind in self.msgs:
                    raise ValueError(f"message kind {kind} registered twice")
                self.msgs[kind] = msg
            for name, fn in mod.queries().items():
                self.queries[f"{mod.name}/{name}"] = fn

    def intrinsic_gas(self, params: Params, size: int) -> int:
        return params.tx_base_gas + params.gas_per_tx_byte * size

    def check_stateless(self, raw: bytes, tx: Transaction, tx_hash: bytes, chain_id: str,
                        params: Params) -> CheckedTx:
        """Everything that can be checked without state or signature: raise ``TxError``."""
        if len(raw) > params.max_tx_bytes:
            raise TxError(Code.TX_TOO_LARGE,
                          f"transaction is {len(raw)} bytes, limit {params.max_tx_bytes}")
        if tx.chain_id != chain_id:
            raise TxError(Code.WRONG_CHAIN, f"chain id {tx.chain_id!r}, this chain is {chain_id!r}")
        msg = self.msgs.get(tx.kind)
        if msg is None:
            raise TxError(Code.UNKNOWN_KIND, f"unknown transaction kind {tx.kind!r}")
        self.check_params(params, tx, len(raw))
        try:
            payload = msg.payload.decode(tx.payload)
        except CodecError as exc:
            raise TxError(Code.INVALID_PAYLOAD, f"bad {tx.kind} payload: {exc}") from exc
        _checked(tx.kind, lambda: msg.validate(payload))
        spend = tx.gas_limit * tx.gas_price + _checked(tx.kind, lambda: msg.spend(payload))
        return CheckedTx(raw, tx, tx_hash, tx.sender_address, msg, payload, spend)

    def check_params(self, params: Params, tx: Transaction, size: int) -> None:
        """The checks that depend on params: run at admission and again at execution, since
        governance may change params while a transaction waits in a mempool (every node
        then refuses it the same way, whether it had it pooled or not)."""
        if size > params.max_tx_bytes:
            raise TxError(Code.TX_TOO_LARGE, f"transaction is {size} bytes, limit "
                          f"{params.max_tx_bytes}")
        if tx.gas_price < params.min_gas_price:
            raise TxError(Code.FEE_TOO_LOW,
                          f"gas price {tx.gas_price} below minimum {params.min_gas_price}")
        need = self.intrinsic_gas(params, size)
        if tx.gas_limit < need:
            raise TxError(Code.GAS_LIMIT, f"gas limit {tx.gas_limit} below intrinsic gas {need}")
        most = min(params.max_tx_gas, params.max_block_gas)  # or no block could take it
        if tx.gas_limit > most:
            raise TxError(Code.GAS_LIMIT, f"gas limit {tx.gas_limit} above {most}")

    def check_costly(self, checked: CheckedTx) -> None:
        """The message's checks too costly to run before its signature is verified (see
        ``Msg.validate_signed``): call only once the signature is good. Raise ``TxError``."""
        _checked(checked.tx.kind, lambda: checked.msg.validate_signed(checked.payload))

    def carried_signatures(self, checked: CheckedTx, chain_id: str
                           ) -> list[tuple[bytes, bytes, bytes, str]]:
        """The signatures ``checked``'s payload carries besides the sender's
        (``Msg.signatures``): verify them with the transaction's signature."""
        return _checked(checked.tx.kind,
                        lambda: checked.msg.signatures(checked.payload, chain_id))

    def check_carried(self, checked: CheckedTx, chain_id: str) -> None:
        """Verify, in this process, the signatures ``checked``'s payload carries; raise
        ``TxError`` (``BAD_SIGNATURE``) naming the first that does not verify."""
        for pk, message, sig, whose in self.carried_signatures(checked, chain_id):
            if not verify(pk, message, sig):
                raise carried_error(whose)

    def begin_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        events: list[Event] = []
        for mod in self.modules:
            events.extend(mod.begin_block(store, block))
        return events

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        events: list[Event] = []
        for mod in self.modules:
            events.extend(mod.end_block(store, block))
        return events

    def deliver(self, store: Overlay, block: BlockInfo, ctx_tx: CheckedTx) -> Receipt:
        """Execute one checked transaction. Raises ``TxError`` only if it cannot be in a
        block at all (bad nonce, cannot pay the fee); any later failure is a receipt."""
        tx = ctx_tx.tx
        sender = ctx_tx.sender
        self.check_params(block.params, tx, len(ctx_tx.raw))  # changed since admission?
        intrinsic = self.intrinsic_gas(block.params, len(ctx_tx.raw))
        self.auth.ante(store, tx, sender)
        gas = GasMeter(tx.gas_limit)
        gas.used = intrinsic
        ctx = TxContext(store, block, sender, gas)
        code, log = Code.OK, ""
        checkpoint = store.checkpoint()
        try:
            ctx_tx.msg.handler(ctx, ctx_tx.payload)
        except TxError as exc:
            store.revert_to(checkpoint)
            code, log = exc.code, exc.message
            ctx.events.clear()
        fee = self.auth.settle_fee(store, tx, sender, gas.used, block)
        return Receipt(ctx_tx.hash, int(code), gas.used, fee, log, tuple(ctx.events))
