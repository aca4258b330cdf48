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
    assert lines[0].endswith("engine with --amp") == bool(extra)
    assert "tutorial loop" in lines[1] and "img/s" in lines[1]
    assert "tui-gan engine" in lines[2] and lines[3].split()[0] == "ratio" and lines[3].endswith("x")


def test_bench_bad_input_is_one_line(capsys):
    assert main(["bench", "--images", "10", "--batch-size", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fewer than one batch" in err[0]
