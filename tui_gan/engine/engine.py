"""The training engine: the PyTorch DCGAN tutorial's loop as a generator of events.

    engine = Engine(config, run_dir)
    for event in engine.run():          # Loading, Started, Progress, Samples, EpochEnd, ...
        ...
    engine.control.pause()               # from any thread; honoured at the next step boundary

Nothing here knows about a UI. Per-step statistics are summed on the device and read back
once per progress interval: the loop never syncs the device just to show a number.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn, optim

from . import __version__
from . import cpulayers
from . import events as ev
from .allocator import keep_freed_memory
from .atomic import atomic_write_text
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .data import Dataset, StreamedDataset, channels_known_in_advance, load_dataset
from .devices import check_amp, describe_device, resolve_device
from .errors import UserError, first_line
from .guard import GoodState, Rollbacks, SaturationWatch, weights_finite
from .images import save_grid, to_uint8
from .interpolation import latent_walk, render_walk
from .metrics import COLUMNS, MetricsCsv, RowAggregator, Throughput, quality_row
from .models import build_models, generate
from .progression import epoch_samples
from .quality import COLLAPSE_RATIO, RealReference

REAL_LABEL = 1.0
FAKE_LABEL = 0.0
FIXED_NOISE_SIZE = 64


class StoppedDuringSetup(Exception):
    """A stop was requested before training started; there is nothing new to save."""


class Control:
    """Thread-safe requests to a running engine, honoured at the next step boundary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wake = threading.Event()
        self._paused = False
        self.pause_reason = "requested"
        self._stop_reason: str | None = None
        self._snapshot = False
        self._export = False
        self._measure = False
        self._interpolate = False
        self._lr: tuple[float | None, float | None, bool] | None = None
        self.pause_at_epoch_end = False

    def _set(self, **changes: Any) -> None:
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)
        self.wake.set()

    def pause(self, reason: str = "requested") -> None:
        self._set(_paused=True, pause_reason=reason)

    def resume(self) -> None:
        self._set(_paused=False)

    def toggle_pause(self) -> bool:
        """Flip pause; return True if a pause is now requested."""
        with self._lock:
            self._paused = not self._paused
            self.pause_reason = "requested"
            paused = self._paused
        self.wake.set()
        return paused

    def stop(self, reason: str = "stopped") -> None:
        """Save last.pt and finish. The first reason given is kept."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
        self.wake.set()

    def snapshot(self) -> None:
        self._set(_snapshot=True)

    def export(self) -> None:
        self._set(_export=True)

    def measure(self) -> None:
        """Measure the sample quality (SWD, diversity) now rather than at the epoch's end."""
        self._set(_measure=True)

    def take_measure(self) -> bool:
        return self._take("_measure")

    def interpolate(self) -> None:
        """Render the latent walks (see interpolation.py) with the current generator."""
        self._set(_interpolate=True)

    def take_interpolate(self) -> bool:
        return self._take("_interpolate")

    def _take(self, flag: str) -> bool:
        """Read and clear a one-shot request flag."""
        with self._lock:
            out = getattr(self, flag)
            setattr(self, flag, False)
        return out

    def set_lr(self, lr_g: float | None = None, lr_d: float | None = None, now: bool = False) -> None:
        """New learning rates: applied at the next epoch boundary, or at the next step if ``now``."""
        for name, value in (("lr_g", lr_g), ("lr_d", lr_d)):
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        self._set(_lr=(lr_g, lr_d, now))

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    def take_requests(self) -> tuple[bool, bool, tuple[float | None, float | None, bool] | None]:
        """Return and clear the one-shot requests: (snapshot, export, learning rates)."""
        with self._lock:
            out = (self._snapshot, self._export, self._lr)
            self._snapshot = self._export = False
            self._lr = None
            self.wake.clear()
        return out


class Engine:
    """One training run. ``run()`` is a generator; drive it from one thread only."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        explicit: frozenset[str] | set[str] = frozenset(),
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.explicit = set(explicit)
        self.resume_state = resume
        self.control = Control()
        self.device: torch.device | None = None
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.history: list[list[float]] = []
        self._good, self._rollbacks, self._saturation = GoodState(), Rollbacks(), SaturationWatch()
        self._quality: tuple[RealReference, torch.Tensor] | None = None
        self._collapse_warned = False
        self.pending_lr: tuple[float, float] | None = None
        self.last_samples: torch.Tensor | None = None
        self._saved: tuple[int, Path] | None = None  # (step, path) of the newest checkpoint written

    # ================================================================== setup

    def run(self) -> Iterator[Any]:
        """Set up, then train, yielding events until the run finishes, stops or fails.

        Raises UserError during setup for input that cannot be used (bad data, device...).
        """
        try:
            yield from self._setup()
        except StoppedDuringSetup as stop:
            yield ev.Finished(str(stop), self.step, self.epoch, 0.0, 0.0, None, None)
            return
        yield self._started_event()
        try:
            yield from self._train()
        except Exception as exc:  # noqa: BLE001 - reported as an event, state saved first
            yield from self._fail(exc)
        finally:
            self.metrics_csv.close()

    def _setup(self) -> Iterator[Any]:
        cfg = self.config
        yield ev.Loading("choosing a device")
        self.device = resolve_device(cfg.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # activations reuse their pages step after step (see allocator.py)
        if self.resume_state is None:
            cfg.apply_preset(self.device.type, self.explicit)
        cfg.validate()
        if cfg.amp:
            check_amp(self.device)
        if cfg.channels is None:
            cfg.channels = channels_known_in_advance(cfg.data)
        self._make_run_dir()
        label = "generating the built-in dataset" if cfg.data == "builtin" else f"reading {cfg.data}"
        updates: queue.Queue[tuple[int, int]] = queue.Queue()

        def report(done: int, total: int) -> None:
            if self.control.stop_reason is not None:
                raise StoppedDuringSetup(self.control.stop_reason)
            updates.put((done, total))

        # The data is generated or decoded in a helper thread while the models are built
        # here: the first optimizer pulls in torch's compiler stack, which takes seconds.
        # Unless the channels depend on the images, the models are built while the data loads.
        build_early = cfg.channels is not None
        with ThreadPoolExecutor(1, thread_name_prefix="tui-gan-data") as pool:
            notes: list[str] = []
            future = pool.submit(load_dataset, cfg, self.device, report, notes)
            yield ev.Loading(label)
            if build_early:
                self._build_models()
            while not (future.done() and updates.empty()):
                try:
                    done, total = updates.get(timeout=0.1)
                except queue.Empty:
                    continue
                yield ev.Loading(label, done, total)
            self.data: Dataset | StreamedDataset = future.result()
        for note in notes:
            yield ev.EngineWarning(note)
        if not build_early:
            cfg.channels = self.data.channels
            atomic_write_text(self.run_dir / "config.toml", cfg.to_toml())
            self._build_models()
        if self.data.skipped:
            names = ", ".join(Path(p).name for p in self.data.skipped[:3])
            yield ev.EngineWarning(f"skipped {len(self.data.skipped)} unreadable file(s): {names}")
        self.steps_per_epoch = len(self.data) // cfg.batch_size
        if self.resume_state is not None:
            yield from self._restore(self.resume_state)
        self.metrics_csv = MetricsCsv(self.run_dir / "metrics.csv", self.history)
        self._labels: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _build_models(self) -> None:
        """Models and optimizers, seeded as the tutorial seeds them."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        self.netG, self.netD = (m.to(self.device) for m in build_models(cfg))
        self.channels_last = cfg.channels_last if cfg.channels_last is not None else self.device.type == "cpu"
        if self.channels_last:
            self.netG, self.netD = (m.to(memory_format=torch.channels_last) for m in (self.netG, self.netD))
        # Channels-last CPU layers with faster kernels (cpulayers.py), in fp32: they
        # are left out with --amp (bf16) and with --compile (which makes its own kernels).
        self.cpu_layers = (self.channels_last and self.device.type == "cpu"
                           and not cfg.compile and not cfg.amp)
        if self.cpu_layers:
            cpulayers.adopt(self.netG)
            cpulayers.adopt(self.netD)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        # With --amp, D's last Sigmoid is left out of the forward pass and the loss is
        # BCEWithLogits: the same maths, but safe under bf16 autocast (BCELoss is not).
        self._d_forward: nn.Module = self.netD.main[:-1] if cfg.amp else self.netD
        self._g_forward: nn.Module = self.netG
        self.criterion = nn.BCEWithLogitsLoss() if cfg.amp else nn.BCELoss()
        if cfg.compile:  # the originals keep their state_dict keys for checkpoints
            try:
                self._g_forward, self._d_forward = torch.compile(self._g_forward), torch.compile(self._d_forward)
            except RuntimeError as exc:  # e.g. torch before 2.4 on Python 3.12
                raise UserError(f"--compile: {first_line(exc)}; run without --compile") from None
        fused = {"fused": True} if cfg.fused_adam else {}
        try:
            self.optG = optim.Adam(self.netG.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999), **fused)
            self.optD = optim.Adam(self.netD.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999), **fused)
        except (RuntimeError, ValueError) as exc:  # fused Adam: CUDA only before torch 2.4
            if not cfg.fused_adam:
                raise
            raise UserError(f"--fused-adam: not available on {self.device.type} with torch {torch.__version__} "
                            f"({first_line(exc)}); run without --fused-adam") from None
        self._g_params = list(self.netG.parameters())
        cpu_gen = torch.Generator().manual_seed(cfg.seed)
        self.fixed_noise = torch.randn(FIXED_NOISE_SIZE, cfg.nz, 1, 1, generator=cpu_gen).to(self.device)
        self.noise_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.elapsed_base = 0.0

    def _make_run_dir(self) -> None:
        try:
            for sub in ("checkpoints", "samples"):
                (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "config.toml", self.config.to_toml())
        except OSError as exc:
            raise UserError(
                f"cannot write the run directory {str(self.run_dir)!r} ({exc.strerror or exc}); "
                "pass --run-dir with a writable folder"
            ) from None

    def _restore(self, state: dict[str, Any]) -> Iterator[Any]:
        """Continue exactly where a checkpoint left off."""
        self.netG.load_state_dict(state["generator"])
        self.netD.load_state_dict(state["discriminator"])
        _load_optimizer(self.optG, state["optimizer_g"])
        _load_optimizer(self.optD, state["optimizer_d"])
        self._set_lrs(self.config.lr_g, self.config.lr_d)
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        if self.batch_in_epoch >= self.steps_per_epoch:  # the dataset shrank since
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        pending = state.get("pending_lr")
        if pending is not None and not {"lr_g", "lr_d"} & self.explicit:
            self.pending_lr = (float(pending[0]), float(pending[1]))
        if "fixed_noise" in state:
            self.fixed_noise = state["fixed_noise"].to(self.device)
        rng = state.get("rng", {})
        if "torch_cpu" in rng:
            torch.set_rng_state(rng["torch_cpu"])
        cuda_state = rng.get("torch_cuda")
        if isinstance(cuda_state, list):  # older checkpoints: one state per visible GPU
            index = self.device.index or 0
            cuda_state = cuda_state[index] if index < len(cuda_state) else None
        if self.device.type == "cuda" and isinstance(cuda_state, torch.Tensor):
            torch.cuda.set_rng_state(cuda_state, self.device)
        if rng.get("noise_device") == self.device.type and "noise" in rng:
            self.noise_gen.set_state(rng["noise"])
        elif "noise" in rng:
            self.noise_gen.manual_seed(self.config.seed + 1 + self.step)
            yield ev.EngineWarning(
                f"resumed on {self.device.type} from a {rng.get('noise_device')} checkpoint: "
                "the noise sequence restarts (the weights and optimizer state are exact)"
            )
        hist = state.get("history")
        if hist is not None and len(hist.get("values", [])):
            columns = list(hist["columns"])
            values = hist["values"].tolist()
            self.history = [[row[columns.index(c)] if c in columns else math.nan for c in COLUMNS] for row in values]
        self.elapsed_base = float(state.get("elapsed_s", 0.0))
        self._saved = (self.step, Path(state["path"]).resolve()) if "path" in state else None

    def _started_event(self) -> ev.Started:
        cfg = self.config
        return ev.Started(
            device=describe_device(self.device),
            preset=cfg.preset,
            config=cfg.to_dict(),
            dataset=self.data.name,
            dataset_size=len(self.data),
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            run_dir=str(self.run_dir),
            step=self.step,
            epoch=self.epoch,
            resumed_from=self.resume_state.get("path") if self.resume_state else None,
            history_columns=list(COLUMNS),
            history=[list(r) for r in self.history],
            lr_g=self.lr_g,
            lr_d=self.lr_d,
            skipped=list(self.data.skipped),
            progression=(epoch_samples(self.run_dir, len(self.fixed_noise), cfg.image_size, cfg.channels)
                         if self.resume_state else []),
        )

    # ================================================================== properties

    @property
    def total_steps(self) -> int:
        total = self.config.epochs * self.steps_per_epoch
        if self.config.max_steps is not None:
            total = min(total, self.config.max_steps)
        return total

    @property
    def lr_g(self) -> float:
        return float(self.optG.param_groups[0]["lr"])

    @property
    def lr_d(self) -> float:
        return float(self.optD.param_groups[0]["lr"])

    def _set_lrs(self, lr_g: float, lr_d: float) -> None:
        for group in self.optG.param_groups:
            group["lr"] = lr_g
        for group in self.optD.param_groups:
            group["lr"] = lr_d
        self.config.lr_g, self.config.lr_d = lr_g, lr_d

    # ================================================================== the loop

    def _train_step(self, real: torch.Tensor) -> torch.Tensor:
        """One step of the tutorial's loop; returns [loss_D, loss_G, D(x), D(G(z1)), D(G(z2))]
        as a tensor on the device (no sync)."""
        b = real.size(0)
        if b not in self._labels:
            self._labels[b] = (
                torch.full((b,), REAL_LABEL, device=self.device),
                torch.full((b,), FAKE_LABEL, device=self.device),
            )
        real_label, fake_label = self._labels[b]
        if self.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)

        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad(set_to_none=True)
        with self._autocast():
            output = self._d_forward(real).view(-1)
            err_d_real = self.criterion(output, real_label)
        err_d_real.backward()
        d_x = self._probability(output).mean()

        noise = torch.randn(b, self.config.nz, 1, 1, device=self.device, generator=self.noise_gen)
        with self._autocast():
            fake = self._g_forward(noise)
            output = self._d_forward(fake.detach()).view(-1)
            err_d_fake = self.criterion(output, fake_label)
        err_d_fake.backward()
        d_g_z1 = self._probability(output).mean()
        err_d = err_d_real.detach() + err_d_fake.detach()
        self.optD.step()

        # (2) Update G: maximize log(D(G(z))) -- fake labels are real for the generator's cost
        self.netG.zero_grad(set_to_none=True)
        # Only G's gradients: D's from this pass would be discarded by its next zero_grad,
        # so skipping them saves a third of D's backward pass and changes nothing. `inputs`
        # does that for stock layers; cpulayers' autograd Functions need D's parameters
        # marked as not requiring gradients.
        if self.cpu_layers:
            self.netD.requires_grad_(False)
        try:
            with self._autocast():
                output = self._d_forward(fake).view(-1)
                err_g = self.criterion(output, real_label)
            err_g.backward(inputs=self._g_params)
        finally:
            if self.cpu_layers:
                self.netD.requires_grad_(True)
        d_g_z2 = self._probability(output).mean()
        self.optG.step()

        return torch.stack([err_d, err_g.detach(), d_x, d_g_z1, d_g_z2])

    def _autocast(self):
        """bf16 autocast with --amp, else nothing (torch before 2.5 refuses even a disabled
        autocast on MPS)."""
        if not self.config.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _probability(self, output: torch.Tensor) -> torch.Tensor:
        """D's verdicts in [0, 1]: the output itself, or sigmoid(logits) with --amp."""
        output = output.detach().float()
        return torch.sigmoid(output) if self.config.amp else output

    def _train(self) -> Iterator[Any]:
        cfg = self.config
        self._acc = torch.zeros(5, device=self.device)
        self._acc_steps = 0
        self._rows = RowAggregator(cfg.log_interval)
        self._throughput = Throughput()
        self._session_images = 0
        self._session_time = 0.0
        self._train_time = self.elapsed_base
        self._restart_clocks()
        self._batches: Iterator[torch.Tensor] | None = None
        self._last_means: list[float] | None = None
        self._good.keep(self.step, self._modules())  # a rollback target from the first step on
        try:
            yield from self._steps()
        finally:
            self._close_batches()

    def _close_batches(self) -> None:
        """End the epoch's batch stream (and a streaming DataLoader's workers with it)."""
        if self._batches is not None:
            self._batches.close()
            self._batches = None

    def _steps(self) -> Iterator[Any]:
        cfg = self.config
        yield self._samples_event()
        if self.step == 0:  # where the untrained generator starts, for comparison
            yield from self._measure_quality()
        while True:
            yield from self._serve_requests()
            if self.control.stop_reason is not None:
                reason = self.control.stop_reason
                break
            if cfg.max_steps is not None and self.step >= cfg.max_steps:
                reason = "max_steps"
                break
            if self.epoch >= cfg.epochs:
                reason = "completed"
                break
            if self._batches is None:
                self._batches = self.data.epoch_batches(cfg.seed, self.epoch, self.batch_in_epoch, cfg.batch_size)
            real = next(self._batches)
            self._acc += self._train_step(real)
            self._acc_steps += 1
            self.step += 1
            self.batch_in_epoch += 1
            if self.batch_in_epoch >= self.steps_per_epoch:
                self._close_batches()
                yield from self._end_epoch()
            now = time.perf_counter()
            if now - self._last_progress >= cfg.progress_interval:
                yield self._progress(now)
                yield from self._guard()
            if now - self._last_samples >= cfg.sample_interval:
                yield self._samples_event()
        self._close_batches()
        yield from self._finish(reason)

    def _measure_quality(self) -> Iterator[Any]:
        """SWD and diversity of generated against a fixed real subset (see quality.py): a
        history row of its own, an event, and a warning when the samples collapse."""
        cfg = self.config
        n = min(cfg.quality_images, len(self.data))
        if n < 2 or not hasattr(self, "netG"):
            return
        started = time.perf_counter()
        if self._quality is None:
            real = self.data.subset(n, cfg.seed)
            noise = torch.randn(n, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(cfg.seed + 1))
            self._quality = (RealReference(real, seed=cfg.seed), noise.to(self.device))
        reference, noise = self._quality
        with torch.no_grad():
            fake = torch.cat([generate(self.netG, z) for z in noise.split(cfg.batch_size)])
            q = reference.compare(fake)
        seconds = self._off_the_clock(started)
        index = COLUMNS.index("diversity")
        best = max((r[index] for r in self.history if math.isfinite(r[index])), default=0.0)
        row = quality_row(self.step, self.epoch, self.lr_g, self.lr_d, self._train_time, q.swd, q.diversity)
        self.history.append(row)
        self.metrics_csv.append(row)
        yield ev.Quality(self.step, self.epoch, q.swd, q.diversity, q.swd_levels, n, seconds)
        # a collapse is a fall from variety: an untrained generator's outputs are all alike, and
        # early in a run they often are for an epoch or two before they spread out
        collapsed = q.diversity < COLLAPSE_RATIO <= best
        warn, self._collapse_warned = collapsed and not self._collapse_warned, collapsed
        if warn:
            yield ev.EngineWarning(
                f"the samples are {q.diversity:.2f}× as varied as the data: the generator may be collapsing "
                "onto a few outputs (mode collapse); a lower learning rate or a restart from a snapshot can help")

    def _modules(self) -> dict[str, Any]:
        return {"generator": self.netG, "discriminator": self.netD, "optimizer_g": self.optG, "optimizer_d": self.optD}

    def _guard(self) -> Iterator[Any]:
        """After a progress read: roll back from non-finite losses, warn about saturation, and
        now and then keep the current state as the last good one (see guard.py)."""
        means = self._last_means
        if means is None:
            return
        if not all(math.isfinite(v) for v in means):
            yield from self._roll_back(means)
            return
        warning = self._saturation.update(self.step, means[1], means[2], means[3])
        if warning:
            yield ev.EngineWarning(warning)
        if self._good.due():
            self._good.keep(self.step, self._modules())

    def _roll_back(self, means: list[float]) -> Iterator[Any]:
        count = self._rollbacks.record((self.lr_g, self.lr_d))
        restored = self._good.restore(self._modules())
        what = ", ".join(f"{name} {v:g}" for name, v in zip(("loss_D", "loss_G"), means[:2]))
        where = (f"restored the state of step {restored}" if restored is not None
                 else "no good state was kept yet to restore")
        yield ev.EngineWarning(
            f"training diverged before step {self.step} ({what}): {where} and paused; "
            f"lower the learning rates (l) before resuming (rollback {count} of {self._rollbacks.limit})")
        self.control.pause("diverged")

    def _off_the_clock(self, started: float) -> float:
        """Keep the seconds since ``started`` out of img/s: drawing samples, measuring and
        rendering walks are not training. Returns them."""
        seconds = time.perf_counter() - started
        self._last_progress += seconds
        return seconds

    def _restart_clocks(self) -> None:
        now = time.perf_counter()
        self._last_progress = now
        self._last_samples = now

    def _serve_requests(self) -> Iterator[Any]:
        """Handle snapshot/export/learning-rate requests and pausing, at a step boundary."""
        ctl = self.control
        yield from self._serve_one_shots()
        if ctl.paused and ctl.stop_reason is None:
            yield self._progress(time.perf_counter(), force_row=True)
            yield ev.Paused(self.step, ctl.pause_reason)
            while True:
                while ctl.paused and ctl.stop_reason is None:
                    ctl.wake.wait(0.2)
                    yield from self._serve_one_shots()
                if ctl.stop_reason is None and self._rollbacks.blocked((self.lr_g, self.lr_d)):
                    ctl.pause("diverged")  # it would only diverge again
                    yield ev.EngineWarning(
                        f"training diverged {self._rollbacks.count} times at learning rates G {self.lr_g:g} "
                        f"D {self.lr_d:g}: set lower ones (l, apply now) before resuming")
                    yield ev.Paused(self.step, "diverged")
                    continue
                break
            if ctl.stop_reason is None:
                yield ev.Resumed(self.step)
            self._restart_clocks()

    def _serve_one_shots(self) -> Iterator[Any]:
        if self.control.take_measure():
            yield from self._measure_quality()
        if self.control.take_interpolate():
            started = time.perf_counter()
            walk = latent_walk(self.config.nz, self.config.seed + 2)
            frames = render_walk(self.netG, walk, self.device)
            self._off_the_clock(started)
            yield ev.Interpolation(self.step, self.epoch, frames)
        snapshot, export, lr = self.control.take_requests()
        if lr is not None:
            lr_g, lr_d, now = lr
            lr_g = self.lr_g if lr_g is None else lr_g
            lr_d = self.lr_d if lr_d is None else lr_d
            if now:
                self.pending_lr = None
                self._set_lrs(lr_g, lr_d)
                yield ev.LrApplied(lr_g, lr_d)
            else:
                self.pending_lr = (lr_g, lr_d)
                yield ev.LrPending(lr_g, lr_d)
        if snapshot:
            yield from self._snapshot()
        if export:
            samples = self._refresh_samples()
            path = save_grid(samples, self.run_dir / "samples" / f"export-step{self.step}.png")
            yield ev.Samples(self.step, self.epoch, samples)
            yield ev.Exported(self.step, str(path))

    def _progress(self, now: float, force_row: bool = False) -> ev.Progress:
        """Read the device accumulators (the one sync) and report averages."""
        cfg = self.config
        dt = now - self._last_progress
        self._last_progress = now
        steps = self._acc_steps
        self._last_means = None
        if steps:
            means = (self._acc / steps).tolist()
            self._acc.zero_()
            self._acc_steps = 0
            self._last_means = means
        else:
            losses = [row for row in self.history if math.isfinite(row[2])]  # not the quality rows
            means = losses[-1][2:7] if losses else [math.nan] * 5
        images = steps * cfg.batch_size
        self._train_time += dt
        self._session_time += dt
        self._session_images += images
        self._throughput.update(steps, dt)
        row = None
        if steps:
            self._rows.add(means, steps, images, dt)
        if self._rows.due() or (force_row and self._rows.pending()):
            row = self._rows.take(self.step, self.epoch, self.lr_g, self.lr_d, self._train_time)
            self.history.append(row)
            self.metrics_csv.append(row)
        ips = images / dt if dt > 0 and steps else 0.0
        return ev.Progress(
            step=self.step,
            epoch=self.epoch,
            epoch_step=self.batch_in_epoch,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            loss_d=means[0],
            loss_g=means[1],
            d_x=means[2],
            d_g_z1=means[3],
            d_g_z2=means[4],
            images_per_sec=ips,
            eta_s=self._throughput.eta(max(0, self.total_steps - self.step)),
            elapsed_s=self._train_time,
            lr_g=self.lr_g,
            lr_d=self.lr_d,
            row=row,
        )

    def _refresh_samples(self) -> torch.Tensor:
        start = time.perf_counter()
        self.last_samples = to_uint8(generate(self.netG, self.fixed_noise)).cpu()
        self._off_the_clock(start)
        self._last_samples = time.perf_counter()
        return self.last_samples

    def _samples_event(self) -> ev.Samples:
        return ev.Samples(self.step, self.epoch, self._refresh_samples())

    def _end_epoch(self) -> Iterator[Any]:
        self.epoch += 1
        self.batch_in_epoch = 0
        if self.pending_lr is not None:
            lr_g, lr_d = self.pending_lr
            self.pending_lr = None
            self._set_lrs(lr_g, lr_d)
            yield ev.LrApplied(lr_g, lr_d)
        yield self._progress(time.perf_counter(), force_row=True)
        yield from self._guard()  # the steps since the last progress read are checked too
        yield from self._measure_quality()
        samples = self._refresh_samples()
        sample_path = save_grid(samples, self.run_dir / "samples" / f"epoch-{self.epoch:04d}.png")
        yield ev.Samples(self.step, self.epoch, samples)
        ckpt = self._save(self.run_dir / "checkpoints" / "last.pt")
        yield ev.EpochEnd(self.epoch, self.step, str(sample_path), str(ckpt), samples)
        if self.control.pause_at_epoch_end and self.epoch < self.config.epochs:
            self.control.pause("epoch end")
        self._last_progress = time.perf_counter()  # saving is not training: keep it out of img/s

    def _snapshot(self) -> Iterator[Any]:
        samples = self._refresh_samples()
        sample_path = save_grid(samples, self.run_dir / "samples" / f"snapshot-{self.step}.png")
        path = self._save(self.run_dir / "checkpoints" / f"snapshot-{self.step}.pt")
        yield ev.Samples(self.step, self.epoch, samples)
        yield ev.SnapshotSaved(self.step, str(path), str(sample_path))

    def _finish(self, reason: str) -> Iterator[Any]:
        yield self._progress(time.perf_counter(), force_row=True)
        samples = self._refresh_samples()
        sample_path = save_grid(samples, self.run_dir / "samples" / f"final-step{self.step}.png")
        yield ev.Samples(self.step, self.epoch, samples)
        ckpt = self._save(self.run_dir / "checkpoints" / "last.pt")
        ips = self._session_images / self._session_time if self._session_time > 0 else 0.0
        yield ev.Finished(reason, self.step, self.epoch, self._train_time, ips, str(ckpt), str(sample_path))

    def _fail(self, exc: Exception) -> Iterator[Any]:
        message = _describe_failure(exc, self.device)
        ckpt: str | None = None
        try:
            ckpt = str(self._save(self.run_dir / "checkpoints" / "last.pt"))
        except Exception:  # noqa: BLE001 - nothing more can be saved
            ckpt = None
        yield ev.Error(message, ckpt)

    # ================================================================== checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly: tensors and plain data only."""
        rng: dict[str, Any] = {
            "torch_cpu": torch.get_rng_state(),
            # this run's GPU only: a list of every visible GPU would not restore on fewer
            "torch_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "noise": self.noise_gen.get_state(),
            "noise_device": self.device.type,
            "data": {"seed": self.config.seed, "epoch": self.epoch, "batch": self.batch_in_epoch},
        }
        history = torch.tensor(self.history, dtype=torch.float64).reshape(-1, len(COLUMNS))
        return {
            "generator": self.netG.state_dict(),
            "discriminator": self.netD.state_dict(),
            "optimizer_g": self.optG.state_dict(),
            "optimizer_d": self.optD.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "config": self.config.to_dict(),
            "lr_g": self.lr_g,
            "lr_d": self.lr_d,
            "pending_lr": list(self.pending_lr) if self.pending_lr else None,
            "fixed_noise": self.fixed_noise.detach().cpu(),
            "rng": rng,
            "history": {"columns": list(COLUMNS), "values": history},
            "elapsed_s": float(getattr(self, "_train_time", self.elapsed_base)),
            "tui_gan_version": __version__,
        }

    def _save(self, path: Path) -> Path:
        """Write a checkpoint unless this exact file already holds the current step."""
        if self._saved == (self.step, path.resolve()) and path.exists():
            return path
        if not weights_finite((self.netG, self.netD)):  # never write a checkpoint that cannot be trained from
            if self._good.restore(self._modules()) is None:
                raise RuntimeError("the weights are not finite and no good state is kept; nothing was saved")
        save_checkpoint(path, self.state_dict())
        self._saved = (self.step, path.resolve())
        return path


def _load_optimizer(optimizer: optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load a saved optimizer state, keeping this run's implementation choice (fused or not):
    load_state_dict would otherwise take it from the checkpoint."""
    flags = ("fused", "foreach", "capturable", "differentiable")
    current = optimizer.param_groups[0]
    groups = [{**g, **{k: current[k] for k in flags if k in current}} for g in saved["param_groups"]]
    optimizer.load_state_dict({**saved, "param_groups": groups})
    # load_state_dict casts dtype and device but keeps the saved memory layout: a CPU run's
    # channels-last moments resumed with contiguous weights (a GPU's default) would send
    # foreach Adam to its slow path, and make fused Adam fail (CUDA) or go wrong (CPU).
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if (isinstance(value, torch.Tensor) and value.shape == param.shape
                    and value.stride() != param.stride()):
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _describe_failure(exc: Exception, device: torch.device | None) -> str:
    out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch.* from 2.4
    if isinstance(exc, out_of_memory) or "out of memory" in str(exc).lower():
        return f"out of memory on {device}: try a smaller --batch-size or --image-size"
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
