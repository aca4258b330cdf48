"""The generator and discriminator a run's config names: the tutorial's (models.py), or
with --conditional the conditional pair (conditional.py). Building and checking a run's
nets (the GAN, checkpoints, sampling) goes through here, so the choice has one home."""

from __future__ import annotations

from torch import nn

from .conditional import ConditionalDiscriminator, ConditionalGenerator, init_conditional
from .models import Discriminator, Generator, weights_init


def model_pair(config) -> tuple[nn.Module, nn.Module]:
    """The generator and discriminator a TrainConfig names, not initialised: the tutorial's,
    or with ``config.conditional`` the conditional pair (conditional.py)."""
    nc = config.channels or 3
    if config.conditional:
        if not config.class_names:
            raise ValueError("a conditional model needs the run's class names")
        classes = len(config.class_names)
        return (ConditionalGenerator(classes, config.nz, config.ngf, nc, config.image_size),
                ConditionalDiscriminator(classes, config.ndf, nc, config.image_size))
    return Generator(config.nz, config.ngf, nc, config.image_size), Discriminator(config.ndf, nc, config.image_size)


def build_models(config) -> tuple[nn.Module, nn.Module]:
    """Both networks for a TrainConfig, initialised as the tutorial does (uses torch's RNG)."""
    g, d = model_pair(config)
    if config.conditional:
        init_conditional(g)
        init_conditional(d)
    else:
        g.apply(weights_init)
        d.apply(weights_init)
    return g, d
