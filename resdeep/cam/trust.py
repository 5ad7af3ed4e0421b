"""Can a checkpoint's maps be trusted? The sanity checks and faithfulness scores of `resdeep cam
--sanity / --faithfulness` on one set of images: the checkpoint's test split, or the images the
call names (an imported CIFAR net has its images, not its data set, here).

Every map explains the trained net's predicted class, so images without labels work the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from resdeep.cam.baselines import BASELINES, baseline_maps
from resdeep.cam.explain import ExplainSettings
from resdeep.cam.faithfulness import (
    ROAD_FRACTIONS,
    SCORES,
    MapScores,
    canvases,
    score_maps,
    step_counts,
    target_probabilities,
)
from resdeep.cam.imputation import DEFAULT_NOISE
from resdeep.cam.randomize import RANDOMIZATIONS
from resdeep.cam.sanity import (
    SanityResult,
    data_randomization_test,
    randomization_tests,
)
from resdeep.cam.similarity import Estimate, bootstrap_means, paired_difference
from resdeep.cam.split_maps import ImageMaps, maps_of
from resdeep.cam.trust_settings import Progress, TrustSettings
from resdeep.checkpoint import CheckpointInfo, load_checkpoint, network_difference
from resdeep.data import normalize
from resdeep.errors import ResdeepError, UsageError
from resdeep.models import ConvNet, evaluation_mode

# Offsets the randomised weights' seed from --seed, so they are never the run's own initial
# weights (runs are seeded 0, 1, 2, ...); a trained net stays close to where it started.
FRESH_SEED_OFFSET = 1_000_003

# A bootstrap over a handful of images understates its own spread (three images have ten
# distinct resamples): below this many, intervals are shown but nothing is called better.
VERDICT_MIN_IMAGES = 10


@dataclass(frozen=True)
class EvaluatedImages:
    """The images the maps are checked on."""

    name: str  # "digits_placed test split", "3 images"
    images: torch.Tensor  # (N, C, H, W) uint8 on the CPU
    x: torch.Tensor  # (N, C, H, W) preprocessed, on the model's device
    targets: torch.Tensor  # (N,) the trained net's predicted classes


def evaluated_images(
    model: ConvNet, info: CheckpointInfo, images: torch.Tensor, name: str, batch_size: int
) -> EvaluatedImages:
    """uint8 images -> the evaluated set, each explained for its predicted class."""
    if len(images) < 2:
        raise UsageError(
            f"the checks need at least 2 images for their intervals; got {len(images)}"
        )
    device = next(model.parameters()).device
    x = normalize(images, info.mean, info.std).to(device)
    with torch.no_grad(), evaluation_mode(model):
        logits = torch.cat([model(x[s : s + batch_size]) for s in range(0, len(x), batch_size)])
    return EvaluatedImages(name, images.cpu(), x, logits.argmax(dim=1))


def test_split_images(model: ConvNet, info: CheckpointInfo, batch_size: int) -> EvaluatedImages:
    """The checkpoint's test split, rebuilt from its stored config."""
    from resdeep.config import checkpoint_data

    test = checkpoint_data(info).test
    if len(test) == 0:
        raise UsageError(f"{info.path}: its test split holds no images to check the maps on")
    return evaluated_images(model, info, test.images, f"{info.data_name} test split", batch_size)


def file_images(
    model: ConvNet, info: CheckpointInfo, paths: list[Path], crop: str, batch_size: int
) -> EvaluatedImages:
    """Image files, read as the overlays read them (the same crop, resize and channels)."""
    from resdeep.images import crop_to_view, input_pixels, read_image

    pixels = []
    for path in paths:
        try:
            seen, _ = crop_to_view(read_image(path), crop)
            pixels.append(input_pixels(seen, info))
        except ResdeepError:
            continue  # said already, with the overlays
    if not pixels:
        raise ResdeepError("no readable images to check the maps on")
    return evaluated_images(model, info, torch.cat(pixels), "images given", batch_size)


def fresh_weights(info: CheckpointInfo, seed: int, device: torch.device) -> tuple[ConvNet, int]:
    """The checkpoint's net built again with resdeep's initialisation for it, never trained:
    (net in eval mode, its seed). The global random streams (Python's, NumPy's, torch's) are
    left as they were."""
    import random

    from resdeep.config import fresh_model

    fresh_seed = FRESH_SEED_OFFSET + seed
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cuda = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            fresh = fresh_model(info.model_kwargs, fresh_seed, device).eval()
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return fresh, fresh_seed


def comparison_net(
    path: Path, info: CheckpointInfo, *, permuted: bool, device: torch.device
) -> tuple[ConvNet, str | None]:
    """A second training of the checkpoint's setting for the data test: (net, a warning or None).

    The permuted-label net is its run's last.pt: its best.pt is chosen by true-label validation
    accuracy, which it never earns, so only the last checkpoint has memorised the labels. The
    other seed is read as the checkpoint itself was (best.pt of a run directory).
    """
    option = "--permuted" if permuted else "--other-seed"
    last = path / "checkpoints" / "last.pt"
    net, other = load_checkpoint(last if permuted and last.is_file() else path, device)
    difference = network_difference(info, other)
    if difference is not None:
        raise UsageError(
            f"{option} {path}: not the same network as {info.path} ({difference}); the data "
            "randomisation test compares two trainings of one setting"
        )
    shuffled = bool((other.config.get("data") or {}).get("permute_labels", False))
    if shuffled != permuted:
        raise UsageError(
            f"{option} {path}: trained with data.permute_labels={str(shuffled).lower()}; "
            + ("the test needs a net trained on shuffled labels" if permuted
               else "the reference is a second net trained on the true labels")
        )  # fmt: skip
    warning = None
    if other.config.get("seed") == info.config.get("seed"):
        warning = (
            f"{option} {path} has the seed of {info.path} (seed {other.config.get('seed')}): "
            "the same initial weights make their maps more alike; train it with another seed"
        )
    return net.eval(), warning


def check_sanity(
    model: ConvNet,
    info: CheckpointInfo,
    evaluated: EvaluatedImages,
    settings: TrustSettings,
    explain: ExplainSettings,
    progress: Progress | None = None,
) -> SanityResult:
    device = next(model.parameters()).device
    fresh, fresh_seed = fresh_weights(info, settings.seed, device)
    steps = sum(len(RANDOMIZATIONS[kind](model)) for kind in settings.randomizations)
    data_nets: dict[str, Path] = {}
    if settings.permuted is not None:
        data_nets["permuted labels"] = settings.permuted
    if settings.other_seed is not None:
        data_nets["another seed"] = settings.other_seed
    nets, warnings = {}, []
    for name, path in data_nets.items():
        nets[name], warning = comparison_net(
            path, info, permuted=name == "permuted labels", device=device
        )
        warnings += [warning] if warning else []
    total = len(explain.methods) * (1 + steps + len(nets))
    if progress:
        progress("sanity checks: maps of the trained and randomised nets", total)
    advance = (lambda: progress("", 1)) if progress else None
    common = dict(layer=explain.layer, batch_size=explain.batch_size, seed=settings.seed)
    result = randomization_tests(
        model, fresh, evaluated.x, evaluated.images, evaluated.targets, explain.methods,
        kinds=settings.randomizations, fresh_seed=fresh_seed, on_maps=advance, **common,
    )  # fmt: skip
    if nets:
        data_randomization_test(
            result, nets, evaluated.x, evaluated.targets, on_maps=advance, **common
        )
        result.data_nets = {name: str(path) for name, path in data_nets.items()}
    result.warnings = warnings
    return result


@dataclass
class FaithfulnessResult:
    images: int
    methods: tuple[str, ...]
    steps: int
    fractions: list[float]  # of the pixels, at each curve point
    canvas: dict
    road: bool
    seed: int
    scores: dict[str, MapScores] = field(default_factory=dict)  # methods, then baselines

    @property
    def baselines(self) -> tuple[str, ...]:
        return tuple(name for name in self.scores if name not in self.methods)

    # The summaries bootstrap every score (and every method-baseline pair): computed once, on
    # first use, when `scores` is complete; the tables, the figure and the JSON share them.
    @cached_property
    def estimates(self) -> dict[str, dict[str, Estimate]]:
        """Map set -> score -> mean over images with its interval."""
        return {
            name: {
                score: bootstrap_means(values, self.seed)[0]
                for score, values in scores.per_image().items()
            }
            for name, scores in self.scores.items()
        }

    @cached_property
    def verdicts(self) -> dict[str, dict[str, dict[str, dict]]]:
        """Method -> baseline -> score -> the paired difference (method - baseline) over the same
        images with its interval, and "better" / "worse" only when the interval excludes 0."""
        verdicts: dict[str, dict[str, dict[str, dict]]] = {}
        for method in self.methods:
            own = self.scores[method].per_image()
            verdicts[method] = {}
            for baseline in self.baselines:
                theirs = self.scores[baseline].per_image()
                verdicts[method][baseline] = {}
                for score, higher_is_better in SCORES.items():
                    if score not in own:
                        continue
                    difference = paired_difference(own[score], theirs[score], self.seed)
                    verdict = "not separated"
                    if self.images < VERDICT_MIN_IMAGES:
                        verdict = "too few images"
                    elif difference.low > 0 or difference.high < 0:
                        ahead = (difference.low > 0) == higher_is_better
                        verdict = "better" if ahead else "worse"
                    verdicts[method][baseline][score] = {**difference.to_dict(), "verdict": verdict}
        return verdicts

    def mean_curves(self) -> dict[str, dict[str, list[float]]]:
        return {
            name: {
                "deletion": scores.deletion.mean(dim=0).tolist(),
                "insertion": scores.insertion.mean(dim=0).tolist(),
            }
            for name, scores in self.scores.items()
        }

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "explained_class": "the trained net's prediction",
            "score": "softmax probability of the explained class",
            "steps": self.steps,
            "fractions": self.fractions,
            "canvas": self.canvas,
            "ties": "pixels of equal relevance in a seeded random order (deletion, insertion, "
            "ROAD alike)",
            "road": {
                "fractions": list(ROAD_FRACTIONS),
                "scores": "probability of the explained class after removal",
                "imputation": f"noisy linear (8 neighbours), noise std {DEFAULT_NOISE} in "
                "normalised units",
                "combined": "mean over fractions of (LeRF - MoRF) / 2 (pytorch-grad-cam's "
                "ROADCombined)",
            }
            if self.road
            else None,
            "baselines": list(self.baselines),
            "interval": "bootstrap 95 % over images (percentile); verdicts from the paired "
            "difference over the same images, only where its interval excludes 0 and at least "
            f"{VERDICT_MIN_IMAGES} images are scored",
            "scores": {
                name: {score: e.to_dict() for score, e in by_score.items()}
                for name, by_score in self.estimates.items()
            },
            "per_image": {
                name: {score: np.round(v, 6).tolist() for score, v in scores.per_image().items()}
                for name, scores in self.scores.items()
            },
            "per_image_curves": {
                name: {
                    "deletion": _rounded(scores.deletion),
                    "insertion": _rounded(scores.insertion),
                    **(
                        {
                            "road_morf": _rounded(scores.road_morf),
                            "road_lerf": _rounded(scores.road_lerf),
                        }
                        if scores.road_morf is not None and scores.road_lerf is not None
                        else {}
                    ),
                }
                for name, scores in self.scores.items()
            },
            "mean_curves": self.mean_curves(),
            "verdicts": self.verdicts,
        }


def _rounded(values: torch.Tensor) -> list:
    """(N, K) values as nested lists, to 6 decimals (the JSON stays a few MB)."""
    return np.round(values.numpy().astype(np.float64), 6).tolist()


def check_faithfulness(
    model: ConvNet,
    evaluated: EvaluatedImages,
    settings: TrustSettings,
    explain: ExplainSettings,
    progress: Progress | None = None,
    known_maps: dict[str, ImageMaps] | None = None,
) -> FaithfulnessResult:
    """Deletion, insertion and ROAD of every method and every baseline map.

    known_maps: the methods' maps when the sanity checks computed them already.
    """
    x, targets = evaluated.x, evaluated.targets
    known_maps = known_maps or {}
    total = len(explain.methods) + len(BASELINES)
    if progress:
        progress(
            "faithfulness: deletion, insertion" + (" and ROAD" if settings.road else ""), total
        )
    maps = {}
    low = None
    for method in explain.methods:
        found = known_maps.get(method) or maps_of(
            model, x, method, targets, layer=explain.layer, batch_size=explain.batch_size
        )
        maps[method], low = found.shown, found.low
    # One stream each for the random baselines, the order of tied pixels and ROAD's noise:
    # drawn from one generator, a method's ties would be ordered like the random map itself.
    baseline_seed, order_seed, noise_seed = (
        int(child.generate_state(1)[0]) for child in np.random.SeedSequence(settings.seed).spawn(3)
    )
    generator = torch.Generator().manual_seed(baseline_seed)
    maps.update(baseline_maps(evaluated.images, low, generator))
    canvas = canvases(x)
    batch = explain.batch_size
    ends = tuple(
        target_probabilities(model, images, targets, batch)
        for images in (x, canvas.deletion, canvas.insertion)
    )
    pixels = x[0, 0].numel()
    result = FaithfulnessResult(
        images=len(x),
        methods=explain.methods,
        steps=settings.steps,
        fractions=[count / pixels for count in step_counts(pixels, settings.steps)],
        canvas=canvas.describe(),
        road=settings.road,
        seed=settings.seed,
    )
    for name, map_set in maps.items():
        result.scores[name] = score_maps(
            model, x, map_set.to(x.device), targets, canvas, steps=settings.steps,
            road=settings.road, order_seed=order_seed, noise_seed=noise_seed, batch_size=batch,
            ends=ends,
        )  # fmt: skip
        if progress:
            progress("", 1)
    return result
