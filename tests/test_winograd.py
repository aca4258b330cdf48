"""winograd.py computes the k=4, stride-2, padding-1 convolution's output and gradients."""

import pytest
import torch
import torch.nn.functional as F

from tui_gan.speed import winograd

# What these check is the convolution's values and gradients: torch's maths, the same on every
# Python: CI runs them on one (.ci/run).
pytestmark = pytest.mark.one_python

CL = torch.channels_last


def _nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def _nchw(t):
    return t.permute(0, 3, 1, 2)


@pytest.mark.parametrize("shape", [(3, 5, 7, 8, 8), (2, 4, 6, 4, 12), (1, 3, 2, 16, 4), (2, 6, 3, 12, 20)])
def test_conv_and_its_gradients_are_pytorchs(shape):
    """In float64, so that a wrong term (of the order of the values) cannot hide in rounding.
    Non-square inputs, one tile per axis (4 pixels) and odd numbers of tiles included."""
    n, c, o, h, w = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, h, w, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(o, c, 4, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    want = F.conv2d(x, weight, stride=2, padding=1)
    grad = torch.randn(want.shape, generator=gen, dtype=torch.float64)
    want.backward(grad)

    got, v = winograd.conv(_nhwc(x.detach()), winograd.kernel(weight.detach()))
    grad_x, dm = winograd.input_grad(_nhwc(grad), winograd.kernel(weight.detach(), transpose=True))
    grad_w = winograd.weight_grad(dm, v, weight.detach())
    assert torch.allclose(_nchw(got), want, atol=1e-12)
    assert torch.allclose(_nchw(grad_x), x.grad, atol=1e-12)
    assert torch.allclose(grad_w, weight.grad, atol=1e-12)
    assert grad_w.is_contiguous(memory_format=CL)


def test_input_grad_is_the_transposed_conv():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(2, 6, 4, 6, generator=gen, dtype=torch.float64)
    weight = torch.randn(6, 5, 4, 4, generator=gen, dtype=torch.float64)  # [in, out] of the transposed conv
    got, _ = winograd.input_grad(_nhwc(z), winograd.kernel(weight, transpose=True))
    want = F.conv_transpose2d(z, weight, stride=2, padding=1)
    assert got.shape == (2, 8, 12, 5)
    assert torch.allclose(_nchw(got), want, atol=1e-12)


@pytest.mark.parametrize("mean", [0.0, 1.0])  # 1: positive activations, as after a LeakyReLU
def test_float32_error_is_near_that_of_a_direct_sum(mean):
    """The transforms add and subtract (coefficients 0 and +-1), so in float32 the results
    stay within a few times the error of PyTorch's own convolution, measured against
    float64: the output and weight gradient about the same (0.5-0.9x here), the input
    gradient, whose adjoint transforms subtract more, 1.7-2.7x here (up to 8x in other
    cases a review measured), all under 1.5e-6 of the largest value here."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 64, 16, 16, generator=gen, dtype=torch.float64) + mean
    weight = torch.randn(96, 64, 4, 4, generator=gen, dtype=torch.float64) * 0.05
    grad = torch.randn(4, 96, 8, 8, generator=gen, dtype=torch.float64) + mean
    exact = [F.conv2d(x, weight, stride=2, padding=1),
             *torch.ops.aten.convolution_backward(grad, x, weight, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1,
                                                  [True, True, False])[:2]]
    f32 = [t.float().contiguous(memory_format=CL) for t in (x, weight, grad)]
    stock = [F.conv2d(f32[0], f32[1], stride=2, padding=1),
             *torch.ops.aten.convolution_backward(f32[2], f32[0], f32[1], None, [2, 2], [1, 1], [1, 1], False,
                                                  [0, 0], 1, [True, True, False])[:2]]
    y, v = winograd.conv(_nhwc(f32[0]), winograd.kernel(f32[1]))
    grad_x, dm = winograd.input_grad(_nhwc(f32[2]), winograd.kernel(f32[1], transpose=True))
    ours = [_nchw(y), _nchw(grad_x), winograd.weight_grad(dm, v, f32[1])]
    for name, got, theirs, want, times in zip(("output", "input grad", "weight grad"), ours, stock, exact,
                                              (2, 5, 2)):
        error, stock_error = (got.double() - want).abs().max(), (theirs.double() - want).abs().max()
        assert error <= times * stock_error and error <= 1e-5 * want.abs().max(), name


def test_applies_to_even_outputs_with_enough_channels():
    assert winograd.applies(64, 128, 16, 16)
    assert winograd.applies(512, 64, 4, 2)
    assert not winograd.applies(3, 64, 32, 32)  # D's first layer
    assert not winograd.applies(64, 3, 32, 32)  # G's last (its conv: 3 <- 64)
    assert not winograd.applies(32, 64, 8, 8)  # measured slower below 64 channels
    assert not winograd.applies(64, 64, 3, 4)  # tiles are 2x2 outputs
