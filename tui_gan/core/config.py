"""TrainConfig: every setting of a run, with the PyTorch DCGAN tutorial's defaults.

Imports nothing heavy (no torch) so the CLI can validate and the app can draw its
first frame before torch is loaded.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib as tomllib  # re-exported: core/comparison.py reads TOML too
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .arguments import RequestError, learning_rate
from .errors import UserError

#: Image sizes the models support: one up/down-sampling block per factor of two.
SUPPORTED_SIZES = (16, 32, 64, 128, 256)

#: Settings swapped in when training would run on a CPU, so the default run (`tui-gan`, no
#: flags) shows glyphs taking shape within a minute and ends recognisable in under 3 on a
#: 2-core CPU: 8 epochs of the built-in 10,000 images are 1,248 steps, ~150 s at ~530
#: img/s. The learning rates are 2.5x the tutorial's because they ended with a lower SWD at
#: equal training time (docs/benchmark.md, "The default CPU run"). Explicit flags (or
#: config-file keys) always win.
CPU_PRESET = {"image_size": 32, "ngf": 32, "ndf": 32, "batch_size": 64, "lr_g": 5e-4, "lr_d": 5e-4, "epochs": 8}


@dataclass
class TrainConfig:
    data: str = "builtin"
    """What to train on: 'builtin' (generated, no download), a folder of images, or a
    torchvision dataset by name (mnist, fashion-mnist, kmnist, cifar10, cifar100, stl10, celeba)."""

    data_root: str | None = None
    """Where torchvision datasets are kept (default: see core/rundir.py, dataset_root)."""

    download: bool = False
    """Download a torchvision dataset that is not under data_root yet."""

    cache: bool = True
    """Keep decoded images in the decode cache (see core/rundir.py, decode_cache_dir) and reuse them."""

    stream: bool = False
    """Stream batches from the decode cache through DataLoader workers even when the dataset
    would fit in memory (it streams anyway when it does not)."""

    image_size: int = 64
    """Side of the square training images in pixels: a power of two from 16 to 256."""

    channels: int | None = None
    """Image channels: 3 (RGB), 1 (grayscale), or not set: 1 when every image of the data is
    grayscale, else 3 (the built-in data is RGB)."""

    batch_size: int = 128
    """Images per training step."""

    epochs: int = 5
    """Total epochs of the run (a total, also after --resume)."""

    max_steps: int | None = None
    """Stop when the run's global step reaches this number (a total, also after --resume)."""

    lr_g: float = 2e-4
    """Adam learning rate of the generator."""

    lr_d: float = 2e-4
    """Adam learning rate of the discriminator."""

    beta1: float = 0.5
    """Adam beta1 of both optimizers (beta2 is 0.999)."""

    nz: int = 100
    """Length of the latent vector z."""

    ngf: int = 64
    """Width of the generator's last feature map; earlier layers are multiples of it."""

    ndf: int = 64
    """Width of the discriminator's first feature map; later layers are multiples of it."""

    seed: int = 999
    """Seed for weights, noise, data order and the built-in dataset."""

    device: str = "auto"
    """'auto' (CUDA, then MPS, then CPU), 'cpu', 'cuda', 'cuda:N' or 'mps'."""

    max_images: int | None = None
    """Use at most this many images (the built-in dataset generates this many; default 10000)."""

    progress_interval: float = 0.25
    """Seconds between progress reports (one device sync each)."""

    log_interval: float = 2.0
    """Seconds between rows of metrics.csv and the loss history."""

    sample_interval: float = 5.0
    """Seconds between refreshes of the fixed-noise samples."""

    checkpoint_every: float = 10.0
    """Minutes of training between writes of last.pt besides the epoch ends (a copy of the
    state taken at a step boundary, written on a thread: engine/checkpoint.py); 0: at epoch
    ends (and the finish) only."""

    amp: bool | None = None
    """bf16 autocast for the training step, with BCEWithLogits on D's logits (the same maths;
    BCELoss is unsafe under autocast). Not set (auto): on where the device has bf16 units
    (CUDA from compute capability 8.0; CPUs with AMX or AVX-512 BF16), off elsewhere, where
    it is emulated (measured 20x slower on a CPU without bf16 instructions). See
    engine/devices.py, choose_precision."""

    compile: bool = False
    """torch.compile the generator's and discriminator's forward passes (the first steps
    are slow while it compiles)."""

    channels_last: bool | None = None
    """Models and batches in channels-last memory layout. Unset: on for CPUs, where it was
    measured to help (about 1.14x at 64x64), off elsewhere (not yet measured)."""

    cudnn_benchmark: bool = False
    """CUDA: let cuDNN time its convolution algorithms on the first steps and keep the
    fastest (the shapes never change). Off by default: not yet measured here."""

    fused_adam: bool = False
    """Adam's fused implementation (one kernel for all parameters). Off by default: on a CPU
    Adam is under 1% of a step; on a GPU PyTorch's default is already foreach (batched)."""

    ema: bool = False
    """Keep an exponential moving average of the generator's weights (engine/ema.py): the
    samples, exports, the quality metric and ``tui-gan sample`` use it, and the app can
    switch the samples to the live generator and back. Off by default (the tutorial has
    none)."""

    ema_decay: float = 0.999
    """The average's decay per step (with a warm-up, see engine/ema.py): 0.999 averages
    over about the last 1,000 steps."""

    augment: bool = False
    """DiffAugment (colour, translation, cutout) on every batch the discriminator sees, real
    and generated (engine/augment.py): for small datasets. Off by default."""

    sync_bn: bool = False
    """With several CUDA processes (--nproc, torchrun): BatchNorm over the whole global batch
    (SyncBatchNorm: one process's maths), at an all-gather, a wait for the GPU and an
    all-reduce per BatchNorm layer and pass (docs/gpus.md). Off by default: each process
    normalises its own share, as the tutorial's DataParallel and DistributedDataParallel do.
    One process normalises the whole batch either way."""

    conditional: bool = False
    """Train a conditional GAN on the data's classes (class subfolders, a torchvision
    dataset's targets, the built-in set's digits): the generator is asked for a class and
    the samples show one row per class. Off by default (the tutorial's GAN)."""

    class_names: list[str] | None = None
    """A conditional run's classes, in order: label i is ``class_names[i]``. Found in the
    data when the run starts and kept in its config and every checkpoint, so that a label's
    meaning never changes (on resume the data must have the same classes)."""

    quality_images: int = 512
    """Generated and real images compared by the quality metric (SWD, diversity) at every
    epoch's end; 0 turns it off."""

    tensorboard: bool = False
    """Also write the run's scalars and epoch-end grids as TensorBoard event files under
    the run directory's tensorboard/ (exports/tensorboard_live.py). Off by default."""

    preset: str = "tutorial"
    """Which defaults the run started from: 'tutorial' or 'cpu' (smaller, for CPUs)."""

    # ----------------------------------------------------------------- helpers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build a config from plain data, ignoring nothing silently: unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(
                f"{source}: unknown setting {unknown[0]!r}; known settings: {', '.join(sorted(known))}"
            )
        config = cls(**values)
        config.validate(source)
        return config

    def validate(self, source: str = "config") -> None:
        """Raise UserError (one actionable line) for any value training cannot use."""
        for name in ("batch_size", "epochs", "nz", "ngf", "ndf"):
            _check_positive_int(getattr(self, name), name, source)
        for name in ("max_steps", "max_images"):
            if getattr(self, name) is not None:
                _check_positive_int(getattr(self, name), name, source)
        for name in ("lr_g", "lr_d"):
            try:
                learning_rate(getattr(self, name), name)  # the one rule, as for requests (arguments.py)
            except RequestError as exc:
                raise UserError(f"{source}: {exc}") from None
        for name in ("progress_interval", "log_interval", "sample_interval"):
            _check_positive_float(getattr(self, name), name, source)
        every = self.checkpoint_every
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not math.isfinite(every) or every < 0:
            raise UserError(f"{source}: checkpoint_every must be minutes (a number >= 0; 0: at epoch ends only), "
                            f"got {every!r}")
        if isinstance(self.ema_decay, bool) or not isinstance(self.ema_decay, (int, float)) or not (0.0 < self.ema_decay < 1.0):
            raise UserError(f"{source}: ema_decay must be a number between 0 and 1 (such as 0.999), got {self.ema_decay!r}")
        if not isinstance(self.beta1, (int, float)) or not (0.0 <= self.beta1 < 1.0):
            raise UserError(f"{source}: beta1 must be a number in [0, 1), got {self.beta1!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise UserError(f"{source}: seed must be a non-negative integer, got {self.seed!r}")
        if self.image_size not in SUPPORTED_SIZES:
            raise UserError(
                f"{source}: image size {self.image_size!r} is not supported; "
                f"use one of {', '.join(map(str, SUPPORTED_SIZES))}"
            )
        if self.channels is not None and (isinstance(self.channels, bool) or self.channels not in (1, 3)):
            raise UserError(f"{source}: channels must be 1 (grayscale) or 3 (RGB), got {self.channels!r}")
        if not isinstance(self.data, str) or not self.data:
            raise UserError(f"{source}: data must be 'builtin', a folder path or a dataset name")
        for name in ("download", "cache", "stream", "compile", "cudnn_benchmark", "fused_adam", "ema", "augment",
                     "tensorboard", "sync_bn"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{source}: {name} must be true or false, got {getattr(self, name)!r}")
        for name in ("amp", "channels_last"):  # not set: chosen by the device
            if getattr(self, name) is not None and not isinstance(getattr(self, name), bool):
                raise UserError(f"{source}: {name} must be true or false, got {getattr(self, name)!r}")
        if not isinstance(self.conditional, bool):
            raise UserError(f"{source}: conditional must be true or false, got {self.conditional!r}")
        if self.class_names is not None:
            check_class_names(self.class_names, self.conditional, source)
        if isinstance(self.quality_images, bool) or not isinstance(self.quality_images, int) or self.quality_images < 0:
            raise UserError(f"{source}: quality_images must be 0 (off) or a positive integer, got {self.quality_images!r}")
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise UserError(f"{source}: data_root must be a folder path, got {self.data_root!r}")
        parse_device(self.device, source)

    def apply_preset(self, device_type: str, explicit: set[str]) -> None:
        """On a CPU, switch to CPU_PRESET for every setting the user did not set explicitly."""
        if device_type != "cpu":
            return
        changed = False
        for name, value in CPU_PRESET.items():
            if name not in explicit:
                setattr(self, name, value)
                changed = True
        if changed:
            self.preset = "cpu"

    def describe(self) -> str:
        """One line for logs: size, widths, batch."""
        return (
            f"{self.image_size}x{self.image_size}x{self.channels or 'auto'}, nz={self.nz}, "
            f"ngf={self.ngf}, ndf={self.ndf}, batch {self.batch_size}"
        )

    # ----------------------------------------------------------------- TOML

    def to_toml(self) -> str:
        lines = ["# tui-gan run configuration (resolved). Reuse with: tui-gan --config config.toml"]
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                lines.append(f"# {f.name} = (not set)")
                continue
            lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    @classmethod
    def read_toml(cls, path: str | Path) -> dict[str, Any]:
        """Return the settings in a TOML file as a dict (validated when merged)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"config file {str(path)!r} does not exist; check the --config path") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read config file {str(path)!r}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(
                f"config file {str(path)!r}: unknown setting {unknown[0]!r}; "
                f"known settings: {', '.join(sorted(known))}"
            )
        return data


def check_class_names(names: Any, conditional: bool, source: str = "config") -> None:
    """Raise UserError unless ``names`` can be a conditional run's classes: two or more
    distinct, non-empty strings."""
    if not conditional:
        raise UserError(f"{source}: class_names belong to a conditional run (conditional = true)")
    if (not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, str) and n for n in names)
            or len(set(names)) != len(names)):
        raise UserError(f"{source}: class_names must be a list of two or more distinct names, got {names!r}")


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # JSON's escapes are TOML's basic string's


def _check_positive_int(value: Any, name: str, source: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"{source}: {name} must be a positive integer, got {value!r}")


def _check_positive_float(value: Any, name: str, source: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UserError(f"{source}: {name} must be a positive finite number, got {value!r}")


def launched_rank() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment (or --nproc's launcher, which sets the
    same); (0, 1) when nothing launched this process."""
    try:
        return int(os.environ.get("RANK", "0")), max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 0, 1


#: The exit code of a process that ended because another of the run died while it waited
#: for it (engine/world.py, PeerWatch): the launcher names the other as the cause.
PEER_LOST_EXIT = 3


def check_shared_batch(batch_size: int, processes: int) -> None:
    """UserError when some of ``processes`` would get no image of a global batch."""
    if batch_size < processes:
        raise UserError(f"--batch-size {batch_size} is smaller than the {processes} processes that share "
                        f"each batch; use --batch-size {processes} or more")


def check_sync_bn(sync_bn: bool, device_type: str, processes: int) -> None:
    """UserError where --sync-bn cannot run: several processes on anything but CUDA GPUs
    (torch's SyncBatchNorm runs on GPUs only)."""
    if sync_bn and processes > 1 and device_type != "cuda":
        raise UserError(f"--sync-bn: synchronised BatchNorm runs on CUDA GPUs only, not on {device_type}; "
                        "leave it out (--no-sync-bn when resuming a run that has it) and each process "
                        "normalises its own share")


def parse_device(spec: str, source: str = "--device") -> tuple[str, int | None]:
    """Split a device spec into (kind, index) without importing torch."""
    if not isinstance(spec, str):
        raise UserError(f"{source}: device must be a string such as 'cpu' or 'cuda:0'")
    kind, _, index = spec.partition(":")
    if kind in ("auto", "cpu", "mps") and not index:
        return kind, None
    if kind == "cuda":
        if not index:
            return kind, None
        if index.isdigit():
            return kind, int(index)
    raise UserError(f"unknown device {spec!r}; use auto, cpu, cuda, cuda:N or mps")
