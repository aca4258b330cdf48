"""The random state a checkpoint keeps, so that a resumed run draws what it would have drawn."""

from __future__ import annotations

from typing import Any

import torch


def rng_state(device: torch.device, noise_gen: torch.Generator) -> dict[str, Any]:
    return {
        "torch_cpu": torch.get_rng_state(),
        # this run's GPU only: a list of every visible GPU would not restore on fewer
        "torch_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "noise": noise_gen.get_state(),
        "noise_device": device.type,
    }


def restore_rng(rng: dict[str, Any], device: torch.device, noise_gen: torch.Generator, reseed: int) -> str | None:
    """Put back a checkpoint's random state. Returns a warning when the noise sequence cannot
    continue (the checkpoint comes from another kind of device): it restarts from ``reseed``."""
    if "torch_cpu" in rng:
        torch.set_rng_state(rng["torch_cpu"])
    cuda_state = rng.get("torch_cuda")
    if isinstance(cuda_state, list):  # older checkpoints: one state per visible GPU
        index = device.index or 0
        cuda_state = cuda_state[index] if index < len(cuda_state) else None
    if device.type == "cuda" and isinstance(cuda_state, torch.Tensor):
        torch.cuda.set_rng_state(cuda_state, device)
    if rng.get("noise_device") == device.type and "noise" in rng:
        noise_gen.set_state(rng["noise"])
    elif "noise" in rng:
        noise_gen.manual_seed(reseed)
        return (f"resumed on {device.type} from a {rng.get('noise_device')} checkpoint: "
                "the noise sequence restarts (the weights and optimizer state are exact)")
    return None
