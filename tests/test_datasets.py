"""torchvision datasets by name, on files the tests write in each dataset's on-disk format."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch

from tui_gan.cli import main
from tui_gan.core.errors import UserError
from tui_gan.data.loader import load_dataset

from .conftest import tiny_config


def write_mnist(root, folder="MNIST", n=40):
    """The four idx files torchvision's MNIST looks for (big-endian headers, raw uint8)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        images[i, :14] = 255 if i % 2 == 0 else 0  # even images: top half white
    labels = np.arange(n, dtype=np.uint8) % 10
    for prefix in ("train", "t10k"):
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
    return images


def write_cifar10(root, n_per_batch=10):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = np.zeros((n_per_batch, 3, 32, 32), dtype=np.uint8)
        for i in range(n_per_batch):
            data[i] = np.array(colours[i % 3], dtype=np.uint8)[:, None, None]
        batch = {"data": data.reshape(n_per_batch, -1), "labels": [i % 10 for i in range(n_per_batch)]}
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, f)


def test_mnist_from_its_idx_files_is_one_channel(tmp_path):
    write_mnist(tmp_path)
    data = load_dataset(tiny_config(data="mnist", data_root=str(tmp_path), max_images=None), torch.device("cpu"))
    assert data.images.shape == (40, 1, 16, 16)
    top, bottom = data.images[0, 0, :6].float().mean(), data.images[0, 0, -6:].float().mean()
    assert top > 250 and bottom < 5
    assert data.images[1].max() == 0
    assert data.name.startswith("mnist (40 images)")


def test_mnist_as_rgb_when_asked_and_fashion_mnist_folder(tmp_path):
    write_mnist(tmp_path, folder="FashionMNIST", n=20)
    config = tiny_config(data="fashion-mnist", data_root=str(tmp_path), max_images=None, channels=3)
    data = load_dataset(config, torch.device("cpu"))
    assert data.images.shape == (20, 3, 16, 16)


def test_cifar10_from_its_pickles(tmp_path, monkeypatch):
    import torchvision.datasets as tvd

    write_cifar10(tmp_path)
    # our files, not the real ones: only the md5 comparison is skipped
    monkeypatch.setattr(tvd.cifar, "check_integrity", lambda path, md5=None: __import__("os").path.isfile(path))
    data = load_dataset(tiny_config(data="cifar10", data_root=str(tmp_path), max_images=None), torch.device("cpu"))
    assert data.images.shape == (50, 3, 16, 16)
    assert data.images[0, :, 8, 8].tolist() == [255, 0, 0]
    assert data.images[2, :, 8, 8].tolist() == [0, 0, 255]


def test_missing_dataset_says_the_exact_command(tmp_path, capsys):
    assert main(["--data", "cifar10", "--data-root", str(tmp_path), "--headless"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"tui-gan --data cifar10 --data-root {tmp_path} --download" in err


def test_failed_download_is_a_user_error(tmp_path, monkeypatch):
    import urllib.error

    import torchvision.datasets as tvd

    def offline(self):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tvd.MNIST, "download", offline)
    config = tiny_config(data="mnist", data_root=str(tmp_path), download=True)
    with pytest.raises(UserError, match="mnist: cannot load it .*check the network"):
        load_dataset(config, torch.device("cpu"))


@pytest.mark.parametrize("spec", ["imagenet", "mnist2"])
def test_unknown_dataset_name(spec, capsys):
    assert main(["--data", spec, "--headless"]) == 2
    err = capsys.readouterr().err
    assert "not a dataset name" in err and "cifar10" in err and "Traceback" not in err


def test_headless_training_on_mnist(tmp_path):
    write_mnist(tmp_path / "data", n=64)
    code = main(["--data", "mnist", "--data-root", str(tmp_path / "data"), "--headless", "--max-steps", "2",
                 "--image-size", "16", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "16",
                 "--device", "cpu", "--run-dir", str(tmp_path / "run")])
    assert code == 0
    assert "channels = 1" in (tmp_path / "run" / "config.toml").read_text()
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
