"""Labelled data for --conditional: the images of the built-in set, a folder of class
folders or a torchvision dataset, each with its class, through the decode cache.

Kept apart from loader.py so that a run without --conditional takes exactly the code path
(and the cache keys) it took before labels existed. No torch here: the engine may ask for
the classes (``class_names_in_advance``) before torch has loaded the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import __version__
from .builtin import BUILTIN_CLASSES, BUILTIN_VERSION, builtin_count, make_builtin_labelled
from .cache import ClassLabels, Decoded, Scratch, cache_key, cached_labelled, folder_fingerprint
from .imagefiles import ProgressFn, decode_files, scan_folder
from .labels import (
    check_enough_classes,
    check_every_class_has_images,
    check_same_classes,
    folder_class_names,
    folder_classes,
    stratified,
)
from .named import dataset_fingerprint, is_dataset_name, load_torchvision_labelled


def class_names_in_advance(config: Any) -> list[str] | None:
    """The classes ``load_dataset(config)`` will find, known without decoding an image: the
    built-in set's digits, a folder's class folders (listed, not read). None without
    --conditional, and for a torchvision dataset (its classes come with the dataset object).
    Raises the UserError load_dataset would raise for a folder that has no classes."""
    if not config.conditional:
        return None
    if config.data == "builtin":
        return list(BUILTIN_CLASSES)
    if is_dataset_name(config.data):
        return None
    return folder_class_names(config.data)


def load_labelled(config: Any, progress: ProgressFn | None = None,
                  notes: list[str] | None = None) -> tuple[np.ndarray, list[str], str, ClassLabels]:
    """The images of ``config.data`` (uint8 N, C, H, W), the skipped files, the dataset's
    name and each image's class, for a run with --conditional.

    UserError where the data cannot train a conditional GAN (no classes, one class, a class
    without a readable image) or, on resume (``config.class_names`` set), where its classes
    differ from the run's. ``config`` is not changed: the caller records the classes."""
    if config.data == "builtin":
        (arr, skipped, _), classes = _builtin(config, progress)
    elif is_dataset_name(config.data):
        (arr, skipped, _), classes = _torchvision(config, progress)
    else:
        (arr, skipped, _), classes = _folder(config, progress, notes)
    # each class keeps an image after decoding (unreadable files) and --max-images
    check_every_class_has_images(classes.names, classes.labels, config.data,
                                 "left to train on (unreadable, or too few --max-images)")
    check_enough_classes(classes.names, config.data)
    check_same_classes(config.class_names, classes.names, config.data)
    name = config.data.lower() if is_dataset_name(config.data) else config.data
    return arr, skipped, f"{name} ({len(arr)} images, {len(classes.names)} classes)", classes


def _builtin(config: Any, progress: ProgressFn | None) -> tuple[Decoded, ClassLabels]:
    channels = config.channels or 3
    n = config.max_images or builtin_count(config.image_size, channels)
    key = cache_key(kind="builtin", n=n, size=config.image_size, seed=config.seed, channels=channels,
                    code=__version__, images=BUILTIN_VERSION, labelled=True)

    def build(scratch: Scratch) -> tuple[Decoded, ClassLabels]:
        images, labels = make_builtin_labelled(n, config.image_size, config.seed, channels, progress)
        return (images, [], channels), ClassLabels(labels, list(BUILTIN_CLASSES))

    return cached_labelled(key, build, config.cache)


def _torchvision(config: Any, progress: ProgressFn | None) -> tuple[Decoded, ClassLabels]:
    source = dataset_fingerprint(config.data, config.data_root, conditional=True)  # None until downloaded
    key = cache_key(kind="torchvision", name=config.data.lower(), source=source, size=config.image_size,
                    channels=config.channels, limit=config.max_images, labelled=True)

    def build(scratch: Scratch) -> tuple[Decoded, ClassLabels]:
        return load_torchvision_labelled(config.data, config.data_root, config.download, config.image_size,
                                         config.channels, config.max_images, progress, scratch)

    return cached_labelled(key, build, config.cache and source is not None)


def _folder(config: Any, progress: ProgressFn | None, notes: list[str] | None) -> tuple[Decoded, ClassLabels]:
    found = folder_classes(config.data, scan_folder(config.data))
    # Known before decoding: a resumed run with other classes stops at once.
    check_same_classes(config.class_names, found.names, config.data)
    if found.loose and notes is not None:
        notes.append(f"--conditional: {len(found.loose)} image(s) directly in {config.data} belong to no class "
                     f"and are left out (first: {found.loose[0].name}); move them into a class folder to use them")
    files, labels = found.files, found.labels
    if config.max_images:
        rows = stratified(labels, config.max_images, found.names, config.data)
        files, labels = [files[i] for i in rows], labels[rows]
    key = cache_key(kind="folder", root=str(config.data), files=folder_fingerprint(config.data, files),
                    size=config.image_size, channels=config.channels, labelled=True)

    def build(scratch: Scratch) -> tuple[Decoded, ClassLabels]:
        images, skipped, channels = decode_files(files, config.image_size, config.channels, progress,
                                                 scratch=scratch)
        # decoding drops unreadable files: the labels of the files it kept, in order
        dropped = set(skipped)
        kept = np.array([str(path) not in dropped for path in files], dtype=bool)
        return (images, skipped, channels), ClassLabels(labels[kept], found.names)

    return cached_labelled(key, build, config.cache)
