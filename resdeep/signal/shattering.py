"""Shattered gradients (Balduzzi et al. 2017): the input gradient of one logit at points along a
straight line between two inputs, and how alike the gradients of neighbouring points are.

In a deep plain net they decorrelate until they look like white noise, which gives gradient
descent nothing to follow; a residual net keeps them correlated. The measure is the mean cosine
between the gradients at neighbouring points (1: the same direction everywhere, as in a linear
net; 0: unrelated), and the same at larger lags (the autocorrelation along the line).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from resdeep.models.base import evaluation_mode


@dataclass(frozen=True)
class LineGradients:
    neighbour: float  # mean cosine at lag 1; NaN where the gradient is zero (no direction)
    lags: list[float]  # mean cosine at lag 1, 2, ...
    # The derivative of the logit along the line, d logit(x(t)) / dt = grad . (end - start): the
    # gradient of the one-dimensional function the line cuts out of the net (Balduzzi et al.'s
    # Fig. 1 shows it for a net of one scalar input).
    along: list[float]
    # cos(g_i, g_j) for every pair of points of the first line (drawn, not written to JSON)
    similarity: torch.Tensor | None = None


def line_points(start: torch.Tensor, end: torch.Tensor, points: int) -> torch.Tensor:
    """`points` inputs evenly spaced from `start` to `end`, both included: (points, *shape)."""
    t = torch.linspace(0, 1, points, dtype=start.dtype, device=start.device)
    t = t.view(-1, *([1] * start.dim()))
    return (1 - t) * start + t * end


def input_gradients(
    model: nn.Module, inputs: torch.Tensor, logit: int = 0, chunk: int = 256
) -> torch.Tensor:
    """d logit / d input at every input, in eval mode (each point is its own function of the
    input: batch norm uses its running statistics)."""
    grads = []
    with evaluation_mode(model), torch.enable_grad():
        for part in inputs.split(chunk):
            part = part.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(model(part)[:, logit].sum(), part)
            grads.append(grad.detach())
    return torch.cat(grads)


def cosines_at_lag(grads: torch.Tensor, lag: int) -> torch.Tensor:
    flat = grads.flatten(1).double()
    a, b = flat[:-lag], flat[lag:]
    norms = a.norm(dim=1) * b.norm(dim=1)
    return (a * b).sum(1) / norms  # NaN where a gradient is zero


def line_gradients(
    model: nn.Module,
    start: torch.Tensor,
    end: torch.Tensor,
    *,
    points: int = 256,
    max_lag: int = 32,
    logit: int = 0,
) -> LineGradients:
    grads = input_gradients(model, line_points(start, end, points), logit)
    # A point whose gradient is exactly zero has no direction: its pairs are left out (NaN only
    # when every gradient on the line is zero).
    lags = [
        float(torch.nanmean(cosines_at_lag(grads, lag)))
        for lag in range(1, min(max_lag, points - 1) + 1)
    ]
    flat = grads.flatten(1).double()
    along = flat @ (end - start).flatten().double()
    unit = flat / flat.norm(dim=1, keepdim=True)
    return LineGradients(lags[0], lags, [float(v) for v in along], (unit @ unit.T).float().cpu())


def mean_over_lines(lines: list[LineGradients]) -> LineGradients:
    """Average of several lines' measures (lags elementwise); the first line's derivative."""
    finite = [line for line in lines if math.isfinite(line.neighbour)]
    if not finite:
        return LineGradients(
            math.nan, [math.nan] * len(lines[0].lags), lines[0].along, lines[0].similarity
        )
    lags = [
        sum(values) / len(finite) for values in zip(*(line.lags for line in finite), strict=True)
    ]
    return LineGradients(lags[0], lags, lines[0].along, lines[0].similarity)
