"""The analysis-side variants: MC-dropout sampling and class activation maps, through the same
functions `resdeep uncertainty` and `resdeep cam` call."""

from __future__ import annotations

from collections.abc import Callable

import torch

from resdeep.bench.timing import Variant, timed
from resdeep.cam import compute_cam
from resdeep.models import ConvNet
from resdeep.uncertainty import mc_predict


def deterministic_pass_variant(model: ConvNet, images: torch.Tensor) -> Variant:
    """One ordinary prediction of the batch: eval mode, dropout off, softmax."""

    def predict() -> torch.Tensor:
        model.eval()
        with torch.no_grad():
            return model(images).softmax(dim=1)

    return Variant("deterministic_pass", lambda count: _repeat(images.device, predict, count))


def mc_dropout_variant(model: ConvNet, images: torch.Tensor, samples: int) -> Variant:
    """T-sample MC dropout as the uncertainty tool runs it (the head-only path is detected)."""

    def predict() -> object:
        return mc_predict(model, images, samples=samples)

    return Variant(f"mc_dropout_t{samples}", lambda count: _repeat(images.device, predict, count))


def cam_variant(model: ConvNet, images: torch.Tensor, method: str) -> Variant:
    """Maps of the predicted class for the batch, upsampled to the input size."""

    def maps() -> torch.Tensor:
        return compute_cam(model, images, method=method)

    return Variant(method, lambda count: _repeat(images.device, maps, count))


def _repeat(device: torch.device, work: Callable[[], object], count: int) -> float:
    def repeated() -> None:
        for _ in range(count):
            work()

    return timed(device, repeated)
