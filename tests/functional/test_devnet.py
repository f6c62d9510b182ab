"""`smart devnet`: real node processes on 127.0.0.1, driven through the CLI as a user would.

Every test stops what it started: ``smart devnet down`` in a ``finally``, then SIGKILL of
any pid still recorded in ``node*/node.json``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smartchain.devnet import DEMO_BALANCE

SMART = [sys.executable, "-m", "smartchain.cli.main"]


def cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SMART_") and k not in ("FORCE_COLOR", "COLUMNS")}
    env["SMART_HOME"] = str(home)
    return env


def smart(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*SMART, *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def ok_json(r: subprocess.CompletedProcess) -> Any:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return json.loads(r.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent has not reaped it yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def node_pids(home: Path) -> list[int]:
    pids = []
    for runtime in home.glob("node*/node.json"):
        try:
            pids.append(int(json.loads(runtime.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            pass
    return pids


def devnet_cleanup(env: dict[str, str], home: Path, extra_pids: Sequence[int] = ()) -> None:
    """`smart devnet down`, then SIGKILL whatever node is still running."""
    try:
        smart(env, "devnet", "down", "--home", str(home), timeout=60)
    except subprocess.TimeoutExpired:
        pass
    for pid in {*node_pids(home), *extra_pids}:
        try:
            # only a node of this devnet (a stale pid may belong to anyone by now)
            if pid_alive(pid) and str(home).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def test_devnet_up_transfer_down_and_resume(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "smart-home")
    home = tmp_path / "devnet"
    port = free_port()
    seen_pids: list[int] = []
    try:
        up = smart(env, "devnet", "up", "--home", str(home), "--detach", "--json",
                   "--block-time-ms", "200", "--api-port", str(port),
                   "--compute-providers", "0", "--storage-providers", "0")
        summary = ok_json(up)  # the whole of stdout is one JSON object
        assert isinstance(summary, dict)
        chain_id = summary["chain_id"]
        assert chain_id and summary["home"] == str(home)
        assert len(summary["nodes"]) == 4  # four signers by default
        api_url = summary["nodes"][0]["api_url"]
        assert api_url.startswith("http://127.0.0.1:")
        accounts = {a["name"]: a for a in summary["accounts"]}
        assert sorted(accounts) == [f"demo{i}" for i in range(1, 6)]
        assert all(a["balance"] == str(DEMO_BALANCE) for a in accounts.values())
        demo2 = accounts["demo2"]["address"]

        pids = node_pids(home)
        assert len(pids) == 4
        seen_pids.extend(pids)
        assert all(pid_alive(p) for p in pids)
        for node in summary["nodes"]:
            assert http_json(node["api_url"] + "/v1/status")["chain_id"] == chain_id
        assert summary["explorer_url"] == api_url + "/"
        with urllib.request.urlopen(summary["explorer_url"], timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/html")
            assert chain_id in resp.read().decode()

        # the demo keys are in the CLI keyring, unencrypted
        keys = {k["name"]: k for k in ok_json(smart(env, "keys", "list", "--json"))}
        for name, acct in accounts.items():
            assert keys[name]["address"] == acct["address"]
            assert keys[name]["encrypted"] is False

        # the devnet is the CLI's default node: no --node needed
        demo1 = ok_json(smart(env, "query", "account", "demo1", "--json"))
        assert demo1["address"] == accounts["demo1"]["address"]
        assert int(demo1["balance"]) == DEMO_BALANCE
        balance2 = int(ok_json(smart(env, "query", "account", demo2, "--json"))["balance"])

        sent = smart(env, "tx", "transfer", "--from", "demo1", "--to", demo2, "--amount", "1.5")
        assert sent.returncode == 0, sent.stderr
        assert "sent 1.5 HPC" in sent.stdout and "committed at" in sent.stdout
        after2 = int(ok_json(smart(env, "query", "account", demo2, "--json"))["balance"])
        assert after2 == balance2 + 150_000_000
        # every signer holds the same block at the transfer's height
        height = ok_json(smart(env, "status", "--json"))["height"]
        deadline = time.monotonic() + 20
        hashes: set[str] = set()
        for node in summary["nodes"]:
            while True:
                try:
                    hashes.add(http_json(f"{node['api_url']}/v1/blocks/{height}")["hash"])
                    break
                except urllib.error.HTTPError:
                    assert time.monotonic() < deadline, f"{node['name']} never reached {height}"
                    time.sleep(0.05)
        assert len(hashes) == 1

        before_down = ok_json(smart(env, "status", "--json"))
        assert before_down["chain_id"] == chain_id

        down = smart(env, "devnet", "down", "--home", str(home))
        assert down.returncode == 0, down.stderr
        assert "stopped 4 node" in down.stdout
        assert all(wait_gone(p) for p in pids), "a node still runs after devnet down"
        assert not (home / "node0" / "node.json").exists()
        unreachable = smart(env, "status")
        assert unreachable.returncode != 0 and "cannot reach node" in unreachable.stderr

        # `up` again resumes the same chain where it stopped
        again = ok_json(smart(env, "devnet", "up", "--home", str(home), "--detach", "--json"))
        assert again["chain_id"] == chain_id
        assert again["nodes"] == summary["nodes"]
        assert again["accounts"] == summary["accounts"]
        seen_pids.extend(node_pids(home))
        resumed = ok_json(smart(env, "status", "--json"))
        assert resumed["chain_id"] == chain_id
        assert resumed["genesis_hash"] == before_down["genesis_hash"]
        assert resumed["height"] >= before_down["height"]
        assert resumed["block_time_ms"] == 200
        still = int(ok_json(smart(env, "query", "account", demo2, "--json"))["balance"])
        assert still == after2
    finally:
        devnet_cleanup(env, home, seen_pids)
    assert not any(pid_alive(p) for p in seen_pids)


def test_devnet_foreground_stops_on_sigint(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "smart-home")
    home = tmp_path / "devnet"
    runtime = home / "node0" / "node.json"
    proc = subprocess.Popen(
        [*SMART, "devnet", "up", "--home", str(home), "--block-time-ms", "200",
         "--api-port", str(free_port()), "--compute-providers", "0", "--storage-providers", "0"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    pid = None
    try:
        deadline = time.monotonic() + 30
        while pid is None:
            assert proc.poll() is None, f"devnet up exited early: {proc.communicate()}"
            assert time.monotonic() < deadline, "node.json never appeared"
            try:
                pid = int(json.loads(runtime.read_text())["pid"])
            except (FileNotFoundError, ValueError, KeyError):
                time.sleep(0.02)
        # Ctrl-C as soon as the node is up, possibly while the CLI is still starting
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
        assert proc.returncode == 0, f"exit {proc.returncode}\n{stdout}\n{stderr}"
        assert "Traceback" not in stderr
        assert "devnet stopped" in stdout
        assert wait_gone(pid), f"node {pid} still running after SIGINT"
        assert not runtime.exists()
        assert elapsed < 10, f"stopping took {elapsed:.1f}s"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        devnet_cleanup(env, home, [pid] if pid else [])


def test_devnet_down_without_devnet(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "smart-home")
    r = smart(env, "devnet", "down", "--home", str(tmp_path / "nothing"))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == f"error: no devnet in {tmp_path / 'nothing'}"


def test_devnet_storage_providers_register(tmp_path: Path) -> None:
    """`--storage-providers 2` next to `--compute-providers 1`: two more nodes, funded in
    genesis, registered on chain with their dialable P2P addresses; short audit epochs."""
    env = cli_env(tmp_path / "smart-home")
    home = tmp_path / "devnet"
    seen: list[int] = []
    try:
        summary = ok_json(smart(env, "devnet", "up", "--home", str(home), "--detach", "--json",
                                "--validators", "1", "--accounts", "1", "--compute-providers",
                                "1", "--storage-providers", "2", "--block-time-ms", "200",
                                "--api-port", str(free_port())))
        names = [n["name"] for n in summary["nodes"]]
        assert names == ["node0", "compute0", "storage0", "storage1"]
        for runtime in home.glob("*/node.json"):
            seen.append(int(json.loads(runtime.read_text())["pid"]))
        doc = json.loads((home / "devnet.json").read_text())
        flags = {n["name"]: (n.get("compute_provider", False), n.get("storage_provider", False))
                 for n in doc["nodes"]}
        assert flags == {"node0": (False, False), "compute0": (True, False),
                         "storage0": (False, True), "storage1": (False, True)}
        api = summary["nodes"][0]["api_url"]
        assert http_json(api + "/v1/status")["chain_id"] == summary["chain_id"]
        genesis = json.loads((home / "node0" / "genesis.json").read_text())
        assert genesis["params"]["storage_epoch_blocks"] == 20
        want = {n["p2p_address"] for n in doc["nodes"] if n.get("storage_provider")}
        deadline = time.monotonic() + 30
        while True:
            providers = http_json(api + "/v1/storage/providers")["providers"]
            if {p["p2p"] for p in providers if p["active"]} == want:
                break
            assert time.monotonic() < deadline, f"storage providers never registered: {providers}"
            time.sleep(0.1)
    finally:
        devnet_cleanup(env, home, seen)
    assert not any(pid_alive(p) for p in seen)


def test_devnet_with_standby_signers(tmp_path: Path) -> None:
    """`--validators 4 --standby 3`: 4 directors sign, 3 standby signer nodes wait, all
    qualified by the genesis bootstrap; the standbys' nodes attest their liveness, which
    counts as their uptime at the first epoch."""
    env = cli_env(tmp_path / "smart-home")
    home = tmp_path / "devnet"
    seen: list[int] = []
    try:
        summary = ok_json(smart(env, "devnet", "up", "--home", str(home), "--detach", "--json",
                                "--validators", "4", "--standby", "3", "--accounts", "1",
                                "--compute-providers", "0", "--storage-providers", "0",
                                "--block-time-ms", "200", "--api-port", str(free_port())))
        names = [n["name"] for n in summary["nodes"]]
        assert names == ["node0", "node1", "node2", "node3", "standby0", "standby1", "standby2"]
        for runtime in home.glob("*/node.json"):
            seen.append(int(json.loads(runtime.read_text())["pid"]))
        api = summary["nodes"][0]["api_url"]
        genesis = json.loads((home / "node0" / "genesis.json").read_text())
        assert genesis["params"]["poca_max_directors"] == 4
        assert genesis["params"]["poca_max_standby"] == 3
        deadline = time.monotonic() + 60
        while True:  # past the first epoch (20 blocks), standbys' attestations counted
            doc = http_json(api + "/v1/validators")
            tiers = {v["moniker"]: (v["tier"], v["status"], v["uptime"] > 0)
                     for v in doc["validators"]}
            if doc["epoch"] >= 1 and all(up for _, _, up in tiers.values()):
                break
            assert time.monotonic() < deadline, f"standbys never attested: {doc}"
            time.sleep(0.2)
        assert tiers == {**{f"node{i}": ("director", "active", True) for i in range(4)},
                         **{f"standby{i}": ("standby_signer", "active", True)
                            for i in range(3)}}
        height = http_json(api + "/v1/status")["height"]
        signers = http_json(api + f"/v1/blocks/{height}/signers")["validators"]
        assert sorted(v["name"] for v in signers) == [f"node{i}" for i in range(4)]
    finally:
        devnet_cleanup(env, home, seen)
    assert not any(pid_alive(p) for p in seen)
