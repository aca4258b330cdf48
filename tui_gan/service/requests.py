"""Requests from viewers, checked against the contract's table (core/contract.py) and
submitted to the run's Control; and the one-shot status ``tui-gan ls`` asks for.

A request is ``{"kind": "request", "op": ..., "args": {...}}``. A viewer is another process
of the same user, but what it sends is still input: a request the table does not take
closes that viewer's connection (ProtocolError), nothing more.
"""

from __future__ import annotations

from typing import Any

from ..core.arguments import RequestError
from ..core.contract import checked
from ..core.control import Control
from ..core.runview import RunView
from .protocol import ProtocolError


def request(op: str, **args: Any) -> dict[str, Any]:
    """A request frame's header (the client's side)."""
    return {"kind": "request", "op": op, "args": args}


def apply_request(control: Control, header: dict[str, Any]) -> None:
    op, args = header.get("op"), header.get("args", {})
    if not isinstance(op, str) or not isinstance(args, dict):
        raise ProtocolError("a request needs an 'op' string and an 'args' object")
    try:
        checked(op, args)
    except RequestError as exc:
        raise ProtocolError(f"bad {op!r} request: {exc}") from None
    control.submit(op, **args)


def status_of(view: RunView, control: Control, viewers: int) -> dict[str, Any]:
    """What ``tui-gan ls`` shows of a live run."""
    started, progress = view.started, view.progress
    if view.ended is not None:
        state = "ending"  # the last frames go out; the record will say how it ended
    elif started is None:
        state = "loading"
    elif control.stop_reason is not None:
        state = "stopping"
    else:
        state = "paused" if view.paused is not None else "running"
    step, epoch = view.step, view.epoch
    return {
        "kind": "status", "state": state, "step": step, "epoch": epoch,
        "epochs": started.config["epochs"] if started else None,
        "total_steps": started.total_steps if started else None,
        "images_per_sec": progress.images_per_sec if progress and state == "running" else None,
        "swd": view.quality.swd if view.quality else None,
        "viewers": viewers,
        "writes_failing": view.writes_failing.reason if view.writes_failing is not None else None,
    }
