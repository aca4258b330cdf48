"""Atomic file writes: write a temporary file beside the target, fsync it, then rename.

A crash or kill at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(f)`` on a temporary file, then atomically move it to ``path``. OSError,
    writing nothing, when ``path`` is something other than a file (a device such as
    os.devnull, a FIFO): the rename would put a file in its place."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise OSError(errno.EINVAL, f"not a regular file, so not replaced: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    data = text.encode("utf-8")

    def write(f: BinaryIO) -> None:
        f.write(data)

    return atomic_write(path, write)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
