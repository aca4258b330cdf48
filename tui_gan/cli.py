"""The ``tui-gan`` command: ``COMMANDS``, the one table of its subcommands, and ``main``,
which dispatches from it; anything else is ``tui-gan [flags]``, training a run
(commands/train.py). No torch here: a command imports it when it needs it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .commands import app, bench, outputs, runs
from .commands.train import run_train
from .core.errors import one_line_errors


@dataclass(frozen=True)
class Command:
    run: Callable[[Sequence[str]], int]
    """Takes the arguments after the command's name; returns the exit code."""
    description: str
    """One line, for ``tui-gan --help``."""


def run_serve(argv: Sequence[str]) -> int:
    from .browser.command import run_serve as serve  # its server, and the serve extra, only when asked for

    return serve(list(argv))


COMMANDS: dict[str, Command] = {
    "attach": Command(app.run_attach, "open the app on a running run"),
    "ls": Command(runs.run_ls, "one line per run: state, step, epoch, speed, quality, age"),
    "stop": Command(runs.run_stop, "save a running run's last.pt and stop it"),
    "logs": Command(runs.run_logs, "print a run's log lines, -f to follow them"),
    "serve": Command(run_serve, "serve the app on a running run to a browser tab"),
    "sample": Command(outputs.run_sample, "draw images from a checkpoint"),
    "gif": Command(outputs.run_gif, "animate a run's epoch-end grids as a GIF"),
    "export-tb": Command(outputs.run_export_tb, "write a run's numbers and grids as TensorBoard files"),
    "bench": Command(bench.run_bench, "time the tutorial's loop against tui-gan's engine"),
}


def commands_help() -> str:
    """The other commands, as ``tui-gan --help`` ends."""
    width = max(map(len, COMMANDS))
    lines = [f"  tui-gan {name:<{width}}  {command.description}" for name, command in COMMANDS.items()]
    return "\n".join(["other commands (see 'tui-gan COMMAND --help'):", *lines])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(argv[0]) if argv else None
    if command is not None:
        return one_line_errors(lambda: command.run(argv[1:]))
    return one_line_errors(lambda: run_train(argv, commands_help()))
