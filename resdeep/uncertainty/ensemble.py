"""Deep ensembles (Lakshminarayanan et al. 2017): the members' deterministic softmaxes, averaged.
Members must see the same images with the same classes; only their seeds differ."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from resdeep.checkpoint import CheckpointInfo
from resdeep.errors import ResdeepError
from resdeep.models import ConvNet, restoring_modes


@dataclass
class Ensemble:
    """Deep ensemble (Lakshminarayanan et al. 2017): each member's deterministic softmax."""

    members: list[str]  # checkpoint paths
    probs: torch.Tensor  # (N, M, C) float32


def member_probs(model: ConvNet, inputs: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """One deterministic pass (dropout off): (N, C) softmax."""
    device = next(model.parameters()).device
    with torch.no_grad(), restoring_modes(model):
        model.eval()
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
        data = dict(member.config.get("data", {}))
        return {
            "data": data,
            "classes": list(member.classes),
            "input_shape": tuple(member.input_shape),
        }

    reference = setting(info)
    for member in members:
        theirs = setting(member)
        for key, value in reference.items():
            if theirs[key] != value:
                raise ResdeepError(
                    f"ensemble member {member.path} differs from {info.path} in its {key} "
                    f"({theirs[key]} vs {value}); members must share data, split and classes"
                )
