"""The ``tui-gan`` command: arguments -> TrainConfig -> the app or a headless run.

Validation here imports no torch, so bad input is rejected instantly and the app's first
frame is not held up by a 3-second import.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from . import __version__
from .core.config import SUPPORTED_SIZES, TrainConfig, launched_rank
from .core.errors import ArgumentParser, UserError
from .core.rundir import RunDir, describe_dataset_root, new_run_dir
from .tui.terminal_graphics import add_graphics_flag

#: Flags that may change a resumed run: its length, learning rates and where it runs.
RESUME_OVERRIDABLE = {"epochs", "max_steps", "lr_g", "lr_d", "device", "data", "data_root", "download", "cache", "stream", "quality_images", "ema", "ema_decay", "augment", "amp", "compile", "channels_last", "cudnn_benchmark", "fused_adam", "tensorboard"}


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


def train_parser() -> ArgumentParser:
    p = ArgumentParser(
        prog="tui-gan",
        description="Train a DCGAN in your terminal and watch it learn. "
        "The run lives in a training service; the app is a window onto it. "
        "Other commands: 'tui-gan attach [RUN_DIR]', 'tui-gan ls', 'tui-gan stop RUN_DIR', 'tui-gan logs RUN_DIR', "
        "'tui-gan serve [RUN_DIR]', 'tui-gan sample CHECKPOINT ...', 'tui-gan gif RUN_DIR', 'tui-gan export-tb RUN_DIR' "
        "and 'tui-gan bench' (see their --help).",
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
    p.add_argument("--lr", type=positive_float, metavar="F", help="learning rate of both nets (default 2e-4)")
    p.add_argument("--lr-g", type=positive_float, metavar="F", help="learning rate of the generator")
    p.add_argument("--lr-d", type=positive_float, metavar="F", help="learning rate of the discriminator")
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
    speed_flags(p)
    p.add_argument("--quality-images", type=non_negative_int, metavar="N",
                   help="images compared by the quality metric (SWD, diversity) each epoch (default 512; 0: off)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction,
                   help="also write the run's scalars and epoch-end grids as TensorBoard event files "
                        "under RUN_DIR/tensorboard (see also 'tui-gan export-tb')")
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
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the app's service: see runs.py
    p.add_argument("--log-every", type=positive_float, metavar="SECONDS", help="headless: seconds between log lines (default 5)")
    p.add_argument("--compare", metavar="RUN_DIR",
                   help="the app: draw another run's losses and SWD on the charts, beside this one's")
    p.add_argument("--version", action="version", version=f"tui-gan {__version__}")
    return p


def sample_parser() -> ArgumentParser:
    p = ArgumentParser(prog="tui-gan sample", description="Generate images from a checkpoint.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pt file or a run directory (uses its last.pt)")
    p.add_argument("--n", type=positive_int, default=64, metavar="N", help="how many images (default 64)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="S", help="noise seed (default 0)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--live", action="store_true", help="a run trained with --ema: the live generator, not its average")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", metavar="GRID.png", help="write one grid PNG")
    out.add_argument("--out-dir", metavar="DIR", help="write N single PNGs at the model's resolution")
    return p


# ----------------------------------------------------------------------------- config


def build_config(args: dict[str, Any]) -> tuple[TrainConfig, set[str]]:
    """Defaults < --config file < flags. Returns the config and the explicitly set names."""
    values: dict[str, Any] = {}
    if "config" in args:
        values.update(TrainConfig.read_toml(args["config"]))
    flag_values = _flag_settings(args)
    values.update(flag_values)
    explicit = set(values)
    config = TrainConfig.from_dict(values, source="--config" if "config" in args else "arguments")
    if "data" in flag_values or "data" in values:
        config.data = _normalise_data(config.data, config.data_root, config.download)
    return config, explicit


def _flag_settings(args: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(TrainConfig)}
    values = {k: v for k, v in args.items() if k in names}
    if "lr" in args:
        values.setdefault("lr_g", args["lr"])
        values.setdefault("lr_d", args["lr"])
    return values


def _normalise_data(spec: str, root: str | None = None, download: bool = False) -> str:
    """'builtin', a dataset name (checked for a local copy) or a folder's absolute path."""
    from .data.imagefiles import scan_folder  # no torch: cheap, and catches bad paths early
    from .data.named import check_available, describe, is_dataset_name

    if spec == "builtin":
        return spec
    if is_dataset_name(spec):
        check_available(spec, root, download)
        return spec.lower()
    if not Path(spec).expanduser().exists() and os.sep not in spec and "." not in spec:
        raise UserError(
            f"--data {spec}: no such folder, and not a dataset name; use builtin, a folder of images, "
            f"or one of {describe()}"
        )
    scan_folder(spec)
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


def prepare_training(args: dict[str, Any], run_dir: Path, control: Any = None):
    """Turn parsed flags into an Engine on ``run_dir`` (imports torch). Raises UserError
    for bad input."""
    from .engine.engine import Engine

    if "resume" in args:
        from .engine.checkpoint import load_checkpoint

        state = load_checkpoint(args["resume"])
        flag_values = _flag_settings(args)
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
            config.data = _normalise_data(config.data, config.data_root, config.download)
        return Engine(config, run_dir, explicit=set(flag_values), resume=state, control=control)

    config, explicit = build_config(args)
    return Engine(config, run_dir, explicit=explicit, control=control)


# ----------------------------------------------------------------------------- commands


def run_train(argv: Sequence[str]) -> int:
    args = vars(train_parser().parse_args(argv))
    # Validate everything that needs no torch before anything slow happens.
    if "resume" in args and "config" in args:
        raise UserError("--config cannot be combined with --resume (the settings come from the checkpoint)")
    if args.get("tensorboard") if "resume" in args else build_config(args)[0].tensorboard:
        from .exports import require_tensorboard  # looks for the extra without importing it (0.3 s)
        require_tensorboard("--tensorboard")  # (resumed with it on, without the flag: the service warns)
    if args.get("headless") or not sys.stdout.isatty():
        if "compare" in args and not args.get("serve"):  # (the app's service never gets it: runs.run_app)
            raise UserError("--compare draws on the app's charts; there is none with --headless or when stdout is "
                            "not a terminal")
        return run_here(args, argv)
    from .runs import run_app

    return run_app(list(argv), training_run_dir(args), args.get("compare"), args.get("graphics", "auto"))


def run_here(args: dict[str, Any], argv: Sequence[str] = ()) -> int:
    """Train in this process (--headless, and the service the app starts), serving viewers;
    with --nproc N, launch N processes that do (launch.py); started by torchrun (or by that
    launcher), rank 0 serves and the others follow it."""
    from .headless import Printer, serve_run

    rank, world_size = launched_rank()
    if args.get("nproc", 1) > 1 and world_size == 1:
        from .launch import launch

        return launch(args, list(argv), training_run_dir(args))
    if rank > 0:
        from .headless import follow_run

        return follow_run(lambda control: prepare_training(args, Path(args.get("run_dir", ".")), control), rank)
    run_dir = training_run_dir(args)
    printer = Printer([sys.stdout], args.get("log_every", 5.0))
    return serve_run(run_dir, lambda control: prepare_training(args, run_dir.root, control), printer,
                     as_service=bool(args.get("serve")))


def run_sample(argv: Sequence[str]) -> int:
    args = sample_parser().parse_args(argv)
    from .engine.sampling import sample_command

    return sample_command(args.checkpoint, args.n, args.seed, args.device, args.out, args.out_dir, args.live)


def gif_parser() -> ArgumentParser:
    p = ArgumentParser(prog="tui-gan gif", description="Animate a run's epoch-end sample grids as a GIF.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (its samples/epoch-*.png)")
    p.add_argument("--out", metavar="FILE.gif", help="where to write it (default RUN_DIR/samples/progression.gif)")
    p.add_argument("--frame-ms", type=positive_int, default=500, metavar="MS", help="milliseconds per epoch (default 500)")
    return p


def run_gif(argv: Sequence[str]) -> int:
    args = gif_parser().parse_args(argv)
    from .pictures.progression import make_gif

    path = make_gif(args.run_dir, args.out, args.frame_ms)
    print(f"{path} ({len(RunDir(args.run_dir).epoch_grids())} epochs)")
    return 0


def run_export_tb(argv: Sequence[str]) -> int:
    from .exports.tensorboard import export_tb_command  # the tensorboard extra: only for this command
    return export_tb_command(argv)


def bench_parser() -> ArgumentParser:
    p = ArgumentParser(prog="tui-gan bench",
                       description="The PyTorch DCGAN tutorial's training loop against tui-gan's engine.")
    p.add_argument("--image-size", type=image_size, default=64, metavar="N", help="16, 32, 64 (default), 128 or 256")
    p.add_argument("--batch-size", type=positive_int, default=128, metavar="N", help="default 128")
    p.add_argument("--ngf", type=positive_int, default=64, metavar="N", help="default 64")
    p.add_argument("--ndf", type=positive_int, default=64, metavar="N", help="default 64")
    p.add_argument("--steps", type=positive_int, metavar="N",
                   help="timed steps per loop and round (default: as many as the tutorial loop runs in "
                        "--seconds in the first round, at least 10; with --app, all steps: default 10)")
    p.add_argument("--seconds", type=positive_float, default=20.0, metavar="S",
                   help="without --steps: how long the first round's tutorial loop is timed (default 20)")
    p.add_argument("--warmup", type=non_negative_int, default=3, metavar="N",
                   help="untimed steps first, in each round (default 3)")
    p.add_argument("--rounds", type=positive_int, default=2, metavar="N",
                   help="alternate the two loops this many times (default 2)")
    p.add_argument("--device", default="auto", metavar="DEV", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--images", type=positive_int, default=2048, metavar="N",
                   help="built-in images to train on (default 2048)")
    p.add_argument("--data", metavar="FOLDER", help="a folder of images instead: the tutorial's ImageFolder + "
                   "DataLoader (2 workers) against tui-gan's decode cache and on-device data")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction,
                   help="the engine in bf16 autocast, or not (default: as a run chooses, bf16 where the device "
                        "has bf16 units; the tutorial loop stays fp32)")
    p.add_argument("--compile", action="store_true", help="the engine with torch.compile")
    speed_flags(p)
    p.set_defaults(cudnn_benchmark=False, fused_adam=False)
    p.add_argument("--app", action="store_true", help="instead: the cost of the app's screen, in the app itself "
                   "(--steps steps alternating stretches of --phase s with the screen updating and frozen)")
    p.add_argument("--attached", action="store_true",
                   help="instead: the speed of the service with the app attached against --headless, as separate "
                        "processes alternated over --rounds rounds (the device's default settings, --steps steps: "
                        "default 1500)")
    p.add_argument("--phase", type=positive_float, default=10.0, metavar="SECONDS",
                   help="--app: seconds per stretch (default 10)")
    return p


def run_bench(argv: Sequence[str]) -> int:
    args = bench_parser().parse_args(argv)
    if args.attached:  # separate processes: nothing of torch in this one
        from .bench.service_cost import attached_bench

        steps = str(args.steps or 1500)
        return attached_bench(["--device", args.device, "--max-steps", steps, "--epochs", steps,
                               "--quality-images", "0"], args.rounds)
    from .bench.compare import run_bench as bench

    return bench(args)


def run_serve(argv: Sequence[str]) -> int:
    from .browser.command import run_serve as serve  # its server, and the serve extra, only when asked for

    return serve(list(argv))


COMMANDS = {"sample": run_sample, "gif": run_gif, "export-tb": run_export_tb, "bench": run_bench, "serve": run_serve}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from .runs import COMMANDS as RUN_COMMANDS

        commands = {**COMMANDS, **RUN_COMMANDS}
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return run_train(argv)
    except UserError as exc:
        print(f"tui-gan: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tui-gan: interrupted", file=sys.stderr)
        return 130
