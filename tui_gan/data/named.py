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
from .cache import ClassLabels, Scratch
from .imagefiles import ProgressFn, decode_files, prepare_image
from .labels import stratified


@dataclass(frozen=True)
class DatasetSpec:
    cls: str  # the torchvision.datasets class
    kwargs: dict[str, Any]
    needs: tuple[str, ...]  # paths under the root that a local copy has
    channels: int  # the images' own channels
    size: str  # the download, for the message that suggests it
    note: str = ""
    targets: str = "targets"  # the attribute with each image's class (--conditional)
    no_classes: str = ""  # why a dataset without classes has none (then --conditional refuses it)
    # --conditional reads another split where the default one has no labels (STL10's 100k
    # unlabelled images): its arguments and the files a local copy of it has
    labelled_kwargs: dict[str, Any] | None = None
    labelled_needs: tuple[str, ...] | None = None

    def split(self, conditional: bool) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The torchvision arguments and the needed files of the split a run reads."""
        if conditional and self.labelled_kwargs is not None and self.labelled_needs is not None:
            return self.labelled_kwargs, self.labelled_needs
        return self.kwargs, self.needs


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("MNIST", {"train": True}, tuple(f"MNIST/raw/{f}" for f in _MNIST_FILES), 1, "12 MB"),
    "fashion-mnist": DatasetSpec(
        "FashionMNIST", {"train": True}, tuple(f"FashionMNIST/raw/{f}" for f in _MNIST_FILES), 1, "30 MB"
    ),
    "kmnist": DatasetSpec("KMNIST", {"train": True}, tuple(f"KMNIST/raw/{f}" for f in _MNIST_FILES), 1, "20 MB"),
    "cifar10": DatasetSpec("CIFAR10", {"train": True}, ("cifar-10-batches-py/data_batch_1",), 3, "170 MB"),
    "cifar100": DatasetSpec("CIFAR100", {"train": True}, ("cifar-100-python/train",), 3, "170 MB"),
    "stl10": DatasetSpec(
        "STL10", {"split": "unlabeled"}, ("stl10_binary/unlabeled_X.bin",), 3, "2.6 GB", targets="labels",
        labelled_kwargs={"split": "train"},
        labelled_needs=tuple(f"stl10_binary/{f}" for f in ("train_X.bin", "train_y.bin", "class_names.txt")),
    ),
    "celeba": DatasetSpec(
        "CelebA", {"split": "all", "target_type": []}, ("celeba/img_align_celeba", "celeba/list_eval_partition.txt"),
        3, "1.4 GB", note="needs the gdown package to download from Google Drive",
        no_classes="its faces have 40 yes/no attributes each, not one class",
    ),
}


def is_dataset_name(spec: str) -> bool:
    return spec.lower() in DATASETS


def check_available(name: str, root: str | None, download: bool, conditional: bool = False) -> None:
    """Raise UserError, with the exact command to run, if ``name`` (the split a run with
    ``conditional`` reads) is not under ``root``; with ``conditional``, first if it has no
    classes (before a download that could not help)."""
    spec = DATASETS[name.lower()]
    if conditional and spec.no_classes:
        raise UserError(
            f"--data {name}: --conditional needs one class per image, and {spec.no_classes}; "
            f"to train on classes of its images, put each class's images in a subfolder (FOLDER/CLASS/image.jpg) "
            f"and pass --data FOLDER"
        )
    base = dataset_root(root)
    if download or all((base / p).exists() for p in spec.split(conditional)[1]):
        return
    raise UserError(
        f"--data {name}: no local copy under {base}; download it ({spec.size}) with: "
        f"tui-gan --data {name} --data-root {base} --download"
        + (f" ({spec.note})" if spec.note else "")
    )


def dataset_fingerprint(name: str, root: str | None, conditional: bool = False) -> str | None:
    """Size and modification time of the files that make up a local copy (of the split a
    run with ``conditional`` reads); None if absent."""
    base = dataset_root(root)
    parts = []
    for rel in DATASETS[name.lower()].split(conditional)[1]:
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
    spec = DATASETS[name.lower()]
    dataset = _open(name, root, download, conditional=False)
    want = channels or spec.channels
    if spec.cls == "CelebA":  # files on disk: decoded like an image folder
        folder = dataset_root(root) / "celeba" / "img_align_celeba"
        return decode_files([folder / f for f in dataset.filename[:limit]], size, want, progress, scratch=scratch)
    return _prepare(_as_nhwc(dataset.data)[:limit], size, want, progress, scratch), [], want


def load_torchvision_labelled(
    name: str, root: str | None, download: bool, size: int, channels: int | None,
    limit: int | None = None, progress: ProgressFn | None = None, scratch: Scratch | None = None,
) -> tuple[tuple[np.ndarray, list[str], int], ClassLabels]:
    """As load_torchvision, with each image's class (for --conditional). ``limit`` keeps
    images of every class (labels.stratified), not the first ones. UserError for a dataset
    without classes (check_available)."""
    spec = DATASETS[name.lower()]
    dataset = _open(name, root, download, conditional=True)
    targets, names = getattr(dataset, spec.targets, None), getattr(dataset, "classes", None)
    if targets is None or names is None:
        raise UserError(f"--data {name}: its local copy under {dataset_root(root)} has no class labels "
                        f"('{spec.targets}' or 'classes' missing); download it again with --download")
    labels = np.asarray(targets, dtype=np.int64).reshape(-1)
    images = _as_nhwc(dataset.data)
    classes = ClassLabels(labels, [str(n) for n in names])
    try:
        classes.check(len(images))
    except ValueError as exc:
        raise UserError(f"--data {name}: its labels do not fit its {len(images)} images ({exc}); "
                        "download it again with --download") from None
    rows = stratified(labels, limit, classes.names, name) if limit else np.arange(len(images))
    want = channels or spec.channels
    decoded = _prepare(images[rows], size, want, progress, scratch), [], want
    return decoded, ClassLabels(labels[rows], classes.names)


def _open(name: str, root: str | None, download: bool, conditional: bool) -> Any:
    """The torchvision dataset object of the split a run reads; UserError if it cannot load."""
    import torchvision.datasets as tvd

    spec = DATASETS[name.lower()]
    base = dataset_root(root)
    check_available(name, root, download, conditional)
    try:
        base.mkdir(parents=True, exist_ok=True)
        return getattr(tvd, spec.cls)(str(base), download=download, **spec.split(conditional)[0])
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - network errors, corrupt archives, missing extras
        reason = first_line(exc)
        action = "check the network, or place the files there yourself" if download else "run again with --download"
        raise UserError(f"--data {name}: cannot load it from {base} ({reason}); {action}") from None


def _prepare(images: np.ndarray, size: int, want: int, progress: ProgressFn | None,
             scratch: Scratch | None) -> np.ndarray:
    """uint8 (N, H, W, C) images resized and centre-cropped as an image folder's are."""
    from PIL import Image

    out = (scratch or Scratch()).empty((len(images), want, size, size))
    for i, img in enumerate(images):
        pil = Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)
        out[i] = prepare_image(pil, size, want)
        if progress is not None and (i % 1024 == 0 or i == len(images) - 1):
            progress(i + 1, len(images))
    return out


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
