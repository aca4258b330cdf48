"""The measurement behind docs/conditional.md: which conditional GAN for --conditional (issue 31).

usage: nice -n 10 python docs/experiments/conditional.py [--budget-steps 2000] [--seeds 1 2]
       [--images 10000] [--out docs/conditional.md] [--scratch /tmp/h-cmodels]

The candidates (docs/experiments/conditional_models.py): cdcgan, cbn_pd and acgan, on two
labelled data sets made here: broad glyphs (the ten digits in several sizes, angles, weights,
colours, gradients, light on dark and dark on light) and coloured shapes and textures (classes
told apart by shape, never by colour). Equal training time, not equal steps: each model's
seconds per step are timed first, the models taking turns so that load from other processes
falls on all of them alike, and each then trains for budget / its own step time, the budget
being --budget-steps of the unconditional tutorial DCGAN (also timed, for the speed cost).

At the end, per model and data set, 100 samples asked for each class (drawn in batches that
mix the classes, as in training, because G's BatchNorm uses batch statistics), and:
* class accuracy: how often a small CNN, trained here on real images only (never D), reads the
  class that was asked for; its own held-out accuracy is reported beside it;
* per-class SWD (tui_gan.engine.quality, x1000) of each class's samples against 100 real images
  of that class; the floor is the same for 100 other real images of the class;
* diversity: each class's mean pairwise distance (quality.mean_pairwise_distance) over the real
  class's, 1 for samples as varied as the data, towards 0 as G collapses within the class;
* the accuracy and SWD again for samples drawn in batches of one class each (PER_CLASS 7s at
  once, as an app asked for a 7 would draw them): the batch statistics then differ from
  training's, and this says how much each model minds.

The results table and how it was run replace the part of --out between the RESULTS markers;
the rest of that file is prose and is left alone. Sample grids (one row per class) go to
--scratch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import string
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn, optim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conditional_models import KINDS, ConditionalGan, generate  # noqa: E402

from tui_gan.data.builtin import GlyphStyle, make_glyphs  # noqa: E402
from tui_gan.data.pixels import from_uint8, to_uint8  # noqa: E402
from tui_gan.engine.models import Discriminator, Generator, weights_init  # noqa: E402
from tui_gan.engine.quality import RealReference, mean_pairwise_distance  # noqa: E402

SIZE = 32
NZ, NGF, NDF, BATCH = 100, 32, 32, 64  # the CPU preset's sizes (tui_gan.core.config.CPU_PRESET)
PER_CLASS = 100
BEGIN, END = "<!-- RESULTS: written by docs/experiments/conditional.py -->", "<!-- /RESULTS -->"

# ====================================================================== data


def glyphs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ten digits in a broad style: 0.55-0.9 of the side, within ±15° (so 6 and 9 stay
    apart), off-centre, 40% dark on light, two-tone backgrounds, a quarter drawn bolder."""
    style = GlyphStyle(string.digits, (0.55, 0.9), 15.0, (0.4, 0.6), 0.6, 1.0, (0.15, 0.1))
    return make_glyphs(n, SIZE, seed, style)


SHAPES = ("circle", "square", "triangle", "star", "ring", "cross", "stripes", "checker")


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background and a foreground colour at least 80 levels apart in luminance, in
    either order: colour says nothing about the class."""
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        bg, fg = rng.integers(0, 256, (2, 3))
        if abs(float((fg - bg) @ weights)) >= 80:
            return bg.astype(np.float32), fg.astype(np.float32)


def _polygon(cx: float, cy: float, radii: list[float], turn: float) -> list[tuple[float, float]]:
    k = len(radii)
    return [(cx + r * math.cos(turn + 2 * math.pi * i / k), cy + r * math.sin(turn + 2 * math.pi * i / k))
            for i, r in enumerate(radii)]


def shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Coloured shapes and textures (SHAPES), drawn at twice the size and averaged down (anti-
    aliased): a shape of random size, place and rotation on a two-tone gradient, or a
    full-image texture (stripes, a checkerboard) of random period and angle; random colours."""
    rng = np.random.default_rng(seed)
    big = 2 * SIZE
    labels = rng.integers(0, len(SHAPES), n)
    ramp = np.linspace(0.0, 1.0, big, dtype=np.float32)
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    out = np.empty((n, 3, SIZE, SIZE), dtype=np.uint8)
    for i, label in enumerate(labels):
        bg, fg = _colours(rng)
        name = SHAPES[label]
        if name in ("stripes", "checker"):
            period, turn = rng.uniform(7, 16), rng.uniform(0, math.pi)
            u = xx * math.cos(turn) + yy * math.sin(turn) + rng.uniform(0, period)
            v = -xx * math.sin(turn) + yy * math.cos(turn) + rng.uniform(0, period)
            cells = np.floor(u / period) + (np.floor(v / period) if name == "checker" else 0)
            mask = (cells % 2).astype(np.float32)
            canvas = bg[:, None, None] + (fg - bg)[:, None, None] * mask
        else:
            other = np.clip(bg + rng.integers(-40, 41, 3), 0, 255)
            t = ramp[None, :] if rng.random() < 0.5 else ramp[:, None]
            canvas = bg[:, None, None] + (other - bg)[:, None, None] * t[None]
            r = rng.uniform(0.26, 0.42) * big
            cx, cy = rng.uniform(r, big - r, 2)
            turn = rng.uniform(0, 2 * math.pi)
            img = Image.new("L", (big, big), 0)
            draw = ImageDraw.Draw(img)
            if name == "circle":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
            elif name == "ring":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
                hole = r * rng.uniform(0.5, 0.7)
                draw.ellipse((cx - hole, cy - hole, cx + hole, cy + hole), fill=0)
            elif name == "square":
                draw.polygon(_polygon(cx, cy, [r] * 4, turn), fill=255)
            elif name == "triangle":
                draw.polygon(_polygon(cx, cy, [r] * 3, turn), fill=255)
            elif name == "star":
                draw.polygon(_polygon(cx, cy, [r, 0.42 * r] * 5, turn), fill=255)
            else:  # cross: two bars through the centre
                w = r * rng.uniform(0.28, 0.4)
                for bar in (turn, turn + math.pi / 2):
                    c, s = math.cos(bar), math.sin(bar)
                    draw.polygon([(cx + c * r - s * w, cy + s * r + c * w), (cx + c * r + s * w, cy + s * r - c * w),
                                  (cx - c * r + s * w, cy - s * r - c * w), (cx - c * r - s * w, cy - s * r + c * w)],
                                 fill=255)
            mask = np.asarray(img, np.float32) / 255
            canvas = canvas + (fg[:, None, None] - canvas) * mask
        out[i] = canvas.reshape(3, SIZE, 2, SIZE, 2).mean(axis=(2, 4)).round().clip(0, 255).astype(np.uint8)
    return out, labels


DATASETS = {
    "glyphs": (glyphs, [str(d) for d in range(10)]),
    "shapes": (shapes, list(SHAPES)),
}

# ====================================================================== the independent classifier


class Classifier(nn.Module):
    """A small VGG-style CNN, trained on real images only: the judge of which class a sample is."""

    def __init__(self, classes: int) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]

        # narrow at full resolution, where a layer costs the most (a few CPU seconds per epoch);
        # global pooling at the end, because the shapes are anywhere in the image
        self.net = nn.Sequential(
            *block(3, 16), nn.MaxPool2d(2),
            *block(16, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), *block(64, 64),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(64, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, classes: int, epochs: int, seed: int) -> Classifier:
    torch.manual_seed(seed)
    net = Classifier(classes)
    opt = optim.Adam(net.parameters(), lr=2e-3)
    steps = epochs * math.ceil(len(images) / 128)
    sched = optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(images)).split(128):
            loss = F.cross_entropy(net(from_uint8(images[idx])), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@torch.no_grad()
def predict(net: Classifier, images: torch.Tensor) -> torch.Tensor:
    """Predicted classes for uint8 or [-1, 1] images."""
    x = from_uint8(images) if images.dtype == torch.uint8 else images
    return torch.cat([net(chunk).argmax(1) for chunk in x.split(500)])


# ====================================================================== timing


class Unconditional:
    """The tutorial's DCGAN step (tui_gan.engine.models, Sigmoid + BCELoss) in the same loop
    shape as ConditionalGan.train_step: the baseline for the speed cost."""

    def __init__(self) -> None:
        self.netG, self.netD = Generator(NZ, NGF, 3, SIZE), Discriminator(NDF, 3, SIZE)
        self.netG.apply(weights_init)
        self.netD.apply(weights_init)
        self.optG = optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optD = optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.bce = nn.BCELoss()

    def train_step(self, real: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
        b = real.size(0)
        ones, zeros = torch.ones(b), torch.zeros(b)
        self.netD.zero_grad(set_to_none=True)
        err_real = self.bce(self.netD(real).view(-1), ones)
        err_real.backward()
        fake = self.netG(torch.randn(b, NZ, 1, 1))
        err_fake = self.bce(self.netD(fake.detach()).view(-1), zeros)
        err_fake.backward()
        self.optD.step()
        self.netG.zero_grad(set_to_none=True)
        err_g = self.bce(self.netD(fake).view(-1), ones)
        err_g.backward()
        self.optG.step()
        return float(err_real.detach() + err_fake.detach()), float(err_g.detach())


def time_steps(classes: int, images: torch.Tensor, labels: torch.Tensor, rounds: int, steps: int
               ) -> dict[str, float]:
    """Seconds per training step of each model (and the unconditional DCGAN): the fastest of
    ``rounds`` rounds of ``steps`` steps after a warm-up, the models taking turns. The fastest,
    not the median: other processes' load only ever adds time, and on a shared 2-core machine
    it can last for most of the rounds (a first run here saw the median 10x the quiet cost)."""
    torch.manual_seed(0)
    models = {"unconditional": Unconditional()}
    models.update({k: ConditionalGan(k, classes, NZ, NGF, NDF, 3, SIZE) for k in KINDS})
    batch, y = from_uint8(images[:BATCH]), labels[:BATCH]
    for m in models.values():
        for _ in range(3):
            m.train_step(batch, y)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(rounds):
        for name, m in models.items():
            start = time.perf_counter()
            for _ in range(steps):
                m.train_step(batch, y)
            times[name].append((time.perf_counter() - start) / steps)
    return {k: float(np.min(v)) for k, v in times.items()}


# ====================================================================== training and measuring


def train(kind: str, classes: int, images: torch.Tensor, labels: torch.Tensor, steps: int, seed: int, lr: float
          ) -> ConditionalGan:
    torch.manual_seed(seed)
    gan = ConditionalGan(kind, classes, NZ, NGF, NDF, 3, SIZE, lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    done = 0
    while done < steps:  # epochs of shuffled batches, the last partial batch dropped
        for idx in torch.randperm(len(images), generator=gen).split(BATCH):
            if len(idx) < BATCH or done == steps:
                break
            gan.train_step(from_uint8(images[idx]), labels[idx], gen)
            done += 1
    return gan


def samples(gan: ConditionalGan, classes: int, seed: int, mixed: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """PER_CLASS uint8 samples of every class, drawn in batches of 250 (G uses batch statistics,
    as the tutorial draws) that mix the classes as in training, or (mixed=False) in batches of
    PER_CLASS of one class each, as "generate a 7" would naturally draw them."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    y = torch.arange(classes).repeat(PER_CLASS) if mixed else torch.arange(classes).repeat_interleave(PER_CLASS)
    z = torch.randn(len(y), NZ, 1, 1, generator=gen)
    size = 250 if mixed else PER_CLASS
    fake = torch.cat([generate(gan.netG, zc, yc) for zc, yc in zip(z.split(size), y.split(size))])
    return to_uint8(fake), y


def class_sets(images: torch.Tensor, labels: torch.Tensor, classes: int, count: int, skip: int = 0
               ) -> list[torch.Tensor]:
    """``count`` images of each class (after skipping ``skip`` of them)."""
    sets = []
    for c in range(classes):
        chosen = images[labels == c][skip:skip + count]
        if len(chosen) < count:
            raise SystemExit(f"only {len(chosen)} reference images of class {c}; make the reference set larger")
        sets.append(chosen)
    return sets


def measure(fake: torch.Tensor, fake_y: torch.Tensor, judge: Classifier, refs: list[RealReference],
            real_spread: list[float]) -> dict[str, object]:
    classes = len(refs)
    predicted = predict(judge, fake)
    accuracy = [float((predicted[fake_y == c] == c).float().mean()) for c in range(classes)]
    swd = [refs[c].compare(fake[fake_y == c]).swd for c in range(classes)]
    diversity = [mean_pairwise_distance(fake[fake_y == c]) / real_spread[c] for c in range(classes)]
    return {"accuracy": accuracy, "swd": swd, "diversity": diversity}


def grid(images: torch.Tensor, labels: torch.Tensor, classes: int, path: Path | None, columns: int = 10,
         scale: int = 2) -> np.ndarray:
    """One row per class, ``columns`` images each, enlarged ``scale`` times (nearest), 2 px
    gaps; saved to ``path`` (if given) and returned."""
    side = SIZE * scale
    cell = side + 2
    canvas = np.full((classes * cell + 2, columns * cell + 2, 3), 32, np.uint8)
    for c in range(classes):
        for j, img in enumerate(images[labels == c][:columns]):
            pic = img.permute(1, 2, 0).numpy().repeat(scale, 0).repeat(scale, 1)
            canvas[2 + c * cell:2 + c * cell + side, 2 + j * cell:2 + j * cell + side] = pic
    if path is not None:
        Image.fromarray(canvas).save(path, optimize=True)
    return canvas


# ====================================================================== report


def _stats(values: list[float]) -> tuple[float, float, float]:
    return float(np.mean(values)), float(np.min(values)), float(np.max(values))


def report(results: dict, args: argparse.Namespace, elapsed: float) -> str:
    lines = []
    for ds, res in results["datasets"].items():
        t = res["timing"]
        names = DATASETS[ds][1]
        lines += [
            f"### {ds}: {len(names)} classes ({', '.join(names)})",
            "",
            f"{res['images']:,} training images at {SIZE}x{SIZE}; classifier held-out accuracy "
            f"**{100 * res['classifier_accuracy']:.1f}%** on {res['held_out']:,} fresh images. "
            f"Real-vs-real per-class SWD floor (100 other real images of each class): "
            f"{res['floor_mean']:.1f} mean, {res['floor_max']:.1f} worst class.",
            "",
            "| model | s/step | x uncond. | steps | class acc. mean | worst class | SWD mean | SWD worst "
            "| diversity mean | lowest class | one-class batches: acc. | SWD |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
            f"| unconditional DCGAN (timing only) | {t['unconditional']:.4f} | 1.00 | {res['steps']['unconditional']} "
            "| | | | | | | | |",
        ]
        for kind in KINDS:
            runs = res["runs"][kind]
            acc = [_stats(r["accuracy"]) for r in runs]
            swd = [_stats(r["swd"]) for r in runs]
            div = [_stats(r["diversity"]) for r in runs]
            alone_acc = [100 * float(np.mean(r["alone"]["accuracy"])) for r in runs]
            alone_swd = [float(np.mean(r["alone"]["swd"])) for r in runs]

            def cell(per_seed: list[float], fmt: str) -> str:
                text = fmt.format(np.mean(per_seed))
                if len(per_seed) > 1:
                    text += " (" + ", ".join(fmt.format(v) for v in per_seed) + ")"
                return text

            lines.append(
                f"| {kind} | {t[kind]:.4f} | {t[kind] / t['unconditional']:.2f} | {res['steps'][kind]} "
                f"| {cell([100 * a[0] for a in acc], '{:.1f}%')} | {cell([100 * a[1] for a in acc], '{:.0f}%')} "
                f"| {cell([s[0] for s in swd], '{:.1f}')} | {cell([s[2] for s in swd], '{:.1f}')} "
                f"| {cell([d[0] for d in div], '{:.2f}')} | {cell([d[1] for d in div], '{:.2f}')} "
                f"| {cell(alone_acc, '{:.1f}%')} | {cell(alone_swd, '{:.1f}')} |"
            )
        lines.append("")
    seeds = " ".join(str(s) for s in results["seeds"])
    lines += [
        "How it was run:",
        "",
        "```",
        f"nice -n 10 python docs/experiments/conditional.py --budget-steps {args.budget_steps} "
        f"--seeds {seeds} --lr {args.lr:g} --images {args.images} --classifier-epochs {args.classifier_epochs} "
        f"--timing-rounds {args.timing_rounds} --timing-steps {args.timing_steps}",
        "```",
        "",
        f"Machine: {results['machine']}; {results['threads']} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}; {elapsed / 60:.0f} minutes in all. Training seeds: {seeds} "
        "(values in brackets: per seed). Each model trained for (budget) / (its own seconds per step) steps, "
        f"the budget being {args.budget_steps} steps of the unconditional DCGAN; batch {BATCH}, nz {NZ}, "
        f"ngf = ndf = {NGF}, Adam {args.lr:g} / 0.5. Seconds per step: the fastest of {args.timing_rounds} rounds of "
        f"{args.timing_steps} steps, the models taking turns. Sample grids: {args.scratch}.",
    ]
    return "\n".join(lines) + "\n"


def write(out: Path, table: str) -> None:
    text = out.read_text() if out.exists() else f"# Conditional GANs\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    out.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


def machine() -> str:
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-steps", type=int, default=2000, help="training time, in unconditional steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--lr", type=float, default=2e-4, help="Adam's learning rate for G and D (beta1 0.5)")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--classifier-epochs", type=int, default=6)
    parser.add_argument("--timing-rounds", type=int, default=7)
    parser.add_argument("--timing-steps", type=int, default=8)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "conditional.md")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/h-cmodels"))
    parser.add_argument("--no-write", action="store_true", help="print the table only (smoke runs)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    args.scratch.mkdir(parents=True, exist_ok=True)
    began = time.time()
    results: dict = {"machine": machine(), "threads": torch.get_num_threads(), "seeds": [], "datasets": {}}
    prepared = {}
    for ds in args.datasets:
        make, names = DATASETS[ds]
        classes = len(names)
        # three independent draws: training (the GANs and the classifier), the classifier's
        # held-out test, and the per-class SWD references (two disjoint sets of PER_CLASS)
        images, labels = (torch.from_numpy(a) for a in make(args.images, 1000))
        test_x, test_y = (torch.from_numpy(a) for a in make(max(1000, args.images // 5), 2000))
        ref_x, ref_y = (torch.from_numpy(a) for a in make(int(PER_CLASS * classes * 2.6), 3000))
        labels, test_y, ref_y = labels.long(), test_y.long(), ref_y.long()
        grid(ref_x, ref_y, classes, args.scratch / f"{ds}-real.png")

        judge = train_classifier(images, labels, classes, args.classifier_epochs, seed=0)
        held_out = float((predict(judge, test_x) == test_y).float().mean())
        print(f"[{ds}] classifier held-out accuracy {100 * held_out:.2f}% ({time.time() - began:.0f} s)", flush=True)

        refs_x = class_sets(ref_x, ref_y, classes, PER_CLASS)
        others_x = class_sets(ref_x, ref_y, classes, PER_CLASS, skip=PER_CLASS)
        refs = [RealReference(x, seed=0) for x in refs_x]
        real_spread = [mean_pairwise_distance(x) for x in refs_x]
        floor = [refs[c].compare(others_x[c]).swd for c in range(classes)]

        timing = time_steps(classes, images, labels, args.timing_rounds, args.timing_steps)
        budget = args.budget_steps * timing["unconditional"]
        steps = {k: max(1, round(budget / t)) for k, t in timing.items()}
        print(f"[{ds}] s/step {json.dumps({k: round(v, 4) for k, v in timing.items()})} -> steps {steps}", flush=True)
        prepared[ds] = (classes, images, labels, judge, refs, real_spread)
        results["datasets"][ds] = {
            "images": args.images, "held_out": len(test_x), "classifier_accuracy": held_out,
            "floor_mean": float(np.mean(floor)), "floor_max": float(np.max(floor)),
            "timing": timing, "steps": steps, "runs": {k: [] for k in KINDS},
        }

    # seed by seed, so that the report is written (and usable) after each complete seed
    small: dict[tuple[str, int], list[np.ndarray]] = {}
    for seed in args.seeds:
        for ds, (classes, images, labels, judge, refs, real_spread) in prepared.items():
            res = results["datasets"][ds]
            for kind in KINDS:
                start = time.time()
                gan = train(kind, classes, images, labels, res["steps"][kind], seed, args.lr)
                fake, fake_y = samples(gan, classes, seed)
                result = measure(fake, fake_y, judge, refs, real_spread)
                alone, alone_y = samples(gan, classes, seed, mixed=False)
                result["alone"] = measure(alone, alone_y, judge, refs, real_spread)
                res["runs"][kind].append(result)
                grid(fake, fake_y, classes, args.scratch / f"{ds}-{kind}-s{seed}.png")
                small.setdefault((kind, seed), []).append(grid(fake, fake_y, classes, None, 8, 1))
                print(f"[{ds}] {kind} seed {seed}: acc {100 * np.mean(result['accuracy']):.1f}% "
                      f"swd {np.mean(result['swd']):.1f} div {np.mean(result['diversity']):.2f} "
                      f"({time.time() - start:.0f} s)", flush=True)
        for kind in KINDS:  # both data sets at their own size, one above the other: small enough for assets/
            Image.fromarray(np.concatenate(small[kind, seed])).save(args.scratch / f"small-{kind}-s{seed}.png",
                                                                    optimize=True)
        results["seeds"].append(seed)
        (args.scratch / "results.json").write_text(json.dumps(results, indent=1))
        table = report(results, args, time.time() - began)
        print(table, flush=True)
        if not args.no_write:
            write(args.out, table)


if __name__ == "__main__":
    main()
