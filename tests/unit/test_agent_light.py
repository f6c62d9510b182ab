"""The SmartAgent runs on a device: importing any part of it loads no node, database, VM or
erasure-coding library (only the SDK, the modules' wire types and paho-mqtt)."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import smartchain.agent

HEAVY = ("lmdb", "lupa", "wasmtime", "pyeclib")
NODE_SIDE = ("smartchain.node", "smartchain.state", "smartchain.p2p", "smartchain.consensus",
             "smartchain.daemon", "smartchain.api")


def _loaded_after(statement: str) -> list[str]:
    report = (f"print(json.dumps([m for m in sys.modules if m in {HEAVY!r} or "
              f"m.startswith({NODE_SIDE!r})]))")
    code = f"import sys, json\n{statement}\n{report}"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return list(json.loads(out.stdout))


def test_importing_every_part_of_the_agent_loads_nothing_of_the_node() -> None:
    parts = sorted(m.name for m in pkgutil.iter_modules(smartchain.agent.__path__))
    assert "daemon" in parts and "mqtt" in parts  # the walk found the package's modules
    statement = "\n".join(f"import smartchain.agent.{p}" for p in parts)
    assert _loaded_after(statement) == []


def test_the_check_sees_a_node_import_when_there_is_one() -> None:
    assert "smartchain.node" in _loaded_after("import smartchain.node.config")
