"""A local mosquitto broker in a directory of its own: what the examples and the tests run.

A real deployment points its agents at the operator's broker (``[mqtt] host/port``); on one
machine, ``LocalBroker`` starts Debian's ``mosquitto`` (``scripts/install-system-deps``
installs it) on a free 127.0.0.1 port with its own config, log and pid, and stops it.
Anonymous clients are allowed on loopback only: what agents trust is the signatures in the
messages (device keys, agent keys), never who connected.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
START_ATTEMPTS = 5  # a free port found here may be taken before mosquitto binds it


class BrokerError(RuntimeError):
    """mosquitto is missing, or did not start (the message has its log)."""


def mosquitto_binary() -> str:
    """The mosquitto executable (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise BrokerError("mosquitto is not installed: run ./scripts/install-system-deps")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class LocalBroker:
    """One mosquitto process serving 127.0.0.1:``port``; ``with`` stops it on the way out."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "mosquitto.log"

    def start(self) -> int:
        """Start on a free port and wait until it accepts connections; returns the port."""
        binary = mosquitto_binary()
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            conf = self.dir / "mosquitto.conf"
            conf.write_text(
                f"listener {self.port} 127.0.0.1\n"
                "allow_anonymous true\n"
                "persistence false\n"
                f"log_dest file {self.log_path}\n"
                "log_type error\nlog_type warning\nlog_type notice\n"
                "max_queued_messages 100000\n")
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log,
                                             stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL,
                                             start_new_session=True)
            if self._wait_ready():
                return self.port
        self.stop()
        raise BrokerError(f"mosquitto did not start: {self.log_tail()}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # e.g. the port was taken meanwhile: try another
            if _listening(self.port):
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL past the timeout; a no-op when not running."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
