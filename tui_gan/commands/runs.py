"""``tui-gan ls``, ``stop`` and ``logs``: runs seen from outside, by their files and, for a
running one, by asking its service. No torch here: every command answers at once.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..core import events as ev
from ..core.errors import ArgumentParser, UserError
from ..core.history import HistoryRow
from ..core.metrics_csv import best_swd, history_or_empty, latest_swd
from ..core.report import Report, format_duration
from ..core.rundir import DEFAULT_RUNS, RunDir
from ..service.client import RemoteRun, connect_to_run
from ..service.runfiles import ServiceRecord, is_held
from .runstate import list_runs, own_run, running_run

SORT_ORDERS = ("name", "swd")


def run_ls(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="tui-gan ls", description="List the runs: state, step and epoch, speed, quality, age.")
    p.add_argument("dir", nargs="?", default=DEFAULT_RUNS, metavar="DIR", help=f"where the runs are (default {DEFAULT_RUNS}/)")
    p.add_argument("--sort", choices=SORT_ORDERS, default="name",
                   help="name (default: for runs/<timestamp>, the order they were started), or swd: the best "
                        "quality first (each run's lowest SWD; runs never measured last)")
    args = p.parse_args(argv)
    root = Path(args.dir).expanduser()
    if not root.is_dir():
        raise UserError(f"{args.dir}: no such folder; pass the folder your runs are in (default {DEFAULT_RUNS}/)")
    runs = [(run, state, record, history_or_empty(run.metrics)) for run, (state, record) in list_runs(root)]
    if not runs:
        print(f"no runs in {args.dir}")
        return 0
    if args.sort == "swd":
        runs.sort(key=lambda entry: swd_order(best_swd(entry[3])))  # stable: ties keep the name order
    for run, state, record, history in runs:
        print(ls_line(run, state, record, history, shown=as_named(run, root)))
    return 0


def as_named(run: RunDir, folder: Path) -> str:
    """``run``'s path through ``folder`` as the user spelled it: absolute under an absolute
    folder, relative under a relative one (run_dirs gives resolved paths, and a path made
    relative to the working directory turns /abs/runs into ../../abs/runs)."""
    return str(folder / os.path.relpath(run.root, folder.resolve()))


def swd_order(best: float | None) -> tuple[bool, float]:
    """The sort key of ``ls --sort swd``: the lowest best SWD first, runs never measured last."""
    return (best is None, best if best is not None else 0.0)


def ls_line(run: RunDir, state: str, record: ServiceRecord | None, history: list[HistoryRow] | None = None,
            shown: str | None = None) -> str:
    """One run's line; ``history`` is its metrics.csv (read here when not given); ``shown``:
    the run's path as printed (default its root)."""
    shown = str(run.root) if shown is None else shown
    history = history_or_empty(run.metrics) if history is None else history
    step, epoch, speed, swd = (record.step, record.epoch, None, None) if record else (None, None, None, None)
    note = saved_note(record) if record is not None and state in ("finished", "stopped") else ""
    if state == "running":
        step = epoch = None  # unknown unless it answers
        try:
            conn, status = connect_to_run(run, "status", timeout=2.0)
            conn.close()
            state = str(status["state"])
            step, epoch, speed, swd = status["step"], status["epoch"], status["images_per_sec"], status["swd"]
            failing = status.get("writes_failing")
            note = f"  (writes failing: {failing})" if failing else ""
        except (UserError, KeyError, ValueError):
            pass  # it does not answer now: still running, numbers unknown
    if state == "lost" or step is None:  # a lost run's record stopped at the start: metrics.csv knows more
        step, epoch = (history[-1].step, history[-1].epoch) if history else (None, None)
    swd = latest_swd(history) if swd is None else swd
    best = best_swd(history)
    started = record.started if record else run.config.stat().st_mtime if run.config.exists() else time.time()
    settings = run_settings(run)
    parts = [f"{state:<8}", f"step {step:>7}" if step is not None else "step       ?",
             f"{epoch_text(settings, state, epoch):<11}",
             f"{speed:>6,.0f} img/s" if speed else " " * 12,
             f"SWD {swd:6.2f}" if swd is not None else " " * 10,
             f"best {best:6.2f}" if best is not None else " " * 11,
             f"{format_duration(time.time() - started):>6} ago"]
    classes = conditional_column(settings)
    if classes:
        parts.append(classes)
    lost_and_saved = state == "lost" and run.checkpoint_in() is not None
    resume = f"  (resume: tui-gan --resume {shown})" if lost_and_saved else ""
    return f"{shown}  " + "  ".join(parts) + resume + note


def saved_note(record: ServiceRecord) -> str:
    """A run that ended without its final checkpoint (a full disk): the one it has."""
    if not record.save_failed:
        return ""
    if record.checkpoint is None:
        return f"  (no checkpoint: final save failed, {record.save_failed})"
    return f"  ({Path(record.checkpoint).name} from step {record.checkpoint_step}: final save failed)"


def run_settings(run: RunDir) -> dict:
    """The run's config.toml as read; empty where it cannot be read (the columns that need
    it then say less)."""
    from ..core.config import TrainConfig

    try:
        return TrainConfig.read_toml(run.config)
    except Exception:  # noqa: BLE001 - an unreadable config.toml, whatever the way
        return {}


def conditional_column(settings: dict) -> str:
    """A conditional run's column: 'conditional, 10 classes'; '' for the tutorial's GAN (or
    a config.toml that cannot be read)."""
    names = settings.get("class_names")
    if not settings.get("conditional"):
        return ""
    return f"conditional, {len(names)} classes" if isinstance(names, list) else "conditional"


def epoch_text(settings: dict, state: str, epoch: int | None) -> str:
    """'epoch 3/5' while it trains (the epoch under way, as the app shows it), else the
    epochs completed, '2/5 epochs'; the total from the run's ``settings`` where they have it."""
    if epoch is None:
        return "epoch ?"
    try:
        total = f"/{int(settings['epochs'])}"
    except Exception:  # noqa: BLE001 - no count, or not a number: the count alone
        total = ""
    return f"epoch {epoch + 1}{total}" if state in ("running", "paused", "loading") else f"{epoch}{total} epochs"


def run_stop(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="tui-gan stop", description="Save a running run's last.pt and stop it.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a running run's directory (see 'tui-gan ls')")
    run = running_run(p.parse_args(argv).run_dir)
    conn, _ = connect_to_run(run)
    remote = RemoteRun(conn, run)
    print(f"stopping {run.root}: saving checkpoints/last.pt…", flush=True)
    for event in remote.run():
        if isinstance(event, ev.Attached):
            remote.control.stop("tui-gan stop")
        elif isinstance(event, ev.Finished) and event.save_failed:
            print(f"tui-gan: {Report.unsaved(event).text}", file=sys.stderr)
            return 1
        elif isinstance(event, ev.Finished):
            print(f"stopped at step {event.step}; saved {event.checkpoint_path}")
            return 0
        elif isinstance(event, ev.Error):
            print(f"tui-gan: the run failed: {event.message}", file=sys.stderr)
            return 1
        elif isinstance(event, ev.Disconnected):
            print(f"tui-gan: {event.message}", file=sys.stderr)
            return 1
    return 1


def run_logs(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="tui-gan logs", description="A run's log lines (what --headless prints).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (see 'tui-gan ls')")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines while the run trains")
    args = p.parse_args(argv)
    run = own_run(args.run_dir)
    if not run.log.is_file():
        raise UserError(f"{args.run_dir}: no train.log (it was started by an older tui-gan)")
    with open(run.log, encoding="utf-8", errors="replace") as log:
        sys.stdout.write(log.read())
        sys.stdout.flush()
        while args.follow:
            line = log.readline()
            if line:
                sys.stdout.write(line)
                sys.stdout.flush()
            elif is_held(run):
                time.sleep(0.2)
            else:
                sys.stdout.write(log.read())
                break
    return 0
