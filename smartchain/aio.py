"""The async SDK: ``AsyncClient``, the node's HTTP API over aiohttp.

It runs the same flows as the synchronous ``Client`` (``smartchain.sdkcore``: request
building, answer parsing, gas simulation, signing, waiting), over one keep-alive
``aiohttp.ClientSession``. Idempotent calls (every GET, simulations, and a transaction's
submission, which is idempotent by hash) are resent after a transient failure with bounded
exponential backoff (``Retry``); a refusal is never resent. Errors are the sync client's:
``ApiError`` with the contract's ``code``, ``message`` and ``details``, ``NodeUnreachable``
when the node does not answer, ``SimulationFailed`` for a transaction that would fail::

    async with AsyncClient("http://127.0.0.1:26657") as node:
        st = await node.typed.status()
        sent = await node.transfer(key, "smart1...", 150_000_000)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import aiohttp

from smartchain import sdkcore as core
from smartchain.codec import Struct
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.sdk import ApiError
from smartchain.sdkcore import Call, Flow, NodeUnreachable, Pause, Retry, SimulationFailed
from smartchain.typed import AsyncTypedReads
from smartchain.types.tx import Transaction

if TYPE_CHECKING:
    from smartchain.sdkfiles import AsyncComputeJobs, AsyncStorageFiles

__all__ = ["ApiError", "AsyncClient", "NodeUnreachable", "Retry", "SimulationFailed",
           "run_async"]

T = TypeVar("T")


async def run_async(flow: Flow[T], send: Callable[[Call], Any]) -> T:
    """Drive ``flow`` on the event loop: ``send`` is a coroutine function that returns the
    decoded answer or raises ``ApiError``; a ``Pause`` is an ``asyncio.sleep``."""
    answer: Any = None
    error: ApiError | None = None
    while True:
        try:
            step = flow.send(answer) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        answer, error = None, None
        try:
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            else:
                answer = await send(step)
        except ApiError as exc:
            error = exc


class AsyncClient:
    """The SDK for asyncio programs. Use it as an async context manager (or ``await
    close()``): its session's connections are kept alive between calls.

    ``retry``: how idempotent calls are resent (``Retry(retries=0)`` never resends).
    ``session``: an aiohttp session of your own (not closed by ``close``)."""

    def __init__(self, url: str = "http://127.0.0.1:26657", *, timeout: float = 10.0,
                 retry: Retry | None = None,
                 session: aiohttp.ClientSession | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retry = retry if retry is not None else Retry()
        self._session = session
        self._own_session = session is None
        self.typed = AsyncTypedReads(self._run)

    async def __aenter__(self) -> Self:
        self.session()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def session(self) -> aiohttp.ClientSession:
        """The keep-alive session every call goes through (made on first use)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Content-Type": "application/json"})
            self._own_session = True
        return self._session

    # --- transport ---------------------------------------------------------------------

    async def _http(self, call: Call) -> Any:
        """One attempt at ``call``."""
        try:
            async with self.session().request(call.method, self.url + call.path,
                                              data=call.encoded_body()) as resp:
                status, body, reason = resp.status, await resp.read(), resp.reason or ""
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise NodeUnreachable(self.url, str(exc) or type(exc).__name__) from None
        return core.decode_answer(status, body, reason)

    async def _send(self, call: Call) -> Any:
        return await run_async(core.retrying(call, self.retry), self._http)

    async def _run(self, flow: Flow[T]) -> T:
        return await run_async(flow, self._send)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """Any API call (a module's route the methods here do not cover), e.g.
        ``await node.request("GET", "/v1/tokens")``; a GET is resent, a POST is not."""
        return await self._run(core.request(method, path, body))

    # --- reads -------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self._run(core.status())

    async def genesis(self) -> dict[str, Any]:
        return await self._run(core.genesis())

    async def account(self, address: str) -> dict[str, Any]:
        return await self._run(core.account(address))

    async def balance(self, address: str) -> int:
        return await self._run(core.balance(address))

    async def block(self, height: int | str = "latest") -> dict[str, Any]:
        return await self._run(core.block(height))

    async def signers(self, height: int) -> dict[str, Any]:
        return await self._run(core.signers(height))

    async def tx(self, tx_hash: str) -> dict[str, Any]:
        return await self._run(core.tx(tx_hash))

    async def validators(self) -> dict[str, Any]:
        return await self._run(core.validators())

    async def validator(self, address: str) -> dict[str, Any]:
        return await self._run(core.validator(address))

    async def account_txs(self, address: str, *, limit: int = 20,
                          cursor: str | None = None) -> dict[str, Any]:
        return await self._run(core.account_txs(address, limit, cursor))

    async def events(self, kind: str, *, attr: str | None = None, value: str | None = None,
                     limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
        return await self._run(core.events(kind, attr, value, limit, cursor))

    def subscribe(self, what: str = "blocks", *, account: str | None = None,
                  kind: str | None = None, where: dict[str, str] | None = None,
                  from_height: int | None = None, reconnect: bool = True
                  ) -> AsyncIterator[dict[str, Any]]:
        """``Client.subscribe``: blocks, transactions or events as the node commits them."""
        from smartchain.subscribe import request_for, subscription
        return subscription(self.url, request_for(what, account, kind, where), from_height,
                            reconnect=reconnect, timeout=self.timeout)

    # --- transactions ------------------------------------------------------------------

    async def submit(self, raw: bytes) -> str:
        return await self._run(core.submit(raw))

    async def submit_batch(self, raws: list[bytes]) -> list[dict[str, Any]]:
        return await self._run(core.submit_batch(raws))

    async def wait_tx(self, tx_hash: str, timeout: float = 30.0,
                      poll: float = 0.1) -> dict[str, Any]:
        return await self._run(core.wait_tx(tx_hash, timeout, poll))

    async def build_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *,
                       gas_limit: int, nonce: int | None = None, gas_price: int | None = None,
                       chain_id: str | None = None) -> Transaction:
        return await self._run(core.build_tx(key, kind, payload, gas_limit=gas_limit,
                                             nonce=nonce, gas_price=gas_price,
                                             chain_id=chain_id))

    async def simulate(self, sender: PrivateKey | bytes, kind: str, payload: Struct | bytes,
                       *, gas_limit: int | None = None, nonce: int | None = None,
                       gas_price: int | None = None, chain_id: str | None = None
                       ) -> dict[str, Any]:
        return await self._run(core.simulate(sender, kind, payload, gas_limit=gas_limit,
                                             nonce=nonce, gas_price=gas_price,
                                             chain_id=chain_id))

    async def simulate_raw(self, raw: bytes, *, next_nonce: bool = False,
                           max_gas: bool = False) -> dict[str, Any]:
        return await self._run(core.simulate_raw(raw, next_nonce=next_nonce, max_gas=max_gas))

    async def send_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *,
                      gas_limit: int | None = None, wait: bool = True, dry_run: bool = False,
                      nonce: int | None = None, gas_price: int | None = None,
                      chain_id: str | None = None) -> dict[str, Any]:
        """``Client.send_tx``: any module's transaction (its payload type from
        ``smartchain.modules.<name>.types``), simulated for gas, signed, sent, awaited."""
        return await self._run(core.send_tx(key, kind, payload, gas_limit=gas_limit,
                                            wait=wait, dry_run=dry_run, nonce=nonce,
                                            gas_price=gas_price, chain_id=chain_id))

    async def build_transfer(self, key: PrivateKey, to: str, amount: int, *,
                             nonce: int | None = None, gas_price: int | None = None,
                             gas_limit: int | None = None,
                             chain_id: str | None = None) -> Transaction:
        return await self._run(core.build_transfer(key, to, amount, nonce=nonce,
                                                   gas_price=gas_price, gas_limit=gas_limit,
                                                   chain_id=chain_id))

    async def transfer(self, key: PrivateKey, to: str, amount: int, *, wait: bool = True,
                       gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return await self._run(core.transfer(key, to, amount, wait=wait, gas_limit=gas_limit,
                                             **kwargs))

    # --- files and jobs ----------------------------------------------------------------

    @property
    def storage(self) -> AsyncStorageFiles:
        """Files on the storage network: put, get, share (``smartchain.sdkfiles``; its
        chain reads go through a blocking ``Client`` in threads, as the storage code
        wants)."""
        from smartchain.client import Client
        from smartchain.sdkfiles import AsyncStorageFiles
        return AsyncStorageFiles(Client(self.url, self.timeout, self.retry))

    @property
    def compute(self) -> AsyncComputeJobs:
        """Compute jobs from job specs (``smartchain.sdkfiles``)."""
        from smartchain.sdkfiles import AsyncComputeJobs
        return AsyncComputeJobs(self)
