"""The SDK's transport against a real HTTP server (aiohttp, on loopback) that answers from a
script: what is resent after which failure, how often, what error a caller gets, and that
the async client keeps one connection alive. Both clients run the same flows
(``smartchain.sdkcore``), so the sync client is checked on the same server."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from typing import Any

import pytest
from aiohttp import web

from smartchain.aio import AsyncClient
from smartchain.client import Client
from smartchain.crypto.hashing import h256
from smartchain.modules.sdk import ApiError
from smartchain.sdkcore import NodeUnreachable, Retry

FAST = Retry(retries=3, base=0.01, cap=0.02)  # the policy, with delays too short to wait on
STATUS = {"chain_id": "smart-test-1", "height": "7", "latest_hash": "ab" * 32,
          "latest_time_ms": "1796199613040", "min_gas_price": "1", "max_tx_gas": "50000000",
          "block_time_ms": "200", "version": "0.1.0", "synced": True, "mempool_size": 0}
Answer = tuple[int, Any]


def error(status: int, code: str, message: str = "refused", **details: Any) -> Answer:
    return status, {"error": {"code": code, "message": message, "details": details}}


class ScriptedNode:
    """An HTTP server on its own thread answering each path from a script: a list of
    (status, body) consumed one per request, the last one repeated. A body that is not a
    dict or list is sent as plain text. Every request is recorded."""

    def __init__(self, script: dict[str, list[Answer]]) -> None:
        self.script = {path: list(answers) for path, answers in script.items()}
        self.requests: list[tuple[str, str, bytes, int]] = []  # method, path, body, port
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.url = ""

    def count(self, path: str) -> int:
        return sum(1 for _, p, _, _ in self.requests if p == path)

    async def _answer(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append((request.method, request.path_qs, await request.read(),
                              peer[1] if peer else 0))
        answers = self.script.get(request.path, [(404, {"error": {
            "code": "not_found", "message": "no such route", "details": {}}})])
        status, body = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(body, dict | list):
            return web.json_response(body, status=status)
        return web.Response(status=status, text=str(body))

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> ScriptedNode:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the policy -----------------------------------------------------------------------------


def test_backoff_doubles_from_its_base_up_to_its_cap_and_stops_after_its_retries() -> None:
    assert list(Retry(retries=6, base=0.1, cap=0.5).delays()) == [0.1, 0.2, 0.4, 0.5, 0.5, 0.5]
    assert list(Retry(retries=0).delays()) == []


# --- what is resent -------------------------------------------------------------------------


def test_a_read_answered_503_is_resent_until_it_succeeds() -> None:
    with ScriptedNode({"/v1/status": [error(503, "not_synced"), error(503, "not_synced"),
                                      (200, STATUS)]}) as node:
        async def main() -> dict[str, Any]:
            async with AsyncClient(node.url, retry=FAST) as client:
                return await client.status()

        assert run(main())["height"] == "7"
        assert node.count("/v1/status") == 3


def test_resends_are_bounded_and_the_last_error_is_raised() -> None:
    with ScriptedNode({"/v1/status": [error(429, "busy", "too many queries")]}) as node:
        async def main() -> None:
            async with AsyncClient(node.url, retry=FAST) as client:
                await client.status()

        with pytest.raises(ApiError) as exc:
            run(main())
        assert (exc.value.status, exc.value.code) == (429, "busy")
        assert node.count("/v1/status") == 1 + FAST.retries


def test_a_refusal_is_not_resent_and_carries_the_contract_error() -> None:
    answer = error(400, "invalid_address", "not a bech32 address", field="address")
    with ScriptedNode({"/v1/accounts/nope": [answer]}) as node:
        async def main() -> None:
            async with AsyncClient(node.url, retry=FAST) as client:
                await client.account("nope")

        with pytest.raises(ApiError) as exc:
            run(main())
        err = exc.value
        assert (err.status, err.code, err.message) == (400, "invalid_address",
                                                      "not a bech32 address")
        assert err.details == {"field": "address"}
        assert node.count("/v1/accounts/nope") == 1


def test_a_batch_submission_is_not_resent() -> None:
    with ScriptedNode({"/v1/txs/batch": [error(503, "busy")]}) as node:
        async def main() -> None:
            async with AsyncClient(node.url, retry=FAST) as client:
                await client.submit_batch([b"\x01", b"\x02"])

        with pytest.raises(ApiError, match="busy"):
            run(main())
        assert node.count("/v1/txs/batch") == 1


@pytest.mark.parametrize("refusal", ["duplicate", "nonce_reused"])
def test_a_resent_transaction_refused_as_already_known_counts_as_submitted(refusal: str
                                                                           ) -> None:
    raw = b"a signed transaction"
    tx_hash = h256(raw).hex()
    with ScriptedNode({"/v1/txs": [error(503, "mempool_full"), error(400, refusal)],
                       f"/v1/txs/{tx_hash}": [(200, {"hash": tx_hash,
                                                     "status": "committed"})]}) as node:
        async def main() -> str:
            async with AsyncClient(node.url, retry=FAST) as client:
                return await client.submit(raw)

        assert run(main()) == tx_hash
        bodies = [json.loads(body) for _, path, body, _ in node.requests if path == "/v1/txs"]
        assert bodies == [{"tx": raw.hex()}] * 2  # the same signed bytes: one transaction


def test_a_resent_transaction_whose_nonce_another_took_is_refused() -> None:
    with ScriptedNode({"/v1/txs": [error(503, "mempool_full"),
                                   error(400, "nonce_reused", "nonce 4 already used")]}
                      ) as node:  # the node does not know this hash: another tx used 4
        async def main() -> str:
            async with AsyncClient(node.url, retry=FAST) as client:
                return await client.submit(b"tx")

        with pytest.raises(ApiError) as exc:
            run(main())
        assert (exc.value.code, exc.value.message) == ("nonce_reused", "nonce 4 already used")


def test_a_first_submission_answered_duplicate_is_an_error() -> None:
    with ScriptedNode({"/v1/txs": [error(400, "duplicate", "already known")]}) as node:
        async def main() -> str:
            async with AsyncClient(node.url, retry=FAST) as client:
                return await client.submit(b"tx")

        with pytest.raises(ApiError) as exc:
            run(main())
        assert exc.value.code == "duplicate"


def test_an_error_without_a_json_document_is_an_http_error() -> None:
    with ScriptedNode({"/v1/status": [(502, "Bad Gateway from a proxy")]}) as node:
        async def main() -> None:
            async with AsyncClient(node.url, retry=Retry(retries=0)) as client:
                await client.status()

        with pytest.raises(ApiError) as exc:
            run(main())
        assert (exc.value.status, exc.value.code) == (502, "http_error")


def test_a_success_that_is_not_json_is_an_http_error() -> None:
    with ScriptedNode({"/v1/status": [(200, "<html>a captive portal</html>")]}) as node:
        with pytest.raises(ApiError) as exc:
            Client(node.url).status()
        assert (exc.value.status, exc.value.code) == (200, "http_error")


def test_an_unreachable_node_raises_node_unreachable_after_the_resends() -> None:
    async def main() -> None:
        async with AsyncClient(f"http://127.0.0.1:{closed_port()}", retry=FAST) as client:
            await client.status()

    with pytest.raises(NodeUnreachable) as exc:
        run(main())
    assert (exc.value.status, exc.value.code) == (0, "unreachable")


# --- the session ----------------------------------------------------------------------------


def test_calls_reuse_one_kept_alive_connection() -> None:
    with ScriptedNode({"/v1/status": [(200, STATUS)]}) as node:
        async def main() -> None:
            async with AsyncClient(node.url) as client:
                for _ in range(5):
                    await client.status()

        run(main())
        ports = {port for _, _, _, port in node.requests}
        assert len(node.requests) == 5 and len(ports) == 1


def test_the_context_manager_closes_the_session_it_made() -> None:
    with ScriptedNode({"/v1/status": [(200, STATUS)]}) as node:
        async def main() -> bool:
            async with AsyncClient(node.url) as client:
                session = client.session()
                await client.status()
            return session.closed

        assert run(main())


def test_typed_reads_parse_the_answer_the_same_way_in_both_clients() -> None:
    with ScriptedNode({"/v1/status": [(200, STATUS)]}) as node:
        async def main() -> Any:
            async with AsyncClient(node.url) as client:
                return await client.typed.status()

        typed = run(main())
        assert typed == Client(node.url).typed.status()
        assert (typed.height, typed.min_gas_price, typed.max_tx_gas) == (7, 1, 50_000_000)


# --- the sync client: the same flows and policy ------------------------------------------------


def test_the_sync_client_resends_with_the_same_policy_when_given_one() -> None:
    with ScriptedNode({"/v1/status": [error(503, "not_synced"), (200, STATUS)]}) as node:
        assert Client(node.url, retry=FAST).status()["height"] == "7"
        assert node.count("/v1/status") == 2


def test_the_sync_client_does_not_resend_by_default() -> None:
    with ScriptedNode({"/v1/status": [error(503, "not_synced"), (200, STATUS)]}) as node:
        with pytest.raises(ApiError, match="not_synced"):
            Client(node.url).status()
        assert node.count("/v1/status") == 1
