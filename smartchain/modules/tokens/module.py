"""IOT_Coin: any firm issues its own token, held and moved like HPC but never paying fees.

A token is a symbol claimed for ever by its issuer (priced by ``token_issue_gas``), with a
supply that only the issuer can grow (if mintable, never past ``max_supply``) and anyone
can shrink by burning their own tokens. Allowances work as in ERC-20: ``approve`` *sets*
what a spender may take, ``transfer_from`` spends it.

Every amount fits a signed 64-bit integer (at most ``MAX_AMOUNT``), so contracts whose VM
has 64-bit integers can hold any balance or supply exactly. Balances are kept under
``tokens/bal/<address><symbol>`` so one prefix scan lists an address's holdings in symbol
order; a zero balance is deleted rather than stored.

The plain functions (``token_info``, ``move_tokens``, ...) take any store view and raise
``TxError``: the contracts module calls them with its own overlay and charges its own gas.
"""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.modules.tokens.types import (
    _AMOUNT,
    ALLOW_PREFIX,
    BALANCE_PREFIX,
    MAX_AMOUNT,
    MAX_DECIMALS,
    MAX_NAME,
    META_PREFIX,
    RESERVED_SYMBOLS,
    SYMBOL_RE,
    Approve,
    Burn,
    Issue,
    Mint,
    TokenInfo,
    TokenTransfer,
    TransferFrom,
)
from smartchain.state.module import Module, Msg, Query, TxContext
from smartchain.types.errors import Code, TxError

# --- keys and stored values ----------------------------------------------------------------


def symbol_error(symbol: str) -> str | None:
    """Why ``symbol`` cannot name a token, or None if it can."""
    if not SYMBOL_RE.fullmatch(symbol):
        return (f"invalid token symbol {symbol!r}: 2-10 characters, an upper-case letter "
                "then upper-case letters or digits")
    if symbol in RESERVED_SYMBOLS:
        return f"token symbol {symbol!r} is reserved"
    return None


def meta_key(symbol: str) -> bytes:
    return META_PREFIX + symbol.encode()


def balance_key(symbol: str, address: bytes) -> bytes:
    return BALANCE_PREFIX + address + symbol.encode()


def allowance_key(symbol: str, owner: bytes, spender: bytes) -> bytes:
    return ALLOW_PREFIX + symbol.encode() + b"/" + owner + spender


def _read_amount(store: Any, key: bytes) -> int:
    raw = store.get(key)
    return _AMOUNT.unpack(raw)[0] if raw else 0


def _write_amount(store: Any, key: bytes, amount: int) -> None:
    """Zero is not stored: an address's holdings list only what it holds."""
    if amount:
        store.set(key, _AMOUNT.pack(amount))
    elif store.get(key) is not None:
        store.delete(key)


# --- the functions other modules call -----------------------------------------------------


def token_info(store: Any, symbol: str) -> TokenInfo | None:
    raw = store.get(meta_key(symbol))
    return TokenInfo.decode(raw) if raw is not None else None


def require_token(store: Any, symbol: str) -> TokenInfo:
    info = token_info(store, symbol)
    if info is None:
        raise TxError(Code.FAILED, f"unknown token {symbol!r}")
    return info


def token_balance(store: Any, symbol: str, address: bytes) -> int:
    return _read_amount(store, balance_key(symbol, address))


def allowance(store: Any, symbol: str, owner: bytes, spender: bytes) -> int:
    return _read_amount(store, allowance_key(symbol, owner, spender))


def _check_amount(amount: int, *, positive: bool = True) -> None:
    if type(amount) is not int or amount < (1 if positive else 0) or amount > MAX_AMOUNT:
        low = "a positive" if positive else "a non-negative"
        raise TxError(Code.FAILED, f"token amount must be {low} integer at most {MAX_AMOUNT}")


def move_tokens(store: Any, symbol: str, frm: bytes, to: bytes, amount: int) -> None:
    """Move ``amount`` base units of ``symbol`` from ``frm`` to ``to`` (checks the balance)."""
    _check_amount(amount)
    require_token(store, symbol)
    fkey = balance_key(symbol, frm)
    balance = _read_amount(store, fkey)
    if balance < amount:
        raise TxError(Code.INSUFFICIENT_FUNDS,
                      f"insufficient {symbol}: balance {balance} < amount {amount}")
    _write_amount(store, fkey, balance - amount)
    tkey = balance_key(symbol, to)
    received = _read_amount(store, tkey) + amount  # read after the debit: frm == to works
    if received > MAX_AMOUNT:  # cannot happen while balances sum to a supply <= MAX_AMOUNT
        raise TxError(Code.FAILED, f"{symbol} balance would exceed {MAX_AMOUNT}")
    _write_amount(store, tkey, received)


def set_allowance(store: Any, symbol: str, owner: bytes, spender: bytes, amount: int) -> None:
    _check_amount(amount, positive=False)
    require_token(store, symbol)
    _write_amount(store, allowance_key(symbol, owner, spender), amount)


def spend_allowance(store: Any, symbol: str, owner: bytes, spender: bytes, amount: int) -> None:
    """Take ``amount`` off what ``spender`` may move out of ``owner``'s balance."""
    _check_amount(amount)
    key = allowance_key(symbol, owner, spender)
    allowed = _read_amount(store, key)
    if allowed < amount:
        raise TxError(Code.FAILED,
                      f"insufficient {symbol} allowance: allowed {allowed} < amount {amount}")
    _write_amount(store, key, allowed - amount)


def holdings(store: Any, address: bytes) -> list[tuple[str, int]]:
    """(symbol, balance) of every token ``address`` holds, in symbol order."""
    prefix = BALANCE_PREFIX + address
    return [(k[len(prefix):].decode(), _AMOUNT.unpack(v)[0])
            for k, v in store.iter_prefix(prefix)]


def all_tokens(store: Any) -> list[TokenInfo]:
    return [TokenInfo.decode(v) for _k, v in store.iter_prefix(META_PREFIX)]


def _put_info(store: Any, info: TokenInfo) -> None:
    store.set(meta_key(info.symbol), info.encode())


def mint_tokens(store: Any, symbol: str, minter: bytes, to: bytes, amount: int) -> TokenInfo:
    """Create ``amount`` new units for ``to``; only the issuer, only up to ``max_supply``."""
    _check_amount(amount)
    info = require_token(store, symbol)
    if minter != info.issuer:
        raise TxError(Code.FAILED, f"only the issuer of {symbol} can mint it")
    if not info.mintable:
        raise TxError(Code.FAILED, f"{symbol} is not mintable: its supply is fixed")
    if info.supply + amount > info.max_supply:
        raise TxError(Code.FAILED, f"minting {amount} {symbol} would exceed its max supply "
                      f"{info.max_supply} (supply {info.supply})")
    info = _replace_supply(info, info.supply + amount)
    _put_info(store, info)
    key = balance_key(symbol, to)
    _write_amount(store, key, _read_amount(store, key) + amount)  # <= supply <= MAX_AMOUNT
    return info


def burn_tokens(store: Any, symbol: str, holder: bytes, amount: int) -> TokenInfo:
    """Destroy ``amount`` of the holder's own units: the supply shrinks with it."""
    _check_amount(amount)
    info = require_token(store, symbol)
    key = balance_key(symbol, holder)
    balance = _read_amount(store, key)
    if balance < amount:
        raise TxError(Code.INSUFFICIENT_FUNDS,
                      f"insufficient {symbol}: balance {balance} < burn {amount}")
    _write_amount(store, key, balance - amount)
    info = _replace_supply(info, info.supply - amount)
    _put_info(store, info)
    return info


def _replace_supply(info: TokenInfo, supply: int) -> TokenInfo:
    return TokenInfo(info.symbol, info.name, info.decimals, info.issuer, supply,
                     info.max_supply, info.mintable)


# --- stateless checks ---------------------------------------------------------------------


def _invalid(message: str) -> TxError:
    return TxError(Code.INVALID_PAYLOAD, message)


def _check_symbol(symbol: str) -> None:
    problem = symbol_error(symbol)
    if problem:
        raise _invalid(problem)


def _check_payload_amount(amount: int, *, what: str = "amount", positive: bool = True) -> None:
    if positive and amount <= 0:
        raise _invalid(f"{what} must be a positive integer of base units")
    if amount > MAX_AMOUNT:
        raise _invalid(f"{what} {amount} exceeds the token limit {MAX_AMOUNT} (2**63-1)")


def validate_issue(msg: Issue) -> None:
    _check_symbol(msg.symbol)
    if not 1 <= len(msg.name) <= MAX_NAME or not msg.name.isprintable():
        raise _invalid(f"token name must be 1-{MAX_NAME} printable characters")
    if msg.decimals > MAX_DECIMALS:
        raise _invalid(f"decimals must be 0-{MAX_DECIMALS}, got {msg.decimals}")
    _check_payload_amount(msg.supply, what="supply", positive=False)
    _check_payload_amount(msg.max_supply, what="max supply", positive=False)
    if msg.supply > msg.max_supply:
        raise _invalid(f"supply {msg.supply} exceeds max supply {msg.max_supply}")
    if not msg.mintable:
        if msg.max_supply != msg.supply:
            raise _invalid("a token that is not mintable has max supply equal to its supply")
        if msg.supply == 0:
            raise _invalid("a token that is not mintable needs a positive supply")


def _validate_symbol_amount(msg: Any, positive: bool = True) -> None:
    _check_symbol(msg.symbol)
    _check_payload_amount(msg.amount, positive=positive)


# --- handlers -----------------------------------------------------------------------------


def _writes(ctx: TxContext, n: int) -> None:
    """Charge ``n`` state writes up front, as the bank does: the price is known before any
    state is read, and a failed attempt costs what a successful one would."""
    ctx.gas.consume(n * ctx.block.params.gas_per_write)


def _handle_issue(ctx: TxContext, msg: Issue) -> None:
    if token_info(ctx.store, msg.symbol) is not None:  # before the price: nothing was bought
        raise TxError(Code.FAILED, f"token symbol {msg.symbol!r} is already issued")
    ctx.gas.consume(ctx.block.params.token_issue_gas)
    info = TokenInfo(msg.symbol, msg.name, msg.decimals, ctx.sender, msg.supply,
                     msg.max_supply, msg.mintable)
    ctx.write(meta_key(msg.symbol), info.encode())
    if msg.supply:
        ctx.write(balance_key(msg.symbol, ctx.sender), _AMOUNT.pack(msg.supply))
    ctx.emit("token_issue", symbol=msg.symbol, issuer=ctx.sender.hex(), amount=msg.supply,
             max_supply=msg.max_supply, mintable=str(msg.mintable).lower(),
             decimals=msg.decimals)


def _handle_transfer(ctx: TxContext, msg: TokenTransfer) -> None:
    _writes(ctx, 2)
    move_tokens(ctx.store, msg.symbol, ctx.sender, msg.to, msg.amount)
    ctx.emit("token_transfer", symbol=msg.symbol, **{"from": ctx.sender.hex()},
             to=msg.to.hex(), amount=msg.amount)


def _handle_approve(ctx: TxContext, msg: Approve) -> None:
    _writes(ctx, 1)
    set_allowance(ctx.store, msg.symbol, ctx.sender, msg.spender, msg.amount)
    ctx.emit("token_approve", symbol=msg.symbol, owner=ctx.sender.hex(),
             spender=msg.spender.hex(), amount=msg.amount)


def _handle_transfer_from(ctx: TxContext, msg: TransferFrom) -> None:
    _writes(ctx, 3)
    require_token(ctx.store, msg.symbol)
    spend_allowance(ctx.store, msg.symbol, msg.owner, ctx.sender, msg.amount)
    move_tokens(ctx.store, msg.symbol, msg.owner, msg.to, msg.amount)
    ctx.emit("token_transfer", symbol=msg.symbol, **{"from": msg.owner.hex()},
             to=msg.to.hex(), amount=msg.amount, spender=ctx.sender.hex())


def _handle_mint(ctx: TxContext, msg: Mint) -> None:
    _writes(ctx, 2)
    info = mint_tokens(ctx.store, msg.symbol, ctx.sender, msg.to, msg.amount)
    ctx.emit("token_mint", symbol=msg.symbol, to=msg.to.hex(), amount=msg.amount,
             supply=info.supply)


def _handle_burn(ctx: TxContext, msg: Burn) -> None:
    _writes(ctx, 2)
    info = burn_tokens(ctx.store, msg.symbol, ctx.sender, msg.amount)
    ctx.emit("token_burn", symbol=msg.symbol, **{"from": ctx.sender.hex()},
             amount=msg.amount, supply=info.supply)


# --- the module ---------------------------------------------------------------------------


def _address_arg(args: dict[str, str], name: str) -> bytes:
    return from_bech32(args[name])


class Tokens(Module):
    name = "tokens"

    def messages(self) -> dict[str, Msg]:
        return {
            "tokens/issue": Msg(Issue, _handle_issue, validate_issue),
            "tokens/transfer": Msg(TokenTransfer, _handle_transfer, _validate_symbol_amount),
            "tokens/approve": Msg(Approve, _handle_approve,
                                  lambda m: _validate_symbol_amount(m, positive=False)),
            "tokens/transfer_from": Msg(TransferFrom, _handle_transfer_from,
                                        _validate_symbol_amount),
            "tokens/mint": Msg(Mint, _handle_mint, _validate_symbol_amount),
            "tokens/burn": Msg(Burn, _handle_burn, _validate_symbol_amount),
        }

    def queries(self) -> dict[str, Query]:
        return {
            "info": lambda view, args: token_info(view, args["symbol"]),
            "balance": lambda view, args: token_balance(
                view, args["symbol"], _address_arg(args, "address")),
            "allowance": lambda view, args: allowance(
                view, args["symbol"], _address_arg(args, "owner"),
                _address_arg(args, "spender")),
            "list": lambda view, args: all_tokens(view),
            "holdings": lambda view, args: holdings(view, _address_arg(args, "address")),
        }
