"""The decode cache: a dataset is decoded and resized once, then loaded from disk in a blink.

An entry is a folder named by a hash of everything that shapes it (for an image folder:
every image file's relative path, size and modification time, plus the image size, the
channels asked for and the image limit) holding ``images.npy`` (uint8 N, C, H, W) and
``meta.json`` (the skipped files, the channels). Changing, adding or removing a file gives
a new key, so a stale entry is never used. An entry made for --conditional also holds
``labels.npy`` (int64 N: each image's class) and the class names in ``meta.json``; its key
has ``labelled=True`` among its parts, which no other key has, so every other key is as before.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.rundir import decode_cache_dir

#: Bump when decoding or the entry layout changes, so entries of older code are not reused.
CACHE_VERSION = 2

Decoded = tuple[np.ndarray, list[str], int]


@dataclass(frozen=True)
class ClassLabels:
    """Each image's class, int64 (N,) aligned with the images' rows, and the classes' names:
    label i is ``names[i]``."""

    labels: np.ndarray
    names: list[str]

    def check(self, rows: int) -> None:
        """ValueError unless these are ``rows`` class indices into ``names``."""
        labels = self.labels
        if labels.dtype != np.int64 or labels.shape != (rows,):
            raise ValueError(f"labels {labels.dtype} {labels.shape}, expected int64 ({rows},)")
        if rows and (labels.min() < 0 or labels.max() >= len(self.names)):
            raise ValueError(f"labels outside 0..{len(self.names) - 1}")


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


def _load(entry: Path, labelled: bool) -> tuple[Decoded, ClassLabels | None]:
    meta = json.loads((entry / "meta.json").read_text())
    images = np.load(entry / "images.npy", mmap_mode="r", allow_pickle=False)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != meta["channels"]:
        raise ValueError(f"{entry}: not a decoded dataset")
    decoded = images, [str(s) for s in meta["skipped"]], int(meta["channels"])
    if not labelled:
        return decoded, None
    # memory-mapped like the images: streaming workers map the file rather than receive a copy
    classes = ClassLabels(np.load(entry / "labels.npy", mmap_mode="r", allow_pickle=False),
                          [str(n) for n in meta["class_names"]])
    classes.check(len(images))
    return decoded, classes


def cached(key: str, build: Callable[[Scratch], Decoded], enabled: bool = True) -> Decoded:
    """The entry for ``key``, or ``build(scratch)`` stored under it. Images come back
    memory-mapped from the entry, or in memory when the cache is off or cannot be written."""
    return _cached(key, lambda scratch: (build(scratch), None), enabled, labelled=False)[0]


def cached_labelled(key: str, build: Callable[[Scratch], tuple[Decoded, ClassLabels]],
                    enabled: bool = True) -> tuple[Decoded, ClassLabels]:
    """As ``cached``, for images with their classes: an entry without labels is rebuilt."""
    decoded, classes = _cached(key, build, enabled, labelled=True)
    assert classes is not None  # _load checked that the entry has them; build returns them
    classes.check(len(decoded[0]))  # also where nothing was stored: one label per decoded row
    return decoded, classes


def _cached(key: str, build: Callable[[Scratch], tuple[Decoded, ClassLabels | None]], enabled: bool,
            labelled: bool) -> tuple[Decoded, ClassLabels | None]:
    if not enabled:
        return build(Scratch())
    entry = decode_cache_dir() / key
    if (entry / "meta.json").exists():
        try:
            return _load(entry, labelled)
        except (OSError, ValueError, KeyError, TypeError):
            shutil.rmtree(entry, ignore_errors=True)  # torn or foreign: build it again
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=entry.parent))
    except OSError:
        return build(Scratch())  # a read-only disk: training goes on, decoding next time again
    try:
        (images, skipped, channels), classes = build(Scratch(tmp))
        target = tmp / "images.npy"
        if isinstance(images, np.memmap) and images.filename and Path(images.filename).parent == tmp:
            images.flush()
            os.replace(images.filename, target)
        else:
            np.save(target, np.ascontiguousarray(images))
        meta: dict[str, Any] = {"skipped": skipped, "channels": channels}
        if classes is not None:
            np.save(tmp / "labels.npy", np.ascontiguousarray(classes.labels, dtype=np.int64))
            meta["class_names"] = classes.names
        (tmp / "meta.json").write_text(json.dumps(meta))
        for part in tmp.glob("part-*.npy"):
            part.unlink()
        try:
            os.rename(tmp, entry)  # atomic: the entry is whole or absent
        except OSError:
            if not (entry / "meta.json").exists():  # not a concurrent run that finished first
                raise
        return _load(entry, labelled)
    except OSError:
        # the disk filled up or went read-only while building: build into memory instead
        return build(Scratch())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
