"""Image files: finding them under a folder and decoding them to uint8 arrays.

numpy and Pillow only (no torch), so the CLI can check a --data folder instantly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from .errors import UserError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

ProgressFn = Callable[[int, int], None]



def scan_folder(folder: str | os.PathLike) -> list[Path]:
    """Every file with an image extension under ``folder`` at any depth, sorted.

    Raises UserError for a missing path or a folder without image files. Cheap (no
    decoding, no torch), so the CLI can call it before anything heavy starts.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise UserError(f"--data {folder}: no such file or folder; pass 'builtin' or a folder of images")
    if not root.is_dir():
        raise UserError(f"--data {folder}: not a folder; pass a folder that contains images")
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in filenames:
            if not fn.startswith(".") and os.path.splitext(fn)[1].lower() in IMAGE_EXTENSIONS:
                files.append(Path(dirpath) / fn)
    if not files:
        raise UserError(
            f"--data {folder}: no image files found (looked for "
            f"{', '.join(sorted(e[1:] for e in IMAGE_EXTENSIONS))} at any depth)"
        )
    files.sort()
    return files


def decode_files(
    files: list[Path], size: int, channels: int, progress: ProgressFn | None = None
) -> tuple[np.ndarray, list[str]]:
    """Decode, resize (shorter side to ``size``) and centre-crop each file, as the tutorial's
    ``Resize`` + ``CenterCrop``. Unreadable files are skipped and listed."""
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    skipped: list[str] = []
    n = 0
    for i, path in enumerate(files):
        try:
            arr = load_image(path, size, channels)
        except Exception:  # noqa: BLE001 - any undecodable file is skipped, never fatal
            skipped.append(str(path))
        else:
            out[n] = arr
            n += 1
        if progress is not None and (i % 256 == 0 or i == len(files) - 1):
            progress(i + 1, len(files))
    return out[:n], skipped


def load_image(path: str | os.PathLike, size: int, channels: int) -> np.ndarray:
    """One image as uint8 (C, size, size)."""
    with Image.open(path) as img:
        img.load()
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(background, rgba)
        img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8)
    if channels == 1:
        return arr[None, :, :]
    return arr.transpose(2, 0, 1)
