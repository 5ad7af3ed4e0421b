"""Score a checkpoint: on its data set (with an optional OOD set), or on a few images.

On a data set every method (resdeep.uncertainty.methods: one call, (N, T, C) probabilities,
one cost) is scored the same way, in a loop. The summaries are computed from the float32
probabilities that `--save-probs` writes, cast to float64, so anyone can recompute every
reported number from that file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resdeep.checkpoint import CheckpointInfo
from resdeep.config import checkpoint_data
from resdeep.errors import ResdeepError
from resdeep.images import crop_to_view, input_warning, preprocess, read_image
from resdeep.models import ConvNet
from resdeep.uncertainty import metrics
from resdeep.uncertainty.calibration import TemperatureScaled, temperature_summary
from resdeep.uncertainty.data import in_distribution, ood_images
from resdeep.uncertainty.ensemble import DeepEnsemble, check_members
from resdeep.uncertainty.laplace import LastLayerLaplace
from resdeep.uncertainty.methods import Deterministic, MCDropout, UncertaintyMethod
from resdeep.uncertainty.sampling import DEFAULT_BATCH_ROWS, Predictions, mc_predict

SCORES = ("max_prob", "entropy", "mutual_information")


def uncertainty_scores(samples: torch.Tensor) -> dict[str, torch.Tensor | None]:
    """Per-input uncertainty (higher = less sure) from (N, T, C) samples.

    Mutual information is None for a single pass (T = 1), where it is 0 for every input.
    """
    return {
        "max_prob": 1.0 - metrics.mean_probs(samples).max(dim=1).values,
        "entropy": metrics.predictive_entropy(samples),
        "mutual_information": (
            metrics.mutual_information(samples) if samples.shape[1] > 1 else None
        ),
    }


def prediction_summary(samples: torch.Tensor, labels: torch.Tensor, bins: int) -> dict[str, Any]:
    """Calibration, uncertainty and misclassification-detection numbers for (N, T, C) samples.

    A deterministic pass is the case T = 1.
    """
    probs = metrics.mean_probs(samples)  # (N, C)
    wrong = probs.argmax(dim=1) != labels
    scores = uncertainty_scores(samples)
    return {
        "accuracy": metrics.accuracy(probs, labels),
        "nll": metrics.nll(probs, labels),
        "brier": metrics.brier(probs, labels),
        "ece": metrics.expected_calibration_error(probs, labels, bins),
        "mean_predictive_entropy": metrics.predictive_entropy(samples).mean().item(),
        "mean_expected_entropy": metrics.expected_entropy(samples).mean().item(),
        "mean_mutual_information": metrics.mutual_information(samples).mean().item(),
        "auroc_misclassification": {
            name: None if score is None else metrics.auroc(score, wrong)
            for name, score in scores.items()
        },
        "aurc": {
            name: None if score is None else metrics.aurc(score, wrong)
            for name, score in scores.items()
        },
    }


def ood_summary(in_samples: torch.Tensor, ood_samples: torch.Tensor) -> dict[str, Any]:
    """AUROC, AUPR (OOD as the positive class) and FPR at 95 % TPR, per uncertainty score."""
    is_ood = torch.cat(
        [
            torch.zeros(len(in_samples), dtype=torch.bool),
            torch.ones(len(ood_samples), dtype=torch.bool),
        ]
    )
    in_scores, ood_scores = uncertainty_scores(in_samples), uncertainty_scores(ood_samples)
    summary = {}
    for name in SCORES:
        if in_scores[name] is None:
            continue
        score = torch.cat([in_scores[name], ood_scores[name]])
        summary[name] = {
            "auroc": metrics.auroc(score, is_ood),
            "aupr": metrics.average_precision(score, is_ood),
            "fpr_at_95_tpr": metrics.fpr_at_tpr(score, is_ood, 0.95),
        }
    return summary


@dataclass
class Scored:
    """One method's probabilities on the scored split (and the OOD set), and its time there."""

    method: UncertaintyMethod
    probs: torch.Tensor  # (N, T, C), the dtype the method computes in
    ood: torch.Tensor | None  # (M, T, C) on the OOD set
    seconds: float  # wall time of its call on the scored split


def score(
    method: UncertaintyMethod, images: torch.Tensor, ood: torch.Tensor | None, seed: int
) -> Scored:
    started = time.perf_counter()
    probs = method(images, seed)
    seconds = time.perf_counter() - started
    # Its own seed stream: the in-distribution numbers do not change when an OOD set is added.
    ood_probs = None if ood is None else method(ood, seed + 1)
    return Scored(method, probs, ood_probs, seconds)


def build_methods(
    model: ConvNet,
    info: CheckpointInfo,
    *,
    samples: int,
    seed: int,
    calibrate: str | None,
    members: list[tuple[ConvNet, CheckpointInfo]],
    batch_rows: int,
    mc_dropout: bool = True,
    laplace: str | None = None,
) -> list[UncertaintyMethod]:
    """The single net's passes (deterministic, and MC dropout unless `mc_dropout` is False),
    their temperature-scaled versions when `calibrate` is "temperature" (fitted on the val
    split), the last-layer Laplace posterior when `laplace` names how its prior precision is
    chosen ("marglik", "val-nll" or a number; fitted on the train split), and the deep
    ensemble when there are `members`."""
    single: list[UncertaintyMethod] = [Deterministic(model, info, batch_rows)]
    if mc_dropout:
        single.append(MCDropout(model, info, samples, batch_rows))
    methods = list(single)
    if calibrate == "temperature" or laplace is not None:
        data = checkpoint_data(info)
    if calibrate == "temperature":
        # Its own seed stream, like the OOD set's: adding calibration changes no other number.
        methods += [
            TemperatureScaled.fit(base, data.val.images, data.val.labels, seed + 2)
            for base in single
        ]
    if laplace is not None:
        methods.append(
            LastLayerLaplace.fit(
                model,
                info,
                train_images=data.train.images,
                val_images=data.val.images,
                val_labels=data.val.labels,
                samples=samples,
                seed=seed + 3,
                prior=laplace,
                batch_rows=batch_rows,
            )  # fmt: skip
        )
    if members:
        check_members(info, [member_info for _, member_info in members])
        methods.append(DeepEnsemble(members))
    return methods


def summarize_dataset(
    scored: list[Scored], labels: torch.Tensor, *, samples: int, bins: int, ood_name: str | None
) -> dict[str, Any]:
    """The JSON document of data-set mode, from probabilities alone (cast to float64)."""
    summary: dict[str, Any] = {"n": len(labels), "samples": samples, "bins": bins}
    for part in scored:
        numbers = prediction_summary(part.probs.double(), labels, bins)
        summary[part.method.name] = {**part.method.describe(), **numbers}
    with_ood = [part for part in scored if part.ood is not None]
    if with_ood:
        summary["ood"] = {"data": ood_name, "n": len(with_ood[0].ood)}
        for part in with_ood:
            summary["ood"][part.method.name] = ood_summary(part.probs.double(), part.ood.double())
    tempered = [part.method for part in scored if isinstance(part.method, TemperatureScaled)]
    if tempered:
        summary["temperature"] = temperature_summary(tempered)
    ms = 1000.0 / len(labels)
    summary["cost"] = {
        part.method.name: {**part.method.cost(), "ms_per_image": part.seconds * ms}
        for part in scored
    }
    return summary


@dataclass
class DatasetEvaluation:
    summary: dict[str, Any]  # the JSON document
    labels: torch.Tensor  # (N,) int64
    scored: list[Scored]  # every method, in the tables' order

    def arrays(self) -> dict[str, torch.Tensor]:
        """What --save-probs writes: labels, and each method's probabilities on the scored split
        (and the OOD set, and the val split a temperature was fitted on), so every number in
        the JSON can be recomputed; a single-pass method's as (N, C)."""
        arrays = {"labels": self.labels}
        for part in self.scored:
            method = part.method
            arrays[method.probs_key] = saved_layout(method, part.probs)
            if part.ood is not None:
                arrays[f"ood_{method.probs_key}"] = saved_layout(method, part.ood)
        tempered = [
            part.method for part in self.scored if isinstance(part.method, TemperatureScaled)
        ]
        if tempered:
            arrays["temperatures"] = torch.tensor(
                [m.temperature for m in tempered], dtype=torch.float64
            )
            for method in tempered:
                arrays[f"val_{method.base.probs_key}"] = saved_layout(method.base, method.val_probs)
            arrays["val_labels"] = tempered[0].val_labels
        return arrays


def saved_layout(method: UncertaintyMethod, probs: torch.Tensor) -> torch.Tensor:
    """The probabilities as --save-probs keeps them: (N, C) for a single-pass method."""
    return probs[:, 0] if method.single_pass else probs


def evaluate_dataset(
    model: ConvNet,
    info: CheckpointInfo,
    *,
    split: str = "test",
    samples: int = 32,
    seed: int = 0,
    bins: int = 15,
    ood_data: str | None = None,
    calibrate: str | None = None,
    members: list[tuple[ConvNet, CheckpointInfo]] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    mc_dropout: bool = True,
    laplace: str | None = None,
) -> DatasetEvaluation:
    """Every method of `build_methods` on the run's `split`, and on OOD set `ood_data` when
    given."""
    data = in_distribution(info, split)
    ood = None
    if ood_data is not None:
        ood = ood_images(ood_data, info, split=split, count=len(data), seed=seed)
    methods = build_methods(
        model, info, samples=samples, seed=seed, calibrate=calibrate, members=members or [],
        batch_rows=batch_rows, mc_dropout=mc_dropout, laplace=laplace,
    )  # fmt: skip
    scored = [score(method, data.images, ood, seed) for method in methods]
    summary = {
        "checkpoint": str(info.path),
        "data": info.data_name,
        "split": split,
        "seed": seed,
        **summarize_dataset(scored, data.labels, samples=samples, bins=bins, ood_name=ood_data),
    }
    return DatasetEvaluation(summary, data.labels, scored)


@dataclass
class ImageEvaluation:
    summary: dict[str, Any] | None  # the JSON document (None: no image could be read)
    predictions: Predictions | None
    originals: list[Any]  # the images as read, upright, for display
    failures: list[str] = field(default_factory=list)  # one line per unreadable image
    # (path, sentence) per image too far from the training images for its answer to mean much
    warnings: list[tuple[Path, str]] = field(default_factory=list)

    def arrays(self) -> dict[str, torch.Tensor]:
        """What --save-probs writes: the samples, the deterministic pass, labels -1 (unknown)."""
        assert self.predictions is not None  # nothing is written when no image was read
        return {
            "probs": self.predictions.samples,
            "labels": torch.full((len(self.originals),), -1, dtype=torch.int64),
            "deterministic_probs": self.predictions.deterministic,
        }


def summarize_images(
    predictions: Predictions, paths: list[str], classes: list[str], top: int = 3
) -> dict[str, Any]:
    """Per image: the top classes by mean probability (± std over samples), predictive
    entropy, mutual information and variation ratio."""
    samples = predictions.samples.double()  # (N, T, C)
    mean, std = samples.mean(dim=1), samples.std(dim=1, correction=0)
    entropy = metrics.predictive_entropy(samples)
    information = metrics.mutual_information(samples)
    variation = metrics.variation_ratio(samples)
    images = []
    for index, path in enumerate(paths):
        best = mean[index].argsort(descending=True)[: min(top, mean.shape[1])]
        images.append(
            {
                "path": path,
                "top": [
                    {
                        "class": classes[c],
                        "probability": mean[index, c].item(),
                        "std": std[index, c].item(),
                    }
                    for c in best.tolist()
                ],
                "deterministic_class": classes[int(predictions.deterministic[index].argmax())],
                "predictive_entropy": entropy[index].item(),
                "mutual_information": information[index].item(),
                "variation_ratio": variation[index].item(),
            }
        )
    return {"samples": samples.shape[1], "images": images}


def evaluate_images(
    model: ConvNet,
    info: CheckpointInfo,
    paths: list[Path],
    *,
    samples: int = 32,
    seed: int = 0,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> ImageEvaluation:
    loaded, scored, failures, warnings = [], [], [], []
    for path in paths:
        try:
            image = read_image(path)
            seen, _ = crop_to_view(image, "center")  # as load_image shows an image to the net
            loaded.append((preprocess(seen, info), image))
        except ResdeepError as error:  # one bad file is a line of its own, not the end
            failures.append(str(error))
            continue
        scored.append(path)
        warning = input_warning(image, seen, info)
        if warning:
            warnings.append((path, warning))
    if not loaded:
        return ImageEvaluation(None, None, [], failures)
    inputs = torch.cat([tensor for tensor, _ in loaded])  # (N, C, H, W), normalised
    predictions = mc_predict(model, inputs, samples=samples, seed=seed, batch_rows=batch_rows)
    summary = {
        "checkpoint": str(info.path),
        "seed": seed,
        **summarize_images(predictions, [str(p) for p in scored], info.classes),
    }
    warned = dict(warnings)
    for path, image in zip(scored, summary["images"], strict=True):
        image["warning"] = warned.get(path)  # as cam's JSON has it
    originals = [original for _, original in loaded]
    return ImageEvaluation(summary, predictions, originals, failures, warnings)
