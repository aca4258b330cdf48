"""Readability: what fraction of a generator's samples a fixed reader reads as glyphs.

An objective stand-in for "how many of the generated glyphs can be read" on the built-in
dataset (tui_gan/data/builtin.py; version 3 draws the 10 digits, upright and centred; its
drawing code can make 36 glyphs, digits and capitals, which the reader all knows). The
reader is a small CNN classifier (Reader: four conv + BatchNorm blocks, 102k parameters,
looking at the 32x32 images at 24x24) trained on labelled glyph images drawn from a
deliberately broader style than any version of the set's (BROAD: all 36 glyphs, scale
0.45-0.95, rotation ±30°, centre 0.3-0.7, two-tone backgrounds, a quarter dark on light),
with bolder strokes, warps, blur, blotches and grain, and with outlier exposure on noise
and random blobs. So it stays the same yardstick when the dataset's settings change, and
its confidence is low on images that are no glyph. It is trained once, deterministically
(fixed seeds, one thread: two trainings gave bit-identical weights), and cached in
/tmp/readability/reader_v1.pt (bump the name when the training changes). Training takes
3-4 minutes.

Scores of a set of images (uint8, or float in [-1, 1]; 1 or 3 channels, any size):

- ``readable@t``: the fraction of images whose most likely class has probability >= t;
  readable@0.9 is the headline number, @0.5 and @0.99 bracket it.
- ``coverage``: the number of distinct classes among the images readable at 0.9 (of 36).
- ``entropy``: of the histogram of all images' most likely classes, in nats: ln 36 = 3.58
  for all classes equally often, lower when a generator collapses onto a few glyphs.

Usage (from the repository root):

    python docs/experiments/readability.py RUN_DIR_OR_CHECKPOINT [--n 1024] [--seed 0] [--live]
    python docs/experiments/readability.py --png GRID.png [--tile 32] [--per-image]
    python docs/experiments/readability.py --calibrate

A checkpoint's samples are drawn as ``tui-gan sample`` draws them (fixed-seed latents,
batch statistics in batches of 64), from its generator average (--ema) where it has one
unless --live. A grid PNG is split into its tiles (2 px padding, as tui-gan saves grids).
Scoring 1,024 samples of a cpu-preset checkpoint takes about 1.5 s, 6 s with the start-up.

Calibration (``--calibrate``; measured on 1 thread of the 2-core AMD EPYC; the built-in set
is make_builtin(2000, 32, seed=12345); first with BUILTIN_VERSION 2, 36 glyphs, then 3):

| images | readable@0.5 | readable@0.9 | readable@0.99 | coverage | entropy | accuracy |
| --- | --- | --- | --- | --- | --- | --- |
| broad held-out set (3,000) | 0.997 | 0.935 | 0.725 | 36/36 | 3.58 | 0.995 |
| built-in set, version 2 | 1.000 | 0.983 | 0.877 | 36/36 | 3.58 | 1.000 |
| version 2, blur sigma 1 | 1.000 | 0.985 | 0.859 | 36/36 | 3.58 | 1.000 |
| version 2, blur sigma 2 | 0.997 | 0.909 | 0.627 | 36/36 | 3.58 | 0.997 |
| version 2, blur sigma 3 | 0.860 | 0.492 | 0.176 | 35/36 | 3.56 | 0.890 |
| built-in set, version 3 (digits) | 0.999 | 0.905 | 0.722 | 10/36 | 2.30 | 0.990 |
| version 3, blur sigma 1 | 1.000 | 0.952 | 0.728 | 10/36 | 2.30 | 0.999 |
| version 3, blur sigma 2 | 0.999 | 0.918 | 0.578 | 10/36 | 2.30 | 0.998 |
| version 3, blur sigma 3 | 0.906 | 0.507 | 0.060 | 9/36 | 2.37 | 0.938 |
| uniform noise in [-1, 1] | 0.000 | 0.000 | 0.000 | 0/36 | 2.75 | |
| smooth noise (blur 3) | 0.009 | 0.000 | 0.000 | 0/36 | 2.69 | |

On version 3 the entropy of a healthy generator is near ln 10 = 2.30 (a little above:
some digits are read as the capital they resemble, 0 as O, 8 as B).

Reference scores (1,024 samples, seed 0): default cpu-preset runs (1,248 steps) read 0.55
at 0.5 and 0.14 at 0.9 on version 2 (coverage 27/36, entropy 3.31), and 0.84 and 0.34 on
version 3; runs stopped after 95 and 335 steps read 0.00 and 0.02 at 0.9. The table in
docs/benchmark.md ("The default CPU run") has the rest.

How it compares with a person: reading version 2's assets/default-cpu-run.png by eye (once, by this
script's author), 16 of its 64 glyphs were clearly readable and 18 more guessable; the reader's most likely class agreed
on 9 of the 16 and it was 0.9 sure of 3 of them, and it was 0.9 sure of 1 of the 30 tiles
the person could not read. The reader is stricter than a person on GAN samples (their
very bold strokes and closed-up holes are far from any real glyph): read readable@0.9 as
"unmistakably a glyph", compare runs with it, and do not expect it to equal a human count.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from tui_gan.core.errors import UserError
from tui_gan.data import builtin
from tui_gan.data.builtin import GLYPHS, PALETTE, make_builtin

torch.set_num_threads(1)

CACHE = Path("/tmp/readability/reader_v1.pt")
SIZE = 32
#: The reader looks at its 32x32 images at 24x24: twice as fast to train, and no
#: less readable (GAN samples are soft at 32x32).
READ = 24
CLASSES = len(GLYPHS)
THRESHOLDS = (0.5, 0.9, 0.99)
#: The reader's training distribution: broader than the built-in set's (scale 0.65-0.9,
#: rotation within ±12°, centre 0.35-0.65 in BUILTIN_VERSION 2), so that it stays a fixed
#: yardstick when those settings change.
BROAD = {"scale": (0.45, 0.95), "angle": 30.0, "centre": (0.3, 0.7)}
TRAIN_IMAGES, TRAIN_SEED, HELD_OUT_IMAGES, HELD_OUT_SEED = 30_000, 1, 3_000, 2
EPOCHS, BATCH, LR = 8, 128, 3e-3
#: A fraction of the glyphs drawn bolder; junk images (make_junk) per batch and their loss's weight.
BOLD, JUNK, JUNK_WEIGHT = (0.25, 0.15), 8, 0.3
#: Augmentation: the largest shear, stretch and elastic displacement (pixels), and blur sigma.
WARP, BLUR = {"shear": 0.1, "stretch": 0.1, "elastic": 1.5}, 1.5
#: The calibration's real images: the built-in set as make_builtin makes it.
REAL_IMAGES, REAL_SEED = 2_000, 12345


# ---------------------------------------------------------------------------------------
# Labelled glyph images


def make_glyphs(n: int, seed: int, scale: tuple[float, float], angle: float, centre: tuple[float, float],
                bold: tuple[float, float] = (0.0, 0.0), size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 (n, 3, size, size) images of all 36 glyphs and their class indices into
    GLYPHS, drawn as the built-in set is drawn (tui_gan/data/builtin.py) but with the glyph's
    scale, rotation (±angle degrees) and centre drawn from the given ranges, and fractions
    ``bold`` of the glyphs drawn with bolder strokes."""
    return builtin.make_glyphs(n, size, seed, builtin.GlyphStyle(GLYPHS, scale, angle, centre, 0.75, 1.0, bold))


def builtin_labels(n: int, seed: int) -> np.ndarray:
    """The classes of make_builtin(n, size, seed)."""
    return builtin.make_glyphs(n, 8, seed)[1]


# ---------------------------------------------------------------------------------------
# Pixels


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The reader's input, float (N, 3, 32, 32) in [-1, 1], from uint8 [0, 255] or float
    [-1, 1] images (N, C, H, W) of 1 or 3 channels and any size (resized with antialiasing)."""
    x = torch.as_tensor(images)
    x = x.float().div(127.5).sub(1.0) if x.dtype == torch.uint8 else x.float().clamp(-1, 1)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W), got {tuple(x.shape)}")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (SIZE, SIZE):
        x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous()


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W) blurred with its own ``sigma`` (pixels; 0: unchanged)."""
    n, c, h, w = x.shape
    sigma = torch.as_tensor(sigma, dtype=x.dtype).expand(n).clamp(min=1e-3)
    radius = max(1, math.ceil(3 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C, k)
    y = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="replicate")
    y = F.conv2d(y, kernel[:, None, None, :], groups=n * c)
    y = F.conv2d(y, kernel[:, None, :, None], groups=n * c)
    return y.reshape(n, c, h, w)


def smooth_noise(shape: tuple[int, ...], cells: int, gen: torch.Generator) -> torch.Tensor:
    """Random values on a ``cells`` x ``cells`` grid, upsampled bilinearly to ``shape``'s
    last two dimensions: smooth random fields, values from N(0, 1) at the grid's points."""
    coarse = torch.randn(*shape[:-2], cells, cells, generator=gen)
    return F.interpolate(coarse, size=shape[-2:], mode="bilinear", align_corners=True)


def warp(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random shear, stretch and smooth elastic distortion of each image (GAN glyphs are
    warped versions of the real ones): random displacements of the points of a 5x5 grid
    after an affine map, interpolated bilinearly between them."""
    n, _, h, w = x.shape
    cells = 5
    line = torch.linspace(-1, 1, cells)
    base = torch.stack(torch.meshgrid(line, line, indexing="xy"))  # (2, cells, cells): x, y
    shear = WARP["shear"] * (2 * torch.rand(n, 2, generator=gen) - 1)
    stretch = 1 + WARP["stretch"] * (2 * torch.rand(n, 2, generator=gen) - 1)
    gx = stretch[:, 0, None, None] * base[0] + shear[:, 0, None, None] * base[1]
    gy = shear[:, 1, None, None] * base[0] + stretch[:, 1, None, None] * base[1]
    amplitude = WARP["elastic"] * (2 / w) * torch.rand(n, 1, 1, 1, generator=gen)  # in pixels
    coarse = torch.stack([gx, gy], 1) + amplitude * torch.randn(n, 2, cells, cells, generator=gen)
    grid = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True).permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Warps, blur, blotches and grain (GAN samples are distorted, soft and grainy), and
    channel shuffles and some grayscale (the reader reads shapes, not colours)."""
    n = len(x)
    x = warp(x, gen)
    blurred = torch.rand(n, generator=gen) < 0.5
    sigma = 0.3 + (BLUR - 0.3) * torch.rand(n, generator=gen)
    x[blurred] = gaussian_blur(x[blurred], sigma[blurred])
    perm = torch.argsort(torch.rand(n, 3, generator=gen), dim=1)
    x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
    gray = torch.rand(n, generator=gen) < 0.1
    x = torch.where(gray[:, None, None, None], x.mean(1, keepdim=True).expand_as(x), x)
    blotches = 0.15 * torch.rand(n, 1, 1, 1, generator=gen) * smooth_noise(x.shape, 8, gen)
    grain = 0.28 * torch.rand(n, 1, 1, 1, generator=gen) * (torch.rand(x.shape, generator=gen) - 0.5)  # sd <= 0.08
    return (x + blotches + grain).clamp(-1, 1)


def make_junk(n: int, gen: torch.Generator) -> torch.Tensor:
    """Images that are no glyph, for the reader to learn to be unsure about: half uniform
    noise, half smooth random blobs in a glyph's colours on a glyph image's background."""
    noise = torch.rand(n, 3, SIZE, SIZE, generator=gen) * 2 - 1
    field = smooth_noise((n, 1, SIZE, SIZE), 6, gen)
    ranks = (field[0, 0].numel() * (0.55 + 0.3 * torch.rand(n, generator=gen))).long()
    level = field.flatten(1).sort(1).values.gather(1, ranks[:, None])
    shape = torch.sigmoid((field - level[:, :, None, None]) * 6)
    bg = torch.rand(n, 3, 1, 1, generator=gen) * 0.7 - 1
    fg = torch.as_tensor(PALETTE, dtype=torch.float32)[torch.randint(len(PALETTE), (n,), generator=gen)] / 127.5 - 1
    blobs = bg + (fg[:, :, None, None] - bg) * shape
    return torch.where((torch.rand(n, generator=gen) < 0.5)[:, None, None, None], noise, blobs)


# ---------------------------------------------------------------------------------------
# The reader


class Reader(nn.Module):
    """Four 3x3 conv + BatchNorm + ReLU blocks (16, 32, 64, 128 wide) with max pooling
    between them, global average pooling and a linear layer: 102k parameters."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        widths = (3, 16, 32, 64, 128)
        for i, (a, b) in enumerate(zip(widths, widths[1:])):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], CLASSES)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != READ:
            x = F.interpolate(x, size=(READ, READ), mode="bilinear", antialias=True, align_corners=False)
        return self.net(x)


def train_reader(log: Callable[[str], object] = print) -> Reader:
    """Train the reader on the broad distribution, deterministically (fixed seeds, 1 thread):
    cross-entropy on the glyphs, and on each batch's junk images (make_junk) the
    cross-entropy to uniform probabilities (outlier exposure, Hendrycks et al. 2019), so
    that its confidence means something on images that are no glyph."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    images, labels = make_glyphs(TRAIN_IMAGES, TRAIN_SEED, **BROAD, bold=BOLD)
    x, y = to_input(images), torch.as_tensor(labels)
    log(f"made {len(x)} training images in {time.perf_counter() - t0:.1f}s")
    model = Reader().to(memory_format=torch.channels_last)
    steps = EPOCHS * (len(x) // BATCH)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.15)
    model.train()
    for epoch in range(EPOCHS):
        order = torch.randperm(len(x), generator=gen)
        total = correct = 0
        loss_sum = 0.0
        for start in range(0, len(x) - BATCH + 1, BATCH):
            idx = order[start : start + BATCH]
            xb = torch.cat([augment(x[idx], gen), make_junk(JUNK, gen)])
            logits = model(xb.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits[:BATCH], y[idx])
            loss = loss - JUNK_WEIGHT * F.log_softmax(logits[BATCH:], 1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * BATCH
            correct += int((logits[:BATCH].argmax(1) == y[idx]).sum())
            total += BATCH
        log(f"epoch {epoch + 1}/{EPOCHS}: loss {loss_sum / total:.3f}, training accuracy {correct / total:.3f} "
            f"({time.perf_counter() - t0:.0f}s)")
    model.eval()
    return model


def load_reader(path: Path = CACHE, log: Callable[[str], object] = print) -> Reader:
    """The cached reader, trained and cached first when the cache is missing."""
    model = Reader()
    if path.is_file():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()
        return model
    log(f"no reader at {path}: training one (3-4 minutes on one CPU thread)")
    model = train_reader(log)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    log(f"saved the reader to {path}")
    return model.eval()


@torch.no_grad()
def probabilities(model: Reader, images: np.ndarray | torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Softmax class probabilities (N, 36) for images (see to_input for what they may be)."""
    x = to_input(images)
    return torch.cat([F.softmax(model(x[i : i + batch]), 1) for i in range(0, len(x), batch)])


# ---------------------------------------------------------------------------------------
# Scores


def score(probs: torch.Tensor, labels: np.ndarray | None = None) -> dict[str, float]:
    """readable@t: the fraction of images whose most likely class has probability >= t;
    coverage: distinct classes among the images readable at 0.9; entropy: of the histogram
    of all images' most likely classes (nats; ln 36 = 3.58 when all classes are equally
    frequent, 0 when all images read as one class); accuracy where labels are known."""
    conf, pred = probs.max(1)
    out = {f"readable@{t}": float((conf >= t).float().mean()) for t in THRESHOLDS}
    out["coverage"] = len(set(pred[conf >= 0.9].tolist()))
    freq = torch.bincount(pred, minlength=CLASSES).double() / len(pred)
    out["entropy"] = float(-(freq[freq > 0] * freq[freq > 0].log()).sum())
    if labels is not None:
        out["accuracy"] = float((pred == torch.as_tensor(labels)).float().mean())
    return out


def score_line(s: dict[str, float]) -> str:
    return (f"readable@0.9 {s['readable@0.9']:.2f}  readable@0.5 {s['readable@0.5']:.2f}  "
            f"readable@0.99 {s['readable@0.99']:.2f}  coverage {s['coverage']}/{CLASSES}  "
            f"entropy {s['entropy']:.2f} (max {math.log(CLASSES):.2f})")


def calibration(model: Reader) -> list[tuple[str, dict[str, float]]]:
    """Scores of reference image sets: the broad held-out set, the built-in set itself,
    blurred versions of it, and noise."""
    broad, broad_labels = make_glyphs(HELD_OUT_IMAGES, HELD_OUT_SEED, **BROAD)
    real = make_builtin(REAL_IMAGES, SIZE, REAL_SEED)
    labels = builtin_labels(REAL_IMAGES, REAL_SEED)
    x = to_input(real)
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(REAL_IMAGES, 3, SIZE, SIZE, generator=gen) * 2 - 1
    smooth = gaussian_blur(torch.rand(REAL_IMAGES, 3, SIZE, SIZE, generator=gen) * 2 - 1, 3.0)
    smooth = smooth / smooth.flatten(1).abs().amax(1)[:, None, None, None]  # blobs at full contrast
    rows = [
        ("broad held-out set", probabilities(model, broad), broad_labels),
        ("built-in set", probabilities(model, x), labels),
    ]
    for sigma in (1.0, 1.5, 2.0, 3.0):
        rows.append((f"built-in, blur sigma {sigma:g}", probabilities(model, gaussian_blur(x, sigma)), labels))
    rows += [("uniform noise", probabilities(model, noise), None),
             ("smooth noise (blur 3)", probabilities(model, smooth), None)]
    return [(name, score(p, lab)) for name, p, lab in rows]


def calibration_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    lines = ["| images | readable@0.5 | readable@0.9 | readable@0.99 | coverage | entropy | accuracy |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in rows:
        acc = f"{s['accuracy']:.3f}" if "accuracy" in s else ""
        lines.append(f"| {name} | {s['readable@0.5']:.3f} | {s['readable@0.9']:.3f} | {s['readable@0.99']:.3f} "
                     f"| {s['coverage']}/{CLASSES} | {s['entropy']:.2f} | {acc} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Inputs


def grid_tiles(path: str | Path, tile: int = SIZE, padding: int = 2) -> np.ndarray:
    """The images of a sample grid PNG (tiles of ``tile`` pixels, ``padding`` black pixels
    around each, as tui-gan saves them), uint8 (N, 3, tile, tile), row by row; trailing
    all-black tiles (the empty places of a last row) left out."""
    arr = np.asarray(Image.open(path).convert("RGB"))
    h, w, _ = arr.shape
    step = tile + padding
    if (h - padding) % step or (w - padding) % step:
        raise SystemExit(f"{path}: {w}x{h} is not a grid of {tile}px tiles with {padding}px padding; see --tile")
    tiles = [arr[y : y + tile, x : x + tile]
             for y in range(padding, h - tile + 1, step) for x in range(padding, w - tile + 1, step)]
    out = np.stack(tiles).transpose(0, 3, 1, 2)
    while len(out) > 1 and not out[-1].any():
        out = out[:-1]
    return out


def checkpoint_samples(spec: str, n: int, seed: int, live: bool) -> tuple[torch.Tensor, str]:
    """``n`` uint8 samples from a checkpoint or run directory, drawn as ``tui-gan sample``
    draws them (fixed-seed latents, batch statistics): its generator average where it has
    one (--ema), unless ``live``."""
    from tui_gan.engine.checkpoint import load_checkpoint
    from tui_gan.engine.sampling import generator_from_checkpoint, sample_images

    state = load_checkpoint(spec)
    device = torch.device("cpu")
    which = "generator_ema" if "generator_ema" in state and not live else "generator"
    netG = generator_from_checkpoint(state, device, live)
    config = state["config"]
    about = (f"{state['path']}: step {state['step']}, {which}, {config['image_size']}px, "
             f"ngf {config['ngf']}, data {config.get('data', '?')}")
    return sample_images(netG, n, seed, device), about


def per_image_table(probs: torch.Tensor, columns: int = 8) -> str:
    """Each image's most likely glyph and its probability, as a grid of text."""
    conf, pred = probs.max(1)
    cells = [f"{GLYPHS[p]} {c:.2f}{'*' if c >= 0.9 else ' '}" for p, c in zip(pred.tolist(), conf.tolist())]
    return "\n".join("  ".join(cells[i : i + columns]) for i in range(0, len(cells), columns))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", help="a run directory (its checkpoints/last.pt) or a checkpoint file")
    parser.add_argument("--n", type=int, default=1024, help="samples to draw from the checkpoint (default 1024)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples' latents (default 0)")
    parser.add_argument("--live", action="store_true", help="the live generator even where there is an average")
    parser.add_argument("--png", help="score the tiles of a sample grid PNG instead of a checkpoint")
    parser.add_argument("--tile", type=int, default=SIZE, help="--png: tile size in pixels (default 32)")
    parser.add_argument("--per-image", action="store_true", help="also print each image's reading")
    parser.add_argument("--calibrate", action="store_true", help="print the calibration table")
    parser.add_argument("--reader", type=Path, default=CACHE, help=f"the reader's weights (default {CACHE})")
    args = parser.parse_args(argv)
    if not (args.source or args.png or args.calibrate):
        parser.error("give a run directory or checkpoint, --png FILE, or --calibrate")
    if args.n < 1:
        parser.error("--n must be at least 1")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    model = load_reader(args.reader, log)
    if args.calibrate:
        t0 = time.perf_counter()
        print(calibration_table(calibration(model)), flush=True)
        log(f"calibration took {time.perf_counter() - t0:.1f}s")
    for what in ("png", "source"):
        spec = getattr(args, what)
        if not spec:
            continue
        t0 = time.perf_counter()
        if what == "png":
            images, about = grid_tiles(spec, args.tile), f"{spec}: grid"
        else:
            try:
                images, about = checkpoint_samples(spec, args.n, args.seed, args.live)
            except UserError as exc:
                log(f"error: {exc}")
                return 2
        probs = probabilities(model, images)
        log(f"{about}, {len(images)} images, scored in {time.perf_counter() - t0:.1f}s")
        if args.per_image:
            print(per_image_table(probs))
        print(score_line(score(probs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
