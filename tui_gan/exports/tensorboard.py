"""The run in TensorBoard: the tag of each number, the metric history and the epoch-end
grids as events, and ``tui-gan export-tb`` (tensorboard_live.py writes them as a run trains).

Tags: ``loss/D``, ``loss/G``; ``verdict/D(x)``, ``verdict/D(G(z1))``, ``verdict/D(G(z2))``
(D's mean verdicts on real images, on the fakes before its update and after it);
``lr/G``, ``lr/D``; ``speed/images_per_sec``; ``quality/swd``, ``quality/diversity``; and
the image ``samples/epoch_end``. The step of every point is the run's global step.

How the files of one folder combine: TensorBoard reads them in name order, and each name
begins with the Unix time it was started at. Each file begins with a SessionLog START at
the step it takes over from, after which TensorBoard's Python loader drops what earlier
files logged at that step and later; its Rust data server (the default) drops a tag's
points from any step it sees again. So a file that starts with a point of every tag at
that step wins from there on in both: a service resumed from a checkpoint writes the
history again from the last epoch's end before it (tensorboard_live.py), so what an
earlier, killed service logged past the checkpoint is dropped, and an export starts at 0
with the whole of metrics.csv.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ArgumentParser, UserError
from ..core.history import HistoryRow
from ..core.metrics_csv import MetricsCsvError, MetricsCsvReader
from ..core.rundir import RunDir
from . import event_file_module

if TYPE_CHECKING:
    from tensorboard.compat.proto.event_pb2 import Event

#: HistoryRow columns of a training row -> tags.
TRAINING_TAGS = (
    ("loss_d", "loss/D"), ("loss_g", "loss/G"),
    ("d_x", "verdict/D(x)"), ("d_g_z1", "verdict/D(G(z1))"), ("d_g_z2", "verdict/D(G(z2))"),
    ("lr_g", "lr/G"), ("lr_d", "lr/D"), ("images_per_sec", "speed/images_per_sec"),
)
#: Columns of a quality measurement's row -> tags.
QUALITY_TAGS = (("swd", "quality/swd"), ("diversity", "quality/diversity"))
SAMPLES_TAG = "samples/epoch_end"

#: What ends the name of an event file export-tb wrote (it replaces them; never others).
EXPORT_SUFFIX = ".tui-gan-export"


FLOAT32_MAX = 3.4028234663852886e38


def scalars_of(row: HistoryRow) -> list[tuple[str, float]]:
    """The row's finite values under their tags: a training row's statistics, learning
    rates and speed; a quality row's SWD and diversity (its learning rates are left out, so
    a quality row says the same whether it came from metrics.csv or a Quality event)."""
    pairs = (TRAINING_TAGS if row.is_training else ()) + QUALITY_TAGS
    values = [(tag, float(getattr(row, column))) for column, tag in pairs]
    # TensorBoard keeps float32: a value beyond its range (a loss that blew up) would read as infinite
    return [(tag, value) for tag, value in values if math.isfinite(value) and abs(value) <= FLOAT32_MAX]


def wall_times(rows: list[HistoryRow], end: float) -> list[float]:
    """A wall time per row for rows logged before this process: the run's training clock
    (elapsed_s, which leaves out pauses and the time between sessions) with the last row at
    ``end``, so TensorBoard's "relative" axis shows training time."""
    last = next((r.elapsed_s for r in reversed(rows) if math.isfinite(r.elapsed_s)), 0.0)
    return [end - (last - r.elapsed_s) if math.isfinite(r.elapsed_s) else end for r in rows]


def epoch_steps(rows: list[HistoryRow], epochs: list[int]) -> dict[int, int]:
    """The step at which each of ``epochs`` ended, from the history: the engine closes a row
    (and measures) right as an epoch ends, after counting the epoch, so epoch N's end is the
    first step of the rows with epoch N. An epoch without rows (a grid left from a run
    resumed from an earlier snapshot, say) gets N times the steps per epoch, which that rule
    gives for any other epoch; one that cannot be placed is left out."""
    first: dict[int, int] = {}
    for row in rows:
        if row.epoch >= 1 and row.step < first.get(row.epoch, row.step + 1):
            first[row.epoch] = row.step
    per_epoch = next((step // epoch for epoch, step in sorted(first.items()) if step % epoch == 0), None)
    steps = {}
    for epoch in epochs:
        if epoch in first:
            steps[epoch] = first[epoch]
        elif per_epoch:
            steps[epoch] = epoch * per_epoch
    return steps


@dataclass
class Written:
    """What went into an event file."""

    rows: int = 0
    scalars: int = 0
    images: int = 0
    notes: list[str] = field(default_factory=list)
    """Why something was left out, one line each."""


def grid_event(path: Path, step: int, wall_time: float) -> Event:
    """An epoch-end grid PNG as an image event. OSError or ValueError when it cannot be
    read as a PNG."""
    from .tbevents import image_event  # (TensorBoard: the caller has imported it with event_file_module)

    return image_event(wall_time, step, SAMPLES_TAG, path.read_bytes())


def history_events(rows: list[HistoryRow], grids: list[tuple[int, Path]], end: float,
                   written: Written) -> Iterator[Event]:
    """The history's scalars and the epoch-end grids (``RunDir.epoch_grids()``) as events
    in step order, counted in ``written``; a grid that cannot be placed or read is noted."""
    from .tbevents import scalars_event  # (as in grid_event)

    walls = wall_times(rows, end)
    steps = epoch_steps(rows, [epoch for epoch, _ in grids])
    first_wall: dict[int, float] = {}
    for row, wall in zip(rows, walls):
        first_wall.setdefault(row.step, wall)
    pending = []
    for epoch, path in grids:
        if epoch not in steps:
            written.notes.append(f"{path.name}: left out, metrics.csv does not say at which step epoch {epoch} ended")
        else:
            pending.append((steps[epoch], path))
    pending.sort(reverse=True)
    for row, wall in zip(rows, walls):
        while pending and pending[-1][0] <= row.step:
            yield from _grid(*pending.pop(), first_wall, written)
        values = scalars_of(row)
        if values:
            written.rows += 1
            written.scalars += len(values)
            yield scalars_event(wall, row.step, values)
    while pending:
        yield from _grid(*pending.pop(), first_wall, written)


def _grid(step: int, path: Path, first_wall: dict[int, float], written: Written) -> Iterator[Event]:
    try:
        wall = first_wall.get(step) or path.stat().st_mtime
        event = grid_event(path, step, wall)
    except (OSError, ValueError) as exc:
        written.notes.append(f"{path.name}: left out, not readable as a PNG ({getattr(exc, 'strerror', None) or exc})")
        return
    written.images += 1
    yield event


def event_file_name(started: float, tail: str) -> str:
    """TensorBoard's naming (events.out.tfevents.<time>.<host>...): any name with 'tfevents'
    in it is read, in name order; the time is zero-padded, to the microsecond, so that order
    is the time's (two services started in one second: the pid in ``tail`` must not decide)."""
    return f"events.out.tfevents.{int(started):010d}.{int(started % 1 * 1e6):06d}.{socket.gethostname()}{tail}"


def event_files(folder: Path) -> list[Path]:
    """The event files in ``folder`` (none when it does not exist)."""
    try:
        return sorted(p for p in folder.iterdir() if "tfevents" in p.name and p.is_file())
    except OSError:
        return []


# ----------------------------------------------------------------------------- export-tb


def export_tensorboard(run_spec: str | Path, out: str | Path | None = None) -> tuple[Path, Written]:
    """``tui-gan export-tb``: the run's metrics.csv and samples/epoch-*.png as one event
    file in ``out`` (default RUN/tensorboard). It replaces the earlier exports there (files
    ending in EXPORT_SUFFIX) and keeps every other file, such as those --tensorboard wrote:
    it starts at step 0, so TensorBoard shows its data in their place. UserError without
    the tensorboard extra, for a folder that is not a run, a run without metrics, or an
    output that cannot be written."""
    tb = event_file_module("tui-gan export-tb")
    run = RunDir(Path(run_spec).expanduser())
    if not run.root.is_dir() or not run.is_run():
        raise UserError(f"{run_spec}: not a run directory (no config.toml or service.json); see 'tui-gan ls'")
    if not run.metrics.exists():
        raise UserError(f"{run_spec}: no metrics.csv yet (the run has not trained a step); nothing to export")
    metrics = MetricsCsvReader(run.metrics)
    try:
        metrics.refresh()
    except MetricsCsvError as exc:
        raise UserError(f"{exc}; nothing was exported") from None
    rows, bad = metrics.rows, metrics.skipped
    if not rows:
        raise UserError(f"{run.metrics} has no rows yet; export again once the run has logged some")
    folder = Path(out).expanduser() if out is not None else run.tensorboard
    written = Written()
    if bad:
        written.notes.append(f"metrics.csv: {bad} line(s) that are not a row were left out")
    now = time.time()
    target = folder / event_file_name(now, EXPORT_SUFFIX)
    # written under a name TensorBoard ignores, renamed when complete
    partial = folder / f".export-{os.getpid()}.partial"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        earlier = [p for p in event_files(folder) if p.name.endswith(EXPORT_SUFFIX)]
        with open(partial, "wb") as f:
            events = tb.EventFile(f, now, 0)
            for event in history_events(rows, run.epoch_grids(), run.metrics.stat().st_mtime, written):
                events.add(event)
        os.replace(partial, target)
        for path in earlier:
            if path != target:
                path.unlink(missing_ok=True)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            partial.unlink()  # nothing half-written is left, whatever stopped it
        if not isinstance(exc, OSError):
            raise
        raise UserError(f"cannot write the event file in {folder} ({exc.strerror or exc}); "
                        "pass --out with a writable folder") from None
    return target, written


def export_tb_command(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="tui-gan export-tb",
                       description="Write a run's metrics.csv and epoch-end grids as a TensorBoard event file "
                                   "(for runs trained without --tensorboard). Running it again replaces its "
                                   "earlier export; the files --tensorboard wrote are kept.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (its metrics.csv and samples/epoch-*.png)")
    p.add_argument("--out", metavar="DIR", help="the folder to write, one TensorBoard run (default RUN_DIR/tensorboard)")
    args = p.parse_args(argv)
    path, written = export_tensorboard(args.run_dir, args.out)
    for note in written.notes:
        print(f"note: {note}")
    print(f"{path}: {written.rows} rows ({written.scalars} values), {written.images} epoch-end grids; "
          f"view with: tensorboard --logdir {path.parent}")
    return 0
