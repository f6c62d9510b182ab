"""Typed documents: the API's main answers as dataclasses, the contract's 64-bit strings
parsed into ints (docs/api.md).

The clients keep returning the JSON documents themselves (dicts, as the node sends them:
existing code, the CLI and tests read ``doc["height"]`` as a string); the same reads typed
are under ``client.typed`` (``node.typed.block(5).height == 5``), and any document can be
parsed with ``Block.from_json(doc)``. Every dataclass keeps the document it came from in
``raw`` for the fields not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from smartchain import sdkcore as core
from smartchain.sdkcore import Flow


def _int(doc: dict[str, Any], name: str) -> int:
    """A 64-bit number of the contract (a string of digits; an int is accepted too)."""
    return int(doc[name])


def _opt_int(doc: dict[str, Any], name: str) -> int | None:
    value = doc.get(name)
    return None if value is None or value == "" else int(value)


@dataclass(frozen=True)
class Status:
    """``GET /v1/status``: where the chain is and the parameters clients sign with."""

    chain_id: str
    height: int  # 0 (and no latest block) until the first block is committed
    latest_hash: str | None
    latest_time_ms: int | None
    min_gas_price: int
    max_tx_gas: int
    block_time_ms: int
    version: str
    synced: bool
    mempool_size: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        return cls(doc["chain_id"], _int(doc, "height"), doc.get("latest_hash"),
                   _opt_int(doc, "latest_time_ms"), _int(doc, "min_gas_price"),
                   _int(doc, "max_tx_gas"), _int(doc, "block_time_ms"),
                   str(doc.get("version", "")), bool(doc.get("synced", True)),
                   int(doc.get("mempool_size", 0)), doc)


@dataclass(frozen=True)
class Event:
    """An event a transaction emitted; where it sits in the chain when the document says
    (event pages and subscriptions do, a receipt's own events do not)."""

    kind: str
    attributes: dict[str, str]
    height: int | None = None
    tx_hash: str | None = None
    tx_index: int | None = None
    event_index: int | None = None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        return cls(doc["kind"], {str(k): str(v) for k, v in doc.get("attributes", {}).items()},
                   _opt_int(doc, "height"), doc.get("tx_hash"), doc.get("tx_index"),
                   doc.get("event_index"))


def _events(doc: dict[str, Any]) -> tuple[Event, ...]:
    return tuple(Event.from_json(e) for e in doc.get("events", []))


@dataclass(frozen=True)
class Receipt:
    """What executing a transaction did: ``ok`` or why not, the gas and fee it paid."""

    ok: bool
    code_name: str
    gas_used: int
    fee: int
    log: str
    events: tuple[Event, ...]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        return cls(bool(doc["ok"]), doc["code_name"], _int(doc, "gas_used"), _int(doc, "fee"),
                   doc.get("log", ""), _events(doc))


@dataclass(frozen=True)
class Tx:
    """``GET /v1/txs/{hash}`` (and what ``send_tx``/``wait_tx`` return): the transaction,
    and once ``status`` is "committed" its height, index and receipt. ``payload`` is the
    message as JSON (its 64-bit numbers strings, as each kind documents them)."""

    hash: str
    status: str
    sender: str
    kind: str
    nonce: int
    gas_limit: int
    gas_price: int
    payload: dict[str, Any]
    height: int | None
    index: int | None
    receipt: Receipt | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Committed and successful (a failed transaction still paid its fee)."""
        return self.receipt is not None and self.receipt.ok

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        receipt = doc.get("receipt")
        return cls(doc["hash"], doc["status"], doc["sender"], doc["kind"], _int(doc, "nonce"),
                   _int(doc, "gas_limit"), _int(doc, "gas_price"), doc.get("payload") or {},
                   _opt_int(doc, "height"), doc.get("index"),
                   Receipt.from_json(receipt) if receipt else None, doc)


@dataclass(frozen=True)
class TxSummary:
    """A transaction as a block or an account's history lists it, outcome included."""

    hash: str
    height: int
    index: int
    sender: str
    kind: str
    nonce: int
    ok: bool
    code_name: str
    gas_used: int
    fee: int
    payload: dict[str, Any]
    events: tuple[Event, ...]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        return cls(doc["hash"], _int(doc, "height"), int(doc["index"]), doc["sender"],
                   doc["kind"], _int(doc, "nonce"), bool(doc["ok"]), doc["code_name"],
                   _int(doc, "gas_used"), _int(doc, "fee"), doc.get("payload") or {},
                   _events(doc))


@dataclass(frozen=True)
class Block:
    """``GET /v1/blocks/{height}``: the header's main fields and the transactions'
    summaries (``raw["header"]`` has the rest of the header)."""

    height: int
    hash: str
    time_ms: int
    proposer_address: str
    state_root: str
    tx_count: int
    transactions: tuple[TxSummary, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        header = doc["header"]
        return cls(_int(doc, "height"), doc["hash"], _int(header, "time_ms"),
                   header.get("proposer_address", ""), header["state_root"],
                   int(doc.get("tx_count", 0)),
                   tuple(TxSummary.from_json(t) for t in doc.get("transactions", [])), doc)


@dataclass(frozen=True)
class Account:
    """``GET /v1/accounts/{address}``: HPC balance and nonces, in base units; ``tokens``
    maps each token symbol held to its balance in the token's base units."""

    address: str
    balance: int
    nonce: int
    pending_nonce: int
    tokens: dict[str, int]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        return cls(doc["address"], _int(doc, "balance"), _int(doc, "nonce"),
                   int(doc.get("pending_nonce", doc["nonce"])),
                   {t["symbol"]: _int(t, "balance") for t in doc.get("tokens", [])}, doc)


@dataclass(frozen=True)
class Validator:
    """A validator as ``GET /v1/validators`` lists it: tier, status, power and stake."""

    address: str
    pubkey: str
    moniker: str
    tier: str
    status: str
    power: int
    stake: int
    delegated: int
    jailed_until: int
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        return cls(doc["address"], doc["pubkey"], doc.get("moniker", ""), doc.get("tier", ""),
                   doc.get("status", ""), _int(doc, "power"), _int(doc, "stake"),
                   int(doc.get("delegated", 0)), int(doc.get("jailed_until", 0)), doc)


def validator_list(doc: dict[str, Any]) -> list[Validator]:
    return [Validator.from_json(v) for v in doc["validators"]]


@dataclass(frozen=True)
class EventPage:
    """A page of ``GET /v1/events``, newest first; ``next_cursor`` until the last page."""

    kind: str
    events: tuple[Event, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        return cls(doc["kind"], _events(doc), doc.get("next_cursor"))


@dataclass(frozen=True)
class TxPage:
    """A page of ``GET /v1/accounts/{address}/txs``, newest first."""

    address: str
    txs: tuple[TxSummary, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Self:
        return cls(doc["address"], tuple(TxSummary.from_json(t) for t in doc["txs"]),
                   doc.get("next_cursor"))


# --- the typed reads, for either client ---------------------------------------------------


def status() -> Flow[Status]:
    return core.mapped(core.status(), Status.from_json)


def block(height: int | str = "latest") -> Flow[Block]:
    return core.mapped(core.block(height), Block.from_json)


def tx(tx_hash: str) -> Flow[Tx]:
    return core.mapped(core.tx(tx_hash), Tx.from_json)


def wait_tx(tx_hash: str, timeout: float = 30.0) -> Flow[Tx]:
    return core.mapped(core.wait_tx(tx_hash, timeout), Tx.from_json)


def account(address: str) -> Flow[Account]:
    return core.mapped(core.account(address), Account.from_json)


def validators() -> Flow[list[Validator]]:
    return core.mapped(core.validators(), validator_list)


def events(kind: str, attr: str | None = None, value: str | None = None, limit: int = 20,
           cursor: str | None = None) -> Flow[EventPage]:
    return core.mapped(core.events(kind, attr, value, limit, cursor), EventPage.from_json)


def account_txs(address: str, limit: int = 20, cursor: str | None = None) -> Flow[TxPage]:
    return core.mapped(core.account_txs(address, limit, cursor), TxPage.from_json)


class TypedReads:
    """``Client.typed``: the main reads, parsed (the flows above, run blocking)."""

    def __init__(self, run: core.Runner) -> None:
        self._run = run

    def status(self) -> Status:
        return self._run(status())

    def block(self, height: int | str = "latest") -> Block:
        return self._run(block(height))

    def tx(self, tx_hash: str) -> Tx:
        return self._run(tx(tx_hash))

    def wait_tx(self, tx_hash: str, timeout: float = 30.0) -> Tx:
        return self._run(wait_tx(tx_hash, timeout))

    def account(self, address: str) -> Account:
        return self._run(account(address))

    def validators(self) -> list[Validator]:
        return self._run(validators())

    def events(self, kind: str, *, attr: str | None = None, value: str | None = None,
               limit: int = 20, cursor: str | None = None) -> EventPage:
        return self._run(events(kind, attr, value, limit, cursor))

    def account_txs(self, address: str, *, limit: int = 20,
                    cursor: str | None = None) -> TxPage:
        return self._run(account_txs(address, limit, cursor))


class AsyncTypedReads:
    """``AsyncClient.typed``: the same reads, awaited."""

    def __init__(self, run: core.AsyncRunner) -> None:
        self._run = run

    async def status(self) -> Status:
        return await self._run(status())

    async def block(self, height: int | str = "latest") -> Block:
        return await self._run(block(height))

    async def tx(self, tx_hash: str) -> Tx:
        return await self._run(tx(tx_hash))

    async def wait_tx(self, tx_hash: str, timeout: float = 30.0) -> Tx:
        return await self._run(wait_tx(tx_hash, timeout))

    async def account(self, address: str) -> Account:
        return await self._run(account(address))

    async def validators(self) -> list[Validator]:
        return await self._run(validators())

    async def events(self, kind: str, *, attr: str | None = None, value: str | None = None,
                     limit: int = 20, cursor: str | None = None) -> EventPage:
        return await self._run(events(kind, attr, value, limit, cursor))

    async def account_txs(self, address: str, *, limit: int = 20,
                          cursor: str | None = None) -> TxPage:
        return await self._run(account_txs(address, limit, cursor))
