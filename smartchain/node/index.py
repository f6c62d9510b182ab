"""The node's search index: committed transactions by the accounts they touch, and their
events by kind and by attribute, newest first, in pages.

Derived data, never consensus: it lives in LMDB databases of its own beside the chain's.
Each block's entries are written in that block's own store transaction (``Chain.block_writers``),
so after a crash the index holds exactly the committed blocks; a node that ran with the
index switched off (``[api] index = false``) catches up at start from the height it last
indexed, with idempotent writes, in batches of ``CATCH_UP_BATCH`` blocks (each batch one
transaction, marker included: killed half-way, it resumes where it stopped).

Keys (big-endian, so a cursor walks them in height order)::

    ix_addr   address(20) height(8) index(4)            -> role (1: sender, 2: other party)
    ix_event  topic(16) height(8) index(4) event(2)     -> b""
    ix_meta   b"height"                                 -> the last height indexed

A topic is the first 16 bytes of the hash of ``k\\0KIND`` (every event of a kind) or of
``a\\0KIND\\0ATTR\\0VALUE`` (its attribute ATTR is VALUE), values as ``event_value`` shows them.
"""

from __future__ import annotations

import dataclasses
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import lmdb

from smartchain.codec import CodecError, Struct
from smartchain.crypto.address import AddressError, from_bech32, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.state.chain import Chain, StagedBlock, TxRecord
from smartchain.types.block import Block
from smartchain.types.tx import Event, Receipt, Transaction

CATCH_UP_BATCH = 500
SENDER, PARTY = 1, 2
_TX = struct.Struct(">QI")
_EV = struct.Struct(">QIH")
_H = struct.Struct(">Q")
MARKER = b"height"
_HEX_ADDRESS = re.compile(r"[0-9a-f]{40}")


def event_value(value: str) -> str:
    """An attribute value as the index and the event filters compare it: an address the
    chain wrote as 40 hex characters is its bech32 form, so ``to=smart1...`` finds it
    whichever way the event spelled it; anything else is verbatim."""
    if _HEX_ADDRESS.fullmatch(value):
        return to_bech32(bytes.fromhex(value))
    return value


def kind_topic(kind: str) -> bytes:
    return h256(b"k\0" + kind.encode())[:16]


def attr_topic(kind: str, attr: str, value: str) -> bytes:
    return h256(b"a\0" + "\0".join((kind, attr, value)).encode(errors="replace"))[:16]


def event_attrs(event: Event) -> dict[str, str]:
    """An event's attributes as its JSON view shows them, values through ``event_value``."""
    return {k: event_value(v) for k, v in event.to_json()["attributes"].items()}


def _addresses_in(value: object, out: set[bytes]) -> None:
    if isinstance(value, bytes):
        if len(value) == 20:
            out.add(value)
    elif isinstance(value, Struct):
        for f in dataclasses.fields(cast(Any, value)):
            _addresses_in(getattr(value, f.name), out)
    elif isinstance(value, tuple):
        for v in value:
            _addresses_in(v, out)


def parties(tx: Transaction, receipt: Receipt, payload_types: dict[str, type[Struct]]
            ) -> dict[bytes, int]:
    """The accounts a transaction touches, with their role: the sender, every address in
    its payload (the recipient of a transfer, a contract called) and every address its
    events name (who received tokens, whose job paid)."""
    others: set[bytes] = set()
    cls = payload_types.get(tx.kind)
    if cls is not None:
        try:
            _addresses_in(cls.decode(tx.payload), others)
        except CodecError:
            pass
    for event in receipt.events:
        for v in event_attrs(event).values():
            if v.startswith("smart1"):
                try:
                    others.add(from_bech32(v))
                except AddressError:
                    pass
    out = dict.fromkeys(others, PARTY)
    sender = tx.sender_address
    out[sender] = out.get(sender, 0) | SENDER
    return out


@dataclass(frozen=True, slots=True)
class TxPos:
    height: int
    index: int
    role: int = 0

    def cursor(self) -> str:
        return f"{self.height}-{self.index}"


@dataclass(frozen=True, slots=True)
class EventPos:
    height: int
    index: int
    event: int

    def cursor(self) -> str:
        return f"{self.height}-{self.index}-{self.event}"


P = TypeVar("P", TxPos, EventPos)


class Index:
    """The index of one chain: attach it once at start (``attach``), read it any time."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        env = chain.store.env
        self.addr_db = env.open_db(b"ix_addr")
        self.event_db = env.open_db(b"ix_event")
        self.meta_db = env.open_db(b"ix_meta")
        self.payload_types = {kind: msg.payload for kind, msg in chain.executor.msgs.items()}

    # --- writing -------------------------------------------------------------------------

    def indexed_height(self) -> int:
        with self.chain.store.read() as txn:
            raw = txn.get(MARKER, db=self.meta_db)
        return _H.unpack(raw)[0] if raw else 0

    def attach(self) -> int:
        """Index what was committed while the index was off, then index each new block in
        its own commit. Returns how many blocks were caught up."""
        chain = self.chain
        start = max(self.indexed_height() + 1, chain.base)
        done = 0
        while start <= chain.height:
            end = min(chain.height, start + CATCH_UP_BATCH - 1)
            with chain.store.write() as txn:
                for height in range(start, end + 1):
                    self._index_stored(txn, height)
                txn.put(MARKER, _H.pack(end), db=self.meta_db)
            done += end + 1 - start
            start = end + 1
        if self.write_block not in chain.block_writers:
            chain.block_writers.append(self.write_block)
        return done

    def _index_stored(self, txn: lmdb.Transaction[bytes], height: int) -> None:
        raw = txn.get(_H.pack(height), db=self.chain.store.dbs["blocks"])
        if raw is None:
            return
        block = Block.decode(raw)
        txs_db = self.chain.store.dbs["txs"]
        items = []
        for i, raw_tx in enumerate(block.txs):
            rec_raw = txn.get(h256(raw_tx), db=txs_db)
            if rec_raw is not None:
                items.append((i, Transaction.decode(raw_tx), TxRecord.decode(rec_raw).receipt))
        self._put(txn, height, items)

    def write_block(self, txn: lmdb.Transaction[bytes], staged: StagedBlock) -> None:
        """``Chain.block_writers``: this block's entries, in its commit transaction."""
        height = staged.block.header.height
        self._put(txn, height, [(i, c.tx, r) for i, (c, r) in
                                enumerate(zip(staged.included, staged.receipts, strict=True))])
        txn.put(MARKER, _H.pack(height), db=self.meta_db)

    def _put(self, txn: lmdb.Transaction[bytes], height: int,
             items: list[tuple[int, Transaction, Receipt]]) -> None:
        addr_rows: list[tuple[bytes, bytes]] = []
        event_rows: list[tuple[bytes, bytes]] = []
        for i, tx, receipt in items:
            pos = _TX.pack(height, i)
            for address, role in parties(tx, receipt, self.payload_types).items():
                addr_rows.append((address + pos, bytes([role])))
            for n, event in enumerate(receipt.events):
                epos = _EV.pack(height, i, n)
                event_rows.append((kind_topic(event.kind) + epos, b""))
                for attr, value in event_attrs(event).items():
                    event_rows.append((attr_topic(event.kind, attr, value) + epos, b""))
        if addr_rows:
            txn.cursor(db=self.addr_db).putmulti(sorted(addr_rows))
        if event_rows:
            txn.cursor(db=self.event_db).putmulti(sorted(event_rows))

    # --- reading -------------------------------------------------------------------------

    def account_txs(self, address: bytes, limit: int, before: TxPos | None = None
                    ) -> tuple[list[TxPos], TxPos | None]:
        """Up to ``limit`` transactions touching ``address``, newest first, strictly older
        than ``before``; and the cursor of the next page (None: no more)."""
        found = list(self._walk(self.addr_db, address, _TX.size,
                                _TX.pack(*(before.height, before.index)) if before else None,
                                limit + 1))
        rows = []
        for pos, value in found:
            height, index = _TX.unpack(pos)
            rows.append(TxPos(height, index, value[0]))
        return self._page(rows, limit)

    def events(self, topic: bytes, limit: int, before: EventPos | None = None
               ) -> tuple[list[EventPos], EventPos | None]:
        """Up to ``limit`` events of a topic, newest first, strictly older than ``before``."""
        start = _EV.pack(before.height, before.index, before.event) if before else None
        rows = [EventPos(*_EV.unpack(pos))
                for pos, _ in self._walk(self.event_db, topic, _EV.size, start, limit + 1)]
        return self._page(rows, limit)

    def _page(self, rows: list[P], limit: int) -> tuple[list[P], P | None]:
        base = self.chain.base  # a pruned block's entries point at nothing: the end
        rows = [r for r in rows if r.height >= base]
        if len(rows) > limit:
            return rows[:limit], rows[limit - 1]
        return rows, None

    def _walk(self, db: object, prefix: bytes, size: int, before: bytes | None, most: int
              ) -> Iterator[tuple[bytes, bytes]]:
        """Keys under ``prefix`` in descending order, below ``prefix + before``."""
        with self.chain.store.read() as txn:
            cur = txn.cursor(db=db)  # type: ignore[arg-type]
            bound = prefix + (before if before is not None else b"\xff" * size)
            if cur.set_range(bound):
                ok = cur.prev()
            else:
                ok = cur.last()
            rows: list[tuple[bytes, bytes]] = []
            while ok and len(rows) < most:
                key = cur.key()
                if not key.startswith(prefix):
                    break
                rows.append((key[len(prefix):], cur.value()))
                ok = cur.prev()
        yield from rows
