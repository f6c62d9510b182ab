"""SDK methods of the tokens module (IOT_Coin): reads and transactions over the node API."""

from __future__ import annotations

from typing import Any

from smartchain.crypto.address import from_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.sdk import ModuleSdk, seg
from smartchain.modules.tokens.types import (
    MAX_AMOUNT,
    Approve,
    Burn,
    Issue,
    Mint,
    TokenTransfer,
    TransferFrom,
)


class TokensSdk(ModuleSdk):
    """Token reads and transactions; amounts in base units."""

    def token(self, symbol: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/tokens/{seg(symbol)}")

    def tokens(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/tokens")["tokens"]

    def token_balance_info(self, symbol: str, address: str) -> dict[str, Any]:
        """Balance in base units and as a decimal amount (with the token's decimals)."""
        return self._request("GET", f"/v1/tokens/{seg(symbol)}/balances/{seg(address)}")

    def token_balance(self, symbol: str, address: str) -> int:
        return int(self.token_balance_info(symbol, address)["balance"])

    def allowance_info(self, symbol: str, owner: str, spender: str) -> dict[str, Any]:
        path = f"/v1/tokens/{seg(symbol)}/allowances/{seg(owner)}/{seg(spender)}"
        return self._request("GET", path)

    def allowance(self, symbol: str, owner: str, spender: str) -> int:
        return int(self.allowance_info(symbol, owner, spender)["allowance"])

    def issue_token(self, key: PrivateKey, symbol: str, name: str, decimals: int, supply: int,
                    *, mintable: bool = False, max_supply: int | None = None,
                    gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Issue a token; amounts in base units. ``max_supply`` defaults to the supply for a
        fixed token and to the 64-bit limit for a mintable one."""
        if max_supply is None:
            max_supply = MAX_AMOUNT if mintable else supply
        return self.send_tx(key, "tokens/issue",
                            Issue(symbol, name, decimals, supply, mintable, max_supply),
                            gas_limit=gas_limit, **kwargs)

    def token_transfer(self, key: PrivateKey, symbol: str, to: str, amount: int, *,
                       gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/transfer",
                            TokenTransfer(symbol, from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def approve(self, key: PrivateKey, symbol: str, spender: str, amount: int, *,
                gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Set (not add to) what ``spender`` may move out of this key's balance."""
        return self.send_tx(key, "tokens/approve", Approve(symbol, from_bech32(spender), amount),
                            gas_limit=gas_limit, **kwargs)

    def transfer_from(self, key: PrivateKey, symbol: str, owner: str, to: str, amount: int, *,
                      gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/transfer_from",
                            TransferFrom(symbol, from_bech32(owner), from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def mint(self, key: PrivateKey, symbol: str, to: str, amount: int, *,
             gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/mint", Mint(symbol, from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def burn(self, key: PrivateKey, symbol: str, amount: int, *,
             gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/burn", Burn(symbol, amount), gas_limit=gas_limit,
                            **kwargs)
