"""The gradient by path length (Veit et al. 2016, section 5).

Unrolled, a net of n residual blocks is a sum over 2^n paths: the Jacobian of a product of
(I + J_b) expands into one term per subset of blocks whose residual branch the path takes. A
path of length k takes k branches and n - k shortcuts, and there are C(n, k) of them, so path
lengths follow Binomial(n, 1/2).

To measure the gradient of one path, the forward pass runs the intact net and the backward pass
is routed: through the branch only in the path's k blocks, through the shortcut only in the
others. Routing is per image (a mask per image and block), so one backward pass measures a
batch of paths of different lengths at once, and the forward values are those of the intact
net. The gradient is taken with respect to the first block's input (the stem's output): the
paths start there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from resdeep.models import ConvNet, evaluation_mode


def routed(value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`value` in the forward pass; in the backward pass its gradient times `mask` (B, 1, 1, 1),
    so a 0 closes this path for that image and a 1 leaves it open."""
    held = value.detach()
    return held + mask * (value - held)


def routed_input_gradients(
    model: ConvNet, images: torch.Tensor, labels: torch.Tensor, through_branch: torch.Tensor
) -> torch.Tensor:
    """d(cross-entropy)/d(first block's input) per image, each routed through the branches of
    the blocks `through_branch` (B, n) marks and the shortcuts of the others; eval mode, so the
    images do not interact through batch statistics. Returns (B, C, H, W)."""
    blocks = model.blocks()
    if through_branch.shape != (len(images), len(blocks)):
        raise ValueError(f"routing {tuple(through_branch.shape)} for {len(images)} images")
    masks = through_branch.to(images.dtype)
    with torch.enable_grad(), evaluation_mode(model):
        start = model.stem(images).detach().requires_grad_(True)
        x = start
        for index, block in enumerate(blocks):
            branch, shortcut = block.paths(x)
            if shortcut is None:
                raise ValueError("a plain block has no shortcut to route through")
            mask = masks[:, index].view(-1, 1, 1, 1)
            x = block.merge(routed(branch, mask) + routed(shortcut, 1 - mask))
        logits = model.forward_head(model.after_blocks(x))
        loss = F.cross_entropy(logits, labels, reduction="sum")  # per image: its own gradient
        (gradient,) = torch.autograd.grad(loss, start)
    return gradient


@dataclass(frozen=True)
class PathGradients:
    """Gradient magnitudes by path length k = 0..n (index k)."""

    blocks: int  # n
    samples_per_length: int
    per_path: list[float]  # mean input-gradient norm of one path of length k
    per_path_std: list[float]
    paths: list[float]  # C(n, k)
    total: list[float]  # C(n, k) x per_path: the whole gradient magnitude at length k
    window: tuple[int, int]  # shortest range of lengths holding 90 % of the total

    @property
    def length_distribution(self) -> list[float]:
        """The share of paths of each length: Binomial(n, 1/2)."""
        return [count / 2.0**self.blocks for count in self.paths]

    @property
    def total_share(self) -> list[float]:
        whole = sum(self.total)
        return [value / whole if whole > 0 else 0.0 for value in self.total]


def path_gradients(
    model: ConvNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    samples_per_length: int,
    seed: int,
    batch_size: int = 256,
    share: float = 0.9,
) -> PathGradients:
    """Mean gradient norm of paths of each length, `samples_per_length` paths per length, each
    on a training image and a subset of blocks drawn from `seed`; `images` normalised model
    inputs, drawn from in turn (with replacement when they are fewer than needed)."""
    n = len(model.blocks())
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.arange(n + 1).repeat_interleave(samples_per_length)
    which = torch.randint(len(images), (len(lengths),), generator=generator)
    # k branches per row: the k smallest of n random keys pick a uniform k-subset.
    keys = torch.rand(len(lengths), n, generator=generator)
    ranks = keys.argsort(dim=1).argsort(dim=1)
    through_branch = ranks < lengths[:, None]
    device = next(model.parameters()).device
    norms = []
    for start in range(0, len(lengths), batch_size):
        rows = slice(start, start + batch_size)
        gradient = routed_input_gradients(
            model,
            images[which[rows]].to(device),
            labels[which[rows]].to(device),
            through_branch[rows].to(device),
        )
        norms.append(gradient.flatten(1).norm(dim=1).double().cpu())
    by_length = torch.cat(norms).view(n + 1, samples_per_length)
    per_path = by_length.mean(dim=1).tolist()
    per_path_std = by_length.std(dim=1).tolist() if samples_per_length > 1 else [0.0] * (n + 1)
    paths = [float(math.comb(n, k)) for k in range(n + 1)]
    total = [count * value for count, value in zip(paths, per_path, strict=True)]
    return PathGradients(
        blocks=n,
        samples_per_length=samples_per_length,
        per_path=per_path,
        per_path_std=per_path_std,
        paths=paths,
        total=total,
        window=shortest_window(total, share),
    )


def shortest_window(values: Sequence[float], share: float) -> tuple[int, int]:
    """The shortest range [a, b] of indices whose values sum to at least `share` of the whole;
    of equally short ones the one holding most."""
    whole = sum(values)
    best: tuple[int, int] = (0, len(values) - 1)
    best_key = (len(values), -whole)
    for first in range(len(values)):
        held = 0.0
        for last in range(first, len(values)):
            held += values[last]
            if held >= share * whole:
                key = (last - first, -held)
                if key < best_key:
                    best, best_key = (first, last), key
                break
    return best
