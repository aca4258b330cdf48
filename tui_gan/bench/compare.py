"""``tui-gan bench``: the PyTorch DCGAN tutorial's training loop (tutorial.py) against
tui-gan's engine. Both run on the same data, device and settings, in alternating rounds
(the engine in a child process, see run_bench), each after a few warm-up steps; the result
is images per second and their ratio.

The engine is timed over its training only, from its events: the clock starts through its
``before_step`` hook when the warm-up is done, stops at the read that ends each epoch (the
read waits for the device) and starts again when the epoch's end has written its grid and
last.pt (``EpochEnd``), and stops at the first read after the last timed step. The tutorial
loop saves nothing, and an epoch's end in the timed steps (every 16 steps on the default
2,048 images at batch 128) would otherwise add a sample grid and a ~73 MiB fsynced
checkpoint to them. What the engine does to start an epoch (a new order, the first batch,
a streaming DataLoader's workers) stays on the clock, as it does in the tutorial loop.
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
from ..engine.devices import allow_tf32, choose_precision, resolve_device, synchronize, tf32_convolutions
from ..engine.engine import Engine
from .tutorial import tutorial_folder_dataset, tutorial_loop

#: Timed steps at the least when --steps is not given (the app mode's default too).
MIN_STEPS = 10
#: The settings the tutorial loop also uses, explicit for the engine: the cpu preset must not change them.
TUTORIAL_SETTINGS = frozenset({"image_size", "batch_size", "ngf", "ndf", "max_images", "lr_g", "lr_d", "epochs"})


class Stopwatch:
    """Seconds summed over stretches, each from a ``start()`` to the next ``stop()``."""

    def __init__(self) -> None:
        self.stretches: list[tuple[float, float]] = []
        self._since: float | None = None

    @property
    def running(self) -> bool:
        return self._since is not None

    def start(self) -> None:
        self._since = time.perf_counter()

    def stop(self) -> None:
        assert self._since is not None, "the stopwatch is not running"
        self.stretches.append((self._since, time.perf_counter()))
        self._since = None


@dataclass
class EngineTiming:
    """The engine's timed steps: ``images`` trained over the ``stretches`` its clock ran,
    which leave out the ``epoch_ends`` that fell among them (module docstring)."""

    images: int
    stretches: list[tuple[float, float]]
    epoch_ends: int

    @property
    def seconds(self) -> float:
        return sum(stop - start for start, stop in self.stretches)

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def engine_loop(config: TrainConfig, steps: int, warmup: int, explicit: set[str],
                tf32: bool | None = None) -> EngineTiming:
    """tui-gan's engine on the same settings, timed over ``steps`` steps after ``warmup``,
    training only (module docstring). ``tf32``: as ``allow_tf32`` (None: PyTorch's default)."""
    if tf32 is not None:
        allow_tf32(tf32)
    clock, epoch_ends, total = Stopwatch(), 0, warmup + steps
    with tempfile.TemporaryDirectory(prefix="tui-gan-bench-") as run_dir:
        cfg = TrainConfig(**{**config.to_dict(), "max_steps": total, "epochs": total, "quality_images": 0,
                             "progress_interval": 1.0, "log_interval": 3600.0, "sample_interval": 3600.0,
                             "checkpoint_every": 0.0})  # no background write of last.pt among the timed steps

        def start_the_clock(step: int) -> None:  # when the warm-up is over (one sync there only)
            if step == warmup:
                synchronize(engine.device)
                clock.start()

        engine = Engine(cfg, Path(run_dir) / "run", explicit=explicit, before_step=start_the_clock)
        timing, in_epoch_end = True, False
        for event in engine.run():
            if isinstance(event, ev.Error):
                raise UserError(f"the engine failed: {event.message}")
            if not timing:
                continue
            if clock.running and isinstance(event, ev.Progress):  # a read: it waited for the device
                if event.step >= total:  # the first read after the last timed step
                    clock.stop()
                    timing = False
                elif event.epoch_step == 0:  # the read that opens an epoch's end: its grid and last.pt come next
                    clock.stop()
                    epoch_ends, in_epoch_end = epoch_ends + 1, True
            elif in_epoch_end and isinstance(event, ev.EpochEnd):  # written: training goes on
                clock.start()
                in_epoch_end = False
    return EngineTiming(steps * config.batch_size, clock.stretches, epoch_ends)


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
    explicit = set(TUTORIAL_SETTINGS)
    if args.app:  # the app loads its own data
        from .app_cost import app_bench

        return app_bench(config, args.steps or MIN_STEPS, args.phase, explicit)
    device = resolve_device(config.device)
    if args.tf32 is not None:  # in this process, for the tutorial loop; the engine's sets its own
        allow_tf32(args.tf32)
    precision = choose_precision(config.amp, device)
    tutorial_precision = "tf32" if tf32_convolutions(device) else "fp32"
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
          + f" · engine in {precision.name} ({precision.why}), tutorial loop in {tutorial_precision}",
          flush=True)
    tutorial_rates, engine_rates, epoch_ends = [], [], 0
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
            timing = pool.apply(engine_loop, (config, steps, args.warmup, explicit, args.tf32))
            engine_rates.append(timing.rate)
            epoch_ends += timing.epoch_ends
            if args.rounds > 1:
                print(f"  round {r + 1}: tutorial {tutorial_rates[-1]:,.0f} img/s, "
                      f"engine {engine_rates[-1]:,.0f} img/s", flush=True)
    result = BenchResult(_overall(tutorial_rates), _overall(engine_rates))
    print(f"  tutorial loop  {result.tutorial:9,.0f} img/s", flush=True)
    print(f"  tui-gan engine {result.engine:9,.0f} img/s", flush=True)
    print(f"  ratio          {result.ratio:9.2f}x", flush=True)
    if epoch_ends:
        print(f"  the engine's clock stopped for {epoch_ends} epoch end(s) in its timed steps "
              "(sample grids and last.pt are not training; the tutorial loop saves nothing)")
    return 0


def _overall(rates: list[float]) -> float:
    """Images per second over all rounds (equal images each): the harmonic mean."""
    return len(rates) / sum(1.0 / r for r in rates)


def _engine_flags(args) -> list[str]:
    flags = [name for name in ("compile", "cudnn_benchmark", "fused_adam") if getattr(args, name)]
    if args.channels_last is not None:
        flags.append("channels_last" if args.channels_last else "no_channels_last")
    return flags
