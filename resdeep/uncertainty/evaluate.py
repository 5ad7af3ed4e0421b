"""Score a checkpoint: on its data set (with an optional OOD set), or on a few images.

The summaries are computed from the float32 probabilities that `--save-probs` writes, cast to
float64, so anyone can recompute every reported number from that file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resdeep.checkpoint import CheckpointInfo
from resdeep.data import normalize
from resdeep.errors import ResdeepError
from resdeep.images import crop_to_view, input_warning, preprocess, read_image
from resdeep.models import ConvNet
from resdeep.uncertainty import calibration, metrics
from resdeep.uncertainty.calibration import Calibration, calibrate_temperature
from resdeep.uncertainty.data import in_distribution, ood_images
from resdeep.uncertainty.ensemble import Ensemble, check_members, member_probs
from resdeep.uncertainty.sampling import DEFAULT_BATCH_ROWS, Predictions, is_head_only, mc_predict

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


def _as_float64(predictions: Predictions) -> tuple[torch.Tensor, torch.Tensor]:
    """(deterministic as (N, 1, C), samples (N, T, C)), float64 copies of the float32 probs."""
    return predictions.deterministic.double().unsqueeze(1), predictions.samples.double()


def cost_summary(
    images: int,
    samples: int,
    single_seconds: float,
    mc_seconds: float,
    *,
    head_only: bool,
    calibrated: bool,
    ensemble: tuple[int, float] | None,
) -> dict[str, Any]:
    """What each method costs per image: full forward passes, and measured milliseconds here
    (temperature scaling costs its deterministic pass; MC dropout's time includes it)."""
    ms = 1000.0 / images
    cost: dict[str, Any] = {
        "deterministic": {"forward_passes": 1, "ms_per_image": single_seconds * ms},
        "mc_dropout": {
            # Head-only dropout: one feature pass, then T samples of the classifier alone.
            "forward_passes": 1 if head_only else samples + 1,
            "head_samples": samples if head_only else 0,
            "ms_per_image": mc_seconds * ms,
        },
    }
    if calibrated:
        cost["temperature_scaled"] = dict(cost["deterministic"])
        cost["mc_dropout_temperature_scaled"] = dict(cost["mc_dropout"])
    if ensemble is not None:
        count, seconds = ensemble
        cost["ensemble"] = {"forward_passes": count, "ms_per_image": seconds * ms}
    return cost


def method_probs(evaluation: DatasetEvaluation) -> dict[str, torch.Tensor]:
    """(N, C) probabilities of every method evaluated, by the tables' names."""
    predictions = evaluation.predictions
    methods = {
        "deterministic": predictions.deterministic,
        "MC dropout": metrics.mean_probs(predictions.samples.double()),
    }
    if evaluation.calibration is not None:
        methods["temperature scaled"] = evaluation.calibration.scaled_deterministic
        methods["MC dropout + temperature"] = evaluation.calibration.scaled_samples.mean(dim=1)
    if evaluation.ensemble is not None:
        methods["ensemble"] = evaluation.ensemble.probs.double().mean(dim=1)
    return methods


@dataclass
class DatasetEvaluation:
    summary: dict[str, Any]  # the JSON document
    labels: torch.Tensor  # (N,) int64
    predictions: Predictions  # in-distribution
    ood: Predictions | None = None
    calibration: Calibration | None = None
    ensemble: Ensemble | None = None


def calibration_summary(fitted: Calibration, labels: torch.Tensor, bins: int) -> dict[str, Any]:
    t_det, t_mc = fitted.temperatures
    return {
        "temperature": {
            "fitted_on": "val",
            "n": len(fitted.val_labels),
            "deterministic": t_det,
            "mc_dropout": t_mc,
            "warning": calibration.fit_warning(fitted.val.deterministic, fitted.val_labels, t_det),
        },
        "temperature_scaled": prediction_summary(
            fitted.scaled_deterministic.unsqueeze(1), labels, bins
        ),
        "mc_dropout_temperature_scaled": prediction_summary(fitted.scaled_samples, labels, bins),
    }


def summarize_dataset(
    predictions: Predictions,
    labels: torch.Tensor,
    *,
    bins: int,
    ood: Predictions | None = None,
    ood_name: str | None = None,
) -> dict[str, Any]:
    """The JSON document of data-set mode, from probabilities alone."""
    deterministic, samples = _as_float64(predictions)
    summary: dict[str, Any] = {
        "n": len(labels),
        "samples": samples.shape[1],
        "bins": bins,
        "deterministic": prediction_summary(deterministic, labels, bins),
        "mc_dropout": prediction_summary(samples, labels, bins),
    }
    if ood is not None:
        ood_deterministic, ood_samples = _as_float64(ood)
        summary["ood"] = {
            "data": ood_name,
            "n": len(ood_samples),
            "deterministic": ood_summary(deterministic, ood_deterministic),
            "mc_dropout": ood_summary(samples, ood_samples),
        }
    return summary


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
) -> DatasetEvaluation:
    """MC dropout on the run's `split`, on OOD set `ood_data` when given, and beside them
    temperature scaling fitted on the val split when `calibrate` is "temperature"."""
    data = in_distribution(info, split)
    inputs = normalize(data.images, info.mean, info.std)
    started = time.perf_counter()
    predictions = mc_predict(model, inputs, samples=samples, seed=seed, batch_rows=batch_rows)
    mc_seconds = time.perf_counter() - started
    started = time.perf_counter()
    member_probs(model, inputs)
    single_seconds = time.perf_counter() - started
    ood = None
    ood_uint8 = None
    if ood_data is not None:
        ood_uint8 = ood_images(ood_data, info, split=split, count=len(data), seed=seed)
        ood_inputs = normalize(ood_uint8, info.mean, info.std)
        # Its own seed stream: the in-distribution numbers do not change when an OOD set is added.
        ood = mc_predict(model, ood_inputs, samples=samples, seed=seed + 1, batch_rows=batch_rows)
    summary = {
        "checkpoint": str(info.path),
        "data": info.data_name,
        "split": split,
        "seed": seed,
        **summarize_dataset(predictions, data.labels, bins=bins, ood=ood, ood_name=ood_data),
    }
    fitted = None
    if calibrate == "temperature":
        val = in_distribution(info, "val")
        val_inputs = normalize(val.images, info.mean, info.std)
        # Its own seed stream, like the OOD set's: adding calibration changes no other number.
        val_predictions = mc_predict(
            model, val_inputs, samples=samples, seed=seed + 2, batch_rows=batch_rows
        )
        fitted = calibrate_temperature(val_predictions, val.labels, predictions)
        summary.update(calibration_summary(fitted, data.labels, bins))
        if ood is not None:
            t_det, t_mc = fitted.temperatures
            in_det = fitted.scaled_deterministic.unsqueeze(1)
            summary["ood"]["temperature_scaled"] = ood_summary(
                in_det, calibration.scale(ood.deterministic, t_det).unsqueeze(1)
            )
            summary["ood"]["mc_dropout_temperature_scaled"] = ood_summary(
                fitted.scaled_samples, calibration.scale(ood.samples, t_mc)
            )
    ensemble = None
    if members:
        check_members(info, [member_info for _, member_info in members])
        # Each member normalises the same uint8 images with its own statistics.
        started = time.perf_counter()
        probs = torch.stack(
            [
                member_probs(member, normalize(data.images, member_info.mean, member_info.std))
                for member, member_info in members
            ],
            dim=1,
        )
        ensemble_seconds = time.perf_counter() - started
        ensemble = Ensemble([str(member_info.path) for _, member_info in members], probs)
        # The members' spread is the ensemble's epistemic part: its mutual information.
        summary["ensemble"] = {
            "members": ensemble.members,
            **prediction_summary(probs.double(), data.labels, bins),
        }
        if ood_uint8 is not None:
            ood_members = torch.stack(
                [
                    member_probs(member, normalize(ood_uint8, member_info.mean, member_info.std))
                    for member, member_info in members
                ],
                dim=1,
            )
            summary["ood"]["ensemble"] = ood_summary(probs.double(), ood_members.double())
    summary["cost"] = cost_summary(
        len(data), samples, single_seconds, mc_seconds, head_only=is_head_only(model),
        calibrated=fitted is not None,
        ensemble=(len(members), ensemble_seconds) if members else None,
    )  # fmt: skip
    return DatasetEvaluation(summary, data.labels, predictions, ood, fitted, ensemble)


@dataclass
class ImageEvaluation:
    summary: dict[str, Any] | None  # the JSON document (None: no image could be read)
    predictions: Predictions | None
    originals: list[Any]  # the images as read, upright, for display
    failures: list[str] = field(default_factory=list)  # one line per unreadable image
    # (path, sentence) per image too far from the training images for its answer to mean much
    warnings: list[tuple[Path, str]] = field(default_factory=list)


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
