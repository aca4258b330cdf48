"""The training command's flags (``tui-gan [flags]``, and the service given the same):
the parser, their checks, and the TrainConfig and Engine they make; and the argument types
every command's parser shares.

Checking the flags imports no torch, so bad input is rejected at once and the app's first
frame is not held up by a 3-second import; only ``prepare_training`` loads the engine.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..core.arguments import learning_rate
from ..core.config import SUPPORTED_SIZES, TrainConfig
from ..core.errors import ArgumentParser, UserError
from ..core.rundir import RunDir, describe_dataset_root, new_run_dir
from ..tui.terminal_graphics import add_graphics_flag

if TYPE_CHECKING:
    from ..core.control import Control
    from ..engine.engine import Engine

#: Flags that may change a resumed run: its length, learning rates and where it runs.
RESUME_OVERRIDABLE = {"epochs", "max_steps", "lr_g", "lr_d", "device", "data", "data_root", "download", "cache", "stream", "quality_images", "ema", "ema_decay", "augment", "amp", "compile", "channels_last", "cudnn_benchmark", "fused_adam", "sync_bn", "tensorboard", "checkpoint_every"}


def _number(convert, ok, wanted: str):
    """An argparse type: ``convert`` the text, accept it if ``ok(value)``, else say ``wanted``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a positive finite number")
non_negative_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a non-negative finite number")


def learning_rate_flag(text: str) -> float:
    """An argparse type under the contract's one rule for a learning rate."""
    try:
        return learning_rate(float(text))
    except ValueError:  # float()'s, or the rule's RequestError (a ValueError)
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}") from None
unit_float = _number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def image_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value not in SUPPORTED_SIZES:
        sizes = ", ".join(map(str, SUPPORTED_SIZES))
        raise argparse.ArgumentTypeError(f"image size {text!r} is not supported; use one of {sizes}")
    return value


def channels(text: str) -> int:
    if text not in ("1", "3"):
        raise argparse.ArgumentTypeError(f"must be 1 (grayscale) or 3 (RGB), got {text!r}")
    return int(text)


def speed_flags(p: ArgumentParser, **default: Any) -> None:
    """The memory-layout and kernel choices, shared by training and the benchmark."""
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, **default,
                   help="channels-last memory layout (default: on for CPUs, where it measured faster)")
    p.add_argument("--cudnn-benchmark", action=argparse.BooleanOptionalAction, **default,
                   help="CUDA: let cuDNN pick the fastest convolution algorithms on the first steps")
    p.add_argument("--fused-adam", action=argparse.BooleanOptionalAction, **default,
                   help="Adam's fused implementation")


def train_parser(epilog: str | None = None) -> ArgumentParser:
    """The training command's parser; ``epilog``: the other commands, for ``tui-gan --help``
    (cli.py lists them from its table), written as it is to be printed."""
    p = ArgumentParser(
        prog="tui-gan",
        description="Train a DCGAN in your terminal and watch it learn.\n"
                    "The run lives in a training service; the app is a window onto it.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # the epilog's lines as they are
        argument_default=argparse.SUPPRESS,  # absent flags stay absent: explicit flags win
    )
    p.add_argument("--data", metavar="SPEC", help="'builtin' (default: generated, no download), a folder of images, "
                   "or a dataset: mnist, fashion-mnist, kmnist, cifar10, cifar100, stl10, celeba")
    p.add_argument("--data-root", metavar="DIR", help=f"where datasets are kept (default {describe_dataset_root()})")
    p.add_argument("--download", action="store_true", help="download the --data dataset if it is not there yet")
    p.add_argument("--no-cache", dest="cache", action="store_false",
                   help="decode the images again instead of using the decode cache (and do not store them)")
    p.add_argument("--stream", action="store_true",
                   help="stream batches from disk through DataLoader workers even if the dataset fits in memory "
                        "(datasets that do not fit always stream)")
    p.add_argument("--image-size", type=image_size, metavar="N", help="16, 32, 64 (default), 128 or 256")
    p.add_argument("--channels", type=channels, metavar="1|3",
                   help="3 (RGB) or 1 (grayscale); default: 1 if every image is grayscale, else 3")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="images per step (default 128)")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="total epochs of the run (default 5)")
    p.add_argument("--max-steps", type=positive_int, metavar="N", help="stop at this global step (a total, also after --resume)")
    p.add_argument("--lr", type=learning_rate_flag, metavar="F", help="learning rate of both nets (default 2e-4)")
    p.add_argument("--lr-g", type=learning_rate_flag, metavar="F", help="learning rate of the generator")
    p.add_argument("--lr-d", type=learning_rate_flag, metavar="F", help="learning rate of the discriminator")
    p.add_argument("--beta1", type=unit_float, metavar="F", help="Adam beta1 (default 0.5)")
    p.add_argument("--nz", type=positive_int, metavar="N", help="latent vector length (default 100)")
    p.add_argument("--ngf", type=positive_int, metavar="N", help="generator width (default 64)")
    p.add_argument("--ndf", type=positive_int, metavar="N", help="discriminator width (default 64)")
    p.add_argument("--seed", type=non_negative_int, metavar="N", help="random seed (default 999)")
    p.add_argument("--max-images", type=positive_int, metavar="N", help="use at most N images (built-in: generate N)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="bf16 autocast with BCEWithLogits, or not (default: auto, bf16 where the device has "
                        "bf16 units: CUDA compute capability 8.0+, CPUs with AMX or AVX-512 BF16)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction,
                   help="torch.compile the models' forward passes")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction,
                   help="keep a moving average of the generator's weights and show, save and measure it")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction,
                   help="DiffAugment (colour, translation, cutout) on what the discriminator sees: for small datasets")
    p.add_argument("--ema-decay", type=_number(float, lambda v: 0 < v < 1, "a number between 0 and 1"),
                   metavar="F", help="decay of that average per step (default 0.999)")
    p.add_argument("--conditional", action=argparse.BooleanOptionalAction,
                   help="train on the data's classes (class subfolders, a torchvision dataset's targets, the "
                        "built-in digits) and show one row of samples per class (default off)")
    p.add_argument("--sync-bn", action=argparse.BooleanOptionalAction,
                   help="--nproc on CUDA GPUs: BatchNorm over the whole batch across the processes "
                        "(SyncBatchNorm; a sync per layer), or not (default: each process normalises its share)")
    speed_flags(p)
    p.add_argument("--quality-images", type=non_negative_int, metavar="N",
                   help="images compared by the quality metric (SWD, diversity) each epoch (default 512; 0: off)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction,
                   help="also write the run's scalars and epoch-end grids as TensorBoard event files "
                        "under RUN_DIR/tensorboard (needs the tensorboard extra; see also 'tui-gan export-tb')")
    p.add_argument("--checkpoint-every", type=non_negative_float, metavar="MINUTES",
                   help="also write last.pt every MINUTES of training, in the background (default 10; "
                        "0: at epoch ends only)")
    p.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--nproc", type=positive_int, metavar="N",
                   help="train with N processes on this machine (one per GPU; on the CPU, N processes "
                        "with gloo), launched by torch's elastic launcher; the global batch stays --batch-size")
    p.add_argument("--master-port", type=_number(int, lambda v: 0 < v < 65536, "a port number (1-65535)"),
                   metavar="P", help="--nproc: the port the processes meet on (default: a free one)")
    p.add_argument("--run-dir", metavar="DIR", help="where outputs go (default runs/<timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR_OR_CHECKPOINT", help="continue a run from its last.pt or a snapshot")
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file (flags win)")
    p.add_argument("--headless", action="store_true", help="no UI: print log lines (also when stdout is not a terminal)")
    add_graphics_flag(p)  # the viewer's, not the run's: the service parses it and leaves it alone
    p.add_argument("--log-every", type=positive_float, metavar="SECONDS", help="headless: seconds between log lines (default 5)")
    p.add_argument("--compare", metavar="RUN_DIR",
                   help="the app: draw another run's losses and SWD on the charts, beside this one's")
    p.add_argument("--version", action="version", version=f"tui-gan {__version__}")
    return p


# ----------------------------------------------------------------------------- config


def build_config(args: dict[str, Any]) -> tuple[TrainConfig, set[str]]:
    """Defaults < --config file < flags. Returns the config and the explicitly set names."""
    values: dict[str, Any] = {}
    if "config" in args:
        values.update(TrainConfig.read_toml(args["config"]))
    flag_values = flag_settings(args)
    values.update(flag_values)
    explicit = set(values)
    config = TrainConfig.from_dict(values, source="--config" if "config" in args else "arguments")
    if "data" in flag_values or "data" in values:
        config.data = normalise_data(config.data, config.data_root, config.download, config.conditional)
    return config, explicit


def flag_settings(args: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in args.items() if k in names}
    if "lr" in args:
        values.setdefault("lr_g", args["lr"])
        values.setdefault("lr_d", args["lr"])
    return values


def normalise_data(spec: str, root: str | None = None, download: bool = False, conditional: bool = False) -> str:
    """'builtin', a dataset name (checked for a local copy: of its labelled split, and that
    it has classes, for a ``conditional`` run) or a folder's absolute path."""
    from ..data.imagefiles import scan_folder  # no torch: cheap, and catches bad paths early
    from ..data.named import check_available, describe, is_dataset_name

    if spec == "builtin":
        return spec
    if is_dataset_name(spec):
        check_available(spec, root, download, conditional)
        return spec.lower()
    if not Path(spec).expanduser().exists() and os.sep not in spec and "." not in spec:
        raise UserError(
            f"--data {spec}: no such folder, and not a dataset name; use builtin, a folder of images, "
            f"or one of {describe()}"
        )
    scan_folder(spec)
    if conditional:  # a folder without class subfolders says so before any service starts
        from ..data.labels import folder_class_names

        folder_class_names(spec)
    return str(Path(spec).expanduser().resolve())


def resume_flags() -> str:
    """The flags that may change a resumed run (RESUME_OVERRIDABLE), as the parser spells
    them, in its order: '--data, ..., --[no-]amp, ... and --device'."""
    names = []
    for action in train_parser()._actions:
        if action.dest in RESUME_OVERRIDABLE or action.dest == "lr":  # --lr sets lr_g and lr_d
            if isinstance(action, argparse.BooleanOptionalAction):
                names.append("--[no-]" + action.option_strings[0][2:])
            else:
                names.append(action.option_strings[0])
    return ", ".join(names[:-1]) + " and " + names[-1]


def training_run_dir(args: dict[str, Any]) -> RunDir:
    """The run directory the flags train: --run-dir, else the resumed run's, else a new one."""
    if "run_dir" in args:
        return RunDir(Path(args["run_dir"]).expanduser().resolve())
    if "resume" in args:
        return RunDir.of_resume(args["resume"])
    return RunDir(new_run_dir().resolve())


def prepare_training(args: dict[str, Any], run_dir: Path, control: Control | None = None) -> Engine:
    """Turn parsed flags into an Engine on ``run_dir`` (imports torch). Raises UserError
    for bad input."""
    from ..engine.engine import Engine

    if "resume" in args:
        from ..engine.checkpoint import load_checkpoint

        state = load_checkpoint(args["resume"])
        flag_values = flag_settings(args)
        fixed = sorted(set(flag_values) - RESUME_OVERRIDABLE)
        if "config" in args or fixed:
            what = "--config" if "config" in args else "--" + fixed[0].replace("_", "-")
            raise UserError(
                f"{what} cannot change a resumed run (its settings come from the checkpoint); "
                f"only {resume_flags()} may be given"
            )
        saved = dict(state["config"])
        saved["lr_g"], saved["lr_d"] = state.get("lr_g", saved["lr_g"]), state.get("lr_d", saved["lr_d"])
        saved.update(flag_values)
        config = TrainConfig.from_dict(saved, source=f"checkpoint {state['path']}")
        if {"data", "data_root", "download"} & set(flag_values):
            config.data = normalise_data(config.data, config.data_root, config.download, config.conditional)
        return Engine(config, run_dir, explicit=set(flag_values), resume=state, control=control)

    config, explicit = build_config(args)
    return Engine(config, run_dir, explicit=explicit, control=control)


def without_flags(argv: Sequence[str], flags: tuple[str, ...]) -> list[str]:
    """``argv`` (parsed already) without each of ``flags`` and its value: ``--flag value``,
    ``--flag=value``, or an abbreviation argparse took for the flag (a prefix of it: a prefix
    shared with another flag is ambiguous, which argparse refuses, so none is here)."""
    out, i = [], 0
    while i < len(argv):
        name, equals, _ = argv[i].partition("=")
        if name.startswith("--") and len(name) > 2 and any(flag.startswith(name) for flag in flags):
            i += 1 if equals else 2
        else:
            out.append(argv[i])
            i += 1
    return out
