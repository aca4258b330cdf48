"""The training service's process: ``python -m tui_gan.service [training flags] --run-dir RUN``,
started by the app (service/start.py) in a session of its own, its output in the run's
train.log. ``tui-gan --headless`` trains the same way in the foreground (``train_here``).

With ``--nproc N`` this process launches N that train (launch.py) and waits; in a process
started by that launcher or by torchrun, rank 0 trains and hosts the service
(service/training.py) and the others follow it (``follow_run``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..commands.flags import prepare_training, train_parser, training_run_dir
from ..core import events as ev
from ..core.config import launched_rank
from ..core.contract import EventSource
from ..core.control import Control
from ..core.errors import UserError, one_line_errors
from .printer import LogFile, Printer
from .signals import ignore_stop_signals
from .start import SERVICE_MODULE
from .training import serve_run


def main(argv: Sequence[str] | None = None) -> int:
    """The service's entry point: the training flags as ``tui-gan`` parsed them (it checked
    them before starting this), and the run directory."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def serve() -> int:
        args = vars(train_parser().parse_args(argv))
        if "run_dir" not in args:
            raise UserError("the training service needs --run-dir RUN (tui-gan starts it with one)")
        return train_here(args, argv, as_service=True)

    return one_line_errors(serve)


def train_here(args: dict[str, Any], argv: Sequence[str], *, as_service: bool) -> int:
    """Train in this process, serving viewers: as the app's service (``as_service``: a
    diverged run waits, paused, for a viewer to lower its learning rates) or for
    ``--headless`` (its lines go to train.log as well as stdout; a diverged run stops). With --nproc N,
    launch N processes that do; in one of those, rank 0 serves and the others follow it."""
    rank, world_size = launched_rank()
    if args.get("nproc", 1) > 1 and world_size == 1:
        from ..launch import launch

        return launch(args, argv, training_run_dir(args), SERVICE_MODULE if as_service else "tui_gan")
    if rank > 0:
        return follow_run(lambda control: prepare_training(args, Path(args.get("run_dir", ".")), control), rank)
    run_dir = training_run_dir(args)
    printer = Printer([LogFile.of(sys.stdout) if as_service else sys.stdout], args.get("log_every", 5.0))
    return serve_run(run_dir, lambda control: prepare_training(args, run_dir.root, control), printer,
                     as_service=as_service)


def follow_run(prepare: Callable[[Control], EventSource], rank: int) -> int:
    """A rank other than 0: train in step with rank 0 and produce nothing (rank 0 writes the
    run directory and serves viewers; engine/lockstep.py). Stop signals are left to rank 0,
    which gets them too and tells every rank to stop at the same step; a failure is one
    line naming this rank. Returns 0 when the run ended, 1 when it failed here."""
    ignore_stop_signals()
    from ..engine.world import lost_peer_message

    control = Control()
    try:
        for event in prepare(control).run():
            if isinstance(event, ev.Error):
                print(f"tui-gan: rank {rank}: {event.message}", file=sys.stderr, flush=True)
                return 1
    except UserError as exc:
        print(f"tui-gan: rank {rank}: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - in setup, before the engine reports failures itself
        print(f"tui-gan: rank {rank}: {lost_peer_message(exc, type(exc).__name__ + ': ' + str(exc))}",
              file=sys.stderr, flush=True)
        return 1
    return 0
