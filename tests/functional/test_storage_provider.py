"""Storage providers as real node processes (node/storage_provider.py): they register on
chain, take pieces of a real encrypted, erasure-coded file over P2P from a client that is
just a ``P2P`` instance in this test, sign acceptances the chain takes, serve pieces with
column proofs that verify, refuse what they do not hold or cannot fit, and answer the
chain's audits, until a piece rots on disk and the chain slashes them for it.

``storage_network`` / ``add_storage_provider`` / ``start_storage_network`` are the helpers
other storage tests can import (``from test_storage_provider import ...``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from framework.harness import wait_until
from framework.netharness import NetNode, Network, free_ports

from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey, verify
from smartchain.modules.storage import module as sm
from smartchain.modules.storage import types as st
from smartchain.node.config import GENESIS_FILE, ConfigError, NodeConfig, StorageSettings
from smartchain.p2p import P2P
from smartchain.p2p.peers import RequestError
from smartchain.storage import layout
from smartchain.storage.protocol import (
    ACCEPT,
    GET,
    INTENT,
    PUT,
    RECEIPT,
    Acceptance,
    AcceptColumn,
    GetPiece,
    PieceReply,
    PutAck,
    PutPiece,
    sign_intent,
)
from smartchain.types.amount import UNITS_PER_HPC

MiB = 1024 * 1024
# Short audit epochs for loopback networks (blocks of 150 ms): challenged every ~2 s.
STORAGE_TEST_PARAMS = {"storage_epoch_blocks": 12, "storage_audit_window": 8}
PROVIDER_FUNDS = 1_000 * UNITS_PER_HPC
OWNER_FUNDS = 1_000_000 * UNITS_PER_HPC
CAPACITIES = (64 * MiB, 3 * MiB // 2, 64 * MiB)


# --- helpers (importable) -------------------------------------------------------------------


def storage_network(root: Path, signers: int, *, accounts: Sequence[tuple[bytes, int]] = (),
                    params: dict[str, int] | None = None,
                    chain_id: str = "smart-storage-1") -> Network:
    """A ``Network`` whose genesis has storage parameters for tests (short epochs)."""
    net = Network(root, signers, accounts=accounts, chain_id=chain_id)
    net.genesis = dataclasses.replace(
        net.genesis, params=dataclasses.replace(net.genesis.params,
                                                **(params or STORAGE_TEST_PARAMS)))
    net.genesis.validate()
    for node in net.nodes:  # written by Network with default params: replace before start
        net.genesis.save(node.home / GENESIS_FILE)
    return net


def add_storage_provider(net: Network, key: PrivateKey, index: int, *, capacity: int,
                         **config: Any) -> int:
    """A follower node ``storage{index}`` offering ``capacity`` bytes; its key must be
    funded in genesis (collateral and fees). ``config``: other ``StorageSettings`` fields."""
    i = len(net.nodes)
    name = f"storage{index}"
    port = free_ports(1, taken=[n.config.p2p.port for n in net.nodes])[0]
    node = NetNode(i, name, net.root / name, key, net._config(name, port), validator=False)
    node.config.p2p.seeds = [v.p2p_address for v in net.validators]
    node.config.storage = dataclasses.replace(node.config.storage, capacity=capacity, **config)
    net._init(node)
    net.nodes.append(node)
    return i


def start_storage_network(root: Path, signers: int, capacities: Sequence[int], *,
                          accounts: Sequence[tuple[bytes, int]] = (),
                          params: dict[str, int] | None = None, **config: Any
                          ) -> tuple[Network, list[int]]:
    """``signers`` signer nodes and one storage provider per capacity, all started, every
    provider registered on chain. Returns (network, provider node indices); the caller
    closes the network."""
    keys = [PrivateKey.generate() for _ in capacities]
    net = storage_network(root, signers, params=params,
                          accounts=[*accounts, *((k.address, PROVIDER_FUNDS) for k in keys)])
    try:
        idx = [add_storage_provider(net, k, j, capacity=c, **config)
               for j, (k, c) in enumerate(zip(keys, capacities, strict=True))]
        net.start_all()
        wait_registered(net, idx)
    except BaseException:
        net.close()
        raise
    return net, idx


def wait_registered(net: Network, providers: Sequence[int], timeout: float = 30.0) -> None:
    for i in providers:
        node = net[i]
        wait_until(lambda node=node: "storage: registered on chain" in node.log_text(),
                   timeout, interval=0.1, what=f"{node.name} registered as a storage provider")


def unexpected_tracebacks(log: str) -> list[str]:
    return re.findall(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*.*", log)


def encode_file(size: int, k: int, code_n: int, seed: bytes) -> tuple[bytes, bytes,
                                                                       list[list[bytes]]]:
    """(salt, file key, columns[j][s]) of ``size`` random bytes, as a client cuts them."""
    owner = PrivateKey.from_seed(seed)
    salt = os.urandom(32)
    file_id = layout.file_id_of(owner.address, salt)
    key = layout.file_key(seed, salt)
    data = os.urandom(size)
    codec = layout.Codec(k, code_n)
    columns: list[list[bytes]] = [[] for _ in range(code_n)]
    for s in range(layout.segment_count(size, k)):
        start, end = layout.segment_bounds(size, k, s)
        for j, piece in enumerate(codec.encode(layout.encrypt_segment(key, file_id, s,
                                                                      data[start:end]))):
            columns[j].append(piece)
    return salt, file_id, columns


class Client:
    """A storage client: nothing but a P2P endpoint on the network's genesis hash."""

    def __init__(self, net: Network) -> None:
        self.p2p = P2P(PrivateKey.generate(), net.genesis.hash().hex(), "127.0.0.1", 0)

    async def __aenter__(self) -> Client:
        await self.p2p.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.p2p.stop()

    async def ask(self, address: str, kind: str, msg: Any, timeout: float = 10.0) -> bytes:
        peer = await self.p2p.connect(address)
        return await self.p2p.request(peer, kind, msg.encode(), timeout)

    async def book(self, net: Network, owner: PrivateKey, provider: NetNode, file_id: bytes,
                   frag: int, pieces: list[bytes], salt: bytes, *, epochs: int = 50,
                   peer: bytes | None = None) -> None:
        """Send ``owner``'s upload intent for a column (for this endpoint, or ``peer``)."""
        intent = sign_intent(owner, net.chain_id, provider=provider.key.address,
                             peer=peer or self.p2p.peer_id, file_id=file_id, frag_index=frag,
                             segments=len(pieces), column_bytes=sum(map(len, pieces)),
                             salt=salt, epochs=epochs, expires=net.height(0) + 100)
        assert await self.ask(provider.p2p_address, INTENT, intent) == b""

    async def put_column(self, net: Network, owner: PrivateKey, provider: NetNode,
                         file_id: bytes, frag: int, pieces: list[bytes],
                         salt: bytes) -> Acceptance:
        await self.book(net, owner, provider, file_id, frag, pieces, salt)
        address = provider.p2p_address
        roots = []
        for s, piece in enumerate(pieces):
            ack = PutAck.decode(await self.ask(address, PUT, PutPiece(file_id, frag, s, piece)))
            roots.append(ack.piece_root)
        assert roots == [layout.piece_root(p) for p in pieces]
        reply = await self.ask(address, ACCEPT, AcceptColumn(file_id, frag, len(pieces),
                                                             tuple(roots)))
        return Acceptance.decode(reply)


def records(net: Network) -> dict[bytes, sm.StorageProvider]:
    return dict(net.client(0).storage_provider_records())


# --- the network of this module -------------------------------------------------------------


@pytest.fixture(scope="module")
def snet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, list[int],
                                                                        PrivateKey]]:
    """One signer; provider 0 offers 64 MiB, provider 1 only 1.5 MiB, provider 2 (a spare
    for repairs) 64 MiB; a fourth provider (the last node) has an unfunded key."""
    owner = PrivateKey.from_seed(b"\x07" * 32)
    keys = [PrivateKey.generate() for _ in range(4)]
    net = storage_network(tmp_path_factory.mktemp("storage"), 1,
                          accounts=[(owner.address, OWNER_FUNDS),
                                    *((k.address, PROVIDER_FUNDS) for k in keys[:3])])
    try:
        idx = [add_storage_provider(net, k, j, capacity=c)
               for j, (k, c) in enumerate(zip(keys, (*CAPACITIES, MiB), strict=True))]
        net.start_all()
        wait_registered(net, idx[:3])
        yield net, idx[:3], owner
    finally:
        net.close()


def test_config_refuses_negative_storage_settings(tmp_path: Path) -> None:
    NodeConfig(storage=StorageSettings(capacity=-1)).save(tmp_path)
    with pytest.raises(ConfigError, match=r"\[storage\] capacity"):
        NodeConfig.load(tmp_path)
    NodeConfig(storage=StorageSettings(capacity=5 * MiB, collateral=-2)).save(tmp_path)
    with pytest.raises(ConfigError, match=r"\[storage\] collateral"):
        NodeConfig.load(tmp_path)
    NodeConfig(storage=StorageSettings(capacity=5 * MiB, dir="/srv/pieces")).save(tmp_path)
    assert NodeConfig.load(tmp_path).storage.dir == "/srv/pieces"


def test_providers_are_registered_with_their_terms(snet: Any) -> None:
    net, idx, _ = snet
    recs = records(net)
    params = net.genesis.params
    for i, capacity in zip(idx, CAPACITIES, strict=True):
        node = net[i]
        p = recs[node.key.address]
        assert p.active and p.pubkey == node.key.public_key
        assert p.capacity == capacity and p.used == 0
        assert p.p2p == node.p2p_address  # what clients dial
        assert p.price == params.storage_min_price  # storage_price 0: the chain's minimum
        assert p.bandwidth_price == StorageSettings().bandwidth_price
        assert p.collateral == 10 * UNITS_PER_HPC


def test_put_accept_get_and_refusals(snet: Any) -> None:
    net, idx, owner = snet
    big, small = net[idx[0]], net[idx[1]]
    k, code_n = 2, 3
    salt, file_id, columns = encode_file(4 * MiB + 300_000, k, code_n, b"\x07" * 32)
    assert len(columns[0]) == 2  # two segments: the column path has a real sibling

    async def scenario() -> None:
        async with Client(net) as c:
            acc = await c.put_column(net, owner, big, file_id, 0, columns[0], salt)
            roots = [layout.piece_root(p) for p in columns[0]]
            nbytes = sum(len(p) for p in columns[0])
            assert acc.root == layout.column_root(roots) and acc.column_bytes == nbytes
            assert verify(big.key.public_key, sm.acceptance_bytes(
                net.chain_id, file_id, 0, acc.root, nbytes, 2, 0, acc.height, owner.address),
                acc.signature)  # round 0 of the column, uploaded by the owner
            for s, piece in enumerate(columns[0]):
                reply = PieceReply.decode(await c.ask(big.p2p_address, GET,
                                                      GetPiece(file_id, 0, s)))
                assert reply.piece == piece
                assert layout.verify_piece(reply.piece, acc.root, s, 2, reply.column_path)
            # Not stored: a clean "not found", for a piece and for an acceptance.
            with pytest.raises(RequestError, match="not found"):
                await c.ask(big.p2p_address, GET, GetPiece(file_id, 1, 0))
            await c.book(net, owner, big, file_id, 1, columns[1], salt)  # booked, not sent
            with pytest.raises(RequestError, match="not found"):
                await c.ask(big.p2p_address, ACCEPT, AcceptColumn(
                    file_id, 1, 2, tuple(layout.piece_root(p) for p in columns[1])))
            # More than an account may book on a small provider: refused cleanly, no piece
            # is taken for the column, the provider still serves.
            with pytest.raises(RequestError, match=r"refused.*quota"):
                await c.book(net, owner, small, file_id, 1, columns[1], salt)
            with pytest.raises(RequestError, match="no upload intent"):
                await c.ask(small.p2p_address, PUT, PutPiece(file_id, 1, 1, columns[1][1]))
            with pytest.raises(RequestError, match="not found"):
                await c.ask(small.p2p_address, GET, GetPiece(file_id, 1, 1))
            # A receipt that is not for this provider is a bad request, not a crash.
            bogus = st.sign_receipt(owner, net.chain_id, big.key.address, file_id, 10, 0, 1,
                                    bytes(16))
            with pytest.raises(RequestError, match="another provider"):
                await c.ask(small.p2p_address, RECEIPT, bogus)

    asyncio.run(scenario())
    for i in idx:
        assert net[i].running
        assert unexpected_tracebacks(net[i].log_text()) == []
    assert "StoreFull" not in big.log_text()


def test_a_provider_takes_no_piece_without_a_funded_signed_intent(snet: Any) -> None:
    """Red-team finding 7: any peer could ``store/put`` into a provider's disk, with no
    account, deal or payment. Now a piece needs an upload intent signed by an account that
    can pay for the column, made for this very connection, and the provider keeps nothing
    otherwise."""
    net, idx, owner = snet
    big = net[idx[0]]
    salt, file_id, columns = encode_file(300_000, 1, 2, owner.seed)
    pieces = columns[0]
    pauper = PrivateKey.from_seed(b"\x09" * 32)  # no account on chain
    psalt, pfile, pcols = encode_file(300_000, 1, 2, pauper.seed)
    put = PutPiece(file_id, 0, 0, pieces[0])
    used = big.home / "storage"

    async def scenario() -> None:
        async with Client(net) as c, Client(net) as thief:
            with pytest.raises(RequestError, match="bad request: no upload intent"):
                await c.ask(big.p2p_address, PUT, put)
            with pytest.raises(RequestError, match=r"refused: .* holds 0"):
                await c.book(net, pauper, big, pfile, 0, pcols[0], psalt)
            with pytest.raises(RequestError, match="no upload intent"):
                await c.ask(big.p2p_address, PUT, PutPiece(pfile, 0, 0, pcols[0][0]))
            # an intent is good only on the connection it names: a copy is refused
            with pytest.raises(RequestError, match="another P2P identity"):
                await thief.book(net, owner, big, file_id, 0, pieces, salt,
                                 peer=c.p2p.peer_id)
            await c.book(net, owner, big, file_id, 0, pieces, salt)
            with pytest.raises(RequestError, match="no upload intent"):
                await thief.ask(big.p2p_address, PUT, put)
            with pytest.raises(RequestError, match=r"bad request: \d+ bytes .* declared"):
                await c.ask(big.p2p_address, PUT, PutPiece(file_id, 0, 0, pieces[0] + b"x"))
            assert PutAck.decode(await c.ask(big.p2p_address, PUT, put)).piece_root == \
                layout.piece_root(pieces[0])

    asyncio.run(scenario())
    assert not any(layout.piece_root(p).hex() in str(f) for p in pcols[0]
                   for f in used.rglob("*"))  # nothing of the refused uploads on disk
    assert big.running and unexpected_tracebacks(big.log_text()) == []


def test_audits_slash_and_repair(snet: Any) -> None:
    """A 1-of-2 deal on providers 0 and 1: both answer the audits and are paid; provider
    1's piece rots on disk, so it neither serves nor proves it, and is slashed; a provider
    node repairs the column onto the spare (provider 2), which is then audited in turn."""
    net, idx, owner = snet
    big, small, spare = (net[i] for i in idx)
    k, code_n = 1, 3
    size = 600_000
    salt, file_id, columns = encode_file(size, k, code_n, owner.seed)
    segments = len(columns[0])
    piece_size, last_piece_size = layout.piece_sizes(size, k, code_n)

    async def upload() -> list[Acceptance]:
        async with Client(net) as c:
            return [await c.put_column(net, owner, n, file_id, j, columns[j], salt)
                    for j, n in enumerate((big, small))]

    accs = asyncio.run(upload())
    deal_msg = sm.CreateDeal(salt, size, k, code_n, segments, piece_size, last_piece_size,
                             50, 2, tuple(sm.NewColumn(n.key.address, j, a.root, a.height,
                                                       a.signature)
                                          for j, (n, a) in enumerate(zip((big, small), accs,
                                                                         strict=True))))
    doc = net.client(0).send_tx(owner, "storage/create_deal", deal_msg, gas_limit=5_000_000)
    assert doc["receipt"]["ok"], doc["receipt"]["log"]
    start = net.client(0).storage_deal_record(file_id)
    assert start is not None
    fee = sm.epoch_fee(start.columns[0].price, sm.deal_column_bytes(start))

    def deal() -> sm.Deal:
        d = net.client(0).storage_deal_record(file_id)
        assert d is not None
        return d

    # Both columns proven in the deal's first epoch: both paid from escrow.
    wait_until(lambda: deal().escrow <= start.escrow - 2 * fee, 30, interval=0.1,
               what="both providers paid for a proven epoch")
    challenges = min(net.genesis.params.storage_audit_segments, st.column_leaves(start))
    for n in (big, small):
        assert f"storage: sent {challenges} audit proofs" in n.log_text()
        assert "1 columns in active deals pinned" in n.log_text()
    # Rot one byte of provider 1's piece on disk: it must not serve it, nor prove it.
    root_hex = layout.piece_root(columns[1][0]).hex()
    blob = small.home / "storage" / "blobs" / root_hex[:3] / root_hex
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))

    async def fetch() -> None:
        async with Client(net) as c:
            with pytest.raises(RequestError, match=r"not found.*corrupt"):
                await c.ask(small.p2p_address, GET, GetPiece(file_id, 1, 0))

    asyncio.run(fetch())
    wait_until(lambda: records(net)[small.key.address].misses == 1, 30, interval=0.1,
               what="provider 1 slashed for the audit it could not answer")
    assert "cannot answer the audit" in small.log_text()
    assert "corrupt on disk" in small.log_text()
    p = records(net)[small.key.address]
    assert p.reputation < sm.INITIAL_REPUTATION and p.collateral < 10 * UNITS_PER_HPC
    # The column is rebuilt from provider 0's and placed on the spare: healthy again.
    wait_until(lambda: deal().columns[1].provider == spare.key.address
               and deal().columns[1].healthy, 60, interval=0.1,
               what="column 1 repaired onto the spare")
    assert deal().columns[1].root == start.columns[1].root
    repairer = wait_until(lambda: next((n for n in (big, spare)
                                        if "storage: repaired column 1" in n.log_text()), None),
                          10, interval=0.05, what="the repairer's own account of it")
    assert "accepted column 1" in spare.log_text()
    # The spare holds it for real: it serves the piece with a proof against the deal.

    async def fetch_repaired() -> None:
        async with Client(net) as c:
            reply = PieceReply.decode(await c.ask(spare.p2p_address, GET,
                                                  GetPiece(file_id, 1, 0)))
            assert reply.piece == columns[1][0]
            assert layout.verify_piece(reply.piece, start.columns[1].root, 0, segments,
                                       reply.column_path)

    asyncio.run(fetch_repaired())
    # Slashed below the minimum collateral, provider 1 topped it up and is active again.
    wait_until(lambda: records(net)[small.key.address].active, 30, interval=0.1,
               what="provider 1 registered again after the slash")
    # The spare answers the audits of its new column.
    wait_until(lambda: f"storage: sent {challenges} audit proofs" in spare.log_text(), 30,
               interval=0.1, what="the spare proving its repaired column")
    assert repairer.running
    for n in (big, small, spare):
        assert n.running and unexpected_tracebacks(n.log_text()) == []


def test_unfunded_provider_warns_without_traceback(snet: Any) -> None:
    net, _, _ = snet
    poor = net[len(net.nodes) - 1]
    wait_until(lambda: "storage/register_provider refused: insufficient funds" in
               poor.log_text(), 30, interval=0.1, what="the unfunded provider's warning")
    assert poor.running and "Traceback" not in poor.log_text()
    assert "registered on chain" not in poor.log_text()
    assert poor.key.address not in records(net)


def test_bandwidth_receipts_are_kept_and_claimed(snet: Any) -> None:
    net, idx, owner = snet
    big = net[idx[0]]
    client = net.client(0)
    nbytes = 5 * 2**30
    amount = sm.bandwidth_amount(nbytes, records(net)[big.key.address].bandwidth_price)
    receipt = st.sign_receipt(owner, net.chain_id, big.key.address, bytes(32), nbytes, amount,
                              net.height(0), os.urandom(16))
    before = int(client.account(to_bech32(owner.address))["balance"])

    async def send() -> None:
        async with Client(net) as c:
            for _ in range(2):  # a client that repeats itself is not paid twice for
                assert await c.ask(big.p2p_address, RECEIPT, receipt) == b""
            overpriced = st.sign_receipt(owner, net.chain_id, big.key.address, bytes(32),
                                         nbytes, amount + 1, net.height(0), os.urandom(16))
            with pytest.raises(RequestError, match=r"bad request.*cost"):
                await c.ask(big.p2p_address, RECEIPT, overpriced)

    asyncio.run(send())
    wait_until(lambda: "claimed 1 bandwidth receipts" in big.log_text(), 30, interval=0.1,
               what="the receipt claimed")
    after = int(client.account(to_bech32(owner.address))["balance"])
    assert before - after == amount
