from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tui_gan.core import events as ev
from tui_gan.core.errors import UserError
from tui_gan.data.builtin import GLYPHS, GlyphStyle, builtin_count, make_builtin, make_glyphs
from tui_gan.data.imagefiles import decode_files, load_image, scan_folder
from tui_gan.data.loader import epoch_permutation, load_dataset

from .conftest import tiny_config


def test_builtin_is_deterministic_and_varied():
    a = make_builtin(64, 32, seed=1)
    b = make_builtin(64, 32, seed=1)
    c = make_builtin(64, 32, seed=2)
    assert a.shape == (64, 3, 32, 32) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # images differ from one another and each has a glyph in contrast to its background
    assert len({x.tobytes() for x in a}) == 64
    assert (a.reshape(64, -1).std(axis=1) > 10).all()


def test_the_builtin_set_draws_upright_centred_digits_and_a_broader_style_all_glyphs():
    images, labels = make_glyphs(400, 32, seed=3)
    assert np.array_equal(images, make_builtin(400, 32, seed=3))
    assert set(labels) == set(range(10))  # digits, all of them
    broad, broad_labels = make_glyphs(400, 32, 3, GlyphStyle(GLYPHS, (0.45, 0.95), 30, (0.3, 0.7), 0.75, 1.0, (0.25, 0.15)))
    assert set(broad_labels) == set(range(36)) and not np.array_equal(broad, images)
    # a glyph drawn bolder covers more of its image (same draws otherwise: seed, style)
    plain = make_glyphs(50, 32, 7, GlyphStyle(bold=(0.0, 0.0)))[0].astype(int)
    bold = make_glyphs(50, 32, 7, GlyphStyle(bold=(0.0, 1.0)))[0].astype(int)
    corner = np.abs(plain - plain[:, :, :1, :1]).sum(axis=(1, 2, 3))
    assert (np.abs(bold - bold[:, :, :1, :1]).sum(axis=(1, 2, 3)) > corner).mean() > 0.9


def test_builtin_grayscale_and_memory_budget():
    g = make_builtin(8, 16, seed=0, channels=1)
    assert g.shape == (8, 1, 16, 16)
    assert builtin_count(64, 3) == 10_000
    assert builtin_count(256, 3) * 256 * 256 * 3 <= 512 * 1024 * 1024


def _write_images(folder, n, size=(40, 30), mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).convert(mode).save(folder / f"img{i}.png")


def test_folder_scan_finds_nested_and_flat_images(tmp_path):
    _write_images(tmp_path / "a", 2)
    _write_images(tmp_path / "b" / "c", 3)
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / "UPPER.JPG").write_bytes(b"x")
    files = scan_folder(tmp_path)
    assert len(files) == 6
    assert files == sorted(files)


@pytest.mark.parametrize("setup,message", [("missing", "no such file"), ("empty", "no image files"), ("file", "not a folder")])
def test_folder_errors(tmp_path, setup, message):
    target = tmp_path / "data"
    if setup == "empty":
        target.mkdir()
    elif setup == "file":
        target.write_text("x")
    with pytest.raises(UserError, match=message):
        scan_folder(target)


def test_decode_resizes_centre_crops_and_skips_unreadable(tmp_path):
    _write_images(tmp_path, 3, size=(64, 32))
    (tmp_path / "broken.png").write_bytes(b"not really a png")
    files = scan_folder(tmp_path)
    arr, skipped, channels = decode_files(files, 16, 3)
    assert arr.shape == (3, 3, 16, 16) and channels == 3
    assert [p.endswith("broken.png") for p in skipped] == [True]


def test_load_image_modes(tmp_path):
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(tmp_path / "clear.png")
    Image.new("L", (20, 20), 77).save(tmp_path / "gray.png")
    clear = load_image(tmp_path / "clear.png", 16, 3)
    assert clear.shape == (3, 16, 16) and (clear == 255).all()  # composited onto white
    gray = load_image(tmp_path / "gray.png", 16, 1)
    assert gray.shape == (1, 16, 16) and (gray == 77).all()


def _write_every_mode(folder) -> None:
    """One 20x20 image per Pillow mode users meet, each a known grey or colour."""
    import numpy as np

    Image.new("RGB", (20, 20), (200, 100, 50)).save(folder / "rgb.jpg", quality=100)
    Image.new("RGBA", (20, 20), (0, 0, 255, 255)).save(folder / "rgba.PNG")
    Image.new("L", (20, 20), 77).save(folder / "gray.png")
    Image.new("LA", (20, 20), (77, 0)).save(folder / "gray-alpha.png")  # fully transparent: white
    Image.fromarray(np.full((20, 20), 32896, dtype=np.uint16)).save(folder / "gray16.png")  # ~50%
    Image.fromarray(np.full((20, 20), 0.25, dtype=np.float32), "F").save(folder / "float.tiff")
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=100)  # red
    Image.new("1", (20, 20), 1).save(folder / "bilevel.bmp")
    pal = Image.new("P", (20, 20), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.save(folder / "palette.gif")
    Image.new("RGB", (20, 20), (10, 10, 10)).save(folder / "dark.webp", lossless=True)


@pytest.mark.parametrize(
    "name,channels,expected",
    [
        ("rgb.jpg", 3, (200, 100, 50)),
        ("rgba.PNG", 3, (0, 0, 255)),
        ("gray.png", 1, (77,)),
        ("gray.png", 3, (77, 77, 77)),
        ("gray-alpha.png", 1, (255,)),
        ("gray16.png", 1, (128,)),
        ("float.tiff", 1, (64,)),
        ("cmyk.jpg", 3, (255, 0, 0)),
        ("bilevel.bmp", 1, (255,)),
        ("palette.gif", 3, (10, 200, 30)),
        ("dark.webp", 3, (10, 10, 10)),
    ],
)
def test_every_image_mode_converts_to_the_model_channels(tmp_path, name, channels, expected):
    _write_every_mode(tmp_path)
    arr = load_image(tmp_path / name, 16, channels)
    assert arr.shape == (channels, 16, 16) and arr.dtype.name == "uint8"
    for c, value in enumerate(expected):
        assert abs(int(arr[c].mean()) - value) <= 2, (name, c, arr[c].mean())


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 20, 20))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turns it 90 degrees clockwise
    img.save(tmp_path / "photo.jpg", exif=exif, quality=100)
    arr = load_image(tmp_path / "photo.jpg", 16, 1)  # the upright image is 20x40: top half white
    assert arr[0, :4].mean() > 200 and arr[0, -4:].mean() < 50


def test_channels_default_to_1_only_when_every_image_is_grayscale(tmp_path):
    gray, mixed = tmp_path / "gray", tmp_path / "mixed"
    for folder in (gray, mixed):
        folder.mkdir()
        Image.new("L", (20, 20), 10).save(folder / "a.png")
        Image.new("I;16", (20, 20)).save(folder / "b.png")
        Image.new("1", (20, 20)).save(folder / "c.bmp")
    Image.new("RGB", (20, 20), (1, 2, 3)).save(mixed / "d.png")
    assert decode_files(scan_folder(gray), 16, None)[0].shape == (3, 1, 16, 16)
    arr, _, channels = decode_files(scan_folder(mixed), 16, None)
    assert arr.shape == (4, 3, 16, 16) and channels == 3
    assert decode_files(scan_folder(gray), 16, 3)[0].shape == (3, 3, 16, 16)  # asked for: RGB


def test_folder_with_no_readable_image_is_a_user_error(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    with pytest.raises(UserError, match="none of the 2 image files could be read"):
        load_dataset(tiny_config(data=str(tmp_path)), torch.device("cpu"))


def test_dataset_batches_are_in_range(tmp_path):
    data = load_dataset(tiny_config(max_images=32), torch.device("cpu"))
    assert len(data) == 32
    x = data.batch(torch.arange(4))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1


def test_batch_size_larger_than_dataset(tmp_path):
    with pytest.raises(UserError, match="larger than the dataset"):
        load_dataset(tiny_config(max_images=8), torch.device("cpu"))


def test_epoch_permutation_depends_on_seed_and_epoch_only():
    a = epoch_permutation(1, 0, 100, torch.device("cpu"))
    assert torch.equal(a, epoch_permutation(1, 0, 100, torch.device("cpu")))
    assert not torch.equal(a, epoch_permutation(1, 1, 100, torch.device("cpu")))
    assert sorted(a.tolist()) == list(range(100))


def test_messy_folder(tmp_path):
    """Nested folders, odd extension cases, junk files: the images train, the junk is named."""
    import io

    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (30, 20), (0, 200, 0)).save(tmp_path / "a" / "b" / "deep.JPEG")
    Image.new("RGB", (20, 30), (200, 0, 0)).save(tmp_path / "top.Png")
    Image.new("P", (20, 20)).save(tmp_path / "a" / "anim.GIF")
    (tmp_path / "README.txt").write_text("not an image, ignored silently")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "._top.Png").write_bytes(b"\0\5\26\7")  # macOS resource fork: hidden, ignored
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("I am not a PNG")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, "JPEG")
    (tmp_path / "truncated.jpg").write_bytes(buf.getvalue()[:200])
    files = scan_folder(tmp_path)
    assert sorted(p.name for p in files) == sorted(
        ["deep.JPEG", "top.Png", "anim.GIF", "empty.jpg", "text.png", "truncated.jpg"]
    )
    arr, skipped, channels = decode_files(files, 16, None)
    assert arr.shape == (3, 3, 16, 16) and channels == 3
    assert sorted(Path(p).name for p in skipped) == ["empty.jpg", "text.png", "truncated.jpg"]


def test_skipped_files_are_one_warning_with_count_and_names(tmp_path, make_engine):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(20):
        Image.new("RGB", (20, 20), (i, 0, 0)).save(folder / f"{i}.png")
    for i in range(5):
        (folder / f"bad{i}.jpg").write_bytes(b"")
    engine = make_engine(data=str(folder), max_images=None, max_steps=1)
    warnings = [e.message for e in engine.run() if isinstance(e, ev.EngineWarning)]
    assert len(warnings) == 1
    assert warnings[0].startswith("skipped 5 unreadable file(s): bad0.jpg, bad1.jpg, bad2.jpg")


def test_what_fits_in_memory(monkeypatch):
    from tui_gan.data import loader as data_module

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (10 * 2**30, 80 * 2**30))
    assert data_module.fits_in_memory(5 * 2**30, torch.device("cuda:0"))[0]
    fits, limit = data_module.fits_in_memory(7 * 2**30, torch.device("cuda:0"))
    assert not fits and limit == "60% of cuda:0's free memory (10.0 GiB)"
    monkeypatch.setattr(data_module, "host_available_memory", lambda: 4 * 2**30)
    assert data_module.fits_in_memory(2 * 2**30, torch.device("cpu"))[0]
    assert not data_module.fits_in_memory(3 * 2**30, torch.device("cpu"))[0]
    monkeypatch.setattr(data_module, "host_available_memory", lambda: None)  # unknown: in memory
    assert data_module.fits_in_memory(3 * 2**40, torch.device("cpu"))[0]


def test_host_available_memory_is_read():
    from tui_gan.data.loader import host_available_memory

    available = host_available_memory()
    assert available is None or available > 2**20


@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_batches_equal_the_in_memory_ones(workers):
    from tui_gan.data.loader import StreamedDataset, load_dataset

    config = tiny_config(max_images=100)
    memory = load_dataset(config, torch.device("cpu"))
    notes = []
    streamed = load_dataset(tiny_config(max_images=100, stream=True), torch.device("cpu"), notes=notes)
    assert isinstance(streamed, StreamedDataset) and isinstance(streamed.array, np.memmap)
    assert not notes and streamed.name.endswith("streamed from the decode cache by 1 worker(s)")
    streamed.workers = workers
    for epoch, start in ((0, 0), (3, 4)):  # a whole epoch, and the rest of one after a resume
        a = list(memory.epoch_batches(7, epoch, start, 16))
        b = list(streamed.epoch_batches(7, epoch, start, 16))
        assert len(a) == len(b) == 6 - start
        assert all(torch.equal(x, y) for x, y in zip(a, b))
        assert b[0].dtype == torch.float32 and b[0].min() >= -1 and b[0].max() <= 1


def test_streaming_without_the_cache_streams_from_memory():
    from tui_gan.data.loader import StreamedDataset, load_dataset

    notes = []
    data = load_dataset(tiny_config(max_images=64, stream=True, cache=False), torch.device("cpu"), notes=notes)
    assert isinstance(data, StreamedDataset) and "from memory (--no-cache)" in data.name
    data.workers = 1
    assert len(list(data.epoch_batches(0, 0, 0, 16))) == 4


def test_a_dataset_too_large_for_memory_streams_and_trains_as_in_memory(make_engine, monkeypatch):
    from tui_gan.data import loader as data_module

    memory = make_engine("memory", max_steps=8)
    list(memory.run())
    monkeypatch.setattr(data_module, "host_available_memory", lambda: 100_000)  # 224 images: 172 KB
    monkeypatch.setattr(data_module, "stream_workers", lambda: 1)
    streamed = make_engine("streamed", max_steps=8)
    warnings = [e.message for e in streamed.run() if isinstance(e, ev.EngineWarning)]
    assert len(warnings) == 1 and "exceed 50% of the host's available memory" in warnings[0]
    assert "streaming it from the decode cache, which is slower" in warnings[0]
    assert streamed.data.streamed and streamed.step == 8
    for a, b in zip(memory.gan.netG.state_dict().values(), streamed.gan.netG.state_dict().values()):
        assert torch.equal(a, b)  # the same batches in the same order


def test_streamed_resume_is_exact(make_engine):
    from tui_gan.engine.checkpoint import load_checkpoint
    from tui_gan.engine.engine import Engine

    from .conftest import EXPLICIT

    straight = make_engine("straight", max_steps=20, stream=True)
    list(straight.run())
    first = make_engine("split", max_steps=10, stream=True)
    list(first.run())
    second = Engine(tiny_config(max_steps=20, stream=True), first.run_dir, explicit=EXPLICIT,
                    resume=load_checkpoint(first.run_dir))
    list(second.run())
    assert second.step == 20 and second.epoch == 1  # crossed an epoch boundary mid-stream
    for a, b in zip(straight.gan.netD.state_dict().values(), second.gan.netD.state_dict().values()):
        assert torch.equal(a, b)