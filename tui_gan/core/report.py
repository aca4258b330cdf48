"""Events as lines of text, written once: the headless log prints them and the app's
event log shows them.

``Report.lines(event)`` keeps the little context a line needs (the run's epochs, the newest
progress) and returns the event's lines, each with a tone that a viewer may colour.
Progress and loading lines are ``Tone.STATUS``: the headless log prints them every few
seconds; the app shows that state in its status panel instead of its log, and only lets
the report ``observe`` those events (formatting a line four times a second that nobody
reads would cost the UI thread for nothing).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import events as ev
from .contract import Event


class Tone(enum.Enum):
    PLAIN = "plain"
    GOOD = "good"
    WARNING = "warning"
    ERROR = "error"
    DONE = "done"
    STATUS = "status"


@dataclass(frozen=True)
class Line:
    text: str
    tone: Tone = Tone.PLAIN
    detail: str = ""
    """More for a log that has room (the headless one): appended after ' · '."""

    def full(self) -> str:
        return f"{self.text} · {self.detail}" if self.detail else self.text


def format_duration(seconds: float | None) -> str:
    """1h02m, 3m05s, 42s; '?' when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


GIB = 1024**3


def format_device_status(e: ev.DeviceStatus) -> str:
    """'41.2/139.8 GiB · 97% busy' (the percentage left out where unknown)."""
    busy = f" · {e.utilisation:.0f}% busy" if e.utilisation is not None else ""
    return f"{e.memory_used / GIB:.1f}/{e.memory_total / GIB:.1f} GiB{busy}"


class Report:
    """Turns each event of one run's stream into lines of text."""

    def __init__(self) -> None:
        self.epochs = 0
        self.class_names: list[str] = []
        """A conditional run's classes, to name the worst one in a quality line."""
        self.last_progress: ev.Progress | None = None
        self.last_device: ev.DeviceStatus | None = None
        self._device_note = ""
        self._writers: dict[type, Callable[[Any], list[Line]]] = {
            ev.Loading: self.loading,
            ev.Started: self.started,
            ev.Progress: self.progress,
            ev.Quality: self.quality,
            ev.Interpolation: self.interpolation,
            ev.Samples: self.samples,
            ev.EpochEnd: self.epoch_end,
            ev.SnapshotSaved: self.snapshot_saved,
            ev.Exported: self.exported,
            ev.LrPending: self.lr_pending,
            ev.LrApplied: self.lr_applied,
            ev.Paused: self.paused,
            ev.Resumed: self.resumed,
            ev.EngineWarning: self.warning,
            ev.Finished: self.finished,
            ev.Error: self.error,
            ev.AutoPauseSet: self.auto_pause,
            ev.Attached: self.attached,
            ev.Disconnected: self.disconnected,
            ev.DeviceStatus: self.device_status,
            ev.NewestCheckpoint: self.newest_checkpoint,
            ev.WritesFailing: self.writes_failing,
            ev.WritesRecovered: self.writes_recovered,
        }

    def handles(self, event_type: type) -> bool:
        return event_type in self._writers

    def observe(self, event: Event) -> None:
        """Keep the context later lines need, without writing this event's."""
        if isinstance(event, ev.Attached) and event.started is not None:
            self.observe(event.started)
            if event.progress is not None:
                self.observe(event.progress)
        elif isinstance(event, ev.Started):
            self.epochs = event.config["epochs"]
            self.class_names = list(event.config.get("class_names") or [])
        elif isinstance(event, ev.Progress):
            self.last_progress = event
        elif isinstance(event, ev.DeviceStatus):
            self.last_device = event

    def lines(self, event: Event) -> list[Line]:
        """The event's lines: none for events with nothing to say (samples) or of a kind this
        report does not know (a newer engine's)."""
        self.observe(event)
        writer = self._writers.get(type(event))
        return writer(event) if writer is not None else []

    # ----------------------------------------------------------------- not events

    @staticmethod
    def stopping() -> Line:
        """When a viewer asks the engine to stop."""
        return Line("stopping: saving checkpoints/last.pt…", Tone.WARNING)

    @staticmethod
    def saved_note(e: ev.Error) -> str:
        """What an error left on disk."""
        return f"checkpoint saved to {e.checkpoint_path}" if e.checkpoint_path else "no checkpoint could be saved"

    @staticmethod
    def checkpoint_age(e: ev.NewestCheckpoint | None, now: float) -> str:
        """'step 1,200, 3m05s ago' (the status panel's last checkpoint), '–' before the first."""
        return "–" if e is None else f"step {e.step:,}, {format_duration(max(0.0, now - e.wall_time))} ago"

    @staticmethod
    def loading_detail(e: ev.Loading) -> str:
        """A short form of a loading line, for a status panel."""
        return e.message + (f" {e.done * 100 // e.total}%" if e.total else "")

    # ----------------------------------------------------------------- one per event

    def loading(self, e: ev.Loading) -> list[Line]:
        if not e.total:
            return [Line(f"{e.message}…", Tone.STATUS)]
        return [Line(f"{e.message}… {e.done * 100 // e.total}% ({e.done:,}/{e.total:,})", Tone.STATUS)]

    def started(self, e: ev.Started) -> list[Line]:
        cfg = e.config
        size = cfg["image_size"]
        resumed = f", resumed from step {e.step}" if e.resumed_from else ""
        options = [f"--{name.replace('_', '-')}" for name in ("ema", "augment", "sync_bn") if cfg.get(name)]
        names = cfg.get("class_names") or []
        classes = (f"conditional on {len(names)} classes ({', '.join(names[:5])}{', …' if len(names) > 5 else ''}) · "
                   if cfg.get("conditional") else "")
        detail = (f"{e.precision} ({e.precision_why}) · " + (f"with {' '.join(options)} · " if options else "") + classes
                  + f"ngf={cfg['ngf']}, ndf={cfg['ndf']} · "
                  f"{e.steps_per_epoch} steps/epoch · run {e.run_dir}"
                  + (f" · checkpoint {e.resumed_from}" if e.resumed_from else ""))
        # (files that could not be read are the engine's warning, which comes just before)
        return [Line(f"training on {e.device} in {e.precision}, preset {e.preset} ({size}×{size}, batch {cfg['batch_size']}), "
                     f"data {e.dataset}{resumed}", detail=detail)]

    def progress(self, p: ev.Progress) -> list[Line]:
        current = min(p.epoch + 1, self.epochs) if self.epochs else p.epoch + 1  # the last report follows the end
        return [Line(
            f"epoch {current}/{self.epochs} step {p.step}/{p.total_steps} | "
            f"loss_D {p.loss_d:.3f} loss_G {p.loss_g:.3f} | "
            f"D(x) {p.d_x:.3f} D(G(z)) {p.d_g_z1:.3f}/{p.d_g_z2:.3f} | "
            f"{p.images_per_sec:,.0f} img/s | ETA {format_duration(p.eta_s)}"
            + (f" | GPU {format_device_status(self.last_device)}" if self.last_device else ""), Tone.STATUS)]

    def quality(self, q: ev.Quality) -> list[Line]:
        levels = "SWD per level " + " / ".join(f"{v:.1f}" for v in q.swd_levels)
        return [Line(f"quality at step {q.step}: SWD {q.swd:.2f}{' (best)' if q.best else ''}, diversity "
                     f"{q.diversity:.2f}{self._per_class(q)} ({q.images} images, {q.seconds:.1f}s)",
                     detail=f"saved {q.best} · {levels}" if q.best else levels)]

    def _per_class(self, q: ev.Quality) -> str:
        """', per class SWD 40.1 mean, 52.3 worst (7)' for a conditional run's measurement."""
        measured = [(swd, c) for c, swd in enumerate(q.class_swd or []) if swd == swd]  # NaN: not measured
        if not measured:
            return ""
        worst, c = max(measured)
        name = self.class_names[c] if c < len(self.class_names) else str(c)
        return f", per class SWD {sum(v for v, _ in measured) / len(measured):.1f} mean, {worst:.1f} worst ({name})"

    def interpolation(self, e: ev.Interpolation) -> list[Line]:
        frames, walks = e.frames.shape[:2]
        return [Line(f"latent walks at step {e.step}: {walks} walks of {frames} frames")]

    def device_status(self, e: ev.DeviceStatus) -> list[Line]:
        """Every few seconds: the status panel shows it and each progress line ends with it;
        a line of its own only the first time it says why utilisation is unknown."""
        if e.note == self._device_note:
            return []
        self._device_note = e.note
        return [Line(f"GPU {e.name}: {e.note}")] if e.note else []

    def samples(self, e: ev.Samples) -> list[Line]:
        return []  # a few times a minute: the viewer shows them, the log would only repeat itself

    def epoch_end(self, e: ev.EpochEnd) -> list[Line]:
        p = self.last_progress
        stats = f" · loss_D {p.loss_d:.3f} loss_G {p.loss_g:.3f}" if p else ""
        samples = f" · samples {e.sample_path}" if e.sample_path else ""  # '': its grid could not be written
        return [Line(f"epoch {e.epoch}/{self.epochs} done at step {e.step}{stats}{samples}")]

    def snapshot_saved(self, e: ev.SnapshotSaved) -> list[Line]:
        samples = f" (samples {e.sample_path})" if e.sample_path else ""
        return [Line(f"snapshot saved: {e.checkpoint_path}{samples}", Tone.GOOD)]

    def exported(self, e: ev.Exported) -> list[Line]:
        return [Line(f"samples exported: {e.path}", Tone.GOOD)]

    def lr_pending(self, e: ev.LrPending) -> list[Line]:
        return [Line(f"learning rates G {e.lr_g:g}, D {e.lr_d:g} will apply at the end of this epoch")]

    def lr_applied(self, e: ev.LrApplied) -> list[Line]:
        return [Line(f"learning rates applied: G {e.lr_g:g}, D {e.lr_d:g}", Tone.GOOD)]

    def paused(self, e: ev.Paused) -> list[Line]:
        why = f" ({e.reason})" if e.reason in ("epoch end", "diverged") else ""
        return [Line(f"paused at step {e.step}{why}")]

    def resumed(self, e: ev.Resumed) -> list[Line]:
        return [Line(f"resumed at step {e.step}")]

    def warning(self, e: ev.EngineWarning) -> list[Line]:
        return [Line(f"warning: {e.message}", Tone.WARNING)]

    def finished(self, e: ev.Finished) -> list[Line]:
        if e.save_failed:
            return [self.unsaved(e)]
        if e.checkpoint_path is None:
            return [Line(f"stopped before training started: {e.reason}", Tone.DONE)]
        return [Line(
            f"finished ({e.reason.replace('_', ' ')}): {e.step} steps, epoch {e.epoch}/{self.epochs}, "
            f"{format_duration(e.elapsed_s)} training, {e.images_per_sec:,.0f} img/s · checkpoint {e.checkpoint_path}",
            Tone.DONE)]

    @staticmethod
    def unsaved(e: ev.Finished) -> Line:
        """A run that ended without its final checkpoint: what is on disk, and how to go on from it."""
        how = "finished" if e.reason in ("completed", "max_steps") else "stopped"
        if e.checkpoint_path is None:
            newest = "no checkpoint of this run is complete"
        else:
            newest = (f"the newest complete checkpoint is {e.checkpoint_path} (step {e.checkpoint_step}); "
                      f"continue from it with: tui-gan --resume {e.checkpoint_path}")
        return Line(f"{how} ({e.reason.replace('_', ' ')}) at step {e.step}, but the final checkpoint could not "
                    f"be written ({e.save_failed}): {newest}", Tone.ERROR)

    def newest_checkpoint(self, e: ev.NewestCheckpoint) -> list[Line]:
        return []  # EpochEnd, SnapshotSaved and Quality say what was saved

    def writes_failing(self, e: ev.WritesFailing) -> list[Line]:
        return [Line(f"warning: cannot write {e.path} ({e.reason}): {e.what} not saved. Training goes on; "
                     "checkpoints and sample grids are tried again at each save, metrics rows and TensorBoard "
                     "records are kept until they can be written", Tone.WARNING)]

    def writes_recovered(self, e: ev.WritesRecovered) -> list[Line]:
        late = f"; written late: {', '.join(e.late)}" if e.late else ""
        lost = f"; not written: {', '.join(e.lost)}" if e.lost else ""
        return [Line(f"writing again: {e.what} saved to {e.path} after {format_duration(e.seconds)} of failed "
                     f"writes{late}{lost}", Tone.GOOD)]

    def error(self, e: ev.Error) -> list[Line]:
        return [Line(f"error: {e.message}; {self.saved_note(e)}", Tone.ERROR)]

    def auto_pause(self, e: ev.AutoPauseSet) -> list[Line]:
        return [Line(f"pause at every epoch end: {'on' if e.on else 'off'}")]

    def attached(self, e: ev.Attached) -> list[Line]:
        """The recent lines of the run's log, then a line saying where the run is now."""
        lines = [Line(text, Tone(tone)) for text, tone in e.log]
        if e.started is None:
            return lines
        step = e.progress.step if e.progress is not None else e.started.step
        others = e.viewers - 1
        with_others = f", {others} other viewer{'s' if others != 1 else ''}" if others else ""
        return [*lines, Line(f"attached to the run at step {step}{with_others}", Tone.GOOD)]

    def disconnected(self, e: ev.Disconnected) -> list[Line]:
        return [Line(e.message, Tone.WARNING if e.service_running else Tone.ERROR)]
