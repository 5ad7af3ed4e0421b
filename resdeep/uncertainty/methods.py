"""One shape for every uncertainty method: uint8 images in, (N, T, C) probabilities out.

T is the method's samples per image: 1 for a deterministic pass (and its temperature-scaled
version), the dropout samples for MC dropout, the members for a deep ensemble. Each method
normalises the images itself (ensemble members with their own statistics) and says what one
image costs, so evaluation, tables and files loop over a list of methods and special-case none.
"""

from __future__ import annotations

from typing import Any

import torch

from resdeep.checkpoint import CheckpointInfo
from resdeep.data import normalize
from resdeep.models import ConvNet
from resdeep.uncertainty.sampling import (
    DEFAULT_BATCH_ROWS,
    check_samples,
    deterministic_predict,
    is_head_only,
    mc_predict,
)


class UncertaintyMethod:
    """A method's names, its call and its cost; subclasses set the names and define the call."""

    name: str  # its section in the JSON and in the cost
    label: str  # its row in the comparison and OOD tables
    column: str  # its column in the per-metric table
    single_pass = False  # T = 1 by construction: its --save-probs array is (N, C)

    @property
    def probs_key(self) -> str:
        """Its array in the --save-probs file (with ood_ / val_ in front for those splits)."""
        return f"{self.name}_probs"

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """(N, T, C) probabilities for uint8 images (N, channels, H, W); `seed` seeds what the
        method samples (nothing, for a deterministic one)."""
        raise NotImplementedError

    def cost(self) -> dict[str, int]:
        """Per image: full forward passes (and head-only samples where it has them)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What opens its JSON section before the numbers (an ensemble: its members)."""
        return {}


class Deterministic(UncertaintyMethod):
    """One pass with dropout off: the net as trained."""

    name = label = column = "deterministic"
    single_pass = True

    def __init__(
        self, model: ConvNet, info: CheckpointInfo, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> None:
        self.model, self.info, self.batch_rows = model, info, batch_rows

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        inputs = normalize(images, self.info.mean, self.info.std)
        return deterministic_predict(self.model, inputs, self.batch_rows).unsqueeze(1)

    def cost(self) -> dict[str, int]:
        return {"forward_passes": 1}


class MCDropout(UncertaintyMethod):
    """MC dropout (Gal & Ghahramani 2016): T passes with dropout sampling, batch norm in eval."""

    name, label = "mc_dropout", "MC dropout"

    def __init__(
        self,
        model: ConvNet,
        info: CheckpointInfo,
        samples: int,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        check_samples(samples)
        self.model, self.info, self.samples, self.batch_rows = model, info, samples, batch_rows
        self.column = f"MC dropout (T={samples})"

    @property
    def probs_key(self) -> str:
        return "probs"

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        inputs = normalize(images, self.info.mean, self.info.std)
        predictions = mc_predict(
            self.model, inputs, samples=self.samples, seed=seed, batch_rows=self.batch_rows
        )
        return predictions.samples

    def cost(self) -> dict[str, int]:
        # Head-only dropout: one feature pass (the deterministic one), then T samples of the
        # classifier alone; otherwise T full passes besides the deterministic one.
        head_only = is_head_only(self.model)
        return {
            "forward_passes": 1 if head_only else self.samples + 1,
            "head_samples": self.samples if head_only else 0,
        }
