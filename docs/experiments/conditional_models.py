"""Class-conditional versions of the DCGAN tutorial's networks, the candidates for --conditional
(issue 31), measured against each other by docs/experiments/conditional.py (docs/conditional.md).

All three keep the tutorial's layer stacks as tui_gan/engine/models.py builds them for 16..256
pixels (same widths from ``width_multipliers``, same kernels, BatchNorm and activations, the
tutorial's N(0, 0.02) initialisation and Adam 2e-4, beta1 0.5) and add only what the label
needs:

* ``cdcgan``: the classic conditional DCGAN. G reads a learned label embedding joined to z
  (one more set of input channels); D reads the label as one-hot planes joined to the image.
* ``cbn_pd``: conditional BatchNorm in G (every BatchNorm's scale and shift chosen by the
  class) and a projection discriminator (Miyato & Koyama 2018): D's logit is psi(h) +
  <embed(y), h>, h its last feature map. PyTorch-StudioGAN's DCGAN backbone with cBN + PD.
* ``acgan``: AC-GAN (Odena et al. 2017). G as in cdcgan; D does not see the label, it
  predicts it from a second head, and both nets add a cross-entropy on that prediction.

Interface: ``G(z, y)`` -> images in [-1, 1] (z: N x nz x 1 x 1, y: int64 N); ``D(x, y)`` ->
adversarial logits (N,), except AC-GAN's ``D(x)`` -> (logits (N,), class logits (N, classes)).
D ends in a logit rather than the tutorial's Sigmoid because the projection term is added to
the logit; BCEWithLogitsLoss on it is the tutorial's Sigmoid + BCELoss, computed stably.
``build(kind, ...)`` makes an initialised pair and ``ConditionalGan`` the training step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn, optim

from tui_gan.engine.models import width_multipliers

KINDS = ("cdcgan", "cbn_pd", "acgan")
#: Width of cdcgan's and acgan's label embedding in G, joined to z's nz channels. Its N(0, 1)
#: entries are on z's scale, so the label starts with a say in G's first layer.
LABEL_EMBEDDING = 16


def init_weights(m: nn.Module) -> None:
    """The tutorial's init (tui_gan.engine.models.weights_init) for these modules: convolutions
    N(0, 0.02), BatchNorm scales N(1, 0.02) and shifts 0. Conditional BatchNorm and the
    embeddings initialise themselves (reset_parameters) and are left alone here: the engine's
    weights_init matches "BatchNorm" in class names and would look for an affine weight."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d) and m.affine:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d whose scale and shift are looked up per class: the statistics are the
    batch's (shared by all classes), the affine map is the class's own."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gamma = nn.Embedding(num_classes, num_features)
        self.beta = nn.Embedding(num_classes, num_features)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # as the tutorial initialises BatchNorm's affine weights, once per class
        nn.init.normal_(self.gamma.weight, 1.0, 0.02)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


# ====================================================================== generators


def _generator_widths(ngf: int, image_size: int) -> list[int]:
    """G's feature widths from the 4x4 core outwards (64 px, ngf 64 -> 512, 256, 128, 64)."""
    return [ngf * m for m in width_multipliers(image_size)]


class EmbeddingGenerator(nn.Module):
    """The tutorial's Generator on z joined with a learned label embedding (cdcgan, acgan):
    the first transposed convolution reads nz + LABEL_EMBEDDING channels, the rest is unchanged."""

    def __init__(self, num_classes: int, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64,
                 embedding_dim: int = LABEL_EMBEDDING) -> None:
        super().__init__()
        self.nz, self.image_size, self.nc, self.num_classes = nz, image_size, nc, num_classes
        self.embed = nn.Embedding(num_classes, embedding_dim)  # N(0, 1): z's scale
        widths = _generator_widths(ngf, image_size)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz + embedding_dim, widths[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.main(torch.cat([z, self.embed(y)[:, :, None, None]], dim=1))


class CBNGenerator(nn.Module):
    """The tutorial's Generator with every BatchNorm conditional (cbn_pd): z alone goes in, and
    the class sets each layer's scale and shift. With one class it is the tutorial's G."""

    def __init__(self, num_classes: int, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        self.nz, self.image_size, self.nc, self.num_classes = nz, image_size, nc, num_classes
        widths = _generator_widths(ngf, image_size)
        ins = [nz, *widths[:-1]]
        # the first block is 1x1 -> 4x4 (stride 1, no padding), the others double the side
        self.convs = nn.ModuleList(
            nn.ConvTranspose2d(w_in, w_out, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False)
            for i, (w_in, w_out) in enumerate(zip(ins, widths))
        )
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(w, num_classes) for w in widths)
        self.out = nn.ConvTranspose2d(widths[-1], nc, 4, 2, 1, bias=False)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = z
        for conv, norm in zip(self.convs, self.norms):
            h = F.relu(norm(conv(h), y))
        return torch.tanh(self.out(h))


# ====================================================================== discriminators


def _discriminator_trunk(in_channels: int, ndf: int, image_size: int) -> tuple[nn.Sequential, int]:
    """The tutorial's D up to its last 4x4 feature map, reading ``in_channels``; and that map's width."""
    widths = [ndf * m for m in width_multipliers(image_size)[::-1]]  # 64 px, ndf 64 -> 64, 128, 256, 512
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    for w_in, w_out in zip(widths, widths[1:]):
        layers += [nn.Conv2d(w_in, w_out, 4, 2, 1, bias=False), nn.BatchNorm2d(w_out), nn.LeakyReLU(0.2, inplace=True)]
    return nn.Sequential(*layers), widths[-1]


class LabelPlanesDiscriminator(nn.Module):
    """The tutorial's Discriminator reading the image joined with one-hot label planes (cdcgan):
    nc + num_classes input channels, a logit out."""

    def __init__(self, num_classes: int, ndf: int = 64, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        self.image_size, self.nc, self.num_classes = image_size, nc, num_classes
        self.main, width = _discriminator_trunk(nc + num_classes, ndf, image_size)
        self.adv = nn.Conv2d(width, 1, 4, 1, 0, bias=False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        planes = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return self.adv(self.main(torch.cat([x, planes], dim=1))).view(-1)


class ProjectionDiscriminator(nn.Module):
    """The tutorial's Discriminator with a projection on the label (cbn_pd, Miyato & Koyama
    2018): logit = psi(h) + <embed(y), sum of h over its 4x4 positions>, psi the tutorial's
    last convolution. The label only enters there, so D's features are the unconditional D's."""

    def __init__(self, num_classes: int, ndf: int = 64, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        self.image_size, self.nc, self.num_classes = image_size, nc, num_classes
        self.main, width = _discriminator_trunk(nc, ndf, image_size)
        self.adv = nn.Conv2d(width, 1, 4, 1, 0, bias=False)
        self.embed = nn.Embedding(num_classes, width)
        # as StudioGAN's DCGAN initialises it (N(0, 0.02)): the projection starts near zero and
        # the tutorial's unconditional logit leads while D's features form
        nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.main(x)
        return self.adv(h).view(-1) + (self.embed(y) * h.sum(dim=(2, 3))).sum(dim=1)


class AuxiliaryClassifierDiscriminator(nn.Module):
    """The tutorial's Discriminator with a second head that predicts the class (acgan): D(x)
    -> (adversarial logits (N,), class logits (N, num_classes)). The label is not an input."""

    def __init__(self, num_classes: int, ndf: int = 64, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        self.image_size, self.nc, self.num_classes = image_size, nc, num_classes
        self.main, width = _discriminator_trunk(nc, ndf, image_size)
        self.adv = nn.Conv2d(width, 1, 4, 1, 0, bias=False)
        self.cls = nn.Conv2d(width, num_classes, 4, 1, 0)  # the same 4x4 read as adv, one logit per class

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.adv(h).view(-1), self.cls(h).flatten(1)


# ====================================================================== building and training


def build(kind: str, num_classes: int, nz: int = 100, ngf: int = 64, ndf: int = 64, nc: int = 3,
          image_size: int = 64) -> tuple[nn.Module, nn.Module]:
    """G and D of one candidate (KINDS), initialised as the tutorial does (uses torch's RNG)."""
    if kind == "cbn_pd":
        g: nn.Module = CBNGenerator(num_classes, nz, ngf, nc, image_size)
        d: nn.Module = ProjectionDiscriminator(num_classes, ndf, nc, image_size)
    elif kind in ("cdcgan", "acgan"):
        g = EmbeddingGenerator(num_classes, nz, ngf, nc, image_size)
        d_class = LabelPlanesDiscriminator if kind == "cdcgan" else AuxiliaryClassifierDiscriminator
        d = d_class(num_classes, ndf, nc, image_size)
    else:
        raise ValueError(f"unknown conditional model {kind!r}; choose one of {', '.join(KINDS)}")
    g.apply(init_weights)
    d.apply(init_weights)
    return g, d


class ConditionalGan:
    """One candidate's nets, the tutorial's Adam optimizers and its step, with labels.

    The step is the tutorial's: D on a real batch and on a fake batch (two forward passes, so
    BatchNorm sees each alone), then G against D's updated verdict, BCE throughout. Fake
    labels are drawn uniformly, so every class is asked for equally whatever the data's
    balance. AC-GAN adds the cross-entropy of D's class head on real and fake images to D's
    loss, and on fake images to G's.
    """

    def __init__(self, kind: str, num_classes: int, nz: int = 100, ngf: int = 64, ndf: int = 64, nc: int = 3,
                 image_size: int = 64, lr: float = 2e-4, beta1: float = 0.5) -> None:
        self.kind, self.num_classes, self.nz = kind, num_classes, nz
        self.netG, self.netD = build(kind, num_classes, nz, ngf, ndf, nc, image_size)
        self.optG = optim.Adam(self.netG.parameters(), lr=lr, betas=(beta1, 0.999))
        self.optD = optim.Adam(self.netD.parameters(), lr=lr, betas=(beta1, 0.999))

    def _judge(self, x: torch.Tensor, y: torch.Tensor, target: float) -> torch.Tensor:
        """D's loss (or G's, with target 1 on fakes) for images ``x`` of classes ``y``."""
        if self.kind == "acgan":
            adv, cls = self.netD(x)
            return _bce(adv, target) + F.cross_entropy(cls, y)
        return _bce(self.netD(x, y), target)

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
                   ) -> tuple[float, float]:
        """One step on a real batch in [-1, 1] and its labels; returns (loss_D, loss_G)."""
        b = real.size(0)
        z = torch.randn(b, self.nz, 1, 1, generator=generator, device=real.device)
        y_fake = torch.randint(0, self.num_classes, (b,), generator=generator, device=real.device)

        self.netD.zero_grad(set_to_none=True)
        err_real = self._judge(real, labels, 1.0)
        err_real.backward()
        fake = self.netG(z, y_fake)
        err_fake = self._judge(fake.detach(), y_fake, 0.0)
        err_fake.backward()
        self.optD.step()

        self.netG.zero_grad(set_to_none=True)
        err_g = self._judge(fake, y_fake, 1.0)
        err_g.backward()
        self.optG.step()
        return float(err_real.detach() + err_fake.detach()), float(err_g.detach())


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@torch.no_grad()
def generate(netG: nn.Module, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Images for (z, y) as tui_gan.engine.models.generate draws them: batch statistics (train
    mode), the BatchNorm running statistics left as they were."""
    buffers = {name: b.clone() for name, b in netG.named_buffers()}
    was_training = netG.training
    netG.train()
    try:
        return netG(z, y)
    finally:
        for name, b in netG.named_buffers():
            b.copy_(buffers[name])
        netG.train(was_training)
