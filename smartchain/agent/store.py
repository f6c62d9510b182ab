"""The agent's progress on disk, written atomically: what a killed agent resumes from.

One JSON document (``STATE_DIR/progress.json``): per agreement, the last counter this agent
signed or countersigned, the last one settled on chain, what it has delivered or received;
per device, the last message number metered. Each change is written to a temporary file,
synced and renamed over the old one, so after a crash the file is the old or the new
version, never a mix. The agent writes it *before* it acts on a step (publishes a
countersignature, sends a settlement), so a restart never does a step twice on its side;
the chain refuses a receipt it has accepted once, so nothing is paid twice on the other.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"


class Progress:
    """A JSON document kept in memory and on disk; ``update`` changes both."""

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / PROGRESS_FILE
        self._lock = threading.Lock()
        try:
            self.doc: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.doc = {}

    def section(self, name: str) -> dict[str, Any]:
        return self.doc.setdefault(name, {})

    def entry(self, section: str, key: str) -> dict[str, Any]:
        """A copy of one entry (empty when absent): change it with ``update``."""
        return dict(self.doc.get(section, {}).get(key, {}))

    def update(self, section: str, key: str, **fields: Any) -> dict[str, Any]:
        """Set ``fields`` of one entry and write the document before returning."""
        with self._lock:
            entry = self.doc.setdefault(section, {}).setdefault(key, {})
            entry.update(fields)
            self._write()
            return dict(entry)

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(self.doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
