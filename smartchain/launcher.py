"""Start, find and stop node processes: the one way the devnet and the tests run nodes.

``launch(home)`` runs ``python -m smartchain.cli.main node start --home HOME`` in its own
session (process group), its output appended to ``HOME/node.log``; ``wait_ready`` polls the
``HOME/node.json`` the process writes once its API listens (smartchain/daemon.py); ``stop``
sends SIGTERM and, past the timeout, SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from smartchain.node.config import RUNTIME_FILE

LOG_FILE = "node.log"
POLL_S = 0.05


class LaunchError(RuntimeError):
    """The node process did not start, or did not stop in time (the message has its log)."""


def log_tail(home: Path, lines: int = 40) -> str:
    try:
        text = (home / LOG_FILE).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class NodeProc:
    """One node process started by ``launch``."""

    home: Path
    proc: subprocess.Popen[bytes]
    url: str | None = field(default=None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Block until this process has written its node.json; returns its API URL.

        Raises ``LaunchError`` (with the log tail) if it exits first or takes longer."""
        deadline = time.monotonic() + timeout
        runtime = self.home / RUNTIME_FILE
        while True:
            if self.proc.poll() is not None:
                raise LaunchError(f"node in {self.home} exited with code {self.proc.returncode} "
                                  f"before serving its API; log tail:\n{log_tail(self.home)}")
            try:
                doc = json.loads(runtime.read_text())
                if doc.get("pid") == self.proc.pid:  # not a stale file of an earlier run
                    self.url = str(doc["api_url"])
                    return self.url
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            if time.monotonic() >= deadline:
                raise LaunchError(f"node in {self.home} did not start within {timeout}s; "
                                  f"log tail:\n{log_tail(self.home)}")
            time.sleep(POLL_S)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait ``timeout`` seconds for a clean exit, else SIGKILL and raise
        ``LaunchError``; returns the exit code."""
        self.url = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise LaunchError(f"node in {self.home} did not stop within {timeout}s of "
                                  f"SIGTERM and was killed; log tail:\n"
                                  f"{log_tail(self.home)}") from None
        return self.proc.returncode

    def kill(self) -> int:
        """SIGKILL (a crash: no cleanup code runs); returns the exit code."""
        self.url = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait()


def launch(home: Path, *, env: dict[str, str] | None = None,
           banner: str | None = None, prefix: list[str] | None = None) -> NodeProc:
    """Start the node of ``home`` (without waiting for it; see ``NodeProc.wait_ready``).

    ``env`` is added to this process's environment; ``banner`` is written to the log first
    (to tell restarts apart); ``prefix`` runs the node through a command that then execs it
    (``ip netns exec NS``: the node in a network namespace)."""
    home = Path(home)
    (home / RUNTIME_FILE).unlink(missing_ok=True)  # a killed node leaves a stale one
    with open(home / LOG_FILE, "ab") as log:
        if banner is not None:
            log.write(f"\n===== {banner} =====\n".encode())
            log.flush()
        proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "smartchain.cli.main", "node", "start",
             "--home", str(home)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True)  # Ctrl-C in a terminal does not reach it; its group is its own
    return NodeProc(home, proc)


def running_pid(home: Path) -> int | None:
    """The pid of the node running in ``home`` (from its node.json), if any: it may have been
    started by another process (``smart devnet up --detach``)."""
    try:
        pid = int(json.loads((home / RUNTIME_FILE).read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        return None
    return pid if _alive(pid) else None


def stop_pid(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM a node that is not our child, SIGKILL it past ``timeout``; True if it exited
    cleanly."""
    with _gone():
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    if not _alive(pid):
        return True
    with _gone():
        os.kill(pid, signal.SIGKILL)
    return False


def _alive(pid: int) -> bool:
    try:  # a node we started ourselves stays a zombie until reaped
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass  # not our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _gone() -> contextlib.AbstractContextManager[None]:
    """Ignore the process having exited already."""
    return contextlib.suppress(ProcessLookupError)
