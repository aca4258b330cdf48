"""The progression GIF: epoch-end grids of a run, from the app's key and `tui-gan gif`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tui_gan.cli import main
from tui_gan.core.errors import UserError
from tui_gan.core.rundir import RunDir
from tui_gan.pictures.grids import save_grid
from tui_gan.pictures.progression import make_gif


def _run_with_epochs(tmp_path, epochs=(1, 2, 10)):
    run = tmp_path / "run"
    for epoch in epochs:
        images = np.full((4, 3, 8, 8), epoch * 20, dtype=np.uint8)
        save_grid(images, run / "samples" / f"epoch-{epoch:04d}.png")
    save_grid(np.zeros((4, 3, 8, 8), dtype=np.uint8), run / "samples" / "final-step99.png")  # not an epoch grid
    return run


def test_gif_has_one_captioned_frame_per_epoch_in_order(tmp_path):
    run = _run_with_epochs(tmp_path)
    assert [e for e, _ in RunDir(run).epoch_grids()] == [1, 2, 10]
    path = make_gif(run, frame_ms=300)
    assert path == run / "samples" / "progression.gif"
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.info["loop"] == 0
        reds = []
        durations = []
        for i in range(3):
            gif.seek(i)
            frame = np.asarray(gif.convert("RGB"))
            reds.append(int(frame[5, 5, 0]))  # inside the first tile
            durations.append(gif.info["duration"])
            assert frame.shape[0] == 22 + 14  # the grid (2 rows of 8 px, 2 px gaps) plus the caption
        assert reds == [20, 40, 200] and durations == [300, 300, 2000]  # the last frame is held


def test_gif_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="no such run directory"):
        make_gif(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no epoch grids yet"):
        make_gif(tmp_path / "empty")


def test_gif_command(tmp_path, capsys):
    run = _run_with_epochs(tmp_path, (1, 2))
    out = tmp_path / "elsewhere" / "p.gif"
    assert main(["gif", str(run), "--out", str(out)]) == 0
    assert f"{out} (2 epochs)" in capsys.readouterr().out
    assert out.is_file()
    assert main(["gif", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tui-gan: error: ") and "no such run directory" in err[0]


def test_a_resumed_run_brings_back_its_epoch_samples(make_engine):
    from tui_gan.core import events as ev
    from tui_gan.engine.checkpoint import load_checkpoint
    from tui_gan.engine.engine import Engine

    from .conftest import EXPLICIT, tiny_config

    first = make_engine(epochs=2)
    ends = [e for e in first.run() if isinstance(e, ev.EpochEnd)]
    resumed = Engine(tiny_config(epochs=3), first.run_dir, explicit=EXPLICIT, resume=load_checkpoint(first.run_dir))
    started = next(e for e in resumed.run() if isinstance(e, ev.Started))
    assert [epoch for epoch, _ in started.progression] == [1, 2]
    for (_, images), end in zip(started.progression, ends):
        assert np.array_equal(images, end.images.numpy())  # PNG is lossless: the same samples
