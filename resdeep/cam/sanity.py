"""Sanity checks for saliency maps (Adebayo et al., NeurIPS 2018): does a map change when what
the model learned is taken away?

- Model-parameter randomisation: the trained weights are replaced by freshly initialised ones
  from the classifier down, part by part (cascading), or one part at a time (independent), and
  every method's map of each image is compared with its map from the trained net.
- Data randomisation: a net of the same setting trained on permuted labels (`data.
  permute_labels=true`) learned nothing about the classes; its maps are compared with the
  trained net's, next to the maps of a second trained net (another seed), which shows how alike
  two nets that did learn make them.

Every map explains the same class, the trained net's prediction, so only the model changes. A
method whose maps survive randomisation shows the image, not the model: the image-only Sobel map
scored beside the methods keeps every similarity at 1 by construction and marks that end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from resdeep.cam.baselines import sobel_maps
from resdeep.cam.randomize import RANDOMIZATIONS, Randomization, randomized
from resdeep.cam.similarity import (
    Estimate,
    bootstrap_means,
    rank_correlation,
    ssim_window,
    structural_similarity,
)
from resdeep.cam.split_maps import ImageMaps, maps_of
from resdeep.choices import CAM_RANDOMIZATIONS
from resdeep.models import ConvNet

MEASURES = ("rank_abs", "rank_signed", "ssim")
MEASURE_LABELS = {
    "rank_abs": "rank correlation of |map|",
    "rank_signed": "rank correlation, signed",
    "ssim": "SSIM",
}
CONTROL = "Sobel edges"  # the image-only map
FIGURE_EXAMPLES = 1  # images whose maps the example figure draws at every cascading step


def similarities(original: ImageMaps, other: ImageMaps) -> dict[str, torch.Tensor]:
    """Per-image similarity of two map sets of the same images, for every measure: (N,) each."""
    return {
        "rank_abs": rank_correlation(original.signed.abs(), other.signed.abs()),
        "rank_signed": rank_correlation(original.signed, other.signed),
        "ssim": structural_similarity(original.shown, other.shown),
    }


@dataclass
class RandomizationResult:
    """One kind of randomisation: its steps, and per map (methods and the control) and measure
    the mean similarity to the original maps at each step, with intervals."""

    kind: str
    steps: list[Randomization]
    estimates: dict[str, dict[str, list[Estimate]]] = field(default_factory=dict)
    examples: dict[str, list[torch.Tensor]] = field(default_factory=dict)  # map -> (E, H, W)s
    per_image: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)  # per step

    def to_dict(self) -> dict:
        return {
            "steps": [{"label": step.label, "modules": list(step.modules)} for step in self.steps],
            "maps": {
                name: {
                    measure: [estimate.to_dict() for estimate in values]
                    for measure, values in by_measure.items()
                }
                for name, by_measure in self.estimates.items()
            },
            "per_image": self.per_image,
        }


@dataclass
class SanityResult:
    images: int
    methods: tuple[str, ...]
    fresh_seed: int
    randomizations: list[RandomizationResult]
    example_images: torch.Tensor  # (E, C, H, W) uint8, the examples' inputs
    originals: dict[str, ImageMaps]  # method -> the trained net's maps of every image
    data: dict[str, dict[str, dict[str, Estimate]]] | None = None  # method -> net -> measure
    data_nets: dict[str, str] = field(default_factory=dict)  # "permuted labels" -> its path
    warnings: list[str] = field(default_factory=list)  # about the nets compared
    data_per_image: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        size = tuple(self.example_images.shape[-2:])
        kernel, sigma = ssim_window(size)
        record = {
            "images": self.images,
            "methods": list(self.methods),
            "explained_class": "the trained net's prediction, for every net compared",
            "control": CONTROL,
            "fresh_weights": "the same net built again by resdeep (its own initialisation), "
            f"seed {self.fresh_seed}; parameters and batch-norm buffers",
            "measures": MEASURE_LABELS,
            "ssim_window": {"kernel_size": kernel, "sigma": sigma},
            "interval": "bootstrap 95 % over images (percentile)",
            "randomizations": {r.kind: r.to_dict() for r in self.randomizations},
        }
        if self.data is not None:
            record["data_randomization"] = {
                "nets": self.data_nets,
                "maps": {
                    method: {
                        net: {measure: e.to_dict() for measure, e in by_measure.items()}
                        for net, by_measure in nets.items()
                    }
                    for method, nets in self.data.items()
                },
                "per_image": self.data_per_image,
                "warnings": self.warnings,
            }
        return record


def _estimates(values: dict[str, list[torch.Tensor]], seed: int) -> dict[str, list[Estimate]]:
    """Each measure's per-step (N,) values -> the per-step estimates."""
    return {
        measure: bootstrap_means(torch.stack(steps).numpy(), seed)
        for measure, steps in values.items()
    }


def _rounded(values: torch.Tensor) -> list[float]:
    return [round(value, 6) for value in values.tolist()]


def _control_maps(images: torch.Tensor) -> ImageMaps:
    edges = sobel_maps(images)
    return ImageMaps(edges, edges, tuple(edges.shape[-2:]))


def randomization_tests(
    model: ConvNet,
    fresh: ConvNet,
    x: torch.Tensor,
    images: torch.Tensor,
    targets: torch.Tensor,
    methods: tuple[str, ...],
    *,
    kinds: tuple[str, ...] = CAM_RANDOMIZATIONS,
    layer: str | None,
    batch_size: int,
    seed: int,
    fresh_seed: int,
    on_maps: Callable[[], None] | None = None,
) -> SanityResult:
    """Model-parameter randomisation of `model` towards `fresh` for each kind in `kinds`.

    x: the preprocessed images (N, C, H, W) on the model's device; images: the same as uint8
    (the control is computed from them); targets: (N,) the classes the maps explain.
    on_maps: called after each method's maps of one net (progress).
    """
    originals = {}
    for method in methods:
        originals[method] = maps_of(model, x, method, targets, layer=layer, batch_size=batch_size)
        if on_maps:
            on_maps()
    control = _control_maps(images)
    shown = range(min(FIGURE_EXAMPLES, len(x)))
    results = []
    for kind in kinds:
        steps = RANDOMIZATIONS[kind](model)
        result = RandomizationResult(kind, steps)
        values = {m: {measure: [] for measure in MEASURES} for m in (*methods, CONTROL)}
        for step in steps:
            with randomized(model, fresh, step.modules):
                for method in methods:
                    maps = maps_of(model, x, method, targets, layer=layer, batch_size=batch_size)
                    for measure, value in similarities(originals[method], maps).items():
                        values[method][measure].append(value)
                    result.examples.setdefault(method, []).append(maps.shown[list(shown)])
                    if on_maps:
                        on_maps()
                # The control goes through the same path as the methods, inside the
                # randomised net's context: its similarity is 1 only if nothing leaks in.
                for measure, value in similarities(control, _control_maps(images)).items():
                    values[CONTROL][measure].append(value)
        result.estimates = {name: _estimates(v, seed) for name, v in values.items()}
        result.per_image = {
            name: {measure: [_rounded(v) for v in per_step] for measure, per_step in by.items()}
            for name, by in values.items()
        }
        results.append(result)
    return SanityResult(
        images=len(x),
        methods=methods,
        fresh_seed=fresh_seed,
        randomizations=results,
        example_images=images[list(shown)].cpu(),
        originals=originals,
    )


def data_randomization_test(
    result: SanityResult,
    nets: dict[str, ConvNet],
    x: torch.Tensor,
    targets: torch.Tensor,
    *,
    layer: str | None,
    batch_size: int,
    seed: int,
    on_maps: Callable[[], None] | None = None,
) -> None:
    """Fill `result.data`: each net's maps (the permuted-label net, and the second trained seed
    when given) compared with `model`'s, per method and measure."""
    data: dict[str, dict[str, dict[str, Estimate]]] = {}
    for method in result.methods:
        original = result.originals[method]
        data[method] = {}
        for name, net in nets.items():
            maps = maps_of(net, x, method, targets, layer=layer, batch_size=batch_size)
            values = similarities(original, maps)
            data[method][name] = {
                measure: bootstrap_means(value.numpy(), seed)[0]
                for measure, value in values.items()
            }
            per_image = result.data_per_image.setdefault(method, {})
            per_image[name] = {measure: _rounded(value) for measure, value in values.items()}
            if on_maps:
                on_maps()
    result.data = data
