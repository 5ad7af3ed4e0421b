"""Batch norm's statistics for the tools that evaluate a net at weights it was never trained
at (signal at initialisation, landscape along directions and lines): estimating them afresh,
and evaluating with each batch's own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

BN_STATS = ("running", "batch")


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def calibrate_batch_norm(model: nn.Module, images: torch.Tensor, chunk: int = 512) -> None:
    """Batch norm's running statistics from `images` (their plain average: momentum None),
    then eval mode: the net as training's first evaluation would see a fresh net, and each
    input then its own function."""
    norms = batch_norms(model)
    if not norms:
        model.eval()
        return
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        for part in images.split(chunk):
            model(part)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()


@contextlib.contextmanager
def batch_norm_mode(model: nn.Module, stats: str) -> Iterator[None]:
    """Eval mode for the block; with "batch", batch norm normalises with each batch's own
    statistics (momentum 0 keeps the running statistics as they are) while dropout stays off."""
    if stats not in BN_STATS:
        raise ValueError(f"stats must be one of {BN_STATS}, got {stats!r}")
    was_training = model.training
    model.eval()
    norms = batch_norms(model) if stats == "batch" else []
    kept = [(norm.momentum, norm.num_batches_tracked.clone()) for norm in norms]
    for norm in norms:
        norm.train()
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, tracked) in zip(norms, kept, strict=True):
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(tracked)
        model.train(was_training)
