"""The websocket subscriptions' own rules (smartchain/api/events.py): what a request may say,
and that a subscriber falling behind is cut off rather than ever holding up the node."""

from __future__ import annotations

import asyncio

import pytest

from smartchain.api.events import Filter, Subscriber, parse_request
from smartchain.crypto.address import to_bech32


def test_a_subscriber_whose_queue_is_full_is_dropped_and_gets_nothing_more() -> None:
    async def run() -> Subscriber:
        sub = Subscriber(Filter("blocks"), asyncio.Queue(2))
        sub.offer(["1", "2"])
        assert not sub.too_slow.is_set()
        sub.offer(["3"])  # one more than it has room for: never waited for
        sub.offer(["4"])
        return sub

    sub = asyncio.run(run())
    assert sub.too_slow.is_set()
    assert [sub.queue.get_nowait() for _ in range(sub.queue.qsize())] == ["1", "2"]


def test_an_event_filter_matches_an_address_given_in_hex_or_bech32_alike() -> None:
    address = bytes(range(20))
    by_hex, _ = parse_request({"subscribe": "events", "kind": "token_transfer",
                               "where": {"to": address.hex()}})
    by_bech32, start = parse_request({"subscribe": "events", "kind": "token_transfer",
                                      "where": {"to": to_bech32(address)}, "from_height": 7})
    assert by_hex == by_bech32 and start == 7


@pytest.mark.parametrize("doc", [
    {"subscribe": "blocks", "from_height": True},
    {"subscribe": "blocks", "from_height": 1 << 64},
    {"subscribe": "events", "kind": "x", "where": {str(i): "v" for i in range(9)}},
    {"subscribe": "events", "kind": "x" * 129},
    {"subscribe": "txs", "account": "smart1" + "q" * 38},
])
def test_requests_out_of_bounds_are_refused(doc: dict) -> None:
    with pytest.raises(ValueError):
        parse_request(doc)
