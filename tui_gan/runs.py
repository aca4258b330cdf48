"""Runs as the user sees them: start one in a training service and watch it, attach to one,
list them, stop one, read one's log. No torch here: every command answers at once.

The model: a run lives in a training service, a process of its own (``tui-gan --headless
--serve``, in a session of its own, its output in the run's train.log). The app is a window
onto it: ``d`` closes the window and the training goes on; a dropped SSH session does the
same; ``q`` stops the run (saving last.pt first) and closes the window.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .core import events as ev
from .core.comparison import ComparedRun, RunSummary, summarise_run
from .core.errors import ArgumentParser, UserError
from .core.history import HistoryRow
from .core.metrics_csv import best_swd, history_or_empty, latest_swd
from .core.report import format_duration
from .core.rundir import DEFAULT_RUNS, RunDir, run_dirs
from .service.client import RemoteRun, connect_to_run, wait_for_service
from .service.runfiles import ServiceRecord, check_not_running, is_held
from .tui.terminal_graphics import add_graphics_flag, start_choosing

# ----------------------------------------------------------------------------- state of a run


def run_state(run: RunDir) -> tuple[str, ServiceRecord | None]:
    """running (a live service holds the run), finished, stopped, failed, or lost (its
    record says running, nobody holds it: the service died without a word)."""
    held = is_held(run)  # before the record: a service writes its outcome, then lets go
    record = ServiceRecord.read(run)
    if held:
        return "running", record
    if record is None:
        return ("stopped" if run.checkpoint_in() else "unknown"), None
    return ("lost" if record.state == "running" else record.state), record


def not_running_error(run: RunDir, state: str, record: ServiceRecord | None) -> UserError:
    """Why nothing can attach to (or stop) ``run``, and what to do instead."""
    root = run.root
    at = f" at step {record.step}" if record else ""
    resume = f"tui-gan --resume {root}"
    if state == "finished":
        return UserError(f"{root} has finished{at}; see its samples with 'tui-gan gif {root}', "
                         f"or train it further with '{resume} --epochs N'")
    if state == "lost":
        step = last_logged(run)[0]
        at = f" after step {step}" if step else ""
        if run.checkpoint_in() is None:
            return UserError(f"{root} was lost: its training service died{at} (killed?) before its first "
                             "checkpoint; start it again")
        return UserError(f"{root} was lost: its training service died{at} (killed?); resume it from its last "
                         f"checkpoint: {resume}")
    if state == "failed":
        why = f": {record.message}" if record and record.message else ""
        return UserError(f"{root} failed{why}; see 'tui-gan logs {root}'")
    return UserError(f"{root} is not running (stopped{at}); continue it with: {resume}")


def running_run(spec: str | None) -> RunDir:
    """The run a command acts on: ``spec``, or the most recently started running run."""
    if spec is None:
        running = [(record.started, run) for run, (state, record) in list_runs(Path(DEFAULT_RUNS))
                   if state == "running" and record is not None]
        if not running:
            raise UserError(f"no run is being trained under {DEFAULT_RUNS}/; start one with 'tui-gan', "
                            "or name a run directory (see 'tui-gan ls')")
        return max(running, key=lambda pair: pair[0])[1]
    run = own_run(spec)
    state, record = run_state(run)
    if state != "running":
        raise not_running_error(run, state, record)
    return run


def own_run(spec: str) -> RunDir:
    """``spec`` as a run directory of this user's (UserError otherwise)."""
    run = RunDir(Path(spec).expanduser().resolve())
    try:
        owner = run.root.stat().st_uid
    except OSError:
        raise UserError(f"{spec}: no such run directory; see 'tui-gan ls'") from None
    if owner != os.getuid():
        raise UserError(f"{spec} belongs to another user (uid {owner}); tui-gan only works on your own runs")
    if not run.root.is_dir() or not run.is_run():
        raise UserError(f"{spec}: not a run directory (no config.toml or service.json); see 'tui-gan ls'")
    return run


def list_runs(root: Path) -> list[tuple[RunDir, tuple[str, ServiceRecord | None]]]:
    return [(run, run_state(run)) for run in run_dirs(root)]


# ----------------------------------------------------------------------------- the app


def start_service(argv: list[str], run: RunDir) -> subprocess.Popen:
    """Start ``tui-gan ARGV --headless --serve`` for ``run``: a fresh interpreter (never a
    fork of this one), in a session of its own so a hang-up of this terminal never reaches
    it, its output appended to the run's train.log."""
    check_not_running(run)
    run.check_writable()
    with open(run.log, "a", encoding="utf-8") as log:
        return subprocess.Popen(
            # --run-dir last: it wins over the user's (same folder, but absolute)
            [sys.executable, "-m", "tui_gan", *argv, "--headless", "--serve", "--run-dir", str(run.root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            close_fds=True)


def run_app(argv: list[str], run: RunDir, compare_spec: str | None = None, graphics: str = "auto") -> int:
    """A new run (or a resumed one) in a service, and the app attached to it, drawing the
    run of ``--compare`` beside it: a viewer's choice, so the service does not get the flag."""
    compare = compared_run(compare_spec, run)
    choosing = start_choosing(graphics)  # a bad --graphics fails before a service starts
    try:
        process = start_service(without_flags(argv, ("--compare",)), run)
    except BaseException:
        choosing.cancel()
        raise
    return watch(lambda leaving: wait_for_service(run, process, leaving), run, compare, choosing)


def without_flags(argv: list[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` (parsed already) without each of ``flags`` and its value: ``--flag value``,
    ``--flag=value``, or an abbreviation argparse took for the flag (a prefix of it: a prefix
    shared with another flag is ambiguous, which argparse refuses, so none is here)."""
    out, i = [], 0
    while i < len(argv):
        name, equals, _ = argv[i].partition("=")
        if name.startswith("--") and len(name) > 2 and any(flag.startswith(name) for flag in flags):
            i += 1 if equals else 2
        else:
            out.append(argv[i])
            i += 1
    return out


def watch(connect: Any, run: RunDir, compare: ComparedRun | None = None, choosing: Any = None) -> int:
    """The app on a service's run; ``connect(leaving)`` (in the app's worker) returns a
    RemoteRun, or gives up waiting once the Event ``leaving`` is set. ``choosing``: the
    graphics decision under way (terminal_graphics.start_choosing), its probe answered
    while Textual loads."""
    try:
        from .tui.app import TuiGanApp
        from .tui.terminal_graphics import hand_over

        graphics = choosing.result() if choosing is not None else None
    except BaseException:
        if choosing is not None:
            choosing.cancel()
        raise
    if graphics is not None:
        hand_over(graphics)
    app = TuiGanApp(lambda: connect(app.leaving), run_name=run.root.name, compare=compare,
                    list_runs=run_summaries, graphics=graphics)
    app.run()
    if app.detached:
        print(f"detached: {run.root} goes on training. Come back with: tui-gan attach {run.root}")
    return app.return_code or 0


def run_attach(argv: list[str]) -> int:
    p = argparse_parser("attach", "Open the app on a running run: its history so far, then live.")
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR",
                   help=f"a run directory (default: the newest running run under {DEFAULT_RUNS}/)")
    p.add_argument("--compare", metavar="RUN_DIR", help="draw another run's losses and SWD on the charts")
    add_graphics_flag(p)
    args = p.parse_args(argv)
    run = running_run(args.run_dir)
    compare = compared_run(args.compare, run)

    def connect(_leaving: Any) -> RemoteRun:
        conn, _ = connect_to_run(run)
        return RemoteRun(conn, run)

    return watch(connect, run, compare, start_choosing(args.graphics or "auto"))


def compared_run(spec: str | None, watched: RunDir) -> ComparedRun | None:
    """``--compare SPEC``'s run, read (UserError when it is not a run with a metrics.csv, or
    is the run being watched itself)."""
    if spec is None:
        return None
    compared = ComparedRun.open(spec)
    if compared.run.root == watched.root.resolve():
        raise UserError(f"--compare {spec} is the run being watched; compare it with another run (see 'tui-gan ls')")
    return compared


def argparse_parser(command: str, description: str) -> ArgumentParser:
    return ArgumentParser(prog=f"tui-gan {command}", description=description)


# ----------------------------------------------------------------------------- ls, stop, logs


SORT_ORDERS = ("name", "swd")


def run_ls(argv: list[str]) -> int:
    p = argparse_parser("ls", "List the runs: state, step and epoch, speed, quality, age.")
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
        print(ls_line(run, state, record, history))
    return 0


def swd_order(best: float | None) -> tuple[bool, float]:
    """The sort key of ``ls --sort swd``: the lowest best SWD first, runs never measured last."""
    return (best is None, best if best is not None else 0.0)


def ls_line(run: RunDir, state: str, record: ServiceRecord | None, history: list[HistoryRow] | None = None) -> str:
    """One run's line; ``history`` is its metrics.csv (read here when not given)."""
    history = history_or_empty(run.metrics) if history is None else history
    step, epoch, speed, swd = (record.step, record.epoch, None, None) if record else (None, None, None, None)
    if state == "running":
        step = epoch = None  # unknown unless it answers
        try:
            conn, status = connect_to_run(run, "status", timeout=2.0)
            conn.close()
            state = str(status["state"])
            step, epoch, speed, swd = status["step"], status["epoch"], status["images_per_sec"], status["swd"]
        except (UserError, KeyError, ValueError):
            pass  # it does not answer now: still running, numbers unknown
    if state == "lost" or step is None:  # a lost run's record stopped at the start: metrics.csv knows more
        step, epoch = (history[-1].step, history[-1].epoch) if history else (None, None)
    swd = latest_swd(history) if swd is None else swd
    best = best_swd(history)
    started = record.started if record else run.config.stat().st_mtime if run.config.exists() else time.time()
    parts = [f"{state:<8}", f"step {step:>7}" if step is not None else "step       ?",
             f"{epoch_text(run, state, epoch):<11}",
             f"{speed:>6,.0f} img/s" if speed else " " * 12,
             f"SWD {swd:6.2f}" if swd is not None else " " * 10,
             f"best {best:6.2f}" if best is not None else " " * 11,
             f"{format_duration(time.time() - started):>6} ago"]
    lost_and_saved = state == "lost" and run.checkpoint_in() is not None
    resume = f"  (resume: tui-gan --resume {os.path.relpath(run.root)})" if lost_and_saved else ""
    return f"{os.path.relpath(run.root)}  " + "  ".join(parts) + resume


def run_summaries(root: Path) -> list[RunSummary]:
    """The runs under ``root`` as the app's run picker lists them: from their files alone
    (the lock, service.json, metrics.csv), never asking a service, so it never waits."""
    return [summarise_run(run, state) for run, (state, _) in list_runs(root)]


def epoch_text(run: RunDir, state: str, epoch: int | None) -> str:
    """'epoch 3/5' while it trains (the epoch under way, as the app shows it), else the
    epochs completed, '2/5 epochs'."""
    from .core.config import TrainConfig

    if epoch is None:
        return "epoch ?"
    try:
        total = f"/{int(TrainConfig.read_toml(run.config)['epochs'])}"
    except Exception:  # noqa: BLE001 - an unreadable config.toml: the count alone
        total = ""
    return f"epoch {epoch + 1}{total}" if state in ("running", "paused", "loading") else f"{epoch}{total} epochs"


def last_logged(run: RunDir) -> tuple[int | None, int | None, float | None]:
    """From metrics.csv: the last step and epoch it logged, and its newest SWD (None where
    it has none)."""
    history = history_or_empty(run.metrics)
    if not history:
        return None, None, None
    return history[-1].step, history[-1].epoch, latest_swd(history)


def run_stop(argv: list[str]) -> int:
    p = argparse_parser("stop", "Save a running run's last.pt and stop it.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a running run's directory (see 'tui-gan ls')")
    run = running_run(p.parse_args(argv).run_dir)
    conn, _ = connect_to_run(run)
    remote = RemoteRun(conn, run)
    print(f"stopping {run.root}: saving checkpoints/last.pt…", flush=True)
    for event in remote.run():
        if isinstance(event, ev.Attached):
            remote.control.stop("tui-gan stop")
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


def run_logs(argv: list[str]) -> int:
    p = argparse_parser("logs", "A run's log lines (what --headless prints).")
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


COMMANDS = {"attach": run_attach, "ls": run_ls, "stop": run_stop, "logs": run_logs}
