"""The built-in dataset: coloured digits and capital letters, generated with Pillow.

No download, deterministic by seed, and recognisable at a glance in a tiny preview, so a
person can judge a GAN's progress on it within seconds.
"""

from __future__ import annotations

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .imagefiles import ProgressFn

BUILTIN_IMAGES = 10_000
#: Part of the decode cache's key: bump it whenever the images this module makes change.
#: 2: glyphs 0.65-0.9 of the image (was 0.5-0.9), rotated within ±12° (was ±30°): the
#: default CPU run then ends with many glyphs readable (docs/benchmark.md).
BUILTIN_VERSION = 2
#: The built-in dataset never takes more host memory than this (bytes): fewer images at 256px.
BUILTIN_MEMORY_BUDGET = 512 * 1024 * 1024
GLYPHS = string.digits + string.ascii_uppercase
PALETTE = np.array(
    [(255, 255, 255), (255, 80, 80), (255, 200, 40), (90, 230, 90), (80, 200, 255), (230, 110, 255), (255, 150, 60), (60, 240, 220)]
)



def builtin_count(image_size: int, channels: int) -> int:
    per_image = image_size * image_size * channels
    return max(256, min(BUILTIN_IMAGES, BUILTIN_MEMORY_BUDGET // per_image))


def make_builtin(
    n: int, size: int, seed: int, channels: int = 3, progress: ProgressFn | None = None
) -> np.ndarray:
    """``n`` images of coloured digits and capital letters: random glyph, size, position,
    rotation and colour on a contrasting two-tone gradient. Deterministic by seed.

    Each glyph is rasterised once as a tight anti-aliased mask; an image is then a
    resize, a rotate and a blend of one small patch, so 10,000 images take seconds.
    """
    rng = np.random.default_rng(seed)
    masks = _glyph_masks(max(32, size))
    glyph = rng.integers(0, len(GLYPHS), n)
    scale = rng.uniform(0.65, 0.9, n)
    angle = rng.uniform(-12, 12, n)
    cx, cy = rng.uniform(0.35, 0.65, (2, n))
    # Dark, muted two-tone backgrounds and bright glyphs from a small palette: varied enough
    # to look alive, regular enough that a small DCGAN on a CPU learns shapes within a minute.
    light_glyphs = rng.random(n) < 0.75
    bg_a = rng.integers(0, 90, (n, 3))
    bg_a[~light_glyphs] += 165
    bg_b = np.clip(bg_a + rng.integers(-40, 41, (n, 3)), 0, 255)
    fg = PALETTE[rng.integers(0, len(PALETTE), n)].astype(np.float32)
    fg[~light_glyphs] *= 0.35
    horizontal = rng.random(n) < 0.5
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    chunk = 500
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        t = np.where(horizontal[sl, None, None], ramp[None, None, :], ramp[None, :, None])
        a = bg_a[sl, :, None, None].astype(np.float32)
        b = bg_b[sl, :, None, None].astype(np.float32)
        canvas = a + (b - a) * t[:, None]
        for j, i in enumerate(range(sl.start, sl.stop)):
            side = max(4, int(size * scale[i]))
            mask = masks[glyph[i]].resize((side, side), Image.BILINEAR)
            mask = np.asarray(mask.rotate(angle[i], resample=Image.BILINEAR, expand=True), np.float32)
            mask *= 1 / 255
            h, w = mask.shape
            x0, y0 = int(cx[i] * size - w / 2), int(cy[i] * size - h / 2)
            x1, y1 = min(size, x0 + w), min(size, y0 + h)
            mx, my = max(0, -x0), max(0, -y0)
            x0, y0 = max(0, x0), max(0, y0)
            m = mask[my : my + y1 - y0, mx : mx + x1 - x0]
            patch = canvas[j, :, y0:y1, x0:x1]
            patch += (fg[i][:, None, None] - patch) * m
        out[sl] = canvas.round().astype(np.uint8)
        if progress is not None:
            progress(sl.stop, n)
    if channels == 1:
        gray = (out[:, 0] * 0.299 + out[:, 1] * 0.587 + out[:, 2] * 0.114).round().astype(np.uint8)
        return gray[:, None]
    return out


def _glyph_masks(resolution: int) -> list[Image.Image]:
    """A square anti-aliased 'L' mask per glyph, the glyph filling it (bold strokes)."""
    font = ImageFont.load_default(size=resolution * 2)
    stroke = max(1, resolution // 10)
    masks = []
    for ch in GLYPHS:
        big = Image.new("L", (resolution * 4, resolution * 4), 0)
        draw = ImageDraw.Draw(big)
        draw.text((resolution, resolution), ch, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
        glyph = big.crop(big.getbbox())
        side = max(glyph.size)
        square = Image.new("L", (side, side), 0)
        square.paste(glyph, ((side - glyph.width) // 2, (side - glyph.height) // 2))
        masks.append(square.resize((resolution, resolution), Image.LANCZOS))
    return masks
