"""A small functional-test framework, in the style of Bitcoin Core's test_framework.

``NodeProcess`` owns one node home and runs its node as a real subprocess (started by
smartchain/launcher.py, like the devnet's), on 127.0.0.1 with a free port.
Everything a test learns about the node it learns through the HTTP API, the node's
files or its exit status: no mocks, no in-process shortcuts.

Synchronisation is always by polling real state (``wait_until``) with a deadline; a
bare ``sleep`` never stands in for "the node has done X".
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from smartchain.client import Client
from smartchain.crypto.keys import PrivateKey
from smartchain.launcher import LOG_FILE, LaunchError, NodeProc, launch
from smartchain.node.config import (
    RUNTIME_FILE,
    ApiSettings,
    ConsensusSettings,
    NodeConfig,
    P2PSettings,
)
from smartchain.node.home import init_home
from smartchain.state.genesis import Genesis
from smartchain.state.params import Params

DEFAULT_BLOCK_TIME_MS = 200
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

T = TypeVar("T")


class HarnessError(AssertionError):
    """The node did not do what the harness waited for (includes the log tail)."""


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.02,
               what: str | None = None) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    Exceptions from the predicate propagate (a broken predicate should fail loudly, not
    be retried until the deadline). Raises ``HarnessError`` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", "condition")
            raise HarnessError(f"timed out after {timeout}s waiting for {name}")
        time.sleep(interval)


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name; None if gone or a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()  # the command name may contain spaces
    return None if fields[0] == "Z" else fields  # a zombie has exited: only a status left


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live process, from /proc (Linux); None if gone."""
    fields = stat_fields(pid)
    return None if fields is None else (int(fields[1]), int(fields[19]))


def descendants(pid: int) -> list[tuple[int, int]]:
    """Every live descendant of ``pid`` as (pid, start time); empty without /proc."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            st = _proc_stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry.name))
    out: list[tuple[int, int]] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        st = _proc_stat(child)
        if st is not None:
            out.append((child, st[1]))
        todo.extend(children.get(child, []))
    return out


def _alive(proc: tuple[int, int]) -> bool:
    st = _proc_stat(proc[0])
    return st is not None and st[1] == proc[1]  # same start time: not a recycled pid


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class NodeProcess:
    """One single-validator node in its own home directory, run as a subprocess."""

    def __init__(self, home: Path, *, accounts: list[tuple[bytes, int]] | None = None,
                 chain_id: str = "smart-test-1", block_time_ms: int = DEFAULT_BLOCK_TIME_MS,
                 moniker: str = "node0", params: Params | None = None,
                 validator_key: PrivateKey | None = None, log_level: str = "info") -> None:
        self.home = Path(home)
        self.key = validator_key or PrivateKey.generate()
        # port 0: the OS picks free ports, so nodes of concurrent test runs never collide
        self.config = NodeConfig(moniker=moniker, log_level=log_level, api=ApiSettings(port=0),
                                 p2p=P2PSettings(port=0),
                                 consensus=ConsensusSettings(block_time_ms=block_time_ms))
        self.genesis: Genesis = init_home(
            self.home, chain_id=chain_id, key=self.key, passphrase=None, insecure=True,
            accounts=accounts or [], config=self.config,
            params=params or Params(block_time_ms=block_time_ms))
        self.launched: NodeProc | None = None
        self.url: str | None = None
        self.starts = 0
        self.orphan_watch: list[tuple[int, int]] = []  # descendants seen when killed

    # --- paths ---------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.home / LOG_FILE

    @property
    def runtime_path(self) -> Path:
        return self.home / RUNTIME_FILE

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.launched.proc if self.launched is not None else None

    @property
    def running(self) -> bool:
        return self.launched is not None and self.launched.running

    @property
    def client(self) -> Client:
        if self.url is None:
            raise HarnessError("node is not started")
        return Client(self.url, timeout=10.0)

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start the node process and wait until its API is listening; returns its URL."""
        if self.running:
            raise HarnessError("node already running")
        self.url = None
        self.starts += 1
        self.launched = launch(self.home, banner=f"harness: start #{self.starts}")
        try:
            self.url = self.launched.wait_ready(timeout)
        except LaunchError as exc:
            self._kill_quietly()
            raise HarnessError(str(exc)) from None
        except BaseException:
            self._kill_quietly()
            raise
        return self.url

    def kill(self) -> None:
        """SIGKILL: the crash the node must survive (no cleanup code runs).

        The node's own child processes (if any) are remembered, here and in ``stop``:
        ``orphans()`` tells whether they outlived it, and ``cleanup()`` reaps them."""
        if self.launched is None:
            return
        if self.launched.running:
            self.orphan_watch += descendants(self.launched.pid)
        self.launched.kill()
        self.url = None

    def orphans(self) -> list[int]:
        """Pids of processes the node had started that are still alive after it was killed
        or stopped."""
        return [pid for pid, start in self.orphan_watch if _alive((pid, start))]

    def _reap_orphans(self) -> None:
        for pid, start in self.orphan_watch:
            if _alive((pid, start)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.orphan_watch.clear()

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait for a clean exit; returns the exit code (None if never run).

        If the node does not exit in time it is killed and ``HarnessError`` is raised.
        """
        if self.launched is None:
            return None
        if self.launched.running:
            self.orphan_watch += descendants(self.launched.pid)
        self.url = None
        try:
            return self.launched.stop(timeout)
        except LaunchError as exc:
            raise HarnessError(str(exc)) from None

    def restart(self, timeout: float = START_TIMEOUT) -> str:
        """Stop cleanly if running (a killed node stays killed), then start again."""
        self.stop()
        return self.start(timeout)

    def _kill_quietly(self) -> None:
        try:
            self.kill()
        except Exception:  # teardown must not mask the original failure
            pass

    def cleanup(self) -> None:
        """Teardown: always leaves no process behind, whatever state the node is in."""
        try:
            self.stop()
        except HarnessError:
            pass
        finally:
            self._kill_quietly()
            self._reap_orphans()

    # --- checks --------------------------------------------------------------------------

    def log_errors(self) -> list[str]:
        """Log lines that indicate a bug (tracebacks, internal errors, failed blocks)."""
        bad = ("Traceback", "internal error", "block production failed", " ERROR ")
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if any(b in line for b in bad)]

    def wait_for_height(self, height: int, timeout: float = 15.0) -> int:
        """Wait until the node has committed ``height``; returns the current height."""
        client = self.client

        def reached() -> tuple[int] | None:
            h = int(client.status()["height"])
            return (h,) if h >= height else None

        return wait_until(reached, timeout, interval=0.05, what=f"height {height}")[0]

    def __repr__(self) -> str:
        pid = self.proc.pid if self.proc else None
        return f"NodeProcess(home={self.home}, pid={pid}, url={self.url})"
