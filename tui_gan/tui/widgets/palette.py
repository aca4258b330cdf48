"""Half blocks on a terminal of 16 or 256 colours: each pixel becomes one of the colours the
terminal has.

16 colours are too few for nearest colours: a purple background turns black, a green digit
grey. There the pixels are dithered (Floyd-Steinberg, Pillow's), so that a sample's shades
survive as a mix of the colours near them. Measured on the built-in digits (a 4x4-pixel
box blur of the result against the samples, mean error per channel): 32.6 nearest, 8.5
dithered. At 256 colours nearest is 10.1 and dithering 2.2, but the cube is close enough
that the eye sees dithering's speckle more than nearest's error: 256 colours take the
nearest (docs/pixels.md has the pictures' numbers).

The colours are the ones the terminal shows: for 16 colours, those it answered the probe
with (OSC 4; terminals differ: xterm's red is (205, 0, 0), the VGA's (170, 0, 0)), else
Rich's standard ones; for 256, the 6x6x6 cube and grey ramp (numbers 16-255, which no
theme redefines).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

RGB = tuple[int, int, int]


@lru_cache(maxsize=8)
def terminal_palette(color_system: str | None, shown: tuple[RGB, ...] | None = None):
    """(first number, uint8 RGB array) of the colours cells are drawn in, or None for
    truecolor; ``shown``: the 16 colours the terminal said it shows."""
    import numpy as np
    from rich.color import EIGHT_BIT_PALETTE, STANDARD_PALETTE

    if color_system == "256":
        return 16, np.array([tuple(EIGHT_BIT_PALETTE[i]) for i in range(16, 256)], dtype=np.uint8)
    if color_system in ("standard", "windows"):
        colours: Sequence[RGB] = shown if shown and len(shown) == 16 else [tuple(STANDARD_PALETTE[i]) for i in range(16)]
        return 0, np.array(colours, dtype=np.uint8)
    return None


def nearest(colours: np.ndarray, palette) -> np.ndarray:
    """Palette numbers of the nearest (RGB distance) colours to (..., 3) ``colours``, found
    for each distinct colour once."""
    import numpy as np

    first, rgb = palette
    distinct, inverse = np.unique(colours.reshape(-1, 3), axis=0, return_inverse=True)
    mine, theirs = distinct.astype(np.float32), rgb.astype(np.float32)
    # |a - b|^2 without the (colours, palette, 3) array: |b|^2 - 2 a.b (|a|^2 is the same for all b)
    distance = (theirs**2).sum(axis=1)[None, :] - 2.0 * (mine @ theirs.T)
    return (distance.argmin(axis=1) + first)[inverse.reshape(-1)].reshape(colours.shape[:-1])


def palette_numbers(canvas: np.ndarray, palette, background: RGB) -> np.ndarray:
    """(H, W) palette numbers for an RGB ``canvas``. With 16 colours, dithered inside the
    tiles, while the panel's ``background`` around and between them stays one colour, its
    nearest (dithered, a flat colour comes out speckled)."""
    import numpy as np
    from PIL import Image

    first, rgb = palette
    if len(rgb) > 16:
        return nearest(canvas, palette)
    flat = rgb.ravel().tolist()
    paletted = Image.new("P", (1, 1))
    paletted.putpalette(flat + flat[:3] * (256 - len(rgb)))  # Pillow's palettes have 256 entries
    dithered = Image.fromarray(np.ascontiguousarray(canvas)).quantize(palette=paletted,
                                                                       dither=Image.Dither.FLOYDSTEINBERG)
    numbers = np.asarray(dithered).astype(np.int64)
    numbers[numbers >= len(rgb)] = 0  # the padding repeats colour 0
    numbers += first
    numbers[(canvas == np.array(background, dtype=canvas.dtype)).all(axis=-1)] = nearest(
        np.array([background], dtype=np.uint8), palette)[0]
    return numbers
