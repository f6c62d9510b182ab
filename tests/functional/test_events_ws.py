"""GET /v1/subscribe against real node processes: blocks, an account's transactions and events
pushed as they commit, history from a height, resumption without gaps (by hand and by the
SDK's ``Client.subscribe`` across a node restart), bad requests and the subscriber cap."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import requests
from framework.harness import NodeProcess

from smartchain.api.events import CLOSE_BAD_REQUEST
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey

HPC = 10**8


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_events_ws/" + tag.encode()))


ALICE = _key("alice")  # issues GOLD and sends it
BOB = _key("bob")  # receives GOLD
CAROL = _key("carol")  # receives GOLD too: her transfers must not reach BOB's subscribers
DAVE = _key("dave")  # receives HPC
SMART_NODE_GENESIS = [(ALICE.address, 1_000 * HPC), (BOB.address, 1_000 * HPC)]
TIMEOUT = 30.0  # a deadline for a message that must come, never a synchronisation


def ws_url(node: NodeProcess) -> str:
    return (node.url or "").replace("http://", "ws://") + "/v1/subscribe"


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    frame = await ws.receive(timeout=TIMEOUT)
    assert frame.type == aiohttp.WSMsgType.TEXT, (frame.type, frame.data, ws.close_code)
    return json.loads(frame.data)


async def subscribed(session: aiohttp.ClientSession, node: NodeProcess,
                     request: dict[str, Any]) -> tuple[aiohttp.ClientWebSocketResponse, int]:
    """A websocket with ``request`` accepted; and the height the node had then."""
    ws = await session.ws_connect(ws_url(node))
    await ws.send_json(request)
    ack = await recv(ws)
    assert ack["type"] == "subscribed", ack
    return ws, int(ack["height"])


def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """A blocking SDK call from inside the event loop."""
    return asyncio.to_thread(fn, *args)


def test_a_blocks_subscriber_receives_every_new_block_in_order(smart_node: NodeProcess) -> None:
    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            ws, height = await subscribed(session, smart_node, {"subscribe": "blocks"})
            got = [await recv(ws) for _ in range(3)]
            await ws.close()
            assert [int(b["height"]) for b in got] == [height + 1, height + 2, height + 3]
            return got

    blocks = asyncio.run(run())
    assert all(b["type"] == "block" and len(b["hash"]) == 64 for b in blocks)
    # what was pushed is what the JSON API serves for that height
    doc = smart_node.client.block(int(blocks[0]["height"]))
    assert doc["hash"] == blocks[0]["hash"]
    assert blocks[0]["transactions"] == doc["transactions"]


def test_a_token_transfer_s_event_arrives_with_its_block_and_transaction(
        smart_node: NodeProcess) -> None:
    client = smart_node.client
    client.issue_token(ALICE, "GOLD", "Gold", 2, 1_000_000)

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            ws, _ = await subscribed(session, smart_node, {
                "subscribe": "events", "kind": "token_transfer",
                "where": {"to": to_bech32(BOB.address)}})
            await in_thread(client.token_transfer, ALICE, "GOLD", to_bech32(CAROL.address), 5)
            sent = await in_thread(client.token_transfer, ALICE, "GOLD",
                                   to_bech32(BOB.address), 7)
            event = await recv(ws)
            await ws.close()
            return sent, event

    sent, event = asyncio.run(run())
    assert event["type"] == "event" and event["kind"] == "token_transfer"
    assert event["attributes"]["to"] == to_bech32(BOB.address)  # CAROL's came first, unsent
    assert event["attributes"]["amount"] == "7"
    assert event["tx_hash"] == sent["hash"]
    assert int(event["height"]) == sent["height"]
    listed = client.events("token_transfer", attr="to", value=to_bech32(BOB.address))
    assert listed["events"][0]["tx_hash"] == sent["hash"]


def test_an_account_subscriber_receives_the_transfers_it_takes_part_in(
        smart_node: NodeProcess) -> None:
    client = smart_node.client

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            ws, _ = await subscribed(session, smart_node, {
                "subscribe": "txs", "account": to_bech32(DAVE.address)})
            sent = await in_thread(client.transfer, ALICE, to_bech32(DAVE.address), 3 * HPC)
            tx = await recv(ws)
            await ws.close()
            return sent, tx

    sent, tx = asyncio.run(run())
    assert tx["type"] == "tx" and tx["hash"] == sent["hash"]
    assert tx["kind"] == "bank/transfer" and tx["ok"] is True
    assert tx["payload"]["to"] == to_bech32(DAVE.address)
    page = client.account_txs(to_bech32(DAVE.address))
    assert [t["hash"] for t in page["txs"]] == [sent["hash"]]


def test_a_reconnecting_client_resumes_from_a_height_without_gaps(
        smart_node: NodeProcess) -> None:
    async def run() -> tuple[list[int], list[int], int]:
        async with aiohttp.ClientSession() as session:
            ws, _ = await subscribed(session, smart_node, {"subscribe": "blocks"})
            first = [int((await recv(ws))["height"]) for _ in range(2)]
            await ws.close()
            # blocks keep committing while the client is away
            await in_thread(smart_node.wait_for_height, first[-1] + 3)
            ws, live = await subscribed(session, smart_node, {
                "subscribe": "blocks", "from_height": first[-1] + 1})
            # history up to the live height, then live blocks, one message each
            resumed = [int((await recv(ws))["height"]) for _ in range(live - first[-1] + 2)]
            await ws.close()
            return first, resumed, live

    first, resumed, live = asyncio.run(run())
    assert live >= first[-1] + 3
    assert resumed == list(range(first[-1] + 1, live + 3))


def test_events_from_a_past_height_are_replayed_in_chain_order(
        smart_node: NodeProcess) -> None:
    client = smart_node.client
    start = int(client.status()["height"]) + 1
    client.issue_token(ALICE, "SILVER", "Silver", 0, 1_000)
    sent = [client.token_transfer(ALICE, "SILVER", to_bech32(BOB.address), n)["hash"]
            for n in (1, 2, 3)]

    async def run() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as session:
            ws, _ = await subscribed(session, smart_node, {
                "subscribe": "events", "kind": "token_transfer",
                "where": {"symbol": "SILVER"}, "from_height": start})
            got = [await recv(ws) for _ in range(3)]
            await ws.close()
            return got

    got = asyncio.run(run())
    assert [e["tx_hash"] for e in got] == sent
    assert [e["attributes"]["amount"] for e in got] == ["1", "2", "3"]


BAD_REQUESTS = [
    "not json",
    json.dumps([]),
    json.dumps({"subscribe": "everything"}),
    json.dumps({"subscribe": "txs"}),
    json.dumps({"subscribe": "txs", "account": "smart1nope"}),
    json.dumps({"subscribe": "events"}),
    json.dumps({"subscribe": "events", "kind": "token_transfer", "where": {"to": 5}}),
    json.dumps({"subscribe": "blocks", "from_height": 0}),
    json.dumps({"subscribe": "blocks", "from_height": "1"}),
    json.dumps({"subscribe": "blocks", "account": "x"}),
]


@pytest.mark.parametrize("request_text", BAD_REQUESTS)
def test_a_bad_subscription_request_gets_an_error_and_a_close_code(
        smart_node: NodeProcess, request_text: str) -> None:
    async def run() -> tuple[dict[str, Any], int | None]:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(ws_url(smart_node))
            await ws.send_str(request_text)
            err = await recv(ws)
            closing = await ws.receive(timeout=TIMEOUT)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            return err, ws.close_code

    err, code = asyncio.run(run())
    assert err["type"] == "error" and err["error"]["code"] == "malformed", err
    assert code == CLOSE_BAD_REQUEST


def test_a_plain_get_of_the_subscribe_route_is_a_json_error(smart_node: NodeProcess) -> None:
    r = requests.get(f"{smart_node.url}/v1/subscribe", timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "websocket_required"


def test_subscribers_beyond_the_configured_cap_are_refused(
        smart_node_factory: Callable[..., NodeProcess]) -> None:
    node = smart_node_factory(start=False)
    node.config.api.max_subscribers = 2
    node.config.save(node.home)
    node.start()

    async def run() -> aiohttp.WSServerHandshakeError:
        async with aiohttp.ClientSession() as session:
            held = [await subscribed(session, node, {"subscribe": "blocks"}) for _ in range(2)]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(ws_url(node))
            for ws, _ in held:
                await ws.close()
            # a slot freed is a slot to take
            ws, _ = await subscribed(session, node, {"subscribe": "blocks"})
            await ws.close()
            return refused.value

    assert asyncio.run(run()).status == 503
    node.stop()


def test_client_subscribe_resumes_without_gaps_across_a_node_restart(
        smart_node_factory: Callable[..., NodeProcess]) -> None:
    node = smart_node_factory(accounts=[(ALICE.address, 1_000 * HPC)])
    port = int((node.url or "").rsplit(":", 1)[1])  # the same URL after the restart
    node.stop()
    node.config.api.port = port
    node.config.save(node.home)
    node.start()
    client = node.client

    async def run() -> tuple[list[int], int]:
        heights: list[int] = []
        restarted_at = 0
        async for block in client.subscribe("blocks", from_height=1):
            heights.append(int(block["height"]))
            if len(heights) == 3:
                await in_thread(node.restart)
                restarted_at = int((await in_thread(node.client.status))["height"])
            if heights[-1] >= restarted_at + 2 and restarted_at:
                break
        return heights, restarted_at

    heights, restarted_at = asyncio.run(run())
    assert heights == list(range(1, len(heights) + 1))  # from 1, no gap, no repeat
    assert heights[-1] >= restarted_at + 2
    node.stop()
