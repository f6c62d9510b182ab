"""The owner's agent batching its device's records (``agent/data.py``): batches close at the
configured count, time span or wait; a killed agent loses no record and batches none twice;
a record whose signature is not the device's, or of a device the chain does not vouch for,
is dropped with a log line and never batched. The ``[data]`` config names what it lacks."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from smartchain.agent.config import AgentConfig, ConfigError, DataSettings, load_config
from smartchain.agent.data import Batcher, DataRole, Record
from smartchain.agent.messages import sign_message
from smartchain.agent.mqtt import Incoming
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.data.types import box_public, key_commitment, records_root
from smartchain.storage import layout
from smartchain.storage.datasets import DataError, deliver_waiting

CAR, OWNER, OTHER = (PrivateKey.from_seed(bytes([i]) * 32) for i in (0x31, 0x32, 0x33))
CERT = "ab" * 64


def _rec(seq: int, t_ms: int) -> Record:
    return Record(seq, t_ms, sign_message(CAR, "trip", seq, {"t_ms": t_ms, "km": seq}))


def _batches(b: Batcher) -> list[list[int]]:
    return [[r.seq for r in batch.records] for batch in b.ready()]


def test_a_batch_closes_at_its_record_count(tmp_path: Path) -> None:
    b = Batcher(tmp_path, DataSettings(batch_records=3))
    for seq in range(1, 8):
        b.add(_rec(seq, seq * 1000), 0.0)
    assert _batches(b) == [[1, 2, 3], [4, 5, 6]]
    assert [r.seq for r in b.open] == [7]
    first = b.ready()[0]
    header = first.header(CAR.public_key, "car.trips")
    assert (header.start_ms, header.end_ms, header.count) == (1000, 3000, 3)
    assert header.root == records_root([r.raw for r in first.records])


def test_a_batch_closes_before_a_record_past_its_time_span(tmp_path: Path) -> None:
    day = 86_400_000
    b = Batcher(tmp_path, DataSettings(batch_records=100, batch_span_ms=7 * day))
    for seq, day_no in enumerate([0, 1, 6, 7, 8, 13, 14], start=1):
        b.add(_rec(seq, day_no * day), 0.0)
    assert _batches(b) == [[1, 2, 3], [4, 5, 6]]  # days 0-6, 7-13; day 14 still open


def test_a_batch_closes_once_it_has_waited_long_enough(tmp_path: Path) -> None:
    b = Batcher(tmp_path, DataSettings(batch_records=100, batch_wait_seconds=5.0))
    b.add(_rec(1, 10), 100.0)
    b.add(_rec(2, 20), 103.0)
    b.tick(104.9)
    assert _batches(b) == []
    b.tick(105.0)
    assert _batches(b) == [[1, 2]] and b.open == []


def test_a_restarted_agent_keeps_its_open_records_and_batches_none_twice(
        tmp_path: Path) -> None:
    settings = DataSettings(batch_records=2)
    b = Batcher(tmp_path, settings)
    for seq in (1, 2, 3):
        b.add(_rec(seq, seq), 0.0)
    # killed between writing the ready batch and emptying the open file: both hold 1 and 2
    (tmp_path / "open.jsonl").write_text("".join(_rec(s, s).line() + "\n" for s in (1, 2, 3)))
    again = Batcher(tmp_path, settings)
    assert _batches(again) == [[1, 2]] and [r.seq for r in again.open] == [3]
    again.done(again.ready()[0])  # registered on chain
    after = Batcher(tmp_path, settings)
    assert _batches(after) == [] and [r.seq for r in after.open] == [3]
    with pytest.raises(ValueError, match="replayed"):
        after.add(_rec(2, 2), 0.0)


class _Chain:
    """The node's device record for the role's trust check (the one read it makes here)."""

    def __init__(self, revoked: bool = False) -> None:
        self.revoked = revoked

    def device(self, pubkey: bytes) -> dict[str, Any]:
        return {"pubkey": pubkey.hex(), "owner": to_bech32(OWNER.address),
                "revoked": self.revoked}


def _role(tmp_path: Path, chain: _Chain) -> DataRole:
    cfg = AgentConfig(tmp_path / "car.toml", data=DataSettings(
        collect=True, asset="car", schema="car.trips", certificate=CERT, batch_records=2,
        kinds=["trip", "mileage"]))
    return DataRole(cfg, CAR, OWNER, chain)  # type: ignore[arg-type]


def test_a_record_with_a_bad_device_signature_is_dropped_and_logged_never_batched(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    role = _role(tmp_path, _Chain())
    good = sign_message(CAR, "trip", 1, {"t_ms": 5, "km": 12})
    forged = good[:3] + bytes([good[3] ^ 1]) + good[4:]  # a signature byte changed
    impostor = sign_message(OTHER, "trip", 2, {"t_ms": 6, "km": 999})  # another key
    with caplog.at_level(logging.WARNING, logger="smartchain.agent.data"):
        for payload in (forged, impostor, b"junk", good):
            role.on_message(Incoming(role.topic, payload))
    assert role.stats["dropped"] == 3 and role.stats["records"] == 1
    assert [r.raw for r in role.batcher.open] == [good]
    dropped = [r.getMessage() for r in caplog.records if "dropped a message" in r.message]
    assert len(dropped) == 3 and "bad signature" in dropped[0]


def test_records_of_a_revoked_device_replays_and_other_kinds_are_not_batched(
        tmp_path: Path) -> None:
    revoked = _role(tmp_path / "a", _Chain(revoked=True))
    revoked.on_message(Incoming(revoked.topic, sign_message(CAR, "trip", 1, {"t_ms": 1})))
    assert revoked.batcher.open == [] and revoked.stats["dropped"] == 1
    role = _role(tmp_path / "b", _Chain())
    for seq, kind in ((1, "trip"), (2, "status"), (1, "trip"), (3, "mileage")):
        role.on_message(Incoming(role.topic, sign_message(CAR, kind, seq, {"t_ms": seq})))
    assert _batches(role.batcher) == [[1, 3]] and role.stats["dropped"] == 1


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    return path


def test_the_data_section_loads_and_names_what_collecting_lacks(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, f"""
[device]
public_key = "self"
[data]
collect = true
deliver = true
asset = "car"
schema = "car.trips"
certificate = "{CERT}"
kinds = ["trip", "mileage"]
batch_span_ms = 604800000
batch_wait_seconds = 2.5
"""))
    assert cfg.data.kinds == ["trip", "mileage"] and cfg.data.batch_wait_seconds == 2.5
    for text, error in [
        ("[data]\ncollect = true\n", "needs asset, schema, certificate"),
        (f"[data]\ncollect = true\nasset = 'c'\nschema = 's'\ncertificate = '{CERT}'\n",
         'public_key = "self"'),
        ("[device]\npublic_key = 'self'\n[data]\ncollect = true\nasset = 'c'\nschema = 's'\n"
         "certificate = 'abcd'\n", "128 hex characters"),
        ("[data]\nkinds = 'trip'\n", "kinds must be list"),
        ("[data]\nkinds = [1]\n", "kinds must be list"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_config(_write(tmp_path, text))
        assert error in str(info.value)


class _Sales:
    """The node reads and the delivery ``deliver_waiting`` makes, for two waiting purchases
    of one asset: batch 0 registered with the right key commitment, batch 1 with another."""

    def __init__(self) -> None:
        self.salts = [bytes([i]) * 32 for i in (1, 2)]
        files = [bytes([i]) * 32 for i in (7, 8)]
        right = [key_commitment(f, layout.file_key(OWNER.seed, s))
                 for f, s in zip(files, self.salts, strict=True)]
        self.asset = {"batch_list": [
            {"file_id": files[0].hex(), "key_commitment": right[0].hex()},
            {"file_id": files[1].hex(), "key_commitment": bytes(32).hex()}]}
        box = box_public(bytes([9]) * 32).hex()
        self.waiting = [{"id": "1", "asset": "aa", "batches": [1], "box_keys": [box]},
                        {"id": "2", "asset": "aa", "batches": [0], "box_keys": [box]}]
        self.delivered: list[str] = []

    def data_waiting_sales(self, owner: str) -> list[dict[str, Any]]:
        return self.waiting

    def data_asset(self, asset: str) -> dict[str, Any]:
        return self.asset

    def storage_deal_record(self, file_id: bytes) -> Any:
        return SimpleNamespace(salt=self.salts[file_id[0] - 7])

    def deliver_data_keys(self, key: PrivateKey, purchase: dict[str, Any],
                          sealed: list[bytes]) -> dict[str, Any]:
        self.delivered.append(purchase["id"])
        return {"receipt": {"ok": True}}


def test_a_purchase_whose_keys_cannot_be_delivered_is_reported_and_the_others_served() -> None:
    sales, skipped = _Sales(), []
    done = deliver_waiting(sales, OWNER, to_bech32(OWNER.address),
                           skip=lambda p, exc: skipped.append((p["id"], str(exc))))
    assert done == [2] and sales.delivered == ["2"]
    assert skipped == [("1", "batch 1 was registered with another key's commitment")]
    with pytest.raises(DataError, match="another key's commitment"):  # no skip: raised
        deliver_waiting(_Sales(), OWNER, to_bech32(OWNER.address))
