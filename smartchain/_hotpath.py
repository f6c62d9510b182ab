"""Which modules are compiled (mypyc, by ``setup.py``), and when the Python source runs instead.

The compiled modules are built from these very ``.py`` files: the source stays the one truth,
and an extension module next to its ``.py`` is what ``import`` finds first. The source runs
instead when ``SMARTCHAIN_PURE=1`` is set, when nothing was compiled (no compiler, no mypyc)
and when a compiled module's source changed since the build (stale: the build records each
source's hash in ``_hotpath_build.txt``); that decision is all-or-nothing, because compiled
modules call each other directly. Docs: docs/performance.md.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Sequence
from hashlib import blake2b
from pathlib import Path
from types import ModuleType

# Compiled with mypyc when the machine can; keep in step with docs/performance.md.
HOT_MODULES = (
    "smartchain.state.executor",
    "smartchain.state.store",
    "smartchain.modules.bank.module",
    "smartchain.node.mempool",
)
PURE_ENV = "SMARTCHAIN_PURE"
BUILD_RECORD = "_hotpath_build.txt"  # "<module> <blake2b of its source>" per line
_ROOT = Path(__file__).resolve().parent.parent  # the directory holding the package


def source_path(module: str) -> Path:
    return _ROOT.joinpath(*module.split(".")).with_suffix(".py")


def source_digest(module: str) -> str:
    return blake2b(source_path(module).read_bytes(), digest_size=16).hexdigest()


def stale_modules() -> list[str]:
    """Compiled modules whose source changed since the build (none: no build record)."""
    record = Path(__file__).with_name(BUILD_RECORD)
    if not record.exists():
        return []
    built = dict(line.split() for line in record.read_text().splitlines() if line.strip())
    return [m for m in HOT_MODULES if built.get(m) != source_digest(m)]


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` of the hot modules, ahead of their compiled extension."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in HOT_MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


def compiled() -> bool:
    """True when the hot modules run compiled in this process (imports them)."""
    return all(not str(importlib.import_module(m).__file__).endswith(".py")
               for m in HOT_MODULES)


def install() -> None:
    """Called by ``smartchain/__init__``: run the source when asked to or when stale."""
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        sys.meta_path.insert(0, _SourceFinder())
        return
    stale = stale_modules()
    if stale:
        warnings.warn(f"smartchain: compiled hot path is stale ({', '.join(stale)} edited "
                      "since the build): running pure Python; rebuild with "
                      "`pip install -e .`", RuntimeWarning, stacklevel=2)
        sys.meta_path.insert(0, _SourceFinder())
