"""``smart store`` end to end, the issue's acceptance scenario: four signers and six storage
provider nodes (real processes on loopback, audit epochs of 12 blocks), files put and got
back through the CLI as a user runs it.

- a small file: put, status (every piece verified on every provider), ls, get, rm;
- a piece rots on a provider's disk: the next audit catches it (the column turns unhealthy,
  the provider is slashed), a repair puts the column back within two epochs (onto the same
  provider: with six providers there is no spare), the repaired column passes its next
  audit and the file still downloads byte-identical;
- a provider that goes offline is no longer paid while the others are, and its column
  turns unhealthy (it registers again when it comes back);
- a 20 MiB file 4-of-6 survives two providers killed;
- providers that serve corrupt pieces (their disk rotted *and* their own checksum was
  rewritten to match, so they do not notice): the download detects them by the Merkle
  check against the chain, reports them, and still writes the right bytes.

The tests run in file order and share the network (the last two degrade it).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest
from framework.harness import wait_until
from framework.netharness import Network
from test_cli import Cli, assert_error, keyed_cli, ok_json
from test_storage_provider import STORAGE_TEST_PARAMS, records, start_storage_network

from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.storage import module as sm
from smartchain.p2p.dht import DhtNode
from smartchain.sdkfiles import client_p2p
from smartchain.storage import client as sc
from smartchain.storage import layout
from smartchain.storage import piecestore as ps
from smartchain.types.amount import UNITS_PER_HPC, format_hpc

MiB = 1024 * 1024


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_storage_e2e/" + tag.encode()))


OWNER = _key("owner")
OTHER = _key("other")
EPOCHS = "100000"  # outlives the test: providers keep (and are audited on) every column
EPOCH = STORAGE_TEST_PARAMS["storage_epoch_blocks"]
# Per GiB per epoch: what a proven column-epoch pays dwarfs the fee of the proof
# transaction, so a provider that answers its audits sees its balance grow.
PRICE = 10 * UNITS_PER_HPC


@pytest.fixture(scope="module")
def snet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, list[int]]]:
    net, idx = start_storage_network(
        tmp_path_factory.mktemp("store-e2e"), 4, [64 * MiB] * 6,
        accounts=[(OWNER.address, 1_000_000 * UNITS_PER_HPC),
                  (OTHER.address, 100_000 * UNITS_PER_HPC)],
        params=STORAGE_TEST_PARAMS, price=PRICE)
    try:
        yield net, idx
    finally:
        net.close()


@pytest.fixture(scope="module")
def cli(snet: tuple[Network, list[int]], tmp_path_factory: pytest.TempPathFactory) -> Cli:
    net, _ = snet
    home = Path(tmp_path_factory.mktemp("store-e2e-cli")) / "smart-home"
    return keyed_cli(home, net[0].url or "", {"owner": OWNER, "other": OTHER})


def _file(path: Path, size: int) -> Path:
    path.write_bytes(os.urandom(size))
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _provider_node(net: Network, idx: list[int], address: str) -> int:
    raw = from_bech32(address)
    return next(i for i in idx if net[i].key.address == raw)


def _rot_column(home: Path, file_id: bytes, frag_index: int, *,
                segments: Collection[int] | None = None, hide: bool = True) -> int:
    """Overwrite pieces of a column on a provider's disk with random bytes (every segment,
    or ``segments``), found through its piece store's index. ``hide``: also rewrite the
    store's checksums to match, so the provider itself cannot tell and serves the rotten
    bytes (only the chain's roots can tell: a download's Merkle check, and the audit, for
    which the provider cannot build a Merkle path); otherwise its own checksum check
    refuses to serve or prove them. Returns the pieces changed. (LMDB allows a second
    process on the index.)"""
    root = home / "storage"
    env = lmdb.open(str(root / ps.INDEX_DIR), map_size=ps.INDEX_MAP_SIZE, max_dbs=8)
    changed = 0
    try:
        slots, blobs = env.open_db(b"slots"), env.open_db(b"blobs")
        with env.begin(write=True) as txn:
            segment = 0
            while (raw := txn.get(ps.slot_key(file_id, frag_index, segment), db=slots)):
                if segments is None or segment in segments:
                    meta = ps.SlotMeta.decode(raw)
                    h = meta.root.hex()
                    path = root / ps.BLOBS_DIR / h[:ps.FANOUT_DIGITS] / h
                    data = os.urandom(path.stat().st_size)
                    path.write_bytes(data)
                    if hide:
                        blob = ps.BlobMeta.decode(txn.get(meta.root, db=blobs))
                        txn.put(meta.root, ps.BlobMeta(blob.size, blob.refs,
                                                       ps.checksum(data)).encode(), db=blobs)
                    changed += 1
                segment += 1
    finally:
        env.close()
    return changed


def _dht_holders(net: Network, idx: list[int], file_id: bytes,
                 columns: dict[int, bytes]) -> dict[int, bytes | None]:
    """Who the DHT says holds each column (the first provider found), asked from a fresh
    peer bootstrapped through the provider nodes."""
    async def ask() -> dict[int, bytes | None]:
        async with client_p2p(net.client(0).status()["genesis_hash"]) as p2p:
            dht = DhtNode(p2p, p2p.peer_id, None)
            await dht.bootstrap([net[i].p2p_address for i in idx])
            out: dict[int, bytes | None] = {}
            for frag in columns:
                found = await dht.find_providers(layout.column_dht_key(file_id, frag))
                out[frag] = found[0].peer_id if found else None
            return out
    return asyncio.run(ask())


def _put(cli: Cli, path: Path, *args: str) -> dict[str, Any]:
    r = cli.run("--json", "store", "put", str(path), "--from", "owner", "--epochs", EPOCHS,
                *args)
    return ok_json(r)


def _lib_put(net: Network, path: Path, **terms: Any) -> sc.PutResult:
    """``storage.client.put`` as the owner, for the terms the CLI does not expose."""
    view = sc.ApiChainView(net.client(0), OWNER)

    async def run() -> sc.PutResult:
        async with client_p2p(view.network_id) as p2p:
            return await sc.put(p2p, view, OWNER, path, **terms)

    return asyncio.run(run())


def _deal(net: Network, file_id: bytes) -> sm.Deal:
    deal = net.client(0).storage_deal_record(file_id)
    assert deal is not None
    return deal


def _column(deal: sm.Deal, frag_index: int) -> sm.Column:
    return next(c for c in deal.columns if c.frag_index == frag_index)


def _balances(net: Network, addresses: Collection[bytes]) -> dict[bytes, int]:
    chain = net.client(0)
    return {a: chain.balance(to_bech32(a)) for a in addresses}


@pytest.fixture(scope="module")
def audited(snet: tuple[Network, list[int]],
            tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """A 12 MiB file 4-of-6 (two segments) on the six providers, repaired as soon as one
    column is lost (repair threshold 6), once every column has been proven and paid for an
    epoch. Returns (file id, the original file)."""
    net, _ = snet
    src = _file(tmp_path_factory.mktemp("audited") / "audited.bin", 12 * MiB)
    res = _lib_put(net, src, k=4, n=6, epochs=1_000, repair_threshold=6)
    assert (res.segments, res.code_n, len(res.columns)) == (2, 6, 6)
    start = _deal(net, res.file_id)
    fee = sm.epoch_fee(PRICE, sm.deal_column_bytes(start))
    assert {c.price for c in start.columns} == {PRICE}
    wait_until(lambda: _deal(net, res.file_id).escrow <= start.escrow - 6 * fee, 60,
               interval=0.1, what="all six columns proven and paid for an epoch")
    return res.file_id, src


def test_put_status_ls_get_rm(cli: Cli, snet: tuple[Network, list[int]],
                              tmp_path: Path) -> None:
    src = _file(tmp_path / "small.bin", 3 * MiB + 12345)
    doc = _put(cli, src)
    fid = doc["file_id"]
    assert (doc["k"], doc["n"], doc["code_n"], doc["size"]) == (4, 6, 6, src.stat().st_size)
    assert doc["segments"] == 1 and len(doc["columns"]) == 6
    assert 1500 <= doc["expansion_permille"] < 1510  # 6 providers: no long-tail column to spare

    status = ok_json(cli.run("--json", "store", "status", fid))
    assert status["deal"]["status"] == "active" and status["deal"]["healthy"] == 6
    assert status["health"]["segments"] == [6] and status["health"]["recoverable"]

    listed = ok_json(cli.run("--json", "store", "ls", "--from", "owner"))["deals"]
    assert fid in [d["file_id"] for d in listed]

    # Each column's provider announced it in the DHT: a peer that knows nothing of the chain
    # finds who holds every column.
    net, idx = snet
    peer_of = {net[i].key.address: net[i].key.public_key for i in idx}
    holders = {c["frag_index"]: peer_of[from_bech32(c["provider"])] for c in doc["columns"]}
    wait_until(lambda: _dht_holders(net, idx, bytes.fromhex(fid), holders) == holders,
               30, interval=0.5, what="every column announced in the DHT")

    out = tmp_path / "small.out"
    got = ok_json(cli.run("--json", "store", "get", fid, "-o", str(out), "--from", "owner"))
    assert _digest(out) == _digest(src) and got["corrupt"] == []
    assert got["receipts"] >= 4  # each provider that served a piece got a signed receipt

    assert_error(cli.run("store", "get", fid, "-o", str(tmp_path / "x"), "--from", "other"),
                 "only the owner")
    r = ok_json(cli.run("--json", "store", "rm", fid, "--from", "owner"))
    assert r["status"] == "cancelled"
    assert_error(cli.run("store", "rm", fid, "--from", "owner"), "already cancelled")


def test_audit_catches_a_rotten_piece_and_repair_restores_it(
        cli: Cli, snet: tuple[Network, list[int]], audited: tuple[bytes, Path],
        tmp_path: Path) -> None:
    """Overwrite one piece on one provider's disk (its checksum left as it was, so its own
    reads see the damage): it cannot answer the audit, so the next settlement marks the
    column unhealthy and slashes it; another provider rebuilds the column and, with no
    spare among six, puts it back onto the same one; that column then passes its audits."""
    net, idx = snet
    file_id, src = audited
    params = net.genesis.params
    col = _deal(net, file_id).columns[0]
    victim = net[_provider_node(net, idx, to_bech32(col.provider))]
    before = records(net)[col.provider]
    rotted_at = net.height(0)
    assert _rot_column(victim.home, file_id, col.frag_index, segments={1}, hide=False) == 1

    # Sample every poll: the column is unhealthy only until it is repaired.
    seen_unhealthy: list[int] = []

    def slashed() -> tuple[int, sm.StorageProvider] | None:
        if not _column(_deal(net, file_id), col.frag_index).healthy:
            seen_unhealthy.append(net.height(0))
        p = records(net)[col.provider]
        return (net.height(0), p) if p.misses > before.misses else None

    height, p = wait_until(slashed, 60, interval=0.05, what="the rotten column slashed")
    slash_height = height - height % EPOCH  # settled at an epoch's first block, at or below
    # The next audit caught it: challenges opened at the first epoch start after the damage
    # were settled (at the latest) at the start of the epoch after.
    assert slash_height <= (rotted_at // EPOCH + 2) * EPOCH, (rotted_at, height)
    assert p.misses == before.misses + 1 and p.reputation < before.reputation
    assert "cannot answer the audit of segment 1 of column" in victim.log_text()
    assert "corrupt on disk" in victim.log_text()

    def repaired() -> int | None:
        height = net.height(0)  # read first: the repair is at or below it
        deal = _deal(net, file_id)
        if not _column(deal, col.frag_index).healthy:
            seen_unhealthy.append(height)
            return None
        return height if sm.healthy_count(deal) == 6 else None

    repaired_at = wait_until(repaired, 60, interval=0.05, what="the column repaired")
    assert seen_unhealthy, "the slashed column was never seen unhealthy on chain"
    assert repaired_at <= slash_height + 2 * EPOCH, (slash_height, repaired_at)
    deal = _deal(net, file_id)
    again = _column(deal, col.frag_index)  # same provider, root and price: healthy
    assert (again.provider, again.root, again.price, again.round) == (
        col.provider, col.root, col.price, col.round + 1)
    # Slashed (for the column's bytes) below the minimum collateral, the victim topped it up
    # and is active again.
    share = sm.column_collateral(params, sm.deal_column_bytes(deal))
    slash = min(before.collateral, share * params.storage_slash_bps // sm.BPS)
    assert f"collateral +{format_hpc(slash)} HPC" in victim.log_text()
    assert records(net)[col.provider].active
    line = f"storage: repaired column {col.frag_index} of deal {file_id.hex()}"
    repairers = wait_until(lambda: [n for n in (net[i] for i in idx) if line in n.log_text()],
                           10, interval=0.05, what="the repairer's own account of it")
    assert len(repairers) == 1 and repairers[0] is not victim
    assert f"accepted column {col.frag_index}" in victim.log_text()

    # The repaired column passes its next audit: settled without a new miss, still healthy.
    settled = (repaired_at // EPOCH + 2) * EPOCH
    net.wait_height(0, settled, timeout=60)
    assert records(net)[col.provider].misses == before.misses + 1
    assert sm.healthy_count(_deal(net, file_id)) == 6

    out = tmp_path / "audited.out"
    got = ok_json(cli.run("--json", "store", "get", file_id.hex(), "-o", str(out), "--from",
                          "owner"))
    assert _digest(out) == _digest(src) and got["corrupt"] == []


def test_offline_provider_is_no_longer_paid(snet: tuple[Network, list[int]],
                                            audited: tuple[bytes, Path]) -> None:
    """Stop a provider of the audited deal: its column's next audit goes unanswered, the
    column turns unhealthy, and over the next two epochs its balance stays put while every
    other provider of the deal is paid. Restarted, it registers again."""
    net, idx = snet
    file_id, _ = audited

    def all_healthy() -> sm.Deal | None:
        deal = _deal(net, file_id)
        return deal if sm.healthy_count(deal) == 6 else None

    deal = wait_until(all_healthy, 60, interval=0.1, what="six healthy columns")
    col = deal.columns[1]
    gone = _provider_node(net, idx, to_bech32(col.provider))
    others = [c.provider for c in deal.columns if c.provider != col.provider]
    before = records(net)[col.provider]
    net.stop(gone)
    try:
        wait_until(lambda: not _column(_deal(net, file_id), col.frag_index).healthy, 60,
                   interval=0.1, what="the offline provider's column unhealthy")
        p = records(net)[col.provider]
        assert p.misses == before.misses + 1 and not p.active  # slashed below the minimum
        start = net.height(0)
        base = _balances(net, [col.provider, *others])
        net.wait_height(0, (start // EPOCH + 3) * EPOCH, timeout=60)  # two more epochs
        now = _balances(net, [col.provider, *others])
        assert now[col.provider] == base[col.provider]
        assert all(now[a] > base[a] for a in others), (base, now)
        assert not _column(_deal(net, file_id), col.frag_index).healthy
        assert records(net)[col.provider].misses == before.misses + 1  # no longer audited
    finally:
        net.start(gone)
    wait_until(lambda: records(net)[col.provider].active, 30, interval=0.1,
               what="the provider registered again")


def test_20_mib_file_survives_two_dead_providers(cli: Cli, snet: tuple[Network, list[int]],
                                                 tmp_path: Path) -> None:
    """Kills two providers: only the last test runs after it."""
    net, idx = snet
    src = _file(tmp_path / "big.bin", 20 * MiB)
    doc = _put(cli, src, "--redundancy", "4/6")
    fid = doc["file_id"]
    assert doc["segments"] == 3 and len(doc["columns"]) == 6
    holders = [_provider_node(net, idx, c["provider"]) for c in doc["columns"]]
    for i in holders[:2]:
        net.kill(i)
    out = tmp_path / "big.out"
    got = ok_json(cli.run("--json", "store", "get", fid, "-o", str(out), "--from", "owner",
                          "--timeout", "10"))
    assert _digest(out) == _digest(src) and got["size"] == 20 * MiB
    status = ok_json(cli.run("--json", "store", "status", fid, "--timeout", "5"))
    assert status["health"]["segments"] == [4, 4, 4] and status["health"]["recoverable"]
    dead = {to_bech32(net[i].key.address) for i in holders[:2]}
    assert {c["provider"] for c in status["health"]["columns"] if c["missing"]} == dead


def test_providers_serving_corrupt_pieces_are_detected(cli: Cli,
                                                       snet: tuple[Network, list[int]],
                                                       tmp_path: Path) -> None:
    """Runs on what the previous test left: four providers alive (the two dead ones may
    still be registered: the upload's long-tail columns absorb them). The deal's two data
    columns lie: a download asks data columns first, so it meets the liars, detects them
    and still rebuilds every segment from the two honest (parity) columns.

    The chain's audits would catch the liars too and mark their columns unhealthy, and a
    download then no longer asks them: so the chain is halted (two of the four signers
    stopped) before the pieces rot, and starts again after the downloads and the status
    check, however slow the machine is."""
    net, idx = snet
    src = _file(tmp_path / "c.bin", 9 * MiB)  # 3 segments at 2-of-4
    doc = _put(cli, src, "--redundancy", "2/4")
    fid = bytes.fromhex(doc["file_id"])
    assert doc["segments"] == 3 and len(doc["columns"]) == 4
    start = _deal(net, fid)
    fees = sum(sm.epoch_fee(c.price, sm.deal_column_bytes(start)) for c in start.columns)
    wait_until(lambda: _deal(net, fid).escrow <= start.escrow - fees, 60, interval=0.05,
               what="every column proven for the deal's first epoch")
    halted = (2, 3)  # signers: without them no block is decided, so no audit settles
    for i in halted:
        net.stop(i)
    liars = doc["columns"][:2]
    for liar in liars:
        node = _provider_node(net, idx, liar["provider"])
        assert _rot_column(net[node].home, fid, liar["frag_index"]) == 3

    out, out2 = tmp_path / "c.out", tmp_path / "c2.out"
    as_json, as_human, as_status = cli.many(
        ["--json", "store", "get", fid.hex(), "-o", str(out), "--from", "owner"],
        ["store", "get", fid.hex(), "-o", str(out2), "--from", "owner"],
        ["--json", "store", "status", fid.hex()])
    got = ok_json(as_json)
    assert _digest(out) == _digest(src)
    reported = {c["provider"] for c in got["corrupt"]}
    assert reported and reported <= {liar["provider"] for liar in liars}
    assert as_human.returncode == 0 and "served a corrupt piece" in as_human.stderr
    assert _digest(out2) == _digest(src)
    status = ok_json(as_status)
    lying = {liar["frag_index"] for liar in liars}
    for c in status["health"]["columns"]:
        assert (c["corrupt"], c["alive"]) == ((3, 0) if c["frag_index"] in lying else (0, 3))
    assert status["health"]["segments"] == [2, 2, 2] and status["health"]["recoverable"]
    for i in halted:
        net.start(i)
