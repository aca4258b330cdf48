"""``tui-gan bench``: the PyTorch DCGAN tutorial's training loop against tui-gan's engine.

The tutorial loop is written out here as the tutorial has it: its Generator and
Discriminator (64×64; other sizes use tui-gan's models, which at 64×64 are the same layer
for layer), BCELoss, two Adam optimizers, batches from a DataLoader moved to the device
one at a time, and the three ``.item()`` calls per step that sync the device. Both run on
the same data, device and settings, in alternating rounds (the engine in a child process,
see run_bench), each after a few warm-up steps; the result is images per second and their
ratio.
"""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn, optim

from . import events as ev
from .config import TrainConfig
from .devices import resolve_device
from .engine import Engine
from .errors import UserError
from .images import from_uint8
from .models import build_models, weights_init

#: Timed steps at the least when --steps is not given (the app mode's default too).
MIN_STEPS = 10


class TutorialGenerator(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input):
        return self.main(input)


class TutorialDiscriminator(nn.Module):
    def __init__(self, ndf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input):
        return self.main(input)


def tutorial_models(config: TrainConfig) -> tuple[nn.Module, nn.Module]:
    if config.image_size == 64:
        netG = TutorialGenerator(config.nz, config.ngf, config.channels)
        netD = TutorialDiscriminator(config.ndf, config.channels)
        netG.apply(weights_init)
        netD.apply(weights_init)
        return netG, netD
    return build_models(config)


def tutorial_folder_dataset(folder: str, image_size: int):
    """The tutorial's data path: ImageFolder with Resize, CenterCrop, ToTensor, Normalize.
    ImageFolder wants class subfolders; a flat folder of images is read with the same
    transforms (the tutorial puts its images in one subfolder)."""
    import torchvision.datasets as dset
    import torchvision.transforms as transforms
    from PIL import Image

    from .imagefiles import scan_folder

    transform = transforms.Compose([
        transforms.Resize(image_size),
        transforms.CenterCrop(image_size),
        transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    ])
    root = Path(folder).expanduser()
    if any(p.is_dir() for p in root.iterdir()):
        return dset.ImageFolder(root=str(root), transform=transform)
    files = scan_folder(root)

    class Flat(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            with Image.open(files[i]) as img:
                return transform(img.convert("RGB")), 0

    return Flat()


def tutorial_loop(config: TrainConfig, images, device: torch.device, steps: int, warmup: int,
                  workers: int = 2, seconds: float | None = None) -> tuple[float, int]:
    """The tutorial's loop for ``warmup`` + ``steps`` steps over ``images``: uint8 (CPU) in
    memory, or a dataset on disk read by ``workers`` DataLoader workers as the tutorial's
    (workers=2). With ``seconds``, the timed steps go on until that many seconds have
    passed and at least ``steps`` are done. Returns images per second over the timed
    steps, and how many there were."""
    torch.manual_seed(config.seed)
    netG, netD = (m.to(device) for m in tutorial_models(config))
    criterion = nn.BCELoss()
    real_label, fake_label = 1.0, 0.0
    optimizerD = optim.Adam(netD.parameters(), lr=config.lr_d, betas=(config.beta1, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=config.lr_g, betas=(config.beta1, 0.999))
    if isinstance(images, torch.Tensor):  # in memory: normalised once, as ImageFolder would yield them
        dataset, workers = torch.utils.data.TensorDataset(from_uint8(images)), 0
    else:
        dataset = images
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,
                                             num_workers=workers)
    nz = config.nz
    done, started = 0, 0.0

    def enough() -> bool:  # the tutorial's .item() calls keep the clock honest
        return done >= warmup + steps and (seconds is None or time.perf_counter() - started >= seconds)

    while not enough():  # epochs: a new pass over the data only if more steps are due
        for data in dataloader:
            if done == warmup:
                _sync(device)
                started = time.perf_counter()
            netD.zero_grad()
            real_cpu = data[0].to(device)
            b_size = real_cpu.size(0)
            label = torch.full((b_size,), real_label, dtype=torch.float, device=device)
            output = netD(real_cpu).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()  # noqa: F841 - the tutorial's per-step syncs
            noise = torch.randn(b_size, nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()  # noqa: F841
            errD = errD_real + errD_fake  # noqa: F841
            optimizerD.step()
            netG.zero_grad()
            label.fill_(real_label)
            output = netD(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()  # noqa: F841
            optimizerG.step()
            done += 1
            if enough():
                break
    _sync(device)
    timed = done - warmup
    return timed * config.batch_size / (time.perf_counter() - started), timed


def engine_loop(config: TrainConfig, steps: int, warmup: int, explicit: set[str]) -> float:
    """tui-gan's engine on the same settings; images per second after the warm-up steps."""
    marks: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tui-gan-bench-") as run_dir:
        total = warmup + steps
        cfg = TrainConfig(**{**config.to_dict(), "max_steps": total, "epochs": total, "quality_images": 0,
                             "progress_interval": 1.0, "log_interval": 3600.0, "sample_interval": 3600.0})
        engine = Engine(cfg, Path(run_dir) / "run", explicit=explicit)
        real_step = engine._train_step

        def timed_step(real):  # marks the clock when the warm-up is over (one sync there only)
            if engine.step == warmup:
                _sync(engine.device)
                marks["start"] = time.perf_counter()
            return real_step(real)

        engine._train_step = timed_step
        for event in engine.run():
            if isinstance(event, ev.Error):
                raise UserError(f"the engine failed: {event.message}")
            if isinstance(event, ev.Progress) and event.step >= warmup + steps and "end" not in marks:
                marks["end"] = time.perf_counter()  # the progress read synced the device
    return steps * config.batch_size / (marks["end"] - marks["start"])


@dataclass
class BenchResult:
    tutorial: float
    engine: float

    @property
    def ratio(self) -> float:
        return self.engine / self.tutorial


def app_bench(config: TrainConfig, steps: int, phase: float, explicit: set[str], size=None) -> int:
    """Run the app for ``steps`` steps, its screen frozen in alternate stretches, and print
    the training speed with the screen updating over that with it frozen."""
    import sys

    from .app import TuiGanApp
    from .screen_ab import ScreenAB

    if size is None and not sys.stdout.isatty():
        raise UserError("bench --app draws the app: run it in a terminal")
    ab = ScreenAB(phase)
    with tempfile.TemporaryDirectory(prefix="tui-gan-bench-") as run_dir:
        cfg = app_bench_config(config, steps)
        app = TuiGanApp(lambda: Engine(cfg, Path(run_dir) / "run", explicit=explicit), run_name="bench",
                        screen_ab=ab)
        app.finish_exits = True
        if size is None:
            app.run()
        else:  # tests: headless, at a given size
            import asyncio

            async def drive():
                async with app.run_test(size=size) as pilot:
                    while app.state != "finished":
                        await pilot.pause(0.1)
            asyncio.run(drive())
        app.engine_done.wait(timeout=120)
    result = ab.result()
    print(f"tui-gan bench --app · {steps} steps · stretches of {phase:g} s: {result.stretches} compared")
    print(f"  screen updating {result.updating * config.batch_size:9,.0f} img/s")
    print(f"  screen frozen   {result.frozen * config.batch_size:9,.0f} img/s")
    print(f"  ratio           {result.ratio:9.3f}x")
    if result.stretches < 4:
        print("  (few stretches: use more --steps for a number to trust)")
    return 0


def app_bench_config(config: TrainConfig, steps: int) -> TrainConfig:
    """The app's settings for ``steps`` steps: as many epochs as those steps take where the
    image count is known in advance (built-in data), so the screen shows "epoch 3/47" and
    not "epoch 3/1500"; else one epoch per step, an upper bound (max_steps ends the run)."""
    per_epoch = config.max_images // config.batch_size if config.data == "builtin" and config.max_images else 0
    epochs = -(-steps // per_epoch) if per_epoch else steps
    return TrainConfig(**{**config.to_dict(), "max_steps": steps, "epochs": epochs, "quality_images": 0})


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def run_bench(args) -> int:
    """``tui-gan bench`` with its parsed arguments (see cli.bench_parser)."""
    if args.images < args.batch_size:
        raise UserError(f"--images {args.images} is fewer than one batch of {args.batch_size}")
    config = TrainConfig(image_size=args.image_size, batch_size=args.batch_size, ngf=args.ngf, ndf=args.ndf,
                         device=args.device, max_images=None if args.data else args.images, channels=3,
                         amp=args.amp, compile=args.compile, data=args.data or "builtin",
                         channels_last=args.channels_last, cudnn_benchmark=args.cudnn_benchmark,
                         fused_adam=args.fused_adam)
    config.validate("bench")
    explicit = {"image_size", "batch_size", "ngf", "ndf", "max_images"}
    if args.app:  # the app loads its own data
        return app_bench(config, args.steps or MIN_STEPS, args.phase, explicit)
    device = resolve_device(config.device)
    if args.data:
        images = tutorial_folder_dataset(args.data, args.image_size)
        if len(images) < args.batch_size:
            raise UserError(f"--data {args.data}: {len(images)} images, fewer than one batch of {args.batch_size}")
        # decode once now, so the engine's timed steps do not include filling the cache
        from .data import load_dataset

        load_dataset(config, torch.device("cpu"))
    else:
        from .builtin import make_builtin

        images = torch.from_numpy(make_builtin(args.images, args.image_size, config.seed, 3))
    print(f"tui-gan bench · {device} · {args.image_size}x{args.image_size} · batch {args.batch_size} · "
          f"ngf {args.ngf} ndf {args.ndf} · {args.rounds} round(s) of "
          + (f"{args.steps} timed steps" if args.steps else
             f"the steps the tutorial loop runs in {args.seconds:g} s (at least {MIN_STEPS})")
          + f" after {args.warmup} warm-up" + (f" · data {args.data}" if args.data else " · data in memory")
          + "".join(f" · engine with --{flag.replace('_', '-')}" for flag in _engine_flags(args)),
          flush=True)
    tutorial_rates, engine_rates = [], []
    steps = args.steps
    # The engine runs in a child process: it tunes this process's memory allocator for
    # CPU training (allocator.py), which the tutorial loop, run as its users run it, must
    # not inherit. Alternating rounds spread any drift in the machine's speed over both.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        for r in range(args.rounds):
            if steps is None:  # the first round sets the steps of all: equal images in each loop
                rate, steps = tutorial_loop(config, images, device, MIN_STEPS, args.warmup, seconds=args.seconds)
                print(f"  {steps} timed steps per loop and round", flush=True)
            else:
                rate, _ = tutorial_loop(config, images, device, steps, args.warmup)
            tutorial_rates.append(rate)
            engine_rates.append(pool.apply(engine_loop, (config, steps, args.warmup, explicit)))
            if args.rounds > 1:
                print(f"  round {r + 1}: tutorial {tutorial_rates[-1]:,.0f} img/s, "
                      f"engine {engine_rates[-1]:,.0f} img/s", flush=True)
    result = BenchResult(_overall(tutorial_rates), _overall(engine_rates))
    print(f"  tutorial loop  {result.tutorial:9,.0f} img/s", flush=True)
    print(f"  tui-gan engine {result.engine:9,.0f} img/s", flush=True)
    print(f"  ratio          {result.ratio:9.2f}x")
    return 0


def _overall(rates: list[float]) -> float:
    """Images per second over all rounds (equal images each): the harmonic mean."""
    return len(rates) / sum(1.0 / r for r in rates)


def _engine_flags(args) -> list[str]:
    flags = [name for name in ("amp", "compile", "cudnn_benchmark", "fused_adam") if getattr(args, name)]
    if args.channels_last is not None:
        flags.append("channels_last" if args.channels_last else "no_channels_last")
    return flags
