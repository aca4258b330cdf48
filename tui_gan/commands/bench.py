"""``tui-gan bench``: the PyTorch DCGAN tutorial's training loop against tui-gan's engine
(bench/compare.py), the app's cost (bench/app_cost.py), or the service's with the app
attached (bench/service_cost.py). The flags here; the benchmarks import torch when they run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..core.errors import ArgumentParser
from .flags import image_size, non_negative_int, positive_float, positive_int, speed_flags


def bench_parser() -> ArgumentParser:
    p = ArgumentParser(prog="tui-gan bench",
                       description="The PyTorch DCGAN tutorial's training loop against tui-gan's engine.")
    p.add_argument("--image-size", type=image_size, default=64, metavar="N", help="16, 32, 64 (default), 128 or 256")
    p.add_argument("--batch-size", type=positive_int, default=128, metavar="N", help="default 128")
    p.add_argument("--ngf", type=positive_int, default=64, metavar="N", help="default 64")
    p.add_argument("--ndf", type=positive_int, default=64, metavar="N", help="default 64")
    p.add_argument("--steps", type=positive_int, metavar="N",
                   help="timed steps per loop and round (default: as many as the tutorial loop runs in "
                        "--seconds in the first round, at least 10; with --app, all steps: default 10)")
    p.add_argument("--seconds", type=positive_float, default=20.0, metavar="S",
                   help="without --steps: how long the first round's tutorial loop is timed (default 20)")
    p.add_argument("--warmup", type=non_negative_int, default=3, metavar="N",
                   help="untimed steps first, in each round (default 3)")
    p.add_argument("--rounds", type=positive_int, default=2, metavar="N",
                   help="alternate the two loops this many times (default 2)")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--images", type=positive_int, default=2048, metavar="N",
                   help="built-in images to train on (default 2048)")
    p.add_argument("--data", metavar="FOLDER", help="a folder of images instead: the tutorial's ImageFolder + "
                   "DataLoader (2 workers) against tui-gan's decode cache and on-device data")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="the engine in bf16 autocast, or not (default: as a run chooses, bf16 where the device "
                        "has bf16 units; the tutorial loop stays fp32)")
    p.add_argument("--compile", action="store_true", help="the engine with torch.compile")
    p.add_argument("--tf32", action=argparse.BooleanOptionalAction,
                   help="both loops: fp32 convolutions in TF32 (PyTorch's default on CUDA from compute capability "
                        "8.0) or in exact fp32 (default: PyTorch's; bf16 autocast is not affected)")
    speed_flags(p)
    p.set_defaults(cudnn_benchmark=False, fused_adam=False)
    p.add_argument("--app", action="store_true", help="instead: the cost of the app's screen, in the app itself "
                   "(--steps steps alternating stretches of --phase s with the screen updating and frozen)")
    p.add_argument("--attached", action="store_true",
                   help="instead: the speed of the service with the app attached against --headless, as separate "
                        "processes alternated over --rounds rounds (the device's default settings, --steps steps: "
                        "default 1500)")
    p.add_argument("--phase", type=positive_float, default=10.0, metavar="SECONDS",
                   help="--app: seconds per stretch (default 10)")
    return p


def run_bench(argv: Sequence[str]) -> int:
    args = bench_parser().parse_args(argv)
    if args.attached:  # separate processes: nothing of torch in this one
        from ..bench.service_cost import attached_bench

        steps = str(args.steps or 1500)
        return attached_bench(["--device", args.device, "--max-steps", steps, "--epochs", steps,
                               "--quality-images", "0"], args.rounds)
    from ..bench.compare import run_bench as bench

    return bench(args)
