"""``tui-gan bench --app``: what the app's screen costs training, measured in the app.

The engine runs in this process, served on a socket as a training service serves it
(``InProcessService``), and the app attaches to it as it attaches to a service. For a
number of steps the screen is frozen in every other stretch of a few seconds (screen_ab.py)
and the training speed with the screen updating is compared with the speed with it frozen,
within one run (separate runs differ by more than the effect). The freezing is done from
outside the app: a subclass that sees the run's events before the app does and keeps
progress and samples from it in the frozen stretches.

App and engine share this process's interpreter here, so the cost measured includes the
GIL the screen holds: more than a service in a process of its own pays (``bench
--attached`` measures that, across separate runs).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..core import events as ev
from ..core.config import TrainConfig
from ..core.errors import UserError
from ..core.rundir import RunDir
from ..engine.engine import Engine
from ..service.client import Connection, RemoteRun
from ..service.hub import Hub
from .screen_ab import ScreenAB


def app_bench(config: TrainConfig, steps: int, phase: float, explicit: set[str], size=None) -> int:
    """Run the app for ``steps`` steps, its screen frozen in alternate stretches, and print
    the training speed with the screen updating over that with it frozen."""
    from ..tui.state import RunState

    if size is None and not sys.stdout.isatty():
        raise UserError("bench --app draws the app: run it in a terminal")
    ab = ScreenAB(phase)
    with tempfile.TemporaryDirectory(prefix="tui-gan-bench-") as folder:
        engine = Engine(app_bench_config(config, steps), Path(folder) / "run", explicit=explicit)
        service = InProcessService(engine, Path(folder))
        try:
            app = frozen_in_stretches(ab)(service.connect, run_name="bench")
            if size is None:
                app.run()
            else:  # tests: headless, at a given size
                async def drive():
                    async with app.run_test(size=size) as pilot:
                        while app.state is not RunState.FINISHED:
                            await pilot.pause(0.1)
                asyncio.run(drive())
        finally:
            service.close()
    result = ab.result()
    print(f"tui-gan bench --app · {steps} steps · stretches of {phase:g} s: {result.stretches} compared")
    print(f"  screen updating {result.updating * config.batch_size:9,.0f} img/s")
    print(f"  screen frozen   {result.frozen * config.batch_size:9,.0f} img/s")
    print(f"  ratio           {result.ratio:9.3f}x")
    if result.stretches < 4:
        print("  (few stretches: use more --steps for a number to trust)")
    return 0


def app_bench_config(config: TrainConfig, steps: int) -> TrainConfig:
    """The app's settings for ``steps`` steps: as many epochs as those steps take where the
    image count is known in advance (built-in data), so the screen shows "epoch 3/47" and
    not "epoch 3/1500"; else one epoch per step, an upper bound (max_steps ends the run)."""
    per_epoch = config.max_images // config.batch_size if config.data == "builtin" and config.max_images else 0
    epochs = -(-steps // per_epoch) if per_epoch else steps
    return TrainConfig(**{**config.to_dict(), "max_steps": steps, "epochs": epochs, "quality_images": 0})


class InProcessService:
    """``engine`` served on a socket in ``folder`` from threads of this process: a hub, and a
    thread that publishes the engine's events to it, from the moment the app has attached
    (so that the app sees the run start) until the run ends."""

    def __init__(self, engine: Engine, folder: Path) -> None:
        self.engine = engine
        self.run = RunDir(folder)
        self.hub = Hub(folder / "s.sock", engine.control, str(folder))
        self.hub.start()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="tui-gan-bench-engine", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.hub.watching:
            if self.closing.wait(0.01):
                return
        try:
            for event in self.engine.run():
                self.hub.publish(event)
        except UserError as exc:
            self.hub.fail(str(exc))
        finally:
            self.hub.close()

    def connect(self) -> RemoteRun:
        conn, _ = Connection.open(str(self.hub.socket_path), "view")
        return RemoteRun(conn, self.run)

    def close(self) -> None:
        self.closing.set()
        self.engine.control.stop("bench over")
        self.thread.join(120)
        self.hub.close()


def frozen_in_stretches(ab: ScreenAB) -> Any:
    """The app class whose screen ``ab`` freezes in alternate stretches (progress and
    samples do not reach it then), and which leaves when the run has finished."""
    from ..tui.app import TuiGanApp

    class FrozenInStretches(TuiGanApp):
        def on_engine_event(self, message: Any) -> None:
            """Textual calls a subclass's handler of a message first; the app's own handler
            never sees one whose default is prevented."""
            event = message.event
            if isinstance(event, ev.Started):
                ab.start()
            elif isinstance(event, ev.Progress):
                ab.record(event.step)
            elif isinstance(event, ev.Finished):
                self.set_timer(0.5, self.exit)
            if isinstance(event, (ev.Progress, ev.Samples)) and not ab.updating():
                message.prevent_default()

    return FrozenInStretches
