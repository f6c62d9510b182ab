"""The tokens module's HTTP queries: token records, balances and allowances."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import to_bech32
from smartchain.modules.query import (
    ADDRESS,
    HttpQuery,
    ModuleApi,
    Param,
    QueryError,
    parse_address,
    ref,
)
from smartchain.modules.tokens.module import all_tokens, allowance, token_balance, token_info
from smartchain.modules.tokens.types import SYMBOL_RE, TokenInfo
from smartchain.state.store import StateReader
from smartchain.types.amount import format_units

SYMBOL = {"type": "string", "pattern": "^[A-Z][A-Z0-9]{1,9}$", "description": "token symbol"}
TOKEN_UNITS = {"type": "string", "pattern": "^[0-9]+$",
               "description": "integer base units of the token (at most 2^63-1)"}
DECIMAL = {"type": "string", "description": "exact decimal amount, using the token's decimals"}
TAG = "tokens"


def parse_symbol(symbol: str) -> str:
    if not SYMBOL_RE.fullmatch(symbol):
        raise QueryError(400, "invalid_symbol", f"invalid token symbol {symbol!r}: 2-10 "
                         "characters, an upper-case letter then upper-case letters or digits")
    return symbol


def token_json(t: TokenInfo) -> dict[str, Any]:
    return {
        "symbol": t.symbol, "name": t.name, "decimals": t.decimals,
        "issuer": to_bech32(t.issuer), "mintable": t.mintable,
        "supply": str(t.supply), "max_supply": str(t.max_supply),
        "supply_amount": format_units(t.supply, t.decimals),
        "max_supply_amount": format_units(t.max_supply, t.decimals),
    }


def _require_token(reader: StateReader, symbol: str) -> TokenInfo:
    info = token_info(reader, symbol)
    if info is None:
        hint = " (HPC is the native coin: see /v1/accounts)" if symbol == "HPC" else ""
        raise QueryError(404, "not_found", f"no token {symbol}{hint}")
    return info


def _tokens(reader: StateReader, args: dict[str, Any]) -> Any:
    return {"tokens": [token_json(t) for t in all_tokens(reader)]}


def _token(reader: StateReader, args: dict[str, Any]) -> Any:
    return token_json(_require_token(reader, args["symbol"]))


def _balance(reader: StateReader, args: dict[str, Any]) -> Any:
    symbol, address = args["symbol"], args["address"]
    info = _require_token(reader, symbol)
    balance = token_balance(reader, symbol, address)
    return {"symbol": symbol, "address": to_bech32(address), "balance": str(balance),
            "decimals": info.decimals, "amount": format_units(balance, info.decimals)}


def _allowance(reader: StateReader, args: dict[str, Any]) -> Any:
    symbol, owner, spender = args["symbol"], args["owner"], args["spender"]
    info = _require_token(reader, symbol)
    allowed = allowance(reader, symbol, owner, spender)
    return {"symbol": symbol, "owner": to_bech32(owner), "spender": to_bech32(spender),
            "allowance": str(allowed), "decimals": info.decimals,
            "amount": format_units(allowed, info.decimals)}


_SYMBOL = Param("symbol", SYMBOL, parse_symbol)
_NO_TOKEN = {404: "no such token"}

API = ModuleApi(
    queries=(
        HttpQuery("/v1/tokens", "listTokens", TAG, "Every issued token, by symbol", _tokens,
                  {"type": "object", "required": ["tokens"],
                   "properties": {"tokens": {"type": "array", "items": ref("Token")}}},
                  "all tokens"),
        HttpQuery("/v1/tokens/{symbol}", "getToken", TAG,
                  "A token's issuer, decimals and supply", _token, ref("Token"), "token",
                  (_SYMBOL,), {400: "malformed symbol", **_NO_TOKEN}),
        HttpQuery("/v1/tokens/{symbol}/balances/{address}", "getTokenBalance", TAG,
                  "An address's balance of a token", _balance, ref("TokenBalance"),
                  "balance (zero if none)", (_SYMBOL, Param("address", ADDRESS, parse_address)),
                  {400: "malformed symbol or address", **_NO_TOKEN}),
        HttpQuery("/v1/tokens/{symbol}/allowances/{owner}/{spender}", "getTokenAllowance", TAG,
                  "How much of owner's token the spender may still transfer", _allowance,
                  ref("TokenAllowance"), "allowance (zero if none)",
                  (_SYMBOL, Param("owner", ADDRESS, parse_address),
                   Param("spender", ADDRESS, parse_address)),
                  {400: "malformed symbol or address", **_NO_TOKEN}),
    ),
    schemas={
        "Token": {
            "type": "object",
            "required": ["symbol", "name", "decimals", "issuer", "mintable", "supply",
                         "max_supply"],
            "properties": {
                "symbol": SYMBOL, "name": {"type": "string"},
                "decimals": {"type": "integer", "minimum": 0, "maximum": 18},
                "issuer": ADDRESS, "mintable": {"type": "boolean"}, "supply": TOKEN_UNITS,
                "max_supply": TOKEN_UNITS, "supply_amount": DECIMAL,
                "max_supply_amount": DECIMAL,
            },
        },
        "TokenBalance": {
            "type": "object", "required": ["symbol", "address", "balance", "decimals",
                                           "amount"],
            "properties": {"symbol": SYMBOL, "address": ADDRESS, "balance": TOKEN_UNITS,
                           "decimals": {"type": "integer"}, "amount": DECIMAL},
        },
        "TokenAllowance": {
            "type": "object",
            "required": ["symbol", "owner", "spender", "allowance", "decimals", "amount"],
            "properties": {"symbol": SYMBOL, "owner": ADDRESS, "spender": ADDRESS,
                           "allowance": TOKEN_UNITS, "decimals": {"type": "integer"},
                           "amount": DECIMAL},
        },
    },
)
