"""``tui-gan sample``: images from a checkpoint, as one grid or as single PNGs."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.config import TrainConfig
from ..core.errors import UserError
from ..data.pixels import to_uint8
from ..pictures.grids import save_grid, save_png, to_pil
from .checkpoint import failure_reason, load_checkpoint
from .devices import resolve_device
from .models import Generator, generate

#: Samples are drawn with batch statistics (as during training) in batches of this size.
SAMPLE_BATCH = 64


def generator_from_checkpoint(state: dict, device: torch.device, live: bool = False) -> Generator:
    """The generator of a checkpoint from load_checkpoint (which checked its settings and
    weight shapes) on ``device``: its moving average where it has one (--ema) unless
    ``live``, else the live generator. UserError for weights that still do not load."""
    config = TrainConfig.from_dict(dict(state["config"]), source=f"checkpoint {state['path']}")
    netG = Generator(config.nz, config.ngf, config.channels or 3, config.image_size).to(device)
    key = "generator_ema" if "generator_ema" in state and not live else "generator"
    try:
        netG.load_state_dict(state[key])
    except Exception as exc:  # noqa: BLE001 - the file's content, whatever the way it does not fit
        raise UserError(f"{state['path']}: generator weights do not match its config ({failure_reason(exc, 100)})") from None
    return netG


@torch.no_grad()
def sample_images(netG: Generator, n: int, seed: int, device: torch.device) -> torch.Tensor:
    """``n`` uint8 images (n, C, H, W) on the CPU, deterministic by seed."""
    gen = torch.Generator().manual_seed(seed)
    count = max(n, SAMPLE_BATCH)
    z = torch.randn(count, netG.nz, 1, 1, generator=gen)
    out = []
    for start in range(0, count, SAMPLE_BATCH):
        chunk = z[start : start + SAMPLE_BATCH]
        if len(chunk) < SAMPLE_BATCH:  # keep batch statistics meaningful for the last chunk
            chunk = z[-SAMPLE_BATCH:]
            out.append(to_uint8(generate(netG, chunk.to(device))).cpu()[SAMPLE_BATCH - (count - start) :])
        else:
            out.append(to_uint8(generate(netG, chunk.to(device))).cpu())
    return torch.cat(out)[:n]


def sample_command(checkpoint: str, n: int, seed: int, device_spec: str, out: str | None, out_dir: str | None,
                   live: bool = False) -> int:
    state = load_checkpoint(checkpoint)
    device = resolve_device(device_spec)
    netG = generator_from_checkpoint(state, device, live)
    images = sample_images(netG, n, seed, device)
    which = " of the generator's average (--ema; --live for the live one)" if "generator_ema" in state and not live else ""
    try:
        if out is not None:
            path = save_grid(images, out)
            print(f"wrote a grid of {n} samples{which} ({netG.image_size}x{netG.image_size}) to {path}")
        else:
            directory = Path(out_dir)
            directory.mkdir(parents=True, exist_ok=True)
            width = max(4, len(str(n - 1)))
            for i, img in enumerate(images):
                save_png(to_pil(img.numpy().transpose(1, 2, 0)), directory / f"sample-{i:0{width}d}.png")
            print(f"wrote {n} samples{which} ({netG.image_size}x{netG.image_size}) to {directory}/")
    except OSError as exc:
        target = out if out is not None else out_dir
        raise UserError(f"cannot write {target!r} ({exc.strerror or exc}); choose a writable path") from None
    return 0
