"""``tui-gan [flags]``: train a run. On a terminal, in a training service with the app
opened on it (commands/app.py); with ``--headless``, or when stdout is not a terminal, in
this process, printing log lines (service/main.py). The flags are checked first, without
torch."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ..core.errors import UserError
from .app import run_app
from .flags import build_config, train_parser, training_run_dir


def run_train(argv: Sequence[str], epilog: str | None = None) -> int:
    """``epilog``: the other commands, for ``--help``."""
    args = vars(train_parser(epilog).parse_args(argv))
    # Validate everything that needs no torch before anything slow happens.
    if "resume" in args and "config" in args:
        raise UserError("--config cannot be combined with --resume (the settings come from the checkpoint)")
    if args.get("tensorboard") if "resume" in args else build_config(args)[0].tensorboard:
        from ..exports import require_tensorboard  # looks for the extra without importing it (0.3 s)

        require_tensorboard("--tensorboard")  # (resumed with it on, without the flag: the service warns)
    if args.get("headless") or not sys.stdout.isatty():
        if "compare" in args:
            raise UserError("--compare draws on the app's charts; there is none with --headless or when stdout is "
                            "not a terminal")
        from ..service.main import train_here  # the service's modules: not needed by the app's process

        return train_here(args, argv, as_service=False)
    return run_app(argv, training_run_dir(args), args.get("compare"), args.get("graphics", "auto"))
