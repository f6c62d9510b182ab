"""The local names of stored files (``$SMART_HOME/files.json``: file id -> the name it was
put from). The chain never learns them; ``smart store ls`` shows them beside the ids."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from smartchain.cli.settings import cli_home

MAX_NAME = 255


def _path() -> Path:
    return cli_home() / "files.json"


def load() -> dict[str, str]:
    try:
        doc = json.loads(_path().read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(doc, dict) else {}


def remember(file_id: str, name: str) -> None:
    """Record a name, written atomically (a crash leaves the old index, never half of one)."""
    names = {**load(), file_id: name[:MAX_NAME]}
    home = cli_home()
    home.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".files.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(names, f, indent=2)
    os.replace(tmp, _path())
