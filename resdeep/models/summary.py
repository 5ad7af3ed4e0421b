"""Size and cost of a network: weight layers, parameters, multiply-accumulates."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from resdeep.models.anatomy import depth_layers


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Multiply-accumulates of one forward pass on one image (C, H, W).

    torch's FLOP counter counts a multiply-add as 2 FLOPs; papers' "FLOPs" for ResNets
    (e.g. 41M for ResNet-20) count multiply-adds, so we halve it.
    """
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    device = next(model.parameters()).device  # the meta device counts without computing
    with counter, torch.no_grad():
        model(torch.zeros(1, *input_shape, device=device))
    model.train(was_training)
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class ModelSummary:
    arch: str
    block: str
    depth: int
    weight_layers: int
    params: int
    macs: int


def summarize_model(
    model: nn.Module, *, arch: str, block: str, depth: int, input_shape: tuple[int, int, int]
) -> ModelSummary:
    return ModelSummary(
        arch=arch,
        block=block,
        depth=depth,
        weight_layers=len(depth_layers(model)),
        params=count_parameters(model),
        macs=count_macs(model, input_shape),
    )
