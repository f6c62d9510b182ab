"""Governance on a real 4-signer devnet, driven through `smart` as a holder would.

The demo accounts lock HPC with `smart stake delegate`, one proposes raising
``min_gas_price`` with `smart gov propose param`, three vote yes with `smart gov vote`;
after the tally (the devnet votes for 30 blocks: 30 s at the 1 s blocks used here, room for
the test's commands on a loaded machine) every node has the new price, and a
transaction paying the old price is refused. The devnet is always stopped (`smart devnet
down` in a ``finally``, then SIGKILL of any node pid still recorded).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from framework.harness import wait_until

from smartchain.client import Client
from smartchain.crypto.address import address_of, to_bech32
from smartchain.devnet import demo_accounts, load
from smartchain.node.config import GENESIS_FILE
from smartchain.state.genesis import Genesis
from smartchain.types.amount import UNITS_PER_HPC

SMART = [sys.executable, "-m", "smartchain.cli.main"]
DELEGATION = 1_000 * UNITS_PER_HPC


def smart(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SMART, *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def ok_json(r: subprocess.CompletedProcess[str]) -> Any:
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return json.loads(r.stdout)


def stop_devnet(env: dict[str, str], home: Path) -> None:
    """`smart devnet down`, then SIGKILL any node of this devnet still running."""
    try:
        smart(env, "devnet", "down", "--home", str(home))
    except subprocess.TimeoutExpired:
        pass
    for runtime in home.glob("node*/node.json"):
        try:
            pid = int(json.loads(runtime.read_text())["pid"])
            if str(home).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


def test_holders_raise_min_gas_price_and_the_old_price_is_refused_after_the_tally(
        tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_")}
    env["SMART_HOME"] = str(tmp_path / "smart-home")
    home = tmp_path / "devnet"
    try:
        summary = ok_json(smart(env, "devnet", "up", "--home", str(home), "--detach", "--json",
                                "--block-time-ms", "1000", "--compute-providers", "0",
                                "--storage-providers", "0"))
        urls = [n["api_url"] for n in summary["nodes"]]
        doc = load(home)
        assert doc is not None
        demos = demo_accounts(doc)
        # every demo account locks 1000 HPC with the first signer (genesis: 1 HPC each)
        signer = address_of(Genesis.load(home / "node0" / GENESIS_FILE).validators[0].public_key)
        for demo in demos:
            sent = smart(env, "stake", "delegate", "--from", demo.name, to_bech32(signer), "1000")
            assert sent.returncode == 0, sent.stderr

        proposal = ok_json(smart(env, "gov", "propose", "param", "min_gas_price=5",
                                 "--deposit", "1000", "--title", "Raise the gas price",
                                 "--from", "demo1", "--json"))
        pid = proposal["id"]
        assert proposal["status"] == "voting" and proposal["changes"] == [
            {"key": "min_gas_price", "value": "5"}]
        for name in ("demo1", "demo2", "demo3"):
            voted = smart(env, "gov", "vote", str(pid), "yes", "--from", name)
            assert voted.returncode == 0, voted.stderr

        # a text proposal funded by a second depositor opens to votes too
        text = ok_json(smart(env, "gov", "propose", "text", "--deposit", "400", "--title",
                             "Hello holders", "--from", "demo4", "--json"))
        assert text["status"] == "deposit" and int(text["id"]) == int(pid) + 1
        funded = smart(env, "gov", "deposit", str(text["id"]), "600", "--from", "demo5")
        assert funded.returncode == 0, funded.stderr
        # newest first; the first may have left its voting period already on a slow machine
        listed = ok_json(smart(env, "gov", "list", "--json"))["proposals"]
        assert [p["id"] for p in listed] == [text["id"], pid]
        assert listed[0]["status"] == "voting"
        voting = ok_json(smart(env, "gov", "list", "--status", "voting", "--json"))["proposals"]
        assert text["id"] in [p["id"] for p in voting]

        end = int(proposal["voting_end"])
        for url in urls:  # every node applies the change from the block after the tally
            node = Client(url)
            wait_until(lambda node=node: int(node.status()["height"]) > end, timeout=60,
                       what=f"height {end + 1} on {url}")
            assert int(node.status()["min_gas_price"]) == 5
        shown = ok_json(smart(env, "gov", "show", str(pid), "--json"))
        assert shown["status"] == "passed", shown
        assert int(shown["tally"]["yes"]) == 3 * DELEGATION
        params = ok_json(smart(env, "gov", "params", "--json"))
        assert params["min_gas_price"] == {"value": "5", "changed_at": str(end + 1)}

        old = smart(env, "tx", "transfer", "--from", "demo4", "--to", demos[4].address,
                    "--amount", "1", "--gas-price", "1")
        assert old.returncode != 0 and "gas price" in old.stderr.lower(), old.stderr
        new = smart(env, "tx", "transfer", "--from", "demo4", "--to", demos[4].address,
                    "--amount", "1", "--gas-price", "5")
        assert new.returncode == 0, new.stderr
    finally:
        stop_devnet(env, home)
