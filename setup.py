"""Build hook: compile the hot path (smartchain/_hotpath.py HOT_MODULES) with mypyc.

Metadata lives in pyproject.toml; this file only adds the optional extensions. Any failure
(no mypyc, a type error mypyc refuses, no C compiler or Python headers) leaves the package
pure Python with a warning, never a failed install. ``SMARTCHAIN_PURE=1`` at install time
skips the compilation. Docs: docs/performance.md.
"""

from __future__ import annotations

import os
import runpy
import sys
import tempfile
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
_HOT: dict[str, Any] = runpy.run_path(str(HERE / "smartchain" / "_hotpath.py"))
HOT_MODULES: tuple[str, ...] = _HOT["HOT_MODULES"]
MYPYC_CONFIG = "[mypy]\npython_version = 3.11\nignore_missing_imports = True\n"


def _warn(why: str) -> None:
    print(f"smartchain: hot path NOT compiled, running pure Python ({why})", file=sys.stderr)


def _ext_modules() -> list[Any]:
    if os.environ.get(_HOT["PURE_ENV"], "") not in ("", "0"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        _warn("mypyc not importable")
        return []
    paths = [str(Path(*m.split(".")).with_suffix(".py")) for m in HOT_MODULES]
    cwd = os.getcwd()
    os.chdir(HERE)  # mypyc reads the package from here
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # Not pyproject.toml's strict settings: pip builds in an environment without the
            # runtime dependencies (lmdb... are Any there). Checking is the lint test's job.
            config = Path(tmp, "mypy.ini")
            config.write_text(MYPYC_CONFIG)
            return list(mypycify(["--config-file", str(config), *paths], opt_level="3",
                                 group_name="smartchain_hot"))
    except (Exception, SystemExit) as exc:  # mypyc exits on a type error
        _warn(f"mypyc failed: {exc!r}")
        return []
    finally:
        os.chdir(cwd)


class OptionalBuildExt(build_ext):
    """Build every extension or none: a partial set would not import (one shared library)."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: CCompilerError, DistutilsError...
            for out in self.get_outputs():
                Path(out).unlink(missing_ok=True)
            _warn(f"C build failed: {exc}")
            return
        if self.extensions:
            self._record(Path(self.build_lib) if not self.inplace else HERE)

    def _record(self, root: Path) -> None:
        """Hash each compiled source, so an edit after the build falls back to the source."""
        lines = [f"{m} {_HOT['source_digest'](m)}" for m in HOT_MODULES]
        for base in {root, HERE}:
            target = base / "smartchain" / _HOT["BUILD_RECORD"]
            if target.parent.is_dir():
                target.write_text("\n".join(lines) + "\n")


setup(ext_modules=_ext_modules(), cmdclass={"build_ext": OptionalBuildExt})
