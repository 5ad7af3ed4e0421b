"""Which device and precision a run uses, with clear errors for impossible requests."""

from __future__ import annotations

import torch

from resdeep.choices import PRECISIONS
from resdeep.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; `cuda` or `cuda:N` without a GPU is a usage error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(
                f"device {name} asked for, but no CUDA GPU is available; use cpu or auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"device {name} asked for, but only {torch.cuda.device_count()} GPU(s) are present"
            )
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device


def resolve_precision(value: object, device: torch.device) -> str:
    precision = str(value)
    if precision not in PRECISIONS:
        raise UsageError(f"trainer.precision must be one of 32, bf16, 16; got {precision}")
    if precision == "16" and device.type != "cuda":
        raise UsageError("trainer.precision=16 needs a CUDA GPU; use bf16 (or 32) on CPU")
    return precision
