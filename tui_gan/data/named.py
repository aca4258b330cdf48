"""torchvision datasets by name: ``--data mnist``, ``cifar10``, ``celeba``...

The table and the check for a local copy need no torch, so the CLI can say at once what
to run when a dataset is missing. Loading imports torchvision and turns the dataset into
the same uint8 (N, C, size, size) array as an image folder, through the same resize and
centre crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import UserError, first_line
from ..core.rundir import dataset_root
from .cache import Scratch
from .imagefiles import ProgressFn, decode_files, prepare_image


@dataclass(frozen=True)
class DatasetSpec:
    cls: str  # the torchvision.datasets class
    kwargs: dict[str, Any]
    needs: tuple[str, ...]  # paths under the root that a local copy has
    channels: int  # the images' own channels
    size: str  # the download, for the message that suggests it
    note: str = ""


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("MNIST", {"train": True}, tuple(f"MNIST/raw/{f}" for f in _MNIST_FILES), 1, "12 MB"),
    "fashion-mnist": DatasetSpec(
        "FashionMNIST", {"train": True}, tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_FILES), 1, "30 MB"
    ),
    "kmnist": DatasetSpec("KMNIST", {"train": True}, tuple(f"KMNIST/raw/{f}" for f in _MNIST_FILES), 1, "20 MB"),
    "cifar10": DatasetSpec("CIFAR10", {"train": True}, ("cifar-10-batches-py/data_batch_1",), 3, "170 MB"),
    "cifar100": DatasetSpec("CIFAR100", {"train": True}, ("cifar-100-python/train",), 3, "170 MB"),
    "stl10": DatasetSpec("STL10", {"split": "unlabeled"}, ("stl10_binary/unlabeled_X.bin",), 3, "2.6 GB"),
    "celeba": DatasetSpec(
        "CelebA", {"split": "all", "target_type": []}, ("celeba/img_align_celeba", "celeba/list_eval_partition.txt"),
        3, "1.4 GB", note="needs the gdown package to download from Google Drive",
    ),
}


def is_dataset_name(spec: str) -> bool:
    return spec.lower() in DATASETS


def check_available(name: str, root: str | None, download: bool) -> None:
    """Raise UserError, with the exact command to run, if ``name`` is not under ``root``."""
    spec = DATASETS[name.lower()]
    base = dataset_root(root)
    if download or all((base / p).exists() for p in spec.needs):
        return
    raise UserError(
        f"--data {name}: no local copy under {base}; download it ({spec.size}) with: "
        f"tui-gan --data {name} --data-root {base} --download"
        + (f" ({spec.note})" if spec.note else "")
    )


def dataset_fingerprint(name: str, root: str | None) -> str | None:
    """Size and modification time of the files that make up a local copy; None if absent."""
    base = dataset_root(root)
    parts = []
    for rel in DATASETS[name.lower()].needs:
        try:
            st = (base / rel).stat()
        except OSError:
            return None
        parts.append(f"{base / rel}:{st.st_size}:{st.st_mtime_ns}")
    return "|".join(parts)


def load_torchvision(
    name: str, root: str | None, download: bool, size: int, channels: int | None,
    limit: int | None = None, progress: ProgressFn | None = None, scratch: Scratch | None = None,
) -> tuple[np.ndarray, list[str], int]:
    """The dataset's training images as uint8 (N, C, size, size), the skipped files, the channels."""
    import torchvision.datasets as tvd

    spec = DATASETS[name.lower()]
    base = dataset_root(root)
    check_available(name, root, download)
    try:
        base.mkdir(parents=True, exist_ok=True)
        dataset = getattr(tvd, spec.cls)(str(base), download=download, **spec.kwargs)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - network errors, corrupt archives, missing extras
        reason = first_line(exc)
        action = "check the network, or place the files there yourself" if download else "run again with --download"
        raise UserError(f"--data {name}: cannot load it from {base} ({reason}); {action}") from None
    want = channels or spec.channels
    if spec.cls == "CelebA":  # files on disk: decoded like an image folder
        folder = base / "celeba" / "img_align_celeba"
        return decode_files([folder / f for f in dataset.filename[:limit]], size, want, progress, scratch=scratch)
    images = _as_nhwc(dataset.data)[:limit]
    out = (scratch or Scratch()).empty((len(images), want, size, size))
    from PIL import Image

    for i, img in enumerate(images):
        pil = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
        out[i] = prepare_image(pil, size, want)
        if progress is not None and (i % 1024 == 0 or i == len(images) - 1):
            progress(i + 1, len(images))
    return out, [], want


def _as_nhwc(data: Any) -> np.ndarray:
    """torchvision keeps .data as (N, H, W) tensors, (N, H, W, 3) or (N, 3, H, W) arrays."""
    arr = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    if arr.ndim == 3:
        return arr[..., None]
    if arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        return arr.transpose(0, 2, 3, 1)
    return arr


def describe() -> str:
    return ", ".join(DATASETS)
