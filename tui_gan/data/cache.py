"""The decode cache: a dataset is decoded and resized once, then loaded from disk in a blink.

An entry is a folder named by a hash of everything that shapes it (for an image folder:
every image file's relative path, size and modification time, plus the image size, the
channels asked for and the image limit) holding ``images.npy`` (uint8 N, C, H, W) and
``meta.json`` (the skipped files, the channels). Changing, adding or removing a file gives
a new key, so a stale entry is never used.

Builders write straight into memory-mapped files of the entry (see ``Scratch``), so a
dataset larger than memory can be decoded, and an entry is read back memory-mapped: the
pages come in as training touches them. Entries are built in a temporary folder that is
renamed into place, so a crash never leaves a torn one; an unreadable entry is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..core.rundir import decode_cache_dir

#: Bump when decoding or the entry layout changes, so entries of older code are not reused.
CACHE_VERSION = 2

Decoded = tuple[np.ndarray, list[str], int]


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


class Scratch:
    """Where a builder allocates its uint8 arrays: memory-mapped ``.npy`` files in ``folder``,
    or plain memory when ``folder`` is None (the cache is off or unwritable)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder
        self._parts = 0

    def empty(self, shape: tuple[int, ...]) -> np.ndarray:
        if self.folder is None:
            return np.empty(shape, dtype=np.uint8)
        self._parts += 1
        path = self.folder / f"part-{self._parts}.npy"
        return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def _load(entry: Path) -> Decoded:
    meta = json.loads((entry / "meta.json").read_text())
    images = np.load(entry / "images.npy", mmap_mode="r", allow_pickle=False)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != meta["channels"]:
        raise ValueError(f"{entry}: not a decoded dataset")
    return images, [str(s) for s in meta["skipped"]], int(meta["channels"])


def cached(key: str, build: Callable[[Scratch], Decoded], enabled: bool = True) -> Decoded:
    """The entry for ``key``, or ``build(scratch)`` stored under it. Images come back
    memory-mapped from the entry, or in memory when the cache is off or cannot be written."""
    if not enabled:
        return build(Scratch())
    entry = decode_cache_dir() / key
    if (entry / "meta.json").exists():
        try:
            return _load(entry)
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(entry, ignore_errors=True)  # torn or foreign: build it again
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=entry.parent))
    except OSError:
        return build(Scratch())  # a read-only disk: training goes on, decoding next time again
    try:
        images, skipped, channels = build(Scratch(tmp))
        target = tmp / "images.npy"
        if isinstance(images, np.memmap) and images.filename and Path(images.filename).parent == tmp:
            images.flush()
            os.replace(images.filename, target)
        else:
            np.save(target, np.ascontiguousarray(images))
        (tmp / "meta.json").write_text(json.dumps({"skipped": skipped, "channels": channels}))
        for part in tmp.glob("part-*.npy"):
            part.unlink()
        try:
            os.rename(tmp, entry)  # atomic: the entry is whole or absent
        except OSError:
            if not (entry / "meta.json").exists():  # not a concurrent run that finished first
                raise
        return _load(entry)
    except OSError:
        # the disk filled up or went read-only while building: build into memory instead
        return build(Scratch())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
