"""``--nproc N``: N training processes on this machine, started by torch's own launcher
(torch.distributed.launcher, what ``torchrun`` runs), each a fresh ``python -m tui_gan``
(``python -m tui_gan.service`` for the app's service) that finds its rank in the
environment (engine/world.py). Rank 0 trains, writes the run
directory and serves viewers exactly as one process does; the others follow it.

This process only launches and waits: it checks what can be checked before anything
starts (the device, the GPU count, the port), passes stop signals on (rank 0 turns them
into a stop at a step every rank shares), and turns a rank's death into one line that
names the rank.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from .commands.flags import without_flags
from .core.config import PEER_LOST_EXIT, check_shared_batch, check_sync_bn, parse_device
from .core.errors import UserError
from .core.rundir import RunDir

#: The user's flags the processes do not get: --nproc and --master-port (they would launch
#: again) and --run-dir (the launcher passes the resolved one).
LAUNCH_FLAGS = ("--nproc", "--master-port", "--run-dir")
#: Seconds the launcher gives the processes to save and exit after a stop signal before it
#: kills them (torch's default is 30 s; a large run's last.pt may take longer to write). A
#: process that a dead one left waiting ends itself well before (engine/world.py, PeerWatch).
SHUTDOWN_SECONDS = 120


def launch(args: dict[str, Any], argv: Sequence[str], run_dir: RunDir, module: str = "tui_gan") -> int:
    """Start ``args['nproc']`` processes of ``python -m MODULE ARGV`` on ``run_dir`` and wait
    for them. Returns the exit code: 0 when the run ended, 2 for bad input, 1 when a rank
    failed, 128+N after signal N."""
    nproc = int(args["nproc"])
    check_shared_batch(args.get("batch_size", nproc), nproc)  # the preset's is checked by each process
    device = _check_device(args.get("device", "auto"), nproc)
    check_sync_bn(args.get("sync_bn", False), device, nproc)  # a resumed run's setting is checked by each process
    port = _check_port(args.get("master_port"))
    with _quiet_launcher_logs():
        from torch.distributed.elastic.multiprocessing.api import SignalException
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
        from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if device == "cpu" and "OMP_NUM_THREADS" not in os.environ:  # N processes share the cores
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    settings = dict(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=uuid.uuid4().hex,
        rdzv_backend="c10d", rdzv_endpoint=f"127.0.0.1:{port}", max_restarts=0, monitor_interval=0.2,
        start_method="spawn", signals_to_handle="SIGTERM,SIGINT,SIGHUP", shutdown_timeout=SHUTDOWN_SECONDS,
    )
    # signals_to_handle and shutdown_timeout are newer than torch 2.2: older launchers
    # handle SIGTERM, SIGINT and SIGHUP anyway and give the processes 30 s
    known = {f.name for f in dataclasses.fields(LaunchConfig)}
    config = LaunchConfig(**{k: v for k, v in settings.items() if k in known})
    worker_args = ["-m", module, *without_flags(argv, LAUNCH_FLAGS), "--run-dir", str(run_dir.root)]
    try:
        elastic_launch(config, sys.executable)(*worker_args)
    except ChildFailedError as failed:
        print(f"tui-gan: {_describe_failure(failed, run_dir)}", file=sys.stderr, flush=True)
        codes = {f.exitcode for f in _causes(failed.failures).values()}
        return 2 if codes == {2} else 1
    except SignalException as stopped:
        return 128 + int(stopped.sigval)
    return 0


@contextlib.contextmanager
def _quiet_launcher_logs() -> Iterator[None]:
    """The launcher's own log lines ("Received 2 death signal, shutting down workers", a
    failure's details) say what our one line says. Its loggers take their level from
    $LOGLEVEL when their modules are imported (WARNING by default): CRITICAL while they
    are, unless the user set one; the processes it starts get the user's environment."""
    before = os.environ.get("LOGLEVEL")
    os.environ.setdefault("LOGLEVEL", "CRITICAL")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("LOGLEVEL", None)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):  # any made before
        if name.startswith("torch.distributed") and isinstance(logger, logging.Logger) and before is None:
            logger.setLevel(logging.CRITICAL)


def _check_device(spec: str, nproc: int) -> str:
    """'cuda' or 'cpu' for ``nproc`` processes; UserError where they cannot run."""
    kind, index = parse_device(spec, "--device")
    if index is not None:
        raise UserError(f"--device {spec} picks one GPU; with --nproc every process takes its own "
                        f"(GPUs 0-{nproc - 1}): use --device cuda")
    import torch

    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "mps":
        raise UserError("--nproc runs on CUDA GPUs or on the CPU, not on mps; use --device cpu")
    if kind == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise UserError("--device cuda: no CUDA GPU is available; use --device cpu")
        if nproc > count:
            raise UserError(f"--nproc {nproc}: this machine has {count} GPU(s), one per process; "
                            f"use --nproc {count} or less (or --device cpu)")
    return kind


def _check_port(port: int | None) -> int:
    """The rendezvous port: ``port`` if it is free, else a free one the system picks."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port or 0))
        except OSError as exc:
            raise UserError(f"--master-port {port} cannot be used ({exc.strerror or exc}); "
                            "choose another or leave the flag out for a free one") from None
        return probe.getsockname()[1]


def _describe_failure(failed: Any, run_dir: RunDir) -> str:
    """One line: which rank ended the run and how (a rank killed by a signal is the cause
    even when the others failed after it, in their collectives)."""
    causes = _causes(failed.failures)
    killed = {rank: f for rank, f in causes.items() if f.exitcode < 0}
    rank, failure = min((killed or causes).items())
    if failure.exitcode < 0:
        try:
            how = f"was killed by {signal.Signals(-failure.exitcode).name}"
        except ValueError:
            how = f"was killed by signal {-failure.exitcode}"
    else:
        how = f"exited with code {failure.exitcode}"
    last = run_dir.last
    saved = f"the last checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
    return f"rank {rank} (pid {failure.pid}) {how}; the run stopped and {saved}"


def _causes(failures: dict[int, Any]) -> dict[int, Any]:
    """The failed ranks that can have ended the run: not those the launcher ended with
    SIGTERM once one failed, nor those that ended because another died (PEER_LOST_EXIT)."""
    return {rank: f for rank, f in failures.items() if f.exitcode not in (-signal.SIGTERM, PEER_LOST_EXIT)} or failures
