"""What a checkpoint costs the training (issue 28): the timed last.pt's copy in the training
thread and its write on the writer thread, against the plain synchronous save an epoch's
end makes, measured in a real run of the engine.

    python docs/experiments/checkpoint_cost.py [--image-size 64 --ngf 64 --ndf 64 --batch-size 128]
                                               [--steps 24] [--every-steps 3] [--device cpu] [--trace]

Trains ``--steps`` steps of the tutorial's config on the built-in images, all in the first
epoch, with a timed save due about every ``--every-steps`` steps (--checkpoint-every set
from the first steps' time), timing each step, each copy (RunOutputs.save_last_in_background)
and each background write; then times five synchronous saves of the same state
(RunOutputs.save, as at an epoch's end).
Steps during which a write ran are reported apart: on a 2-core CPU the writer thread takes
time from the training's threads.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import torch

from tui_gan.core.config import TrainConfig
from tui_gan.engine import checkpoint, gan, outputs
from tui_gan.engine.engine import Engine


def median_ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:.0f} ms (min {min(values) * 1e3:.0f}, " \
           f"max {max(values) * 1e3:.0f}, n={len(values)})" if values else "none"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--every-steps", type=float, default=3.0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--trace", action="store_true", help="also print when each step and each write ran")
    args = p.parse_args()

    copies: list[float] = []
    writes: list[tuple[float, float]] = []  # (start, end) on the perf_counter clock
    write_cpu: list[float] = []  # the writer thread's CPU seconds: what it can take from training
    steps: list[tuple[float, float]] = []  # Gan.train_step's (start, end)
    real_copy, real_write = outputs.RunOutputs.save_last_in_background, checkpoint.save_checkpoint
    real_step = gan.Gan.train_step

    def timed_copy(self: outputs.RunOutputs) -> bool:
        start = time.perf_counter()
        taken = real_copy(self)
        if taken:
            copies.append(time.perf_counter() - start)
        return taken

    def timed_write(path, state):  # noqa: ANN001, ANN202 - save_checkpoint's own signature
        start, cpu = time.perf_counter(), time.thread_time()
        result = real_write(path, state)
        if threading.current_thread() is not threading.main_thread():
            writes.append((start, time.perf_counter()))
            write_cpu.append(time.thread_time() - cpu)
        return result

    def timed_step(self: gan.Gan, real: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        stats = real_step(self, real)
        steps.append((start, time.perf_counter()))
        return stats

    outputs.RunOutputs.save_last_in_background = timed_copy  # type: ignore[method-assign]
    checkpoint.save_checkpoint = timed_write
    gan.Gan.train_step = timed_step  # type: ignore[method-assign]

    step_marks: list[float] = []
    config = TrainConfig(image_size=args.image_size, ngf=args.ngf, ndf=args.ndf, batch_size=args.batch_size,
                         device=args.device, max_images=args.batch_size * (args.steps + 1), max_steps=args.steps, quality_images=0,
                         sample_interval=3600.0, checkpoint_every=0.0)
    explicit = {"image_size", "ngf", "ndf", "batch_size", "lr_g", "lr_d", "epochs"}  # no cpu preset

    def before(step: int) -> None:
        step_marks.append(time.perf_counter())
        if step == 3:  # warmed up: due about every --every-steps steps from here
            per_step = (step_marks[-1] - step_marks[1]) / 2
            config.checkpoint_every = args.every_steps * per_step / 60

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(config, Path(tmp) / "run", explicit=explicit, before_step=before)
        list(engine.run())
        size = engine.paths.last.stat().st_size
        syncs = []
        for i in range(5):
            start = time.perf_counter()
            engine.outputs.save(Path(tmp) / f"sync-{i}.pt")
            syncs.append(time.perf_counter() - start)

    spans = steps[4:]  # after the warm-up
    if args.trace:
        t0 = steps[0][0]
        for a, b in steps:
            print(f"step {a - t0:7.2f} {b - t0:7.2f} {b - a:6.2f}")
        for a, b in writes:
            print(f"write {a - t0:7.2f} {b - t0:7.2f}")
    overlapped = [b - a for a, b in spans if any(s < b and e > a for s, e in writes)]
    alone = [b - a for a, b in spans if not any(s < b and e > a for s, e in writes)]
    print(f"{args.image_size}x{args.image_size}, ngf={args.ngf}, ndf={args.ndf}, batch {args.batch_size}, "
          f"{engine.device}, {engine.gan.precision.name}; checkpoint {size / 2**20:.1f} MiB")
    print(f"  train_step, no write running: {median_ms(alone)}")
    print(f"  train_step, a write running:  {median_ms(overlapped)}")
    print(f"  timed save, training thread: {median_ms(copies)}  (the copy)")
    print(f"  timed save, writer thread:   {median_ms([e - s for s, e in writes])}")
    print(f"    of which CPU time:         {median_ms(write_cpu)}")
    print(f"  synchronous save:            {median_ms(syncs)}")


if __name__ == "__main__":
    main()
