"""Simulated bf16 autocast for tui_gan's DCGAN, at fp32 speed.

What torch.autocast("cpu"/"cuda", dtype=bfloat16) does to this model (checked op by op with
a TorchDispatchMode on torch 2.14, see validate.py):

- conv2d / conv_transpose2d: inputs and weights cast to bf16, fp32 accumulation, bf16 output.
  Backward: grad_output bf16, grad_input bf16, grad_weight bf16, then cast (exactly) to the
  fp32 master weight's grad.
- BatchNorm: not cast by autocast; native_batch_norm runs mixed (bf16 input, fp32 weight,
  bias and running stats), statistics in fp32, output bf16. Backward: grad_input bf16,
  grad_weight/grad_bias fp32.
- ReLU / LeakyReLU / Tanh: on bf16 tensors, computed in fp32 (opmath), output rounded to bf16;
  their backward ops take bf16 grads and the bf16 saved output, and return bf16.
- D's logits are cast to fp32 for BCEWithLogits (autocast's fp32 list); its gradient is rounded
  to bf16 by that cast's backward.
- Adam updates fp32 master weights.

Here every one of those bf16 tensors is an fp32 tensor rounded to the nearest bf16 (round to
nearest even: ``t.to(bfloat16).to(float32)``), and every fp32 accumulation is an fp32 op on
the rounded values. Only inside ``enabled()``; outside, the layers are the stock fp32 ones
(so generate()/SWD run in fp32, as the app's quality probe does outside autocast).

``mode="thnn"`` additionally mimics this AVX2 CPU's real bf16 kernels (no oneDNN bf16 here;
torch falls back to the THNN slow_conv2d / slow_conv_transpose2d im2col+gemm kernels): their
weight gradients are summed over the batch in bf16, rounding after each sample, and their
col2im (conv input-gradient, transposed-conv forward) sums overlapping kernel taps in bf16.
That mode is for validating the simulation against real autocast on this machine; the
default mode ("fp32acc") is what oneDNN (AMX / AVX512-BF16 CPUs) and cuDNN do.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import Function

_aten = torch.ops.aten
_STATE = {"on": False, "mode": "fp32acc"}


def rnd(t: torch.Tensor) -> torch.Tensor:
    """Round an fp32 tensor to the nearest bf16 (ties to even), kept as fp32."""
    return t.to(torch.bfloat16).to(torch.float32)


@contextlib.contextmanager
def enabled(on: bool = True, mode: str = "fp32acc"):
    """The simulated autocast region (``on=False``: a no-op, the fp32 path)."""
    old = dict(_STATE)
    _STATE.update(on=on, mode=mode)
    try:
        yield
    finally:
        _STATE.update(old)


class _Round(Function):
    """bf16 tensor boundary: rounds the value forward and its gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return rnd(x)

    @staticmethod
    def backward(ctx, g):
        return rnd(g)


class _Tanh(Function):
    """tanh on a bf16 tensor: rounded output; backward g*(1-y^2) with the bf16 y, rounded."""

    @staticmethod
    def forward(ctx, x):
        y = rnd(torch.tanh(rnd(x)))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return rnd(_aten.tanh_backward(rnd(g), y))


# ------------------------------------------------------------------ THNN-kernel rounding

def _col2im_bf16(cols: torch.Tensor, out_hw, k: int, stride: int, padding: int, reverse: bool) -> torch.Tensor:
    """F.fold of (N, C*k*k, L) columns, but summing the k*k taps in bf16 in THNN's order
    (channel-major, then kh, kw), rounding after each add."""
    n, ckk, L = cols.shape
    c = ckk // (k * k)
    cols = cols.view(n, c, k * k, L)
    acc = None
    taps = range(k * k - 1, -1, -1) if reverse else range(k * k)
    for tap in taps:
        one = torch.zeros(n, c, k * k, L, dtype=cols.dtype)
        one[:, :, tap] = cols[:, :, tap]
        part = F.fold(one.view(n, ckk, L), out_hw, k, stride=stride, padding=padding)
        acc = part if acc is None else rnd(acc + part)
    return acc


def _per_sample_bf16_sum(per_sample: torch.Tensor) -> torch.Tensor:
    """THNN's weight gradient: per-sample fp32 gemms added into a bf16 buffer one by one."""
    acc = torch.zeros(per_sample.shape[1:], dtype=torch.bfloat16)
    for g in per_sample:
        acc = (acc.float() + g).to(torch.bfloat16)
    return acc.float()


def _thnn_conv_weight_grad(x, gy, w_shape, k, stride, padding, transposed):
    """Per-sample weight gradients of a (transposed) conv, summed in bf16 over the batch."""
    if transposed:  # convT(x) weight (Cin, Cout, k, k): x plays grad_output of a conv of gy
        cols = F.unfold(gy, k, stride=stride, padding=padding)          # (N, Cout*k*k, L)
        per = torch.einsum("nil,njl->nij", x.flatten(2), cols)          # (N, Cin, Cout*k*k)
    else:
        cols = F.unfold(x, k, stride=stride, padding=padding)           # (N, Cin*k*k, L)
        per = torch.einsum("nol,nil->noi", gy.flatten(2), cols)         # (N, Cout, Cin*k*k)
    return _per_sample_bf16_sum(per).view(w_shape)


def _thnn_col2im_op(inp, w, out_hw, k, stride, padding, conv_weight_cin_first, reverse):
    """col2im-based op (conv input-gradient / transposed-conv forward), THNN-style:
    columns = W^T-gemm rounded to bf16, then bf16 col2im."""
    if conv_weight_cin_first:  # convT weight (Cin, Cout, k, k); inp has Cin channels
        wm = w.flatten(1)                                      # (Cin, Cout*k*k)
    else:  # conv weight (Cout, Cin, k, k); inp (grad) has Cout channels
        wm = w.flatten(1)                                      # (Cout, Cin*k*k)
    cols = torch.einsum("ij,nil->njl", wm, inp.flatten(2))     # (N, C*k*k, L)
    return _col2im_bf16(rnd(cols), out_hw, k, stride, padding, reverse)


class _Conv(Function):
    """A (transposed) conv under bf16 autocast."""

    @staticmethod
    def forward(ctx, x, w, stride, padding, transposed):
        xr, wr = rnd(x), rnd(w)
        k = w.shape[-1]
        thnn = _STATE["mode"] in ("thnn", "thnn-cl")
        rev = _STATE["mode"] == "thnn-cl"
        if thnn and transposed:
            hw = ((x.shape[2] - 1) * stride - 2 * padding + k, (x.shape[3] - 1) * stride - 2 * padding + k)
            y = _thnn_col2im_op(xr, wr, hw, k, stride, padding, True, rev)
        else:
            y = _aten.convolution(xr, wr, None, [stride] * 2, [padding] * 2, [1, 1], transposed, [0, 0], 1)
        ctx.save_for_backward(xr, wr)
        ctx.cfg = (stride, padding, transposed, k, thnn, rev)
        return rnd(y)

    @staticmethod
    def backward(ctx, gy):
        xr, wr = ctx.saved_tensors
        stride, padding, transposed, k, thnn, rev = ctx.cfg
        gy = rnd(gy)
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        gx = gw = None
        if not thnn:
            gx, gw, _ = _aten.convolution_backward(
                gy, xr, wr, None, [stride] * 2, [padding] * 2, [1, 1], transposed, [0, 0], 1, [need_x, need_w, False])
        else:
            if need_x:
                if transposed:  # input grad of convT = a plain conv (im2col+gemm, fp32 acc)
                    gx = F.conv2d(gy, wr, stride=stride, padding=padding)
                else:
                    gx = _thnn_col2im_op(gy, wr, tuple(xr.shape[2:]), k, stride, padding, False, rev)
            if need_w:
                gw = _thnn_conv_weight_grad(xr, gy, wr.shape, k, stride, padding, transposed)
        return (rnd(gx) if gx is not None else None, rnd(gw) if gw is not None else None, None, None, None)


# ------------------------------------------------------------------ drop-in layers

class SimConv2d(nn.Conv2d):
    def forward(self, x):
        if not _STATE["on"]:
            return super().forward(x)
        assert self.bias is None and self.groups == 1 and self.dilation == (1, 1)
        return _Conv.apply(x, self.weight, self.stride[0], self.padding[0], False)


class SimConvTranspose2d(nn.ConvTranspose2d):
    def forward(self, x, output_size=None):
        if not _STATE["on"]:
            return super().forward(x, output_size)
        assert self.bias is None and self.groups == 1 and self.output_padding == (0, 0)
        return _Conv.apply(x, self.weight, self.stride[0], self.padding[0], True)


class SimBatchNorm2d(nn.BatchNorm2d):
    """Mixed-precision BN: fp32 maths on the (already bf16) input, bf16 output; the rounding
    also rounds the gradient coming back from the activation before BN's backward."""

    def forward(self, x):
        y = super().forward(x)
        return _Round.apply(y) if _STATE["on"] else y


class SimTanh(nn.Tanh):
    def forward(self, x):
        return _Tanh.apply(x) if _STATE["on"] else super().forward(x)


# conv -> act -> conv needs no extra rounding: the convs round the activation's output
# (their input) forward and its input gradient (their output gradient) backward, and
# ReLU/LeakyReLU of a bf16 value rounded equals the bf16 op's result.
_SWAP = {nn.Conv2d: SimConv2d, nn.ConvTranspose2d: SimConvTranspose2d, nn.BatchNorm2d: SimBatchNorm2d,
         nn.Tanh: SimTanh}


def adopt(model: nn.Module) -> nn.Module:
    """Swap the stock layers of ``model`` for the simulating ones, in place (same parameters,
    buffers and state_dict keys)."""
    for m in model.modules():
        new = _SWAP.get(type(m))
        if new is not None:
            m.__class__ = new
        elif type(m) not in (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Sequential) and not isinstance(m, tuple(_SWAP.values())) \
                and not list(m.children()):
            raise TypeError(f"bf16sim: no simulation for {type(m).__name__}")
    return model


# ------------------------------------------------------------------ the GAN

def sim_gan(config, mode: str | None = "fp32acc"):
    """A tui_gan Gan on the CPU with stock (contiguous-layout) layers, trained as the bf16 Gan
    is (D without its last Sigmoid, BCEWithLogits), with the bf16 autocast region simulated
    (``mode`` 'fp32acc' or 'thnn'), or in fp32 (``mode=None``): same code, no rounding."""
    import dataclasses

    from tui_gan.engine.gan import Gan
    from tui_gan.speed import SpeedChoice

    cfg = dataclasses.replace(config, amp=False, channels_last=False, compile=False)
    gan = Gan(cfg, torch.device("cpu"))
    assert not gan.speed.cpu_layers and not gan.speed.channels_last
    adopt(gan.netG)
    adopt(gan.netD)
    gan.bf16 = True  # logits: _probability applies sigmoid
    gan._d_forward = gan.netD.main[:-1]
    gan.criterion = nn.BCEWithLogitsLoss()
    # make train_step mark D's parameters as not needing grads in G's pass (as it does for
    # its own autograd Functions): same numbers, skips D's weight gradients there
    gan.speed = SpeedChoice(channels_last=False, cpu_layers=True)
    gan.autocast = (lambda: enabled(True, mode)) if mode else contextlib.nullcontext
    return gan
