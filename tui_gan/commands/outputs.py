"""What a run's files make, for other tools and eyes: ``tui-gan sample`` (images from a
checkpoint), ``tui-gan gif`` (the epoch-end grids animated) and ``tui-gan export-tb``
(TensorBoard files). Each imports what it needs when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.errors import ArgumentParser
from ..core.rundir import RunDir
from .flags import non_negative_int, positive_int


def sample_parser() -> ArgumentParser:
    p = ArgumentParser(prog="tui-gan sample", description="Generate images from a checkpoint.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pt file or a run directory (uses its last.pt)")
    p.add_argument("--n", type=positive_int, default=64, metavar="N", help="how many images (default 64)")
    p.add_argument("--seed", type=non_negative_int, default=0, metavar="S", help="noise seed (default 0)")
    p.add_argument("--device", default="cpu", metavar="DEV", help="cpu (default), cuda, cuda:N, mps or auto")
    p.add_argument("--live", action="store_true", help="a run trained with --ema: the live generator, not its average")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--class", dest="class_name", metavar="NAME",
                       help="a conditional run: N images of this class (as its data named it)")
    which.add_argument("--per-class", type=positive_int, metavar="N",
                       help="a conditional run: N images of every class, a row each (default with neither: "
                            "--n split over the classes)")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", metavar="GRID.png", help="write one grid PNG")
    out.add_argument("--out-dir", metavar="DIR", help="write N single PNGs at the model's resolution")
    return p


def run_sample(argv: Sequence[str]) -> int:
    args = sample_parser().parse_args(argv)
    from ..engine.sampling import sample_command

    return sample_command(args.checkpoint, args.n, args.seed, args.device, args.out, args.out_dir, args.live,
                          args.class_name, args.per_class)


def gif_parser() -> ArgumentParser:
    p = ArgumentParser(prog="tui-gan gif", description="Animate a run's epoch-end sample grids as a GIF.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (its samples/epoch-*.png)")
    p.add_argument("--out", metavar="FILE.gif", help="where to write it (default RUN_DIR/samples/progression.gif)")
    p.add_argument("--frame-ms", type=positive_int, default=500, metavar="MS", help="milliseconds per epoch (default 500)")
    return p


def run_gif(argv: Sequence[str]) -> int:
    args = gif_parser().parse_args(argv)
    from ..pictures.progression import make_gif

    path = make_gif(args.run_dir, args.out, args.frame_ms)
    print(f"{path} ({len(RunDir(args.run_dir).epoch_grids())} epochs)")
    return 0


def run_export_tb(argv: Sequence[str]) -> int:
    from ..exports.tensorboard import export_tb_command  # the tensorboard extra: only for this command

    return export_tb_command(argv)
