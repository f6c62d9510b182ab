"""``smart agent run CONFIG.toml``: the SmartAgent's one loop.

The agent is a set of roles (a provider of offers, a consumer of them, a compute provider,
the keeper of the device's data) over one key, one node client, one MQTT link and one
progress file. One thread does all the work: it takes the messages paho received from the
inbox as they come, and every ``poll_seconds`` lets each role read the chain and act. A
failure to reach the node or the broker is logged and tried again on the next turn; a bad
message is dropped with a log line; nothing a peer or a device sends can stop the loop. The
status (what each role has done, the last error) is written to ``STATE_DIR/status.json``
every turn for ``smart agent status``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from smartchain.agent.compute import ComputeRole
from smartchain.agent.config import AgentConfig
from smartchain.agent.data import DataRole
from smartchain.agent.keys import load_key
from smartchain.agent.market import Context, market_roles
from smartchain.agent.mqtt import Incoming, MqttLink
from smartchain.agent.store import Progress
from smartchain.client import ApiError, Client
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey

log = logging.getLogger("smartchain.agent")

STATUS_FILE = "status.json"
LOG_FILE = "agent.log"


class Role(Protocol):
    """One thing the agent does; ``step`` runs once per turn, ``on_message`` per message."""

    name: str

    def topics(self) -> list[str]: ...

    def step(self) -> None: ...

    def on_message(self, msg: Incoming) -> None: ...

    def status(self) -> dict[str, Any]: ...


class ComputeSharing:
    """The compute role as an agent role (it speaks to the chain only, not MQTT)."""

    name = "compute"

    def __init__(self, role: ComputeRole) -> None:
        self.role = role

    def topics(self) -> list[str]:
        return []

    def step(self) -> None:
        self.role.step()

    def on_message(self, msg: Incoming) -> None:
        return None

    def status(self) -> dict[str, Any]:
        return self.role.status()


class Agent:
    """Roles over one key, client, MQTT link and progress file."""

    def __init__(self, cfg: AgentConfig, key: PrivateKey, client: Client,
                 link: MqttLink | None, progress: Progress, roles: list[Role]) -> None:
        self.cfg, self.key, self.client, self.link = cfg, key, client, link
        self.progress, self.roles = progress, roles
        self.address = to_bech32(key.address)
        self.started = time.time()
        self.last_error = ""
        self.turns = 0

    def run(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: messages as they come, each role's step every poll."""
        log.info("agent %s running as %s (roles: %s)", self.cfg.agent.name, self.address,
                 ", ".join(r.name for r in self.roles) or "none")
        next_step = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_step:
                self._step_all()
                next_step = time.monotonic() + self.cfg.agent.poll_seconds
            self._drain(max(0.0, next_step - time.monotonic()), stop)
        log.info("agent %s stopped", self.cfg.agent.name)
        self.write_status()

    def _drain(self, timeout: float, stop: threading.Event) -> None:
        if self.link is None:
            stop.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                msg = self.link.inbox.get(timeout=min(left, 0.2))
            except queue.Empty:
                continue
            for role in self.roles:
                self._guard(role, "message", role.on_message, msg)
            self.link.done(msg)  # handled (or dropped): only now may the broker forget it

    def _step_all(self) -> None:
        for role in self.roles:
            self._guard(role, "step", role.step)
        self.turns += 1
        self.write_status()

    def _guard(self, role: Role, what: str, fn: Any, *args: Any) -> None:
        """Run one piece of a role; whatever goes wrong is logged, never fatal."""
        try:
            fn(*args)
        except ApiError as exc:  # node unreachable, a refused request: try again next turn
            self.last_error = f"{role.name} {what}: {exc.message}"
            log.warning("%s: %s", role.name, exc.message)
        except Exception as exc:  # a bug: keep serving the other agreements
            self.last_error = f"{role.name} {what}: {type(exc).__name__}: {exc}"
            log.exception("%s %s failed", role.name, what)

    def status(self) -> dict[str, Any]:
        return {"name": self.cfg.agent.name, "address": self.address, "pid": os.getpid(),
                "node": self.client.url, "turns": self.turns, "updated": time.time(),
                "started": self.started, "last_error": self.last_error,
                "roles": {r.name: r.status() for r in self.roles}}

    def write_status(self) -> None:
        path = self.cfg.state_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.status(), indent=2, sort_keys=True))
        os.replace(tmp, path)


def read_status(cfg: AgentConfig) -> dict[str, Any] | None:
    try:
        doc: dict[str, Any] = json.loads((cfg.state_dir / STATUS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return doc


def setup_logging(state_dir: Path, level: str = "INFO") -> None:
    """Log lines to stderr and to ``STATE_DIR/agent.log``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    for handler in (logging.StreamHandler(), logging.FileHandler(state_dir / LOG_FILE)):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def build_agent(cfg: AgentConfig) -> Agent:
    """The agent a config describes: its keys opened, its roles made, MQTT connected."""
    passfile = cfg.resolve(cfg.agent.passphrase_file) if cfg.agent.passphrase_file else None
    key = load_key(cfg.resolve(cfg.agent.key_file), passfile)
    account = load_key(cfg.resolve(cfg.agent.account_key_file), passfile) \
        if cfg.agent.account_key_file else key
    client = Client(cfg.agent.node)
    cfg.state_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(cfg.state_dir)
    roles: list[Role] = []
    if cfg.compute.share:
        roles.append(ComputeSharing(ComputeRole(client, account, cfg.compute, progress)))
    if cfg.data.collect or cfg.data.deliver:
        roles.append(DataRole(cfg, key, account, client))
    link = None
    if cfg.offers or cfg.quotes or cfg.data.collect:
        link = MqttLink(cfg.mqtt.host, cfg.mqtt.port, cfg.agent.name)
        if cfg.offers or cfg.quotes:
            roles += market_roles(Context(cfg, key, account, client, link, progress))
        for role in roles:
            for topic in role.topics():
                link.subscribe(topic)
        link.connect()
    return Agent(cfg, key, client, link, progress, roles)
