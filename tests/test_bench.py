"""`tui-gan bench` runs both loops (a smoke test: two steps, no timing asserted)."""

from __future__ import annotations

import pytest

from tui_gan.cli import main


@pytest.mark.parametrize("extra", [[], ["--amp"]])
def test_bench_runs_both_loops_and_prints_the_ratio(capsys, extra):
    code = main(["bench", "--image-size", "16", "--batch-size", "8", "--ngf", "8", "--ndf", "8",
                 "--steps", "2", "--warmup", "1", "--images", "64", "--device", "cpu", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0].startswith("tui-gan bench · cpu · 16x16 · batch 8")
    assert lines[0].endswith("engine with --amp") == bool(extra) and "data in memory" in lines[0]
    assert "tutorial loop" in lines[1] and "img/s" in lines[1]
    assert "tui-gan engine" in lines[2] and lines[3].split()[0] == "ratio" and lines[3].endswith("x")


def test_bench_bad_input_is_one_line(capsys):
    assert main(["bench", "--images", "10", "--batch-size", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fewer than one batch" in err[0]


def test_bench_on_a_folder_of_jpegs(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "faces" / "all"  # the tutorial's layout: one class subfolder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (30, 20, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    code = main(["bench", "--data", str(tmp_path / "faces"), "--image-size", "16", "--batch-size", "8",
                 "--ngf", "8", "--ndf", "8", "--steps", "2", "--warmup", "1", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"data {tmp_path / 'faces'}" in out and "ratio" in out
