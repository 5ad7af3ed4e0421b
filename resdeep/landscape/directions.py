"""Random directions in weight space for pictures of the loss surface (Li et al. 2018).

Batch norm makes a conv's function independent of its filters' scale, so a step of a given size
means little for a filter with a large norm and a lot for one with a small norm, and a surface
drawn along raw Gaussian directions compares nets by their weight scales. Li et al. rescale
each filter of the direction to the norm of the same filter in the trained weights ("filter"
normalisation); "layer" rescales each tensor as a whole, "model" the direction as a whole, and
"none" leaves the draw as it is (to show why it is not enough). As in Li et al.'s code
(`--xignore biasbn`), entries of one-dimensional parameters (biases, batch norm's scale and
shift, Fixup's scalars) are zero: the surface is that of the weights alone.
"""

from __future__ import annotations

import torch
from torch import nn

NORMALIZATIONS = ("filter", "layer", "model", "none")

# A direction (or a point) in weight space: one tensor per named parameter.
Weights = dict[str, torch.Tensor]


def trained_weights(model: nn.Module) -> Weights:
    """The net's parameters, detached copies in the model's order."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def random_direction(
    weights: Weights, generator: torch.Generator, normalization: str = "filter"
) -> Weights:
    """One Gaussian direction shaped like `weights`, normalised to them. Every entry is drawn
    on the CPU from `generator` in the parameters' order, zeroed ones too, so the same seed
    gives the same direction on every device, and nets with the same shapes (a plain net and
    its residual twin) get the same draw."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    direction: Weights = {}
    for name, weight in weights.items():
        draw = torch.randn(weight.shape, generator=generator, dtype=torch.float32)
        draw = draw.to(device=weight.device, dtype=weight.dtype)
        if weight.dim() <= 1:
            draw.zero_()
        elif normalization == "filter":
            # One filter (a conv's output channel, a linear layer's output unit) per row.
            rows, own = draw.flatten(1), weight.flatten(1)
            scale = own.norm(dim=1, keepdim=True) / (rows.norm(dim=1, keepdim=True) + 1e-10)
            draw = (rows * scale).view_as(weight)
        elif normalization == "layer":
            draw = draw * (weight.norm() / (draw.norm() + 1e-10))
        direction[name] = draw
    if normalization == "model":
        scale = _norm(weights, direction) / (_norm(direction, direction) + 1e-10)
        direction = {name: d * scale for name, d in direction.items()}
    return direction


def _norm(of: Weights, where: Weights) -> torch.Tensor:
    """The norm of `of` over the entries the direction moves (parameters of two or more dims)."""
    return torch.sqrt(sum((t.double() ** 2).sum() for n, t in of.items() if where[n].dim() > 1))


def random_directions(
    weights: Weights, count: int, seed: int, normalization: str = "filter"
) -> list[Weights]:
    """`count` directions from one seed, in order: the first k of them do not depend on count."""
    generator = torch.Generator().manual_seed(seed)
    return [random_direction(weights, generator, normalization) for _ in range(count)]


def direction_norm(direction: Weights) -> float:
    return float(torch.sqrt(sum((d.double() ** 2).sum() for d in direction.values())))
