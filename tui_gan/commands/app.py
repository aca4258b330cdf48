"""The app on a run: ``tui-gan [flags]`` starts the run in a training service and opens the
app on it (``run_app``); ``tui-gan attach`` opens it on a running run. No torch here.

A run lives in its training service, a process of its own (service/start.py). The app is
a window onto it: ``d`` closes the window and the training goes on; a dropped SSH session
does the same; ``q`` stops the run (saving last.pt first) and closes the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.comparison import ComparedRun
from ..core.errors import ArgumentParser, UserError
from ..core.rundir import DEFAULT_RUNS, RunDir
from ..service.client import RemoteRun, connect_to_run, wait_for_service
from ..service.start import start_service
from ..tui.terminal_graphics import add_graphics_flag, start_choosing
from .flags import without_flags
from .runstate import run_summaries, running_run


def run_app(argv: Sequence[str], run: RunDir, compare_spec: str | None = None, graphics: str = "auto") -> int:
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


def watch(connect: Any, run: RunDir, compare: ComparedRun | None = None, choosing: Any = None) -> int:
    """The app on a service's run; ``connect(leaving)`` (in the app's worker) returns a
    RemoteRun, or gives up waiting once the Event ``leaving`` is set. ``choosing``: the
    graphics decision under way (terminal_graphics.start_choosing), its probe answered
    while Textual loads."""
    try:
        from ..tui.app import TuiGanApp
        from ..tui.terminal_graphics import hand_over

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


def run_attach(argv: Sequence[str]) -> int:
    p = ArgumentParser(prog="tui-gan attach", description="Open the app on a running run: its history so far, then live.")
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
