"""SDK methods of the compute module (WebAssembly jobs): providers, jobs and a worker's answers."""

from __future__ import annotations

from typing import Any

from smartchain.codec import Struct
from smartchain.crypto.keys import PrivateKey
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
from smartchain.modules.sdk import ModuleSdk, seg


class ComputeSdk(ModuleSdk):
    """Compute reads and transactions."""

    # Gas limits are computed from the chain's parameters (``/v1/status``): each state write
    # a handler may do, and the scan of the provider roster when replicas are placed.

    def compute_providers(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/compute/providers")["providers"]

    def compute_provider(self, address: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/compute/providers/{seg(address)}")

    def compute_assignments(self, address: str) -> list[dict[str, Any]]:
        """What a provider must do now: ``{job, task, module_hash, input (hex), fuel,
        deadline, action}`` with action ``commit``, ``reveal`` or ``wait``."""
        path = f"/v1/compute/providers/{seg(address)}/assignments"
        return self._request("GET", path)["assignments"]

    def compute_job(self, job_id: int | str, *, tasks: bool = True) -> dict[str, Any]:
        """A job's terms and state: ``counts`` of tasks per state and ``task_states``
        (``tasks=False``: the job record alone, which stays cheap for large jobs)."""
        query = "" if tasks else "?tasks=0"
        return self._request("GET", f"/v1/compute/jobs/{seg(str(job_id))}{query}")

    def compute_result(self, job_id: int | str) -> dict[str, Any]:
        """The verified outputs in task order (``output`` hex; ``value`` when 8 bytes)."""
        return self._request("GET", f"/v1/compute/jobs/{seg(str(job_id))}/result")

    def compute_module(self, module_hash: str, *, with_bytes: bool = False) -> dict[str, Any]:
        query = "?bytes=1" if with_bytes else ""
        return self._request("GET", f"/v1/compute/modules/{seg(module_hash)}{query}")

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


def posted_job_id(result: dict[str, Any]) -> int:
    """The job id from a committed ``post_job`` (``KeyError`` if it failed)."""
    for event in result["receipt"]["events"]:
        if event["kind"] == "compute_job_post":
            return int(event["attributes"]["job"])
    raise KeyError("no compute_job_post event: the job was not posted")
