"""What running a task gives back, whatever the module's kind (WebAssembly or Lua)."""

from __future__ import annotations

from typing import NamedTuple

MAX_OUTPUT = 1024 * 1024  # bytes a task may return


class TaskResult(NamedTuple):
    ok: bool
    output: bytes
    fuel_used: int
    error: str  # empty when ok
