import pytest
import torch
from torch import nn

# The PyTorch DCGAN tutorial's classes, verbatim, as the benchmark runs them.
from tui_gan.bench.tutorial import TutorialDiscriminator, TutorialGenerator
from tui_gan.engine.models import Discriminator, Generator, generate, weights_init

# What these check is the nets' shapes and initial weights: torch's, the same on every Python: CI
# runs them on one (.ci/run).
pytestmark = pytest.mark.one_python


def _layers(module):
    return [(type(m).__name__, repr(m)) for m in module.main]


def _shapes(module):
    return [(name, tuple(p.shape)) for name, p in module.state_dict().items()]


def test_64px_default_models_are_exactly_the_tutorials():
    g, d = Generator(), Discriminator()
    tg, td = TutorialGenerator(), TutorialDiscriminator()
    assert _layers(g) == _layers(tg)
    assert _layers(d) == _layers(td)
    assert _shapes(g) == _shapes(tg)
    assert _shapes(d) == _shapes(td)
    assert sum(p.numel() for p in g.parameters()) == 3_576_704
    assert sum(p.numel() for p in d.parameters()) == 2_765_568
    # the tutorial's checkpoints load as they are
    g.load_state_dict(tg.state_dict())
    d.load_state_dict(td.state_dict())


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("nc", [1, 3])
def test_shapes_for_every_size(size, nc):
    g = Generator(nz=8, ngf=4, nc=nc, image_size=size)
    d = Discriminator(ndf=4, nc=nc, image_size=size)
    z = torch.randn(2, 8, 1, 1)
    x = g(z)
    assert x.shape == (2, nc, size, size)
    assert x.min() >= -1 and x.max() <= 1
    y = d(x)
    assert y.shape == (2, 1, 1, 1)
    assert ((y > 0) & (y < 1)).all()
    # one up/down-sampling block per factor of two
    n_up = sum(isinstance(m, nn.ConvTranspose2d) for m in g.main)
    n_down = sum(isinstance(m, nn.Conv2d) for m in d.main)
    assert n_up == n_down == size.bit_length() - 1 - 1  # log2(size) - 1


def test_width_is_capped_at_8x_for_large_images():
    g = Generator(nz=8, ngf=4, image_size=256)
    assert g.main[0].out_channels == 4 * 8
    d = Discriminator(ndf=4, image_size=256)
    assert max(m.out_channels for m in d.main if isinstance(m, nn.Conv2d)) == 4 * 8


def test_unsupported_size_is_rejected():
    with pytest.raises(ValueError):
        Generator(image_size=48)
    with pytest.raises(ValueError):
        Discriminator(image_size=8)


def test_weights_init_matches_the_tutorial():
    torch.manual_seed(0)
    g = Generator(ngf=64)
    g.apply(weights_init)
    conv = g.main[0].weight
    bn = g.main[1]
    assert abs(conv.std().item() - 0.02) < 0.002
    assert abs(conv.mean().item()) < 0.002
    assert abs(bn.weight.mean().item() - 1.0) < 0.01
    assert torch.all(bn.bias == 0)


def test_generate_leaves_batchnorm_statistics_alone():
    g = Generator(nz=8, ngf=4, image_size=16)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    out = generate(g, torch.randn(5, 8, 1, 1))
    assert out.shape == (5, 3, 16, 16)
    for k, v in g.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert g.training
