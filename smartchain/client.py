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
from smartchain.state.modules.bank import Transfer
from smartchain.state.modules.compute import (
    CancelJob,
    CommitResult,
    Deregister,
    PostJob,
    RegisterProvider,
    ReleaseOutput,
    ReleaseOutputs,
    RevealResult,
    commitment,
    output_digest,
)
from smartchain.state.modules.contracts import Arg, Call, Deploy
from smartchain.state.modules.storage import SIGNATURE_GAS as STORAGE_SIGNATURE_GAS
from smartchain.state.modules.storage import (
    CancelDeal,
    Deal,
    DealView,
    StorageProvider,
)
from smartchain.state.modules.storage import ProviderView as StorageProviderView
from smartchain.state.modules.storage import RegisterProvider as RegisterStorageProvider
from smartchain.state.modules.tokens import (
    MAX_AMOUNT,
    Approve,
    Burn,
    Issue,
    Mint,
    TokenTransfer,
    TransferFrom,
)
from smartchain.types.tx import Transaction

TRANSFER_GAS_LIMIT = 20_000
TOKEN_GAS_LIMIT = 30_000  # intrinsic gas of a token transaction plus its (at most 3) writes
INIT_GAS = 2_000_000  # what a deploy allows its init(...) when no gas limit is given
TX_OVERHEAD = 512  # bytes of a transaction beyond its payload, rounded well up


class ApiError(Exception):
    """The node refused a request: ``code`` is the machine-readable reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


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

    def send_tx(self, key: PrivateKey, kind: str, payload: Struct | bytes, *, gas_limit: int,
                wait: bool = True, **kwargs: Any) -> dict[str, Any]:
        """Sign, submit and (by default) wait: returns the committed transaction with its
        receipt, whose ``ok`` says whether it succeeded (a failed one still paid its fee)."""
        tx = self.build_tx(key, kind, payload, gas_limit=gas_limit, **kwargs)
        tx_hash = self.submit(tx.encode())
        if not wait:
            return {"hash": tx_hash, "status": "pending"}
        return self.wait_tx(tx_hash)

    def build_transfer(self, key: PrivateKey, to: str, amount: int, *, nonce: int | None = None,
                       gas_price: int | None = None, gas_limit: int = TRANSFER_GAS_LIMIT,
                       chain_id: str | None = None) -> Transaction:
        """A signed transfer; nonce, chain id and gas price are fetched when not given."""
        return self.build_tx(key, "bank/transfer", Transfer(from_bech32(to), amount),
                             gas_limit=gas_limit, nonce=nonce, gas_price=gas_price,
                             chain_id=chain_id)

    def transfer(self, key: PrivateKey, to: str, amount: int, *, wait: bool = True,
                 gas_limit: int = TRANSFER_GAS_LIMIT, **kwargs: Any) -> dict[str, Any]:
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
        fixed token and to the 64-bit limit for a mintable one. The gas limit covers the
        chain's issue price (read from the node) when not given."""
        if max_supply is None:
            max_supply = MAX_AMOUNT if mintable else supply
        if gas_limit is None:
            gas_limit = int(self.status().get("token_issue_gas", 0)) + TOKEN_GAS_LIMIT
        return self.send_tx(key, "tokens/issue",
                            Issue(symbol, name, decimals, supply, mintable, max_supply),
                            gas_limit=gas_limit, **kwargs)

    def token_transfer(self, key: PrivateKey, symbol: str, to: str, amount: int, *,
                       gas_limit: int = TOKEN_GAS_LIMIT, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/transfer",
                            TokenTransfer(symbol, from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def approve(self, key: PrivateKey, symbol: str, spender: str, amount: int, *,
                gas_limit: int = TOKEN_GAS_LIMIT, **kwargs: Any) -> dict[str, Any]:
        """Set (not add to) what ``spender`` may move out of this key's balance."""
        return self.send_tx(key, "tokens/approve", Approve(symbol, from_bech32(spender), amount),
                            gas_limit=gas_limit, **kwargs)

    def transfer_from(self, key: PrivateKey, symbol: str, owner: str, to: str, amount: int, *,
                      gas_limit: int = TOKEN_GAS_LIMIT, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/transfer_from",
                            TransferFrom(symbol, from_bech32(owner), from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def mint(self, key: PrivateKey, symbol: str, to: str, amount: int, *,
             gas_limit: int = TOKEN_GAS_LIMIT, **kwargs: Any) -> dict[str, Any]:
        return self.send_tx(key, "tokens/mint", Mint(symbol, from_bech32(to), amount),
                            gas_limit=gas_limit, **kwargs)

    def burn(self, key: PrivateKey, symbol: str, amount: int, *,
             gas_limit: int = TOKEN_GAS_LIMIT, **kwargs: Any) -> dict[str, Any]:
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

    def estimate_call_gas(self, address: str, function: str, args: Any = (), *,
                          caller: str, value: int = 0) -> int:
        """A gas limit for calling ``function``: its gas in a dry run plus a quarter, and the
        transaction's own gas. Raises ``ApiError`` (``contract_failed``) if the call would
        fail now."""
        dry = self.query_contract(address, function, args, caller=caller, value=value)
        st = self.status()
        size = len(Call(from_bech32(address), function, _args(args), value).encode())
        limit = (dry["gas_used"] * 5 // 4 + int(st["contract_call_gas"]) + int(st["tx_base_gas"])
                 + int(st["gas_per_tx_byte"]) * (size + TX_OVERHEAD))
        return min(limit, int(st.get("max_tx_gas", limit)))

    def call_contract(self, key: PrivateKey, address: str, function: str, args: Any = (), *,
                      value: int = 0, gas_limit: int | None = None, wait: bool = True,
                      gas_price: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Call ``function`` in a transaction, sending ``value`` base units of HPC with it.
        Without ``gas_limit`` the call is dry-run first (``estimate_call_gas``), so a call
        that would fail raises ``ApiError`` instead of being sent."""
        if gas_limit is None:
            gas_limit = self.estimate_call_gas(address, function, args,
                                               caller=to_bech32(key.address), value=value)
        return self.send_tx(key, "contracts/call",
                            Call(from_bech32(address), function, _args(args), value),
                            gas_limit=gas_limit, wait=wait, gas_price=gas_price, **kwargs)

    def deploy_contract(self, key: PrivateKey, source: str | bytes, args: Any = (), *,
                        value: int = 0, gas_limit: int | None = None, wait: bool = True,
                        gas_price: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Deploy Lua ``source``; ``init(*args)`` runs once, with ``value`` base units of HPC
        moved to the new contract. The receipt's ``contract_deploy`` event names its address
        (``deployed_address`` reads it). Without ``gas_limit``: the code's price plus
        ``INIT_GAS`` for init (within the chain's per-transaction maximum)."""
        code = source.encode() if isinstance(source, str) else source
        payload = Deploy(code, _args(args), value)
        if gas_limit is None:
            st = self.status()
            size = len(payload.encode()) + TX_OVERHEAD
            gas_limit = (int(st["tx_base_gas"]) + int(st["gas_per_tx_byte"]) * size
                         + int(st["contract_code_byte_gas"]) * len(code)
                         + 2 * int(st["gas_per_write"]) + int(st["contract_call_gas"]) + INIT_GAS)
            gas_limit = min(gas_limit, int(st.get("max_tx_gas", gas_limit)))
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

    def _compute_gas(self, payload: Struct, writes: int, scans: int,
                     st: dict[str, Any] | None = None) -> int:
        st = st or self.status()
        providers = len(self.compute_providers()) if scans else 0
        size = len(payload.encode()) + TX_OVERHEAD
        gas = (int(st["tx_base_gas"]) + int(st["gas_per_tx_byte"]) * size
               + int(st["gas_per_write"]) * writes
               + int(st.get("compute_scan_gas", 20)) * (providers + 1) * scans)
        gas = gas * 5 // 4  # margin: placing may touch a few more keys than counted
        return min(gas, int(st.get("max_tx_gas", gas)))

    def register_compute_provider(self, key: PrivateKey, capability: int, stake: int, *,
                                  owner: bytes = bytes(20), network: str = "",
                                  gas_limit: int | None = None, **kwargs: Any
                                  ) -> dict[str, Any]:
        """Register (or update) this key as a compute provider declaring ``capability``
        fuel/s; ``stake`` base units of HPC are locked (added to any stake already there).
        ``owner`` (the operator's account) and ``network`` (its public address) keep the
        replicas of one task off machines of one operator or one network."""
        payload = RegisterProvider(capability, stake, owner, network)
        if gas_limit is None:
            gas_limit = self._compute_gas(payload, writes=8, scans=0)
        return self.send_tx(key, "compute/register_provider", payload, gas_limit=gas_limit,
                            **kwargs)

    def deregister_compute_provider(self, key: PrivateKey, *, gas_limit: int | None = None,
                                    **kwargs: Any) -> dict[str, Any]:
        payload = Deregister()
        if gas_limit is None:
            gas_limit = self._compute_gas(payload, writes=8, scans=0)
        return self.send_tx(key, "compute/deregister", payload, gas_limit=gas_limit, **kwargs)

    def post_job_gas(self, payload: PostJob, st: dict[str, Any] | None = None) -> int:
        tasks, r = len(payload.tasks), payload.redundancy
        # escrow move, job id, modules, job; per task: input, task, pending mark, and per
        # replica a deadline and an assignment key; every provider record at the end
        writes = 10 + tasks * (3 + 2 * r) + len(self.compute_providers())
        return self._compute_gas(payload, writes=writes, scans=tasks * r, st=st)

    def post_job(self, key: PrivateKey, module: bytes, inputs: Any, *, redundancy: int = 2,
                 fuel_per_task: int, price_per_fuel: int, deadline_blocks: int,
                 reduce: bytes = b"", gas_limit: int | None = None, **kwargs: Any
                 ) -> dict[str, Any]:
        """Post a job: ``module`` runs once per input (``redundancy`` times, on different
        providers); ``tasks × redundancy × fuel_per_task × price_per_fuel`` is locked in
        escrow and what is not spent comes back. The job id is ``posted_job_id(result)``."""
        payload = PostJob(bytes(module), tuple(bytes(i) for i in inputs), fuel_per_task,
                          price_per_fuel, deadline_blocks, redundancy, bytes(reduce))
        if gas_limit is None:
            gas_limit = self.post_job_gas(payload)
        return self.send_tx(key, "compute/post_job", payload, gas_limit=gas_limit, **kwargs)

    def cancel_job(self, key: PrivateKey, job_id: int, *, gas_limit: int | None = None,
                   **kwargs: Any) -> dict[str, Any]:
        """Stop a job (requester only): unverified tasks are dropped, unspent escrow returns."""
        payload = CancelJob(job_id)
        if gas_limit is None:
            tasks = int(self.compute_job(job_id)["tasks"])
            r = int(self.status().get("compute_max_extra_replicas", 3)) + 16
            gas_limit = self._compute_gas(payload, writes=10 + tasks * (2 + 2 * r), scans=0)
        return self.send_tx(key, "compute/cancel_job", payload, gas_limit=gas_limit, **kwargs)

    def _result_gas(self, payload: Struct) -> int:
        st = self.status()
        replicas = 16 + int(st.get("compute_max_extra_replicas", 3))
        # deadlines, provider records, payments (two writes each), slashing, the job's close
        return self._compute_gas(payload, writes=24 + 8 * replicas, scans=2, st=st)

    def commit_result(self, key: PrivateKey, job_id: int, task: int, output: bytes,
                      error: str, fuel_used: int, *, salt: bytes = b"",
                      gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """A worker's commitment to its result for one task (its address is bound in;
        ``salt`` is the one its assignment gives)."""
        payload = CommitResult(job_id, task, commitment(output, error, fuel_used, key.address,
                                                        salt))
        return self.send_tx(key, "compute/commit_result", payload,
                            gas_limit=gas_limit or self._result_gas(payload), **kwargs)

    def reveal_result(self, key: PrivateKey, job_id: int, task: int, output: bytes,
                      error: str, fuel_used: int, *, salt: bytes = b"",
                      gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Open the commitment: the output's hash is sent, not the output (that goes in
        ``release_output`` once the quorum has paid)."""
        payload = RevealResult(job_id, task, output_digest(output, salt), error, fuel_used)
        return self.send_tx(key, "compute/reveal_result", payload,
                            gas_limit=gas_limit or self._result_gas(payload), **kwargs)

    def release_output(self, key: PrivateKey, job_id: int, task: int, output: bytes, *,
                       gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """Put a paid task's output on chain (what a winning worker owes)."""
        payload = ReleaseOutputs((ReleaseOutput(job_id, task, output),))
        return self.send_tx(key, "compute/release_outputs", payload,
                            gas_limit=gas_limit or self._result_gas(payload), **kwargs)

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

    def _storage_gas(self, payload: Struct, writes: int, signatures: int = 0) -> int:
        st = self.status()
        gas = (int(st["tx_base_gas"]) + int(st["gas_per_tx_byte"]) * (len(payload.encode())
                                                                     + TX_OVERHEAD)
               + int(st["gas_per_write"]) * writes + STORAGE_SIGNATURE_GAS * signatures)
        return min(gas * 3 // 2, int(st.get("max_tx_gas", gas * 3 // 2)))

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
                            gas_limit=gas_limit or self._storage_gas(payload, 6), **kwargs)

    def cancel_storage_deal(self, key: PrivateKey, file_id: bytes, *,
                            gas_limit: int | None = None, **kwargs: Any) -> dict[str, Any]:
        """End a deal early (owner only): the current epoch stays payable, escrow and repair
        budget left come back."""
        payload = CancelDeal(file_id)
        if gas_limit is None:
            n = len(self.storage_deal(file_id)["columns"])
            gas_limit = self._storage_gas(payload, 12 + 8 * n)
        return self.send_tx(key, "storage/cancel_deal", payload, gas_limit=gas_limit, **kwargs)


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
