from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import pytest

from tui_gan.core.config import TrainConfig

#: The flags of a run small enough to train in a service of its own in tests (processes, sockets).
TINY = ["--image-size", "16", "--ngf", "8", "--ndf", "8", "--nz", "16", "--batch-size", "16",
        "--max-images", "224", "--device", "cpu", "--quality-images", "0"]
#: ... and long enough that it is still training when a test is done with it.
LONG = ["--epochs", "100000"]


def wait(predicate, timeout: float = 60.0, what: str = "condition"):
    """``predicate()``'s first truthy value, polled every 50 ms; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def spy(monkeypatch, owner, name: str) -> list:
    """A list that gets an entry each time ``owner.name`` runs; it still runs."""
    calls, real = [], getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def tiny_config(**overrides) -> TrainConfig:
    """A model and dataset small enough that a step takes milliseconds on a CPU."""
    values = dict(
        image_size=16,
        ngf=8,
        ndf=8,
        nz=16,
        batch_size=16,
        max_images=224,  # 14 steps per epoch
        epochs=2,
        device="cpu",
        progress_interval=0.001,
        log_interval=0.001,
        sample_interval=3600.0,
        quality_images=0,  # the quality tests turn it on
        amp=False,  # fp32 on every machine (auto would be bf16 where the CPU has bf16 units)
    )
    values.update(overrides)
    return TrainConfig(**values)


#: What the tests set: the cpu preset (which the engine applies on the CPU) changes none of it.
EXPLICIT = frozenset({"image_size", "ngf", "ndf", "batch_size", "lr_g", "lr_d", "epochs"})


@pytest.fixture
def make_engine(tmp_path: Path):
    from tui_gan.engine.engine import Engine

    def make(run_name: str = "run", resume=None, **overrides):
        return Engine(tiny_config(**overrides), tmp_path / run_name, explicit=EXPLICIT, resume=resume)

    return make


@pytest.fixture
def serve():
    """``serve(engine=None, for_app=False, **hub_options)``: an engine served on a socket in
    this process (app_support.Served); each one is stopped when the test ends."""
    from .app_support import Served

    made: list = []

    def make(engine=None, **options):
        made.append(Served(engine, **options))
        return made[-1]

    yield make
    for served in made:
        served.close()


@pytest.fixture
def attached_app(serve):
    """``attached_app(engine=None, **app_options)``: the app attached to ``engine`` (a
    ScriptedEngine unless given) served on a socket, as it attaches to a training service."""
    from tui_gan.tui.app import TuiGanApp

    from .app_support import ScriptedEngine

    def make(engine=None, **options):
        return TuiGanApp(serve(engine or ScriptedEngine(), for_app=True).viewer, **options)

    return make


class EngineThread:
    """Runs an engine in a thread (as the app's worker does) and queues its events."""

    def __init__(self, engine):
        self.engine = engine
        self.events: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for event in self.engine.run():
                self.events.put(event)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc
        finally:
            self.events.put(None)

    def wait_for(self, kind, timeout: float = 30.0, predicate=lambda e: True):
        """Return the next event of type ``kind`` (that satisfies ``predicate``); collect the rest."""
        seen = []
        while True:
            event = self.events.get(timeout=timeout)
            if event is None:
                raise AssertionError(f"engine ended before {kind.__name__}; saw {[type(e).__name__ for e in seen]}; error={self.error!r}")
            seen.append(event)
            if isinstance(event, kind) and predicate(event):
                return event

    def wait_for_step(self, step: int):
        """Return the first progress report at or past ``step``: training is under way."""
        from tui_gan.core import events as ev

        return self.wait_for(ev.Progress, predicate=lambda e: e.step >= step)

    def drain(self, timeout: float = 60.0) -> list:
        out = []
        while True:
            event = self.events.get(timeout=timeout)
            if event is None:
                self.thread.join(timeout)
                return out
            out.append(event)


@pytest.fixture
def engine_thread():
    threads = []

    def start(engine):
        t = EngineThread(engine)
        threads.append(t)
        return t

    yield start
    for t in threads:
        t.engine.control.stop("test teardown")
        t.thread.join(30)


@pytest.fixture(autouse=True)
def isolated_decode_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty decode cache, never the user's ~/.cache."""
    monkeypatch.setenv("TUI_GAN_CACHE_DIR", str(tmp_path_factory.mktemp("decode-cache")))
