"""Sharing a device's idle compute: the agent as a provider of the existing compute module.

Through the SDK only: the agent registers its key as a compute provider (stake, declared
fuel/s), reads what the chain assigns it, runs each task on the device and answers (commit,
reveal, release), and the compute module pays it for every task its quorum verifies.

Tasks are WebAssembly run by ``smartchain.compute.wasm`` (wasmtime): that engine is loaded
only when a device shares compute (``[compute] share = true``), so the rest of the agent
stays light. Results are kept in the progress file before the commit is sent, so an agent
killed between commit and reveal reveals the very result it committed to after a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from smartchain.agent.store import Progress
from smartchain.client import ApiError, Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey

log = logging.getLogger("smartchain.agent.compute")

SECTION = "compute"


@dataclass(frozen=True, slots=True)
class ComputeSettings:
    """``[compute]`` of the agent's config."""

    share: bool = False
    capability: int = 1_000_000_000  # declared fuel/s (the chain measures the real one)
    stake: int = 0  # base units of HPC locked while providing


class Runner(Protocol):
    def __call__(self, module: bytes, data: bytes, fuel: int) -> tuple[bytes, str, int]: ...


def wasm_runner() -> Runner:
    """Run a task with the compute module's own engine (loads wasmtime, now)."""
    from smartchain.compute.wasm import TaskRunner

    engine = TaskRunner()

    def run(module: bytes, data: bytes, fuel: int) -> tuple[bytes, str, int]:
        res = engine.run(module, data, fuel=fuel)
        return res.output, res.error, res.fuel_used

    return run


class ComputeRole:
    """One pass per agent loop turn: stay registered, answer every assignment once."""

    def __init__(self, client: Client, key: PrivateKey, settings: ComputeSettings,
                 progress: Progress, runner: Runner | None = None) -> None:
        self.client, self.key, self.settings, self.progress = client, key, settings, progress
        self.address = to_bech32(key.address)
        self.runner = runner or wasm_runner()
        self.modules: dict[str, bytes] = {}
        self.registered = False
        self.stats = {"tasks_run": 0, "answers": 0}

    def step(self) -> None:
        if not self._ensure_registered():
            return
        for a in self.client.compute_assignments(self.address):
            if a["action"] in ("commit", "reveal", "release"):
                self._answer(a)

    def status(self) -> dict[str, Any]:
        return {"registered": self.registered, **self.stats}

    def _ensure_registered(self) -> bool:
        try:
            view: dict[str, Any] | None = self.client.compute_provider(self.address)
        except ApiError as exc:
            if exc.code != "not_found":
                raise
            view = None
        if view is not None and view["active"] \
                and int(view["capability"]) == self.settings.capability:
            if not self.registered:
                log.info("compute: registered on chain as provider %s (%s fuel/s)",
                         self.address, view["capability"])
            self.registered = True
            return True
        self.registered = False
        have = int(view["stake"]) if view is not None else 0
        result = self.client.register_compute_provider(
            self.key, self.settings.capability, max(0, self.settings.stake - have))
        if not result["receipt"]["ok"]:
            log.warning("compute: registration failed: %s", result["receipt"]["log"])
        return False  # confirmed on the next pass, from the chain's view

    def _answer(self, a: dict[str, Any]) -> None:
        job, task, action = int(a["job"]), int(a["task"]), a["action"]
        slot = f"{job}:{task}"
        result = self.progress.entry(SECTION, slot)
        if not result:
            output, error, fuel = self.runner(self._module(a["module_hash"]),
                                              bytes.fromhex(a["input"]), int(a["fuel"]))
            self.stats["tasks_run"] += 1
            log.info("compute: ran job %d task %d: %s, %d fuel", job, task,
                     f"error {error!r}" if error else f"{len(output)} bytes", fuel)
            # saved before the commit leaves: the reveal must match it after a restart
            result = self.progress.update(SECTION, slot, output=output.hex(), error=error,
                                          fuel=fuel)
        output = bytes.fromhex(result["output"])
        salt = bytes.fromhex(a.get("salt", ""))
        if action == "commit":
            sent = self.client.commit_result(self.key, job, task, output, result["error"],
                                             int(result["fuel"]), salt=salt)
        elif action == "reveal":
            sent = self.client.reveal_result(self.key, job, task, output, result["error"],
                                             int(result["fuel"]), salt=salt)
        else:
            sent = self.client.release_output(self.key, job, task, output)
        self.stats["answers"] += 1
        ok = sent["receipt"]["ok"]
        log.info("compute: %s for job %d task %d %s", action, job, task,
                 "accepted" if ok else f"refused: {sent['receipt']['log']}")

    def _module(self, digest: str) -> bytes:
        if digest not in self.modules:
            self.modules[digest] = bytes.fromhex(
                self.client.compute_module(digest, with_bytes=True)["hex"])
        return self.modules[digest]
