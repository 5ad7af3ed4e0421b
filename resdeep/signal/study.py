"""One net's signal study: the inputs it is probed with, its batch-norm statistics at
initialisation, and the measurements of resdeep.signal (propagation, mean-field prediction,
gradients along lines), as one record."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from resdeep.batch_norm import calibrate_batch_norm
from resdeep.choices import SIGNAL_INPUTS
from resdeep.errors import UsageError
from resdeep.io import finite_or_none
from resdeep.signal.mean_field import MeanFieldPrediction, is_plain_unnormalized, predict_plain
from resdeep.signal.measure import Propagation, measure_propagation
from resdeep.signal.shattering import LineGradients, line_gradients, mean_over_lines

# The size N(0, 1) inputs take when none is given: the CIFAR nets' native 32 x 32.
NORMAL_SIZE = 32


@dataclass(frozen=True)
class SignalSettings:
    inputs: str = "data"  # the configured data set's images, or N(0, 1) noise
    image_size: int | None = None  # N(0, 1) inputs' side (default 32); data keeps its own
    batch: int = 64  # images the propagation is measured on
    points: int = 256  # points along each line
    pairs: int = 5  # lines, each between two test images (or two N(0, 1) draws)
    max_lag: int = 32  # the autocorrelation's largest lag
    bn_images: int = 512  # training images that set batch norm's statistics at initialisation
    seed: int = 0  # of the inputs drawn, not of the nets (their seed is the config's)

    def check(self) -> None:
        if self.inputs not in SIGNAL_INPUTS:
            raise UsageError(
                f"--inputs must be one of {', '.join(SIGNAL_INPUTS)}, got {self.inputs!r}"
            )
        for name, least in (("batch", 2), ("points", 3), ("pairs", 1), ("max_lag", 1)):
            if getattr(self, name) < least:
                option = name.replace("_", "-")
                raise UsageError(f"--{option} must be at least {least}, got {getattr(self, name)}")
        if self.image_size is not None:
            if self.inputs != "normal":
                raise UsageError(
                    "--image-size sets the size of N(0, 1) inputs (--inputs normal); to resize "
                    "the data set, override data.image_size=N"
                )
            if self.image_size < 4:
                raise UsageError(f"--image-size must be at least 4, got {self.image_size}")


@dataclass(frozen=True)
class Probe:
    """What a net is measured on: a batch for the propagation, images for batch norm's
    statistics, and the two ends of each line."""

    batch: torch.Tensor
    calibration: torch.Tensor
    lines: list[tuple[torch.Tensor, torch.Tensor]]

    def to(self, device: torch.device) -> Probe:
        return Probe(
            self.batch.to(device),
            self.calibration.to(device),
            [(a.to(device), b.to(device)) for a, b in self.lines],
        )


def data_probe(
    train: torch.Tensor,
    test: torch.Tensor,
    settings: SignalSettings,
    normalize: Callable[[torch.Tensor], torch.Tensor],
) -> Probe:
    """From a data set's images (only those used are normalised, so a large split costs no
    copy): batch norm's statistics from the first training images, the batch and the lines'
    ends from the test split (the ends drawn with the settings' seed; more lines than pairs of
    distinct images reuse them)."""
    if len(test) < 2:
        raise UsageError("the test split needs at least two images to draw a line between")
    generator = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(len(test), generator=generator)
    ends = normalize(test[torch.stack([order[i % len(test)] for i in range(2 * settings.pairs)])])
    lines = [(ends[2 * i], ends[2 * i + 1]) for i in range(settings.pairs)]
    return Probe(normalize(test[: settings.batch]), normalize(train[: settings.bn_images]), lines)


def normal_probe(shape: tuple[int, int, int], settings: SignalSettings) -> Probe:
    generator = torch.Generator().manual_seed(settings.seed)
    draw = lambda n: torch.randn((n, *shape), generator=generator)  # noqa: E731
    ends = draw(2 * settings.pairs)
    return Probe(
        draw(settings.batch),
        draw(settings.bn_images),
        [(ends[2 * i], ends[2 * i + 1]) for i in range(settings.pairs)],
    )


@dataclass
class NetSignal:
    """One net's measurements. `about` says which net: arch, depth, init, norm, residual_init,
    seed, data, and `state` ("init" or "trained"); `run` for a checkpoint's."""

    about: dict[str, Any]
    propagation: Propagation
    mean_field: MeanFieldPrediction | None
    line: LineGradients
    seconds: float
    fits: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "about": self.about,
            "propagation": self.propagation.as_json(),
            "mean_field": None if self.mean_field is None else asdict(self.mean_field),
            "line": finite_or_none(
                {k: v for k, v in asdict(self.line).items() if k != "similarity"}
            ),
            "fits": self.fits,
            "seconds": self.seconds,
        }


def measure_net(
    model: nn.Module, probe: Probe, settings: SignalSettings, about: dict[str, Any]
) -> NetSignal:
    """Every measurement of one net; a fresh net (`about["state"] == "init"`) first gets batch
    norm statistics from the probe's calibration images."""
    started = time.perf_counter()
    if about["state"] == "init":
        calibrate_batch_norm(model, probe.calibration)
    propagation = measure_propagation(model, probe.batch, settings.seed)
    mean_field = predict_plain(model, probe.batch) if is_plain_unnormalized(model) else None
    line = mean_over_lines(
        [
            line_gradients(model, a, b, points=settings.points, max_lag=settings.max_lag)
            for a, b in probe.lines
        ]
    )
    fits = layer_fits(propagation, mean_field)
    return NetSignal(about, propagation, mean_field, line, time.perf_counter() - started, fits)


def interior_of_stage1(propagation: Propagation) -> list[int]:
    """Indices of stage 1's convs without its first and last: away from the stem's raw input
    and from the stride that follows (at least one conv even in the shallowest net)."""
    stage1 = [i for i, layer in enumerate(propagation.layers) if layer.stage == 1]
    return stage1[1:-1] or stage1


def log2_slope(values: list[float]) -> float | None:
    """Least-squares slope of log2(values) per layer; None with fewer than two finite values."""
    finite = [(i, math.log2(v)) for i, v in enumerate(values) if v > 0 and math.isfinite(v)]
    if len(finite) < 2:
        return None
    x, y = np.array(finite).T
    return float(np.polyfit(x, y, 1)[0])


def layer_fits(propagation: Propagation, mean_field: MeanFieldPrediction | None) -> dict[str, Any]:
    """The measured forward and backward slopes (log2 change per conv) in stage 1's interior;
    with a mean-field prediction, its slopes and the worst ratio measured / predicted there."""
    index = interior_of_stage1(propagation)
    forward = [propagation.layers[i].forward.second for i in index]
    backward = [propagation.layers[i].backward for i in index]
    fits: dict[str, Any] = {
        "layers": [propagation.layers[i].name for i in index],
        "forward_slope": log2_slope(forward),
        "backward_slope": log2_slope(backward),
    }
    if mean_field is not None:
        for name, predicted, measured in (
            ("forward", mean_field.forward, forward),
            ("one_step", mean_field.one_step, forward),
            ("backward", mean_field.backward, backward),
        ):
            ratios = [m / predicted[i] for m, i in zip(measured, index, strict=True)]
            fits[f"theory_{name}_slope"] = log2_slope([predicted[i] for i in index])
            fits[f"theory_{name}_worst"] = max(ratios, key=lambda r: abs(r - 1))
    return fits
