"""The checks a request's arguments pass, wherever the request comes from (a key, a dialog,
a socket, a flag): one rule per kind of value, each raising RequestError with a line that
says why. The request table (contract.py) names which check each argument takes."""

from __future__ import annotations

import math


class RequestError(ValueError):
    """A request's argument is not one the run can take (the message says why, in one line)."""


MAX_REASON = 80


def learning_rate(value: object, name: str = "a learning rate") -> float:
    """The one rule for a learning rate, wherever it comes from (a flag, the config, a key,
    the dialog, a socket): a positive finite number. Rates of 1 and more are allowed on
    purpose: they are how a student provokes the failure modes (docs/runs.md)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise RequestError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def optional_rate(value: object, name: str) -> float | None:
    return None if value is None else learning_rate(value, name)


def flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise RequestError(f"expected true or false, got {value!r}")
    return value


def class_index(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RequestError(f"a class is a number from 0, got {value!r}")
    return value


def reason(value: object) -> str:
    if not isinstance(value, str) or not value or not value.isprintable():
        raise RequestError("a reason must be a line of text")
    return value[:MAX_REASON]
