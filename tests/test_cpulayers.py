"""The channels-last CPU layers compute the stock layers' values and gradients."""

import pytest
import torch
from torch import nn

from tui_gan.engine.models import Discriminator, Generator, weights_init
from tui_gan.speed import cpulayers, winograd

from .conftest import spy

# What these check is the layers' values and gradients: torch's maths, the same on every Python:
# CI runs them on one (.ci/run).
pytestmark = pytest.mark.one_python

CL = torch.channels_last


def _input(shape, channels_last, seed=0):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return x.contiguous(memory_format=CL) if channels_last else x


@pytest.mark.parametrize("channels_last", [False, True])
def test_leaky_relu_is_the_stock_one(channels_last):
    base = _input((4, 8, 6, 6), channels_last)
    grad = _input((4, 8, 6, 6), channels_last, seed=1)
    outs = []
    for layer in (nn.LeakyReLU(0.2, inplace=True), cpulayers.LeakyReLU(0.2, inplace=True)):
        leaf = base.clone().requires_grad_()
        y = layer(leaf * 1)  # in place needs a non-leaf, as after a conv
        y.backward(grad)
        outs.append((y.detach(), leaf.grad))
    (y0, g0), (y1, g1) = outs
    assert torch.equal(y0, y1) and torch.equal(g0, g1)
    assert g1.is_contiguous(memory_format=CL) == channels_last


def _spy(monkeypatch, name):
    """A list that gets an entry each time cpulayers' ``name`` runs (it still runs)."""
    return spy(monkeypatch, cpulayers, name)


def _raw(module, x, grad, need_x=True):
    """module(x) and the gradients autograd hands back for x (unless not ``need_x``) and
    the weight (if it requires one), before AccumulateGrad copies them to the parameter's
    layout (so layouts can be compared)."""
    x = x.detach().clone().requires_grad_(need_x)
    y = module(x)
    wrt = [t for t in (x, module.weight) if t.requires_grad]
    return (y.detach(), *torch.autograd.grad(y, wrt, grad))


def _graph(node):
    """The names of the autograd nodes behind ``node``."""
    names, todo, seen = set(), [node], []  # seen keeps the nodes alive, so ids stay unique
    while todo:
        node = todo.pop()
        if node is not None and all(node is not other for other in seen):
            seen.append(node)
            names.add(type(node).__name__)
            todo.extend(child for child, _ in node.next_functions)
    return names


def _same_layout(a, b):
    """The same strides, except along dimensions of size 1 (where strides mean nothing)."""
    return a.shape == b.shape and all(n == 1 or sa == sb for n, sa, sb in zip(a.shape, a.stride(), b.stride()))


def _close(got, want, rtol=1e-5, atol=1e-6):
    return all(torch.allclose(g, w, rtol=rtol, atol=atol) and _same_layout(g, w) for g, w in zip(got, want))


def _strided_pair(transposed, cin, cout, channels_last):
    """cpulayers' k=4, stride-2 layer and the stock one, with the same weights."""
    stock = (nn.ConvTranspose2d if transposed else nn.Conv2d)(cin, cout, 4, 2, 1, bias=False)
    layer = (cpulayers.ConvTranspose2d if transposed else cpulayers.Conv2d)(cin, cout, 4, 2, 1, bias=False)
    layer.load_state_dict(stock.state_dict())
    if channels_last:
        layer, stock = layer.to(memory_format=CL), stock.to(memory_format=CL)
    return layer, stock


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("small_side", [4, 8])
@pytest.mark.parametrize("layout", ["nchw", "channels_last", "channels_last, nchw gradient"])
@pytest.mark.parametrize("channels", [(12, 20), (3, 20), (20, 3)])
def test_strided_conv_gradients_are_the_stock_ones(monkeypatch, transposed, small_side, layout, channels):
    calls = _spy(monkeypatch, "small_side_weight_grad")
    phased = _spy(monkeypatch, "few_channel_conv_transpose")
    (cin, cout), n = channels, 6
    channels_last = layout.startswith("channels_last")
    layer, stock = _strided_pair(transposed, cin, cout, channels_last)
    side = small_side if transposed else 2 * small_side
    x = _input((n, cin, side, side), channels_last)
    out_side = 2 * small_side if transposed else small_side
    grad = _input((n, cout, out_side, out_side), layout == "channels_last", seed=2)
    got, want = _raw(layer, x, grad), _raw(stock, x, grad)
    assert _close(got[:2], want[:2])  # output and input gradient: values and layouts
    assert _close(got[2:], want[2:], rtol=1e-4, atol=1e-5)  # weight gradient (sums over more terms)
    assert len(calls) == (1 if small_side == 4 else 0)
    # few output channels: the forward pass (transposed) or the input gradient (conv) phased
    assert len(phased) == ((cout if transposed else cin) <= 4)
    x = x.clone().requires_grad_()
    layer(x).backward(grad)
    assert layer.weight.grad.stride() == layer.weight.stride()  # Adam sees matching layouts


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("small_side", [2, 4, 8])
@pytest.mark.parametrize("layout", ["channels_last", "channels_last, nchw gradient", "nchw"])
@pytest.mark.parametrize("needs", ["both", "input", "weight"])
def test_winograd_layers_are_the_stock_ones(monkeypatch, transposed, small_side, layout, needs):
    """With 64 channels or more, channels-last, the layers run winograd.py: the stock
    layers' outputs, gradients and layouts, only the gradients asked for."""
    ran = spy(monkeypatch, winograd, "input_grad" if transposed else "conv")
    wgrads = spy(monkeypatch, winograd, "weight_grad")
    (cin, cout), n = ((72, 64) if transposed else (64, 72)), 3
    channels_last = layout.startswith("channels_last")
    layer, stock = _strided_pair(transposed, cin, cout, channels_last)
    side, out_side = (small_side, 2 * small_side) if transposed else (2 * small_side, small_side)
    wide = 0 if transposed else 4  # conv: not square
    x = _input((n, cin, side, side + wide), channels_last)
    out_shape = (n, cout, out_side, out_side + wide // 2)
    grad = _input(out_shape, layout == "channels_last", seed=2)
    for module in (layer, stock):
        module.weight.requires_grad_(needs != "input")
    got, want = (_raw(module, x, grad, need_x=needs != "weight") for module in (layer, stock))
    assert got[0].shape == out_shape
    # sums of 1,000+ products in another order: float32 rounding of the largest terms
    assert all((g - w).abs().max() <= 1e-5 * w.abs().max() and _same_layout(g, w) for g, w in zip(got, want))
    assert len(ran) == channels_last
    assert len(wgrads) == (channels_last and needs != "input")


@pytest.mark.parametrize("transposed", [False, True])
def test_winograd_outputs_take_in_place_ops(transposed):
    """An activation in place straight after the layer (no batch norm between), as autograd
    allows for the stock layers."""
    cin, cout = (72, 64) if transposed else (64, 72)
    layer, stock = _strided_pair(transposed, cin, cout, channels_last=True)
    x = _input((2, cin, 8, 8), True)
    grads = []
    for module in (layer, stock):
        leaf = x.clone().requires_grad_()
        nn.LeakyReLU(0.2, inplace=True)(module(leaf)).sum().backward()
        grads.append(leaf.grad)
    assert (grads[0] - grads[1]).abs().max() <= 1e-5 * grads[1].abs().max()


def test_winograd_leaves_wrong_inputs_to_pytorchs_messages():
    layer, stock = _strided_pair(False, 64, 72, channels_last=True)
    x = _input((2, 65, 8, 8), True)  # one channel too many
    with pytest.raises(RuntimeError) as ours:
        layer(x)
    with pytest.raises(RuntimeError) as theirs:
        stock(x)
    assert str(ours.value) == str(theirs.value) and "65" in str(ours.value)


@pytest.mark.parametrize("channels", [1, 3, 4, 5])
@pytest.mark.parametrize("layouts", [(False, False), (True, True), (False, True), (True, False)])
def test_few_channel_transposed_conv_is_the_stock_one(channels, layouts):
    x = _input((3, 10, 5, 7), layouts[0])
    weight = _input((10, channels, 4, 4), layouts[1], seed=1)
    got = cpulayers.few_channel_conv_transpose(x, weight)
    want = torch.nn.functional.conv_transpose2d(x, weight, stride=2, padding=1)
    assert got.shape == want.shape == (3, channels, 10, 14)
    assert torch.allclose(got, want, rtol=1e-5, atol=2e-5)  # sums of 40 products, another order
    assert got.stride() == want.stride()


def test_odd_inputs_with_few_channels_use_onednn(monkeypatch):
    """A 9x9 input's gradient is 9x9; the phased transposed conv would give 8x8."""
    phased = _spy(monkeypatch, "few_channel_conv_transpose")
    stock = nn.Conv2d(3, 6, 4, 2, 1, bias=False)
    layer = cpulayers.Conv2d(3, 6, 4, 2, 1, bias=False)
    layer.load_state_dict(stock.state_dict())
    x = _input((2, 3, 9, 9), True)
    grad = _input((2, 6, 4, 4), True, seed=1)
    assert _close(_raw(layer, x, grad), _raw(stock, x, grad))
    assert phased == []


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dense_layers_are_the_stock_ones(transposed, channels_last):
    """G's first layer (1x1 -> 4x4) and D's last (4x4 -> 1x1) as matrix products, where the
    weights are channels-last; with NCHW weights the stock layers run."""
    if transposed:
        stock, shape = nn.ConvTranspose2d(10, 16, 4, 1, 0, bias=False), (5, 10, 1, 1)
        layer = cpulayers.DenseConvTranspose2d(10, 16, 4, 1, 0, bias=False)
    else:
        stock, shape = nn.Conv2d(16, 2, 4, 1, 0, bias=False), (5, 16, 4, 4)
        layer = cpulayers.DenseConv2d(16, 2, 4, 1, 0, bias=False)
    layer.load_state_dict(stock.state_dict())
    if channels_last:
        layer, stock = layer.to(memory_format=CL), stock.to(memory_format=CL)
    x = _input(shape, channels_last)
    grad = _input((5, *layer(x).shape[1:]), channels_last, seed=2)
    got, want = _raw(layer, x, grad), _raw(stock, x, grad)
    assert _close(got, want)
    nodes = _graph(layer(x.requires_grad_()).grad_fn)
    assert ("MmBackward0" in nodes) == channels_last and ("ConvolutionBackward0" in nodes) != channels_last
    bigger = _input((2, *shape[1:2], 6, 6), channels_last)  # not the kernel's size: the stock layer
    assert torch.allclose(layer(bigger), stock(bigger), rtol=1e-5, atol=1e-6)


def test_odd_inputs_that_also_give_4x4_use_onednn():
    """A 9x9 input also convolves to 4x4, but its weight gradient is not the 8x8 sum."""
    stock = nn.Conv2d(8, 6, 4, 2, 1, bias=False)
    layer = cpulayers.Conv2d(8, 6, 4, 2, 1, bias=False)
    layer.load_state_dict(stock.state_dict())
    x = _input((2, 8, 9, 9), True)
    layer(x).sum().backward()
    stock(x).sum().backward()
    assert torch.allclose(layer.weight.grad, stock.weight.grad, rtol=1e-5, atol=1e-6)


def test_no_weight_gradient_when_weights_are_frozen(monkeypatch):
    calls = _spy(monkeypatch, "small_side_weight_grad")
    layer = cpulayers.Conv2d(8, 16, 4, 2, 1, bias=False).requires_grad_(False)
    x = _input((2, 8, 8, 8), True).requires_grad_()
    layer(x).sum().backward()
    assert layer.weight.grad is None and calls == [] and x.grad is not None


@pytest.mark.parametrize("image_size", [16, 64])
def test_adopt_keeps_the_models_and_their_checkpoints(image_size):
    torch.manual_seed(0)
    g, d = Generator(image_size=image_size), Discriminator(image_size=image_size)
    g.apply(weights_init)
    d.apply(weights_init)
    before = {**{f"g.{k}": v.clone() for k, v in g.state_dict().items()},
              **{f"d.{k}": v.clone() for k, v in d.state_dict().items()}}
    blocks = image_size.bit_length() - 3  # stride-2 layers in each network: 4 -> 8 -> ... -> size
    assert cpulayers.adopt(g) == blocks + 1  # G's stride-2 transposed convs and its 1x1 -> 4x4 one
    assert cpulayers.adopt(d) == 2 * blocks + 1  # D's stride-2 convs, LeakyReLUs and 4x4 -> 1x1 conv
    after = {**{f"g.{k}": v for k, v in g.state_dict().items()},
             **{f"d.{k}": v for k, v in d.state_dict().items()}}
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert type(g.main[0]) is cpulayers.DenseConvTranspose2d and type(d.main[-2]) is cpulayers.DenseConv2d
    assert cpulayers.adopt(d) == 0  # idempotent
    reflect = nn.Conv2d(3, 8, 4, 2, 1, bias=False, padding_mode="reflect")
    assert cpulayers.adopt(nn.Sequential(reflect)) == 0  # only zero padding is the same maths
