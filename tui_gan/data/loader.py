"""Training data: the built-in glyph dataset, named datasets and image folders, as uint8.

When it fits, a dataset is stored once as a uint8 tensor (N, C, H, W) on the training
device and batches are sliced there and scaled to [-1, 1]: no DataLoader and no
host-to-device copy per step. A dataset too large for that (over DEVICE_DATA_SHARE of a
GPU's free memory, or HOST_DATA_SHARE of the host's available memory), or any with
``--stream``, streams from its memory-mapped decode-cache entry through a DataLoader with
worker processes and pinned memory.

Either way the order of each epoch is a permutation drawn from (seed, epoch), so a resumed
run sees exactly the batches it would have seen, and streaming sees the same batches as
memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..core.errors import UserError
from .builtin import BUILTIN_VERSION, builtin_count, make_builtin
from .cache import cache_key, cached, folder_fingerprint
from .imagefiles import ProgressFn, decode_files, scan_folder
from .labelled import load_labelled
from .named import DATASETS, dataset_fingerprint, is_dataset_name, load_torchvision
from .pixels import from_uint8


@dataclass
class Dataset:
    """Images as uint8 (N, C, H, W) on the training device; with --conditional, each
    image's class (int64 (N,), on the same device) and the classes' names."""

    images: torch.Tensor
    name: str
    skipped: list[str]
    labels: torch.Tensor | None = None
    class_names: list[str] | None = None

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def __len__(self) -> int:
        return self.images.shape[0]

    streamed = False

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """A float batch in [-1, 1] on the images' device."""
        return from_uint8(self.images.index_select(0, indices))

    def subset(self, n: int, seed: int) -> torch.Tensor:
        """``n`` images (uint8, on the device) chosen by ``seed``: the quality metric's real set."""
        return self.images.index_select(0, _subset_indices(len(self), n, seed).to(self.images.device))

    def subset_labels(self, n: int, seed: int) -> torch.Tensor:
        """The classes of the images ``subset(n, seed)`` returns, in the same order."""
        return _needs(self.labels).index_select(0, _subset_indices(len(self), n, seed).to(self.images.device))

    def epoch_batches(self, seed: int, epoch: int, start: int, batch_size: int,
                      rows: slice | None = None) -> Iterator[torch.Tensor]:
        """The batches of ``epoch`` from batch number ``start`` on (``rows``: only those rows
        of each, where several processes share the batches)."""
        for indices in _batch_indices(epoch_permutation(seed, epoch, len(self), self.images.device),
                                      start, batch_size, rows):
            yield self.batch(indices)

    def epoch_labelled_batches(self, seed: int, epoch: int, start: int, batch_size: int,
                               rows: slice | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``epoch_batches``'s batches, each with its images' classes (int64)."""
        labels = _needs(self.labels)
        for indices in _batch_indices(epoch_permutation(seed, epoch, len(self), self.images.device),
                                      start, batch_size, rows):
            yield self.batch(indices), labels.index_select(0, indices)


def _batch_indices(perm: torch.Tensor, start: int, batch_size: int, rows: slice | None) -> Iterator[torch.Tensor]:
    """The rows of each batch of an epoch in order ``perm``, from batch number ``start`` on:
    one rule for images and labels, in memory or streamed."""
    for b in range(start, len(perm) // batch_size):
        yield perm[b * batch_size : (b + 1) * batch_size][rows or slice(None)]


def _needs(labels: torch.Tensor | np.ndarray | None) -> Any:
    if labels is None:
        raise ValueError("this dataset has no labels: it was loaded without --conditional")
    return labels


class _Rows(torch.utils.data.Dataset):
    """What a DataLoader worker reads: one whole batch of uint8 rows per item (and, with
    labels, the batch's labels beside it).

    It holds the cache entry's paths, not the mappings, so it pickles cheaply where workers
    are spawned (macOS) rather than forked; each worker maps the files once."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None = None) -> None:
        self.images = _Mapped(images)
        self.labels = None if labels is None else _Mapped(labels)

    def __len__(self) -> int:
        return 0  # unused: items are the batch sampler's index lists

    def __getitem__(self, indices: torch.Tensor) -> Any:
        rows = indices.numpy()
        if self.labels is None:
            return self.images.rows(rows)
        return self.images.rows(rows), self.labels.rows(rows)


class _Mapped:
    """An array a worker reads rows of: by the path of its memory-mapped file, mapped on
    first use, or (in memory, the cache off) the array itself."""

    def __init__(self, array: np.ndarray) -> None:
        path = getattr(array, "filename", None)
        self.path = str(path) if path else None
        self.array = None if self.path else array

    def rows(self, rows: np.ndarray) -> torch.Tensor:
        if self.array is None:
            self.array = np.load(self.path, mmap_mode="r")
        return torch.from_numpy(self.array[rows])  # fancy indexing copies


@dataclass
class StreamedDataset:
    """Images as uint8 (N, C, H, W) on disk (memory-mapped), streamed batch by batch; with
    --conditional, each image's class (int64 (N,), memory-mapped or in memory)."""

    array: np.ndarray
    name: str
    skipped: list[str]
    device: torch.device
    workers: int = field(default_factory=lambda: stream_workers())
    labels: np.ndarray | None = None
    class_names: list[str] | None = None

    streamed = True

    @property
    def channels(self) -> int:
        return self.array.shape[1]

    def __len__(self) -> int:
        return self.array.shape[0]

    def subset(self, n: int, seed: int) -> torch.Tensor:
        """As Dataset.subset: the same images."""
        indices = _subset_indices(len(self), n, seed)
        return torch.from_numpy(np.asarray(self.array[np.sort(indices.numpy())])).to(self.device)

    def subset_labels(self, n: int, seed: int) -> torch.Tensor:
        """As Dataset.subset_labels: the classes of ``subset(n, seed)``'s images, on the device."""
        indices = _subset_indices(len(self), n, seed).numpy()  # sorted, as subset reads them
        return torch.from_numpy(np.array(_needs(self.labels)[indices])).to(self.device)

    def epoch_batches(self, seed: int, epoch: int, start: int, batch_size: int,
                      rows: slice | None = None) -> Iterator[torch.Tensor]:
        """The batches of ``epoch`` from batch number ``start`` on: the same as in memory.

        Workers gather the rows of the coming batches while the device trains; batches
        are copied from pinned memory without blocking (CUDA). Closing the generator stops them."""
        pinned = self.device.type == "cuda"
        for batch in self._stream(_Rows(self.array), seed, epoch, start, batch_size, rows):
            yield from_uint8(batch.to(self.device, non_blocking=pinned))

    def epoch_labelled_batches(self, seed: int, epoch: int, start: int, batch_size: int,
                               rows: slice | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``epoch_batches``'s batches, each with its images' classes, read by the same worker
        and copied to the device the same way."""
        pinned = self.device.type == "cuda"
        source = _Rows(self.array, _needs(self.labels))
        for batch, labels in self._stream(source, seed, epoch, start, batch_size, rows):
            yield (from_uint8(batch.to(self.device, non_blocking=pinned)),
                   labels.to(self.device, non_blocking=pinned))

    def _stream(self, source: _Rows, seed: int, epoch: int, start: int, batch_size: int,
                rows: slice | None) -> torch.utils.data.DataLoader:
        perm = epoch_permutation(seed, epoch, len(self), torch.device("cpu"))
        pinned = self.device.type == "cuda"  # pinned for CUDA: non-blocking copies are safe only from it
        return torch.utils.data.DataLoader(
            source, batch_size=None, sampler=list(_batch_indices(perm, start, batch_size, rows)),
            num_workers=self.workers, pin_memory=pinned, prefetch_factor=4 if self.workers else None,
        )


def _subset_indices(size: int, n: int, seed: int) -> torch.Tensor:
    """``n`` of ``range(size)`` chosen by ``seed``, sorted (cheap to read from disk)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + 999_983)
    return torch.randperm(size, generator=g)[:n].sort().values


def stream_workers() -> int:
    """DataLoader workers for streaming: half the cores (the rest drive the device), 1-8."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


#: The share of a GPU's free memory the dataset may take; the rest is for the models.
DEVICE_DATA_SHARE = 0.6
#: The share of the host's available memory a dataset may take when training on the CPU.
HOST_DATA_SHARE = 0.5


def host_available_memory() -> int | None:
    """Bytes of memory the host can give without swapping (Linux MemAvailable, else pages)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def fits_in_memory(nbytes: int, device: torch.device) -> tuple[bool, str]:
    """Whether a uint8 dataset of ``nbytes`` may be held on ``device``, and what it was
    measured against (for the message that says why it streams)."""
    if device.type == "cuda":
        free, share, where = torch.cuda.mem_get_info(device)[0], DEVICE_DATA_SHARE, f"{device}'s free memory"
    else:
        free, share, where = host_available_memory(), HOST_DATA_SHARE, "the host's available memory"
        if free is None:
            return True, where
    return nbytes <= share * free, f"{share:.0%} of {where} ({free / 2**30:.1f} GiB)"


def epoch_permutation(seed: int, epoch: int, n: int, device: torch.device) -> torch.Tensor:
    """The order of epoch ``epoch``: a function of (seed, epoch) alone, hence exactly resumable."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


def channels_known_in_advance(data: str) -> int | None:
    """The channels of ``data`` before any image is read: 3 for the built-in glyphs, a named
    dataset's own; None for a folder, whose images decide (see decode_files)."""
    if data == "builtin":
        return 3
    if is_dataset_name(data):
        return DATASETS[data.lower()].channels
    return None


def load_dataset(config, device: torch.device, progress: ProgressFn | None = None,
                 notes: list[str] | None = None) -> Dataset | StreamedDataset:
    """Build the dataset the config names; raise UserError if it cannot be used.

    Decoded images come from the decode cache when an entry matches (see cache.py). The
    dataset streams from disk with ``config.stream`` or when it does not fit (see
    fits_in_memory); in the latter case a note for the user is appended to ``notes``.

    With ``config.conditional`` it has each image's class (labelled.py, which says when it
    refuses the data); ``config.class_names``, when set, must be the data's classes."""
    size, channels, use_cache = config.image_size, config.channels, config.cache
    classes = None
    if config.conditional:
        arr, skipped, name, classes = load_labelled(config, progress, notes)
    elif config.data == "builtin":
        channels = channels or channels_known_in_advance("builtin")
        n = config.max_images or builtin_count(size, channels)
        key = cache_key(kind="builtin", n=n, size=size, seed=config.seed, channels=channels, code=__version__,
                        images=BUILTIN_VERSION)
        arr, skipped, _ = cached(key, lambda scratch: (make_builtin(n, size, config.seed, channels, progress), [], channels), use_cache)
        name = f"builtin ({n} glyph images)"
    elif is_dataset_name(config.data):
        source = dataset_fingerprint(config.data, config.data_root)  # None until downloaded
        key = cache_key(kind="torchvision", name=config.data.lower(), source=source, size=size,
                        channels=channels, limit=config.max_images)

        def build(scratch):
            return load_torchvision(config.data, config.data_root, config.download, size, channels,
                                    config.max_images, progress, scratch)

        arr, skipped, _ = cached(key, build, use_cache and source is not None)
        name = f"{config.data.lower()} ({len(arr)} images)"
    else:
        files = scan_folder(config.data)
        if config.max_images:
            files = files[: config.max_images]
        key = cache_key(kind="folder", root=str(config.data), files=folder_fingerprint(config.data, files),
                        size=size, channels=channels)
        arr, skipped, _ = cached(key, lambda scratch: decode_files(files, size, channels, progress, scratch=scratch), use_cache)
        if len(arr) == 0:
            raise UserError(
                f"--data {config.data}: none of the {len(files)} image files could be read "
                f"(first: {files[0]}); point --data at a folder of valid images"
            )
        name = f"{config.data} ({len(arr)} images)"
    if len(arr) < config.batch_size:
        raise UserError(
            f"--batch-size {config.batch_size} is larger than the dataset ({len(arr)} images); "
            f"use --batch-size {len(arr)} or less"
        )
    fits, limit = fits_in_memory(arr.nbytes + (classes.labels.nbytes if classes else 0), device)
    if config.stream or not fits:
        source = "the decode cache" if isinstance(arr, np.memmap) else "memory (--no-cache)"
        workers = stream_workers()
        name = f"{name}, streamed from {source} by {workers} worker(s)"
        if not fits and not config.stream and notes is not None:
            notes.append(f"the dataset's {arr.nbytes / 2**30:.1f} GiB exceed {limit}: streaming it from {source}, "
                         "which is slower; a smaller --image-size or --max-images N keeps it in memory")
        return StreamedDataset(arr, name, skipped, device, workers, labels=classes and classes.labels,
                               class_names=classes and classes.names)
    # the labels copied: torch warns about a tensor on the cache's read-only map
    labels = torch.from_numpy(np.array(classes.labels)).to(device) if classes else None
    return Dataset(images=_to_device(arr, device), name=name, skipped=skipped, labels=labels,
                   class_names=classes and classes.names)


def _to_device(arr: np.ndarray, device: torch.device) -> torch.Tensor:
    """The array as a tensor on ``device``, read from a memory map a slice at a time (no
    second host copy of the whole dataset on the way to a GPU)."""
    if device.type == "cpu":
        return torch.from_numpy(np.array(arr) if isinstance(arr, np.memmap) else arr)
    out = torch.empty(arr.shape, dtype=torch.uint8, device=device)
    rows = min(len(arr), max(1, (64 << 20) // max(1, arr[0].nbytes)))  # 64 MiB at a time
    # Through one host buffer, pinned for CUDA (a faster copy): the cache's map is read-only,
    # and torch.from_numpy warns about a read-only array (a slice of it); mapping the file
    # copy-on-write instead would count the whole file against the host's memory commit.
    buffer = torch.empty((rows, *arr.shape[1:]), dtype=torch.uint8, pin_memory=device.type == "cuda")
    staged = buffer.numpy()
    for start in range(0, len(arr), rows):
        n = min(rows, len(arr) - start)
        staged[:n] = arr[start : start + n]
        out[start : start + n].copy_(buffer[:n])  # synchronous: the buffer is free again after it
    return out
