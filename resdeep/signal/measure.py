"""The signal and the gradient of a net measured layer by layer on one batch.

Per conv (the stem's and every block's, shortcut projections aside): the second moment of its
output (the pre-activation of a net without batch norm), split into the average channel variance
and the average squared channel mean (Brock, De & Smith 2021's signal-propagation plots), and the
second moment of the loss gradient there. Per block: the same for the stream (branch + shortcut,
before the ReLU that follows in post-activation blocks) and the variance of the residual branch.

The loss is sum_k g_k * logit_k with g ~ N(0, 1) per image: its gradient at the logits has
variance 1 whatever the net predicts, so the backward signal says how the net carries a gradient,
not how wrong it is at initialisation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from resdeep.models.base import ConvNet, evaluation_mode
from resdeep.signal.mean_field import plain_convs


@dataclass(frozen=True)
class Moments:
    """Of one feature map over the batch and its positions."""

    second: float  # E[z^2]
    variance: float  # average over channels of each channel's variance
    squared_mean: float  # average over channels of each channel's squared mean

    @classmethod
    def of(cls, z: torch.Tensor) -> Moments:
        z = z.detach().double()
        channel_mean = z.mean(dim=(0, 2, 3))
        second = float(z.square().mean())
        squared_mean = float(channel_mean.square().mean())
        return cls(second, second - squared_mean, squared_mean)


@dataclass(frozen=True)
class LayerSignal:
    name: str
    stage: int  # 0 for the stem
    size: int  # side of its output map
    forward: Moments
    backward: float  # E[(dL/dz)^2]


@dataclass(frozen=True)
class BlockSignal:
    name: str
    stage: int
    stream: Moments  # branch + shortcut (the block's output in a plain net)
    branch_variance: float | None  # None in a plain block (no branch to tell apart)
    backward: float  # E[(dL/d stream)^2]


@dataclass(frozen=True)
class Propagation:
    layers: list[LayerSignal]
    blocks: list[BlockSignal]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@contextmanager
def relus_out_of_place(model: nn.Module) -> Iterator[None]:
    """In-place ReLUs overwrite the conv outputs whose moments and gradients are measured."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU) and m.inplace]
    for relu in relus:
        relu.inplace = False
    try:
        yield
    finally:
        for relu in relus:
            relu.inplace = True


def stage_of(name: str) -> int:
    return int(name[5]) if name.startswith("stage") else 0


def output_gradient(logits: torch.Tensor, seed: int) -> torch.Tensor:
    """g ~ N(0, 1) of the logits' shape, drawn from `seed` (on the CPU, so any device agrees)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(logits.shape, generator=generator, dtype=torch.float32).to(logits.device)


def measure_propagation(model: ConvNet, inputs: torch.Tensor, seed: int = 0) -> Propagation:
    """Every conv's and every block's moments, forward and backward, in eval mode."""
    conv_names = {
        id(conv): name for name, conv in model.named_modules() if isinstance(conv, nn.Conv2d)
    }
    convs = plain_convs(model)
    outputs: dict[str, torch.Tensor] = {}

    def keep(module: nn.Module, _: Any, output: torch.Tensor) -> None:
        output.retain_grad()
        outputs[conv_names[id(module)]] = output

    with evaluation_mode(model), relus_out_of_place(model), torch.enable_grad():
        hooks = [conv.register_forward_hook(keep) for conv in convs]
        try:
            streams, branches = [], []
            # The forward of ConvNet.features, block by block, so each sum is seen.
            h = model.stem(inputs)
            for block in model.blocks():
                branch, shortcut = block.paths(h)
                total = branch if shortcut is None else branch + shortcut
                total.retain_grad()
                streams.append(total)
                branches.append(None if shortcut is None else branch.detach())
                h = block.merge(total)
            logits = model.forward_head(model.after_blocks(h))
            (logits * output_gradient(logits, seed)).sum().backward()
        finally:
            for hook in hooks:
                hook.remove()
    names = [
        name
        for name, _ in model.named_modules()
        if name.startswith("stage") and name.count(".") == 1
    ]
    layers = [
        LayerSignal(
            name=name,
            stage=stage_of(name),
            size=int(out.shape[-1]),
            forward=Moments.of(out),
            backward=float(out.grad.double().square().mean()),
        )
        for name, out in outputs.items()
    ]
    blocks = [
        BlockSignal(
            name=name,
            stage=stage_of(name),
            stream=Moments.of(total),
            branch_variance=None if branch is None else Moments.of(branch).variance,
            backward=float(total.grad.double().square().mean()),
        )
        for name, total, branch in zip(names, streams, branches, strict=True)
    ]
    model.zero_grad(set_to_none=True)
    return Propagation(layers, blocks)
