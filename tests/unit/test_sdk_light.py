"""The SDK embeds without the node: importing it loads none of the node's native engines."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("lmdb", "lupa", "wasmtime", "pyeclib")


def _loaded_after(statement: str) -> list[str]:
    """Modules of ``HEAVY`` in ``sys.modules`` after ``statement`` runs in a fresh interpreter."""
    report = f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    code = f"import sys, json\n{statement}\n{report}"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return list(json.loads(out.stdout))


def test_importing_the_sdk_loads_no_database_vm_or_erasure_coding_library() -> None:
    assert _loaded_after("import smartchain.client") == []


def test_every_module_s_wire_types_import_alone_without_the_node() -> None:
    names = ("bank", "tokens", "contracts", "compute", "storage")
    statement = "\n".join(f"import smartchain.modules.{n}.types" for n in names)
    assert _loaded_after(statement) == []


def test_the_node_side_of_a_module_does_load_its_engine() -> None:
    """Guards the two tests above: the check sees a heavy import when there is one."""
    assert "lupa" in _loaded_after("import smartchain.modules.contracts.module")
