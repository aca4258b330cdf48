"""Faster CPU backward passes for the tutorial's layers in channels-last layout.

Two slow paths in PyTorch's CPU kernels cost the engine about a tenth of each step:

- ``leaky_relu_backward`` on channels-last tensors runs about 6x slower than on the same
  memory viewed as contiguous NHWC (D's first LeakyReLU: ~30 ms against ~4 ms per call at
  batch 128, 64x64). The backward here computes it on that NHWC view.
- oneDNN's weight gradient for a 4x4, stride-2 convolution whose small side is 4x4 pixels
  (D's last stride-2 conv, G's first stride-2 transposed conv) uses an older kernel: ~125 ms
  at batch 128, 256->512 channels, for a pass that costs ~60 ms forward. The same sum is a
  forward convolution: with batch and channels swapped, the big side convolved by the small
  side dilated by 2 (the stride) gives the 4x4 gradient directly, in ~73 ms. Where the small
  side is 8x8 or more this is slower than oneDNN, so it is used only at 4x4.

The maths is the tutorial's: the same sums in another order (a test compares gradients with
the stock layers). :func:`adopt` swaps these layers into a model in place; parameters,
buffers and ``state_dict`` keys stay as they were, so checkpoints are unaffected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

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
    big_t = big.transpose(0, 1).contiguous(memory_format=_CL)  # [B, N, H, W]: batch <-> channels
    return F.conv2d(big_t, small.transpose(0, 1), padding=1, dilation=2).transpose(0, 1)


def _uses_small_side(big: torch.Tensor, small: torch.Tensor) -> bool:
    """Where the dilated form was measured faster: 8x8 <-> 4x4 (odd sizes map to 4x4 too)."""
    return small.shape[-2:] == (4, 4) and big.shape[-2:] == (8, 8)


class _StridedConv(torch.autograd.Function):
    """conv2d / conv_transpose2d with k=4, stride 2, padding 1; no bias."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, transposed: bool) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.transposed = transposed
        if transposed:
            return F.conv_transpose2d(x, weight, stride=2, padding=1)
        return F.conv2d(x, weight, stride=2, padding=1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        big, small = (grad, x) if ctx.transposed else (x, grad)
        fast_w = need_w and _uses_small_side(big, small)
        grad_x, grad_w, _ = _aten.convolution_backward(
            grad, x, weight, None, [2, 2], [1, 1], [1, 1], ctx.transposed, [0, 0], 1,
            [need_x, need_w and not fast_w, False])
        if fast_w:
            grad_w = small_side_weight_grad(big, small)
            grad_w = grad_w.contiguous(memory_format=_CL if _channels_last(weight) else torch.contiguous_format)
        return grad_x, grad_w, None


def _is_strided_k4(m: nn.Module) -> bool:
    return (m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1)
            and m.dilation == (1, 1) and m.groups == 1 and m.bias is None and m.padding_mode == "zeros"
            and getattr(m, "output_padding", (0, 0)) == (0, 0))


class Conv2d(nn.Conv2d):
    """nn.Conv2d (k=4, stride 2, padding 1, no bias) with the 4x4 weight gradient above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _StridedConv.apply(x, self.weight, False)


class ConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (k=4, stride 2, padding 1, no bias) with the 4x4 weight gradient."""

    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        if output_size is not None:
            return super().forward(x, output_size)
        return _StridedConv.apply(x, self.weight, True)


_SWAPS = ((nn.ConvTranspose2d, ConvTranspose2d, _is_strided_k4), (nn.Conv2d, Conv2d, _is_strided_k4),
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
