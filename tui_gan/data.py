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
from .datasets import is_dataset_name, load_torchvision
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


def epoch_permutation(seed: int, epoch: int, n: int, device: torch.device) -> torch.Tensor:
    """The order of epoch ``epoch``: a function of (seed, epoch) alone, hence exactly resumable."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).to(device)


def load_dataset(config, device: torch.device, progress: ProgressFn | None = None) -> Dataset:
    """Build the dataset the config names; raise UserError if it cannot be used."""
    if config.data == "builtin":
        channels = config.channels or 3
        n = config.max_images or builtin_count(config.image_size, channels)
        arr = make_builtin(n, config.image_size, config.seed, channels, progress)
        name = f"builtin ({n} glyph images)"
        skipped: list[str] = []
    elif is_dataset_name(config.data):
        arr, skipped, _ = load_torchvision(
            config.data, config.data_root, config.download, config.image_size, config.channels,
            config.max_images, progress,
        )
        name = f"{config.data.lower()} ({len(arr)} images)"
    else:
        files = scan_folder(config.data)
        if config.max_images:
            files = files[: config.max_images]
        arr, skipped, _ = decode_files(files, config.image_size, config.channels, progress)
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
    images = torch.from_numpy(arr).to(device)
    return Dataset(images=images, name=name, skipped=skipped)
