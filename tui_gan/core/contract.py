"""The engine <-> viewer contract, in one place: the events a run reports (``Event``), the
requests it takes (``REQUESTS``), and the control surface both sides program against
(``RunControl``).

``REQUESTS`` is the one table of requests. Each row names the request (its method and its
op on the wire), the field it sets in ``Requests``, the check its arguments pass (the one
rule for them, wherever they come from: a key, a dialog, a socket), whether it is a state
the engine follows or a one-shot it serves once, how it travels to the other ranks of a
multi-process run, and a line that says what it does. From it are driven:

- ``Control`` (core/control.py): ``submit(op, **args)`` checks and records a request;
- the remote control (service/client.py): the same ``submit``, sent over the socket;
- the service's request handling (service/requests.py): a frame is checked and submitted;
- the lock-step packet (engine/lockstep.py): ``pack``/``unpack`` of the travelling fields.

Adding a request: a row here and a method in ``RequestMethods``, a field in ``Requests``,
its handler in the engine (engine/serving.py), a test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, get_args

from . import arguments
from .arguments import RequestError
from .events import (
    Attached,
    AutoPauseSet,
    DeviceStatus,
    Disconnected,
    EngineWarning,
    EpochEnd,
    Error,
    Exported,
    Finished,
    Interpolation,
    Loading,
    LrApplied,
    LrPending,
    NewestCheckpoint,
    Paused,
    Progress,
    Quality,
    Resumed,
    Samples,
    SnapshotSaved,
    Started,
    WritesFailing,
    WritesRecovered,
)

if TYPE_CHECKING:
    from .control import Control

# ----------------------------------------------------------------------------- events

EngineEvent: TypeAlias = (
    Loading | Started | Progress | Quality | DeviceStatus | Interpolation | Samples | EpochEnd | SnapshotSaved
    | Exported | LrPending | LrApplied | Paused | Resumed | EngineWarning | Finished | Error | AutoPauseSet
    | NewestCheckpoint | WritesFailing | WritesRecovered
)
"""What the engine yields."""

Event: TypeAlias = EngineEvent | Attached | Disconnected
"""What a viewer's stream carries: the engine's events, the service's snapshot for a viewer
that attaches mid-run, and the client's word that the connection ended."""

EVENT_CLASSES: tuple[type, ...] = get_args(Event)
"""Every class of ``Event``, for code that meets events as data (the wire)."""



def latest_value_key(event: Event) -> str | None:
    """Events that only say the latest value (progress without a history row, samples,
    loading) share a key: a newer one makes a queued, unsent one worthless. None: every
    event of its kind counts."""
    if isinstance(event, Progress) and event.row is None:
        return "progress"
    if isinstance(event, (Samples, Loading)):
        return type(event).__name__
    return None

# ----------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class LrChange:
    """New learning rates (None: keep that net's), at the next epoch boundary or ``now``."""

    lr_g: float | None
    lr_d: float | None
    now: bool = False


@dataclass(frozen=True)
class Requests:
    """What viewers have asked of the run, as the engine takes it at a step boundary: the
    states it follows until they change, and the one-shots it serves once."""

    # states
    pause: str | None = None
    """The pause's reason while a pause is asked for; None: train."""
    stop: str | None = None
    """Why the run should save and finish (the first reason given is kept)."""
    auto_pause: bool = False
    """Pause at every epoch's end."""
    # one-shots
    snapshot: bool = False
    export: bool = False
    measure: bool = False
    interpolate: bool = False
    show_average: bool | None = None
    """--ema: samples from the generator's average (True) or the live generator (False)."""
    show_classes: int | None = None
    """--conditional: the class whose row the samples start with (the rest follow it)."""
    lr: LrChange | None = None
    reset_lr: bool | None = None
    """Back to the learning rates the run was started (or resumed) with: now (True) or at the
    next epoch's end (False)."""

    def states(self) -> Requests:
        """These requests less the one-shots: what stays once the engine has taken them."""
        return Requests(pause=self.pause, stop=self.stop, auto_pause=self.auto_pause)


def with_field(requests: Requests, name: str, value: object) -> Requests:
    """``requests`` with one field, named by the table, set to a value its check made."""
    changes: dict[str, Any] = {name: value}
    return replace(requests, **changes)


@dataclass(frozen=True)
class Codec:
    """How a field of ``Requests`` travels in the lock-step packet: as ``width`` floats."""

    width: int
    encode: Callable[[object], list[float]]
    decode: Callable[[list[float]], object]


def _nan_or(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _number_or_none(value: float) -> float | None:
    return None if math.isnan(value) else value



def _present(follower_reason: str) -> Codec:
    """A state's reason travels as 'set or not'; a rank other than 0 records ``follower_reason``."""
    return Codec(1, lambda value: [float(value is not None)], lambda v: follower_reason if v[0] else None)

_FLAG_OR_NONE = Codec(1, lambda value: [math.nan if value is None else float(bool(value))],
                      lambda v: None if math.isnan(v[0]) else bool(v[0]))
_LR = Codec(
    3,
    lambda change: [0.0, math.nan, math.nan] if change is None else [
        2.0 if change.now else 1.0, _nan_or(change.lr_g), _nan_or(change.lr_d)],  # type: ignore[attr-defined]
    lambda v: None if v[0] == 0 else LrChange(_number_or_none(v[1]), _number_or_none(v[2]), now=v[0] == 2),
)

Kind = Literal["state", "once"]


@dataclass(frozen=True)
class RequestSpec:
    """One row of the table (module docstring)."""

    op: str
    field: str
    """The field of ``Requests`` it sets."""
    check: Callable[[Mapping[str, object]], object]
    """Checks the arguments (RequestError) and returns the field's new value."""
    kind: Kind
    description: str
    travels: Codec | None = None
    """Set: every rank of a multi-process run takes it (it changes the training)."""
    keep_first: bool = False
    """A state that, once set, keeps its first value (a stop's reason)."""

    def merge(self, pending: Requests, value: object) -> Requests:
        if self.keep_first and getattr(pending, self.field) is not None:
            return pending
        return with_field(pending, self.field, value)


def _args(names: tuple[str, ...], given: Mapping[str, object]) -> None:
    unknown = set(given) - set(names)
    if unknown:
        raise RequestError(f"unknown argument {sorted(unknown)[0]!r}")


def _takes(*names: str, make: Callable[..., object]) -> Callable[[Mapping[str, object]], object]:
    """A check that takes only ``names`` and builds the field's value with ``make(**args)``."""
    def check(args: Mapping[str, object]) -> object:
        _args(names, args)
        try:
            return make(**args)
        except TypeError:  # a required argument is missing: every value is checked inside make
            raise RequestError(f"missing argument (takes {', '.join(names)})") from None
    return check


def _lr_change(lr_g: object = None, lr_d: object = None, now: object = False) -> LrChange:
    change = LrChange(arguments.optional_rate(lr_g, "lr_g"), arguments.optional_rate(lr_d, "lr_d"), arguments.flag(now))
    if change.lr_g is None and change.lr_d is None:
        raise RequestError("set_lr needs lr_g, lr_d or both")
    return change


REQUESTS: dict[str, RequestSpec] = {spec.op: spec for spec in (
    RequestSpec("pause", "pause", _takes("reason", make=lambda reason="requested": arguments.reason(reason)), "state",
                "pause the training at the next step", travels=_present("requested")),
    RequestSpec("resume", "pause", _takes(make=lambda: None), "state",
                "go on training", travels=_present("requested")),
    RequestSpec("stop", "stop", _takes("reason", make=lambda reason="stopped": arguments.reason(reason)), "state",
                "save last.pt and finish the run", travels=_present("stopped by rank 0"), keep_first=True),
    RequestSpec("auto_pause", "auto_pause", _takes("on", make=lambda on: arguments.flag(on)), "state",
                "pause at every epoch's end (or no longer)"),
    RequestSpec("snapshot", "snapshot", _takes(make=lambda: True), "once",
                "save a checkpoint and a sample grid of this step"),
    RequestSpec("export", "export", _takes(make=lambda: True), "once",
                "write the current samples as a PNG grid"),
    RequestSpec("measure", "measure", _takes(make=lambda: True), "once",
                "measure the sample quality (SWD, diversity) now"),
    RequestSpec("interpolate", "interpolate", _takes(make=lambda: True), "once",
                "render latent walks with the current generator"),
    RequestSpec("show_average", "show_average", _takes("on", make=lambda on: arguments.flag(on)), "once",
                "--ema: show the samples of G's moving average (or of the live G)"),
    RequestSpec("show_classes", "show_classes", _takes("first", make=lambda first: arguments.class_index(first)), "once",
                "--conditional: show the samples' rows from this class on"),
    RequestSpec("set_lr", "lr", _takes("lr_g", "lr_d", "now", make=_lr_change), "once",
                "new learning rates, at the next epoch's end or now", travels=_LR),
    RequestSpec("reset_lr", "reset_lr", _takes("now", make=lambda now=False: arguments.flag(now)), "once",
                "back to the learning rates the run started with, at the epoch's end or now",
                travels=_FLAG_OR_NONE),
)}

TRAVELLING: tuple[RequestSpec, ...] = tuple(
    {spec.field: spec for spec in REQUESTS.values() if spec.travels is not None}.values())
"""One spec per travelling field, in table order: the lock-step packet's layout."""

PACKET_WIDTH = sum(spec.travels.width for spec in TRAVELLING if spec.travels is not None)


def pack(requests: Requests) -> list[float]:
    """The travelling fields of ``requests`` as the lock-step packet's floats."""
    out: list[float] = []
    for spec in TRAVELLING:
        assert spec.travels is not None
        out += spec.travels.encode(getattr(requests, spec.field))
    return out


def unpack(values: list[float]) -> Requests:
    """``pack``'s inverse (a state's reason becomes the follower's, see ``_present``)."""
    out, at = Requests(), 0
    for spec in TRAVELLING:
        assert spec.travels is not None
        out = with_field(out, spec.field, spec.travels.decode(values[at:at + spec.travels.width]))
        at += spec.travels.width
    return out




# ----------------------------------------------------------------------------- the control surface


class RunControl(Protocol):
    """What a viewer steers a run with: the engine's Control in the same process, or a
    service's run over its socket (RemoteControl). Every request goes through ``submit``."""

    @property
    def paused(self) -> bool: ...
    @property
    def stop_reason(self) -> str | None: ...
    @property
    def pause_at_epoch_end(self) -> bool: ...
    def submit(self, op: str, **args: object) -> None: ...
    def toggle_pause(self) -> bool: ...
    def pause(self, reason: str = "requested") -> None: ...
    def resume(self) -> None: ...
    def stop(self, reason: str = "stopped") -> None: ...
    def snapshot(self) -> None: ...
    def export(self) -> None: ...
    def measure(self) -> None: ...
    def interpolate(self) -> None: ...
    def show_average(self, on: bool) -> None: ...
    def show_classes(self, first: int) -> None: ...
    def set_pause_at_epoch_end(self, on: bool) -> None: ...
    def set_lr(self, lr_g: float | None = None, lr_d: float | None = None, now: bool = False) -> None: ...
    def reset_lr(self, now: bool = False) -> None: ...


class EventSource(Protocol):
    """A run that can be driven: the engine (in the service, --headless) or a test's
    scripted stand-in. ``control`` takes its requests; ``run()`` yields its events."""

    @property
    def control(self) -> Control: ...
    def run(self) -> Iterator[EngineEvent]: ...


class RequestMethods:
    """The requests as typed methods, each one row of ``REQUESTS`` through ``submit``."""

    def submit(self, op: str, **args: object) -> None:
        raise NotImplementedError

    @property
    def paused(self) -> bool:
        raise NotImplementedError

    def toggle_pause(self) -> bool:
        """Ask for the opposite of the run's pause; True if that is a pause."""
        pause = not self.paused
        self.submit("pause" if pause else "resume")
        return pause

    def pause(self, reason: str = "requested") -> None:
        self.submit("pause", reason=reason)

    def resume(self) -> None:
        self.submit("resume")

    def stop(self, reason: str = "stopped") -> None:
        self.submit("stop", reason=reason)

    def snapshot(self) -> None:
        self.submit("snapshot")

    def export(self) -> None:
        self.submit("export")

    def measure(self) -> None:
        self.submit("measure")

    def interpolate(self) -> None:
        self.submit("interpolate")

    def show_average(self, on: bool) -> None:
        self.submit("show_average", on=bool(on))

    def show_classes(self, first: int) -> None:
        self.submit("show_classes", first=int(first))

    def set_pause_at_epoch_end(self, on: bool) -> None:
        self.submit("auto_pause", on=bool(on))

    def set_lr(self, lr_g: float | None = None, lr_d: float | None = None, now: bool = False) -> None:
        self.submit("set_lr", lr_g=lr_g, lr_d=lr_d, now=now)

    def reset_lr(self, now: bool = False) -> None:
        self.submit("reset_lr", now=now)


def checked(op: str, args: Mapping[str, object]) -> tuple[RequestSpec, object]:
    """The table's row for ``op`` and its arguments' value (RequestError for anything else)."""
    spec = REQUESTS.get(op)
    if spec is None:
        raise RequestError(f"unknown request {op!r}")
    return spec, spec.check(args)
