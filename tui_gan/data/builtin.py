"""The built-in dataset: coloured digits, generated with Pillow.

No download, deterministic by seed, and recognisable at a glance in a tiny preview, so a
person can judge a GAN's progress on it within seconds.

The same drawing, in a broader style (``GlyphStyle``), makes the labelled capitals and
digits that docs/experiments/readability.py trains its glyph reader on.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .imagefiles import ProgressFn

BUILTIN_IMAGES = 10_000
#: Part of the decode cache's key: bump it whenever the images this module makes change.
#: 2: glyphs 0.65-0.9 of the image (was 0.5-0.9), rotated within ±12° (was ±30°).
#: 3: digits only (were digits and capitals), upright, centred within ±5% of the side, 0.75-0.9
#: of it, bright on one flat dark colour: the default CPU run then ends with most glyphs
#: readable (docs/benchmark.md).
BUILTIN_VERSION = 3
#: The built-in dataset never takes more host memory than this (bytes): fewer images at 256px.
BUILTIN_MEMORY_BUDGET = 512 * 1024 * 1024
GLYPHS = string.digits + string.ascii_uppercase
"""Every glyph this module can draw; labels are indices into it."""
PALETTE = np.array(
    [(255, 255, 255), (255, 80, 80), (255, 200, 40), (90, 230, 90), (80, 200, 255), (230, 110, 255), (255, 150, 60), (60, 240, 220)]
)


@dataclass(frozen=True)
class GlyphStyle:
    """What varies from image to image: which glyphs, their size (a fraction of the side),
    rotation (within ±angle degrees), centre (a fraction of the side, both axes), the
    fraction of bright glyphs on dark backgrounds (the others dark on light), how far the
    background's second tone may be from its first (1: up to 40 levels per channel; 0: one
    flat colour), and the fractions drawn about 2 and 4 pixels bolder (of the 32-pixel mask).
    The defaults are the built-in set's."""

    glyphs: str = string.digits
    scale: tuple[float, float] = (0.75, 0.9)
    angle: float = 0.0
    centre: tuple[float, float] = (0.45, 0.55)
    light: float = 1.0
    gradient: float = 0.0
    bold: tuple[float, float] = (0.0, 0.0)


BUILTIN_STYLE = GlyphStyle()
BUILTIN_CLASSES = list(BUILTIN_STYLE.glyphs)
"""The built-in set's classes for --conditional: its digits, "0" to "9", label i the digit i."""


def builtin_count(image_size: int, channels: int) -> int:
    per_image = image_size * image_size * channels
    return max(256, min(BUILTIN_IMAGES, BUILTIN_MEMORY_BUDGET // per_image))


def make_builtin(
    n: int, size: int, seed: int, channels: int = 3, progress: ProgressFn | None = None
) -> np.ndarray:
    """``n`` images of coloured digits (BUILTIN_STYLE), uint8 (n, channels, size, size)."""
    return make_builtin_labelled(n, size, seed, channels, progress)[0]


def make_builtin_labelled(
    n: int, size: int, seed: int, channels: int = 3, progress: ProgressFn | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """As make_builtin, with each image's class: int64 indices into BUILTIN_CLASSES."""
    images, glyphs = make_glyphs(n, size, seed, BUILTIN_STYLE, progress)
    to_class = np.full(len(GLYPHS), -1, dtype=np.int64)  # glyphs are indices into GLYPHS
    to_class[[GLYPHS.index(g) for g in BUILTIN_CLASSES]] = np.arange(len(BUILTIN_CLASSES))
    labels = to_class[glyphs]
    if channels == 1:
        gray = (images[:, 0] * 0.299 + images[:, 1] * 0.587 + images[:, 2] * 0.114).round().astype(np.uint8)
        return gray[:, None], labels
    return images, labels


def make_glyphs(n: int, size: int, seed: int, style: GlyphStyle = BUILTIN_STYLE,
                progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` RGB uint8 images of glyphs drawn in ``style`` and their labels (indices into
    GLYPHS): random glyph, size, position, rotation and colour on a contrasting two-tone
    gradient. Deterministic by seed.

    Each glyph is rasterised once as a tight anti-aliased mask; an image is then a
    resize, a rotate and a blend of one small patch, so 10,000 images take seconds.
    """
    rng = np.random.default_rng(seed)
    masks = _glyph_masks(max(32, size))
    labels = np.array([GLYPHS.index(g) for g in style.glyphs])[rng.integers(0, len(style.glyphs), n)]
    scale = rng.uniform(*style.scale, n)
    angle = rng.uniform(-style.angle, style.angle, n)
    cx, cy = rng.uniform(*style.centre, (2, n))
    # Dark, muted backgrounds and bright glyphs from a small palette (in the broader style,
    # two-tone and a quarter the other way round): varied enough to look alive, regular
    # enough that a small DCGAN on a CPU learns shapes within a minute.
    light_glyphs = rng.random(n) < style.light
    bg_a = rng.integers(0, 90, (n, 3))
    bg_a[~light_glyphs] += 165
    bg_b = np.clip(bg_a + rng.integers(-40, 41, (n, 3)) * style.gradient, 0, 255)
    fg = PALETTE[rng.integers(0, len(PALETTE), n)].astype(np.float32)
    fg[~light_glyphs] *= 0.35
    horizontal = rng.random(n) < 0.5
    # drawn apart, so that the draws above do not depend on the bold fractions
    u = np.random.default_rng([seed, 1]).random(n)
    bolder = np.where(u < style.bold[0], 3, np.where(u < style.bold[0] + style.bold[1], 5, 0))
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
            mask = masks[labels[i]].resize((side, side), Image.BILINEAR)
            mask = mask.rotate(angle[i], resample=Image.BILINEAR, expand=True)
            if bolder[i]:
                mask = mask.filter(ImageFilter.MaxFilter(int(bolder[i])))
            mask = np.asarray(mask, np.float32) * (1 / 255)
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
    return out, labels


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
