"""The decode cache: a dataset is decoded and resized once, then loaded from disk in a blink.

An entry is one uncompressed ``.npz`` (the uint8 images, the skipped files, the channels)
named by a hash of everything that shapes it: for a folder, every image file's relative
path, size and modification time, plus the image size, the channels asked for and the
image limit. Changing, adding or removing a file gives a new key, so a stale entry is
never used. Entries are written atomically; an unreadable one is decoded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .atomic import atomic_write

#: Bump when decoding changes, so entries made by older code are not reused.
CACHE_VERSION = 1

Decoded = tuple[np.ndarray, list[str], int]


def cache_dir() -> Path:
    """``$TUI_GAN_CACHE_DIR``, else ``$XDG_CACHE_HOME/tui-gan/decoded``, else ``~/.cache/...``."""
    explicit = os.environ.get("TUI_GAN_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "tui-gan" / "decoded"


def folder_fingerprint(root: str | Path, files: list[Path]) -> str:
    """A hash of each file's path under ``root``, size and modification time (no reading)."""
    h = hashlib.sha256()
    root = Path(root)
    for path in files:
        st = path.stat()
        h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def cache_key(**parts: Any) -> str:
    text = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def cached(key: str, build: Callable[[], Decoded], enabled: bool = True) -> Decoded:
    """The entry for ``key``, or ``build()`` stored under it."""
    path = cache_dir() / f"{key}.npz"
    if enabled and path.exists():
        try:
            with np.load(path, allow_pickle=False) as entry:
                return entry["images"], [str(s) for s in entry["skipped"]], int(entry["channels"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            pass  # torn or foreign: decode again and overwrite it
    value = build()
    if enabled:
        images, skipped, channels = value
        try:
            atomic_write(path, lambda f: np.savez(
                f, images=images, skipped=np.array(skipped, dtype=str), channels=np.int64(channels)
            ))
        except OSError:
            pass  # a read-only or full disk: training goes on, decoding next time again
    return value
