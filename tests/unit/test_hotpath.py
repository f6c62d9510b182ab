"""The compiled hot path (mypyc, setup.py) against its pure-Python source: same inputs, same
bytes, same state roots; and the switches that choose between them (smartchain/_hotpath.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from smartchain import _hotpath

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent


def _python(code: list[str], *, pure: bool) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]))
    env.pop(_hotpath.PURE_ENV, None)
    if pure:
        env[_hotpath.PURE_ENV] = "1"
    done = subprocess.run([sys.executable, *code], cwd=TESTS, env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    return done.stdout


def _scenario(tmp_path: Path, *, pure: bool) -> dict[str, object]:
    where = tmp_path / ("pure" if pure else "default")
    out = _python(["-m", "framework.hotpath_scenario", str(where)], pure=pure)
    return json.loads(out)


@pytest.mark.skipif(not _hotpath.compiled(), reason="hot path not compiled in this checkout "
                    "(pip install -e . with a C compiler builds it)")
def test_compiled_and_pure_python_make_the_same_blocks_receipts_and_state_roots(
        tmp_path: Path) -> None:
    compiled = _scenario(tmp_path, pure=False)
    pure = _scenario(tmp_path, pure=True)
    assert compiled.pop("compiled") is True
    assert pure.pop("compiled") is False
    assert compiled["refused"] and compiled["failed"], "refusals and failed receipts too"
    assert compiled == pure


def test_smartchain_pure_runs_the_python_source_of_every_hot_module() -> None:
    code = ("import importlib, smartchain._hotpath as h; "
            "print(all(importlib.import_module(m).__file__.endswith('.py') "
            "for m in h.HOT_MODULES), h.compiled())")
    assert _python(["-c", code], pure=True).split() == ["True", "False"]


def test_a_hot_module_edited_since_the_build_counts_as_stale(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "smartchain"
    for module in _hotpath.HOT_MODULES:
        target = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(_hotpath.source_path(module).read_bytes())
    monkeypatch.setattr(_hotpath, "_ROOT", tmp_path)
    monkeypatch.setattr(_hotpath, "__file__", str(pkg / "_hotpath.py"))
    assert _hotpath.stale_modules() == []  # no build record: nothing compiled to be stale
    (pkg / _hotpath.BUILD_RECORD).write_text(
        "".join(f"{m} {_hotpath.source_digest(m)}\n" for m in _hotpath.HOT_MODULES))
    assert _hotpath.stale_modules() == []
    edited = _hotpath.source_path(_hotpath.HOT_MODULES[0])
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert _hotpath.stale_modules() == [_hotpath.HOT_MODULES[0]]
