"""Python SDK over the node's HTTP API (standard library only, so it embeds anywhere)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.state.modules.bank import Transfer
from smartchain.types.tx import Transaction

TRANSFER_GAS_LIMIT = 20_000


class ApiError(Exception):
    """The node refused a request: ``code`` is the machine-readable reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class NodeUnreachable(ApiError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, "unreachable", f"cannot reach node at {url}: {reason}")


@dataclass
class Client:
    url: str = "http://127.0.0.1:26657"
    timeout: float = 10.0

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                err = json.loads(exc.read())["error"]
                raise ApiError(exc.code, err["code"], err["message"]) from None
            except (ValueError, KeyError, TypeError):
                raise ApiError(exc.code, "http_error", str(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise NodeUnreachable(self.url, str(getattr(exc, "reason", exc))) from None

    # --- reads ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/v1/status")

    def account(self, address: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/accounts/{address}")

    def balance(self, address: str) -> int:
        return int(self.account(address)["balance"])

    def block(self, height: int | str = "latest") -> dict[str, Any]:
        return self._request("GET", f"/v1/blocks/{height}")

    def tx(self, tx_hash: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/txs/{tx_hash}")

    # --- writes --------------------------------------------------------------------------

    def submit(self, raw: bytes) -> str:
        return self._request("POST", "/v1/txs", {"tx": raw.hex()})["hash"]

    def submit_batch(self, raws: list[bytes]) -> list[dict[str, Any]]:
        return self._request("POST", "/v1/txs/batch", {"txs": [r.hex() for r in raws]})["results"]

    def wait_tx(self, tx_hash: str, timeout: float = 30.0, poll: float = 0.1) -> dict[str, Any]:
        """Poll until the transaction is committed; returns it with its receipt."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                doc = self.tx(tx_hash)
                if doc["status"] == "committed":
                    return doc
            except ApiError as exc:
                if exc.code != "not_found":
                    raise
            if time.monotonic() > deadline:
                raise ApiError(0, "timeout", f"transaction {tx_hash} not committed in {timeout}s")
            time.sleep(poll)

    def build_transfer(self, key: PrivateKey, to: str, amount: int, *, nonce: int | None = None,
                       gas_price: int | None = None, gas_limit: int = TRANSFER_GAS_LIMIT,
                       chain_id: str | None = None) -> Transaction:
        """A signed transfer; nonce, chain id and gas price are fetched when not given."""
        if chain_id is None or gas_price is None:
            st = self.status()
            chain_id = chain_id or st["chain_id"]
            gas_price = gas_price if gas_price is not None else st["min_gas_price"]
        if nonce is None:
            nonce = self.account(to_bech32(key.address))["pending_nonce"]
        payload = Transfer(from_bech32(to), amount).encode()
        return Transaction.create(key, chain_id=chain_id, nonce=nonce, kind="bank/transfer",
                                  payload=payload, gas_limit=gas_limit, gas_price=gas_price)

    def transfer(self, key: PrivateKey, to: str, amount: int, *, wait: bool = True,
                 **kwargs: Any) -> dict[str, Any]:
        tx = self.build_transfer(key, to, amount, **kwargs)
        tx_hash = self.submit(tx.encode())
        if not wait:
            return {"hash": tx_hash, "status": "pending"}
        return self.wait_tx(tx_hash)
