"""The progression of a run: its epoch-end sample grids as one animated GIF (and the GIF of
a latent walk, see interpolation.py).

The engine writes the fixed-noise grid of every epoch's end to ``samples/epoch-NNNN.png``
(the same noise every time, so a GIF of them shows the GAN learning, as the PyTorch
tutorial's closing animation does). Pillow only, no torch: ``tui-gan gif`` starts at once.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..core.atomic import atomic_write
from ..core.errors import UserError
from ..core.rundir import RunDir


def split_grid(image: np.ndarray, n: int, size: int, padding: int = 2, nrow: int | None = None) -> np.ndarray:
    """The inverse of images.grid: (H', W', C) mosaic of ``n`` tiles, ``nrow`` to a row
    (default near-square) -> uint8 (n, C, size, size)."""
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    tiles = []
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = padding + r * (size + padding), padding + col * (size + padding)
        tiles.append(image[y : y + size, x : x + size].transpose(2, 0, 1))
    return np.stack(tiles)


def epoch_samples(run_dir: str | Path, n: int, size: int, channels: int,
                  columns: int | None = None) -> list[tuple[int, np.ndarray]]:
    """The run's epoch-end grids split back into their ``n`` samples (for a resumed app's
    history); grids that do not match (another size, unreadable) are left out. ``columns``:
    a conditional run's grids, a row of that many per class, their names in a margin at the
    left (grids.save_class_grid), which is cut off."""
    nrow = columns or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    expected = (2 + rows * (size + 2), 2 + nrow * (size + 2))
    out = []
    for epoch, path in RunDir(run_dir).epoch_grids():
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("L" if channels == 1 else "RGB"))
        except OSError:
            continue
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if columns is not None and arr.shape[0] == expected[0] and arr.shape[1] > expected[1]:
            arr = arr[:, arr.shape[1] - expected[1]:]  # the names' margin
        if arr.shape[:2] == expected:
            out.append((epoch, split_grid(arr, n, size, nrow=nrow)))
    return out


def _labelled(image: Image.Image, text: str) -> Image.Image:
    """The frame with a caption strip below it."""
    strip = 14
    out = Image.new("RGB", (image.width, image.height + strip), (0, 0, 0))
    out.paste(image.convert("RGB"), (0, 0))
    ImageDraw.Draw(out).text((4, image.height + 2), text, fill=(230, 230, 230))
    return out


def make_gif(run_dir: str | Path, out: str | Path | None = None, frame_ms: int = 500, hold_ms: int = 2000) -> Path:
    """Write the run's epoch grids as an animated GIF (default ``samples/progression.gif``),
    each frame captioned with its epoch, the last held longer. Raises UserError when the
    run has no epoch grid yet."""
    run = Path(run_dir).expanduser()
    if not run.is_dir():
        raise UserError(f"{run_dir}: no such run directory; pass a folder under runs/")
    grids = RunDir(run).epoch_grids()
    if not grids:
        raise UserError(f"{run_dir}: no epoch grids yet (samples/epoch-*.png are written at each epoch's end)")
    frames = []
    for epoch, path in grids:
        try:
            with Image.open(path) as img:
                frames.append(_labelled(img, f"epoch {epoch}"))
        except OSError as exc:
            raise UserError(f"{path}: not a readable PNG ({exc})") from None
    target = Path(out).expanduser() if out else RunDir(run).progression_gif
    return _save_gif(frames, target, [frame_ms] * (len(frames) - 1) + [hold_ms])


def frames_gif(frames, path: str | Path, frame_ms: int = 80, caption: str = "") -> Path:
    """uint8 frames (F, N, C, H, W) as a looping GIF, each frame the grid of its N images."""
    from .grids import grid, to_pil

    images = [to_pil(grid(frame)) for frame in frames]
    if caption:
        images = [_labelled(img, caption) for img in images]
    return _save_gif(images, Path(path), frame_ms)


def _save_gif(frames: list[Image.Image], path: Path, duration) -> Path:
    """A looping GIF, written atomically; ``duration`` in ms, one for all or one per frame."""
    try:
        return atomic_write(path, lambda f: frames[0].save(
            f, format="GIF", save_all=True, append_images=frames[1:], duration=duration, loop=0,
        ))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
