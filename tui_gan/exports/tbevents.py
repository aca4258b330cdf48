"""An event file written with TensorBoard's own classes (the tensorboard extra): its Event
and Summary protobufs, and its RecordWriter, which frames each event as a TFRecord with the
CRC32Cs both of TensorBoard's loaders check.

This is the one module that imports the library, and it is imported only when a file is
written (``exports.event_file_module``): the service imports tensorboard_live.py whether or
not its run asks for TensorBoard. It uses the RecordWriter rather than the EventFileWriter
above it (the one torch.utils.tensorboard wraps), which names the file itself, runs a
thread of its own and makes its folder through ``tensorboard.compat.tf``, which imports
TensorFlow where that is installed. Here the caller opens the file: its name decides the
order TensorBoard reads a folder's files in (tensorboard.py), and export-tb writes under
another name until the file is complete.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError
from tensorboard.compat.proto.event_pb2 import Event, SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.record_writer import RecordWriter

#: What the first event of an event file says it is (the version the loaders purge by).
FILE_VERSION = "brain.Event:2"
#: PIL's image mode -> Summary.Image colorspace (1 grey, 2 grey and alpha, 3 RGB, 4 RGBA).
COLORSPACES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


class EventFile:
    """Events written to an open binary file: the file version, a SessionLog START at
    ``start_step`` (``file_start``: unless the caller adds them itself, ``wall_time`` None),
    then whatever is added. The RecordWriter writes each record in one piece and ``add``
    flushes, so a reader (TensorBoard tailing a live run) never sees half of one unless the
    process dies mid-write, and the loaders stop cleanly at such a torn last record."""

    def __init__(self, out: BinaryIO, wall_time: float | None = None, start_step: int = 0) -> None:
        self.records = RecordWriter(out)
        if wall_time is not None:
            self.add(*file_start(wall_time, start_step))

    def add(self, *events: Event) -> None:
        for event in events:
            self.records.write(event.SerializeToString())
        self.records.flush()

    def close(self) -> None:
        self.records.close()


def file_start(wall_time: float, start_step: int) -> list[Event]:
    """What an event file begins with: its version, and the step it takes over from."""
    return [Event(wall_time=wall_time, file_version=FILE_VERSION), session_start(wall_time, start_step)]


def session_start(wall_time: float, step: int) -> Event:
    """SessionLog START at ``step``, as ``purge_step`` of torch's and tensorboardX's
    SummaryWriter writes it: TensorBoard's Python loader drops what earlier files logged at
    this step and after (the Rust one drops a tag's points at and after each step it sees
    again)."""
    return Event(wall_time=wall_time, step=step, session_log=SessionLog(status=SessionLog.START))


def scalars_event(wall_time: float, step: int, values: list[tuple[str, float]]) -> Event:
    """One event holding a scalar per tag."""
    summary = Summary(value=[Summary.Value(tag=tag, simple_value=value) for tag, value in values])
    return Event(wall_time=wall_time, step=step, summary=summary)


def image_event(wall_time: float, step: int, tag: str, png: bytes) -> Event:
    """One event holding ``png`` as it is (not decoded and encoded again). ValueError when
    it is no PNG, or one TensorBoard's image summary does not describe (a palette one)."""
    try:
        with Image.open(io.BytesIO(png)) as header:  # reads the header, not the pixels
            kind, mode, (width, height) = header.format, header.mode, header.size
    except UnidentifiedImageError:
        kind = mode = None
    if kind != "PNG":
        raise ValueError("not a PNG image")
    if mode not in COLORSPACES:
        raise ValueError(f"a PNG of mode {mode}, not grey or RGB")
    image = Summary.Image(height=height, width=width, colorspace=COLORSPACES[mode], encoded_image_string=png)
    return Event(wall_time=wall_time, step=step, summary=Summary(value=[Summary.Value(tag=tag, image=image)]))
