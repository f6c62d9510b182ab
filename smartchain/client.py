"""Python SDK over the node's HTTP API (standard library only, so it embeds anywhere)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from smartchain.codec import Struct
from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.modules.compute.sdk import ComputeSdk, posted_job_id
from smartchain.modules.contracts.sdk import ContractsSdk, deployed_address
from smartchain.modules.devices.sdk import DevicesSdk
from smartchain.modules.gov.sdk import GovSdk
from smartchain.modules.market.sdk import MarketSdk
from smartchain.modules.poca.sdk import PocaSdk
from smartchain.modules.rewards.sdk import RewardsSdk
from smartchain.modules.sdk import ApiError
from smartchain.modules.storage.sdk import StorageSdk
from smartchain.modules.tokens.sdk import TokensSdk
from smartchain.types.tx import Transaction

__all__ = ["ApiError", "Client", "NodeUnreachable", "SimulationFailed", "deployed_address",
           "posted_job_id"]


class SimulationFailed(ApiError):
    """A transaction sent with automatic gas failed its simulation, so it was not sent:
    ``simulation`` is what ``POST /v1/txs/simulate`` said (``code_name``, ``log``)."""

    def __init__(self, simulation: dict[str, Any]) -> None:
        super().__init__(422, simulation["code_name"],
                         f"transaction not sent: its simulation failed: {simulation['log']}")
        self.simulation = simulation


class NodeUnreachable(ApiError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, "unreachable", f"cannot reach node at {url}: {reason}")


@dataclass
class Client(TokensSdk, ContractsSdk, ComputeSdk, StorageSdk, PocaSdk, DevicesSdk, MarketSdk,
             GovSdk, RewardsSdk):
    """The SDK: the core calls here, each module's methods from its ``sdk.py`` mixin."""

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

    def genesis(self) -> dict[str, Any]:
        """The chain's genesis document, as its genesis.json holds it."""
        return self._request("GET", "/v1/genesis")

    def account(self, address: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/accounts/{address}")

    def balance(self, address: str) -> int:
        return int(self.account(address)["balance"])

    def block(self, height: int | str = "latest") -> dict[str, Any]:
        return self._request("GET", f"/v1/blocks/{height}")

    def signers(self, height: int) -> dict[str, Any]:
        """The signer set of ``height``: ``{"height", "start_height", "total_power",
        "validators": [{"pubkey", "power", "name"}]}`` in commit-index order."""
        return self._request("GET", f"/v1/blocks/{height}/signers")

    def tx(self, tx_hash: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/txs/{tx_hash}")

    def account_txs(self, address: str, *, limit: int = 20,
                    cursor: str | None = None) -> dict[str, Any]:
        """A page of the transactions an account took part in, newest first: ``txs`` and,
        unless it is the last page, ``next_cursor`` to pass back for the next one."""
        query = urllib.parse.urlencode({"limit": limit, **({"cursor": cursor} if cursor else {})})
        return self._request("GET", f"/v1/accounts/{address}/txs?{query}")

    def events(self, kind: str, *, attr: str | None = None, value: str | None = None,
               limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        """A page of the events of ``kind`` (whose ``attr`` is ``value``), newest first."""
        params: dict[str, Any] = {"kind": kind, "limit": limit}
        if attr is not None:
            params["where"] = f"{attr}:{value or ''}"
        if cursor:
            params["cursor"] = cursor
        return self._request("GET", f"/v1/events?{urllib.parse.urlencode(params)}")

    def subscribe(self, what: str = "blocks", *, account: str | None = None,
                  kind: str | None = None, where: dict[str, str] | None = None,
                  from_height: int | None = None, reconnect: bool = True
                  ) -> AsyncIterator[dict[str, Any]]:
        """Blocks, an account's transactions (``what="txs"``, ``account``) or events
        (``what="events"``, ``kind``, ``where``) as the node commits them, as an async
        iterator (``async for msg in client.subscribe(...)``); from ``from_height`` when
        given. It reconnects by itself and resumes without gaps or repeats."""
        from smartchain.subscribe import request_for, subscription  # aiohttp: async users only
        return subscription(self.url, request_for(what, account, kind, where), from_height,
                            reconnect=reconnect, timeout=self.timeout)

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

    def build_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *, gas_limit: int,
                 nonce: int | None = None, gas_price: int | None = None,
                 chain_id: str | None = None) -> Transaction:
        """A signed transaction of any kind; nonce, chain id and gas price are fetched when
        not given (the nonce is the account's next one, counting its pending transactions)."""
        if chain_id is None or gas_price is None:
            st = self.status()
            chain_id = chain_id or st["chain_id"]
            gas_price = gas_price if gas_price is not None else st["min_gas_price"]
        if nonce is None:
            nonce = self.account(to_bech32(key.address))["pending_nonce"]
        raw = payload if isinstance(payload, bytes) else payload.encode()
        return Transaction.create(key, chain_id=chain_id, nonce=nonce, kind=kind, payload=raw,
                                  gas_limit=gas_limit, gas_price=gas_price)

    def simulate(self, sender: PrivateKey | bytes, kind: str, payload: Struct | bytes, *,
                 gas_limit: int | None = None, nonce: int | None = None,
                 gas_price: int | None = None, chain_id: str | None = None) -> dict[str, Any]:
        """What the transaction would do in the next block (``POST /v1/txs/simulate``), sent
        unsigned: ``sender`` is a key or a public key. Without ``nonce`` the state's next
        one is used; without ``gas_limit`` the most the sender can pay for. Returns the
        receipt it would get (``ok``, ``code_name``, ``log``, ``gas_used``, ``events``) and
        ``gas_wanted``, the limit to send it with. ``ApiError`` if it would be refused."""
        if chain_id is None or gas_price is None:
            st = self.status()
            chain_id = chain_id or st["chain_id"]
            gas_price = gas_price if gas_price is not None else st["min_gas_price"]
        public_key = sender.public_key if isinstance(sender, PrivateKey) else sender
        raw = payload if isinstance(payload, bytes) else payload.encode()
        tx = Transaction(chain_id, public_key, nonce or 0, gas_limit or 0, gas_price, kind, raw,
                         bytes(64))
        return self.simulate_raw(tx.encode(), next_nonce=nonce is None,
                                 max_gas=gas_limit is None)

    def simulate_raw(self, raw: bytes, *, next_nonce: bool = False,
                     max_gas: bool = False) -> dict[str, Any]:
        """Simulate an encoded transaction, signed or not (64 zero bytes of signature)."""
        body: dict[str, Any] = {"tx": raw.hex()}
        if next_nonce:
            body["nonce"] = "next"
        if max_gas:
            body["gas_limit"] = "max"
        return self._request("POST", "/v1/txs/simulate", body)

    def send_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *,
                gas_limit: int | None = None, wait: bool = True, dry_run: bool = False,
                nonce: int | None = None, gas_price: int | None = None,
                chain_id: str | None = None) -> dict[str, Any]:
        """Sign, submit and (by default) wait: returns the committed transaction with its
        receipt, whose ``ok`` says whether it succeeded (a failed one still paid its fee).

        ``gas_limit=None`` (automatic): the transaction is simulated first and sent with
        the simulation's ``gas_wanted``; one that would fail raises ``SimulationFailed``
        instead of being sent. ``dry_run``: only the simulation (``status`` "simulated")
        is returned, ``ok`` or not, and nothing is sent."""
        if gas_limit is None or dry_run:
            if chain_id is None or gas_price is None:
                st = self.status()
                chain_id = chain_id or st["chain_id"]
                gas_price = gas_price if gas_price is not None else st["min_gas_price"]
            sim = self.simulate(key, kind, payload, gas_limit=gas_limit, gas_price=gas_price,
                                chain_id=chain_id)
            if dry_run:
                return {**sim, "status": "simulated"}
            if not sim["ok"]:
                raise SimulationFailed(sim)
            gas_limit = int(sim["gas_wanted"])
        tx = self.build_tx(key, kind, payload, gas_limit=gas_limit, nonce=nonce,
                           gas_price=gas_price, chain_id=chain_id)
        tx_hash = self.submit(tx.encode())
        if not wait:
            return {"hash": tx_hash, "status": "pending"}
        return self.wait_tx(tx_hash)

    def build_transfer(self, key: PrivateKey, to: str, amount: int, *, nonce: int | None = None,
                       gas_price: int | None = None, gas_limit: int | None = None,
                       chain_id: str | None = None) -> Transaction:
        """A signed transfer; nonce, chain id and gas price are fetched when not given, and
        the gas limit is what a simulation wants."""
        if gas_limit is None:
            sim = self.simulate(key, "bank/transfer", Transfer(from_bech32(to), amount),
                                gas_price=gas_price, chain_id=chain_id)
            if not sim["ok"]:
                raise SimulationFailed(sim)
            gas_limit = int(sim["gas_wanted"])
        return self.build_tx(key, "bank/transfer", Transfer(from_bech32(to), amount),
                             gas_limit=gas_limit, nonce=nonce, gas_price=gas_price,
                             chain_id=chain_id)

    def transfer(self, key: PrivateKey, to: str, amount: int, *, wait: bool = True,
                 gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "bank/transfer", Transfer(from_bech32(to), amount),
                            gas_limit=gas_limit, wait=wait, **kwargs)
