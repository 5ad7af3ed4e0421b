"""Optimizers and learning-rate schedules, with the warm-up of He et al. for very deep nets."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch

from resdeep.choices import OPTIMIZERS, SCHEDULES, WARMUPS
from resdeep.errors import UsageError


def build_optimizer(
    parameters: Iterable[torch.nn.Parameter],
    name: str,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: Sequence[float] = (0.9, 0.999),
    fused: bool | None = None,
) -> torch.optim.Optimizer:
    # lr and weight decay are checked with the config (resdeep.train.validation).
    # foreach kernels update all parameters in a few launches instead of one per tensor.
    speed = {"fused": True} if fused else {"foreach": True}
    if name == "sgd":
        return torch.optim.SGD(
            parameters,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
            **speed,
        )
    if name == "adam":
        return torch.optim.Adam(
            parameters, lr=lr, betas=tuple(betas), weight_decay=weight_decay, **speed
        )
    if name == "adamw":
        return torch.optim.AdamW(
            parameters, lr=lr, betas=tuple(betas), weight_decay=weight_decay, **speed
        )
    raise UsageError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def lr_multiplier(
    name: str,
    *,
    total_steps: int,
    base_lr: float,
    milestones: Sequence[float] = (0.5, 0.75),
    gamma: float = 0.1,
    min_lr: float = 0.0,
    warmup_steps: int = 0,
    warmup_lr: float | None = None,
    warmup: str = "constant",
) -> Callable[[int], float]:
    """A step -> lr/base_lr function for `torch.optim.lr_scheduler.LambdaLR`.

    `milestones` are fractions of the training run (0.5, 0.75 of 64k = the paper's 32k, 48k).
    During `warmup_steps` the lr is `warmup_lr` (constant: He et al. train ResNet-110 at 0.01
    until it starts to learn) or ramps linearly from it to the base lr.
    """
    if name not in SCHEDULES:
        raise UsageError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if warmup not in ("constant", "linear"):
        raise UsageError(f"schedule.warmup must be one of {', '.join(WARMUPS)}, got {warmup!r}")
    boundaries = sorted(round(m * total_steps) for m in milestones)
    warmup_start = (warmup_lr if warmup_lr is not None else base_lr * 0.1) / base_lr

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            if warmup == "constant":
                return warmup_start
            return warmup_start + (1.0 - warmup_start) * step / warmup_steps
        if name == "multistep":
            return gamma ** sum(step >= boundary for boundary in boundaries)
        if name == "cosine":
            progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
            floor = min_lr / base_lr
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    return multiplier
