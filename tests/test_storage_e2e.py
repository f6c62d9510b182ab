"""``smart store`` end to end: a signer and six storage provider nodes (real processes on
loopback), files put and got back through the CLI as a user runs it.

- a small file: put, status (every piece verified on every provider), ls, get, rm;
- a 20 MiB file 4-of-6 survives two providers killed;
- providers that serve corrupt pieces (their disk rotted *and* their own checksum was
  rewritten to match, so they do not notice): the download detects them by the Merkle
  check against the chain, reports them, and still writes the right bytes.

The tests run in file order and share the network (the last two degrade it).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest
from netharness import Network
from test_cli import Cli, assert_error, keyed_cli, ok_json
from test_storage_provider import start_storage_network

from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.storage import piecestore as ps
from smartchain.types.amount import UNITS_PER_HPC

MiB = 1024 * 1024


def _key(tag: str) -> PrivateKey:
    return PrivateKey.from_seed(h256(b"test_storage_e2e/" + tag.encode()))


OWNER = _key("owner")
OTHER = _key("other")
EPOCHS = "100000"  # outlives the test: providers keep (and are audited on) every column


@pytest.fixture(scope="module")
def snet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Network, list[int]]]:
    net, idx = start_storage_network(
        tmp_path_factory.mktemp("store-e2e"), 1, [64 * MiB] * 6,
        accounts=[(OWNER.address, 100_000 * UNITS_PER_HPC),
                  (OTHER.address, 100_000 * UNITS_PER_HPC)])
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


def _rot_column(home: Path, file_id: bytes, frag_index: int) -> int:
    """Flip a byte in every piece of a column on a provider's disk and rewrite the piece
    store's checksums to match: the provider itself cannot tell, only the chain's roots
    can. Returns the pieces changed. (LMDB allows a second process on the index.)"""
    root = home / "storage"
    env = lmdb.open(str(root / ps.INDEX_DIR), map_size=ps.INDEX_MAP_SIZE, max_dbs=8)
    changed = 0
    try:
        slots, blobs = env.open_db(b"slots"), env.open_db(b"blobs")
        with env.begin(write=True) as txn:
            segment = 0
            while (raw := txn.get(ps.slot_key(file_id, frag_index, segment), db=slots)):
                meta = ps.SlotMeta.decode(raw)
                h = meta.root.hex()
                path = root / ps.BLOBS_DIR / h[:ps.FANOUT_DIGITS] / h
                data = bytearray(path.read_bytes())
                data[len(data) // 2] ^= 0xFF
                path.write_bytes(bytes(data))
                blob = ps.BlobMeta.decode(txn.get(meta.root, db=blobs))
                txn.put(meta.root, ps.BlobMeta(blob.size, blob.refs,
                                               ps.checksum(bytes(data))).encode(), db=blobs)
                changed += 1
                segment += 1
    finally:
        env.close()
    return changed


def _put(cli: Cli, path: Path, *args: str) -> dict[str, Any]:
    r = cli.run("--json", "store", "put", str(path), "--from", "owner", "--epochs", EPOCHS,
                *args)
    return ok_json(r)


def test_put_status_ls_get_rm(cli: Cli, snet: tuple[Network, list[int]],
                              tmp_path: Path) -> None:
    src = _file(tmp_path / "small.bin", 3 * MiB + 12345)
    doc = _put(cli, src)
    fid = doc["file_id"]
    assert (doc["k"], doc["n"], doc["code_n"], doc["size"]) == (4, 6, 6, src.stat().st_size)
    assert doc["segments"] == 1 and len(doc["columns"]) == 6
    assert 1.5 <= doc["expansion"] < 1.51  # 6 providers: no long-tail column to spare

    status = ok_json(cli.run("--json", "store", "status", fid))
    assert status["deal"]["status"] == "active" and status["deal"]["healthy"] == 6
    assert status["health"]["segments"] == [6] and status["health"]["recoverable"]

    listed = ok_json(cli.run("--json", "store", "ls", "--from", "owner"))["deals"]
    assert fid in [d["file_id"] for d in listed]

    out = tmp_path / "small.out"
    got = ok_json(cli.run("--json", "store", "get", fid, "-o", str(out), "--from", "owner"))
    assert _digest(out) == _digest(src) and got["corrupt"] == []
    assert got["receipts"] >= 4  # each provider that served a piece got a signed receipt

    assert_error(cli.run("store", "get", fid, "-o", str(tmp_path / "x"), "--from", "other"),
                 "only the owner")
    r = ok_json(cli.run("--json", "store", "rm", fid, "--from", "owner"))
    assert r["status"] == "cancelled"
    assert_error(cli.run("store", "rm", fid, "--from", "owner"), "already cancelled")


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
    still be registered: the upload's long-tail columns absorb them). Two of the deal's
    four columns lie, so whichever k + 1 = 3 columns a download asks first, it meets a
    liar, detects it and still rebuilds every segment from the two honest columns."""
    net, idx = snet
    src = _file(tmp_path / "c.bin", 9 * MiB)  # 3 segments at 2-of-4
    doc = _put(cli, src, "--redundancy", "2/4")
    fid = bytes.fromhex(doc["file_id"])
    assert doc["segments"] == 3 and len(doc["columns"]) == 4
    liars = doc["columns"][:2]
    for liar in liars:
        node = _provider_node(net, idx, liar["provider"])
        assert _rot_column(net[node].home, fid, liar["frag_index"]) == 3

    out = tmp_path / "c.out"
    got = ok_json(cli.run("--json", "store", "get", fid.hex(), "-o", str(out), "--from",
                          "owner"))
    assert _digest(out) == _digest(src)
    reported = {c["provider"] for c in got["corrupt"]}
    assert reported and reported <= {liar["provider"] for liar in liars}
    r = cli.run("store", "get", fid.hex(), "-o", str(tmp_path / "c2.out"), "--from", "owner")
    assert r.returncode == 0 and "served a corrupt piece" in r.stderr
    assert _digest(tmp_path / "c2.out") == _digest(src)
    status = ok_json(cli.run("--json", "store", "status", fid.hex()))
    lying = {liar["frag_index"] for liar in liars}
    for c in status["health"]["columns"]:
        assert (c["corrupt"], c["alive"]) == ((3, 0) if c["frag_index"] in lying else (0, 3))
    assert status["health"]["segments"] == [2, 2, 2] and status["health"]["recoverable"]
