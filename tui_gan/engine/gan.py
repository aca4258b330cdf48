"""The GAN itself: the tutorial's nets, optimizers and loss, one training step, the
learning rates, and the random state that makes a run exactly resumable.

The step is the PyTorch DCGAN tutorial's, with two differences that change no number
(a test checks one step against the tutorial's weights and gradients): the statistics
stay on the device (no ``.item()`` per step), and G's backward pass computes no weight
gradients for D, which D's next ``zero_grad`` would throw away.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
from torch import nn, optim

from .. import speed
from ..core import events as ev
from ..core.config import TrainConfig, check_sync_bn
from ..core.errors import UserError, first_line
from ..data.pixels import to_uint8
from .augment import diff_augment
from .conditional import SAMPLE_COLUMNS, SHOWN_CLASSES, class_rows
from .devices import choose_precision
from .ema import GeneratorEma
from .models import generate, synchronise_batchnorm
from .nets import build_models
from .randomness import restore_rng, rng_state
from .world import World

REAL_LABEL = 1.0
FAKE_LABEL = 0.0
FIXED_NOISE_SIZE = 64


class Gan:
    """Generator, discriminator, their Adam optimizers and the loss, on one device."""

    def __init__(self, config: TrainConfig, device: torch.device, world: World | None = None) -> None:
        """Build the nets and optimizers, seeded as the tutorial seeds them. Raises UserError
        where an option cannot work here (--compile, --fused-adam). ``world``: the run's
        processes, which share each batch (world.py); one by default."""
        self.config = config
        self.device = device
        self.world = world or World.single()
        self._rows = self.world.rows(config.batch_size)
        torch.manual_seed(config.seed)
        self.netG, self.netD = (_batchnorm(m, self.world, config.sync_bn).to(device) for m in build_models(config))
        self.precision = choose_precision(config.amp, device)
        self.bf16 = self.precision.bf16
        self.speed = speed.apply(self.netG, self.netD, config, device, bf16=self.bf16)
        self.classes = len(config.class_names or ()) if config.conditional else 0
        """The number of classes of a conditional run (conditional.py); 0 for the tutorial's GAN."""
        self.first_class = 0
        """The first of the classes whose rows the samples show (a conditional run's ``k``)."""
        # In bf16, D's last Sigmoid is left out of the forward pass and the loss is
        # BCEWithLogits: the same maths, but safe under bf16 autocast (BCELoss is not).
        d_forward: Any = self.netD if not self.bf16 or self.classes else self.netD.main[:-1]
        g_forward: Any = self.netG
        self.criterion = nn.BCEWithLogitsLoss() if self.bf16 else nn.BCELoss()
        if config.compile:  # the originals keep their state_dict keys for checkpoints
            try:
                g_forward, d_forward = torch.compile(g_forward), torch.compile(d_forward)
            except RuntimeError as exc:  # e.g. torch before 2.4 on Python 3.12
                raise UserError(f"--compile: {first_line(exc)}; run without --compile") from None
        if self.classes and self.bf16:  # the conditional D gives its logit when asked
            d_forward = functools.partial(d_forward, logits=True)
        self._g_forward, self._d_forward = g_forward, d_forward
        self.optG, self.optD = self._optimizers()
        self._g_params = list(self.netG.parameters())
        self.ema = GeneratorEma(self.netG, config.ema_decay) if config.ema else None
        self.show_ema = self.ema is not None
        """Whether samples, exports and latent walks come from the average (the app's ``v``);
        only ever true with an average (show_average refuses it otherwise)."""
        cpu_gen = torch.Generator().manual_seed(config.seed)
        self.fixed_noise = torch.randn(FIXED_NOISE_SIZE, config.nz, 1, 1, generator=cpu_gen).to(device)
        self.noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        self._labels: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.pending_lr: tuple[float, float] | None = None
        """Learning rates (G, D) waiting for the next epoch boundary."""

    def _optimizers(self) -> tuple[optim.Adam, optim.Adam]:
        cfg = self.config
        fused = {"fused": True} if cfg.fused_adam else {}
        try:
            return (optim.Adam(self.netG.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, 0.999), **fused),
                    optim.Adam(self.netD.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, 0.999), **fused))
        except (RuntimeError, ValueError) as exc:  # fused Adam: CUDA only before torch 2.4
            if not cfg.fused_adam:
                raise
            raise UserError(f"--fused-adam: not available on {self.device.type} with torch {torch.__version__} "
                            f"({first_line(exc)}); run without --fused-adam") from None

    # ================================================================== learning rates

    @property
    def lr_g(self) -> float:
        return float(self.optG.param_groups[0]["lr"])

    @property
    def lr_d(self) -> float:
        return float(self.optD.param_groups[0]["lr"])

    @property
    def lrs(self) -> tuple[float, float]:
        return self.lr_g, self.lr_d

    def set_lrs(self, lr_g: float, lr_d: float) -> None:
        for group in self.optG.param_groups:
            group["lr"] = lr_g
        for group in self.optD.param_groups:
            group["lr"] = lr_d
        self.config.lr_g, self.config.lr_d = lr_g, lr_d

    def change_lrs(self, lr_g: float | None, lr_d: float | None, now: bool) -> ev.LrApplied | ev.LrPending:
        """Apply new learning rates (None: keep that net's) now, or at the next epoch boundary."""
        self.pending_lr = (self.lr_g if lr_g is None else lr_g, self.lr_d if lr_d is None else lr_d)
        return self.apply_pending_lrs() if now else ev.LrPending(*self.pending_lr)

    def apply_pending_lrs(self) -> ev.LrApplied | None:
        """At an epoch boundary (or at once): the learning rates that were waiting."""
        if self.pending_lr is None:
            return None
        lr_g, lr_d = self.pending_lr
        self.pending_lr = None
        self.set_lrs(lr_g, lr_d)
        return ev.LrApplied(lr_g, lr_d)

    # ================================================================== the step

    def train_step(self, real: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """One step of the tutorial's loop; returns [loss_D, loss_G, D(x), D(G(z1)), D(G(z2))]
        as a tensor on the device (no sync). A conditional run passes the real images'
        ``classes``; G is asked for the same classes, so its class mix is the data's."""
        b = real.size(0)
        D, G = self._verdict(classes), self._generator(classes)
        if b not in self._labels:
            self._labels[b] = (
                torch.full((b,), REAL_LABEL, device=self.device),
                torch.full((b,), FAKE_LABEL, device=self.device),
            )
        real_label, fake_label = self._labels[b]
        if self.speed.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)

        # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad(set_to_none=True)
        with self.autocast():
            output = D(self._seen(real)).view(-1)
            err_d_real = self.criterion(output, real_label)
        self._weighted(err_d_real).backward()
        d_x = self._probability(output).mean()

        noise = self._noise(b)
        with self.autocast():
            fake = G(noise)
            output = D(self._seen(fake.detach())).view(-1)
            err_d_fake = self.criterion(output, fake_label)
        self._weighted(err_d_fake).backward()
        d_g_z1 = self._probability(output).mean()
        err_d = err_d_real.detach() + err_d_fake.detach()
        self.world.reduce_gradients(self.netD, self.config.batch_size)
        self.optD.step()

        # (2) Update G: maximize log(D(G(z))) -- fake labels are real for the generator's cost
        self.netG.zero_grad(set_to_none=True)
        # Only G's gradients: D's from this pass would be discarded by its next zero_grad,
        # so skipping them saves a third of D's backward pass and changes nothing. `inputs`
        # does that for stock layers; cpulayers' autograd Functions need D's parameters
        # marked as not requiring gradients.
        if self.speed.cpu_layers:
            self.netD.requires_grad_(False)
        try:
            with self.autocast():
                output = D(self._seen(fake)).view(-1)
                err_g = self.criterion(output, real_label)
            self._weighted(err_g).backward(inputs=self._g_params)
        finally:
            if self.speed.cpu_layers:
                self.netD.requires_grad_(True)
        d_g_z2 = self._probability(output).mean()
        # several processes: G's gradients and the statistics become the whole batch's
        stats = self.world.reduce_gradients(self.netG, self.config.batch_size,
                                            torch.stack([err_d, err_g.detach(), d_x, d_g_z1, d_g_z2]))
        self.optG.step()
        if self.ema is not None:
            self.ema.update()
        return stats

    def _verdict(self, classes: torch.Tensor | None) -> Any:
        """D's forward pass for this step: the tutorial's, or asked about ``classes``."""
        if classes is None:
            return self._d_forward
        return lambda images: self._d_forward(images, classes)

    def _generator(self, classes: torch.Tensor | None) -> Any:
        """G's forward pass for this step: the tutorial's, or asked for ``classes``."""
        if classes is None:
            return self._g_forward
        return lambda noise: self._g_forward(noise, classes)

    def _weighted(self, loss: torch.Tensor) -> torch.Tensor:
        """What backward() takes: with several processes, this rank's loss weighted by its
        share of the batch (world.py), so that the summed gradients are the whole batch's."""
        return self.world.weighted(loss, self.config.batch_size)

    def _noise(self, b: int) -> torch.Tensor:
        """z for this step: drawn for the whole batch and sliced when processes share it,
        so every process's generator stays in step with one process's."""
        n = b if self._rows is None else self.config.batch_size
        z = torch.randn(n, self.config.nz, 1, 1, device=self.device, generator=self.noise_gen)
        return z if self._rows is None else z[self._rows]

    def _seen(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of a batch: the batch, or with --augment its DiffAugment (augment.py)."""
        if not self.config.augment:
            return images
        seen = diff_augment(images, self.noise_gen, self._rows, self.config.batch_size)
        return seen.contiguous(memory_format=torch.channels_last) if self.speed.channels_last else seen

    def autocast(self):
        """bf16 autocast when the precision is bf16, else nothing (torch before 2.5 refuses
        even a disabled autocast on MPS)."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _probability(self, output: torch.Tensor) -> torch.Tensor:
        """D's verdicts in [0, 1]: the output itself, or sigmoid(logits) in bf16."""
        output = output.detach().float()
        return torch.sigmoid(output) if self.bf16 else output

    @property
    def shown_generator(self) -> nn.Module:
        """The generator whose samples are shown and saved: the average or the live one."""
        return self.ema.model if self.show_ema else self.netG

    @property
    def shown(self) -> str:
        """Whose samples are shown, as the Samples event names it: 'average' or 'live'."""
        return "average" if self.show_ema else "live"

    @property
    def measured_generator(self) -> nn.Module:
        """The generator the quality metric (and best.pt) goes by, and the saved grids show
        whatever a viewer shows (so a run's progression is one generator's): the average
        with --ema."""
        return self.ema.model if self.ema is not None else self.netG

    def samples(self, generator: nn.Module | None = None, first_class: int | None = None) -> torch.Tensor:
        """The fixed-noise batch of ``generator`` (default: the shown one) as uint8
        (N, C, H, W) on the CPU; of a conditional run, one row per class (row_classes from
        ``first_class``, default the shown one), the same noise in each column."""
        net = generator or self.shown_generator
        if not self.classes:
            return to_uint8(generate(net, self.fixed_noise)).cpu()
        rows = self.row_classes(first_class)
        noise = self.fixed_noise[:SAMPLE_COLUMNS].repeat(len(rows), 1, 1, 1)
        classes = torch.tensor(rows).repeat_interleave(SAMPLE_COLUMNS).to(self.device)
        return to_uint8(generate(net, noise, classes)).cpu()

    def row_classes(self, first_class: int | None = None) -> list[int]:
        """A conditional run's sample rows: up to SHOWN_CLASSES classes from ``first_class``
        (default: the shown one) on, wrapping; empty for the tutorial's GAN."""
        first = self.first_class if first_class is None else first_class
        return class_rows(self.classes, first, SHOWN_CLASSES) if self.classes else []

    def show_classes(self, first: int) -> str | None:
        """Show the rows from class ``first`` on (wrapping); a warning where there are no classes."""
        if not self.classes:
            return "this run has no classes (k): start one with --conditional on labelled data"
        self.first_class = first % self.classes
        return None

    def show_average(self, on: bool) -> str | None:
        """Show the average's samples (or the live generator's); a warning where there is none."""
        if self.ema is None:
            return "this run keeps no average of the generator (v): resume it with --ema for one"
        self.show_ema = on
        return None

    # ================================================================== state

    def modules(self) -> dict[str, Any]:
        """The checkpointed objects by their checkpoint keys (for the guard, too: a rollback
        takes the average back with the weights)."""
        modules = {"generator": self.netG, "discriminator": self.netD, "optimizer_g": self.optG, "optimizer_d": self.optD}
        if self.ema is not None:
            modules["generator_ema"] = self.ema.model
        return modules

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer states, learning rates and the fixed noise: tensors and plain data."""
        return {
            **{name: m.state_dict() for name, m in self.modules().items()},
            "lr_g": self.lr_g,
            "lr_d": self.lr_d,
            "pending_lr": list(self.pending_lr) if self.pending_lr else None,
            "fixed_noise": self.fixed_noise.detach().cpu(),
            **({"ema_updates": self.ema.updates} if self.ema is not None else {}),
        }

    def rng_state(self) -> dict[str, Any]:
        return rng_state(self.device, self.noise_gen)

    def load_state_dict(self, state: dict[str, Any], step: int, keep_pending: bool = True) -> str | None:
        """Continue exactly where ``state`` (a checkpoint at ``step``) left off, keeping the
        learning rates of this run's config (and the checkpoint's pending ones unless not
        ``keep_pending``). Returns a warning when the noise sequence cannot continue (the
        checkpoint comes from another kind of device)."""
        self.netG.load_state_dict(state["generator"])
        self.netD.load_state_dict(state["discriminator"])
        _load_optimizer(self.optG, state["optimizer_g"])
        _load_optimizer(self.optD, state["optimizer_d"])
        if self.ema is not None:  # a checkpoint without an average (--ema added at resume) starts one
            self.ema.load(state)
        self.set_lrs(self.config.lr_g, self.config.lr_d)
        pending = state.get("pending_lr")
        if pending is not None and keep_pending:
            self.pending_lr = (float(pending[0]), float(pending[1]))
        if "fixed_noise" in state:
            self.fixed_noise = state["fixed_noise"].to(self.device)
        return restore_rng(state.get("rng", {}), self.device, self.noise_gen, self.config.seed + 1 + step)


def _batchnorm(net: nn.Module, world: World, sync_bn: bool) -> nn.Module:
    """``net`` as built, whose BatchNorm normalises each process's share of the batch, or with
    --sync-bn across several CUDA processes, synchronised over the whole batch (SyncBatchNorm:
    one process's maths, at a collective and a device sync per layer and pass)."""
    check_sync_bn(sync_bn, world.device.type, world.size)
    return synchronise_batchnorm(net) if sync_bn and world.distributed else net


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
