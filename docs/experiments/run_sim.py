"""Train tui_gan's CPU preset in fp32 or in simulated bf16 autocast and measure the final
generator's SWD.

usage: python run_sim.py PRECISION SEED STEPS OUT.json [--threads N]
  PRECISION: fp32         stock layers, contiguous layout, the bf16 step's structure (D without
                          its last Sigmoid + BCEWithLogits), no rounding
             bf16sim      the same code with bf16 autocast simulated (bf16sim.py, fp32
                          accumulation: what oneDNN on AMX/AVX512-BF16 CPUs and cuDNN do)
             bf16sim-thnn also mimics this AVX2 CPU's real bf16 kernels (THNN slow_conv2d:
                          batch-sequential bf16 weight-gradient sums, bf16 col2im); ~5x slower
             bf16sim-thnn-cl  the same with the channels-last kernels' col2im tap order (what
                          `--amp` on this CPU really runs, the app using channels-last on CPUs)
The two (three) differ only in the rounding. SWD/diversity are measured in fp32 (outside the
simulated autocast region, as the app's quality probe runs outside autocast), on 1024 images
from noise seed 99, against 1024 real images of a fresh built-in set (seed 4242), reference seed 7.
"""

from __future__ import annotations

import json
import math
import sys
import time

import torch

HERE = __file__.rsplit("/", 1)[0]
sys.path.insert(0, HERE)

import bf16sim  # noqa: E402

from tui_gan.core.config import TrainConfig  # noqa: E402
from tui_gan.data.loader import load_dataset  # noqa: E402
from tui_gan.engine.models import generate  # noqa: E402
from tui_gan.engine.quality import RealReference  # noqa: E402

MODES = {"fp32": None, "bf16sim": "fp32acc", "bf16sim-thnn": "thnn", "bf16sim-thnn-cl": "thnn-cl"}


def main(argv: list[str]) -> None:
    args = [a for a in argv if not a.startswith("--threads")]
    if "--threads" in argv:
        i = argv.index("--threads")
        torch.set_num_threads(int(argv[i + 1]))
        args = argv[:i] + argv[i + 2:]
    if len(args) != 4 or args[0] not in MODES:
        sys.exit(__doc__)
    precision, seed, steps, out = args[0], int(args[1]), int(args[2]), args[3]
    cpu = torch.device("cpu")

    cfg = TrainConfig(seed=seed, cache=False)
    cfg.apply_preset("cpu", set())
    cfg.channels = 3
    data = load_dataset(cfg, cpu, None, [])
    gan = bf16sim.sim_gan(cfg, MODES[precision])
    assert (gan.lr_g, gan.lr_d) == (cfg.lr_g, cfg.lr_d) == (5e-4, 5e-4), (gan.lrs, cfg.lr_g, cfg.lr_d)

    step, epoch, stats = 0, 0, None
    started = time.perf_counter()
    while step < steps:
        for batch in data.epoch_batches(seed, epoch, 0, cfg.batch_size):
            stats = gan.train_step(batch)
            step += 1
            if step % 100 == 0:
                s = [round(float(v), 4) for v in stats]
                print(f"step {step} epoch {epoch} {time.perf_counter() - started:.1f}s "
                      f"[loss_D, loss_G, D(x), D(G(z1)), D(G(z2))]={s}", flush=True)
            if step >= steps:
                break
        epoch += 1
    wall = time.perf_counter() - started

    ref_cfg = TrainConfig(seed=4242, max_images=2048, cache=False)
    ref_cfg.apply_preset("cpu", set())
    ref_cfg.channels = 3
    real = load_dataset(ref_cfg, cpu, None, []).subset(2048, 0)[:1024]
    reference = RealReference(real, seed=7)
    z = torch.randn(1024, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(99))
    fake = torch.cat([generate(gan.netG, chunk) for chunk in z.split(64)])  # fp32: outside bf16sim.enabled
    q = reference.compare(fake)

    result = {
        "precision": precision, "seed": seed, "steps": step, "wall_s": round(wall, 2),
        "swd": q.swd, "diversity": q.diversity,
        "swd_levels": q.swd_levels, "epochs": round(step / (len(data) // cfg.batch_size), 3),
        "s_per_step": round(wall / max(step, 1), 4),
        "final_stats": [float(v) for v in stats] if stats is not None else None,
        "finite_weights": all(bool(torch.isfinite(p).all()) for p in gan.netG.parameters()),
        "config": cfg.describe(), "lr": [gan.lr_g, gan.lr_d], "dataset_images": len(data),
        "layers": "stock torch layers, contiguous NCHW (not tui_gan's cpulayers/channels-last); "
                  "D without final Sigmoid + BCEWithLogitsLoss in both precisions",
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    if not all(math.isfinite(v) for v in (q.swd, q.diversity)):
        result["warning"] = "non-finite quality"
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: result[k] for k in ("precision", "seed", "steps", "wall_s", "swd", "diversity")}))


if __name__ == "__main__":
    main(sys.argv[1:])
