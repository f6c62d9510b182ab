"""smartchain/launcher.py: the one way node processes are started and stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smartchain.crypto.keys import PrivateKey
from smartchain.launcher import LaunchError, NodeProc, launch, stop_pid
from smartchain.node.config import ApiSettings, NodeConfig, P2PSettings
from smartchain.node.home import init_home

# A process that ignores SIGTERM, as a hung node would; it says when the handler is set.
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(120)")


def stubborn() -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_a_node_that_fails_to_start_raises_with_its_log(tmp_path: Path) -> None:
    init_home(tmp_path, chain_id="smart-launch-1", key=PrivateKey.generate(), passphrase=None,
              insecure=True)
    (tmp_path / "config.toml").write_text("[api]\nprot = 1\n")
    node = launch(tmp_path)
    with pytest.raises(LaunchError, match=r"(?s)exited with code 1 .*unknown setting 'prot'"):
        node.wait_ready(30)


def test_a_node_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    init_home(tmp_path, chain_id="smart-launch-1", key=PrivateKey.generate(), passphrase=None,
              insecure=True, config=NodeConfig(api=ApiSettings(port=0), p2p=P2PSettings(port=0)))
    node = launch(tmp_path, banner="first start")
    try:
        url = node.wait_ready(30)
        assert url.startswith("http://127.0.0.1:") and node.running
        assert node.stop(20) == 0 and not (tmp_path / "node.json").exists()
    finally:
        node.kill()
    assert "===== first start =====" in (tmp_path / "node.log").read_text()


def test_stop_kills_a_node_that_ignores_sigterm_and_says_so(tmp_path: Path) -> None:
    node = NodeProc(tmp_path, stubborn())
    with pytest.raises(LaunchError, match=r"did not stop within 0\.3s of SIGTERM and was killed"):
        node.stop(0.3)
    assert not node.running and node.proc.returncode == -9


def test_stop_pid_escalates_to_sigkill(tmp_path: Path) -> None:
    proc = stubborn()
    assert stop_pid(proc.pid, 0.3) is False
    proc.wait(10)  # it is gone (TimeoutExpired otherwise): SIGTERM alone would not do it
