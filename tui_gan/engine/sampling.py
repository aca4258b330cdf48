"""``tui-gan sample``: images from a checkpoint, as one grid or as single PNGs; of a
conditional run's, of one class (``--class``) or a row per class (``--per-class``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.config import TrainConfig
from ..core.errors import UserError
from ..data.pixels import to_uint8
from ..pictures.grids import save_class_grid, save_grid, save_png, to_pil
from .checkpoint import failure_reason, load_checkpoint
from .devices import resolve_device
from .models import generate
from .nets import model_pair

#: Samples are drawn with batch statistics (as during training) in batches of this size.
SAMPLE_BATCH = 64


def generator_from_checkpoint(state: dict, device: torch.device, live: bool = False) -> torch.nn.Module:
    """The generator of a checkpoint from load_checkpoint (which checked its settings and
    weight shapes) on ``device``: its moving average where it has one (--ema) unless
    ``live``, else the live generator. UserError for weights that still do not load."""
    config = TrainConfig.from_dict(dict(state["config"]), source=f"checkpoint {state['path']}")
    netG = model_pair(config)[0].to(device)
    key = "generator_ema" if "generator_ema" in state and not live else "generator"
    try:
        netG.load_state_dict(state[key])
    except Exception as exc:  # noqa: BLE001 - the file's content, whatever the way it does not fit
        raise UserError(f"{state['path']}: generator weights do not match its config ({failure_reason(exc, 100)})") from None
    return netG


@torch.no_grad()
def sample_images(netG: torch.nn.Module, n: int, seed: int, device: torch.device,
                  classes: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` uint8 images (n, C, H, W) on the CPU, deterministic by seed; of a conditional
    generator, of ``classes`` (n,): see class_images."""
    gen = torch.Generator().manual_seed(seed)
    if classes is not None:
        return class_images(netG, classes, gen, device)
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


def class_images(netG: torch.nn.Module, classes: torch.Tensor, gen: torch.Generator,
                 device: torch.device) -> torch.Tensor:
    """Images of ``classes`` from a conditional generator, drawn as training draws them:
    with batch statistics over batches whose classes are mixed as the data's are. A batch
    of sevens alone would normalise its features by statistics no training batch had, so
    each batch holds a few of the images asked for among companions of every class, which
    are drawn and left out (SAMPLE_BATCH images a batch, at most one in num_classes asked)."""
    num_classes = netG.num_classes
    asked = max(1, SAMPLE_BATCH // num_classes)
    z = torch.randn(len(classes), netG.nz, 1, 1, generator=gen)
    companions = torch.arange(SAMPLE_BATCH) % num_classes  # every class, in turn
    out = []
    for start in range(0, len(classes), asked):
        rows = slice(start, start + asked)
        k = len(classes[rows])
        batch_z = torch.cat([z[rows], torch.randn(SAMPLE_BATCH - k, netG.nz, 1, 1, generator=gen)])
        batch_y = torch.cat([classes[rows], companions[: SAMPLE_BATCH - k]])
        out.append(to_uint8(generate(netG, batch_z.to(device), batch_y.to(device))).cpu()[:k])
    return torch.cat(out)


def asked_classes(config: TrainConfig, path: str, class_name: str | None, per_class: int | None,
                  n: int) -> tuple[torch.Tensor | None, list[str]]:
    """The class of each sample ``tui-gan sample`` draws (None: the tutorial's GAN) and the
    names of the grid's rows. UserError for a class the checkpoint does not have, or any
    class of an unconditional one."""
    names = config.class_names or []
    if not config.conditional:
        if class_name is not None or per_class is not None:
            flag = "--class" if class_name is not None else "--per-class"
            raise UserError(f"{flag}: {path} is not a conditional run (it has no classes); leave {flag} out")
        return None, []
    if class_name is not None:
        if class_name not in names:
            shown = ", ".join(names[:20]) + (f", … ({len(names)} in all)" if len(names) > 20 else "")
            raise UserError(f"--class {class_name!r}: {path} has no such class; it has {shown}")
        return torch.full((n,), names.index(class_name), dtype=torch.long), [class_name]
    per = per_class or max(1, n // len(names))
    return torch.arange(len(names)).repeat_interleave(per), list(names)


def sample_command(checkpoint: str, n: int, seed: int, device_spec: str, out: str | None, out_dir: str | None,
                   live: bool = False, class_name: str | None = None, per_class: int | None = None) -> int:
    state = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(dict(state["config"]), source=f"checkpoint {state['path']}")
    classes, rows = asked_classes(config, state["path"], class_name, per_class, n)
    names = config.class_names or []
    device = resolve_device(device_spec)
    netG = generator_from_checkpoint(state, device, live)
    n = n if classes is None else len(classes)
    images = sample_images(netG, n, seed, device, classes)
    which = " of the generator's average (--ema; --live for the live one)" if "generator_ema" in state and not live else ""
    what = f" of class {class_name!r}" if class_name is not None else f", a row per class ({len(rows)})" if rows else ""
    size = f"{config.image_size}x{config.image_size}"
    try:
        if out is not None:
            if len(rows) > 1:  # a row per class, named at its left
                path = save_class_grid(images, out, rows, n // len(rows))
            else:
                path = save_grid(images, out)
            print(f"wrote a grid of {n} samples{what}{which} ({size}) to {path}")
        else:
            directory = Path(out_dir)
            directory.mkdir(parents=True, exist_ok=True)
            width = max(4, len(str(n - 1)))
            for i, img in enumerate(images):
                label = "" if classes is None else f"-{_file_safe(names[int(classes[i])])}"
                save_png(to_pil(img.numpy().transpose(1, 2, 0)), directory / f"sample-{i:0{width}d}{label}.png")
            print(f"wrote {n} samples{what}{which} ({size}) to {directory}/")
    except OSError as exc:
        target = out if out is not None else out_dir
        raise UserError(f"cannot write {target!r} ({exc.strerror or exc}); choose a writable path") from None
    return 0


def _file_safe(name: str) -> str:
    """A class name as part of a file name: letters, digits, '-', '_' and '.' kept."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
