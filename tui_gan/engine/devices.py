"""Choosing the training device: CUDA, then Apple's MPS, else the CPU."""

from __future__ import annotations

import warnings

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
    index = torch.cuda.current_device() if index is None else index
    if index >= count:
        raise UserError(f"--device {spec}: this machine has {count} CUDA device(s) (0..{count - 1})")
    return torch.device("cuda", index)


def check_amp(device: torch.device) -> None:
    """Raise UserError if bf16 autocast (--amp) cannot run on ``device`` with this torch:
    GPUs before Ampere have no bf16 units (torch would emulate it, slowly), and MPS
    autocast came with torch 2.5 (bf16 with 2.6)."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:
        raise UserError(f"--amp: {describe_device(device)} has no bf16 units (they came with Ampere, "
                        "compute capability 8.0); run without --amp")
    reason = None
    with warnings.catch_warnings(record=True) as caught:  # what autocast says when it turns itself off
        warnings.simplefilter("always")
        try:
            context = torch.autocast(device.type, dtype=torch.bfloat16)
        except (RuntimeError, ValueError, AssertionError) as exc:
            reason = first_line(exc)
        else:
            if not getattr(context, "_enabled", True):  # unsupported here: it warned and disabled itself
                said = [first_line(w.message) for w in caught if "autocast" in str(w.message).lower()
                        or "device_type" in str(w.message)]  # not a warning of another thread's
                reason = said[0] if said else "autocast disabled itself"
    if reason is not None:
        raise UserError(f"--amp: bf16 autocast is not available on {device.type} with torch "
                        f"{torch.__version__} ({reason}); run without --amp")


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
