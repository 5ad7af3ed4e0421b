"""Deep ensembles (Lakshminarayanan et al. 2017): the members' deterministic softmaxes, averaged.
Members must see the same images with the same classes; only their seeds differ."""

from __future__ import annotations

from typing import Any

import torch

from resdeep.checkpoint import CheckpointInfo
from resdeep.data import normalize
from resdeep.errors import UsageError
from resdeep.models import ConvNet, evaluation_mode
from resdeep.uncertainty.methods import UncertaintyMethod


class DeepEnsemble(UncertaintyMethod):
    """Each member's deterministic softmax, (N, M, C): the members' disagreement is the
    ensemble's epistemic part, its mutual information."""

    name = label = "ensemble"

    def __init__(self, members: list[tuple[ConvNet, CheckpointInfo]]) -> None:
        self.members = members
        self.column = f"ensemble (M={len(members)})"

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        # Each member normalises the same uint8 images with its own statistics.
        return torch.stack(
            [
                member_probs(net, normalize(images, info.mean, info.std))
                for net, info in self.members
            ],
            dim=1,
        )

    def cost(self) -> dict[str, int]:
        return {"forward_passes": len(self.members)}

    def describe(self) -> dict[str, Any]:
        return {"members": [str(info.path) for _, info in self.members]}


def member_probs(model: ConvNet, inputs: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """One deterministic pass (dropout off): (N, C) softmax."""
    device = next(model.parameters()).device
    with torch.no_grad(), evaluation_mode(model):
        return torch.cat(
            [
                model(inputs[start : start + batch].to(device)).softmax(dim=1).float().cpu()
                for start in range(0, len(inputs), batch)
            ]
        )


def check_members(info: CheckpointInfo, members: list[CheckpointInfo]) -> None:
    """Members of an ensemble must see the same images with the same classes; only the seed
    (initialisation, batch order, validation draw, and so the normalisation statistics each
    member measured on its training split) may differ."""

    def setting(member: CheckpointInfo) -> dict[str, Any]:
        return {
            "data": dict(member.config.get("data", {})),
            "classes": list(member.classes),
            "input_shape": list(member.input_shape),
        }

    reference = setting(info)
    for member in members:
        difference = first_difference(setting(member), reference)
        if difference is not None:
            key, theirs, ours = difference
            raise UsageError(
                f"ensemble member {member.path} has {key}={_shown(theirs)} where {info.path} "
                f"has {_shown(ours)}; members must share data, split and classes"
            )


def first_difference(one: Any, other: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """(dotted key, one's value, other's value) of the first place two configs differ."""
    if isinstance(one, dict) and isinstance(other, dict):
        for name in [*one, *(k for k in other if k not in one)]:
            found = first_difference(one.get(name), other.get(name), f"{key}.{name}".lstrip("."))
            if found is not None:
                return found
        return None
    if isinstance(one, list) and isinstance(other, list) and len(one) == len(other):
        for index, (mine, theirs) in enumerate(zip(one, other, strict=True)):
            found = first_difference(mine, theirs, f"{key}[{index}]")
            if found is not None:
                return found
        return None
    return None if one == other else (key, one, other)


def _shown(value: Any, limit: int = 60) -> str:
    """A value short enough for a one-line error (a list of 100 class names is not)."""
    text = repr(value) if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    count = f" ({len(value)} items)" if isinstance(value, list | dict) else ""
    return f"{text[: limit - 5]}...{count}"
