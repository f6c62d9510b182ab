"""The storage client: placement, upload, download, health and repair, on one machine.

The chain is real (``ChainNet``: the storage module checks every deal, signature, cost and
repair the client posts, with real gas metering); the providers are small in-process P2P
endpoints speaking the real ``store/*`` protocol over loopback TCP, each with a fault to
play (dead, slow, corrupt, lying about roots). Segments are shrunk (``PIECE_TARGET`` patched
to 16 KiB) so that files of a few hundred KiB have many segments and exercise the
streaming window and the long-tail cancellation. Real provider nodes are tested in
``test_storage_e2e.py``.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from framework.chain import ChainKit, ChainNet

from smartchain.crypto.address import address_of
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey, verify
from smartchain.modules.bank.module import get_account
from smartchain.modules.storage import module as sm
from smartchain.p2p.peers import P2P, BadRequest, P2PConfig
from smartchain.state.params import Params
from smartchain.storage import client as sc
from smartchain.storage import layout
from smartchain.storage.admission import Reservations
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
    UploadIntent,
)
from smartchain.storage.repair import repair_column

HPC = 10**8
GiB = 1024**3
NET = "storage-client-test"
PIECE = 16 * 1024


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_storage_client/" + tag.encode()))


OWNER = _key("owner")
STRANGER = _key("stranger")
REPAIRER = _key("repairer")
PROVIDER_KEYS = [_key(f"provider{i}") for i in range(8)]


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(layout, "PIECE_TARGET", PIECE)
    layout.piece_sizes.cache_clear()
    yield
    layout.piece_sizes.cache_clear()


# --- placement ---------------------------------------------------------------------------


def _prov(capacity: int = 100 * GiB, used: int = 0, price: int = 1000, reputation: int = 1000,
          active: bool = True) -> sm.StorageProvider:
    return sm.StorageProvider(bytes(32), capacity, used, price, 0, 10 * HPC, reputation,
                              "x", active, 0)


def _addr(i: int) -> bytes:
    return bytes([i]) * 20


def _first_choices(providers: list[tuple[bytes, sm.StorageProvider]], files: int = 3000
                   ) -> Counter[bytes]:
    return Counter(sc.place(providers, h256(i.to_bytes(4, "big")), 1)[0][0]
                   for i in range(files))


def test_place_is_deterministic_and_ranks_every_eligible_provider() -> None:
    providers = [(_addr(i), _prov()) for i in range(10)]
    fid = h256(b"file")
    ranking = sc.place(providers, fid, 10)
    assert ranking == sc.place(list(reversed(providers)), fid, 10)  # input order is irrelevant
    assert sorted(a for a, _ in ranking) == [a for a, _ in providers]
    assert sc.place(providers, fid, 4) == ranking[:4]
    assert sc.place(providers, h256(b"other file"), 10) != ranking  # another file, another order


def test_place_excludes_full_inactive_and_excluded_providers() -> None:
    providers = [(_addr(0), _prov()), (_addr(1), _prov(active=False)),
                 (_addr(2), _prov(capacity=GiB, used=GiB - 10)), (_addr(3), _prov())]
    got = {a for a, _ in sc.place(providers, h256(b"f"), 10, column_bytes=1000)}
    assert got == {_addr(0), _addr(3)}
    got = {a for a, _ in sc.place(providers, h256(b"f"), 10, exclude={_addr(0)},
                                  column_bytes=1000)}
    assert got == {_addr(3)}
    assert sc.place([], h256(b"f"), 3) == []


def test_removing_a_provider_only_moves_its_own_files() -> None:
    providers = [(_addr(i), _prov()) for i in range(8)]
    files = [h256(i.to_bytes(4, "big")) for i in range(500)]
    before = {f: sc.place(providers, f, 1)[0][0] for f in files}
    after = {f: sc.place(providers[1:], f, 1)[0][0] for f in files}
    moved = [f for f in files if before[f] != after[f]]
    assert moved and all(before[f] == _addr(0) for f in moved)


@pytest.mark.parametrize("field,heavy,light", [
    ("capacity", _prov(capacity=300 * GiB), _prov(capacity=100 * GiB)),
    ("price", _prov(price=1000), _prov(price=3000)),  # cheaper is heavier
    ("reputation", _prov(reputation=2900), _prov(reputation=900)),  # (100+r)/100: 30 vs 10
])
def test_weights_shift_the_share_of_files(field: str, heavy: sm.StorageProvider,
                                          light: sm.StorageProvider) -> None:
    """A provider three times as heavy wins about three times as many first places."""
    providers = [(_addr(1), heavy), (_addr(2), light), (_addr(3), light)]
    wins = _first_choices(providers)
    share = wins[_addr(1)] / sum(wins.values())
    assert 0.54 < share < 0.66, (field, wins)  # expected 3/5


def test_used_space_lowers_the_weight() -> None:
    providers = [(_addr(1), _prov(capacity=100 * GiB, used=75 * GiB)),
                 (_addr(2), _prov(capacity=25 * GiB))]
    wins = _first_choices(providers, 2000)
    assert 0.4 < wins[_addr(1)] / 2000 < 0.6  # same free space, same share


def test_estimate_cost_matches_the_chain_rule() -> None:
    providers = [_prov(price=p) for p in (1000, 5000, 3000, 2000)]
    params = Params()
    _, _, nbytes = sc.column_bytes_of(10 * 1024 * 1024, 2, 5)
    escrow, budget = sm.deal_cost([5000, 3000, 2000], nbytes, 7, params.storage_repair_bps)
    assert sc.estimate_cost(providers, 10 * 1024 * 1024, 2, 3, 7, params) == escrow + budget


# --- a chain and providers ---------------------------------------------------------------


class NetView:
    """A ``ChainView`` over the in-process chain: every submit is a block of its own."""

    def __init__(self, net: ChainNet, key: PrivateKey) -> None:
        self.net, self.key = net, key
        self.chain_id = net.kit.chain_id
        self.receipts: dict[str, Any] = {}

    def height(self) -> int:
        return self.net.chain.height

    def params(self) -> Params:
        return self.net.chain.params

    def all_providers(self) -> list[tuple[bytes, sm.StorageProvider]]:
        with self.net.chain.reader() as r:
            return [(v.address, v.provider) for v in sm.list_providers(r)]

    def providers(self) -> list[tuple[bytes, sm.StorageProvider]]:
        return [(a, p) for a, p in self.all_providers() if p.active]

    def deal(self, file_id: bytes) -> sm.Deal | None:
        with self.net.chain.reader() as r:
            return sm.get_deal(r, file_id)

    def submit(self, kind: str, payload: Any, gas_limit: int) -> str:
        raw = self.net.sign(self.key, payload, gas_limit=gas_limit)
        assert self.net.kinds[type(payload)] == kind
        (receipt,) = self.net.block(raw)
        self.receipts[h256(raw).hex()] = receipt
        return h256(raw).hex()

    def wait(self, tx_hash: str, timeout: float) -> None:
        receipt = self.receipts[tx_hash]
        if not receipt.ok:
            raise sc.StorageError(f"transaction failed: {receipt.log}")


class FakeProvider:
    """A provider in a few lines: pieces in a dict, one fault to play; uploads admitted by
    the real ``Reservations`` against the chain, as a provider node does."""

    def __init__(self, key: PrivateKey, net: ChainNet, fault: str = "") -> None:
        self.key, self.net, self.chain_id, self.fault = key, net, net.kit.chain_id, fault
        self.pieces: dict[tuple[bytes, int, int], bytes] = {}
        self.roots: dict[tuple[bytes, int, int], bytes] = {}
        self.receipts: list[sm.Receipt] = []
        self.booked = Reservations(key.address, self.chain_id, 10 * GiB)
        self.puts = 0
        self.gets = 0
        self.p2p = P2P(key, NET, "127.0.0.1", 0, config=P2PConfig(pex=False))
        for kind, handler in ((INTENT, self.intent), (PUT, self.put), (ACCEPT, self.accept),
                              (GET, self.get), (RECEIPT, self.receipt)):
            self.p2p.register_request(kind, handler)

    @property
    def address(self) -> bytes:
        return self.key.address

    async def intent(self, peer: bytes, raw: bytes) -> bytes:
        intent = UploadIntent.decode(raw)
        chain = self.net.chain
        with chain.reader() as r:
            balance = get_account(r, address_of(intent.client)).balance
            deal = sm.get_deal(r, intent.file_id)
        self.booked.admit(peer, intent, height=chain.height, params=chain.params, price=1000,
                          balance=balance, deal=deal)
        return b""

    async def put(self, peer: bytes, raw: bytes) -> bytes:
        msg = PutPiece.decode(raw)
        self.booked.for_put(peer, msg.file_id, msg.frag_index, msg.segment, len(msg.piece),
                            self.net.chain.height)
        self.puts += 1
        if self.fault == "slow":
            await asyncio.sleep(0.2)  # plays a slow disk; nothing waits on this to synchronise
        if self.fault == "refuse" or (self.fault == "flaky" and self.puts > 4):
            raise BadRequest("disk full")
        self.pieces[(msg.file_id, msg.frag_index, msg.segment)] = msg.piece
        root = self.roots[(msg.file_id, msg.frag_index, msg.segment)] = \
            layout.piece_root(msg.piece)
        return PutAck(h256(root) if self.fault == "bad_ack" else root).encode()

    def _roots(self, file_id: bytes, j: int, segments: int) -> list[bytes]:
        try:
            return [self.roots[(file_id, j, s)] for s in range(segments)]
        except KeyError:
            raise LookupError("column not complete") from None

    async def accept(self, peer: bytes, raw: bytes) -> bytes:
        msg = AcceptColumn.decode(raw)
        height = self.net.chain.height
        booked = self.booked.accept(peer, msg.file_id, msg.frag_index, msg.segments, height)
        roots = self._roots(msg.file_id, msg.frag_index, msg.segments)
        if tuple(roots) != msg.piece_roots:
            raise BadRequest("roots differ")
        nbytes = sum(len(self.pieces[(msg.file_id, msg.frag_index, s)])
                     for s in range(msg.segments))
        root = layout.column_root(roots)
        with self.net.chain.reader() as r:
            deal = sm.get_deal(r, msg.file_id)
        col = next((c for c in deal.columns if c.frag_index == msg.frag_index), None) \
            if deal else None
        round = 0 if col is None else col.round + 1
        sig = self.key.sign(sm.acceptance_bytes(self.chain_id, msg.file_id, msg.frag_index,
                                                root, nbytes, msg.segments, round, height,
                                                booked.account))
        return Acceptance(root, nbytes, height, sig).encode()

    async def get(self, _peer: bytes, raw: bytes) -> bytes:
        msg = GetPiece.decode(raw)
        self.gets += 1
        if self.fault == "slow_get":
            await asyncio.sleep(2.0)  # a provider that answers, late; nothing waits on this
        piece = self.pieces.get((msg.file_id, msg.frag_index, msg.segment))
        if piece is None:
            raise LookupError("no such piece")
        segments = 1 + max(s for (f, j, s) in self.pieces
                           if f == msg.file_id and j == msg.frag_index)
        path = layout.column_proof(self._roots(msg.file_id, msg.frag_index, segments),
                                   msg.segment)
        if self.fault == "corrupt":
            piece = bytes([piece[0] ^ 1]) + piece[1:]
        return PieceReply(piece, path).encode()

    async def receipt(self, _peer: bytes, raw: bytes) -> bytes:
        self.receipts.append(sm.Receipt.decode(raw))
        return b""


class World:
    """A chain, providers registered on it, and a client P2P endpoint."""

    def __init__(self, net: ChainNet, providers: list[FakeProvider], client: P2P) -> None:
        self.net, self.providers, self.client = net, providers, client
        self.view = NetView(net, OWNER)

    def by_address(self, address: bytes) -> FakeProvider:
        return next(p for p in self.providers if p.address == address)

    def deal(self, file_id: bytes) -> sm.Deal:
        deal = self.view.deal(file_id)
        assert deal is not None
        return deal

    def balance(self, key: PrivateKey) -> int:
        from smartchain.modules.bank.module import get_account

        with self.net.chain.reader() as r:
            return get_account(r, key.address).balance

    def empty_blocks(self, count: int) -> None:
        for _ in range(count):
            self.net.block()


def run_world(chainkit: ChainKit, faults: list[str], test: Any, *, bandwidth_price: int = 0,
              params: Params | None = None, timeout: float = 60.0) -> None:
    """Start a chain and ``len(faults)`` providers (a fault each; "" for none, "dead" for one
    whose address refuses connections), run ``test(world)``, stop everything."""
    balances = {OWNER: 1_000 * HPC, STRANGER: 1_000 * HPC, REPAIRER: 10 * HPC,
                **{k: 100 * HPC for k in PROVIDER_KEYS}}
    genesis = chainkit.genesis(balances, params=params or Params())
    chain = chainkit.open(genesis)
    net = ChainNet(chainkit, chain, PrivateKey.from_seed(bytes([250]) * 32))

    async def main() -> None:
        providers = [FakeProvider(k, net, f) for k, f in zip(PROVIDER_KEYS, faults, strict=False)]
        client = P2P(PrivateKey.generate(), NET, "127.0.0.1", 0, config=P2PConfig(pex=False))
        try:
            for p in providers:
                await p.p2p.start()
            await client.start()
            raws = [net.sign(p.key, sm.RegisterProvider(
                10 * GiB, 1000, bandwidth_price, 10 * HPC, p.p2p.address, p.key.public_key))
                for p in providers]
            assert all(r.ok for r in net.block(*raws))
            for p in providers:
                if p.fault == "dead":
                    await p.p2p.stop()  # registered, but nobody answers there any more
            await asyncio.wait_for(test(World(net, providers, client)), timeout)
        finally:
            await client.stop()
            for p in providers:
                await p.p2p.stop()

    asyncio.run(main())


def _random(size: int) -> bytes:
    return os.urandom(size)


# --- put and get ---------------------------------------------------------------------------


def test_put_then_get_round_trip(chainkit: ChainKit, tmp_path: Path) -> None:
    data = _random(40 * PIECE * 4 + 12345)  # 41 segments of 4 x 16 KiB, the last short

    async def test(w: World) -> None:
        stages: list[tuple[str, int, int]] = []
        res = await sc.put(w.client, w.view, OWNER, data, k=4, n=6, epochs=5,
                           progress=lambda *a: stages.append(a))
        deal = w.deal(res.file_id)
        assert (deal.owner, deal.size, deal.k, deal.code_n) == (OWNER.address, len(data), 4, 8)
        assert deal.segments == 41 == res.segments
        assert len(deal.columns) == 6 and all(c.healthy for c in deal.columns)
        assert len({c.provider for c in deal.columns}) == 6
        assert deal.repair_threshold == 6  # any lost column is repaired
        for c in deal.columns:  # the provider holds exactly what the chain has the root of
            p = w.by_address(c.provider)
            assert layout.column_root(p._roots(res.file_id, c.frag_index, 41)) == c.root
        # hedged long tail: 8 columns were coded, but reserves only start for a straggler
        assert len(data) * 6 / 4 <= res.bytes_sent <= len(data) * 8 / 4 + 8 * 41 * 200
        if res.paused == 0:  # nobody lagged: exactly the n columns were sent
            assert res.bytes_sent == 6 * res.column_bytes
        up = [s for s in stages if s[0] == "upload"]
        assert up[-1][1] == up[-1][2] and [s[0] for s in stages[-2:]] == ["deal", "deal"]

        (tmp_path / "files").mkdir()
        out = tmp_path / "files" / "out.bin"
        got = await sc.get(w.client, w.view, OWNER, res.file_id, out)
        assert out.read_bytes() == data
        assert got.size == len(data) and got.corrupt == [] and got.pieces >= 4 * 41
        assert list(out.parent.iterdir()) == [out]  # no temporary file left behind

    run_world(chainkit, [""] * 8, test)


def test_put_from_a_file_and_an_empty_file(chainkit: ChainKit, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(_random(3 * PIECE * 2 + 7))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")

    async def test(w: World) -> None:
        for path in (src, empty):
            res = await sc.put(w.client, w.view, OWNER, path, k=2, n=3, epochs=2)
            out = tmp_path / (path.name + ".out")
            await sc.get(w.client, w.view, OWNER, res.file_id, out)
            assert out.read_bytes() == path.read_bytes()

    run_world(chainkit, [""] * 5, test)


def test_put_replaces_dead_and_lying_providers(chainkit: ChainKit, tmp_path: Path) -> None:
    """Three of eight providers fail (unreachable, refusing, acknowledging a wrong root):
    the deal still gets 4 honest columns, none on a failed provider."""
    data = _random(10 * PIECE * 2)

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=4, epochs=3)
        bad = {p.address for p in w.providers if p.fault}
        deal = w.deal(res.file_id)
        assert {c.provider for c in deal.columns}.isdisjoint(bad)
        out = tmp_path / "out"
        await sc.get(w.client, w.view, OWNER, res.file_id, out)
        assert out.read_bytes() == data

    run_world(chainkit, ["dead", "refuse", "bad_ack", "", "", "", "", ""], test)


def test_long_tail_cancels_a_slow_provider(chainkit: ChainKit) -> None:
    data = _random(30 * PIECE * 2)

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=4, epochs=3)
        slow = next(p for p in w.providers if p.fault == "slow")
        assert slow.address not in {c.provider for c in w.deal(res.file_id).columns}
        assert slow.puts < 30  # it was stopped long before it had every segment
        assert res.code_n == 6
        if slow.puts:  # placed among the first n (not as a reserve): cut, one reserve in
            assert res.paused >= 1 and res.bytes_sent < 5 * res.column_bytes

    run_world(chainkit, ["slow", "", "", "", "", ""], test)


def test_a_paused_straggler_resumes_when_another_column_fails(chainkit: ChainKit,
                                                             tmp_path: Path) -> None:
    """Five columns for n = 4: one provider is slow, one fails after four pieces. The slow
    one may be cut as a straggler while five run, but once the flaky one fails it is
    needed: it resumes where it stopped and ends up in the deal."""
    data = _random(20 * PIECE * 2)

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=4, epochs=3)
        slow, flaky = (next(p for p in w.providers if p.fault == f) for f in ("slow", "flaky"))
        holders = {c.provider for c in w.deal(res.file_id).columns}
        assert slow.address in holders and flaky.address not in holders
        assert res.failed == [flaky.address] and res.code_n == 5
        out = tmp_path / "out"
        await sc.get(w.client, w.view, OWNER, res.file_id, out)
        assert out.read_bytes() == data

    run_world(chainkit, ["slow", "flaky", "", "", ""], test)


def test_put_fails_cleanly_when_too_few_providers(chainkit: ChainKit) -> None:
    async def test(w: World) -> None:
        before = w.balance(OWNER)
        with pytest.raises(sc.NotEnoughProviders, match="needs 6 storage providers"):
            await sc.put(w.client, w.view, OWNER, b"x" * 1000, k=4, n=6)
        with pytest.raises(sc.UploadFailed, match="only 2 of 3 providers"):
            await sc.put(w.client, w.view, OWNER, b"x" * 1000, k=2, n=3)
        with pytest.raises(sc.StorageError, match="1 <= k < n"):
            await sc.put(w.client, w.view, OWNER, b"x", k=3, n=3)
        assert w.balance(OWNER) == before  # nothing was posted, nothing paid

    run_world(chainkit, ["", "", "dead"], test)


def test_get_survives_dead_providers_and_reports_corrupt_ones(chainkit: ChainKit,
                                                              tmp_path: Path) -> None:
    data = _random(12 * PIECE * 4 + 999)

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=4, n=6, epochs=3)
        deal = w.deal(res.file_id)
        holders = [w.by_address(c.provider) for c in deal.columns]
        holders[0].fault = "corrupt"
        await holders[1].p2p.stop()  # n - k = 2 columns lost: one dead, one lying
        (tmp_path / "files").mkdir()
        out = tmp_path / "files" / "out"
        got = await sc.get(w.client, w.view, OWNER, res.file_id, out)
        assert out.read_bytes() == data
        assert got.corrupt and {c.provider for c in got.corrupt} == {holders[0].address}
        # segments are fetched FETCH_WINDOW at a time and each of those in flight may catch
        # it once; once caught it is not asked again (so not for every segment)
        assert len(got.corrupt) <= sc.FETCH_WINDOW + 1 < deal.segments
        assert holders[0].gets < deal.segments
        assert got.failures >= 1

        await holders[2].p2p.stop()  # a third column gone: 3 < k = 4 pieces per segment
        out2 = tmp_path / "files" / "out2"
        with pytest.raises(sc.SegmentUnavailable, match="segment 0: only 3 of the 4"):
            await sc.get(w.client, w.view, OWNER, res.file_id, out2)
        assert not out2.exists() and sorted(out.parent.iterdir()) == [out]

    run_world(chainkit, [""] * 6, test)


def test_get_hedges_around_a_slow_provider(chainkit: ChainKit, tmp_path: Path) -> None:
    """A download asks k columns, data fragments first; the provider of column 0 answers
    late, so each segment asks one more column instead of waiting for it."""
    data = _random(6 * PIECE * 2)

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=4, epochs=3)
        deal = w.deal(res.file_id)
        slow = w.by_address(next(c.provider for c in deal.columns if c.frag_index == 0))
        slow.fault = "slow_get"
        out = tmp_path / "out"
        got = await sc.get(w.client, w.view, OWNER, res.file_id, out)
        assert out.read_bytes() == data
        assert got.hedges >= deal.segments - sc.FETCH_WINDOW  # nearly every segment hedged
        # k pieces per segment were received: the slow answers were never waited for
        assert got.bytes_received == sum(
            sm.piece_length(deal, s) for s in range(deal.segments)) * 2

    run_world(chainkit, ["", "", "", ""], test)


def test_get_can_ask_more_than_k_columns_at_once(chainkit: ChainKit, tmp_path: Path) -> None:
    data = _random(4 * PIECE * 2)

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=4, epochs=3)
        segments = w.deal(res.file_id).segments
        before = sum(p.gets for p in w.providers)
        a = await sc.get(w.client, w.view, OWNER, res.file_id, tmp_path / "a")
        plain = sum(p.gets for p in w.providers) - before
        b = await sc.get(w.client, w.view, OWNER, res.file_id, tmp_path / "b", extra=1)
        wide = sum(p.gets for p in w.providers) - before - plain
        assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes() == data
        # k, then k + 1 requests per segment (and one more for any piece that was late)
        assert plain == 2 * segments + a.hedges
        assert wide == 3 * segments + b.hedges

    run_world(chainkit, ["", "", "", ""], test)


def test_get_pays_providers_with_valid_receipts(chainkit: ChainKit, tmp_path: Path) -> None:
    data = _random(5 * PIECE * 2)
    price = 10 * GiB  # 10 base units per byte: every piece is worth a receipt

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=3, epochs=2)
        got = await sc.get(w.client, w.view, OWNER, res.file_id, tmp_path / "out")
        receipts = [r for p in w.providers for r in p.receipts]
        assert got.receipts == len(receipts) >= 2 * 5
        for r in receipts:
            assert r.client == OWNER.public_key and r.file_id == res.file_id
            assert r.amount == sm.bandwidth_amount(r.bytes, price)
            assert w.by_address(r.provider).receipts.count(r) == 1
            assert verify(OWNER.public_key, sm.receipt_bytes(w.view.chain_id, r), r.signature)
        # a provider claims them on chain and is paid by the client
        p = w.by_address(receipts[0].provider)
        mine = tuple(r for r in receipts if r.provider == p.address)
        before = w.balance(OWNER)
        w.net.ok(p.key, sm.ClaimBandwidth(mine))
        assert w.balance(OWNER) == before - sum(r.amount for r in mine)

    run_world(chainkit, [""] * 3, test, bandwidth_price=price)


def test_get_downloads_the_whole_file_while_the_key_is_on_the_way(chainkit: ChainKit,
                                                                 tmp_path: Path) -> None:
    data = _random(10 * PIECE * 2 + 777)  # 11 segments of 2 x 16 KiB

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=3, epochs=2)
        key: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        seen: list[bytes] = []
        (tmp_path / "files").mkdir()
        out = tmp_path / "files" / "out"
        got = asyncio.ensure_future(sc.get(w.client, w.view, STRANGER, res.file_id, out,
                                           file_key=key, sink=seen.append,
                                           prefetch_bytes=len(data)))
        while sum(p.gets for p in w.providers) < 2 * 11:  # every segment's k pieces
            assert not got.done()
            await asyncio.sleep(0.01)
        assert seen == [] and not out.exists()  # nothing is decrypted without the key
        key.set_result(layout.file_key(OWNER.seed, res.salt))
        result = await got
        assert out.read_bytes() == data == b"".join(seen) and result.size == len(data)

        refused: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        failing = asyncio.ensure_future(sc.get(w.client, w.view, STRANGER, res.file_id,
                                               out.parent / "never", file_key=refused))
        refused.set_exception(LookupError("no key was delivered"))
        with pytest.raises(LookupError, match="no key"):
            await failing
        assert list(out.parent.iterdir()) == [out]  # no partial file left behind

    run_world(chainkit, [""] * 3, test)


def test_get_refuses_a_key_that_is_not_the_owner(chainkit: ChainKit, tmp_path: Path) -> None:
    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, b"secret" * 100, k=2, n=3, epochs=2)
        with pytest.raises(sc.NotOwner):
            await sc.get(w.client, w.view, STRANGER, res.file_id, tmp_path / "out")
        with pytest.raises(sc.DealNotFound):
            await sc.get(w.client, w.view, OWNER, h256(b"nothing"), tmp_path / "out")
        with pytest.raises(sc.NotOwner):
            sc.cancel(NetView(w.net, STRANGER), STRANGER, res.file_id)
        assert not (tmp_path / "out").exists()

    run_world(chainkit, [""] * 3, test)


def test_health_counts_verified_pieces_per_segment(chainkit: ChainKit) -> None:
    data = _random(6 * PIECE * 2 + 5)

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=4, epochs=2)
        h = await sc.health(w.view, w.client, res.file_id)
        assert h.segments == [4] * 7 and h.recoverable
        deal = w.deal(res.file_id)
        w.by_address(deal.columns[0].provider).fault = "corrupt"
        await w.by_address(deal.columns[1].provider).p2p.stop()
        h = await sc.health(w.view, w.client, res.file_id, timeout=2.0)
        assert h.segments == [2] * 7 and h.recoverable
        cols = {c.frag_index: c for c in h.columns}
        assert cols[deal.columns[0].frag_index].corrupt == 7
        assert cols[deal.columns[1].frag_index].missing == 7

    run_world(chainkit, [""] * 4, test)


def test_cancel_returns_the_escrow(chainkit: ChainKit) -> None:
    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, _random(1000), k=2, n=3, epochs=50)
        deal = w.deal(res.file_id)
        locked = deal.escrow + deal.repair_budget
        assert locked > 0
        before = w.balance(OWNER)
        tx = sc.cancel(w.view, OWNER, res.file_id)
        assert w.deal(res.file_id).status == sm.CANCELLED
        # the deal had not started (it starts at the next epoch): everything comes back
        assert w.balance(OWNER) == before + locked - w.view.receipts[tx].fee

    run_world(chainkit, [""] * 3, test)


# --- repair --------------------------------------------------------------------------------


def test_repair_rebuilds_a_lost_column_on_a_new_provider(chainkit: ChainKit,
                                                         tmp_path: Path) -> None:
    """No provider answers audits here, so after an epoch every column is unhealthy; the
    repairer rebuilds the column of a provider that died from the others (still serving)
    onto the spare, and the owner's file still reads back."""
    data = _random(9 * PIECE * 2 + 77)
    params = replace(Params(), storage_epoch_blocks=4, storage_audit_window=2)

    async def test(w: World) -> None:
        res = await sc.put(w.client, w.view, OWNER, data, k=2, n=3, epochs=20)
        deal = w.deal(res.file_id)
        assert len(w.providers) - len(deal.columns) >= 1  # a spare to repair onto
        lost = deal.columns[0]
        repairer = NetView(w.net, REPAIRER)
        assert not await repair_column(w.client, repairer, res.file_id, lost.frag_index,
                                       key=REPAIRER)
        w.empty_blocks(8)  # the deal starts, its challenges go unanswered, the epoch settles
        deal = w.deal(res.file_id)
        assert not any(c.healthy for c in deal.columns)
        await w.by_address(lost.provider).p2p.stop()
        budget = w.balance(REPAIRER)
        assert await repair_column(w.client, repairer, res.file_id, lost.frag_index,
                                   key=REPAIRER)
        after = w.deal(res.file_id)
        new = next(c for c in after.columns if c.frag_index == lost.frag_index)
        assert new.healthy and new.root == lost.root
        assert new.provider not in {c.provider for c in deal.columns}
        assert w.balance(REPAIRER) > budget - 10**6  # only the fee: paid once audited
        assert new.repairer == REPAIRER.address and new.bounty > 0
        out = tmp_path / "out"
        await sc.get(w.client, w.view, OWNER, res.file_id, out)
        assert out.read_bytes() == data

    run_world(chainkit, [""] * 4, test, params=params)
