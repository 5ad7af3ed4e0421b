"""The loss and accuracy of one net at points in weight space: θ* + Σ c_i d_i along directions,
or (1 - t)·θ_A + t·θ_B between two nets, on fixed image subsets.

Batch norm runs in eval mode with the checkpoint's running statistics ("running"), as Li et
al.'s code evaluates: each point is then one fixed function of its input, the one the trained
net's test accuracy is measured with. "batch" re-estimates the statistics on the subset at
every point instead (one batch of the whole subset; the running statistics stay as they were):
every conv followed by batch norm is then exactly invariant to its filters' scale, and the
surface shows the loss the net would have after recalibrating batch norm, which rises much
more slowly away from θ* than with frozen statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from resdeep.landscape.directions import Weights


@dataclass(frozen=True)
class Subset:
    """Images a surface is measured on, normalised as the net was trained, and which ones."""

    split: str
    inputs: torch.Tensor
    labels: torch.Tensor
    indices: list[int]

    def to(self, device: torch.device) -> Subset:
        return Subset(self.split, self.inputs.to(device), self.labels.to(device), self.indices)


def fixed_subset(
    split: str, images: torch.Tensor, labels: torch.Tensor, size: int, seed: int
) -> Subset:
    """`size` images of a split drawn with `seed` (all of them when it holds fewer), in index
    order; only those are normalised by the caller."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(images), generator=generator)[:size].sort().values
    return Subset(split, images[chosen], labels[chosen], chosen.tolist())


def loss_and_accuracy(model: nn.Module, subset: Subset) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on the whole subset in one batch (so "batch" statistics
    are the subset's)."""
    with torch.no_grad():
        logits = model(subset.inputs).float()
        loss = nn.functional.cross_entropy(logits, subset.labels)
        accuracy = (logits.argmax(1) == subset.labels).float().mean()
    return float(loss), float(accuracy)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the net's state (state_dict's tensors are the live ones a move changes)."""
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


class WeightSpace:
    """One net moved to points in weight space in place (no copy of the net per point), and put
    back where it was on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.parameters = dict(model.named_parameters())
        self.start = snapshot(model)

    def __enter__(self) -> WeightSpace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.model.load_state_dict(self.start)

    def move_along(
        self, base: Weights, directions: Sequence[Weights], steps: Sequence[float]
    ) -> None:
        """θ = base + Σ steps_i · directions_i (parameters only; buffers stay)."""
        with torch.no_grad():
            for name, parameter in self.parameters.items():
                value = base[name].clone()
                for direction, step in zip(directions, steps, strict=True):
                    if step:
                        value.add_(direction[name], alpha=float(step))
                parameter.copy_(value)

    def move_between(
        self, a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], t: float
    ) -> None:
        """Every entry of the state at (1 - t)·a + t·b: t = 0 and t = 1 are a and b exactly.
        Batch norm's running statistics move too, but only between the ends (t clipped to
        [0, 1]: a variance extrapolated past an end can turn negative); integer counters stay
        a's."""
        inside = min(max(t, 0.0), 1.0)
        state = {}
        with torch.no_grad():
            for name, start in a.items():
                if not start.is_floating_point():
                    state[name] = start
                    continue
                step = t if name in self.parameters else inside
                state[name] = (1 - step) * start + step * b[name]
        self.model.load_state_dict(state)
