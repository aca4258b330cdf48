"""What several processes' communication costs a step (issue 19): two gloo ranks on this
machine time the collectives one training step makes, with the real sizes.

    python docs/experiments/allreduce_cost.py [--ngf 32 --ndf 32 --image-size 32] [--steps 200]

A step makes two all_reduces (D's gradients; G's gradients plus five statistics) and, now
and then, one 7-number broadcast of rank 0's requests (engine/lockstep.py); this times each
on the cpu preset's nets (or the widths given), over ``--steps`` repetitions, after a
warm-up, and prints the median per step. It starts its own two processes (OMP_NUM_THREADS=1
each, as --nproc 2 gives them on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def measure(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from tui_gan.core.config import TrainConfig
    from tui_gan.engine.nets import build_models

    dist.init_process_group("gloo")
    config = TrainConfig(image_size=args.image_size, ngf=args.ngf, ndf=args.ndf, channels=3)
    netG, netD = build_models(config)
    sizes = {"D": sum(p.numel() for p in netD.parameters()), "G+stats": sum(p.numel() for p in netG.parameters()) + 5}
    times: dict[str, list[float]] = {name: [] for name in [*sizes, "requests"]}
    buffers = {name: torch.randn(n) for name, n in sizes.items()}
    packet = torch.zeros(7, dtype=torch.float64)
    for i in range(args.steps + 20):
        for name, flat in buffers.items():
            start = time.perf_counter()
            dist.all_reduce(flat)
            if i >= 20:
                times[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        dist.broadcast(packet, 0)
        if i >= 20:
            times["requests"].append(time.perf_counter() - start)
    if dist.get_rank() == 0:
        print(f"{args.image_size}x{args.image_size}, ngf={args.ngf}, ndf={args.ndf}: "
              f"D {sizes['D']:,} and G {sizes['G+stats'] - 5:,} parameters (fp32)")
        for name, values in times.items():
            print(f"  {name:>9}: median {statistics.median(values) * 1e3:.2f} ms")
        total = statistics.median(times["D"]) + statistics.median(times["G+stats"])
        print(f"  per step (both all_reduces): {total * 1e3:.2f} ms")
    dist.destroy_process_group()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--ngf", type=int, default=32)
    p.add_argument("--ndf", type=int, default=32)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rank", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rank is not None:
        measure(args)
        return
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29517", "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--rank", str(r)], env={**env, "RANK": str(r)})
             for r in range(2)]
    sys.exit(max(p.wait() for p in procs))


if __name__ == "__main__":
    main()
