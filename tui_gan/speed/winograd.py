"""Winograd's minimal filtering for the tutorial's k=4, stride-2, padding-1 convolutions.

A stride-2 convolution with a 4-tap kernel is, along each axis, two 2-tap stride-1
convolutions, one over the even input pixels (kernel taps 0 and 2) and one over the odd
ones (taps 1 and 3), summed. Winograd's F(2, 2) gives two outputs of a 2-tap convolution
from three products instead of four::

    y0 = g0 d0 + g1 d1 = (d0 - d1) g0 + d1 (g0 + g1)
    y1 = g0 d1 + g1 d2 = d1 (g0 + g1) + (d2 - d1) g1

so in 2D a 2x2 tile of outputs takes 9 products per phase pair where the direct sum takes
16. Here the products are 9 matrix products (one per product position, with the four
phase pairs and the input channels as their inner dimension, 4C), and the input, kernel
and output transforms around them are additions and subtractions of whole slices. The
weight gradient and the input gradient come out of the same transforms: each is the same
9 products with other operands, so all three passes of a layer do 9/16 of the
multiplications. The coefficients are 0 and +-1: no division, no growth of rounding
beyond a few additions.

Tensors are NHWC (the memory of a channels-last tensor, viewed with ``permute(0, 2, 3, 1)``).
A transposed convolution is the input gradient of the convolution with the same weight,
so :func:`input_grad` is also its forward pass and :func:`conv` its input gradient.

Shapes (T = tiles per axis, tile = 2x2 outputs of the convolution):

- ``x``: the convolution's input, ``[N, 4 Th, 4 Tw, C]``; ``y``: its output, ``[N, 2 Th, 2 Tw, O]``.
- ``V``: the input transform, ``[N, Th, Tw, 3, 3, 2, 2, C]`` (tile, product position, phase pair, channel).
- ``M``/``dM``: products and their gradient, ``[N, Th, Tw, 3, 3, O]``.
- ``U``: the kernel transform, ``[9, O, 4C]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The kernel transform per axis, taps (g0, g1) -> (g0, g0 + g1, g1); 2D: one matrix.
_G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
_G2 = torch.kron(_G, _G)  # [9, 4]: (xi, nu) x (kh, kw)


def applies(channels: int, outputs: int, out_h: int, out_w: int) -> bool:
    """Whether a convolution (``channels`` -> ``outputs``, output ``out_h x out_w``) can run
    here, and is worth it: even output sides, and enough channels for the products to run at
    a matrix product's speed: with 32 -> 64 channels the transforms, which move memory, made
    layers 0.8x as fast; the 3-channel layers at G's end and D's start stay oneDNN's."""
    return out_h % 2 == 0 and out_w % 2 == 0 and min(channels, outputs) >= 64


def kernel(weight: torch.Tensor, transpose: bool = False) -> torch.Tensor:
    """A conv weight ``[O, C, 4, 4]`` (a transposed conv's ``[in, out, 4, 4]`` is used as is:
    its input is the conv's output) -> ``U [9, O, 4C]``, the 4C ordered (row phase,
    column phase, channel) as in ``V``; with ``transpose``, ``[9, 4C, O]``."""
    o, c = weight.shape[:2]
    # [o, (kh, rh), (kw, rw), c] with tap = 2 k + r: the phase r is the tap's parity
    taps = weight.permute(0, 2, 3, 1).reshape(o, 2, 2, 2, 2, c)
    taps = taps.permute(1, 3, 2, 4, 5, 0) if transpose else taps.permute(1, 3, 0, 2, 4, 5)
    u = _G2.to(weight) @ taps.reshape(4, -1)
    return u.view(9, 4 * c, o) if transpose else u.view(9, o, 4 * c)


def kernel_grad(grad_u: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`kernel`: ``dU [9, O, 4C]`` -> the weight's gradient, in the
    weight's shape and laid out channels-last."""
    o, c = weight.shape[:2]
    taps = (_G2.to(grad_u).t() @ grad_u.reshape(9, -1)).view(2, 2, o, 2, 2, c)  # [kh, kw, o, rh, rw, c]
    return taps.permute(2, 0, 3, 1, 4, 5).reshape(o, 4, 4, c).permute(0, 3, 1, 2)


def input_transform(x: torch.Tensor) -> torch.Tensor:
    """``x [N, H, W, C]`` -> ``V``. With the input padded by 1, padded row ``4t + 2i + r``
    is tile t's input i (0-2) in phase r; per axis ``(d0, d1, d2) -> (d0 - d1, d1, d2 - d1)``.
    Rows first, into ``[N, Th, 3, 2, W + 4, C]`` (the padding written here, not copied in
    first), then columns, three product positions at a time."""
    n, h, w, c = x.shape
    th, tw = h // 4, w // 4
    rows = x.view(n, th, 4, w, c)  # x row 4t + j is padded row 4t + j + 1
    by_rows = x.new_empty(n, th, 3, 2, w + 4, c)
    by_rows[..., 0, :] = 0
    by_rows[..., w + 1 :, :] = 0
    inner = by_rows[..., 1 : w + 1, :]
    # i = 0: d0 - d1; phase 0 is x rows (4t - 1) - (4t + 1), phase 1 (4t) - (4t + 2)
    torch.neg(rows[:, 0, 1], out=inner[:, 0, 0, 0])
    torch.sub(rows[:, :-1, 3], rows[:, 1:, 1], out=inner[:, 1:, 0, 0])
    torch.sub(rows[:, :, 0], rows[:, :, 2], out=inner[:, :, 0, 1])
    inner[:, :, 1] = rows[:, :, 1:3]  # i = 1: d1, rows 4t + 1 and 4t + 2
    # i = 2: d2 - d1; phase 0 is rows (4t + 3) - (4t + 1), phase 1 (4t + 4) - (4t + 2)
    torch.sub(rows[:, :, 3], rows[:, :, 1], out=inner[:, :, 2, 0])
    torch.sub(rows[:, 1:, 0], rows[:, :-1, 2], out=inner[:, :-1, 2, 1])
    torch.neg(rows[:, -1, 2], out=inner[:, -1, 2, 1])
    cols = by_rows.view(n, th, 3, 2, tw + 1, 4, c)
    e0, e1, e2 = cols[..., :tw, 0:2, :], cols[..., :tw, 2:4, :], cols[..., 1:, 0:2, :]
    v = x.new_empty(n, th, tw, 3, 3, 2, 2, c)
    slabs = v.permute(4, 0, 1, 3, 5, 2, 6, 7)  # [nu][n, th, xi, rh, tw, rw, c], a view
    torch.sub(e0, e1, out=slabs[0])
    slabs[1].copy_(e1)
    torch.sub(e2, e1, out=slabs[2])
    return v


def _input_transform_adjoint(grad_v: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The adjoint of :func:`input_transform`: ``dV`` -> ``dx [N, H, W, C]``. Per axis
    ``(v0, v1, v2) -> (v0, v1 - v0 - v2, v2)``, where a tile's d2 is the next tile's d0."""
    n, th, tw = grad_v.shape[:3]
    c = grad_v.shape[-1]
    v0, v1, v2 = grad_v.permute(4, 0, 1, 3, 5, 2, 6, 7)  # [n, th, xi, rh, tw, rw, c] each
    by_rows = grad_v.new_empty(n, th, 3, 2, tw + 1, 4, c)  # gradient of the row-transformed input
    by_rows[..., 0, 0:2, :] = v0[..., 0, :, :]
    torch.add(v0[..., 1:, :, :], v2[..., :-1, :, :], out=by_rows[..., 1:tw, 0:2, :])
    by_rows[..., tw, 0:2, :] = v2[..., tw - 1, :, :]
    by_rows[..., tw, 2:4, :] = 0
    torch.sub(v1, v0, out=by_rows[..., :tw, 2:4, :]).sub_(v2)
    a0, a1, a2 = by_rows.view(n, th, 3, 2, w + 4, c)[..., 1 : w + 1, :].unbind(2)  # [n, th, 2, w, c]
    dx = grad_v.new_empty(n, h, w, c)
    rows = dx.view(n, th, 4, w, c)  # x row 4t + j is padded row 4t + j + 1
    rows[:, 0, 0] = a0[:, 0, 1]
    torch.add(a0[:, 1:, 1], a2[:, :-1, 1], out=rows[:, 1:, 0])
    torch.sub(a1, a0, out=rows[:, :, 1:3]).sub_(a2)
    torch.add(a0[:, 1:, 0], a2[:, :-1, 0], out=rows[:, :-1, 3])
    rows[:, th - 1, 3] = a2[:, th - 1, 0]
    return dx


def _output_transform(m: torch.Tensor) -> torch.Tensor:
    """``M [N, Th, Tw, 3, 3, O]`` -> ``y [N, 2 Th, 2 Tw, O]``; per axis ``(m0 + m1, m1 + m2)``."""
    n, th, tw, _, _, o = m.shape
    by_rows = torch.add(m[:, :, :, 0:2], m[:, :, :, 1:3])  # [n, th, tw, 2, 3, o]
    y = m.new_empty(n, th, 2, tw, 2, o)
    torch.add(by_rows[..., 0:2, :], by_rows[..., 1:3, :], out=y.permute(0, 1, 3, 2, 4, 5))
    return y.view(n, 2 * th, 2 * tw, o)


def output_grad_transform(grad_y: torch.Tensor) -> torch.Tensor:
    """The adjoint of :func:`_output_transform`: ``dy [N, 2 Th, 2 Tw, O]`` -> ``dM``; per
    axis ``(d0, d1) -> (d0, d0 + d1, d1)``."""
    n, h, w, o = grad_y.shape
    tiles = grad_y.view(n, h // 2, 2, w // 2, 2, o).permute(0, 1, 3, 2, 4, 5)  # [n, th, tw, a, b, o]
    by_rows = grad_y.new_empty(n, h // 2, w // 2, 3, 2, o)
    by_rows[:, :, :, 0:3:2] = tiles
    torch.add(tiles[:, :, :, 0], tiles[:, :, :, 1], out=by_rows[:, :, :, 1])
    dm = grad_y.new_empty(n, h // 2, w // 2, 3, 3, o)
    dm[..., 0:3:2, :] = by_rows
    torch.add(by_rows[..., 0, :], by_rows[..., 1, :], out=dm[..., 1, :])
    return dm


def _pixels_as_image(t: torch.Tensor, channels: int) -> torch.Tensor:
    """A ``[P, channels]`` matrix as a channels-last ``[1, channels, P, 1]`` image (a view)."""
    return t.reshape(1, -1, 1, channels).permute(0, 3, 1, 2)


def _products(rows: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The 9 matrix products of every tile's ``rows`` (``[..., 9, K]``) with ``u[i].T``
    (``u``: ``[9, O, K]``) -> ``[P, 9 O]``, as a grouped 1x1 convolution: oneDNN runs it at
    90-130 GFLOP/s on the test CPU, where ``torch.bmm`` on these shapes gave 55-130."""
    groups, o, k = u.shape
    out = F.conv2d(_pixels_as_image(rows, groups * k), u.reshape(groups * o, k, 1, 1), groups=groups)
    return out.permute(0, 2, 3, 1)  # [1, P, 1, 9 o], contiguous


def conv(x: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """conv2d(x, weight, stride=2, padding=1) for ``u = kernel(weight)``, on NHWC ``x``
    ``[N, H, W, C]`` with H and W multiples of 4. Returns the NHWC output and ``V`` (for
    :func:`weight_grad`)."""
    n, h, w, _ = x.shape
    v = input_transform(x)
    m = _products(v, u).view(n, h // 4, w // 4, 3, 3, u.shape[1])
    return _output_transform(m), v


def input_grad(grad_y: torch.Tensor, u_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The convolution's input gradient for NHWC ``grad_y`` ``[N, h, w, O]`` (h, w even)
    and ``u_t = kernel(weight, transpose=True)``; it is also conv_transpose2d(grad_y,
    weight, stride=2, padding=1). Returns it (NHWC, ``[N, 2h, 2w, C]``) and ``dM`` (for
    :func:`weight_grad`)."""
    n, h, w, _ = grad_y.shape
    dm = output_grad_transform(grad_y)
    dv = _products(dm, u_t).view(n, h // 2, w // 2, 3, 3, 2, 2, u_t.shape[1] // 4)
    return _input_transform_adjoint(dv, 2 * h, 2 * w), dm


def weight_grad(dm: torch.Tensor, v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The weight gradient, ``sum over tiles of dM[i].T @ V[i]``, back through the kernel
    transform; channels-last, in ``weight``'s shape."""
    o, k = dm.shape[-1], v.shape[-1] * 4
    grad_u = torch.bmm(dm.reshape(-1, 9, o).permute(1, 2, 0), v.reshape(-1, 9, k).transpose(0, 1))
    return kernel_grad(grad_u, weight)
