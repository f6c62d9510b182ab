"""The core imports nothing above it: the state machine runs whatever modules the app lists."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from smartchain.app import default_modules
from smartchain.modules.bank.module import Bank
from smartchain.state.executor import Executor

ABOVE_THE_CORE = ("smartchain.modules", "smartchain.app", "smartchain.node", "smartchain.api",
                  "smartchain.cli")


def _loaded_after(statement: str) -> list[str]:
    """Our packages above the core in ``sys.modules`` after ``statement``, in a fresh process."""
    report = (f"print(json.dumps(sorted(m for m in sys.modules "
              f"if m.startswith({ABOVE_THE_CORE!r}))))")
    code = f"import sys, json\n{statement}\n{report}"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return list(json.loads(out.stdout))


def test_importing_the_core_loads_no_module_nor_anything_above() -> None:
    core = ("chain", "executor", "module", "genesis", "params", "store", "commitment")
    assert _loaded_after("\n".join(f"import smartchain.state.{n}" for n in core)) == []


def test_the_app_does_load_the_modules() -> None:
    """Guards the test above: the check sees the modules when they are imported."""
    assert "smartchain.modules.bank.module" in _loaded_after("import smartchain.app")


def test_the_executor_charges_fees_through_the_module_playing_the_auth_role() -> None:
    modules = default_modules()
    assert Executor(modules).auth is next(m for m in modules if isinstance(m, Bank))


def test_an_app_without_a_fee_payer_or_with_two_is_refused_with_a_clear_error() -> None:
    without = [m for m in default_modules() if not isinstance(m, Bank)]
    with pytest.raises(ValueError, match="exactly one Auth module"):
        Executor(without)
    with pytest.raises(ValueError, match="exactly one Auth module"):
        Executor([*default_modules(), Bank()])
