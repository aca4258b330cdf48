"""Choosing the training device (CUDA, then Apple's MPS, else the CPU) and its precision
(bf16 where the device has bf16 units, else fp32: TF32 convolutions where PyTorch runs
them so), and waiting for an asynchronous device."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..core.config import parse_device
from ..core.errors import UserError, first_line


def resolve_device(spec: str) -> torch.device:
    """Turn 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' into an available torch.device."""
    kind, index = parse_device(spec)
    if kind == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise UserError("--device mps: Apple's MPS backend is not available here; use --device auto or cpu")
        return torch.device("mps")
    # cuda
    if not torch.cuda.is_available():
        raise UserError(f"--device {spec}: CUDA is not available on this machine; use --device auto or cpu")
    count = torch.cuda.device_count()
    current = torch.cuda.current_device()
    index = current if index is None else index
    if index >= count:
        raise UserError(f"--device {spec}: this machine has {count} CUDA device(s) (0..{count - 1})")
    if index != current:
        # What uses "the current device" (a tensor made with device="cuda", cuDNN's and cuBLAS's
        # handles, torch.cuda calls without a device) must mean this GPU, not GPU 0. Only when
        # it differs: setting GPU 0 would give every process of a several-GPU run a context
        # there before each takes the GPU of its local rank (world.py).
        torch.cuda.set_device(index)
    return torch.device("cuda", index)


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has run all the work queued on it (CUDA, MPS; the CPU runs it
    at once). Where time is taken after it, the work queued before counts before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def asynchronous(device: torch.device) -> bool:
    """Whether work queued on ``device`` may still be running when the host goes on."""
    return device.type in ("cuda", "mps")


@dataclass(frozen=True)
class Precision:
    """The training step's precision and why it was chosen (shown in the first log line
    and the status panel)."""

    bf16: bool
    why: str
    tf32: bool = False
    """Not bf16, and the convolutions' products are TF32 (see tf32_convolutions)."""

    @property
    def name(self) -> str:
        return "bf16" if self.bf16 else "tf32" if self.tf32 else "fp32"


#: The CPU features (as torch.cpu.get_capabilities and /proc/cpuinfo name them) that run
#: bf16 natively, with the names we show. An AMX CPU (Xeon 4th gen and later) ran the
#: tutorial config at 1.88x the tutorial loop with bf16 against 1.28x in fp32 with the
#: CPU layers (issue 18); AVX-512 BF16 alone (Cooper Lake, Zen 4) is enabled on the same
#: grounds, not yet measured here. Without either, oneDNN emulates bf16: measured 20x
#: slower on the 2-core AVX2 test CPU.
CPU_BF16_FEATURES = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"))


def native_bf16(device: torch.device, cpu_features: Mapping[str, Any] | None = None,
                cuda_capability: tuple[int, int] | None = None) -> str | None:
    """The units that run bf16 natively on ``device`` ('AMX', 'compute capability 8.6'...),
    or None. The stand-ins are for tests."""
    if device.type == "cuda":
        major, minor = cuda_capability or torch.cuda.get_device_capability(device)
        return f"compute capability {major}.{minor}" if major >= 8 else None
    if device.type == "cpu":
        features = cpu_features if cpu_features is not None else cpu_capabilities()
        for flag, label in CPU_BF16_FEATURES:
            if features.get(flag):
                return label
    return None  # MPS: bf16 came with M2 and torch 2.6; not measured, so not chosen


def cpu_capabilities(cpuinfo: Path = Path("/proc/cpuinfo")) -> Mapping[str, Any]:
    """What torch reports of this CPU (torch.cpu.get_capabilities, cpuinfo's flags), or on a
    torch without it (older releases), the flags in ``cpuinfo`` (Linux)."""
    report = getattr(torch.cpu, "get_capabilities", None)
    if report is not None:
        try:
            return dict(report())
        except Exception:  # noqa: BLE001 - an unknown CPU: fall back to the kernel's view
            pass
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return {flag: True for flag in flags}


def choose_precision(amp: bool | None, device: torch.device) -> Precision:
    """bf16 autocast or fp32 for ``amp`` (True: --amp, False: --no-amp, None: auto) on
    ``device``: auto is bf16 where the device runs it natively (native_bf16) and autocast
    works, else fp32. Raises UserError for --amp where bf16 cannot run."""
    if amp is True:
        check_amp(device)
        return Precision(True, "--amp")
    if amp is False:
        return _fp32("--no-amp", device)
    units = native_bf16(device)
    if units is None:
        return _fp32(f"auto: {_no_bf16_units(device)}", device)
    reason = _autocast_unavailable(device)
    if reason is not None:
        return _fp32(f"auto: {units}, but {reason}", device)
    return Precision(True, f"auto: {units}")


def _fp32(why: str, device: torch.device) -> Precision:
    if tf32_convolutions(device):
        return Precision(False, f"{why}; TF32 convolutions, PyTorch's default on this GPU", tf32=True)
    return Precision(False, why)


def tf32_convolutions(device: torch.device, cuda_capability: tuple[int, int] | None = None) -> bool:
    """Whether fp32 convolutions on ``device`` multiply in TF32 (10-bit mantissas, fp32
    sums) rather than fp32: on CUDA from compute capability 8.0, where PyTorch allows it by
    default (``torch.backends.cudnn.allow_tf32``), unless NVIDIA_TF32_OVERRIDE=0 forbids it
    cuDNN-wide. The stand-in capability is for tests."""
    if device.type != "cuda":
        return False
    if (cuda_capability or torch.cuda.get_device_capability(device))[0] < 8:
        return False  # no TF32 units before Ampere
    if os.environ.get("NVIDIA_TF32_OVERRIDE") == "0":
        return False
    try:
        return bool(torch.backends.cudnn.allow_tf32)
    except RuntimeError:  # the flags were set through torch's per-operator API, which it refuses to mix
        return torch.backends.cudnn.conv.fp32_precision == "tf32"


def allow_tf32(allowed: bool) -> None:
    """TF32 for this process's convolutions (PyTorch's default) or exact fp32 (convolutions
    and matrix products, as StyleGAN2-ADA trains); bf16 autocast is not affected."""
    torch.backends.cudnn.allow_tf32 = allowed
    if not allowed:
        torch.backends.cuda.matmul.allow_tf32 = False


def _no_bf16_units(device: torch.device) -> str:
    if device.type == "cpu":
        return f"no bf16 units in this CPU ({torch.backends.cpu.get_cpu_capability()})"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"no bf16 units before compute capability 8.0 (this GPU: {major}.{minor})"
    return f"bf16 not measured on {device.type}"


def check_amp(device: torch.device) -> None:
    """Raise UserError if bf16 autocast (--amp) cannot run on ``device`` with this torch:
    GPUs before Ampere have no bf16 units (torch would emulate it, slowly), and MPS
    autocast came with torch 2.5 (bf16 with 2.6)."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        raise UserError(f"--amp: {describe_device(device)} has no bf16 units (they came with Ampere, "
                        "compute capability 8.0); run without --amp")
    reason = _autocast_unavailable(device)
    if reason is not None:
        raise UserError(f"--amp: bf16 autocast is not available on {device.type} with torch "
                        f"{torch.__version__} ({reason}); run without --amp")


def _autocast_unavailable(device: torch.device) -> str | None:
    """Why this torch cannot autocast to bf16 on ``device``, or None when it can."""
    with warnings.catch_warnings(record=True) as caught:  # what autocast says when it turns itself off
        warnings.simplefilter("always")
        try:
            context = torch.autocast(device.type, dtype=torch.bfloat16)
        except (RuntimeError, ValueError, AssertionError) as exc:
            return first_line(exc)
        if not getattr(context, "_enabled", True):  # unsupported here: it warned and disabled itself
            said = [first_line(w.message) for w in caught if "autocast" in str(w.message).lower()
                    or "device_type" in str(w.message)]  # not a warning of another thread's
            return said[0] if said else "autocast disabled itself"
    return None


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def describe_failure(exc: Exception, device: torch.device | None) -> str:
    """One line for a training step that failed: what to change for out-of-memory errors,
    else the exception's type and first line."""
    out_of_memory = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch.* from 2.4
    if isinstance(exc, out_of_memory) or "out of memory" in str(exc).lower():
        return f"out of memory on {device}: try a smaller --batch-size or --image-size"
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
