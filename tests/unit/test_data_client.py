"""The buyer's checks of a downloaded batch (``storage/datasets.verify_batch``) and of its
delivered keys: every record's device signature, the certificate, the Merkle root, the key
commitment. Chain records are given as the API shows them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from smartchain.agent.messages import sign_message
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.data.sdk import purchase_secret
from smartchain.modules.data.types import (
    BatchFile,
    BatchHeader,
    box_public,
    key_commitment,
    records_root,
    seal,
    sign_batch,
)
from smartchain.modules.devices.types import sign_certificate
from smartchain.storage.datasets import (
    BatchReader,
    DataError,
    WrongKey,
    purchase_keys,
    verify_batch,
)
from smartchain.storage.recordcheck import CHUNK, RecordPool

MAKER, DEVICE, OTHER, BUYER = (PrivateKey.from_seed(bytes([i]) * 32) for i in (1, 2, 3, 4))
CAPS = ["car.trips"]


def signed_batch(records: list[bytes] | None = None) -> tuple[bytes, dict[str, Any]]:
    recs = records or trips(4)
    header = BatchHeader(DEVICE.public_key, "car.trips", 0, 4_000, len(recs),
                         records_root(recs))
    sig = sign_batch(DEVICE, header)
    cert = sign_certificate(MAKER, DEVICE.public_key, "EV-1", "VIN-1", CAPS)
    batch = {"device": DEVICE.public_key.hex(), "schema": "car.trips", "start_ms": "0",
             "end_ms": "4000", "count": str(len(recs)), "root": header.root.hex(),
             "signature": sig.hex(), "file_id": os.urandom(32).hex()}
    return BatchFile(header, sig, cert, tuple(recs)).encode(), batch


def trips(count: int) -> list[bytes]:
    return [sign_message(DEVICE, "trip", i, {"km": i}) for i in range(count)]


DEVICE_DOC = {"pubkey": DEVICE.public_key.hex(), "model": "EV-1", "serial": "VIN-1",
              "capabilities": CAPS, "revoked": False, "manufacturer": to_bech32(MAKER.address)}
MAKER_DOC = {"address": to_bech32(MAKER.address), "pubkey": MAKER.public_key.hex(),
             "name": "Motors"}


def test_a_genuine_batch_verifies_record_by_record() -> None:
    plain, batch = signed_batch()
    verified = verify_batch(plain, batch, DEVICE_DOC, MAKER_DOC)
    assert [r.seq for r in verified.records] == [0, 1, 2, 3]


def test_a_forged_record_inside_a_batch_is_caught() -> None:
    plain, batch = signed_batch()
    f = BatchFile.decode(plain)
    forged = sign_message(OTHER, "trip", 2, {"km": 1})
    bad_sig = f.records[1][:10] + bytes([f.records[1][10] ^ 1]) + f.records[1][11:]
    cases = [
        (replace(f, records=(*f.records[:2], forged, f.records[3])), "another device"),
        (replace(f, records=(f.records[0], bad_sig, *f.records[2:])), "record 1"),
        (replace(f, records=f.records[:3]), "Merkle root"),  # a record dropped
    ]
    for tampered, why in cases:
        with pytest.raises(DataError, match=why):
            verify_batch(tampered.encode(), batch, DEVICE_DOC, MAKER_DOC)


def test_records_the_device_did_not_sign_the_root_of_are_refused() -> None:
    recs = [sign_message(DEVICE, "trip", i, {"km": i}) for i in range(4)]
    plain, batch = signed_batch(recs)
    f = BatchFile.decode(plain)
    swapped = (recs[1], recs[0], *recs[2:])  # genuine records, another order: another root
    with pytest.raises(DataError, match="Merkle root"):
        verify_batch(replace(f, records=swapped).encode(), batch, DEVICE_DOC, MAKER_DOC)


def test_a_revoked_device_or_a_foreign_certificate_is_refused() -> None:
    plain, batch = signed_batch()
    with pytest.raises(DataError, match="unrevoked"):
        verify_batch(plain, batch, {**DEVICE_DOC, "revoked": True}, MAKER_DOC)
    with pytest.raises(DataError, match="certificate"):
        verify_batch(plain, batch, {**DEVICE_DOC, "serial": "VIN-2"}, MAKER_DOC)
    with pytest.raises(DataError, match="not a batch file"):
        verify_batch(b"junk", batch, DEVICE_DOC, MAKER_DOC)


def test_a_buyer_opens_its_keys_and_names_a_wrong_one_it_can_prove() -> None:
    nonce = os.urandom(16)
    file_ids = [os.urandom(32) for _ in range(2)]
    keys = [os.urandom(32) for _ in range(2)]
    boxes = [box_public(purchase_secret(BUYER, nonce, i)) for i in range(2)]
    asset = {"batch_list": [{"file_id": f.hex(), "key_commitment": key_commitment(f, k).hex()}
                            for f, k in zip(file_ids, keys, strict=True)]}
    purchase = {"id": "1", "status": "delivered", "nonce": nonce.hex(), "batches": [0, 1],
                "sealed": [seal(b, k).hex() for b, k in zip(boxes, keys, strict=True)]}
    assert purchase_keys(BUYER, purchase, asset) == list(zip(file_ids, keys, strict=True))
    wrong = {**purchase, "sealed": [purchase["sealed"][0], seal(boxes[1], os.urandom(32)).hex()]}
    with pytest.raises(WrongKey) as exc:
        purchase_keys(BUYER, wrong, asset)
    assert exc.value.position == 1
    with pytest.raises(WrongKey, match="does not open"):
        purchase_keys(OTHER, purchase, asset)


# --- large batches: checked as they arrive, on worker processes ----------------------------


@pytest.fixture(scope="module")
def workers() -> Iterator[RecordPool]:
    pool = RecordPool(workers=2, threshold=1)
    yield pool
    pool.close()


def test_a_forged_record_in_a_large_batch_is_caught_by_the_worker_processes(
        workers: RecordPool) -> None:
    recs = trips(2 * CHUNK + 100)  # three chunks, checked on two workers
    plain, batch = signed_batch(recs)
    verified = verify_batch(plain, batch, DEVICE_DOC, MAKER_DOC, workers)
    assert [r.seq for r in verified.records] == list(range(len(recs)))
    forged = sign_message(OTHER, "trip", 700, {"km": 1})
    bad_sig = recs[1100][:10] + bytes([recs[1100][10] ^ 1]) + recs[1100][11:]
    f = BatchFile.decode(plain)
    cases = [
        (replace(f, records=(*recs[:700], forged, *recs[701:])),
         "record 700 is signed by another device"),
        (replace(f, records=(*recs[:1100], bad_sig, *recs[1101:])), "record 1100: bad signature"),
        (replace(f, records=(*recs[:1100], *recs[1101:])), "Merkle root"),  # one dropped
    ]
    for tampered, why in cases:
        with pytest.raises(DataError, match=why):
            verify_batch(tampered.encode(), batch, DEVICE_DOC, MAKER_DOC, workers)


def test_a_batch_fed_in_pieces_of_any_size_checks_the_same(workers: RecordPool) -> None:
    recs = trips(CHUNK + 3)
    plain, batch = signed_batch(recs)
    for step in (1_000_003, 4096, 333):
        reader = BatchReader(batch, DEVICE_DOC, MAKER_DOC, workers)
        for at in range(0, len(plain), step):
            reader.feed(plain[at:at + step])
        assert [r.seq for r in reader.finish().records] == list(range(len(recs)))
    for cut, why in ((plain[:-1], "ends before its last record"),
                     (plain + b"x", "bytes after its last record"),
                     (plain[:100], "ends before its last record")):
        with pytest.raises(DataError, match=why):
            verify_batch(cut, batch, DEVICE_DOC, MAKER_DOC, workers)


def test_a_file_that_is_not_the_registered_batch_is_refused_from_its_first_bytes() -> None:
    plain, batch = signed_batch()
    other, _ = signed_batch(trips(5))
    reader = BatchReader(batch, DEVICE_DOC, MAKER_DOC)
    with pytest.raises(DataError, match="not the batch registered on chain"):
        reader.feed(other[:300])  # the download stops here, not after the whole file
    reader = BatchReader(batch, DEVICE_DOC, {**MAKER_DOC, "pubkey": OTHER.public_key.hex()})
    with pytest.raises(DataError, match="certificate"):
        reader.feed(plain[:300])
