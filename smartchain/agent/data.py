"""The owner's agent and the device's data: records batched, stored, registered and sold.

Collecting (``[data] collect``): a message on ``PREFIX/devices/DEVHEX/up`` is kept only if
its signature is the device's, the chain vouches for the device (registered, not revoked,
the owner's), its number is new and its kind is one kept; anything else is dropped with a
``dropped a message on TOPIC: reason`` log line and never batched. Kept records go to the
open batch (``STATE_DIR/data/open.jsonl``). A batch closes at ``batch_records`` records,
before a record ``batch_span_ms`` later than its first, or ``batch_wait_seconds`` after its
first arrived; it is written to ``data/ready/`` and on the next turn its header (schema,
time range, count, Merkle root) is signed with the device key the agent holds, the batch
is stored through the storage engine and registered on chain under the owner's asset
(``storage.datasets.publish_batch``).

Delivering (``[data] deliver``): on each new block, the keys of every purchase of the
owner's data still waiting for them (``storage.datasets.deliver_waiting``). The consent on
chain is the policy: the owner need not be online, and the agent sells nothing the owner
did not consent to (the chain refuses such a purchase in the first place).

A killed agent loses nothing and stores nothing twice: a batch is written to ``ready/``
before it leaves ``open.jsonl``, the last closed record number is kept when a batch is
registered, records at or below it are dropped on restart, and a ready batch whose root the
chain already has is not registered again. The storage client (and its erasure coding) is
loaded when the first batch is published or the first key delivered, not before.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smartchain.agent.chain import DeviceTrust, Untrusted
from smartchain.agent.config import AgentConfig, DataSettings
from smartchain.agent.messages import BadMessage, DeviceMessage, open_message
from smartchain.agent.mqtt import Incoming
from smartchain.client import ApiError, Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.data.types import BatchHeader, asset_id_of, records_root, sign_batch

log = logging.getLogger("smartchain.agent.data")

OPEN_FILE = "open.jsonl"
READY_DIR = "ready"
CLOSED_FILE = "closed_seq"


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    t_ms: int
    raw: bytes  # the device's signed wire form, stored as is

    def line(self) -> str:
        return json.dumps({"seq": self.seq, "t_ms": self.t_ms, "raw": self.raw.hex()})

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Record:
        return cls(int(doc["seq"]), int(doc["t_ms"]), bytes.fromhex(doc["raw"]))


@dataclass(frozen=True, slots=True)
class ReadyBatch:
    """A closed batch waiting to be stored and registered (its file in ``ready/``)."""

    path: Path
    records: tuple[Record, ...]

    @property
    def last_seq(self) -> int:
        return self.records[-1].seq

    def header(self, device: bytes, schema: str) -> BatchHeader:
        raws = [r.raw for r in self.records]
        times = [r.t_ms for r in self.records]
        return BatchHeader(device, schema, min(times), max(times), len(raws),
                           records_root(raws))


def record_time(msg: DeviceMessage, field: str, arrival_ms: int) -> int:
    """The record's time: the body's ``field`` when it is a whole number of ms, else the
    time it arrived."""
    try:
        body = msg.data()
    except ValueError:
        return arrival_ms
    value = body.get(field) if isinstance(body, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
        return value
    return arrival_ms


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Batcher:
    """The open batch and the closed ones not yet registered, on disk under ``directory``."""

    def __init__(self, directory: Path, settings: DataSettings) -> None:
        self.dir, self.settings = Path(directory), settings
        self.ready_dir = self.dir / READY_DIR
        self.ready_dir.mkdir(parents=True, exist_ok=True)
        self.open_path = self.dir / OPEN_FILE
        closed = max([self._closed_mark(), *(b.last_seq for b in self.ready())])
        self.open: list[Record] = []
        for line in self._open_lines():  # a crash may leave closed or repeated records
            rec = Record.of(json.loads(line))
            if rec.seq > max(closed, self.open[-1].seq if self.open else 0):
                self.open.append(rec)
        self.last_seq = self.open[-1].seq if self.open else closed
        self.opened_at = time.monotonic() if self.open else 0.0

    def _open_lines(self) -> list[str]:
        try:
            return [ln for ln in self.open_path.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    def _closed_mark(self) -> int:
        try:
            return int((self.dir / CLOSED_FILE).read_text())
        except FileNotFoundError:
            return 0

    def add(self, rec: Record, now: float) -> None:
        """Append a record (its number above every one before), closing batches as due."""
        if rec.seq <= self.last_seq:
            raise BadMessage(f"replayed or reordered record (seq {rec.seq} after "
                             f"{self.last_seq})")
        span = self.settings.batch_span_ms
        if self.open and span and abs(rec.t_ms - self.open[0].t_ms) >= span:
            self._close()
        with open(self.open_path, "a") as f:
            f.write(rec.line() + "\n")
            f.flush()
        if not self.open:
            self.opened_at = now
        self.open.append(rec)
        self.last_seq = rec.seq
        if len(self.open) >= self.settings.batch_records:
            self._close()

    def tick(self, now: float) -> None:
        """Close the open batch once it has waited ``batch_wait_seconds``."""
        wait = self.settings.batch_wait_seconds
        if self.open and wait and now - self.opened_at >= wait:
            self._close()

    def _close(self) -> None:
        first = self.open[0].seq
        _write_atomic(self.ready_dir / f"{first:020d}.jsonl",
                      "".join(r.line() + "\n" for r in self.open))
        _write_atomic(self.open_path, "")  # after the ready file: a crash keeps both
        self.open = []

    def ready(self) -> list[ReadyBatch]:
        """Closed batches, oldest first."""
        out = []
        for path in sorted(self.ready_dir.glob("*.jsonl")):
            recs = tuple(Record.of(json.loads(ln)) for ln in path.read_text().splitlines()
                         if ln.strip())
            if recs:
                out.append(ReadyBatch(path, recs))
        return out

    def done(self, batch: ReadyBatch) -> None:
        """A batch is registered on chain: forget it (its last number kept first)."""
        _write_atomic(self.dir / CLOSED_FILE, str(max(self._closed_mark(), batch.last_seq)))
        batch.path.unlink(missing_ok=True)


class DataRole:
    """Collects the device's records into batches and publishes them; delivers keys."""

    name = "data"

    def __init__(self, cfg: AgentConfig, agent_key: PrivateKey, account: PrivateKey,
                 client: Client) -> None:
        self.cfg, self.settings = cfg, cfg.data
        self.agent_key, self.account, self.client = agent_key, account, client
        self.address = to_bech32(account.address)
        self.device = agent_key.public_key  # [data] collect requires [device] "self"
        self.topic = f"{cfg.mqtt.prefix}/devices/{self.device.hex()}/up"
        self.asset_id = asset_id_of(account.address, self.settings.asset)
        self.batcher = Batcher(cfg.state_dir / "data", self.settings)
        self.trust = DeviceTrust(client)
        self.asset_ok = False
        self.delivered_at = -1
        self.refused: dict[str, str] = {}  # purchase id -> why its keys cannot be delivered
        self.stats = {"records": 0, "dropped": 0, "batches": 0, "delivered": 0}

    def topics(self) -> list[str]:
        return [self.topic] if self.settings.collect else []

    def status(self) -> dict[str, Any]:
        return {**self.stats, "asset": self.asset_id.hex() if self.settings.collect else "",
                "open_records": len(self.batcher.open),
                "ready_batches": len(self.batcher.ready()), "undeliverable": self.refused}

    # --- messages ----------------------------------------------------------------------

    def on_message(self, msg: Incoming) -> None:
        if msg.topic != self.topic or not self.settings.collect:
            return
        try:
            rec = self._record(msg.payload)
            if rec is not None:
                self.batcher.add(rec, time.monotonic())
                self.stats["records"] += 1
        except (BadMessage, Untrusted) as exc:
            self.stats["dropped"] += 1
            log.warning("dropped a message on %s: %s", msg.topic, exc)

    def _record(self, raw: bytes) -> Record | None:
        """The record in a device message, or None for a kind not kept; ``BadMessage`` or
        ``Untrusted`` for one that must not be batched."""
        m = open_message(raw)
        if m.device != self.device:
            raise BadMessage(f"a message of device {m.device.hex()[:16]} on another's topic")
        self.trust.check(m.device, self.address)
        if m.seq <= self.batcher.last_seq:
            raise BadMessage(f"replayed or reordered message (seq {m.seq})")
        if self.settings.kinds and m.kind not in self.settings.kinds:
            return None
        t_ms = record_time(m, self.settings.time_field, int(time.time() * 1000))
        return Record(m.seq, t_ms, raw)

    # --- each turn ---------------------------------------------------------------------

    def step(self) -> None:
        if self.settings.collect:
            self.batcher.tick(time.monotonic())
            ready = self.batcher.ready()
            if ready and self._asset_ready():
                asyncio.run(self._publish(ready))
        if self.settings.deliver:
            self._deliver()

    def _asset_ready(self) -> bool:
        """The asset exists with this device and schema (created when absent)."""
        if self.asset_ok:
            return True
        s = self.settings
        try:
            doc: dict[str, Any] | None = self.client.data_asset(self.asset_id)
        except ApiError as exc:
            if exc.code != "not_found":
                raise
            doc = None
        if doc is None:
            bond = s.bond or int(self.client.genesis()["params"]["data_asset_bond"])
            result = self.client.create_data_asset(self.account, s.asset, s.schema, s.region,
                                                   [self.device], bond)
            if not result["receipt"]["ok"]:
                log.warning("data asset %s refused: %s", s.asset, result["receipt"]["log"])
                return False
            log.info("data asset %s (%s) created: %s", s.asset, s.schema, self.asset_id.hex())
        elif self.device.hex() not in doc["devices"] or doc["schema"] != s.schema:
            log.warning("data asset %s is of schema %s and devices %s: not this device's %s "
                        "records", s.asset, doc["schema"], doc["devices"], s.schema)
            return False
        self.asset_ok = True
        return True

    async def _publish(self, ready: list[ReadyBatch]) -> None:
        from smartchain.sdkfiles import client_p2p
        from smartchain.storage import client as sc
        from smartchain.storage.datasets import DataError, publish_batch

        s = self.settings
        cert = bytes.fromhex(s.certificate)
        view = sc.ApiChainView(self.client, self.account)
        have = {b["root"] for b in self.client.data_asset(self.asset_id)["batch_list"]}
        async with client_p2p(view.network_id) as p2p:
            for batch in ready:
                header = batch.header(self.device, s.schema)
                if header.root.hex() in have:  # registered before a crash: not twice
                    self.batcher.done(batch)
                    continue
                try:
                    file_id = await publish_batch(
                        p2p, view, self.client, self.account, self.asset_id, header,
                        sign_batch(self.agent_key, header), cert,
                        [r.raw for r in batch.records], k=s.k, n=s.n, epochs=s.epochs)
                except (DataError, sc.StorageError) as exc:
                    log.warning("batch of records %d..%d not published (tried again next "
                                "turn): %s", batch.records[0].seq, batch.last_seq, exc)
                    return
                self.batcher.done(batch)
                self.stats["batches"] += 1
                log.info("batch of %d records (%d..%d ms) stored as %s and registered",
                         header.count, header.start_ms, header.end_ms, file_id.hex())

    def _deliver(self) -> None:
        from smartchain.storage.datasets import deliver_waiting

        height = int(self.client.status()["height"])
        if height == self.delivered_at:
            return
        self.delivered_at = height
        done = deliver_waiting(self.client, self.account, self.address, skip=self._refused)
        self.stats["delivered"] += len(done)
        for pid in done:
            log.info("keys of purchase %d delivered", pid)

    def _refused(self, purchase: dict[str, Any], exc: Exception) -> None:
        pid, why = str(purchase["id"]), str(exc)
        if self.refused.get(pid) != why:  # once per reason, not every block
            log.warning("keys of purchase %s not delivered: %s", pid, why)
        self.refused[pid] = why
