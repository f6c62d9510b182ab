"""Lua smart contracts: deploy, call and query (Smartshare ch. II §3-4; Smart Chain 3.2.5).

The source is kept on chain, so what a contract does is readable by anyone; its storage is
chain state under ``contracts/store/<address>``, in the state root like everything else.
Each executed block gets a fresh ``LuaVM`` (see ``smartchain.contracts.vm``), which caches
the block's contract storage (bounded) and hands each successful call's writes to state
right after the call. A call's gas
comes out of its transaction's gas: instructions, storage bytes, events and the call itself.
A failed or out-of-gas call reverts every write of its transaction and still pays.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

from smartchain.contracts.host import ContractError, GasSchedule, Host, check_function_name
from smartchain.contracts.memhost import MemoryHost
from smartchain.contracts.rewrite import rewrite
from smartchain.contracts.vm import MAX_CODE, CallOutcome, LuaVM
from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.modules.bank.module import get_account, move_hpc
from smartchain.modules.contracts.types import (
    CODE_PREFIX,
    EXEC_PREFIX,
    INFO_PREFIX,
    MAX_ARGS,
    QUERY_GAS,
    QUERY_SECONDS,
    SOURCE_BYTES_PER_SIGNATURE_CHECK,
    SOURCES_REMEMBERED,
    Arg,
    Call,
    ContractInfo,
    Deploy,
    contract_address,
)
from smartchain.modules.tokens import module as tokens
from smartchain.state.module import BlockInfo, Module, Msg, Query, TxContext
from smartchain.state.params import Params
from smartchain.state.store import Overlay, StateView
from smartchain.types.errors import Code, OutOfGas, TxError
from smartchain.types.tx import Event


def contract_info(store: Any, address: bytes) -> ContractInfo | None:
    raw = store.get(INFO_PREFIX + address)
    return ContractInfo.decode(raw) if raw is not None else None


def contract_source(store: StateView, address: bytes) -> bytes | None:
    return store.get(CODE_PREFIX + address)


# --- the chain as a contract host ------------------------------------------------------


class ChainHost(Host):
    """Host primitives over the block's overlay, the bank and the tokens module."""

    def __init__(self, gas: GasSchedule) -> None:
        super().__init__(gas)
        self.store: Overlay  # set by bind(), before any call

    def bind(self, store: Overlay) -> None:
        """Run the next calls against ``store`` (the block's overlay, or a query's)."""
        self.store = store
        self._load = store.get  # type: ignore[method-assign]  # the hot path: no extra frame

    def _store(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.store.delete(key)
        else:
            self.store.set(key, value)

    def _checkpoint(self) -> int:
        return self.store.checkpoint()

    def _revert(self, checkpoint: int) -> None:
        self.store.revert_to(checkpoint)

    def _source(self, address: bytes) -> bytes | None:
        return self.store.get(CODE_PREFIX + address)

    def _executable(self, address: bytes) -> bytes | None:
        return self.store.get(EXEC_PREFIX + address)

    def _balance(self, address: bytes) -> int:
        return get_account(self.store, address).balance

    def _move_hpc(self, frm: bytes, to: bytes, amount: int) -> None:
        _as_contract_error(move_hpc, self.store, frm, to, amount)

    def _token_balance(self, symbol: str, address: bytes) -> int:
        return tokens.token_balance(self.store, symbol, address)

    def _move_tokens(self, symbol: str, frm: bytes, to: bytes, amount: int) -> None:
        _as_contract_error(tokens.move_tokens, self.store, symbol, frm, to, amount)

    def _spend_allowance(self, symbol: str, owner: bytes, spender: bytes, amount: int) -> None:
        _as_contract_error(tokens.spend_allowance, self.store, symbol, owner, spender, amount)


def _as_contract_error(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except TxError as exc:
        raise ContractError(exc.message) from exc


def _schedule(params: Params) -> GasSchedule:
    return GasSchedule(call=params.contract_call_gas)


def _block_vm(block: BlockInfo) -> tuple[LuaVM, ChainHost]:
    """This block's VM: every node executes a block in a VM that starts in the same state.
    A VM that faulted is replaced (it holds nothing but a cache between calls)."""
    cached = block.cache.get("contracts")
    if cached is None or cached[0].broken:
        host = ChainHost(_schedule(block.params))
        cached = block.cache["contracts"] = (LuaVM(host), host)
    return cached


_checker = threading.local()


@functools.lru_cache(maxsize=SOURCES_REMEMBERED)
def _source_problem(source: bytes) -> str | None:
    """Why a contract source is refused, or ``None``. A pure function of the source, so it
    is remembered: a deploy checked on admission is not compiled again in its block."""
    vm = getattr(_checker, "vm", None)
    if vm is None:
        vm = _checker.vm = LuaVM(MemoryHost())
    try:
        vm.check_source(source)
    except ContractError as exc:
        return exc.message
    return None


def check_source(source: bytes) -> None:
    """Compile and check a contract before it reaches the mempool (``TxError`` if bad)."""
    problem = _source_problem(source)
    if problem is not None:
        raise TxError(Code.INVALID_PAYLOAD, f"contract rejected: {problem}")


def _check_args(args: tuple[Arg, ...]) -> None:
    if len(args) > MAX_ARGS:
        raise TxError(Code.INVALID_PAYLOAD, f"at most {MAX_ARGS} arguments")
    for a in args:
        a.check()


def _validate_deploy(msg: Deploy) -> None:
    """The cheap checks, run before the signature: ``check_source`` is not (see ``Msg``)."""
    _check_args(msg.init_args)
    if len(msg.source) > MAX_CODE:
        raise TxError(Code.INVALID_PAYLOAD, f"contract rejected: contract source is "
                                            f"{len(msg.source)} bytes, limit {MAX_CODE}")


def _validate_deploy_signed(msg: Deploy) -> None:
    check_source(msg.source)


def _validate_call(msg: Call) -> None:
    _check_args(msg.args)
    try:
        check_function_name(msg.function.encode())
    except ContractError as exc:
        raise TxError(Code.INVALID_PAYLOAD, exc.message) from exc


def _run(ctx: TxContext, address: bytes, function: str, args: tuple[Arg, ...], value: int,
         *, optional: bool = False) -> CallOutcome:
    """Invoke a contract inside a transaction; a failure raises and so reverts the tx.

    A successful call must stay the last step of its transaction: its storage writes are
    in the VM's cache from now on, which a later revert of the transaction would not undo."""
    vm, host = _block_vm(ctx.block)
    host.bind(ctx.store)
    host.begin(address)
    me = to_bech32(ctx.sender).encode()
    outcome = vm.invoke(to_bech32(address).encode(), function.encode(),
                        tuple(a.value() for a in args), gas=ctx.gas.limit - ctx.gas.used,
                        caller=me, value=value, origin=me, height=ctx.block.height,
                        time_ms=ctx.block.time_ms, optional=optional)
    ctx.gas.consume(outcome.gas_used)
    if outcome.ok:
        host.apply_writes(outcome.writes)
    if outcome.error == "out of gas":
        raise OutOfGas(ctx.gas.limit)
    if not outcome.ok:
        raise TxError(Code.FAILED, f"contract call failed: {outcome.error}")
    ctx.events.extend(host.events)
    return outcome


def _handle_deploy(ctx: TxContext, msg: Deploy) -> None:
    params = ctx.block.params
    ctx.gas.consume(params.contract_code_byte_gas * len(msg.source))
    check_source(msg.source)  # only a faulty proposer's block gets here with a bad one
    nonce = get_account(ctx.store, ctx.sender).nonce  # already bumped: unique per deploy
    address = contract_address(ctx.sender, nonce)
    if contract_info(ctx.store, address) is not None:
        raise TxError(Code.FAILED, "a contract already lives at the derived address")
    ctx.write(CODE_PREFIX + address, msg.source)
    ctx.write(EXEC_PREFIX + address, rewrite(msg.source))  # check_source above rewrote it
    info = ContractInfo(ctx.sender, h256(msg.source), len(msg.source), ctx.block.height)
    ctx.write(INFO_PREFIX + address, info.encode())
    if msg.value:
        move_hpc(ctx.store, ctx.sender, address, msg.value)
    ctx.gas.consume(params.contract_call_gas)
    _run(ctx, address, "init", msg.init_args, msg.value, optional=True)
    ctx.emit("contract_deploy", contract=address.hex(), creator=ctx.sender.hex(),
             code_hash=info.code_hash.hex())


def _handle_call(ctx: TxContext, msg: Call) -> None:
    ctx.gas.consume(ctx.block.params.contract_call_gas)
    if contract_info(ctx.store, msg.contract) is None:
        raise TxError(Code.FAILED, f"no contract at {to_bech32(msg.contract)}")
    if msg.value:
        move_hpc(ctx.store, ctx.sender, msg.contract, msg.value)
    _run(ctx, msg.contract, msg.function, msg.args, msg.value)


def query_call(view: Any, params: Params, address: bytes, function: str, args: list[Any],
               *, caller: bytes, height: int, time_ms: int, value: int = 0) -> CallOutcome:
    """A dry run on committed state: free, not in a block, writes discarded. ``value`` is
    what ``ctx.value`` says; no HPC moves."""
    info = contract_info(view, address)
    if info is None:
        raise TxError(Code.FAILED, f"no contract at {to_bech32(address)}")
    host = ChainHost(_schedule(params))
    host.bind(Overlay(view))
    host.begin(address)
    vm = LuaVM(host, watchdog_seconds=QUERY_SECONDS)
    me = to_bech32(caller).encode()
    return vm.invoke(to_bech32(address).encode(), function.encode(),
                     tuple(Arg.of(a).value() for a in args),
                     gas=QUERY_GAS, caller=me, value=value, origin=me, height=height,
                     time_ms=time_ms)


class Contracts(Module):
    name = "contracts"

    def messages(self) -> dict[str, Msg]:
        return {
            "contracts/deploy": Msg(Deploy, _handle_deploy, _validate_deploy,
                                    spend=lambda m: m.value,
                                    validate_signed=_validate_deploy_signed,
                                    signed_check_cost=lambda m: len(m.source) //
                                    SOURCE_BYTES_PER_SIGNATURE_CHECK),
            "contracts/call": Msg(Call, _handle_call, _validate_call, spend=lambda m: m.value),
        }

    def queries(self) -> dict[str, Query]:
        return {"info": lambda view, args: contract_info(view, from_bech32(args["address"]))}

    def end_block(self, store: Overlay, block: BlockInfo) -> list[Event]:
        """The VM lived for this block (its calls' writes are already in state)."""
        block.cache.pop("contracts", None)
        return []
