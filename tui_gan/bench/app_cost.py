"""``tui-gan bench --app``: what the app's screen costs training, measured in the app.

The app runs for a number of steps with its screen frozen in every other stretch of a few
seconds (screen_ab.py); the training speed with the screen updating is compared with the
speed with it frozen, within one run (separate runs differ by more than the effect).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from ..core.config import TrainConfig
from ..core.errors import UserError
from ..engine.engine import Engine
from .screen_ab import ScreenAB


def app_bench(config: TrainConfig, steps: int, phase: float, explicit: set[str], size=None) -> int:
    """Run the app for ``steps`` steps, its screen frozen in alternate stretches, and print
    the training speed with the screen updating over that with it frozen."""
    from ..tui.app import TuiGanApp
    from ..tui.state import RunState

    if size is None and not sys.stdout.isatty():
        raise UserError("bench --app draws the app: run it in a terminal")
    ab = ScreenAB(phase)
    with tempfile.TemporaryDirectory(prefix="tui-gan-bench-") as run_dir:
        cfg = app_bench_config(config, steps)
        app = TuiGanApp(lambda: Engine(cfg, Path(run_dir) / "run", explicit=explicit), run_name="bench",
                        screen_ab=ab)
        app.finish_exits = True
        if size is None:
            app.run()
        else:  # tests: headless, at a given size
            async def drive():
                async with app.run_test(size=size) as pilot:
                    while app.state is not RunState.FINISHED:
                        await pilot.pause(0.1)
            asyncio.run(drive())
        app.engine_done.wait(timeout=120)
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
