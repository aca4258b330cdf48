"""A run's state as its files tell it, without asking its service: running (a live
service holds its lock), finished, stopped, failed, or lost; and the run a command acts on,
with the one-line errors for a run it cannot act on; the runs of a folder as ``ls`` and the
app's run picker list them.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.comparison import RunSummary, summarise_run
from ..core.errors import UserError
from ..core.metrics_csv import history_or_empty, latest_swd
from ..core.rundir import DEFAULT_RUNS, RunDir, run_dirs
from ..service.runfiles import ServiceRecord, is_held


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


def last_logged(run: RunDir) -> tuple[int | None, int | None, float | None]:
    """From metrics.csv: the last step and epoch it logged, and its newest SWD (None where
    it has none)."""
    history = history_or_empty(run.metrics)
    if not history:
        return None, None, None
    return history[-1].step, history[-1].epoch, latest_swd(history)


def run_summaries(root: Path) -> list[RunSummary]:
    """The runs under ``root`` as the app's run picker lists them: from their files alone
    (the lock, service.json, metrics.csv), never asking a service, so it never waits."""
    return [summarise_run(run, state) for run, (state, _) in list_runs(root)]
