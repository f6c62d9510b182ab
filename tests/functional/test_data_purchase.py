"""Buying device data with real nodes: one signer, three storage provider processes, the
buyer's and the owner's agent's code as they run (``storage/datasets.py``).

- ``buy_and_fetch``: the files download while the purchase is committed and the owner's
  agent (subscribed to ``data_buy``) delivers the key; every record checked on worker
  processes; the file kept is the batch the device signed;
- ``fetch_purchase(wait=...)`` on a purchase whose key is not delivered yet waits for it,
  and says so when none comes;
- a stored batch with a forged record (the owner registered the genuine header, but stored
  another device's record in the file) is refused, naming the record, and no file is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from framework.netharness import Network
from test_storage_provider import start_storage_network

from smartchain.agent.messages import sign_message
from smartchain.client import Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.data.types import (
    BatchFile,
    BatchHeader,
    asset_id_of,
    key_commitment,
    records_root,
    sign_batch,
)
from smartchain.modules.devices.types import sign_certificate
from smartchain.modules.storage.cli import client_p2p
from smartchain.storage import client as sc
from smartchain.storage import layout
from smartchain.storage.datasets import (
    DataError,
    buy_and_fetch,
    deliver_waiting,
    fetch_purchase,
    publish_batch,
)
from smartchain.storage.recordcheck import RecordPool
from smartchain.types.amount import UNITS_PER_HPC as HPC

MiB = 1024 * 1024


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_data_purchase/" + tag.encode()))


OWNER, BUYER, CAR, OTHER_CAR = (_key(t) for t in ("owner", "buyer", "car", "other-car"))
RECORDS = 700  # two chunks for the workers


def trips(device: PrivateKey, start: int, count: int) -> list[bytes]:
    return [sign_message(device, "trip", i, {"trip": i, "km": i % 97})
            for i in range(start, start + count)]


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    network, _ = start_storage_network(
        tmp_path_factory.mktemp("data-purchase"), 1, [64 * MiB] * 3,
        accounts=[(OWNER.address, 1_000_000 * HPC), (BUYER.address, 1_000 * HPC)])
    try:
        yield network
    finally:
        network.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[RecordPool]:
    workers = RecordPool(workers=2, threshold=1)
    yield workers
    workers.close()


@pytest.fixture(scope="module")
def market(net: Network, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The owner's car certified, an asset with a genuine batch (0) and a forged one (1),
    offered to anyone for insurance."""
    client = net.client(0, timeout=60)
    chain_id = client.status()["chain_id"]
    ok = _ok
    ok(client.register_manufacturer(OWNER, "Motors", 1_000 * HPC))
    cert = sign_certificate(OWNER, CAR.public_key, "EV-1", "VIN-1", ("car.trips",))
    ok(client.register_own_device(OWNER, CAR, chain_id, to_bech32(OWNER.address), "EV-1",
                                  "VIN-1", ("car.trips",), cert))
    ok(client.create_data_asset(OWNER, "car", "car.trips", "eu-west", [CAR.public_key],
                                10 * HPC))
    asset = asset_id_of(OWNER.address, "car")
    genuine = trips(CAR, 0, RECORDS)
    later = trips(CAR, RECORDS, RECORDS)
    forged = [*later[:300], sign_message(OTHER_CAR, "trip", RECORDS + 300, {"km": 1}),
              *later[301:]]

    async def publish() -> None:
        view = sc.ApiChainView(client, OWNER)
        async with client_p2p(view.network_id) as p2p:
            header = BatchHeader(CAR.public_key, "car.trips", 0, RECORDS, RECORDS,
                                 records_root(genuine))
            await publish_batch(p2p, view, client, OWNER, asset, header,
                                sign_batch(CAR, header), cert, genuine)
            # the second batch: the car signed ``later``, the owner stores ``forged``
            header = BatchHeader(CAR.public_key, "car.trips", RECORDS, 2 * RECORDS, RECORDS,
                                 records_root(later))
            plain = BatchFile(header, sign_batch(CAR, header), cert, tuple(forged)).encode()
            put = await sc.put(p2p, view, OWNER, plain, k=2, n=3)
            ok(client.add_data_batch(OWNER, asset, header, sign_batch(CAR, header),
                                     put.file_id, key_commitment(
                                         put.file_id, layout.file_key(OWNER.seed, put.salt))))

    asyncio.run(publish())
    height = int(client.status()["height"])
    consent = ok(client.give_consent(OWNER, [asset], ["insurance"], HPC, height + 100_000))
    cid = int(next(e for e in consent["receipt"]["events"]
                   if e["kind"] == "data_consent")["attributes"]["consent"])
    return {"client": client, "asset": asset, "consent": cid, "genuine": genuine,
            "plain": BatchFile(header_of(genuine), sign_batch(CAR, header_of(genuine)), cert,
                               tuple(genuine)).encode()}


def header_of(records: list[bytes]) -> BatchHeader:
    return BatchHeader(CAR.public_key, "car.trips", 0, len(records), len(records),
                       records_root(records))


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["receipt"]["ok"], result["receipt"]["log"]
    return result


async def owners_agent(client: Client, sales: int) -> None:
    """Delivers keys as purchases are committed: what an owner's agent runs."""
    address = to_bech32(OWNER.address)
    events = client.subscribe("events", kind="data_buy", where={"owner": address},
                              from_height=int(client.status()["height"]))
    delivered = 0
    async with contextlib.aclosing(events):
        async for _ in events:
            delivered += len(await asyncio.to_thread(deliver_waiting, client, OWNER, address))
            if delivered >= sales:
                return


def test_a_buyer_downloads_while_the_owners_agent_delivers_and_every_record_is_checked(
        market: dict[str, Any], pool: RecordPool, tmp_path: Path) -> None:
    client = market["client"]

    async def run() -> tuple[int, Any]:
        agent = asyncio.ensure_future(owners_agent(client, 1))
        view = sc.ApiChainView(client, BUYER)
        async with client_p2p(view.network_id) as p2p:
            bought = await buy_and_fetch(p2p, view, client, BUYER, market["consent"],
                                         market["asset"], [0], "insurance", HPC, tmp_path,
                                         wait=60, pool=pool)
        await agent
        return bought

    pid, batches = asyncio.run(run())
    assert [r.seq for r in batches[0].records] == list(range(RECORDS))
    assert (tmp_path / "batch-0.bin").read_bytes() == market["plain"]
    assert client.data_purchase(pid)["status"] == "delivered"


def test_fetch_waits_for_a_key_on_the_way_and_says_when_none_comes(
        market: dict[str, Any], pool: RecordPool, tmp_path: Path) -> None:
    client = market["client"]
    bought = _ok(client.buy_data(BUYER, market["consent"], market["asset"], [0], "insurance",
                                 HPC))
    pid = int(next(e for e in bought["receipt"]["events"]
                   if e["kind"] == "data_buy")["attributes"]["purchase"])

    async def run(wait: float, out: Path, deliver: bool) -> Any:
        view = sc.ApiChainView(client, BUYER)
        async with client_p2p(view.network_id) as p2p:
            fetching = asyncio.ensure_future(fetch_purchase(p2p, view, client, BUYER, pid,
                                                            out, wait=wait, pool=pool))
            if deliver:
                await asyncio.to_thread(deliver_waiting, client, OWNER,
                                        to_bech32(OWNER.address))
            return await fetching

    (tmp_path / "a").mkdir()
    with pytest.raises(DataError, match="has no keys yet"):
        asyncio.run(run(0, tmp_path / "a", deliver=False))
    with pytest.raises(DataError, match="no key delivered within"):
        asyncio.run(run(0.5, tmp_path / "a", deliver=False))
    assert list((tmp_path / "a").iterdir()) == []
    (tmp_path / "b").mkdir()
    batches = asyncio.run(run(60, tmp_path / "b", deliver=True))
    assert len(batches[0].records) == RECORDS
    assert (tmp_path / "b" / "batch-0.bin").read_bytes() == market["plain"]


def test_a_forged_record_in_a_bought_batch_is_named_and_no_file_is_kept(
        market: dict[str, Any], pool: RecordPool, tmp_path: Path) -> None:
    client = market["client"]

    async def run() -> Any:
        agent = asyncio.ensure_future(owners_agent(client, 1))
        view = sc.ApiChainView(client, BUYER)
        try:
            async with client_p2p(view.network_id) as p2p:
                return await buy_and_fetch(p2p, view, client, BUYER, market["consent"],
                                           market["asset"], [1], "insurance", HPC, tmp_path,
                                           wait=60, pool=pool)
        finally:
            await agent

    with pytest.raises(DataError, match="record 300 is signed by another device"):
        asyncio.run(run())
    assert list(tmp_path.iterdir()) == []
