"""``tui-gan bench``: the PyTorch DCGAN tutorial's training loop (tutorial.py) against
tui-gan's engine. Both run on the same data, device and settings, in alternating rounds
(the engine in a child process, see run_bench), each after a few warm-up steps; the result
is images per second and their ratio. The engine is timed through its ``before_step`` hook.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import events as ev
from ..core.config import TrainConfig
from ..core.errors import UserError
from ..engine.devices import choose_precision, resolve_device
from ..engine.engine import Engine
from .tutorial import sync, tutorial_folder_dataset, tutorial_loop

#: Timed steps at the least when --steps is not given (the app mode's default too).
MIN_STEPS = 10


def engine_loop(config: TrainConfig, steps: int, warmup: int, explicit: set[str]) -> float:
    """tui-gan's engine on the same settings; images per second after the warm-up steps."""
    marks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tui-gan-bench-") as run_dir:
        total = warmup + steps
        cfg = TrainConfig(**{**config.to_dict(), "max_steps": total, "epochs": total, "quality_images": 0,
                             "progress_interval": 1.0, "log_interval": 3600.0, "sample_interval": 3600.0})

        def start_the_clock(step: int) -> None:  # when the warm-up is over (one sync there only)
            if step == warmup:
                sync(engine.device)
                marks["start"] = time.perf_counter()

        engine = Engine(cfg, Path(run_dir) / "run", explicit=explicit, before_step=start_the_clock)
        for event in engine.run():
            if isinstance(event, ev.Error):
                raise UserError(f"the engine failed: {event.message}")
            if isinstance(event, ev.Progress) and event.step >= warmup + steps and "end" not in marks:
                marks["end"] = time.perf_counter()  # the progress read synced the device
    return steps * config.batch_size / (marks["end"] - marks["start"])


@dataclass
class BenchResult:
    tutorial: float
    engine: float

    @property
    def ratio(self) -> float:
        return self.engine / self.tutorial


def run_bench(args) -> int:
    """``tui-gan bench`` with its parsed arguments (see commands/bench.bench_parser)."""
    if args.images < args.batch_size:
        raise UserError(f"--images {args.images} is fewer than one batch of {args.batch_size}")
    config = TrainConfig(image_size=args.image_size, batch_size=args.batch_size, ngf=args.ngf, ndf=args.ndf,
                         device=args.device, max_images=None if args.data else args.images, channels=3,
                         amp=args.amp, compile=args.compile, data=args.data or "builtin",
                         channels_last=args.channels_last, cudnn_benchmark=args.cudnn_benchmark,
                         fused_adam=args.fused_adam)
    config.validate("bench")
    # everything the tutorial loop also uses is explicit: the cpu preset must not change it
    explicit = {"image_size", "batch_size", "ngf", "ndf", "max_images", "lr_g", "lr_d", "epochs"}
    if args.app:  # the app loads its own data
        from .app_cost import app_bench

        return app_bench(config, args.steps or MIN_STEPS, args.phase, explicit)
    device = resolve_device(config.device)
    precision = choose_precision(config.amp, device)
    if args.data:
        images = tutorial_folder_dataset(args.data, args.image_size)
        if len(images) < args.batch_size:
            raise UserError(f"--data {args.data}: {len(images)} images, fewer than one batch of {args.batch_size}")
        # decode once now, so the engine's timed steps do not include filling the cache
        from ..data.loader import load_dataset

        load_dataset(config, torch.device("cpu"))
    else:
        from ..data.builtin import make_builtin

        images = torch.from_numpy(make_builtin(args.images, args.image_size, config.seed, 3))
    print(f"tui-gan bench · {device} · {args.image_size}x{args.image_size} · batch {args.batch_size} · "
          f"ngf {args.ngf} ndf {args.ndf} · {args.rounds} round(s) of "
          + (f"{args.steps} timed steps" if args.steps else
             f"the steps the tutorial loop runs in {args.seconds:g} s (at least {MIN_STEPS})")
          + f" after {args.warmup} warm-up" + (f" · data {args.data}" if args.data else " · data in memory")
          + "".join(f" · engine with --{flag.replace('_', '-')}" for flag in _engine_flags(args))
          + f" · engine in {precision.name} ({precision.why}), tutorial loop in fp32",
          flush=True)
    tutorial_rates, engine_rates = [], []
    steps = args.steps
    # The engine runs in a child process: it tunes this process's memory allocator for
    # CPU training (speed/allocator.py), which the tutorial loop, run as its users run it, must
    # not inherit. Alternating rounds spread any drift in the machine's speed over both.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for r in range(args.rounds):
            if steps is None:  # the first round sets the steps of all: equal images in each loop
                rate, steps = tutorial_loop(config, images, device, MIN_STEPS, args.warmup, seconds=args.seconds)
                print(f"  {steps} timed steps per loop and round", flush=True)
            else:
                rate, _ = tutorial_loop(config, images, device, steps, args.warmup)
            tutorial_rates.append(rate)
            engine_rates.append(pool.apply(engine_loop, (config, steps, args.warmup, explicit)))
            if args.rounds > 1:
                print(f"  round {r + 1}: tutorial {tutorial_rates[-1]:,.0f} img/s, "
                      f"engine {engine_rates[-1]:,.0f} img/s", flush=True)
    result = BenchResult(_overall(tutorial_rates), _overall(engine_rates))
    print(f"  tutorial loop  {result.tutorial:9,.0f} img/s", flush=True)
    print(f"  tui-gan engine {result.engine:9,.0f} img/s", flush=True)
    print(f"  ratio          {result.ratio:9.2f}x")
    return 0


def _overall(rates: list[float]) -> float:
    """Images per second over all rounds (equal images each): the harmonic mean."""
    return len(rates) / sum(1.0 / r for r in rates)


def _engine_flags(args) -> list[str]:
    flags = [name for name in ("compile", "cudnn_benchmark", "fused_adam") if getattr(args, name)]
    if args.channels_last is not None:
        flags.append("channels_last" if args.channels_last else "no_channels_last")
    return flags
