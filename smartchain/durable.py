"""Crash-safe file replacement: after a crash a file holds its old or its new content, never
a mix. Used by the signer's double-sign guard and the storage provider's piece store."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the directory's entries (a rename, a new file) durable."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, *, mode: int = 0o600,
                  tmp: Path | None = None) -> None:
    """Replace ``path`` with ``data``: write a temporary file (``tmp``, by default beside it;
    give a unique one when several writers may race), fsync it, rename it over ``path`` and
    fsync the directory (the rename is only durable once the directory entry is). A torn
    temporary file left by a crash is harmless: the next write truncates it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp if tmp is not None else path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
