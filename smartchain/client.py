"""Python SDK over the node's HTTP API (standard library only, so it embeds anywhere)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from smartchain.codec import Struct
from smartchain.crypto.address import from_bech32, to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.bank.types import Transfer
from smartchain.modules.compute.types import (
    CancelJob,
    CommitResult,
    Deregister,
    PostJob,
    RegisterProvider,
    ReleaseOutput,
    ReleaseOutputs,
    RevealResult,
    answer_gas_limit,
    commitment,
    output_digest,
)
from smartchain.modules.contracts.types import Arg, Call, Deploy
from smartchain.modules.storage.types import CancelDeal, Deal, DealView, StorageProvider
from smartchain.modules.storage.types import ProviderView as StorageProviderView
from smartchain.modules.storage.types import RegisterProvider as RegisterStorageProvider
from smartchain.modules.tokens.types import (
    MAX_AMOUNT,
    Approve,
    Burn,
    Issue,
    Mint,
    TokenTransfer,
    TransferFrom,
)
from smartchain.types.tx import Transaction


class ApiError(Exception):
    """The node refused a request: ``code`` is the machine-readable reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class SimulationFailed(ApiError):
    """A transaction sent with automatic gas failed its simulation, so it was not sent:
    ``simulation`` is what ``POST /v1/txs/simulate`` said (``code_name``, ``log``)."""

    def __init__(self, simulation: dict[str, Any]) -> None:
        super().__init__(422, simulation["code_name"],
                         f"transaction not sent: its simulation failed: {simulation['log']}")
        self.simulation = simulation


class NodeUnreachable(ApiError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, "unreachable", f"cannot reach node at {url}: {reason}")


def _seg(text: str) -> str:
    """One URL path segment: user input must not add segments or a query."""
    return urllib.parse.quote(text, safe="")


@dataclass
class Client:
    url: str = "http://127.0.0.1:26657"
    timeout: float = 10.0

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                err = json.loads(exc.read())["error"]
                raise ApiError(exc.code, err["code"], err["message"]) from None
            except (ValueError, KeyError, TypeError):
                raise ApiError(exc.code, "http_error", str(exc)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise NodeUnreachable(self.url, str(getattr(exc, "reason", exc))) from None

    # --- reads ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/v1/status")

    def account(self, address: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/accounts/{address}")

    def balance(self, address: str) -> int:
        return int(self.account(address)["balance"])

    def block(self, height: int | str = "latest") -> dict[str, Any]:
        return self._request("GET", f"/v1/blocks/{height}")

    def tx(self, tx_hash: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/txs/{tx_hash}")

    # --- writes --------------------------------------------------------------------------

    def submit(self, raw: bytes) -> str:
        return self._request("POST", "/v1/txs", {"tx": raw.hex()})["hash"]

    def submit_batch(self, raws: list[bytes]) -> list[dict[str, Any]]:
        return self._request("POST", "/v1/txs/batch", {"txs": [r.hex() for r in raws]})["results"]

    def wait_tx(self, tx_hash: str, timeout: float = 30.0, poll: float = 0.1) -> dict[str, Any]:
        """Poll until the transaction is committed; returns it with its receipt."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                doc = self.tx(tx_hash)
                if doc["status"] == "committed":
                    return doc
            except ApiError as exc:
                if exc.code != "not_found":
                    raise
            if time.monotonic() > deadline:
                raise ApiError(0, "timeout", f"transaction {tx_hash} not committed in {timeout}s")
            time.sleep(poll)

    def build_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *, gas_limit: int,
                 nonce: int | None = None, gas_price: int | None = None,
                 chain_id: str | None = None) -> Transaction:
        """A signed transaction of any kind; nonce, chain id and gas price are fetched when
        not given (the nonce is the account's next one, counting its pending transactions)."""
        if chain_id is None or gas_price is None:
            st = self.status()
            chain_id = chain_id or st["chain_id"]
            gas_price = gas_price if gas_price is not None else st["min_gas_price"]
        if nonce is None:
            nonce = self.account(to_bech32(key.address))["pending_nonce"]
        raw = payload if isinstance(payload, bytes) else payload.encode()
        return Transaction.create(key, chain_id=chain_id, nonce=nonce, kind=kind, payload=raw,
                                  gas_limit=gas_limit, gas_price=gas_price)

    def simulate(self, sender: PrivateKey | bytes, kind: str, payload: Struct | bytes, *,
                 gas_limit: int | None = None, nonce: int | None = None,
                 gas_price: int | None = None, chain_id: str | None = None) -> dict[str, Any]:
        """What the transaction would do in the next block (``POST /v1/txs/simulate``), sent
        unsigned: ``sender`` is a key or a public key. Without ``nonce`` the state's next
        one is used; without ``gas_limit`` the most the sender can pay for. Returns the
        receipt it would get (``ok``, ``code_name``, ``log``, ``gas_used``, ``events``) and
        ``gas_wanted``, the limit to send it with. ``ApiError`` if it would be refused."""
        if chain_id is None or gas_price is None:
            st = self.status()
            chain_id = chain_id or st["chain_id"]
            gas_price = gas_price if gas_price is not None else st["min_gas_price"]
        public_key = sender.public_key if isinstance(sender, PrivateKey) else sender
        raw = payload if isinstance(payload, bytes) else payload.encode()
        tx = Transaction(chain_id, public_key, nonce or 0, gas_limit or 0, gas_price, kind, raw,
                         bytes(64))
        return self.simulate_raw(tx.encode(), next_nonce=nonce is None,
                                 max_gas=gas_limit is None)

    def simulate_raw(self, raw: bytes, *, next_nonce: bool = False,
                     max_gas: bool = False) -> dict[str, Any]:
        """Simulate an encoded transaction, signed or not (64 zero bytes of signature)."""
        body: dict[str, Any] = {"tx": raw.hex()}
        if next_nonce:
            body["nonce"] = "next"
        if max_gas:
            body["gas_limit"] = "max"
        return self._request("POST", "/v1/txs/simulate", body)

    def send_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *,
                gas_limit: int | None = None, wait: bool = True, dry_run: bool = False,
                nonce: int | None = None, gas_price: int | None = None,
                chain_id: str | None = None) -> dict[str, Any]:
        """Sign, submit and (by default) wait: returns the committed transaction with its
        receipt, whose ``ok`` says whether it succeeded (a failed one still paid its fee).

        ``gas_limit=None`` (automatic): the transaction is simulated first and sent with
        the simulation's ``gas_wanted``; one that would fail raises ``SimulationFailed``
        instead of being sent. ``dry_run``: only the simulation (``status`` "simulated")
        is returned, ``ok`` or not, and nothing is sent."""
        if gas_limit is None or dry_run:
            if chain_id is None or gas_price is None:
                st = self.status()
                chain_id = chain_id or st["chain_id"]
                gas_price = gas_price if gas_price is not None else st["min_gas_price"]
            sim = self.simulate(key, kind, payload, gas_limit=gas_limit, gas_price=gas_price,
                                chain_id=chain_id)
            if dry_run:
                return {**sim, "status": "simulated"}
            if not sim["ok"]:
                raise SimulationFailed(sim)
            gas_limit = int(sim["gas_wanted"])
        tx = self.build_tx(key, kind, payload, gas_limit=gas_limit, nonce=nonce,
                           gas_price=gas_price, chain_id=chain_id)
        tx_hash = self.submit(tx.encode())
        if not wait:
            return {"hash": tx_hash, "status": "pending"}
        return self.wait_tx(tx_hash)

    def build_transfer(self, key: PrivateKey, to: str, amount: int, *, nonce: int | None = None,
                       gas_price: int | None = None, gas_limit: int | None = None,
                       chain_id: str | None = None) -> Transaction:
        """A signed transfer; nonce, chain id and gas price are fetched when not given, and
        the gas limit is what a simulation wants."""
        if gas_limit is None:
            sim = self.simulate(key, "bank/transfer", Transfer(from_bech32(to), amount),
                                gas_price=gas_price, chain_id=chain_id)
            if not sim["ok"]:
                raise SimulationFailed(sim)
            gas_limit = int(sim["gas_wanted"])
        return self.build_tx(key, "bank/transfer", Transfer(from_bech32(to), amount),
                             gas_limit=gas_limit, nonce=nonce, gas_price=gas_price,
                             chain_id=chain_id)

    def transfer(self, key: PrivateKey, to: str, amount: int, *, wait: bool = True,
                 gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "bank/transfer", Transfer(from_bech32(to), amount),
                            gas_limit=gas_limit, wait=wait, **kwargs)

    # --- tokens (IOT_Coin) ---------------------------------------------------------------

    def token(self, symbol: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/tokens/{_seg(symbol)}")

    def tokens(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/tokens")["tokens"]

    def token_balance_info(self, symbol: str, address: str) -> dict[str, Any]:
        """Balance in base units and as a decimal amount (with the token's decimals)."""
        return self._request("GET", f"/v1/tokens/{_seg(symbol)}/balances/{_seg(address)}")

    def token_balance(self, symbol: str, address: str) -> int:
        return int(self.token_balance_info(symbol, address)["balance"])

    def allowance_info(self, symbol: str, owner: str, spender: str) -> dict[str, Any]:
        path = f"/v1/tokens/{_seg(symbol)}/allowances/{_seg(owner)}/{_seg(spender)}"
        return self._request("GET", path)

    def allowance(self, symbol: str, owner: str, spender: str) -> int:
        return int(self.allowance_info(symbol, owner, spender)["allowance"])

    def issue_token(self, key: PrivateKey, symbol: str, name: str, decimals: int, supply: int,
                    *, mintable: bool = False, max_supply: int | None = None,
                    gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Issue a token; amounts in base units. ``max_supply`` defaults to the supply for a
        fixed token and to the 64-bit limit for a mintable one."""
        if max_supply is None:
            max_supply = MAX_AMOUNT if mintable else supply
        return self.send_tx(key, "tokens/issue",
                            Issue(symbol, name, decimals, supply, mintable, max_supply),
                            gas_limit=gas_limit, **kwargs)

    def token_transfer(self, key: PrivateKey, symbol: str, to: str, amount: int, *,
                       gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/transfer",
                            TokenTransfer(symbol, from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def approve(self, key: PrivateKey, symbol: str, spender: str, amount: int, *,
                gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Set (not add to) what ``spender`` may move out of this key's balance."""
        return self.send_tx(key, "tokens/approve", Approve(symbol, from_bech32(spender), amount),
                            gas_limit=gas_limit, **kwargs)

    def transfer_from(self, key: PrivateKey, symbol: str, owner: str, to: str, amount: int, *,
                      gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/transfer_from",
                            TransferFrom(symbol, from_bech32(owner), from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def mint(self, key: PrivateKey, symbol: str, to: str, amount: int, *,
             gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/mint", Mint(symbol, from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def burn(self, key: PrivateKey, symbol: str, amount: int, *,
             gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/burn", Burn(symbol, amount), gas_limit=gas_limit,
                            **kwargs)

    # --- contracts (Lua) ----------------------------------------------------------------
    # Arguments and results are None, bool, int (64-bit), str or bytes; addresses are
    # their bech32 strings (what ctx.caller is to a contract). Values are HPC base units.

    def contract(self, address: str) -> dict[str, Any]:
        """Creator, deploy height, code hash and size, HPC balance and source."""
        return self._request("GET", f"/v1/contracts/{_seg(address)}")

    def query_contract(self, address: str, function: str, args: Any = (), *,
                       caller: str | None = None, value: int = 0) -> dict[str, Any]:
        """Run ``function`` read-only on the latest state: ``{"ok", "gas_used", "results"}``
        (bytes results that are not UTF-8 come as ``{"hex": ...}``). A failing call raises
        ``ApiError`` with code ``contract_failed``."""
        body: dict[str, Any] = {"function": function, "args": [_arg_json(a) for a in args]}
        if caller is not None:
            body["caller"] = caller
        if value:
            body["value"] = str(value)
        return self._request("POST", f"/v1/contracts/{_seg(address)}/query", body)

    def call_contract(self, key: PrivateKey, address: str, function: str, args: Any = (), *,
                      value: int = 0, gas_limit: int | None = None, wait: bool = True,
                      gas_price: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Call ``function`` in a transaction, sending ``value`` base units of HPC with it.
        Without ``gas_limit`` the call is simulated first (``send_tx``), so a call that would
        fail raises ``SimulationFailed`` instead of being sent."""
        return self.send_tx(key, "contracts/call",
                            Call(from_bech32(address), function, _args(args), value),
                            gas_limit=gas_limit, wait=wait, gas_price=gas_price, **kwargs)

    def deploy_contract(self, key: PrivateKey, source: str | bytes, args: Any = (), *,
                        value: int = 0, gas_limit: int | None = None, wait: bool = True,
                        gas_price: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Deploy Lua ``source``; ``init(*args)`` runs once, with ``value`` base units of HPC
        moved to the new contract. The receipt's ``contract_deploy`` event names its address
        (``deployed_address`` reads it). Without ``gas_limit`` it is simulated first."""
        code = source.encode() if isinstance(source, str) else source
        payload = Deploy(code, _args(args), value)
        return self.send_tx(key, "contracts/deploy", payload, gas_limit=gas_limit, wait=wait,
                            gas_price=gas_price, **kwargs)

    # --- compute (WebAssembly jobs) -------------------------------------------------------
    # Gas limits are computed from the chain's parameters (``/v1/status``): each state write
    # a handler may do, and the scan of the provider roster when replicas are placed.

    def compute_providers(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/compute/providers")["providers"]

    def compute_provider(self, address: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/compute/providers/{_seg(address)}")

    def compute_assignments(self, address: str) -> list[dict[str, Any]]:
        """What a provider must do now: ``{job, task, module_hash, input (hex), fuel,
        deadline, action}`` with action ``commit``, ``reveal`` or ``wait``."""
        path = f"/v1/compute/providers/{_seg(address)}/assignments"
        return self._request("GET", path)["assignments"]

    def compute_job(self, job_id: int | str, *, tasks: bool = True) -> dict[str, Any]:
        """A job's terms and state: ``counts`` of tasks per state and ``task_states``
        (``tasks=False``: the job record alone, which stays cheap for large jobs)."""
        query = "" if tasks else "?tasks=0"
        return self._request("GET", f"/v1/compute/jobs/{_seg(str(job_id))}{query}")

    def compute_result(self, job_id: int | str) -> dict[str, Any]:
        """The verified outputs in task order (``output`` hex; ``value`` when 8 bytes)."""
        return self._request("GET", f"/v1/compute/jobs/{_seg(str(job_id))}/result")

    def compute_module(self, module_hash: str, *, with_bytes: bool = False) -> dict[str, Any]:
        query = "?bytes=1" if with_bytes else ""
        return self._request("GET", f"/v1/compute/modules/{_seg(module_hash)}{query}")

    def register_compute_provider(self, key: PrivateKey, capability: int, stake: int, *,
                                  owner: bytes = bytes(20), network: str = "",
                                  gas_limit: int | None = None, **kwargs: Any
                                  ) -> dict[str, Any]:
        """Register (or update) this key as a compute provider declaring ``capability``
        fuel/s; ``stake`` base units of HPC are locked (added to any stake already there).
        ``owner`` (the operator's account) and ``network`` (its public address) keep the
        replicas of one task off machines of one operator or one network."""
        payload = RegisterProvider(capability, stake, owner, network)
        return self.send_tx(key, "compute/register_provider", payload, gas_limit=gas_limit,
                            **kwargs)

    def deregister_compute_provider(self, key: PrivateKey, *, gas_limit: int | None = None,
                                    **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "compute/deregister", Deregister(), gas_limit=gas_limit, **kwargs)

    def post_job(self, key: PrivateKey, module: bytes, inputs: Any, *, redundancy: int = 2,
                 fuel_per_task: int, price_per_fuel: int, deadline_blocks: int,
                 reduce: bytes = b"", gas_limit: int | None = None, **kwargs: Any
                 ) -> dict[str, Any]:
        """Post a job: ``module`` runs once per input (``redundancy`` times, on different
        providers); ``tasks × redundancy × fuel_per_task × price_per_fuel`` is locked in
        escrow and what is not spent comes back. The job id is ``posted_job_id(result)``."""
        payload = PostJob(bytes(module), tuple(bytes(i) for i in inputs), fuel_per_task,
                          price_per_fuel, deadline_blocks, redundancy, bytes(reduce))
        return self.send_tx(key, "compute/post_job", payload, gas_limit=gas_limit, **kwargs)

    def cancel_job(self, key: PrivateKey, job_id: int, *, gas_limit: int | None = None,
                   **kwargs: Any) -> dict[str, Any]:
        """Stop a job (requester only): unverified tasks are dropped, unspent escrow returns."""
        return self.send_tx(key, "compute/cancel_job", CancelJob(job_id), gas_limit=gas_limit,
                            **kwargs)

    # A provider's answers are not simulated (``answer_gas_limit`` says why): they go with
    # the bound the node's own worker uses, unless ``gas_limit`` is given.

    def _send_answer(self, key: PrivateKey, kind: str, payload: Struct,
                     gas_limit: int | None, **kwargs: Any) -> dict[str, Any]:
        if gas_limit is None:
            gas_limit = answer_gas_limit(payload, int(self.status()["max_tx_gas"]))
        return self.send_tx(key, kind, payload, gas_limit=gas_limit, **kwargs)

    def commit_result(self, key: PrivateKey, job_id: int, task: int, output: bytes,
                      error: str, fuel_used: int, *, salt: bytes = b"",
                      gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """A worker's commitment to its result for one task (its address is bound in;
        ``salt`` is the one its assignment gives)."""
        payload = CommitResult(job_id, task, commitment(output, error, fuel_used, key.address,
                                                        salt))
        return self._send_answer(key, "compute/commit_result", payload, gas_limit, **kwargs)

    def reveal_result(self, key: PrivateKey, job_id: int, task: int, output: bytes,
                      error: str, fuel_used: int, *, salt: bytes = b"",
                      gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Open the commitment: the output's hash is sent, not the output (that goes in
        ``release_output`` once the quorum has paid)."""
        payload = RevealResult(job_id, task, output_digest(output, salt), error, fuel_used)
        return self._send_answer(key, "compute/reveal_result", payload, gas_limit, **kwargs)

    def release_output(self, key: PrivateKey, job_id: int, task: int, output: bytes, *,
                       gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Put a paid task's output on chain (what a winning worker owes)."""
        payload = ReleaseOutputs((ReleaseOutput(job_id, task, output),))
        return self._send_answer(key, "compute/release_outputs", payload, gas_limit, **kwargs)

    # --- storage (deals and providers) --------------------------------------------------
    # Uploads and downloads talk to providers over P2P: ``smartchain.storage.client``
    # (``ApiChainView`` wraps this client for it). These are the chain-side reads and writes.

    def storage_providers(self, *, raw: bool = False) -> list[dict[str, Any]]:
        """Every registered storage provider (active or not), in address order."""
        return self._request("GET", "/v1/storage/providers" + _raw(raw))["providers"]

    def storage_provider(self, address: str, *, raw: bool = False) -> dict[str, Any]:
        return self._request("GET", f"/v1/storage/providers/{_seg(address)}{_raw(raw)}")

    def storage_challenges(self, address: str) -> list[dict[str, Any]]:
        """Audit challenges the provider must answer this epoch."""
        path = f"/v1/storage/providers/{_seg(address)}/challenges"
        return self._request("GET", path)["challenges"]

    def storage_deal(self, file_id: str | bytes, *, raw: bool = False) -> dict[str, Any]:
        """A deal's terms, escrow and columns; ``ApiError`` ``not_found`` when there is none."""
        fid = file_id.hex() if isinstance(file_id, bytes) else file_id
        return self._request("GET", f"/v1/storage/deals/{_seg(fid)}{_raw(raw)}")

    def storage_deals(self, owner: str, *, raw: bool = False) -> list[dict[str, Any]]:
        """Every deal ``owner`` made (active, ended or cancelled), in file id order."""
        query = urllib.parse.urlencode({"owner": owner, **({"raw": "1"} if raw else {})})
        return self._request("GET", f"/v1/storage/deals?{query}")["deals"]

    def storage_repairs(self) -> list[dict[str, Any]]:
        """Active deals with fewer healthy columns than their repair threshold."""
        return self._request("GET", "/v1/storage/repairs")["deals"]

    def storage_provider_records(self) -> list[tuple[bytes, StorageProvider]]:
        """Every provider as the module's own record (decoded from ``?raw=1``)."""
        out = []
        for doc in self.storage_providers(raw=True):
            v = StorageProviderView.decode(bytes.fromhex(doc["raw"]))
            out.append((v.address, v.provider))
        return out

    def storage_deal_record(self, file_id: bytes) -> Deal | None:
        """The deal as the module's own record, or ``None`` when there is none."""
        try:
            doc = self.storage_deal(file_id, raw=True)
        except ApiError as exc:
            if exc.code == "not_found":
                return None
            raise
        return DealView.decode(bytes.fromhex(doc["raw"])).deal

    def register_storage_provider(self, key: PrivateKey, capacity: int, price: int,
                                  bandwidth_price: int, collateral: int, p2p: str, *,
                                  gas_limit: int | None = None, **kwargs: Any
                                  ) -> dict[str, Any]:
        """Offer ``capacity`` bytes at ``price`` base units per GiB per epoch (and
        ``bandwidth_price`` per GiB served), locking ``collateral`` (added to any already
        locked). ``p2p`` is the node's dialable address (``P2P.address``)."""
        payload = RegisterStorageProvider(capacity, price, bandwidth_price, collateral, p2p,
                                          key.public_key)
        return self.send_tx(key, "storage/register_provider", payload,
                            gas_limit=gas_limit, **kwargs)

    def cancel_storage_deal(self, key: PrivateKey, file_id: bytes, *,
                            gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """End a deal early (owner only): the current epoch stays payable, escrow and repair
        budget left come back."""
        return self.send_tx(key, "storage/cancel_deal", CancelDeal(file_id),
                            gas_limit=gas_limit, **kwargs)


def _raw(flag: bool) -> str:
    return "?raw=1" if flag else ""


def posted_job_id(result: dict[str, Any]) -> int:
    """The job id from a committed ``post_job`` (``KeyError`` if it failed)."""
    for event in result["receipt"]["events"]:
        if event["kind"] == "compute_job_post":
            return int(event["attributes"]["job"])
    raise KeyError("no compute_job_post event: the job was not posted")


def deployed_address(result: dict[str, Any]) -> str:
    """The new contract's address from a committed deploy (``KeyError`` if it failed)."""
    for event in result["receipt"]["events"]:
        if event["kind"] == "contract_deploy":
            return event["attributes"]["contract"]
    raise KeyError("no contract_deploy event: the deploy did not succeed")


def _args(values: Any) -> tuple[Arg, ...]:
    return tuple(Arg.of(v) for v in values)


def _arg_json(v: Any) -> Any:
    """An argument as the query API takes it: bytes travel as hex, the rest as they are."""
    if isinstance(v, bytes):
        return {"hex": v.hex()}
    if v is None or isinstance(v, bool | int | str):
        return v
    raise TypeError(f"a contract argument is None, bool, int, str or bytes, not {v!r}")
