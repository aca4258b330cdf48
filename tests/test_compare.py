"""Comparing runs: reading metrics.csv back (also as it grows), the compared run and its
checks, the chart's alignment by images seen, ``tui-gan ls --sort swd`` and ``--compare``'s
bad input. The app's side is in test_compare_app.py."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from tui_gan.cli import main
from tui_gan.commands import app, runs
from tui_gan.commands.flags import without_flags
from tui_gan.core.comparison import ComparedRun, summarise_run
from tui_gan.core.errors import UserError
from tui_gan.core.history import COLUMNS, HistoryRow
from tui_gan.core.metrics_csv import MetricsCsvError, MetricsCsvReader, best_swd, latest_swd, read_metrics
from tui_gan.core.rundir import RunDir
from tui_gan.engine.metrics import MetricsCsv
from tui_gan.tui.widgets.overlay import Alignment, Overlay, aligned, images_unit, short_name

from .app_support import synthetic_history


def quality_row(step: int, swd: float) -> HistoryRow:
    return HistoryRow.quality(step, step // 100, 2e-4, 2e-4, step * 0.1, swd, 0.9)


def make_run(root: Path, rows: list[HistoryRow], batch_size: int = 64) -> RunDir:
    """A run directory as the engine leaves it: config.toml and metrics.csv (the engine's writer)."""
    run = RunDir(root)
    run.create(f"batch_size = {batch_size}\nepochs = 5\n")
    MetricsCsv(run.metrics, rows).close()
    return run


def close(a: HistoryRow, b: HistoryRow) -> bool:
    """Equal as metrics.csv keeps them (it rounds the statistics to 5 decimals)."""
    return all((math.isnan(x) and math.isnan(y)) or math.isclose(x, y, abs_tol=1e-4) for x, y in zip(a, b))


# ----------------------------------------------------------------------------- metrics.csv


def test_metrics_csv_reads_back_what_the_engine_wrote(tmp_path):
    rows = synthetic_history(30) + [quality_row(300, 41.5)] + synthetic_history(40)[30:]
    run = make_run(tmp_path / "run", rows)
    read = read_metrics(run.metrics)
    assert len(read) == len(rows) and all(close(a, b) for a, b in zip(read, rows))
    assert isinstance(read[0].step, int) and not read[30].is_training and read[30].swd == 41.5
    assert best_swd(read) == latest_swd(read) == 41.5 and best_swd(read[:30]) is None


def test_the_reader_follows_a_growing_file_reading_only_whole_new_lines(tmp_path):
    path = tmp_path / "metrics.csv"
    history = synthetic_history(20)
    writer = MetricsCsv(path, history[:5])
    reader = MetricsCsvReader(path)
    assert reader.refresh() and [r.step for r in reader.rows] == [r.step for r in history[:5]]
    assert not reader.refresh()  # unchanged: nothing read
    for row in history[5:8]:
        writer.append(row)
    with open(path, "a", encoding="utf-8") as f:
        f.write("250,0,0.5")  # a row being written: left for the next look
    assert reader.refresh() and len(reader.rows) == 8
    with open(path, "a", encoding="utf-8") as f:
        f.write(",0.9,0.5,0.3,0.2,0.0002,0.0002,400.0,10.0,nan,nan\r\n")
    assert reader.refresh() and [r.step for r in reader.rows][-2:] == [80, 250]
    writer.close()


def test_a_file_rewritten_by_a_resume_is_read_again_from_the_start(tmp_path):
    path = tmp_path / "metrics.csv"
    history = synthetic_history(30)
    MetricsCsv(path, history).close()
    reader = MetricsCsvReader(path)
    reader.refresh()
    # a resume from step 100 rewrites the file from the checkpoint's history, then appends:
    # longer than before, so only the changed last line read says it was rewritten
    resumed = history[:10] + [r._replace(loss_d=r.loss_d + 1) for r in history[10:35]]
    MetricsCsv(path, resumed).close()
    assert reader.refresh()
    assert len(reader.rows) == len(resumed) and all(close(a, b) for a, b in zip(reader.rows, resumed))
    MetricsCsv(path, history[:3]).close()  # shorter
    assert reader.refresh() and len(reader.rows) == 3


def test_damaged_lines_are_skipped_and_older_files_get_nan_for_missing_columns(tmp_path):
    path = tmp_path / "metrics.csv"
    old_columns = [c for c in COLUMNS if c not in ("swd", "diversity")]
    path.write_text(",".join(old_columns) + "\n10,0,0.5,1.5,0.8,0.3,0.2,0.0002,0.0002,400.0,2.0\n"
                    "garbage\n20,0,oops,1.5,0.8,0.3,0.2,0.0002,0.0002,400.0,4.0\nnan,0,1,1,1,1,1,1,1,1,1\n"
                    "30,0,0.4,1.4,0.8,0.3,0.2,0.0002,0.0002,400.0,6.0\n")
    rows = read_metrics(path)
    assert [r.step for r in rows] == [10, 30] and math.isnan(rows[0].swd)


def test_lines_the_csv_module_rejects_are_skipped_and_counted(tmp_path):
    """A field beyond the csv module's limit, a stray quote, a NUL: csv.Error, not a crash."""
    path = tmp_path / "metrics.csv"
    path.write_text("step,epoch,loss_d\n1,0,0.5\n2,0," + "x" * 200_000 + "\n\"3,0,0.5\n4,0,\x000.5\n5,0,0.25\n")
    reader = MetricsCsvReader(path)
    reader.refresh()
    assert [r.step for r in reader.rows] == [1, 5] and reader.skipped == 3


@pytest.mark.parametrize("content, why", [(None, "cannot be read"), ("a,b\n1,2\n", "no 'step' column"),
                                          (b"\xff\xfe\x00step\n", "not text")])
def test_what_is_not_a_metrics_csv_is_one_error(tmp_path, content, why):
    path = tmp_path / "metrics.csv"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(MetricsCsvError, match=why):
        read_metrics(path)


# ----------------------------------------------------------------------------- the compared run


def test_a_compared_run_has_its_history_batch_size_and_summary(tmp_path):
    run = make_run(tmp_path / "baseline", synthetic_history(10) + [quality_row(100, 30.0), quality_row(200, 25.5)],
                   batch_size=32)
    compared = ComparedRun.open(run.root)
    assert compared.name == "baseline" and compared.batch_size == 32 and len(compared.rows) == 12
    assert not compared.refresh()
    summary = summarise_run(run, "stopped")
    assert (summary.name, summary.state, summary.step, summary.best_swd) == ("baseline", "stopped", 200, 25.5)


def test_compare_rejects_what_it_cannot_draw_in_one_line(tmp_path):
    not_run = tmp_path / "photos"
    not_run.mkdir()
    no_metrics = RunDir(tmp_path / "fresh")
    no_metrics.create("batch_size = 64\n")
    broken = make_run(tmp_path / "broken", synthetic_history(3))
    broken.metrics.write_text("hello\n")
    bad_batch = make_run(tmp_path / "bad-batch", synthetic_history(3))
    bad_batch.config.write_text("batch_size = 0\n")
    cases = {tmp_path / "nope": "no such run directory", not_run: "not a run directory",
             no_metrics.root: "no metrics.csv yet", broken.root: "not a tui-gan metrics.csv",
             bad_batch.root: "batch_size = 0"}
    for path, why in cases.items():
        with pytest.raises(UserError, match=why) as caught:
            ComparedRun.open(path)
        assert "\n" not in str(caught.value) and str(caught.value).startswith(f"--compare {path}")


def test_compare_on_the_command_line_fails_before_the_app_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started = []
    monkeypatch.setattr(app, "start_service", lambda *a: started.append(a))
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # the app's path, not --headless
    baseline = make_run(tmp_path / "runs" / "baseline", synthetic_history(5))
    argv_cases = [["--compare", str(tmp_path / "nope")], ["--compare", str(tmp_path)],
                  ["--resume", str(baseline.root), "--compare", str(baseline.root)],
                  ["--headless", "--compare", str(baseline.root)]]
    baseline.last.write_bytes(b"")  # --resume checks only that the run has one, before any torch
    for argv in argv_cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("tui-gan: error: ") and err.count("\n") == 1 and "--compare" in err, err
    assert started == []
    # attach: the watched run is found first, then its comparison is checked
    monkeypatch.setattr(app, "running_run", lambda spec: RunDir(tmp_path / "runs" / "other"))
    assert main(["attach", "--compare", str(tmp_path / "nope")]) == 2
    assert "--compare" in capsys.readouterr().err


def test_the_service_gets_the_flags_without_compare():
    argv = ["--epochs", "3", "--compare", "runs/a", "--compa=runs/a", "--compile", "--data", "x"]
    assert without_flags(argv, ("--compare",)) == ["--epochs", "3", "--compile", "--data", "x"]
    assert without_flags(["--lr", "1"], ("--compare",)) == ["--lr", "1"]


# ----------------------------------------------------------------------------- alignment


def test_alignment_by_images_seen_multiplies_by_each_runs_batch_size():
    assert aligned([10, 20], 64, Alignment.STEP) == [10, 20]
    assert aligned([10, 20], 64, Alignment.IMAGES) == [640, 1280]
    assert aligned([10, 20], None, Alignment.IMAGES) == [10, 20]  # unknown batch size: steps
    assert Alignment.STEP.toggled() is Alignment.IMAGES and Alignment.IMAGES.toggled() is Alignment.STEP
    assert images_unit(5_000) == (1.0, "images seen") and images_unit(64_000) == (1e3, "images seen (k)")
    assert images_unit(3e7) == (1e6, "images seen (M)")
    assert short_name("2026-01-02_12-00-00", 10) == "…_12-00-00" and short_name("base", 10) == "base"


def test_the_overlay_splits_losses_from_measurements_and_smooths_once():
    rows = synthetic_history(6) + [quality_row(60, 33.0)]
    overlay = Overlay("base", 32, rows)
    assert overlay.steps == [10, 20, 30, 40, 50, 60] and overlay.quality_steps == [60] and overlay.swd == [33.0]
    calls = []

    def smooth(values):
        calls.append(1)
        return values

    first = overlay.smoothed(False, smooth)
    assert overlay.smoothed(False, smooth) is first and len(calls) == 2  # two losses, once
    logged = overlay.smoothed(True, smooth)
    assert logged["loss_d"][0] == pytest.approx(math.log10(rows[0].loss_d))


# ----------------------------------------------------------------------------- ls --sort swd


def test_ls_prints_each_run_as_the_folder_was_named(tmp_path, monkeypatch, capsys):
    make_run(tmp_path / "runs" / "a", synthetic_history(5))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["ls", str(tmp_path / "runs")]) == 0  # absolute: not ../runs/a
    assert capsys.readouterr().out.split()[0] == f"{tmp_path}/runs/a"
    assert main(["ls", "../runs"]) == 0  # relative: as given
    assert capsys.readouterr().out.split()[0] == "../runs/a"
    monkeypatch.chdir(tmp_path)
    assert main(["ls", "./runs/"]) == 0
    assert capsys.readouterr().out.split()[0] == "runs/a"


def test_ls_sorts_by_best_swd_with_unmeasured_runs_last(tmp_path, capsys):
    make_run(tmp_path / "a-unmeasured", synthetic_history(5))
    make_run(tmp_path / "b-worse", synthetic_history(5) + [quality_row(50, 40.0), quality_row(60, 45.0)])
    make_run(tmp_path / "c-better", synthetic_history(5) + [quality_row(50, 22.0), quality_row(60, 30.0)])
    assert main(["ls", str(tmp_path)]) == 0
    by_name = capsys.readouterr().out.splitlines()
    assert [line.split()[0].split("/")[-1] for line in by_name] == ["a-unmeasured", "b-worse", "c-better"]
    assert main(["ls", str(tmp_path), "--sort", "swd"]) == 0
    by_swd = capsys.readouterr().out.splitlines()
    assert [line.split()[0].split("/")[-1] for line in by_swd] == ["c-better", "b-worse", "a-unmeasured"]
    assert "step      60" in by_swd[0] and "SWD  30.00  best  22.00" in by_swd[0]
    assert "best " not in by_swd[2].split("a-unmeasured")[1]
    assert main(["ls", str(tmp_path), "--sort", "loss"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert runs.swd_order(None) > runs.swd_order(1e9) > runs.swd_order(3.0)


def test_without_runs_py_the_picker_lists_runs_from_their_metrics_alone(tmp_path):
    from tui_gan.tui.comparison import files_only_listing

    make_run(tmp_path / "b", synthetic_history(4) + [quality_row(40, 33.0)])
    make_run(tmp_path / "a", synthetic_history(2))
    (tmp_path / "notes").mkdir()
    listed = files_only_listing(tmp_path)
    assert [(r.name, r.state, r.step, r.best_swd) for r in listed] == [("a", "", 20, None), ("b", "", 40, 33.0)]
    assert files_only_listing(tmp_path / "nope") == []
