"""Where and at what precision a run computes: ``resolve_device`` and the autocast dtype of each precision."""

from __future__ import annotations

import torch

from trainers.checks import ConfigError

# precision -> autocast dtype (None: no autocast); the keys are TrainConfig's precision choices.
AMP_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``auto``: this rank's GPU when there is one, else the CPU; an unavailable device is refused."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device", f"{name} is not available on this machine (use auto or cpu)")
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device", f"{name} is not available on this machine (use auto or cpu)")
    return device
