"""Classes for --conditional: which class each image is, from a folder's layout, and the
checks that a set of classes can train a conditional GAN.

numpy only (no torch, no decoding), so the classes of a folder are known before its images
are decoded, and the engine can build class-conditional models meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import UserError
from .imagefiles import image_folder, scan_folder, walk_images

#: How many class names a message lists before it says how many more.
NAMES_SHOWN = 6


@dataclass(frozen=True)
class FolderClasses:
    """A folder's images grouped by the first folder level under its root."""

    names: list[str]
    """The class folders, sorted as torchvision's ImageFolder sorts them (plain string order)."""
    files: list[Path]
    """The images in class folders, in scan order (sorted paths)."""
    labels: np.ndarray
    """int64, one per file: its class's index in ``names``."""
    loose: list[Path]
    """Images directly in the root, beside the class folders: they belong to no class."""


def folder_classes(data: str, files: list[Path]) -> FolderClasses:
    """The classes of the image ``files`` found under folder ``data`` (scan_folder's list).

    A file's class is the first folder under the root on its path, however deep it lies, so
    ``faces/smiling/2024/a.png`` is a smiling face. Raises UserError for a folder without
    class folders or with only one."""
    root = image_folder(data)
    parts = [path.relative_to(root).parts for path in files]
    firsts = [p[0] if len(p) > 1 else None for p in parts]
    names = sorted({first for first in firsts if first is not None})
    if not names:
        raise UserError(
            f"--data {data}: --conditional needs the images sorted into class folders, and every image "
            f"is directly in the folder; put each class's images in a subfolder: {data}/CLASS/image.png"
        )
    check_enough_classes(names, data)
    index = {name: i for i, name in enumerate(names)}
    return FolderClasses(
        names=names,
        files=[path for path, first in zip(files, firsts) if first is not None],
        labels=np.array([index[first] for first in firsts if first is not None], dtype=np.int64),
        loose=[path for path, first in zip(files, firsts) if first is None],
    )


def folder_class_names(data: str) -> list[str]:
    """The class folders of ``data``, without listing every image: each first-level folder
    is walked only until its first image. The same classes ``folder_classes`` finds."""
    root = image_folder(data)
    names = sorted(entry.name for entry in root.iterdir()
                   if not entry.name.startswith(".") and entry.is_dir() and next(walk_images(entry), None))
    if len(names) < 2:
        folder_classes(data, scan_folder(data))  # raises the error that says what is wrong
    return names


def check_enough_classes(names: Sequence[str], data: str) -> None:
    if len(names) < 2:
        raise UserError(
            f"--data {data}: --conditional needs two or more classes, and it has one ({', '.join(names)}); "
            "add a folder of images for each other class, or train without --conditional"
        )


def check_every_class_has_images(classes: Sequence[str], labels: np.ndarray, data: str, why: str) -> None:
    """UserError naming the classes that no image is left in (``why``: what removed them)."""
    counts = np.bincount(np.asarray(labels), minlength=len(classes))
    empty = [classes[i] for i in np.flatnonzero(counts == 0)]
    if empty:
        raise UserError(f"--data {data}: class {_listed(empty)} has no image {why}; "
                        "add readable images to it, or remove it")


def check_same_classes(expected: list[str] | None, found: list[str], data: str) -> None:
    """UserError unless a resumed run's classes (``expected``, from its checkpoint; None for
    a new run) are ``found``, in the same order: a label means one class for a run's life."""
    if expected is None or expected == found:
        return
    missing = [name for name in expected if name not in found]
    extra = [name for name in found if name not in expected]
    differ = "; ".join(
        [f"missing {_listed(missing)}"] * bool(missing) + [f"new {_listed(extra)}"] * bool(extra)
    ) or "the same names in another order"
    raise UserError(
        f"the checkpoint has {len(expected)} classes ({_listed(expected)}), --data {data} has "
        f"{len(found)}: {differ}; a resumed run needs the classes it started with"
    )


def stratified(labels: np.ndarray, n: int, classes: Sequence[str], data: str) -> np.ndarray:
    """The rows (sorted) of ``n`` images that keep every class: each class gets at least one,
    the rest shared in proportion to the classes' sizes (largest remainders first, ties to the
    lower class), each class's first images in order. Deterministic: no seed."""
    counts = np.bincount(labels, minlength=len(classes))
    if n >= len(labels):
        return np.arange(len(labels))
    if n < len(classes):
        raise UserError(
            f"--max-images {n} is fewer than the {len(classes)} classes of --data {data}; "
            f"--conditional keeps at least one image of each: use --max-images {len(classes)} or more"
        )
    spare = counts - 1  # beyond the one image each class is sure of
    quota = (n - len(classes)) * spare / spare.sum()
    share = np.floor(quota).astype(np.int64)
    left = (n - len(classes)) - int(share.sum())
    # a stable sort of the remainders, largest first: ties go to the lower class
    share[np.argsort(-(quota - share), kind="stable")[:left]] += 1
    keep = 1 + share
    rank = np.empty(len(labels), dtype=np.int64)  # each row's place among its class's rows
    for c in range(len(classes)):
        rows = np.flatnonzero(labels == c)
        rank[rows] = np.arange(len(rows))
    return np.flatnonzero(rank < keep[labels])


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f", … ({len(names) - NAMES_SHOWN} more)" if len(names) > NAMES_SHOWN else "")
