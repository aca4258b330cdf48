"""Labels for --conditional: class folders, torchvision targets, the built-in digits; their
order, their alignment with the decoded rows and the batches, the cache, --max-images, and
every input that cannot train a conditional GAN."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from tui_gan import __version__
from tui_gan.core.errors import UserError
from tui_gan.core.rundir import decode_cache_dir
from tui_gan.data import loader as data_module
from tui_gan.data import named
from tui_gan.data.builtin import BUILTIN_STYLE, BUILTIN_VERSION, make_glyphs
from tui_gan.data.cache import cache_key, folder_fingerprint
from tui_gan.data.imagefiles import scan_folder
from tui_gan.data.labelled import class_names_in_advance
from tui_gan.data.labels import stratified
from tui_gan.data.loader import StreamedDataset, load_dataset

from .conftest import spy, tiny_config
from .test_datasets import write_mnist

CPU = torch.device("cpu")


def shade(label: int) -> int:
    """The grey level of every pixel of an image of class ``label``: the label, readable back."""
    return 20 + 50 * label


def read_labels(images: torch.Tensor) -> list[int]:
    """The classes that ``shade`` wrote into uint8 images or float batches in [-1, 1]."""
    if images.dtype != torch.uint8:
        images = ((images + 1) * 127.5).round()
    return [round((float(v) - 20) / 50) for v in images[:, 0, 8, 8]]


def class_tree(root, sizes: dict[str, int], deep: bool = False):
    """``sizes[name]`` images of each class folder, each shaded by its class's sorted index."""
    for label, name in enumerate(sorted(sizes)):
        folder = root / name / ("deeper" if deep else "")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(sizes[name]):
            Image.new("RGB", (8, 8), (shade(label),) * 3).save(folder / f"{i:03d}.png")
    return root


def conditional(folder, **overrides):
    return tiny_config(**{"data": str(folder), "conditional": True, "max_images": None, "batch_size": 4, **overrides})


def one_line_error(config, match: str) -> str:
    with pytest.raises(UserError, match=match) as error:
        load_dataset(config, CPU)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_classes_sorted_as_imagefolder_and_deep_files_take_their_first_folder(tmp_path):
    import torchvision

    root = class_tree(tmp_path / "data", {"10": 2, "2": 3, "b": 1, "a": 4})
    (root / "a" / "x" / "y").mkdir(parents=True)
    Image.new("RGB", (8, 8), (shade(2),) * 3).save(root / "a" / "x" / "y" / "deep.png")
    data = load_dataset(conditional(root), CPU)
    assert data.class_names == ["10", "2", "a", "b"] == torchvision.datasets.ImageFolder(str(root)).classes
    assert data.labels.dtype == torch.int64 and data.labels.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 3]
    assert read_labels(data.images) == data.labels.tolist()
    assert data.name.endswith("(11 images, 4 classes)")


def test_labels_stay_aligned_when_unreadable_files_are_skipped(tmp_path):
    root = class_tree(tmp_path, {"a": 3, "b": 3, "c": 2})
    (root / "a" / "001.png").write_bytes(b"broken")  # between a's readable images
    (root / "b" / "000.png").write_bytes(b"")
    data = load_dataset(conditional(root, cache=False), CPU)
    assert len(data.skipped) == 2 and len(data) == 6
    assert data.labels.tolist() == [0, 0, 1, 1, 2, 2] == read_labels(data.images)


def labelled_data(tmp_path, stream: bool = False):
    root = class_tree(tmp_path / "data", {"a": 9, "b": 5, "c": 7, "d": 3})
    return load_dataset(conditional(root, stream=stream), CPU)


@pytest.mark.parametrize("rows", [None, slice(1, None, 2)])
def test_labelled_batches_are_epoch_batches_with_their_classes(tmp_path, rows):
    data = labelled_data(tmp_path)
    for epoch, start in [(0, 0), (3, 2)]:
        plain = list(data.epoch_batches(5, epoch, start, 4, rows))
        labelled = list(data.epoch_labelled_batches(5, epoch, start, 4, rows))
        assert len(labelled) == len(plain) == 6 - start
        for batch, (images, labels) in zip(plain, labelled):
            assert torch.equal(batch, images) and labels.dtype == torch.int64
            assert labels.tolist() == read_labels(images) and len(labels) == (2 if rows else 4)
    firsts = [labels for _, labels in data.epoch_labelled_batches(5, 0, 0, 4)]
    assert torch.cat(firsts).tolist() != sorted(torch.cat(firsts).tolist())  # shuffled, not in file order


@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_labelled_batches_equal_the_in_memory_ones(tmp_path, workers):
    memory = labelled_data(tmp_path)
    streamed = labelled_data(tmp_path, stream=True)
    assert isinstance(streamed, StreamedDataset) and isinstance(streamed.labels, np.memmap)
    assert streamed.class_names == memory.class_names
    streamed.workers = workers
    for rows in (None, slice(0, 2)):
        a = list(memory.epoch_labelled_batches(7, 1, 1, 4, rows))
        b = list(streamed.epoch_labelled_batches(7, 1, 1, 4, rows))
        assert len(a) == len(b) == 5
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert torch.equal(streamed.subset_labels(10, 3), memory.subset_labels(10, 3))


@pytest.mark.parametrize("stream", [False, True])
def test_subset_labels_are_the_subsets_classes(stream):
    data = load_dataset(tiny_config(conditional=True, max_images=64, stream=stream), CPU)
    images, labels = data.subset(12, 4), data.subset_labels(12, 4)
    if stream:
        every, every_labels = torch.from_numpy(np.array(data.array)), torch.from_numpy(np.array(data.labels))
    else:
        every, every_labels = data.images, data.labels
    # each glyph image is unique: find the subset's rows by their pixels
    rows = [next(i for i in range(len(every)) if torch.equal(every[i], image)) for image in images]
    assert labels.dtype == torch.int64 and labels.tolist() == every_labels[rows].tolist()
    assert len(set(labels.tolist())) > 3


def test_a_cache_hit_gives_the_same_labels_and_the_unconditional_key_is_unchanged(tmp_path, monkeypatch):
    root = class_tree(tmp_path / "data", {"a": 5, "b": 3})
    decodes = spy(monkeypatch, data_module, "decode_files")  # the unconditional path's decoder
    plain = load_dataset(tiny_config(data=str(root), max_images=None, batch_size=4), CPU)
    assert plain.labels is None and plain.class_names is None and len(decodes) == 1
    # the key main computes for a folder, part for part: a run without --conditional reuses its entries
    key = cache_key(kind="folder", root=str(root), files=folder_fingerprint(str(root), scan_folder(root)),
                    size=16, channels=None)
    assert [p.name for p in decode_cache_dir().iterdir()] == [key]

    first = load_dataset(conditional(root), CPU)
    entry = decode_cache_dir() / cache_key(kind="folder", root=str(root), files=folder_fingerprint(
        str(root), scan_folder(root)), size=16, channels=None, labelled=True)
    assert sorted(p.name for p in entry.iterdir()) == ["images.npy", "labels.npy", "meta.json"]
    from tui_gan.data import labelled as labelled_module

    labelled_decodes = spy(monkeypatch, labelled_module, "decode_files")
    second = load_dataset(conditional(root), CPU)
    assert not labelled_decodes and torch.equal(first.labels, second.labels)
    assert second.class_names == ["a", "b"] and torch.equal(first.images, second.images)

    (entry / "labels.npy").unlink()  # an entry without the labels it should have: built again
    third = load_dataset(conditional(root), CPU)
    assert len(labelled_decodes) == 1 and torch.equal(third.labels, first.labels)


def test_the_builtin_sets_labels_are_its_digits_and_its_unconditional_key_is_unchanged(tmp_path):
    data = load_dataset(tiny_config(conditional=True, max_images=64), CPU)
    _, glyphs = make_glyphs(64, 16, 999, BUILTIN_STYLE)
    assert data.class_names == list("0123456789") and data.labels.tolist() == glyphs.tolist()
    assert class_names_in_advance(tiny_config(conditional=True)) == data.class_names
    load_dataset(tiny_config(max_images=64), CPU)
    main_key = cache_key(kind="builtin", n=64, size=16, seed=999, channels=3, code=__version__, images=BUILTIN_VERSION)
    assert main_key in [p.name for p in decode_cache_dir().iterdir()]
    assert len(list(decode_cache_dir().iterdir())) == 2


def test_stratified_selection_keeps_every_class_in_proportion():
    labels = np.array([0] * 12 + [1] * 4 + [2] * 2 + [3] * 1, dtype=np.int64)
    rows = stratified(labels, 7, list("abcd"), "x")
    # one each, and the 3 left shared by the sizes beyond it (11, 3, 1, 0): 2.2, 0.6, 0.2, 0, the largest remainder to b
    assert np.bincount(labels[rows]).tolist() == [3, 2, 1, 1]
    assert rows.tolist() == [0, 1, 2, 12, 13, 16, 18]  # each class's first images, in order
    for n in range(4, 20):
        counts = np.bincount(labels[stratified(labels, n, list("abcd"), "x")], minlength=4)
        assert counts.sum() == n and counts.min() >= 1 and (counts <= np.bincount(labels)).all()
    with pytest.raises(UserError, match="--max-images 3 is fewer than the 4 classes"):
        stratified(labels, 3, list("abcd"), "x")


def test_max_images_on_a_class_folder_keeps_every_class(tmp_path):
    root = class_tree(tmp_path, {"big": 12, "mid": 6, "tiny": 1})
    data = load_dataset(conditional(root, max_images=8), CPU)
    # one each, and 5 by the sizes beyond it (11, 5, 0): 3.44, 1.56, 0 -> 3, 2 (the larger remainder), 0
    assert data.labels.tolist() == [0] * 4 + [1] * 3 + [2] and read_labels(data.images) == data.labels.tolist()
    plain = load_dataset(tiny_config(data=str(root), max_images=8, batch_size=4), CPU)
    assert read_labels(plain.images) == [0] * 8  # without --conditional: the first 8 files, as before


def test_mnist_labels_and_max_images_of_every_class(tmp_path):
    write_mnist(tmp_path, n=40)  # label i % 10; even images' top half white
    import torchvision

    config = tiny_config(data="mnist", data_root=str(tmp_path), conditional=True, max_images=None, batch_size=4)
    data = load_dataset(config, CPU)
    assert data.class_names == torchvision.datasets.MNIST.classes
    assert data.labels.tolist() == [i % 10 for i in range(40)]
    assert data.images[0, 0, :6].float().mean() > 250 and data.images[1].max() == 0  # rows unchanged
    few = load_dataset(dataclasses.replace(config, max_images=20), CPU)
    assert few.labels.tolist() == [i % 10 for i in range(20)]  # two of each: rows 0-19, in order
    assert class_names_in_advance(config) is None


def write_stl10_train(root, n=6):
    base = root / "stl10_binary"
    base.mkdir(parents=True)
    images = np.zeros((n, 3, 96, 96), dtype=np.uint8)
    images[:, 0] = (np.arange(n) * 40)[:, None, None]
    images.tofile(base / "train_X.bin")
    (np.arange(n, dtype=np.uint8) % 3 + 1).tofile(base / "train_y.bin")  # STL10 counts from 1
    (base / "class_names.txt").write_text("airplane\nbird\ncar\n")
    for other in ("unlabeled_X.bin", "test_X.bin", "test_y.bin"):
        (base / other).write_bytes(b"")


def test_stl10_reads_its_labelled_train_split(tmp_path, monkeypatch):
    import os

    import torchvision.datasets as tvd

    write_stl10_train(tmp_path)
    monkeypatch.setattr(tvd.stl10, "check_integrity", lambda path, md5=None: os.path.isfile(path))
    assert named.dataset_fingerprint("stl10", str(tmp_path), conditional=True) != named.dataset_fingerprint(
        "stl10", str(tmp_path))
    config = tiny_config(data="stl10", data_root=str(tmp_path), conditional=True, max_images=None, batch_size=2)
    data = load_dataset(config, CPU)
    assert data.class_names == ["airplane", "bird", "car"] and data.labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.images[:, 0, 8, 8].tolist() == [0, 40, 80, 120, 160, 200]
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink()
    named.check_available("stl10", str(tmp_path), False, conditional=True)  # the train split is there
    with pytest.raises(UserError, match="no local copy"):
        named.check_available("stl10", str(tmp_path), False)


def test_a_resumed_run_needs_the_same_classes_and_the_config_is_not_changed(tmp_path):
    root = class_tree(tmp_path, {"a": 2, "b": 2, "c": 2})
    config = conditional(root, class_names=["a", "b", "c"])
    assert load_dataset(config, CPU).class_names == ["a", "b", "c"]
    message = one_line_error(conditional(root, class_names=list("abcd")), "the checkpoint has 4 classes")
    assert message.endswith("has 3: missing d; a resumed run needs the classes it started with")
    one_line_error(conditional(root, class_names=["c", "b", "a"]), "the same names in another order")
    fresh = conditional(root)
    load_dataset(fresh, CPU)
    assert fresh.class_names is None
    builtin = tiny_config(conditional=True, max_images=64, class_names=[str(i) for i in range(9)])
    assert one_line_error(builtin, "has 10: new 9")


def test_images_beside_the_class_folders_are_left_out_with_a_note(tmp_path):
    root = class_tree(tmp_path, {"a": 3, "b": 3})
    Image.new("RGB", (8, 8), (255, 255, 255)).save(root / "cover.png")
    Image.new("RGB", (8, 8), (255, 255, 255)).save(root / "extra.png")
    notes: list[str] = []
    data = load_dataset(conditional(root), CPU, notes=notes)
    assert len(data) == 6 and data.labels.tolist() == read_labels(data.images)
    assert notes == [f"--conditional: 2 image(s) directly in {root} belong to no class and are left out "
                     "(first: cover.png); move them into a class folder to use them"]


def test_class_names_in_advance_of_a_folder_are_the_loaded_ones(tmp_path):
    root = class_tree(tmp_path, {"x": 2, "10": 1, "2": 1}, deep=True)
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("no images: not a class")
    (root / ".hidden").mkdir()
    Image.new("RGB", (8, 8)).save(root / ".hidden" / "a.png")
    assert class_names_in_advance(conditional(root)) == ["10", "2", "x"]
    assert load_dataset(conditional(root), CPU).class_names == ["10", "2", "x"]
    assert class_names_in_advance(tiny_config(data=str(root))) is None
    with pytest.raises(UserError, match="needs two or more classes, and it has one"):
        class_names_in_advance(conditional(class_tree(tmp_path / "one", {"only": 2})))


def test_a_flat_folder_says_how_to_arrange_it(tmp_path):
    for i in range(4):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.png")
    message = one_line_error(conditional(tmp_path), "every image is directly in the folder")
    assert f"put each class's images in a subfolder: {tmp_path}/CLASS/image.png" in message
    with pytest.raises(UserError, match="every image is directly in the folder"):
        class_names_in_advance(conditional(tmp_path))


def test_a_single_class_is_refused(tmp_path):
    one_line_error(conditional(class_tree(tmp_path, {"cats": 4})), r"two or more classes, and it has one \(cats\)")


def test_a_class_without_a_readable_image_is_named(tmp_path):
    root = class_tree(tmp_path, {"a": 3, "b": 3})
    (root / "broken").mkdir()
    (root / "broken" / "x.png").write_bytes(b"not a png")
    one_line_error(conditional(root), "class broken has no image left to train on")


def test_max_images_below_the_classes_is_refused(tmp_path):
    one_line_error(conditional(class_tree(tmp_path, {"a": 3, "b": 3, "c": 3}), max_images=2),
                   "--max-images 2 is fewer than the 3 classes")


def test_celeba_has_attributes_not_classes(tmp_path):
    config = tiny_config(data="celeba", data_root=str(tmp_path), conditional=True)
    message = one_line_error(config, "40 yes/no attributes")
    assert "put each class's images in a subfolder (FOLDER/CLASS/image.jpg) and pass --data FOLDER" in message
    # the check that a command line can make at once says so too, even before a download
    with pytest.raises(UserError, match="40 yes/no attributes"):
        named.check_available("celeba", str(tmp_path), True, conditional=True)


def test_a_named_dataset_without_targets_is_refused(tmp_path, monkeypatch):
    write_mnist(tmp_path, n=20)
    monkeypatch.setitem(named.DATASETS, "mnist", dataclasses.replace(named.DATASETS["mnist"], targets="missing"))
    one_line_error(tiny_config(data="mnist", data_root=str(tmp_path), conditional=True, max_images=None),
                   "has no class labels")
