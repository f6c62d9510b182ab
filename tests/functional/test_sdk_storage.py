"""Stored files from the SDK (``client.storage``) on a real network: one signer and three
storage provider nodes on loopback. A file put 2-of-3 from the async client comes back
byte-identical through the sync one, a share lets another account read it with its own key,
an account it was not shared with is refused, and docs/sdk.md's storage example runs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from framework.netharness import Network
from test_sdk import doc_examples
from test_storage_provider import start_storage_network

from smartchain.aio import AsyncClient
from smartchain.client import Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.storage.client import NotOwner
from smartchain.types.amount import UNITS_PER_HPC

MiB = 1024 * 1024


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_sdk_storage/" + tag.encode()))


OWNER, FRIEND, STRANGER = _key("owner"), _key("friend"), _key("stranger")
DATA = os.urandom(100_000)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    net: Network
    net, _ = start_storage_network(
        tmp_path_factory.mktemp("sdk-storage"), 1, [64 * MiB] * 3,
        accounts=[(k.address, 10_000 * UNITS_PER_HPC) for k in (OWNER, FRIEND, STRANGER)])
    try:
        yield net[0].url or ""
    finally:
        net.close()


@pytest.fixture(scope="module")
def file_id(url: str) -> str:
    async def main() -> str:
        async with AsyncClient(url) as node:
            return await node.storage.put(OWNER, DATA, redundancy=(2, 3), epochs=100)

    return asyncio.run(main())


def test_a_file_put_from_the_sdk_comes_back_byte_identical(url: str, file_id: str) -> None:
    node = Client(url)
    deal = node.storage_deal(file_id)
    assert (deal["owner"], deal["k"], deal["n"], deal["size"]) == \
        (to_bech32(OWNER.address), 2, 3, str(len(DATA)))
    assert node.storage.get(OWNER, file_id) == DATA


def test_a_shared_file_is_read_with_the_recipients_own_key(url: str, file_id: str) -> None:
    node = Client(url)
    with pytest.raises(NotOwner):  # not shared yet
        node.storage.get(FRIEND, file_id)
    node.register_box_key(FRIEND)
    shared = node.storage.share(OWNER, file_id, to_bech32(FRIEND.address))
    assert shared["receipt"]["ok"]

    async def main() -> bytes:
        async with AsyncClient(url) as anode:
            return await anode.storage.get(FRIEND, file_id)

    assert asyncio.run(main()) == DATA
    with pytest.raises(NotOwner):
        node.storage.get(STRANGER, file_id)


def test_the_sdk_docs_storage_example_runs(url: str) -> None:
    (code,) = doc_examples("example: storage")
    exec(compile(code, "docs/sdk.md", "exec"),
         {"NODE": url, "alice": OWNER, "bob": to_bech32(STRANGER.address),
          "bob_key": STRANGER})
