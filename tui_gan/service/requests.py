"""Requests from viewers, checked and applied to the run's Control; and the one-shot status
``tui-gan ls`` asks for.

A request is ``{"kind": "request", "op": ..., "args": {...}}``. Every op and argument is
checked here: a viewer is another process of the same user, but what it sends is still
input, and a bad request closes that viewer's connection (ProtocolError), nothing more.
"""

from __future__ import annotations

import math
from typing import Any

from ..core.control import Control
from .mirror import RunMirror
from .protocol import ProtocolError

ONE_SHOTS = {"snapshot", "export", "measure", "interpolate"}
MAX_REASON = 80


def request(op: str, **args: Any) -> dict[str, Any]:
    """A request frame's header (the client's side)."""
    return {"kind": "request", "op": op, "args": args}


def apply_request(control: Control, header: dict[str, Any]) -> None:
    op, args = header.get("op"), header.get("args", {})
    if not isinstance(op, str) or not isinstance(args, dict):
        raise ProtocolError("a request needs an 'op' string and an 'args' object")
    try:
        _apply(control, op, args)
    except (TypeError, ValueError, OverflowError) as exc:  # what odd values make the checks raise
        raise ProtocolError(f"bad {op!r} request ({type(exc).__name__})") from None


def _apply(control: Control, op: str, args: dict[str, Any]) -> None:
    if op in ONE_SHOTS:
        getattr(control, op)()
    elif op == "pause":
        control.pause()
    elif op == "resume":
        control.resume()
    elif op == "stop":
        control.stop(_reason(args.get("reason", "stopped")))
    elif op == "auto_pause":
        control.set_pause_at_epoch_end(_flag(args.get("on")))
    elif op == "show_average":
        control.show_average(_flag(args.get("on")))
    elif op == "set_lr":
        control.set_lr(_rate(args.get("lr_g")), _rate(args.get("lr_d")), now=_flag(args.get("now", False)))
    else:
        raise ProtocolError(f"unknown request {op!r}")


def _reason(value: Any) -> str:
    if not isinstance(value, str) or not value.isprintable():
        raise ProtocolError("stop reason must be a line of text")
    return value[:MAX_REASON]


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError("expected true or false")
    return value


def _rate(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProtocolError(f"learning rate must be a positive number, got {value!r}")
    return float(value)


def status_of(mirror: RunMirror, control: Control, viewers: int) -> dict[str, Any]:
    """What ``tui-gan ls`` shows of a live run."""
    started, progress = mirror.started, mirror.progress
    if mirror.finished is not None:
        state = "ending"  # the last frames go out; the record will say how it ended
    elif started is None:
        state = "loading"
    elif control.stop_reason is not None:
        state = "stopping"
    else:
        state = "paused" if mirror.paused is not None else "running"
    step = progress.step if progress else started.step if started else 0
    epoch = progress.epoch if progress else started.epoch if started else 0
    return {
        "kind": "status", "state": state, "step": step, "epoch": epoch,
        "epochs": started.config["epochs"] if started else None,
        "total_steps": started.total_steps if started else None,
        "images_per_sec": progress.images_per_sec if progress and state == "running" else None,
        "swd": mirror.quality.swd if mirror.quality else None,
        "viewers": viewers,
    }
