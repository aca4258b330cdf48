"""Faster CPU kernels for the tutorial's layers in channels-last layout.

- The k=4, stride-2 (transposed) convolutions with 64 channels or more on both sides run
  :mod:`winograd`: the same sums with 9/16 of the multiplications, as 9 matrix products
  between additions. At the tutorial's config these layers were about 85% of a step; all three
  passes (forward, input and weight gradients) of D's 128 -> 256 conv take ~155 against
  ~220 ms at batch 128, and oneDNN's weight gradients, its slowest pass, ~55 against
  ~115 ms.

Below 64 channels the transforms, which move memory, cost more than the multiplications
they save (32 -> 64 channels: 0.8x). There, and in layers too small for tiles, four slow
paths in PyTorch's CPU kernels are routed around:

- ``leaky_relu_backward`` on channels-last tensors runs about 6x slower than on the same
  memory viewed as contiguous NHWC (D's first LeakyReLU: ~30 ms against ~4 ms per call at
  batch 128, 64x64). The backward here computes it on that NHWC view.
- oneDNN's weight gradient for a 4x4, stride-2 convolution whose small side is 4x4 pixels
  (D's last stride-2 conv, G's first stride-2 transposed conv) uses an older kernel: ~125 ms
  at batch 128, 256->512 channels, for a pass that costs ~60 ms forward. The same sum is a
  forward convolution: with batch and channels swapped, the big side convolved by the small
  side dilated by 2 (the stride) gives the 4x4 gradient directly, in ~73 ms. Where the small
  side is 8x8 or more this ties with oneDNN or loses, so it is used only at 4x4.
- oneDNN's transposed convolution to 1-4 channels (G's last layer; the input gradient of
  D's first conv is the same operation) runs at a third of its usual speed: ~31 ms per call
  in a training step at batch 128, 64 -> 3 channels, 64x64. Split by output phase (even or
  odd row and column) it is one stride-1, 2x2 convolution to 4 x channels (padded to a
  multiple of 8), then the phases interleaved: ~12 ms.
- The layers whose kernel covers their whole input (G's first, 1x1 -> 4x4, and D's last,
  4x4 -> 1x1) are matrix products; as convolutions they take 3-5x as long (G's first: ~27
  against ~9 ms forward and backward).

The maths is the tutorial's: the same sums in another order (a test compares gradients with
the stock layers). :func:`adopt` swaps these layers into a model in place; parameters,
buffers and ``state_dict`` keys stay as they were, so checkpoints are unaffected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from . import winograd

_aten = torch.ops.aten
_CL = torch.channels_last


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1)


def _channels_last(t: torch.Tensor) -> bool:
    """Laid out channels-last (and not also plain contiguous, as when C or H*W is 1)."""
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=_CL)


class _LeakyReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: float) -> torch.Tensor:
        y = F.leaky_relu_(x, slope)  # in place, as the tutorial's LeakyReLU(0.2, inplace=True)
        ctx.mark_dirty(x)
        ctx.save_for_backward(y)
        ctx.slope = slope
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (y,) = ctx.saved_tensors
        if _channels_last(y) and grad.is_contiguous(memory_format=_CL):
            return _aten.leaky_relu_backward(_nhwc(grad), _nhwc(y), ctx.slope, True).permute(0, 3, 1, 2), None
        return _aten.leaky_relu_backward(grad, y, ctx.slope, True), None


class LeakyReLU(nn.LeakyReLU):
    """nn.LeakyReLU (in place) with the channels-last backward on an NHWC view."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.inplace or not x.requires_grad:
            return super().forward(x)
        return _LeakyReLU.apply(x, self.negative_slope)


def small_side_weight_grad(big: torch.Tensor, small: torch.Tensor) -> torch.Tensor:
    """The weight gradient of a k=4, stride-2, padding-1 (transposed) convolution.

    For a convolution, ``big`` is its input and ``small`` the gradient of its output; for a
    transposed convolution, ``big`` is the gradient of its output and ``small`` its input.
    Returns ``[small channels, big channels, 4, 4]``: the weight's shape in both cases.
    ``grad[s, b, i, j] = sum_{n,y,x} small[n, s, y, x] * big_padded[n, b, 2y + i, 2x + j]``
    """
    # batch <-> channels: the input is [B, N, H, W], the weight [S, N, h, w], the result [B, S, 4, 4]
    return _swap01(F.conv2d(_swap01(big), _swap01(small), padding=1, dilation=2))


def _swap01(t: torch.Tensor) -> torch.Tensor:
    """``t.transpose(0, 1)`` laid out channels-last, for a channels-last ``t``.

    In two copies, a 2D transpose and a move of whole rows, which together take 55-80% of
    the time of PyTorch's copy of the 4D permutation ([128, 256, 8, 8]: 5.1 against 6.5 ms).
    """
    if not _channels_last(t):
        return t.transpose(0, 1).contiguous(memory_format=_CL)
    a, b, h, w = t.shape
    rows = _nhwc(t).reshape(a, h * w * b).t().contiguous()  # [(h, w, b), a]
    moved = rows.view(h * w, b, a).transpose(0, 1).contiguous()  # [b, (h, w), a]
    return moved.view(b, h, w, a).permute(0, 3, 1, 2)


def _uses_small_side(big: torch.Tensor, small: torch.Tensor) -> bool:
    """Where the dilated form was measured faster: 8x8 <-> 4x4 (odd sizes map to 4x4 too)."""
    return small.shape[-2:] == (4, 4) and big.shape[-2:] == (8, 8)


_TAPS = torch.tensor([[3, 1], [2, 0]])  # [phase, offset] -> kernel tap; see few_channel_conv_transpose


def _few_channels(channels: int) -> bool:
    return channels <= 4


def few_channel_conv_transpose(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """conv_transpose2d(x, weight, stride=2, padding=1) for a k=4 weight with few outputs.

    Output row ``2m + a`` (phase ``a``) sums input rows ``m - 1 + a + d``, ``d`` in {0, 1},
    with kernel row ``3 - a - 2d``; the same for columns (``2q + b``). So a 2x2 convolution
    of the input padded by 1 gives every phase at once, ``[n, (c, a, b), m + a, q + b]``,
    and the output is those phases interleaved. The output is channels-last where ``x`` or
    ``weight`` is, as PyTorch's own convolutions choose.
    """
    n, _, h, w = x.shape
    c = weight.shape[1]
    kernel = weight[:, :, _TAPS][:, :, :, :, _TAPS]  # [in, c, a, d, b, e]
    kernel = kernel.permute(1, 2, 4, 0, 3, 5).reshape(4 * c, weight.shape[0], 2, 2)
    pad = -(4 * c) % 8  # oneDNN is faster at a multiple of 8 output channels (16 vs 12: ~20 vs ~25 ms)
    if pad:
        kernel = torch.cat([kernel, kernel.new_zeros(pad, *kernel.shape[1:])])
    layout = _CL if _channels_last(x) or _channels_last(weight) else torch.contiguous_format
    phases = F.conv2d(x.contiguous(memory_format=layout), kernel.contiguous(memory_format=layout),
                      padding=1)  # [n, 4c + pad, h + 1, w + 1]
    phases = _nhwc(phases)[..., : 4 * c].unflatten(3, (c, 2, 2))
    out = torch.empty((n, c, 2 * h, 2 * w), dtype=x.dtype, device=x.device, memory_format=layout)
    interleaved = _nhwc(out).unflatten(1, (h, 2)).unflatten(3, (w, 2))  # [n, m, a, q, b, c], a view
    for a in (0, 1):
        for b in (0, 1):
            interleaved[:, :, a, :, b, :] = phases[:, a : a + h, b : b + w, :, a, b]
    return out


class _StridedConv(torch.autograd.Function):
    """conv2d / conv_transpose2d with k=4, stride 2, padding 1; no bias."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, transposed: bool) -> torch.Tensor:
        ctx.transposed = transposed
        ctx.winograd = _uses_winograd(x, weight, transposed)
        if ctx.winograd:
            # A transposed conv is the input gradient of the conv with the same weight.
            if transposed:
                out, saved = winograd.input_grad(_nhwc(x), winograd.kernel(weight, transpose=True))
            else:
                out, saved = winograd.conv(_nhwc(x), winograd.kernel(weight))
            # dM (transposed) or V of the input, for the weight gradient
            ctx.save_for_backward(weight, saved if ctx.needs_input_grad[1] else None)
            # detach: the same memory, not a view of a tensor made here, which autograd
            # would refuse to let an in-place op (ReLU(inplace=True)) modify
            return out.permute(0, 3, 1, 2).detach()
        ctx.save_for_backward(x, weight)
        if transposed:
            if _few_channels(weight.shape[1]):
                return few_channel_conv_transpose(x, weight)
            return F.conv_transpose2d(x, weight, stride=2, padding=1)
        return F.conv2d(x, weight, stride=2, padding=1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        if ctx.winograd:
            return (*_winograd_backward(ctx, grad), None)
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        big, small = (grad, x) if ctx.transposed else (x, grad)
        fast_w = need_w and _uses_small_side(big, small)
        # A conv's input gradient is a transposed conv of the gradient with the same weight.
        fast_x = (need_x and not ctx.transposed and _few_channels(weight.shape[1])
                  and x.shape[-2:] == (2 * grad.shape[-2], 2 * grad.shape[-1]))
        grad_x, grad_w, _ = _aten.convolution_backward(
            grad, x, weight, None, [2, 2], [1, 1], [1, 1], ctx.transposed, [0, 0], 1,
            [need_x and not fast_x, need_w and not fast_w, False])
        if fast_x:
            grad_x = few_channel_conv_transpose(grad, weight)
        if fast_w:
            grad_w = small_side_weight_grad(big, small)
            grad_w = grad_w.contiguous(memory_format=_CL if _channels_last(weight) else torch.contiguous_format)
        return grad_x, grad_w, None


def _uses_winograd(x: torch.Tensor, weight: torch.Tensor, transposed: bool) -> bool:
    """Channels-last input and weight on the CPU, and a layer :func:`winograd.applies` to
    (anything else, such as a wrong number of input channels, goes to PyTorch's layer and
    its error messages)."""
    if not (_channels_last(x) and _channels_last(weight) and x.device.type == "cpu"
            and x.dtype == weight.dtype and x.shape[1] == weight.shape[0 if transposed else 1]):
        return False
    h, w = x.shape[-2:]
    out_h, out_w = (h, w) if transposed else (h // 2, w // 2)  # the conv's output (a transposed conv's input)
    if not transposed and (h % 2 or w % 2):  # an odd side also gives h // 2, with other sums
        return False
    return winograd.applies(weight.shape[1], weight.shape[0], out_h, out_w)


def _winograd_backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The input and weight gradients of a layer whose forward pass ran in winograd.py."""
    weight, saved = ctx.saved_tensors
    need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
    grad = _nhwc(grad.contiguous(memory_format=_CL))
    grad_x = grad_w = None
    if ctx.transposed:  # saved: dM of its input; the input gradient is the conv of grad
        if need_x:
            grad_x, v = winograd.conv(grad, winograd.kernel(weight))
            grad_x = grad_x.permute(0, 3, 1, 2)
        elif need_w:
            v = winograd.input_transform(grad)
        if need_w:
            grad_w = winograd.weight_grad(saved, v, weight)
    else:  # saved: V of its input
        if need_x:
            grad_x, dm = winograd.input_grad(grad, winograd.kernel(weight, transpose=True))
            grad_x = grad_x.permute(0, 3, 1, 2)
        elif need_w:
            dm = winograd.output_grad_transform(grad)
        if need_w:
            grad_w = winograd.weight_grad(dm, saved, weight)
    return grad_x, grad_w


def _flat(t: torch.Tensor) -> torch.Tensor:
    """[n, c, h, w] -> [n, h * w * c], in the order channels-last memory has (a view there)."""
    return _nhwc(t).reshape(t.shape[0], -1)


class DenseConv2d(nn.Conv2d):
    """nn.Conv2d (stride 1, no padding) whose kernel covers its input: a matrix product, in
    channels-last order (with NCHW weights, the stock layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != self.kernel_size or not _channels_last(self.weight):
            return super().forward(x)
        return (_flat(x) @ _flat(self.weight).t()).view(x.shape[0], -1, 1, 1)


class DenseConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (stride 1, no padding) on a 1x1 input: a matrix product, in
    channels-last order (with NCHW weights, the stock layer)."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None or x.dim() != 4 or x.shape[-2:] != (1, 1) or not _channels_last(self.weight):
            return super().forward(x, output_size)
        kh, kw = self.kernel_size
        out = x.reshape(x.shape[0], -1) @ _flat(self.weight)  # [n, kh * kw * out channels]
        return out.view(x.shape[0], kh, kw, -1).permute(0, 3, 1, 2)  # channels-last


def _is_plain(m: nn.Module) -> bool:
    """No dilation, groups, bias or output padding, and zero padding: the maths the layers here do."""
    return (m.dilation == (1, 1) and m.groups == 1 and m.bias is None and m.padding_mode == "zeros"
            and getattr(m, "output_padding", (0, 0)) == (0, 0))


def _is_dense(m: nn.Module) -> bool:
    return _is_plain(m) and m.stride == (1, 1) and m.padding == (0, 0)


def _is_strided_k4(m: nn.Module) -> bool:
    return _is_plain(m) and m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1)


class Conv2d(nn.Conv2d):
    """nn.Conv2d (k=4, stride 2, padding 1, no bias) with the 4x4 weight gradient above,
    and the phased input gradient where the input has few channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _StridedConv.apply(x, self.weight, False)


class ConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (k=4, stride 2, padding 1, no bias) with the 4x4 weight gradient,
    and the phased forward pass where the output has few channels."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None:
            return super().forward(x, output_size)
        return _StridedConv.apply(x, self.weight, True)


_SWAPS = ((nn.ConvTranspose2d, ConvTranspose2d, _is_strided_k4), (nn.Conv2d, Conv2d, _is_strided_k4),
          (nn.ConvTranspose2d, DenseConvTranspose2d, _is_dense), (nn.Conv2d, DenseConv2d, _is_dense),
          (nn.LeakyReLU, LeakyReLU, lambda m: m.inplace))


def adopt(model: nn.Module) -> int:
    """Swap the layers above into ``model`` in place; returns how many were swapped.

    Only the class changes: parameters, buffers, hooks and ``state_dict`` keys stay."""
    swapped = 0
    for module in model.modules():
        for stock, fast, applies in _SWAPS:
            if type(module) is stock and applies(module):
                module.__class__ = fast
                swapped += 1
                break
    return swapped
