"""Python SDK over the node's HTTP API, synchronous (standard library only, so it embeds
anywhere). Its operations are the flows of ``smartchain.sdkcore``, which ``smartchain.aio``'s
``AsyncClient`` runs too; this module only moves their requests over urllib."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from smartchain import sdkcore as core
from smartchain.codec import Struct
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.compute.sdk import ComputeSdk, posted_job_id
from smartchain.modules.contracts.sdk import ContractsSdk, deployed_address
from smartchain.modules.data.sdk import DataSdk
from smartchain.modules.devices.sdk import DevicesSdk
from smartchain.modules.gov.sdk import GovSdk
from smartchain.modules.market.sdk import MarketSdk
from smartchain.modules.poca.sdk import PocaSdk
from smartchain.modules.rewards.sdk import RewardsSdk
from smartchain.modules.sdk import ApiError
from smartchain.modules.storage.sdk import StorageSdk
from smartchain.modules.tokens.sdk import TokensSdk
from smartchain.sdkcore import NO_RETRY, Call, Flow, NodeUnreachable, Retry, SimulationFailed
from smartchain.types.tx import Transaction

if TYPE_CHECKING:
    from smartchain.sdkfiles import ComputeJobs, StorageFiles
    from smartchain.typed import TypedReads

__all__ = ["ApiError", "Client", "NodeUnreachable", "Retry", "SimulationFailed",
           "deployed_address", "posted_job_id"]

T = TypeVar("T")


@dataclass
class Client(TokensSdk, ContractsSdk, ComputeSdk, StorageSdk, PocaSdk, DevicesSdk, MarketSdk,
             GovSdk, RewardsSdk, DataSdk):
    """The SDK: the core calls here, each module's methods from its ``sdk.py`` mixin."""

    url: str = "http://127.0.0.1:26657"
    timeout: float = 10.0
    retry: Retry = field(default=NO_RETRY)  # resends of idempotent calls (sdkcore.Retry)

    def _http(self, call: Call) -> Any:
        """One attempt at ``call`` (urllib: no keep-alive, one connection per request)."""
        req = urllib.request.Request(self.url.rstrip("/") + call.path,
                                     data=call.encoded_body(), method=call.method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, body, reason = resp.status, resp.read(), ""
        except urllib.error.HTTPError as exc:
            status, body, reason = exc.code, exc.read(), str(exc.reason)
        except (urllib.error.URLError, OSError) as exc:
            raise NodeUnreachable(self.url, str(getattr(exc, "reason", exc))) from None
        return core.decode_answer(status, body, reason)

    def _send(self, call: Call) -> Any:
        return core.run_sync(core.retrying(call, self.retry), self._http)

    def _run(self, flow: Flow[T]) -> T:
        return core.run_sync(flow, self._send)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        return self._run(core.request(method, path, body))

    # --- reads ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self._run(core.status())

    def genesis(self) -> dict[str, Any]:
        """The chain's genesis document, as its genesis.json holds it."""
        return self._run(core.genesis())

    def account(self, address: str) -> dict[str, Any]:
        return self._run(core.account(address))

    def balance(self, address: str) -> int:
        return self._run(core.balance(address))

    def block(self, height: int | str = "latest") -> dict[str, Any]:
        return self._run(core.block(height))

    def signers(self, height: int) -> dict[str, Any]:
        """The signer set of ``height``: ``{"height", "start_height", "total_power",
        "validators": [{"pubkey", "power", "name"}]}`` in commit-index order."""
        return self._run(core.signers(height))

    def tx(self, tx_hash: str) -> dict[str, Any]:
        return self._run(core.tx(tx_hash))

    def account_txs(self, address: str, *, limit: int = 20,
                    cursor: str | None = None) -> dict[str, Any]:
        """A page of the transactions an account took part in, newest first: ``txs`` and,
        unless it is the last page, ``next_cursor`` to pass back for the next one."""
        return self._run(core.account_txs(address, limit, cursor))

    def events(self, kind: str, *, attr: str | None = None, value: str | None = None,
               limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        """A page of the events of ``kind`` (whose ``attr`` is ``value``), newest first."""
        return self._run(core.events(kind, attr, value, limit, cursor))

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
        return self._run(core.submit(raw))

    def submit_batch(self, raws: list[bytes]) -> list[dict[str, Any]]:
        return self._run(core.submit_batch(raws))

    def wait_tx(self, tx_hash: str, timeout: float = 30.0, poll: float = 0.1) -> dict[str, Any]:
        """Poll until the transaction is committed; returns it with its receipt."""
        return self._run(core.wait_tx(tx_hash, timeout, poll))

    def build_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *, gas_limit: int,
                 nonce: int | None = None, gas_price: int | None = None,
                 chain_id: str | None = None) -> Transaction:
        """A signed transaction of any kind; nonce, chain id and gas price are fetched when
        not given (the nonce is the account's next one, counting its pending transactions)."""
        return self._run(core.build_tx(key, kind, payload, gas_limit=gas_limit, nonce=nonce,
                                       gas_price=gas_price, chain_id=chain_id))

    def simulate(self, sender: PrivateKey | bytes, kind: str, payload: Struct | bytes, *,
                 gas_limit: int | None = None, nonce: int | None = None,
                 gas_price: int | None = None, chain_id: str | None = None) -> dict[str, Any]:
        """What the transaction would do in the next block (``POST /v1/txs/simulate``), sent
        unsigned: ``sender`` is a key or a public key. Without ``nonce`` the state's next
        one is used; without ``gas_limit`` the most the sender can pay for. Returns the
        receipt it would get (``ok``, ``code_name``, ``log``, ``gas_used``, ``events``) and
        ``gas_wanted``, the limit to send it with. ``ApiError`` if it would be refused."""
        return self._run(core.simulate(sender, kind, payload, gas_limit=gas_limit, nonce=nonce,
                                       gas_price=gas_price, chain_id=chain_id))

    def simulate_raw(self, raw: bytes, *, next_nonce: bool = False,
                     max_gas: bool = False) -> dict[str, Any]:
        """Simulate an encoded transaction, signed or not (64 zero bytes of signature)."""
        return self._run(core.simulate_raw(raw, next_nonce=next_nonce, max_gas=max_gas))

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
        return self._run(core.send_tx(key, kind, payload, gas_limit=gas_limit, wait=wait,
                                      dry_run=dry_run, nonce=nonce, gas_price=gas_price,
                                      chain_id=chain_id))

    def build_transfer(self, key: PrivateKey, to: str, amount: int, *, nonce: int | None = None,
                       gas_price: int | None = None, gas_limit: int | None = None,
                       chain_id: str | None = None) -> Transaction:
        """A signed transfer; nonce, chain id and gas price are fetched when not given, and
        the gas limit is what a simulation wants."""
        return self._run(core.build_transfer(key, to, amount, nonce=nonce, gas_price=gas_price,
                                             gas_limit=gas_limit, chain_id=chain_id))

    def transfer(self, key: PrivateKey, to: str, amount: int, *, wait: bool = True,
                 gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self._run(core.transfer(key, to, amount, wait=wait, gas_limit=gas_limit,
                                       **kwargs))

    # --- typed documents, files, jobs ----------------------------------------------------

    @cached_property
    def typed(self) -> TypedReads:
        """The main documents parsed into dataclasses (``smartchain.typed``)."""
        from smartchain.typed import TypedReads
        return TypedReads(self._run)

    @cached_property
    def storage(self) -> StorageFiles:
        """Files on the storage network: put, get, share (``smartchain.sdkfiles``)."""
        from smartchain.sdkfiles import StorageFiles
        return StorageFiles(self)

    @cached_property
    def compute(self) -> ComputeJobs:
        """Compute jobs from job specs (``smartchain.sdkfiles``)."""
        from smartchain.sdkfiles import ComputeJobs
        return ComputeJobs(self)
