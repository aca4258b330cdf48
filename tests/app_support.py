"""Helpers for the app tests: a scripted engine for deterministic screens, an engine served
on a real socket in this process (as a training service serves it), and waiting."""

from __future__ import annotations

import math
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tui_gan.core import events as ev
from tui_gan.core.control import Control
from tui_gan.core.errors import UserError
from tui_gan.core.history import HistoryRow
from tui_gan.core.rundir import RunDir
from tui_gan.service.client import Connection, RemoteRun
from tui_gan.service.hub import Hub


def synthetic_history(n: int = 120) -> list[HistoryRow]:
    rows = []
    for i in range(n):
        step = (i + 1) * 10
        loss_d = 1.4 * math.exp(-i / 40) + 0.35 + 0.08 * math.sin(i / 3)
        loss_g = 0.9 + 2.5 * (1 - math.exp(-i / 30)) + 0.3 * math.sin(i / 5)
        d_x = 0.55 + 0.3 * (1 - math.exp(-i / 30))
        rows.append(HistoryRow(step, step // 390, loss_d, loss_g, d_x, 0.3, 0.2, 2e-4, 2e-4, 400.0, i * 2.0))
    return rows


class ScriptedEngine:
    """Yields a fixed state, then serves control requests like the real engine, until stopped.

    ``class_names``: a conditional run's classes; ``samples`` is then every class's row of
    ``SAMPLE_COLUMNS``, and each Samples event carries up to ``SHOWN_CLASSES`` of those rows
    from the class asked for (show_classes), as the engine's do."""

    SAMPLE_COLUMNS = 8  # the engine's (engine/conditional.py), rows of a conditional run's samples
    SHOWN_CLASSES = 10

    def __init__(self, run_dir: str = "runs/demo", samples=None, history=None, class_names=None):
        self.control = Control()
        self.run_dir = run_dir
        self.all_samples = samples
        self.class_names = class_names
        self.first_class = 0
        self.classes_asked: list[int] = []
        """Every show_classes request's first class, in order."""
        self.history = synthetic_history() if history is None else history
        self.step = self.history[-1].step if self.history else 0
        self.auto_pause_shown = False

    @property
    def row_classes(self):
        """The classes of the samples' rows (None: the tutorial's GAN), as the engine's class_rows."""
        if not self.class_names:
            return None
        count = len(self.class_names)
        return [(self.first_class + i) % count for i in range(min(self.SHOWN_CLASSES, count))]

    @property
    def samples(self):
        """The samples shown: of a conditional run, the rows of ``row_classes``."""
        classes = self.row_classes
        if classes is None or self.all_samples is None:
            return self.all_samples
        per = self.SAMPLE_COLUMNS
        return np.concatenate([self.all_samples[c * per:(c + 1) * per] for c in classes])

    def samples_event(self, generator: str = "live"):
        return ev.Samples(self.step, self.step // 156, self.samples, generator, self.row_classes)

    def _serve_requests(self):
        requests = self.control.take_requests()
        if requests.snapshot:
            yield ev.SnapshotSaved(self.step, f"{self.run_dir}/checkpoints/snapshot-{self.step}.pt",
                                   f"{self.run_dir}/samples/snapshot-{self.step}.png")
        if requests.export:
            yield ev.Exported(self.step, f"{self.run_dir}/samples/export-step{self.step}.png")
        if requests.auto_pause != self.auto_pause_shown:  # a state: told once per change
            self.auto_pause_shown = requests.auto_pause
            yield ev.AutoPauseSet(requests.auto_pause)
        if requests.show_average is not None:
            yield self.samples_event("average" if requests.show_average else "live")
        if requests.show_classes is not None:
            self.classes_asked.append(requests.show_classes)
            if self.class_names:
                self.first_class = requests.show_classes % len(self.class_names)
                yield self.samples_event()
            else:
                yield ev.EngineWarning("this run has no classes (k): start one with --conditional on labelled data")
        if requests.lr is not None:
            lr = requests.lr
            yield (ev.LrApplied if lr.now else ev.LrPending)(lr.lr_g, lr.lr_d)
        if requests.reset_lr is not None:  # the config's rates, as the engine resets them
            yield (ev.LrApplied if requests.reset_lr else ev.LrPending)(2e-4, 2e-4)

    def run(self):
        yield ev.Loading("generating the built-in dataset", 10000, 10000)
        yield ev.Started(
            device="cpu", preset="cpu",
            config={"epochs": 10, "image_size": 32, "batch_size": 64, "ngf": 32, "ndf": 32, "lr_g": 2e-4, "lr_d": 2e-4,
                    **({"conditional": True, "class_names": list(self.class_names)} if self.class_names else {})},
            dataset="builtin (10000 glyph images)", dataset_size=10000, steps_per_epoch=156,
            total_steps=1560, run_dir=self.run_dir, step=self.step, epoch=self.step // 156,
            resumed_from=None, history=self.history,
            lr_g=2e-4, lr_d=2e-4,
        )
        if self.samples is not None:
            yield self.samples_event()
        yield ev.Progress(
            step=self.step, epoch=self.step // 156, epoch_step=self.step % 156, steps_per_epoch=156,
            total_steps=1560, loss_d=0.512, loss_g=2.345, d_x=0.734, d_g_z1=0.281, d_g_z2=0.192,
            images_per_sec=412.0, eta_s=95.0, elapsed_s=300.0, lr_g=2e-4, lr_d=2e-4,
        )
        ctl = self.control
        while ctl.stop_reason is None:
            yield from self._serve_requests()
            if ctl.paused:
                yield ev.Paused(self.step, ctl.pause_reason)
                while ctl.paused and ctl.stop_reason is None:
                    ctl.wake.wait(0.05)
                    yield from self._serve_requests()  # as the engine does while paused
                if ctl.stop_reason is None:
                    yield ev.Resumed(self.step)
            ctl.wake.wait(0.05)
        yield ev.Finished(ctl.stop_reason, self.step, 0, 300.0, 412.0,
                          f"{self.run_dir}/checkpoints/last.pt", None)


class Served:
    """An engine (a ScriptedEngine unless given; a real Engine too) served on a real Unix
    socket from threads of this process, as a training service serves it: a hub, and a
    thread that publishes the engine's events to it.

    ``for_app``: as the app meets a service it started itself: the engine starts once the
    first viewer is attached (so the viewer sees the run from its Loading on, and a screen
    is the same every time), and the hub hangs up when the run has ended (as the service's
    process does by exiting). Otherwise the engine starts at once and this waits for its
    first progress."""

    def __init__(self, engine=None, *, for_app: bool = False, **hub_options):
        self.folder = Path(tempfile.mkdtemp(prefix="tg-"))  # short: AF_UNIX paths have a 108-byte limit
        self.engine = engine if engine is not None else ScriptedEngine(run_dir=str(self.folder))
        self.for_app = for_app
        self.notes: list[str] = []
        self.socket = self.folder / "s.sock"
        self.hub = Hub(self.socket, self.engine.control, str(self.folder), note=self.notes.append, **hub_options)
        self.hub.start()
        self.run = RunDir(self.folder)
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not for_app:
            wait_for(lambda: self.hub.view.progress is not None, "the scripted run to start")

    def _run(self):
        while self.for_app and not self.hub.watching:
            if self.closing.wait(0.01):
                return
        try:
            for event in self.engine.run():
                self.hub.publish(event)
        except UserError as exc:
            self.hub.fail(str(exc))
        if self.for_app:
            self.hub.close(flush_s=2.0)

    def viewer(self) -> RemoteRun:
        conn, welcome = Connection.open(str(self.socket), "view")
        assert welcome["kind"] == "welcome" and welcome["pid"] == os.getpid()
        return RemoteRun(conn, self.run)

    def close(self):
        self.closing.set()
        self.engine.control.stop("test over")
        self.thread.join(30)
        self.hub.close(flush_s=0.5)


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


async def wait_until(pilot, predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def visible_text(screen) -> list[str]:
    """What a reader sees of each widget of ``screen`` now: the lines of it inside the
    screen and its container's clip (scrolled-out lines left out), its words joined by
    single spaces, one string per widget."""
    from textual.errors import NoWidget

    shown = []
    for widget in screen.query("*"):
        try:
            where = screen.find_widget(widget)
        except NoWidget:
            continue
        visible = where.region.intersection(where.clip).intersection(screen.region)
        if not visible:
            continue
        strips = widget.render_lines(visible.translate(-where.region.offset))
        shown.append(" ".join(" ".join(strip.text for strip in strips).split()))
    return shown


async def press(pilot, key: str) -> None:
    """Press the key bound to an action (``"space"``, ``"q"``): as ``pilot.press`` does, less
    its wait for this process to go idle (up to 1 s, twice a key), which never comes while an
    engine trains in this process: 2 s a key. Callers wait for what the key does
    (``wait_until``). Keys that type text need ``pilot.press`` (this sends no character)."""
    pilot.app.simulate_key(key)
    await pilot.pause(0)


async def open_screen(pilot, app, key: str, screen_type) -> None:
    """Press ``key`` and wait until a screen of ``screen_type`` is on top, composed and mounted."""
    await press(pilot, key)
    await wait_until(pilot, lambda: isinstance(app.screen, screen_type) and app.screen.is_mounted,
                     what=screen_type.__name__)


async def quit_app(pilot, app) -> None:
    """Press q and wait until the engine has stopped (and saved)."""
    await press(pilot, "q")
    await wait_until(pilot, lambda: app.engine_done.is_set(), what="the engine to stop")
