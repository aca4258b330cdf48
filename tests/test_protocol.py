"""The wire protocol: every event survives the trip; nothing malformed gets past the reader
as anything but a ProtocolError."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from tui_gan.core import events as ev
from tui_gan.core.history import HistoryRow
from tui_gan.core.runview import RunView
from tui_gan.service import protocol

from .app_support import synthetic_history


def images(n: int = 4, size: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def started(**changes) -> ev.Started:
    values = dict(device="cpu", preset="cpu", config={"epochs": 5, "image_size": 8, "batch_size": 4, "ngf": 8, "ndf": 8},
                  dataset="builtin", dataset_size=64, steps_per_epoch=16, total_steps=80, run_dir="/r",
                  step=10, epoch=0, resumed_from=None, history=synthetic_history(5), lr_g=2e-4, lr_d=1e-4,
                  skipped=["bad.png"], progression=[(1, images(seed=1)), (2, images(seed=2))])
    values.update(changes)
    return ev.Started(**values)


def progress(step: int = 12, row: HistoryRow | None = None) -> ev.Progress:
    return ev.Progress(step, 0, step, 16, 80, 0.5, 2.0, 0.7, 0.3, 0.2, 400.0, None, 3.0, 2e-4, 1e-4, row)


def round_trip(event):
    data = b"".join(protocol.event_frames(event))
    reader = protocol.FrameReader()
    frames = reader.feed(data)
    progression = [(h["epoch"], a[0]) for h, a in frames[:-1]]
    assert all(h["kind"] == "epoch" for h, _ in frames[:-1])
    return protocol.decode_event(*frames[-1], progression)


def assert_same(a, b):
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b)
        for name in a.__dataclass_fields__:
            assert_same(getattr(a, name), getattr(b, name))
    else:
        assert a == b


EVENTS = [
    ev.Loading("decoding", 5, 10),
    started(),
    progress(row=synthetic_history(1)[0]),
    progress(),
    ev.Quality(16, 1, 12.5, 0.9, [1.0, 2.0, 3.0], 512, 0.7),
    ev.Interpolation(16, 1, np.zeros((6, 2, 3, 8, 8), np.uint8)),
    ev.Samples(16, 1, images()),
    # a conditional run's: the rows' classes, the walks' classes, a class with too few images (NaN)
    ev.Samples(16, 1, images(), "average", [3, 4]),
    ev.Interpolation(16, 1, np.zeros((6, 2, 3, 8, 8), np.uint8), [0, 9]),
    ev.Quality(16, 1, 12.5, 0.9, [1.0, 2.0, 3.0], 512, 0.7, None, [40.5, math.nan, 61.25]),
    ev.EpochEnd(1, 16, "/r/samples/epoch-0001.png", "/r/checkpoints/last.pt", images()),
    ev.SnapshotSaved(16, "/r/c.pt", "/r/s.png"),
    ev.Exported(16, "/r/e.png"),
    ev.LrPending(1e-4, 5e-5),
    ev.LrApplied(1e-4, 5e-5),
    ev.Paused(16, "epoch end"),
    ev.Resumed(16),
    ev.EngineWarning("careful"),
    ev.Finished("completed", 80, 5, 10.0, 400.0, "/r/last.pt", "/r/final.png"),
    ev.Finished("stopped", 80, 5, 10.0, 400.0, "/r/best.pt", None, "no space left on device", 64),
    ev.NewestCheckpoint(64, "/r/checkpoints/last.pt", 1.7e9),
    ev.WritesFailing("/r/metrics.csv", "no space left on device", "metrics rows from step 70", 1.7e9),
    ev.WritesRecovered("/r/checkpoints/last.pt", "last.pt of step 96", 80.5, ["14 metrics rows"],
                       ["samples/epoch-0005.png"]),
    ev.Error("boom", None),
    ev.AutoPauseSet(True),
    ev.Attached(started(), [("line", "good")], None, progress(), ev.Samples(3, 0, images()), "requested",
                ev.LrPending(1e-4, 1e-4), True, 2, ev.DeviceStatus("NVIDIA H200", 40 << 30, 140 << 30, 38 << 30, 97.0),
                ev.NewestCheckpoint(16, "/r/checkpoints/last.pt", 1.7e9),
                ev.WritesFailing("/r/checkpoints/last.pt", "disk quota exceeded", "last.pt of step 32", 1.7e9)),
    ev.Attached(None, [], ev.Loading("choosing a device"), None, None, None, None, False, 1),
    ev.Disconnected("gone", False),
    ev.DeviceStatus("NVIDIA H200", 40 << 30, 140 << 30, 38 << 30, 97.0),
    ev.DeviceStatus("NVIDIA A100", 1 << 30, 80 << 30, 1 << 29, None, "utilisation needs nvidia-ml-py"),
]


def test_every_event_class_is_covered_here():
    assert {type(e) for e in EVENTS} == set(protocol.EVENT_TYPES.values())


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_event_survives_the_trip(event):
    assert_same(event, round_trip(event))


def test_a_torch_tensor_travels_as_its_bytes():
    torch = pytest.importorskip("torch")
    tensor = torch.arange(48, dtype=torch.uint8).reshape(1, 3, 4, 4)
    back = round_trip(ev.Samples(1, 0, tensor))
    assert isinstance(back.images, np.ndarray) and np.array_equal(back.images, tensor.numpy())


def test_frames_arrive_whole_whatever_the_chunks():
    data = b"".join(protocol.frame(*protocol.encode_event(e)) for e in EVENTS[:8])
    for chunk in (1, 7, 4096):
        reader, frames = protocol.FrameReader(), []
        for i in range(0, len(data), chunk):
            frames += reader.feed(data[i:i + chunk])
        assert len(frames) == 8 and reader.pending == 0


@pytest.mark.parametrize(("data", "why"), [
    (protocol.PREFIX.pack(protocol.MAX_HEADER + 1, 0), "too large"),
    (protocol.PREFIX.pack(10, protocol.MAX_BODY + 1), "too large"),
    (protocol.PREFIX.pack(3, 0) + b"\xff\xfe\x00", "not JSON"),
    (protocol.PREFIX.pack(2, 0) + b"[]", "no 'kind'"),
    (protocol.PREFIX.pack(13, 0) + b'{"kind":true}', "no 'kind'"),
])
def test_malformed_frames_are_refused(data, why):
    with pytest.raises(protocol.ProtocolError, match=why):
        protocol.FrameReader().feed(data)


def event_frame(spec: dict, body: bytes = b"") -> tuple[dict, list]:
    head = json.dumps({"kind": "event", **spec}).encode()
    return protocol.FrameReader().feed(protocol.PREFIX.pack(len(head), len(body)) + head + body)[0]


@pytest.mark.parametrize("spec", [
    {"type": "Nope", "fields": {}},
    {"type": "Resumed", "fields": {"step": 1, "evil": 2}},
    {"type": "Resumed"},
    {"type": "Resumed", "fields": {}},  # a missing field
    {"type": "Progress", "fields": {"row": [1, 2]}},
    {"type": "Attached", "fields": {"started": None, "log": [["x", "no such tone"]]}},
    {"type": "Samples", "fields": {"step": 1, "epoch": 0, "images": {"array": 3}}},
])
def test_malformed_events_are_refused(spec):
    header, arrays = event_frame(spec)
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_event(header, arrays, [])


@pytest.mark.parametrize("arrays", [
    [{"dtype": "|u1", "shape": [100]}],  # more than the body holds
    [{"dtype": "|O", "shape": [1]}],  # objects: never
    [{"dtype": "|u1", "shape": [-1]}],
    [{"dtype": "|u1"}],
    "not a list",
])
def test_arrays_must_add_up_to_the_body(arrays):
    head = json.dumps({"kind": "event", "arrays": arrays}).encode()
    with pytest.raises(protocol.ProtocolError):
        protocol.FrameReader().feed(protocol.PREFIX.pack(len(head), 8) + head + b"\0" * 8)


def test_random_bytes_never_raise_anything_but_protocol_errors():
    rng = random.Random(1)
    valid = protocol.frame(*protocol.encode_event(EVENTS[6]))
    for trial in range(400):
        if trial % 2:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        try:
            for header, arrays in protocol.FrameReader().feed(data):
                if header["kind"] == "event":
                    protocol.decode_event(header, arrays, [])
        except protocol.ProtocolError:
            pass


def test_the_mirror_shows_a_late_viewer_the_run_so_far():
    mirror = RunView(log_lines=200)
    first = started(progression=[(1, images(seed=1))], history=synthetic_history(3))
    row = synthetic_history(4)[-1]
    for event in [ev.Loading("x"), first, progress(12, row), progress(13), ev.Quality(14, 1, 9.0, 1.0, [9.0], 8, 0.1),
                  ev.EpochEnd(2, 14, "p", "c", images(seed=2)), ev.Samples(14, 2, images(seed=3)),
                  ev.LrPending(1e-5, 1e-5), ev.AutoPauseSet(True), ev.Paused(14, "epoch end"),
                  ev.LrApplied(3e-5, 4e-5)]:
        mirror.apply(event)
    snap = mirror.attached(viewers=2)
    assert snap.started.history[:3] == first.history and snap.started.history[3] == row
    assert snap.started.history[4].swd == 9.0 and len(snap.started.history) == 5
    assert [e for e, _ in snap.started.progression] == [1, 2]
    assert (snap.started.lr_g, snap.started.lr_d) == (3e-5, 4e-5) and snap.lr_pending is None
    assert snap.progress.step == 13 and snap.samples.step == 14 and snap.paused == "epoch end" and snap.auto_pause
    texts = [text for text, _ in snap.log]
    assert texts[0].startswith("training on cpu") and any("paused at step 14" in t for t in texts)
    assert not any("step 12/80" in t for t in texts)  # progress lines are the status panel's
    mirror.apply(ev.Resumed(14))
    assert mirror.attached(1).paused is None
    assert len(first.history) == 3  # the engine's own lists are not touched
