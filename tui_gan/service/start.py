"""Starting a run's training service from the app's process: ``python -m tui_gan.service``
(service/main.py) given the user's training flags, in a session of its own."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from ..core.rundir import RunDir
from .runfiles import check_not_running

SERVICE_MODULE = "tui_gan.service"


def start_service(argv: Sequence[str], run: RunDir) -> subprocess.Popen[bytes]:
    """Start the service that trains ``run`` with the training flags ``argv``: a fresh
    interpreter (never a fork of this one, which may have started Textual), in a session of
    its own so a hang-up of this terminal never reaches it, its output appended to the
    run's train.log."""
    check_not_running(run)
    run.check_writable()
    with open(run.log, "a", encoding="utf-8") as log:
        return subprocess.Popen(
            # --run-dir last: it wins over the user's (same folder, but absolute)
            [sys.executable, "-m", SERVICE_MODULE, *argv, "--run-dir", str(run.root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            close_fds=True)
