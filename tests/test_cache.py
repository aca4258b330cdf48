"""The decode cache (hit, miss, invalidation) and decoding on every core."""

from __future__ import annotations

import os
import threading

import numpy as np
import torch
from PIL import Image

from tui_gan.core.rundir import decode_cache_dir as cache_dir
from tui_gan.data import loader as data_module
from tui_gan.data.imagefiles import decode_files, scan_folder
from tui_gan.data.loader import load_dataset

from .conftest import tiny_config


def _folder(tmp_path, n=20):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (24, 24), (i * 10, 0, 255 - i * 10)).save(folder / f"{i:03d}.png")
    (folder / "broken.jpg").write_bytes(b"nope")
    return folder


def _count_decodes(monkeypatch):
    calls = []
    real = data_module.decode_files

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(data_module, "decode_files", counting)
    return calls


def test_second_load_is_a_hit_and_identical(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    calls = _count_decodes(monkeypatch)
    config = tiny_config(data=str(folder), max_images=None)
    first = load_dataset(config, torch.device("cpu"))
    second = load_dataset(config, torch.device("cpu"))
    assert len(calls) == 1
    assert torch.equal(first.images, second.images)
    assert second.skipped == first.skipped and second.skipped[0].endswith("broken.jpg")
    (entry,) = [p for p in cache_dir().iterdir()]  # one entry, no temporary folder left
    assert sorted(f.name for f in entry.iterdir()) == ["images.npy", "meta.json"]


def test_changed_added_or_removed_file_invalidates(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    calls = _count_decodes(monkeypatch)
    config = tiny_config(data=str(folder), max_images=None)
    load_dataset(config, torch.device("cpu"))
    Image.new("RGB", (24, 24), (1, 2, 3)).save(folder / "005.png")  # same name, new content
    st = (folder / "005.png").stat()
    os.utime(folder / "005.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = load_dataset(config, torch.device("cpu"))
    assert len(calls) == 2
    assert changed.images[5, :, 0, 0].tolist() == [1, 2, 3]
    (folder / "new.png").write_bytes((folder / "001.png").read_bytes())
    assert len(load_dataset(config, torch.device("cpu"))) == 21 and len(calls) == 3
    (folder / "new.png").unlink()
    load_dataset(config, torch.device("cpu"))  # back to the earlier contents: that entry again
    assert len(calls) == 3


def test_size_and_channels_are_part_of_the_key(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    calls = _count_decodes(monkeypatch)
    load_dataset(tiny_config(data=str(folder), max_images=None), torch.device("cpu"))
    assert load_dataset(tiny_config(data=str(folder), max_images=None, channels=1), torch.device("cpu")).channels == 1
    assert load_dataset(tiny_config(data=str(folder), max_images=None, image_size=32), torch.device("cpu")).images.shape[-1] == 32
    assert len(calls) == 3


def test_no_cache_and_a_torn_entry(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    calls = _count_decodes(monkeypatch)
    load_dataset(tiny_config(data=str(folder), max_images=None, cache=False), torch.device("cpu"))
    assert not cache_dir().exists() or not list(cache_dir().iterdir())
    config = tiny_config(data=str(folder), max_images=None)
    load_dataset(config, torch.device("cpu"))
    images = next(cache_dir().glob("*/images.npy"))
    images.write_bytes(images.read_bytes()[:100])  # torn: decoded again, not an error
    assert len(load_dataset(config, torch.device("cpu"))) == 20
    assert len(calls) == 3
    (images.parent / "meta.json").write_text("{")  # so is a torn meta.json
    assert len(load_dataset(config, torch.device("cpu"))) == 20
    assert len(calls) == 4


def test_an_unwritable_cache_decodes_into_memory(tmp_path, monkeypatch):
    folder = _folder(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("TUI_GAN_CACHE_DIR", str(blocker / "cache"))  # cannot be created
    data = load_dataset(tiny_config(data=str(folder), max_images=None), torch.device("cpu"))
    assert len(data) == 20


def test_entries_are_memory_mapped_and_decoding_writes_to_disk(tmp_path):
    from tui_gan.data.cache import Scratch, cached

    folder = _folder(tmp_path)
    (folder / "grey.png").unlink(missing_ok=True)
    files = scan_folder(folder)
    in_memory = decode_files(files, 16, None)
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir()
    on_disk = decode_files(files, 16, None, scratch=Scratch(scratch_dir))
    assert isinstance(on_disk[0], np.memmap)  # compacted (a file was skipped) into a second file
    assert np.array_equal(in_memory[0], on_disk[0]) and in_memory[1:] == on_disk[1:]
    built = []
    images, skipped, channels = cached("k", lambda scratch: (built.append(1), decode_files(files, 16, None, scratch=scratch))[1])
    assert isinstance(images, np.memmap) and np.array_equal(images, in_memory[0])
    images2, _, _ = cached("k", lambda scratch: built.append(2))
    assert built == [1] and np.array_equal(images2, in_memory[0])
    assert not list(cache_dir().glob("*.tmp-*"))  # the build folder was renamed into place


def test_grayscale_folder_is_compacted_to_one_channel_on_disk(tmp_path):
    from tui_gan.data.cache import Scratch

    folder = tmp_path / "grey"
    folder.mkdir()
    for i in range(5):
        Image.new("L", (20, 20), i * 40).save(folder / f"{i}.png")
    scratch_dir = tmp_path / "scratch"
    scratch_dir.mkdir()
    images, skipped, channels = decode_files(scan_folder(folder), 16, None, scratch=Scratch(scratch_dir))
    assert channels == 1 and images.shape == (5, 1, 16, 16) and not skipped
    assert [int(images[i, 0, 0, 0]) for i in range(5)] == [0, 40, 80, 120, 160]


def test_builtin_data_is_cached_too(monkeypatch):
    calls = []
    real = data_module.make_builtin
    monkeypatch.setattr(data_module, "make_builtin", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    a = load_dataset(tiny_config(max_images=64), torch.device("cpu"))
    b = load_dataset(tiny_config(max_images=64), torch.device("cpu"))
    assert len(calls) == 1 and torch.equal(a.images, b.images)


def test_parallel_decode_matches_serial_and_reports_progress(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(300):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "zero.png").write_bytes(b"")
    files = scan_folder(folder)
    serial = decode_files(files, 16, None, workers=1)
    seen = []
    import tui_gan.data.imagefiles as imagefiles

    old = imagefiles.PARALLEL_MIN_FILES
    imagefiles.PARALLEL_MIN_FILES = 100
    try:
        parallel = decode_files(files, 16, None, progress=lambda d, t: seen.append((d, t)), workers=2)
    finally:
        imagefiles.PARALLEL_MIN_FILES = old
    assert np.array_equal(serial[0], parallel[0]) and serial[1:] == parallel[1:]
    assert parallel[0].shape == (300, 3, 16, 16) and parallel[1][0].endswith("zero.png")
    assert seen[-1] == (301, 301) and len(seen) >= 3


def test_headless_shows_decode_progress():
    import io

    from tui_gan.core import events as ev
    from tui_gan.service.printer import Printer

    out = io.StringIO()
    printer = Printer([out], log_every=0.0)
    for done in (0, 5000, 10000):
        printer.handle(ev.Loading("reading /data/faces", done, 10000))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("reading /data/faces…")
    assert lines[-1] == "reading /data/faces… 100% (10,000/10,000)"


def test_a_stop_during_a_parallel_decode_drops_the_rest(tmp_path, monkeypatch):
    import pytest

    import tui_gan.data.imagefiles as imagefiles

    folder = tmp_path / "stop"
    folder.mkdir()
    for i in range(40):
        Image.new("RGB", (20, 20)).save(folder / f"{i}.png")
    decoded = []
    stopped = threading.Event()
    real = imagefiles._decode_chunk

    def decode(chunk, size, channels):
        # every chunk but the first waits for the stop, so a busy machine cannot decode them
        # all before it comes: what runs after it is what the decode failed to drop
        if decoded:
            stopped.wait(10)
        decoded.append(len(chunk))
        return real(chunk, size, channels)

    monkeypatch.setattr(imagefiles, "_decode_chunk", decode)
    monkeypatch.setattr(imagefiles, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(imagefiles, "CHUNK", 2)

    def stop(done, total):
        stopped.set()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        decode_files(scan_folder(folder), 16, 3, progress=stop, workers=2)
    assert sum(decoded) < 40


def test_a_cached_dataset_goes_to_a_gpu_without_torchs_read_only_warning():
    """The entry is mapped read-only, and torch.from_numpy warns about a slice of it ('The
    given NumPy array is not writable'), once in every GPU run. The copy to the device goes
    through a buffer of its own instead, never the whole entry at once. 'meta' stands in for
    the GPU: every device but the CPU takes that path."""
    import warnings

    config = tiny_config(max_images=40)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not writable")
        for _ in range(2):  # building the entry, then a hit: both load the memory-mapped entry
            data = load_dataset(config, torch.device("meta"))
            assert data.images.device.type == "meta" and tuple(data.images.shape) == (40, 3, 16, 16)
    assert isinstance(load_dataset(config, torch.device("cpu")).images, torch.Tensor)
