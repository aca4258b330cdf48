"""Training data: the built-in glyph dataset and image folders, held in memory as uint8.

Images are stored once as a uint8 tensor (N, C, H, W) on the training device and batches
are sliced there and scaled to [-1, 1]: no DataLoader and no host-to-device copy per step.
The order of each epoch is a permutation drawn from (seed, epoch), so a resumed run sees
exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .builtin import builtin_count, make_builtin
from . import __version__
from .cache import cache_key, cached, folder_fingerprint
from .datasets import DATASETS, dataset_fingerprint, is_dataset_name, load_torchvision
from .errors import UserError
from .imagefiles import ProgressFn, decode_files, scan_folder


@dataclass
class Dataset:
    """Images as uint8 (N, C, H, W) on the training device."""

    images: torch.Tensor
    name: str
    skipped: list[str]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def __len__(self) -> int:
        return self.images.shape[0]

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        """A float batch in [-1, 1] on the images' device."""
        return self.images.index_select(0, indices).float().div_(127.5).sub_(1.0)


#: The share of a GPU's free memory the dataset may take; the rest is for the models.
DEVICE_DATA_SHARE = 0.6


def check_fits(nbytes: int, free: int, device: str) -> None:
    """Raise UserError if a dataset of ``nbytes`` (uint8) would crowd out training on ``device``."""
    if nbytes > DEVICE_DATA_SHARE * free:
        raise UserError(
            f"the dataset takes {nbytes / 2**30:.1f} GiB as uint8 but {device} has {free / 2**30:.1f} GiB free; "
            "use a smaller --image-size or --max-images N"
        )


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


def load_dataset(config, device: torch.device, progress: ProgressFn | None = None) -> Dataset:
    """Build the dataset the config names; raise UserError if it cannot be used.

    Decoded images come from the decode cache when an entry matches (see cache.py)."""
    size, channels, use_cache = config.image_size, config.channels, config.cache
    if config.data == "builtin":
        channels = channels or channels_known_in_advance("builtin")
        n = config.max_images or builtin_count(size, channels)
        key = cache_key(kind="builtin", n=n, size=size, seed=config.seed, channels=channels, code=__version__)
        arr, skipped, _ = cached(key, lambda: (make_builtin(n, size, config.seed, channels, progress), [], channels), use_cache)
        name = f"builtin ({n} glyph images)"
    elif is_dataset_name(config.data):
        source = dataset_fingerprint(config.data, config.data_root)  # None until downloaded
        key = cache_key(kind="torchvision", name=config.data.lower(), source=source, size=size,
                        channels=channels, limit=config.max_images)

        def build():
            return load_torchvision(config.data, config.data_root, config.download, size, channels,
                                    config.max_images, progress)

        arr, skipped, _ = cached(key, build, use_cache and source is not None)
        name = f"{config.data.lower()} ({len(arr)} images)"
    else:
        files = scan_folder(config.data)
        if config.max_images:
            files = files[: config.max_images]
        key = cache_key(kind="folder", root=str(config.data), files=folder_fingerprint(config.data, files),
                        size=size, channels=channels)
        arr, skipped, _ = cached(key, lambda: decode_files(files, size, channels, progress), use_cache)
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
    if device.type == "cuda":
        check_fits(arr.nbytes, torch.cuda.mem_get_info(device)[0], str(device))
    images = torch.from_numpy(arr).to(device)
    return Dataset(images=images, name=name, skipped=skipped)
