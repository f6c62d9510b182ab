"""The SDK's transport-agnostic core: what to ask the node and what its answers mean, with no
I/O of its own, so the synchronous ``Client`` (urllib) and the ``AsyncClient`` (aiohttp) run
the same code.

A *flow* is a generator that yields ``Call`` (an HTTP request) or ``Pause`` (a wait) and is
sent back the decoded JSON answer (or has the ``ApiError`` thrown into it); what it returns
is the result. A client only drives flows (``run_sync`` here, ``smartchain.aio`` for
asyncio) and moves bytes: request building, response parsing, retries and every multi-step
operation (build, simulate, sign, submit, wait) are written once, here.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from smartchain.codec import Struct
from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.hashing import h256
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.modules.sdk import ApiError, seg
from smartchain.types.tx import Transaction

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Call:
    """One HTTP request to the node. ``idempotent``: sending it twice does what sending it
    once does, so a transport may resend it after a transient failure. ``proof``: for a
    call idempotent by identity (a transaction, by its hash), the error codes a *resent*
    copy gets when the first copy took effect, and the path whose answer proves that it
    did; that answer is then the call's result."""

    method: str
    path: str
    body: Any = None
    idempotent: bool = False
    proof: tuple[frozenset[str], str] | None = None

    def encoded_body(self) -> bytes | None:
        return None if self.body is None else json.dumps(self.body).encode()


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before going on (a poll interval)."""

    seconds: float


Step = Call | Pause
Flow = Generator[Step, Any, T]


class Runner(Protocol):
    """How a blocking client runs a flow: to its result."""

    def __call__(self, flow: Flow[T], /) -> T: ...


class AsyncRunner(Protocol):
    """How an async client runs a flow: to an awaitable of its result."""

    def __call__(self, flow: Flow[T], /) -> Awaitable[T]: ...


class SimulationFailed(ApiError):
    """A transaction sent with automatic gas failed its simulation, so it was not sent:
    ``simulation`` is what ``POST /v1/txs/simulate`` said (``code_name``, ``log``)."""

    def __init__(self, simulation: dict[str, Any]) -> None:
        super().__init__(422, simulation["code_name"],
                         f"transaction not sent: its simulation failed: {simulation['log']}")
        self.simulation = simulation


class TxFailed(ApiError):
    """A transaction committed but failed: it paid its fee and did nothing (code
    ``tx_failed``; ``details`` has its ``hash``, ``height``, ``reason`` and ``receipt``)."""

    def __init__(self, result: dict[str, Any]) -> None:
        receipt = result["receipt"]
        super().__init__(200, "tx_failed",
                         f"transaction {result['hash']} failed: {receipt['log']} (committed "
                         f"at height {result['height']}; its fee was paid)",
                         {"hash": result["hash"], "height": result["height"],
                          "reason": receipt["code_name"], "receipt": receipt})


def require_ok(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` (a committed transaction) if it succeeded; ``TxFailed`` if not."""
    if not result["receipt"]["ok"]:
        raise TxFailed(result)
    return result


class NodeUnreachable(ApiError):
    """The node did not answer (refused, reset, timed out): ``status`` is 0."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, "unreachable", f"cannot reach node at {url}: {reason}")


# --- answers ------------------------------------------------------------------------------


def decode_answer(status: int, body: bytes, reason: str = "") -> Any:
    """The JSON of a 2xx answer; any other answer as the ``ApiError`` it carries (code,
    message, details of the contract's error document), ``http_error`` if it has none."""
    try:
        if 200 <= status < 300:
            return json.loads(body)
    except ValueError:
        raise ApiError(status, "http_error", f"HTTP {status}: the answer is not JSON") from None
    try:
        err = json.loads(body)["error"]
        raise ApiError(status, err["code"], err["message"], err.get("details"))
    except (ValueError, KeyError, TypeError):
        text = f"HTTP {status} {reason}".strip()
        raise ApiError(status, "http_error", text) from None


# --- retries ------------------------------------------------------------------------------

TRANSIENT_STATUS = frozenset({0, 429, 502, 503, 504})  # 0: no answer at all


@dataclass(frozen=True)
class Retry:
    """Bounded exponential backoff: ``retries`` resends at most, the n-th after
    ``min(cap, base * 2**n)`` seconds. Only idempotent calls are resent, and only after a
    failure that may pass (no answer, 429 busy, 502/503/504): a refusal is final."""

    retries: int = 3
    base: float = 0.2
    cap: float = 2.0

    def delays(self) -> Iterator[float]:
        return (min(self.cap, self.base * 2 ** n) for n in range(self.retries))

    @staticmethod
    def transient(call: Call, exc: ApiError) -> bool:
        return call.idempotent and exc.status in TRANSIENT_STATUS


NO_RETRY = Retry(retries=0)


def first_copy_took_effect(proof_path: str, exc: ApiError) -> Flow[Any]:
    """After a resend was refused with ``exc``: the answer at ``proof_path`` when the
    first copy took effect, else ``exc`` raised."""
    try:
        return (yield Call("GET", proof_path, idempotent=True))
    except ApiError:
        raise exc from None


def retrying(call: Call, policy: Retry) -> Flow[Any]:
    """``call`` sent until it is answered, resent per ``policy``: how both clients send
    every request (driven with a one-shot transport)."""
    delays = policy.delays()
    resent = False
    while True:
        try:
            return (yield call)
        except ApiError as exc:
            if resent and call.proof is not None and exc.code in call.proof[0]:
                return (yield from first_copy_took_effect(call.proof[1], exc))
            delay = next(delays, None) if policy.transient(call, exc) else None
            if delay is None:
                raise
        yield Pause(delay)
        resent = True


def run_sync(flow: Flow[T], send: Callable[[Call], Any]) -> T:
    """Drive ``flow`` with a blocking transport (``send`` returns the decoded answer or
    raises ``ApiError``; it applies the retry policy itself)."""
    answer: Any = None
    error: ApiError | None = None
    while True:
        try:
            step = flow.send(answer) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        answer, error = None, None
        try:
            if isinstance(step, Pause):
                time.sleep(step.seconds)
            else:
                answer = send(step)
        except ApiError as exc:
            error = exc


def mapped(flow: Flow[T], fn: Callable[[T], U]) -> Flow[U]:
    """``flow`` with its result passed through ``fn`` (a parser of typed documents)."""
    return fn((yield from flow))


# --- reads --------------------------------------------------------------------------------


def request(method: str, path: str, body: Any = None) -> Flow[Any]:
    """Any API call (what module SDK methods use): a GET is resent, a POST is not."""
    return (yield Call(method, path, body, idempotent=method == "GET"))


def get(path: str) -> Flow[Any]:
    """A GET: reads are idempotent, so they are resent after a transient failure."""
    return (yield Call("GET", path, idempotent=True))


def status() -> Flow[dict[str, Any]]:
    return get("/v1/status")


def genesis() -> Flow[dict[str, Any]]:
    return get("/v1/genesis")


def account(address: str) -> Flow[dict[str, Any]]:
    return get(f"/v1/accounts/{seg(address)}")


def balance(address: str) -> Flow[int]:
    return int((yield from account(address))["balance"])


def block(height: int | str = "latest") -> Flow[dict[str, Any]]:
    return get(f"/v1/blocks/{seg(str(height))}")


def signers(height: int) -> Flow[dict[str, Any]]:
    return get(f"/v1/blocks/{int(height)}/signers")


def tx(tx_hash: str) -> Flow[dict[str, Any]]:
    return get(f"/v1/txs/{seg(tx_hash)}")


def validators() -> Flow[dict[str, Any]]:
    return get("/v1/validators")


def validator(address: str) -> Flow[dict[str, Any]]:
    return get(f"/v1/validators/{seg(address)}")


def account_txs(address: str, limit: int = 20, cursor: str | None = None
                ) -> Flow[dict[str, Any]]:
    query = urllib.parse.urlencode({"limit": limit, **({"cursor": cursor} if cursor else {})})
    return get(f"/v1/accounts/{seg(address)}/txs?{query}")


def events(kind: str, attr: str | None = None, value: str | None = None, limit: int = 20,
           cursor: str | None = None) -> Flow[dict[str, Any]]:
    params: dict[str, Any] = {"kind": kind, "limit": limit}
    if attr is not None:
        params["where"] = f"{attr}:{value or ''}"
    if cursor:
        params["cursor"] = cursor
    return get(f"/v1/events?{urllib.parse.urlencode(params)}")


# --- transactions -------------------------------------------------------------------------


RESUBMITTED = frozenset({"duplicate", "nonce_reused"})  # in the mempool, or committed


def submit(raw: bytes) -> Flow[str]:
    """Submit a signed transaction; returns its hash. Idempotent by hash: the hash is of
    the signed bytes, whose nonce the chain consumes once, so a resent copy can never run
    twice. A resend refused as ``duplicate`` or ``nonce_reused`` is a success only if the
    node knows this very hash (the first copy arrived), not another transaction that
    took the nonce."""
    tx_hash = h256(raw).hex()
    doc = yield Call("POST", "/v1/txs", {"tx": raw.hex()}, idempotent=True,
                     proof=(RESUBMITTED, f"/v1/txs/{tx_hash}"))
    return str(doc["hash"])


def submit_batch(raws: list[bytes]) -> Flow[list[dict[str, Any]]]:
    """Not resent: each result of a batch is per transaction, and a resend would turn
    accepted ones into ``duplicate`` results."""
    doc = yield Call("POST", "/v1/txs/batch", {"txs": [r.hex() for r in raws]})
    return list(doc["results"])


def wait_tx(tx_hash: str, timeout: float = 30.0, poll: float = 0.1) -> Flow[dict[str, Any]]:
    """Poll until the transaction is committed; returns it with its receipt."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            doc = yield from tx(tx_hash)
            if doc["status"] == "committed":
                return doc
        except ApiError as exc:
            if exc.code != "not_found":
                raise
        if time.monotonic() > deadline:
            raise ApiError(0, "timeout", f"transaction {tx_hash} not committed in {timeout}s")
        yield Pause(poll)


def chain_and_price(chain_id: str | None, gas_price: int | None) -> Flow[tuple[str, int]]:
    """The chain id and gas price a transaction is signed with: ``/v1/status``'s when not
    given."""
    if chain_id is not None and gas_price is not None:
        return chain_id, gas_price
    st = yield from status()
    return (chain_id or str(st["chain_id"]),
            gas_price if gas_price is not None else int(st["min_gas_price"]))


def encoded(payload: Struct | bytes) -> bytes:
    return payload if isinstance(payload, bytes) else payload.encode()


def build_tx(key: PrivateKey, kind: str, payload: Struct | bytes, *, gas_limit: int,
             nonce: int | None = None, gas_price: int | None = None,
             chain_id: str | None = None) -> Flow[Transaction]:
    """A signed transaction of any kind; nonce, chain id and gas price are fetched when
    not given (the nonce is the account's next one, counting its pending transactions)."""
    chain, price = yield from chain_and_price(chain_id, gas_price)
    if nonce is None:
        nonce = int((yield from account(to_bech32(key.address)))["pending_nonce"])
    return Transaction.create(key, chain_id=chain, nonce=nonce, kind=kind,
                              payload=encoded(payload), gas_limit=gas_limit, gas_price=price)


def simulate_raw(raw: bytes, *, next_nonce: bool = False,
                 max_gas: bool = False) -> Flow[dict[str, Any]]:
    """Simulate an encoded transaction, signed or not (64 zero bytes of signature). It
    changes nothing, so it is resent like a read."""
    body: dict[str, Any] = {"tx": raw.hex()}
    if next_nonce:
        body["nonce"] = "next"
    if max_gas:
        body["gas_limit"] = "max"
    return (yield Call("POST", "/v1/txs/simulate", body, idempotent=True))


def simulate(sender: PrivateKey | bytes, kind: str, payload: Struct | bytes, *,
             gas_limit: int | None = None, nonce: int | None = None,
             gas_price: int | None = None, chain_id: str | None = None
             ) -> Flow[dict[str, Any]]:
    """What the transaction would do in the next block, sent unsigned (see
    ``Client.simulate``)."""
    chain, price = yield from chain_and_price(chain_id, gas_price)
    public_key = sender.public_key if isinstance(sender, PrivateKey) else sender
    unsigned = Transaction(chain, public_key, nonce or 0, gas_limit or 0, price, kind,
                           encoded(payload), bytes(64))
    return (yield from simulate_raw(unsigned.encode(), next_nonce=nonce is None,
                                    max_gas=gas_limit is None))


def simulated_gas(key: PrivateKey, kind: str, payload: Struct | bytes, chain: str,
                  price: int) -> Flow[int]:
    """The gas limit the simulation wants; ``SimulationFailed`` if it would fail."""
    sim = yield from simulate(key, kind, payload, gas_price=price, chain_id=chain)
    if not sim["ok"]:
        raise SimulationFailed(sim)
    return int(sim["gas_wanted"])


def send_tx(key: PrivateKey, kind: str, payload: Struct | bytes, *,
            gas_limit: int | None = None, wait: bool = True, dry_run: bool = False,
            nonce: int | None = None, gas_price: int | None = None,
            chain_id: str | None = None) -> Flow[dict[str, Any]]:
    """Sign, submit and (by default) wait (see ``Client.send_tx``)."""
    if gas_limit is None or dry_run:
        chain_id, gas_price = yield from chain_and_price(chain_id, gas_price)
        if dry_run:
            sim = yield from simulate(key, kind, payload, gas_limit=gas_limit,
                                      gas_price=gas_price, chain_id=chain_id)
            return {**sim, "status": "simulated"}
        gas_limit = yield from simulated_gas(key, kind, payload, chain_id, gas_price)
    signed = yield from build_tx(key, kind, payload, gas_limit=gas_limit, nonce=nonce,
                                 gas_price=gas_price, chain_id=chain_id)
    tx_hash = yield from submit(signed.encode())
    if not wait:
        return {"hash": tx_hash, "status": "pending"}
    return (yield from wait_tx(tx_hash))


def build_transfer(key: PrivateKey, to: str, amount: int, *, nonce: int | None = None,
                   gas_price: int | None = None, gas_limit: int | None = None,
                   chain_id: str | None = None) -> Flow[Transaction]:
    """A signed transfer; the gas limit is what a simulation wants when not given."""
    payload = Transfer(from_bech32(to), amount)
    if gas_limit is None:
        chain_id, gas_price = yield from chain_and_price(chain_id, gas_price)
        gas_limit = yield from simulated_gas(key, "bank/transfer", payload, chain_id,
                                             gas_price)
    return (yield from build_tx(key, "bank/transfer", payload, gas_limit=gas_limit,
                                nonce=nonce, gas_price=gas_price, chain_id=chain_id))


def transfer(key: PrivateKey, to: str, amount: int, *, wait: bool = True,
             gas_limit: int | None = None, **kwargs: Any) -> Flow[dict[str, Any]]:
    return (yield from send_tx(key, "bank/transfer", Transfer(from_bech32(to), amount),
                               gas_limit=gas_limit, wait=wait, **kwargs))
