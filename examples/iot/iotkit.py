"""What the IoT examples share (and their end-to-end tests): agent processes, device keys,
configs, a broker.

An example runs real processes only: a mosquitto broker (``LocalBroker``), one
``smart agent run CONFIG.toml`` per agent and one simulated device per device
(``devices.py``); ``Scenario`` owns them all and stops every one on the way out, even after
an error, so nothing is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from smartchain.agent.broker import LocalBroker
from smartchain.agent.config import AgentConfig, load_config
from smartchain.agent.daemon import read_status
from smartchain.client import ApiError, Client
from smartchain.crypto import keystore
from smartchain.crypto.address import to_bech32
from smartchain.crypto.keys import PrivateKey
from smartchain.modules.devices.types import sign_certificate

HERE = Path(__file__).resolve().parent
STOP_TIMEOUT = 15.0
T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str,
             interval: float = 0.1) -> T:
    """Poll until ``predicate`` is truthy (returned), or fail saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class Proc:
    """One child process with its log file; ``kill`` is the crash, ``stop`` the clean end."""

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        self.name, self.argv, self.log = name, argv, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class AgentProc(Proc):
    def __init__(self, name: str, config: Path) -> None:
        self.config_path = config
        super().__init__(name, [sys.executable, "-m", "smartchain.cli.main", "agent", "run",
                                str(config)], config.parent / f"{name}.out")

    @property
    def config(self) -> AgentConfig:
        return load_config(self.config_path)

    def status(self) -> dict[str, Any] | None:
        return read_status(self.config)

    def config_key(self) -> PrivateKey:
        cfg = self.config
        doc = json.loads(cfg.resolve(cfg.agent.account_key_file or cfg.agent.key_file)
                         .read_text())
        return keystore.open_doc(doc, None)

    def agent_log(self) -> str:
        try:
            return (self.config.state_dir / "agent.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""


def new_key(path: Path, seed: bytes | None = None) -> PrivateKey:
    """A throwaway (unsealed) key file: examples and tests only."""
    if path.exists():
        return keystore.open_doc(json.loads(path.read_text()), None)
    key = PrivateKey.from_seed(seed) if seed else PrivateKey.generate()
    keystore.save(path, key, None, insecure=True)
    return key


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: Path, sections: dict[str, dict[str, Any]],
                 lists: dict[str, list[dict[str, Any]]] | None = None) -> Path:
    lines: list[str] = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    for name, items in (lists or {}).items():
        for values in items:
            lines.append(f"[[{name}]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def ok(result: dict[str, Any]) -> dict[str, Any]:
    if not result["receipt"]["ok"]:
        raise RuntimeError(f"transaction {result['hash']} failed: {result['receipt']['log']}")
    return result


def certify(client: Client, manufacturer: PrivateKey, owner: PrivateKey, device: PrivateKey,
            model: str, serial: str, capabilities: list[str]) -> None:
    """Manufacturer registered (once), device certified and registered under ``owner``."""
    try:
        client.manufacturer(to_bech32(manufacturer.address))
    except ApiError as exc:
        if exc.code != "not_found":
            raise
        deposit = int(client.genesis()["params"]["devices_manufacturer_deposit"])
        ok(client.register_manufacturer(manufacturer, "Example Devices Ltd", deposit))
    cert = sign_certificate(manufacturer, device.public_key, model, serial, capabilities)
    ok(client.register_own_device(owner, device, str(client.status()["chain_id"]),
                                  to_bech32(manufacturer.address), model, serial,
                                  capabilities, cert))


class Scenario:
    """Owns a broker (optional), agents and devices; stops them all on exit."""

    def __init__(self, workdir: Path, *, mqtt_port: int | None = None,
                 broker: bool = True) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.broker: LocalBroker | None = None
        self.mqtt_port = mqtt_port or 0
        self.want_broker = broker and not mqtt_port
        self.procs: list[Proc] = []

    def __enter__(self) -> Scenario:
        if self.want_broker:
            self.broker = LocalBroker(self.dir / "mosquitto")
            self.mqtt_port = self.broker.start()
        return self

    def agent(self, name: str, config: Path) -> AgentProc:
        proc = AgentProc(name, config)
        self.procs.append(proc)
        return proc

    def device(self, name: str, *args: str) -> Proc:
        proc = Proc(name, [sys.executable, str(HERE / "devices.py"), *args],
                    self.dir / f"{name}.out")
        self.procs.append(proc)
        return proc

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        if self.broker is not None:
            self.broker.stop()
