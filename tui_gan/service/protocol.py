"""The wire format between a training service and its viewers: plain data, never pickle.

A frame is two big-endian uint32 lengths, a JSON header of the first length and a body of
the second: the raw bytes of the frame's arrays, one after another (sample grids travel as
uint8 bytes, not as numbers in JSON). The header names the frame's ``kind``:

    hello     viewer -> service   {"version", "want": "view" | "status"}
    welcome   service -> viewer   {"version", "run_dir", "pid"}
    event     service -> viewer   {"type": an event class of core/events.py, "fields", "arrays"}
    epoch     service -> viewer   one epoch-end sample grid of the run so far (sent before the
                                  event that holds the progression, so no frame grows with it)
    status    service -> viewer   a one-shot summary for ``tui-gan ls`` (see hub.py)
    request   viewer -> service   {"op", "args"}: pause, resume, stop, snapshot, ...
    failed    service -> viewer   the run could not start: {"message"} (a one-line UserError)
    refused   either way          {"message"}: why this connection is being closed

Anything malformed (a bad length, a header that is not JSON, an unknown event or field, an
array whose bytes do not add up) raises ProtocolError: the receiver closes that one
connection and nothing else. Events decode into the dataclasses of core/events.py with
numpy arrays where the engine had tensors; NaN travels as JSON's NaN (both ends are ours).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from collections.abc import Sequence
from typing import Any, cast

from ..core import events as ev
from ..core.contract import EVENT_CLASSES, Event
from ..core.history import COLUMNS, HistoryRow, rows_from_table

VERSION = 4
"""2: the DeviceStatus event, and Attached.device_status (a version-1 viewer would close at them).
3: the events of failing writes (NewestCheckpoint, WritesFailing, WritesRecovered), Attached's
last_checkpoint and writes_failing, Finished's save_failed and checkpoint_step.
4: a conditional run's classes: Samples.classes, Interpolation.classes, Quality.class_swd, and
the show_classes request."""
PREFIX = struct.Struct(">II")
MAX_HEADER = 8 << 20
"""A header holds at most a run's history (13 numbers a row): 8 MiB is ~60,000 rows."""
MAX_BODY = 256 << 20
"""The largest array an event carries: latent walks at 256×256, 151 MiB."""
MAX_REQUEST = 64 << 10
"""What a viewer may send in one frame: requests are a few dozen bytes."""

EVENT_TYPES: dict[str, type] = {cls.__name__: cls for cls in EVENT_CLASSES}
#: Fields that hold an image array (uint8 N, C, H, W or, for walks, frames, walks, C, H, W).
ARRAY_FIELDS = {"images", "frames"}
#: Fields that hold other events (Attached's parts).
NESTED_FIELDS = {"started", "loading", "progress", "samples", "lr_pending", "device_status", "last_checkpoint",
                 "writes_failing"}
#: A run's history travels as a float64 (rows, columns) array: as JSON it would outgrow the
#: header limit after ~30 hours of rows.
HISTORY = "history"


class ProtocolError(Exception):
    """A frame this side cannot accept: the connection it came on is closed."""


# ----------------------------------------------------------------------------- frames


def frame(header: dict[str, Any], arrays: Sequence[Any] = ()) -> bytes:
    """One frame: ``header`` as JSON, then the bytes of ``arrays`` (numpy, or anything
    ``numpy.asarray`` takes: a CPU tensor) in order."""
    import numpy as np

    blobs = [np.ascontiguousarray(np.asarray(a)) for a in arrays]
    if blobs:
        header = {**header, "arrays": [_describe(b) for b in blobs]}
    head = json.dumps(header, separators=(",", ":"), default=_plain).encode()
    body_len = sum(b.nbytes for b in blobs)
    return b"".join([PREFIX.pack(len(head), body_len), head, *(b.tobytes() for b in blobs)])


def _plain(value: Any) -> Any:
    """A numpy or torch scalar that slipped into an event, as the Python number it is."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} cannot travel in an event")


def _describe(array: Any) -> dict[str, Any]:
    return {"dtype": array.dtype.str, "shape": list(array.shape)}


class FrameReader:
    """Splits a byte stream into (header, arrays) frames, checking every length first so
    that a hostile or broken peer costs at most ``max_header`` + ``max_body`` bytes."""

    def __init__(self, max_header: int = MAX_HEADER, max_body: int = MAX_BODY) -> None:
        self.max_header = max_header
        self.max_body = max_body
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], list[Any]]]:
        """Take ``data``; return the frames it completes (ProtocolError if one is bad)."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= PREFIX.size:
            head_len, body_len = PREFIX.unpack_from(self._buffer)
            if head_len > self.max_header or body_len > self.max_body:
                raise ProtocolError(f"frame too large ({head_len} + {body_len} bytes)")
            end = PREFIX.size + head_len + body_len
            if len(self._buffer) < end:
                break
            head = bytes(self._buffer[PREFIX.size:PREFIX.size + head_len])
            body = bytes(self._buffer[PREFIX.size + head_len:end])
            del self._buffer[:end]
            frames.append(parse_frame(head, body))
        return frames


def parse_frame(head: bytes, body: bytes) -> tuple[dict[str, Any], list[Any]]:
    """A frame's header (a JSON object with a string ``kind``) and its arrays."""
    try:
        header = json.loads(head.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, or nested past the stack
        raise ProtocolError(f"frame header is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict) or not isinstance(header.get("kind"), str):
        raise ProtocolError("frame header has no 'kind'")
    return header, _arrays(header.get("arrays", []), body)


def _arrays(described: Any, body: bytes) -> list[Any]:
    import numpy as np

    if not isinstance(described, list):
        raise ProtocolError("frame 'arrays' is not a list")
    arrays, offset = [], 0
    for d in described:
        try:
            dtype = np.dtype(d["dtype"])
            shape = tuple(int(n) for n in d["shape"])
            if dtype.kind not in "uif" or any(n < 0 for n in shape) or len(shape) > 8:
                raise ValueError("unexpected array")
            size = math.prod(shape) * dtype.itemsize
            if offset + size > len(body):
                raise ValueError("array runs past the frame")
            arrays.append(np.frombuffer(body, dtype, math.prod(shape), offset).reshape(shape))
        except (TypeError, KeyError, ValueError, OverflowError) as exc:
            raise ProtocolError(f"bad array in frame ({type(exc).__name__})") from None
        offset += size
    if offset != len(body):
        raise ProtocolError("frame body does not match its arrays")
    return arrays


# ----------------------------------------------------------------------------- events


def encode_event(event: Event) -> tuple[dict[str, Any], list[Any]]:
    """An event as a frame's header and arrays. The progression of a Started (or of an
    Attached's Started) is left out: ``epoch_frames`` sends it, one frame per epoch."""
    arrays: list[Any] = []
    return {"kind": "event", **_event_fields(event, arrays)}, arrays


def epoch_frames(event: Event) -> list[bytes]:
    """The ``epoch`` frames that go before ``event``: its run's epoch-end samples."""
    started = event.started if isinstance(event, ev.Attached) else event
    if not isinstance(started, ev.Started):
        return []
    return [frame({"kind": "epoch", "epoch": int(epoch)}, [images]) for epoch, images in started.progression]


def event_frames(event: Event) -> list[bytes]:
    """Everything that carries ``event``: its epoch frames, then its own frame."""
    return [*epoch_frames(event), frame(*encode_event(event))]


def _event_fields(event: Event, arrays: list[Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if f.name in ARRAY_FIELDS and hasattr(value, "shape"):  # (Quality.images is a count)
            fields[f.name] = {"array": len(arrays)}
            arrays.append(value)
        elif f.name in NESTED_FIELDS and value is not None:
            fields[f.name] = _event_fields(value, arrays)
        elif f.name == HISTORY:
            import numpy as np

            fields[f.name] = {"array": len(arrays)}
            arrays.append(np.asarray(value, dtype=np.float64).reshape(-1, len(COLUMNS)))
        elif f.name == "progression":
            fields[f.name] = []
        else:
            fields[f.name] = value
    return {"type": type(event).__name__, "fields": fields}


def decode_event(header: dict[str, Any], arrays: list[Any], progression: list[tuple[int, Any]]) -> Event:
    """The event a frame holds; ``progression`` (from the ``epoch`` frames before it) goes
    into its Started."""
    try:
        event = _build(header, arrays, progression)
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a malformed event breaks, it is the frame's fault
        raise ProtocolError(f"malformed event ({type(exc).__name__}: {exc})") from None
    return cast(Event, event)  # _build makes only EVENT_TYPES, the contract's event classes


def _build(spec: Any, arrays: list[Any], progression: list[tuple[int, Any]]) -> object:
    if not isinstance(spec, dict) or not isinstance(spec.get("fields"), dict):
        raise ProtocolError("event without fields")
    type_name = spec.get("type")
    cls = EVENT_TYPES.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        raise ProtocolError(f"unknown event type {spec.get('type')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    given = spec["fields"]
    if not set(given) <= names:
        raise ProtocolError(f"{cls.__name__} has no field {sorted(set(given) - names)[0]!r}")
    values: dict[str, Any] = {}
    for name, value in given.items():
        if name in ARRAY_FIELDS and isinstance(value, dict):
            values[name] = arrays[int(value["array"])]
        elif name in NESTED_FIELDS and value is not None:
            values[name] = _build(value, arrays, progression)
        elif name == "progression":
            values[name] = list(progression)
        elif name == HISTORY:
            table = arrays[int(value["array"])]
            if table.ndim != 2 or table.shape[1] != len(COLUMNS):
                raise ProtocolError("history of the wrong shape")
            values[name] = rows_from_table(COLUMNS, table.tolist())
        elif name == "row" and value is not None:
            values[name] = _row(value)
        elif name == "log":
            values[name] = [(str(text), _tone(tone)) for text, tone in value]
        else:
            values[name] = value
    return cls(**values)


def _row(values: Any) -> HistoryRow:
    if not isinstance(values, list) or len(values) != len(COLUMNS):
        raise ProtocolError("history row of the wrong length")
    return HistoryRow.from_values(COLUMNS, [float(v) for v in values])


def _tone(name: Any) -> str:
    from ..core.report import Tone

    return Tone(name).value
