"""TensorBoard output: the event files --tensorboard and `tui-gan export-tb` write with
TensorBoard's own classes, read back with its EventAccumulator (the tensorboard extra, which
the dev extra includes)."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tui_gan.cli import main
from tui_gan.core import events as ev
from tui_gan.core.config import TrainConfig
from tui_gan.core.history import HistoryRow
from tui_gan.core.metrics_csv import MetricsCsvReader, read_metrics
from tui_gan.core.outage import WriteWatch
from tui_gan.core.rundir import RunDir
from tui_gan.engine.metrics import MetricsCsv
from tui_gan.exports.tensorboard import EXPORT_SUFFIX, QUALITY_TAGS, SAMPLES_TAG, TRAINING_TAGS, event_files
from tui_gan.exports.tensorboard_live import TensorBoardWriter
from tui_gan.pictures.grids import save_grid

tbevents = pytest.importorskip("tui_gan.exports.tbevents")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
event_file_loader = pytest.importorskip("tensorboard.backend.event_processing.event_file_loader")

TINY = ["--image-size", "16", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "16",
        "--max-images", "224", "--device", "cpu", "--no-amp", "--quality-images", "32", "--log-every", "600"]


def accumulator(folder: Path):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def points(acc, tag: str) -> list[tuple[int, float]]:
    return [(s.step, s.value) for s in acc.Scalars(tag)]


def data_server_points(folder: Path, tag: str) -> list[tuple[int, float]]:
    """What TensorBoard's Rust data server (its default loader) shows of a tag (an image's
    value: its PNG's length): it
    ignores SessionLog START and reads the files in name order, a point at a step the tag
    has already reached dropping the tag's points from that step on (the preemption of
    tensorboard/data/server/reservoir.rs; its test in run.rs shows it across two files).
    Checked by hand against the real server (tensorboard --load_fast=true)."""
    shown: list[tuple[int, float]] = []
    for path in event_files(folder):
        for event in event_file_loader.LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == tag:
                    point = len(value.image.encoded_image_string) if value.HasField("image") else value.simple_value
                    shown = [(step, v) for step, v in shown if step < event.step] + [(event.step, point)]
    return shown


#: Half a unit of the last digit metrics.csv keeps of each column (engine/metrics.py format_row):
#: a live value differs from the file's by at most that.
CSV_ROUNDING = {"images_per_sec": 0.05, "swd": 0.005}


def assert_matches_history(acc, rows: list[HistoryRow]) -> None:
    """Each tag holds its column's finite values (a training column's only from training
    rows) at their steps, in order, equal to the float32 of metrics.csv's up to its rounding."""
    for column, tag, training in [(c, t, True) for c, t in TRAINING_TAGS] + [(c, t, False) for c, t in QUALITY_TAGS]:
        expected = [(r.step, getattr(r, column)) for r in rows
                    if (r.is_training or not training) and math.isfinite(getattr(r, column))]
        got = points(acc, tag)
        assert [step for step, _ in got] == [step for step, _ in expected], tag
        tolerance = CSV_ROUNDING.get(column, 5e-6) * 1.01
        for (step, value), (_, want) in zip(got, expected):
            assert math.isclose(value, want, rel_tol=1e-6, abs_tol=tolerance), (tag, step, value, want)


# ----------------------------------------------------------------------------- the file


def test_an_image_goes_in_as_it_is_and_a_damaged_record_is_dropped(tmp_path):
    """The grid's PNG bytes are what TensorBoard reads back, with its size; its reader
    checks the records' CRCs and drops one whose data was changed."""
    path = tmp_path / "events.out.tfevents.1"
    png = (Path(save_grid(np.random.default_rng(0).integers(0, 256, (64, 3, 16, 16), dtype=np.uint8),
                          tmp_path / "grid.png"))).read_bytes()
    with open(path, "wb") as f:
        events = tbevents.EventFile(f, 1.0, 0)
        events.add(*(tbevents.scalars_event(2.0 + step, step, [("a", step * 0.5)]) for step in range(4)))
        events.add(tbevents.image_event(9.0, 4, "img", png))
        events.add(tbevents.scalars_event(10.0, 5, [("a", 9.0)]))
    acc = accumulator(tmp_path)
    assert points(acc, "a") == [(0, 0.0), (1, 0.5), (2, 1.0), (3, 1.5), (5, 9.0)]
    (image,) = acc.Images("img")
    assert (image.step, image.width, image.height, image.encoded_image_string) == (4, 146, 146, png)
    data = bytearray(path.read_bytes())
    data[-10] ^= 1  # inside the last record's data
    path.write_bytes(bytes(data))
    assert [step for step, _ in points(accumulator(tmp_path), "a")] == [0, 1, 2, 3]


def test_a_record_cut_short_by_a_kill_leaves_the_rest_readable(tmp_path):
    """Every add writes whole records and flushes them: a process killed mid-write leaves a
    file whose earlier records TensorBoard reads."""
    path = tmp_path / "events.out.tfevents.1"
    with open(path, "wb") as f:
        events = tbevents.EventFile(f, 1.0, 0)
        for step in range(3):
            events.add(tbevents.scalars_event(2.0, step, [("a", float(step))]))
        assert len(path.read_bytes()) == f.tell()  # on disk (the OS's) before the file is closed
    path.write_bytes(path.read_bytes()[:-7])
    assert points(accumulator(tmp_path), "a") == [(0, 0.0), (1, 1.0)]


# ----------------------------------------------------------------------------- a real run


def test_a_headless_run_with_tensorboard_and_its_resume(tmp_path, capsys, monkeypatch):
    """One epoch with --tensorboard, then a resume for a second: TensorBoard shows every row
    of metrics.csv once, the quality measurements and both epoch-end grids at their steps."""
    monkeypatch.setenv("TUI_GAN_RUNTIME_DIR", str(tmp_path / "rt"))
    (tmp_path / "fast.toml").write_text("log_interval = 0.02\nprogress_interval = 0.01\n")
    run = RunDir(tmp_path / "run")
    assert main(["--config", str(tmp_path / "fast.toml"), *TINY, "--tensorboard", "--max-steps", "14",
                 "--run-dir", str(run.root)]) == 0
    assert "tensorboard = true" in run.config.read_text()
    assert main(["--resume", str(run.root), "--max-steps", "28", "--epochs", "2", "--log-every", "600"]) == 0
    out = capsys.readouterr().out
    assert out.count("TensorBoard: writing ") == 2 and "warning" not in out
    assert len(event_files(run.tensorboard)) == 2  # one file per start of the service

    metrics = MetricsCsvReader(run.metrics)
    metrics.refresh()
    rows = metrics.rows
    assert metrics.skipped == 0 and sum(r.is_training for r in rows) > 4
    acc = accumulator(run.tensorboard)
    assert_matches_history(acc, rows)
    assert [p[0] for p in points(acc, "quality/swd")] == [0, 14, 28]
    images = acc.Images(SAMPLES_TAG)
    assert [(i.step, i.width, i.height) for i in images] == [(14, 146, 146), (28, 146, 146)]
    assert [i.encoded_image_string for i in images] == [run.epoch_grid(1).read_bytes(), run.epoch_grid(2).read_bytes()]

    # export-tb of the same run: the same history, from metrics.csv alone
    assert main(["export-tb", str(run.root), "--out", str(tmp_path / "exported")]) == 0
    exported = accumulator(tmp_path / "exported")
    assert_matches_history(exported, rows)
    assert [i.encoded_image_string for i in exported.Images(SAMPLES_TAG)] == [i.encoded_image_string for i in images]


# ----------------------------------------------------------------------------- export-tb


def fake_run(root: Path) -> tuple[RunDir, list[HistoryRow]]:
    """A run directory as the engine leaves it (10 steps an epoch, 2 epochs, quality
    measured at each epoch's end), with a grid of epoch 3 from an abandoned later timeline."""
    run = RunDir(root)
    run.create(TrainConfig().to_toml())
    nan = math.nan

    def training(step: int, epoch: int) -> HistoryRow:
        return HistoryRow(step, epoch, 1.0 + step / 7, 2.0 - step / 9, 0.5 + step / 100, 0.4, 0.3, 2e-4, 1e-4,
                          100.0 + step, step * 0.1)

    rows = [HistoryRow.quality(0, 0, 2e-4, 1e-4, 0.0, 180.5, 0.25)]
    rows += [training(s, 0) for s in (3, 6, 9)] + [training(10, 1), HistoryRow.quality(10, 1, 2e-4, 1e-4, 1.0, 90.25, nan)]
    rows += [training(s, 1) for s in (13, 16, 19)] + [training(20, 2), HistoryRow.quality(20, 2, 2e-4, 1e-4, 2.0, 60.0, 0.75)]
    csv = MetricsCsv(run.metrics, rows)
    csv.close()
    rng = np.random.default_rng(1)
    for epoch in (1, 2, 3):
        save_grid(rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8), run.epoch_grid(epoch))
    return run, read_metrics(run.metrics)


def test_export_tb_writes_what_metrics_csv_says(tmp_path, capsys):
    run, rows = fake_run(tmp_path / "run")
    assert main(["export-tb", str(run.root)]) == 0
    out = capsys.readouterr().out
    assert f"{EXPORT_SUFFIX}: 11 rows" in out and "3 epoch-end grids" in out
    acc = accumulator(run.tensorboard)
    assert_matches_history(acc, rows)
    assert points(acc, "quality/diversity") == pytest.approx([(0, 0.25), (20, 0.75)])
    assert "lr/G" in acc.Tags()["scalars"] and [p[0] for p in points(acc, "lr/G")] == [3, 6, 9, 10, 13, 16, 19, 20]
    # epoch N ended at the first step logged with epoch N; epoch 3, without rows, at 3 × 10
    images = acc.Images(SAMPLES_TAG)
    assert [(i.step, i.width, i.height) for i in images] == [(10, 22, 22), (20, 22, 22), (30, 22, 22)]
    assert images[0].encoded_image_string == run.epoch_grid(1).read_bytes()


def test_export_tb_again_replaces_its_export_and_claims_every_step(tmp_path, capsys):
    """A second export replaces the first; a file --tensorboard wrote is kept, and the
    export (newer, from step 0) is what TensorBoard shows: no step twice."""
    run, rows = fake_run(tmp_path / "run")
    run.tensorboard.mkdir()
    live = run.tensorboard / "events.out.tfevents.0000000001.host.1.tui-gan"
    with open(live, "wb") as f:
        events = tbevents.EventFile(f, 1.0, 0)
        events.add(*(tbevents.scalars_event(2.0, step, [("loss/D", 99.0)]) for step in (3, 6, 25)))
    assert main(["export-tb", str(run.root)]) == 0
    first = [p for p in event_files(run.tensorboard) if p.name.endswith(EXPORT_SUFFIX)]
    # as if made in an earlier second (in the same one the new export simply takes its name)
    first[0].rename(first[0].with_name(first[0].name.replace("tfevents.", "tfevents.0000000002.x.", 1)))
    assert main(["export-tb", str(run.root)]) == 0
    files = event_files(run.tensorboard)
    assert len(files) == 2 and files[0] == live and files[1].name.endswith(EXPORT_SUFFIX)
    assert_matches_history(accumulator(run.tensorboard), rows)
    assert data_server_points(run.tensorboard, "loss/D") == points(accumulator(run.tensorboard), "loss/D")
    capsys.readouterr()


def test_export_tb_notes_what_it_cannot_place(tmp_path, capsys):
    run, _ = fake_run(tmp_path / "run")
    run.metrics.write_text(run.metrics.read_text().splitlines()[0] + "\n1,0,0.5,0.5,0.5,0.5,0.5,1e-4,1e-4,10,0.1,nan,nan\n"
                           "2,0,0.5,0.5\n")
    (run.samples / "epoch-0004.png").write_bytes(b"not a png")
    assert main(["export-tb", str(run.root)]) == 0
    out = capsys.readouterr().out
    assert "1 line(s) that are not a row" in out
    assert "epoch-0001.png: left out, metrics.csv does not say at which step epoch 1 ended" in out
    assert "1 rows (8 values), 0 epoch-end grids" in out


def test_export_tb_leaves_out_values_beyond_float32(tmp_path, capsys):
    """A loss that blew up past float32's range cannot go into TensorBoard's float field:
    it is left out, the rest is written, and no half-written file stays behind."""
    run, rows = fake_run(tmp_path / "run")
    MetricsCsv(run.metrics, [rows[1]._replace(loss_d=1e39), *rows[2:]]).close()
    assert main(["export-tb", str(run.root)]) == 0
    acc = accumulator(run.tensorboard)
    assert [step for step, _ in points(acc, "loss/D")][0] == rows[2].step  # the step of 1e39 has no loss/D
    assert points(acc, "loss/G")[0][0] == rows[1].step  # its other values are there
    assert not [p for p in run.tensorboard.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("case", ["no run", "no metrics", "not metrics", "no rows", "unwritable out"])
def test_export_tb_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case):
    run, _ = fake_run(tmp_path / "run")
    args = ["export-tb", str(run.root)]
    if case == "no run":
        args = ["export-tb", str(tmp_path)]
    elif case == "no metrics":
        run.metrics.unlink()
    elif case == "not metrics":
        run.metrics.write_bytes(b"\x89PNG\r\n")
    elif case == "no rows":
        run.metrics.write_text(run.metrics.read_text().splitlines()[0] + "\n")
    else:
        (tmp_path / "file").write_text("")
        args += ["--out", str(tmp_path / "file" / "tb")]
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("tui-gan: error: ") and len(err.strip().splitlines()) == 1, (out, err)
    assert not list(tmp_path.rglob("*tfevents*"))


def test_export_tb_imports_no_torch(tmp_path):
    """Nor TensorFlow, which TensorBoard's higher-level writer would import where installed."""
    run, _ = fake_run(tmp_path / "run")
    code = ("import sys; from tui_gan.cli import main; assert main(['export-tb', sys.argv[1]]) == 0; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'tensorflow')))")
    out = subprocess.run([sys.executable, "-c", code, str(run.root)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------- the live writer


def started(run: RunDir, step: int, history: list[HistoryRow], resumed: bool, tensorboard: bool = True) -> ev.Started:
    return ev.Started(device="cpu", preset="cpu", config={"tensorboard": tensorboard}, dataset="builtin",
                      dataset_size=100, steps_per_epoch=10, total_steps=100, run_dir=str(run.root), step=step,
                      epoch=step // 10, resumed_from="last.pt" if resumed else None, history=history, lr_g=2e-4,
                      lr_d=2e-4)


def progress(step: int, loss: float) -> ev.Progress:
    row = HistoryRow(step, step // 10, loss, loss, 0.5, 0.5, 0.5, 2e-4, 2e-4, 100.0, step * 0.1)
    return ev.Progress(step, step // 10, step % 10, 10, 100, loss, loss, 0.5, 0.5, 0.5, 100.0, None, 1.0, 2e-4, 2e-4,
                       row)


def session(run: RunDir, start: ev.Started, steps: range, loss: float, notes: list[str],
            writes: WriteWatch | None = None) -> None:
    writer = TensorBoardWriter(notes.append, writes)
    for event in (start, *(progress(s, loss) for s in steps), ev.Finished("stopped", steps[-1], 0, 1.0, 1.0, None, None)):
        writer.observe(event)
    writer.close()


def test_a_resumed_service_replaces_what_a_killed_one_logged_past_the_checkpoint(tmp_path):
    """Killed at step 25 (after epoch 2's end at step 20), resumed from step 15's checkpoint,
    its first row at step 18: the new file takes over from epoch 1's end (step 10), writing
    the history from there again, so the steps past 15 that the killed service logged, its
    epoch-2 grid included, are gone in both of TensorBoard's loaders."""
    run = RunDir(tmp_path / "run")
    run.create(TrainConfig().to_toml())
    for epoch in (1, 2):
        save_grid(np.full((4, 3, 8, 8), epoch, dtype=np.uint8), run.epoch_grid(epoch))
    notes: list[str] = []
    killed = TensorBoardWriter(notes.append)
    killed.observe(started(run, 0, [], resumed=False))
    for step in range(1, 26):
        killed.observe(progress(step, 1.0))
        if step % 10 == 0:
            killed.observe(ev.EpochEnd(step // 10, step, str(run.epoch_grid(step // 10)), "last.pt"))
    killed.close()  # (a kill leaves the same records, perhaps less a torn last one)
    history = [progress(step, 1.0).row for step in range(1, 16)]
    session(run, started(run, 15, history, resumed=True), range(18, 20), 2.0, notes)
    acc = accumulator(run.tensorboard)
    expected = [(step, 1.0) for step in range(1, 16)] + [(18, 2.0), (19, 2.0)]
    assert points(acc, "loss/D") == expected
    assert data_server_points(run.tensorboard, "loss/D") == expected
    assert [i.step for i in acc.Images(SAMPLES_TAG)] == [10]
    assert [step for step, _ in data_server_points(run.tensorboard, SAMPLES_TAG)] == [10]
    assert not [n for n in notes if "warning" in n]


def test_switched_on_at_a_resume_it_writes_the_history_first(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(TrainConfig().to_toml())
    save_grid(np.zeros((4, 3, 8, 8), dtype=np.uint8), run.epoch_grid(1))
    save_grid(np.zeros((4, 3, 8, 8), dtype=np.uint8), run.epoch_grid(2))  # past the checkpoint: left out
    history = [progress(s, 1.0).row for s in (4, 8, 10, 12)] + [HistoryRow.quality(10, 1, 1, 1, 1.0, 50.0, 0.5)]
    history.sort(key=lambda r: r.step)
    session(run, started(run, 12, history, resumed=True), range(13, 15), 2.0, [])
    acc = accumulator(run.tensorboard)
    assert points(acc, "loss/D") == [(4, 1.0), (8, 1.0), (10, 1.0), (12, 1.0), (13, 2.0), (14, 2.0)]
    assert points(acc, "quality/swd") == [(10, 50.0)]
    assert [i.step for i in acc.Images(SAMPLES_TAG)] == [10]


def test_off_unless_asked_and_a_folder_it_cannot_write_is_the_runs_outage(tmp_path):
    """A failed write is part of the run's outage (its one warning, core/outage.py), tried
    again with every record, and one line at the end says what was never written."""
    run = RunDir(tmp_path / "run")
    notes: list[str] = []
    session(run, started(run, 0, [], resumed=False, tensorboard=False), range(1, 3), 1.0, notes)
    assert not run.tensorboard.exists() and notes == []
    run.root.mkdir(parents=True, exist_ok=True)
    run.tensorboard.write_text("a file where the folder goes")
    writes = WriteWatch()
    session(run, started(run, 0, [], resumed=False), range(1, 30), 1.0, notes, writes)
    news = writes.take()
    assert [type(e) for e in news] == [ev.WritesFailing] and news[0].reason == "file exists"
    assert news[0].what == "TensorBoard records"
    assert len(notes) == 1 and notes[0].startswith("warning: TensorBoard: 31 record(s) could not be written")
    assert "(file exists)" in notes[0]


def test_an_epoch_end_whose_grid_file_is_gone_is_encoded_from_its_images(tmp_path):
    run = RunDir(tmp_path / "run")
    images = np.random.default_rng(2).integers(0, 256, (9, 3, 8, 8), dtype=np.uint8)
    writer = TensorBoardWriter(lambda line: None)
    writer.observe(started(run, 0, [], resumed=False))
    writer.observe(ev.EpochEnd(1, 10, str(run.epoch_grid(1)), "last.pt", images))
    writer.close()
    (image,) = accumulator(run.tensorboard).Images(SAMPLES_TAG)
    assert (image.step, image.width, image.height) == (10, 32, 32)
    assert struct.unpack(">II", image.encoded_image_string[16:24]) == (32, 32)


# ----------------------------------------------------------------------------- without the extra


@pytest.fixture
def without_tensorboard(monkeypatch):
    """As if the tensorboard extra were not installed: importing TensorBoard fails."""
    for name in [n for n in sys.modules if n.startswith("tensorboard.") or n == "tui_gan.exports.tbevents"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "tensorboard", None)


MISSING = "--tensorboard needs the tensorboard extra: pip install 'tui-gan[tensorboard]'"


@pytest.mark.parametrize("args", [
    ["--tensorboard", *TINY, "--run-dir", "RUN"],
    ["--config", "TOML", *TINY, "--run-dir", "RUN"],  # tensorboard = true
    ["--resume", "RUN", "--tensorboard"],
])
def test_tensorboard_without_the_extra_is_refused_before_the_run_starts(tmp_path, capsys, without_tensorboard, args):
    (tmp_path / "tb.toml").write_text("tensorboard = true\n")
    paths = {"RUN": str(tmp_path / "run"), "TOML": str(tmp_path / "tb.toml")}
    assert main(["--headless", *(paths.get(a, a) for a in args)]) == 2
    assert capsys.readouterr().err == f"tui-gan: error: {MISSING}\n"
    assert not (tmp_path / "run").exists()


def test_export_tb_without_the_extra_is_one_line_and_exit_2(tmp_path, capsys, without_tensorboard):
    run, _ = fake_run(tmp_path / "run")
    assert main(["export-tb", str(run.root)]) == 2
    assert capsys.readouterr().err == "tui-gan: error: tui-gan export-tb needs the tensorboard extra: " \
                                      "pip install 'tui-gan[tensorboard]'\n"
    assert not run.tensorboard.exists()


def test_a_service_without_the_extra_warns_once_and_trains_on(tmp_path, without_tensorboard):
    """A resumed run whose config has tensorboard on, on a machine without the extra."""
    run = RunDir(tmp_path / "run")
    notes: list[str] = []
    session(run, started(run, 0, [], resumed=True), range(1, 30), 1.0, notes)
    assert notes == [f"warning: TensorBoard: {MISSING}; the run goes on without it"]
    assert not run.tensorboard.exists()
