"""What the command shows and writes: rich tables, the JSON document, the probabilities file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.table import Table

from resdeep.errors import ResdeepError
from resdeep.io import save_json_atomic
from resdeep.uncertainty.sampling import Predictions

if TYPE_CHECKING:
    from resdeep.uncertainty.calibration import Calibration
    from resdeep.uncertainty.ensemble import Ensemble

SCORE_LABELS = {"max_prob": "max prob", "entropy": "entropy", "mutual_information": "MI"}
# Each method's section in the JSON, by the name the tables give it.
METHOD_LABELS = {
    "deterministic": "deterministic",
    "MC dropout": "mc_dropout",
    "temperature scaled": "temperature_scaled",
    "MC dropout + temperature": "mc_dropout_temperature_scaled",
    "ensemble": "ensemble",
}


def _number(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def dataset_table(summary: dict[str, Any]) -> Table:
    """Deterministic and MC dropout side by side, one metric a row."""
    table = Table(
        title=f"{summary['data']} {summary['split']}: {summary['n']} images, "
        f"T = {summary['samples']} samples"
    )
    sections = [summary["deterministic"], summary["mc_dropout"]]
    table.add_column("metric")
    table.add_column("deterministic", justify="right")
    table.add_column(f"MC dropout (T={summary['samples']})", justify="right")
    if "temperature" in summary:  # temperature scaling, fitted on the val split
        temperature = summary["temperature"]
        table.add_column(f"temp. scaled (τ={temperature['deterministic']:.2f})", justify="right")
        table.add_column(f"MC + temp. (τ={temperature['mc_dropout']:.2f})", justify="right")
        sections += [summary["temperature_scaled"], summary["mc_dropout_temperature_scaled"]]
    if "ensemble" in summary:
        table.add_column(f"ensemble (M={len(summary['ensemble']['members'])})", justify="right")
        sections.append(summary["ensemble"])
    rows = [
        ("accuracy", "accuracy"),
        ("NLL", "nll"),
        ("Brier", "brier"),
        (f"ECE ({summary['bins']} bins)", "ece"),
        ("mean predictive entropy", "mean_predictive_entropy"),
        ("mean expected entropy", "mean_expected_entropy"),
        ("mean mutual information", "mean_mutual_information"),
    ]
    for label, key in rows:
        table.add_row(label, *(_number(part[key]) for part in sections))
    for section, title in (("auroc_misclassification", "AUROC error"), ("aurc", "AURC")):
        for score, label in SCORE_LABELS.items():
            table.add_row(
                f"{title} ({label})", *(_number(part[section][score]) for part in sections)
            )
    return table


def ood_table(summary: dict[str, Any]) -> Table:
    """In-distribution vs the OOD set: AUROC, AUPR and FPR at 95 % TPR per score."""
    ood = summary["ood"]
    table = Table(
        title=f"OOD detection: {summary['data']} {summary['split']} ({summary['n']}) "
        f"vs {ood['data']} ({ood['n']})"
    )
    for column in ("passes", "score", "AUROC", "AUPR", "FPR@95%TPR"):
        table.add_column(column, justify="left" if column in ("passes", "score") else "right")
    for passes, section in METHOD_LABELS.items():
        if section not in ood:
            continue
        for score, values in ood[section].items():
            table.add_row(
                passes,
                SCORE_LABELS[score],
                _number(values["auroc"]),
                _number(values["aupr"]),
                _number(values["fpr_at_95_tpr"]),
            )
    return table


def comparison_table(summary: dict[str, Any]) -> Table:
    """Every method side by side on the numbers that decide between them, with its cost."""
    table = Table(title="methods compared (the test split; OOD: the chosen set)")
    columns = ["method", "acc.", "NLL", "Brier", "ECE", "AURC", "AUROC err."]
    ood = summary.get("ood")
    if ood:
        columns += [f"OOD AUROC ({ood['data']})", "FPR@95"]
    columns += ["passes / image", "ms / image"]
    for column in columns:
        table.add_column(column, justify="left" if column == "method" else "right")
    for label, section in METHOD_LABELS.items():
        if section not in summary:
            continue
        numbers = summary[section]
        row = [
            label,
            _number(numbers["accuracy"]),
            _number(numbers["nll"]),
            _number(numbers["brier"]),
            _number(numbers["ece"]),
            _number(numbers["aurc"]["max_prob"]),
            _number(numbers["auroc_misclassification"]["max_prob"]),
        ]
        if ood:
            entropy = ood.get(section, {}).get("entropy")
            row += [
                _number(entropy and entropy["auroc"]),
                _number(entropy and entropy["fpr_at_95_tpr"]),
            ]
        cost = summary.get("cost", {}).get(section, {})
        passes = cost.get("forward_passes")
        heads = cost.get("head_samples")
        row += [
            "-" if passes is None else f"{passes}" + (f" + {heads} heads" if heads else ""),
            _number(cost.get("ms_per_image"), ".3f"),
        ]
        table.add_row(*row)
    return table


def images_table(summary: dict[str, Any]) -> Table:
    """Per image: top classes with mean probability ± std over the samples, and uncertainty."""
    table = Table(title=f"MC dropout, T = {summary['samples']} samples")
    for column in ("image", "top classes (mean ± std)", "entropy", "MI", "variation ratio"):
        table.add_column(column, justify="left" if column.startswith(("image", "top")) else "right")
    for image in summary["images"]:
        top = "  ".join(
            f"{entry['class']} {entry['probability']:.3f} ± {entry['std']:.3f}"
            for entry in image["top"]
        )
        table.add_row(
            Path(image["path"]).name,
            top,
            f"{image['predictive_entropy']:.4f}",
            f"{image['mutual_information']:.4f}",
            f"{image['variation_ratio']:.3f}",
        )
    return table


def write_json(summary: dict[str, Any], path: Path) -> None:
    save_json_atomic(summary, path)  # a failed write is already a one-line ResdeepError


def save_probs(
    path: Path,
    predictions: Predictions,
    labels: torch.Tensor,
    ood: Predictions | None = None,
    calibration: Calibration | None = None,
    ensemble: Ensemble | None = None,
) -> None:
    """`.npz` with probs (N, T, C) float32, labels (N,) int64 (-1: unknown), deterministic_probs
    (N, C) float32, ood_probs / ood_deterministic_probs in OOD mode, and with temperature
    scaling: temperatures [deterministic, MC], temperature_scaled_probs (N, C),
    mc_dropout_temperature_scaled_probs (N, T, C), and the val split it was fitted on
    (val_probs, val_deterministic_probs, val_labels); with an ensemble, ensemble_probs (N, M, C),
    each member's deterministic softmax; so every number can be recomputed."""
    arrays = {
        "probs": predictions.samples.numpy().astype(np.float32),
        "labels": labels.numpy().astype(np.int64),
        "deterministic_probs": predictions.deterministic.numpy().astype(np.float32),
    }
    if ood is not None:
        arrays["ood_probs"] = ood.samples.numpy().astype(np.float32)
        arrays["ood_deterministic_probs"] = ood.deterministic.numpy().astype(np.float32)
    if calibration is not None:
        arrays["temperatures"] = np.asarray(calibration.temperatures, dtype=np.float64)
        arrays["temperature_scaled_probs"] = calibration.scaled_deterministic.numpy()
        arrays["mc_dropout_temperature_scaled_probs"] = calibration.scaled_samples.numpy()
        arrays["val_probs"] = calibration.val.samples.numpy().astype(np.float32)
        arrays["val_deterministic_probs"] = calibration.val.deterministic.numpy().astype(np.float32)
        arrays["val_labels"] = calibration.val_labels.numpy().astype(np.int64)
    if ensemble is not None:
        arrays["ensemble_probs"] = ensemble.probs.numpy().astype(np.float32)  # (N, M, C)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as stream:  # a stream, so numpy does not append ".npz" to the name
            np.savez(stream, **arrays)
    except OSError as error:
        raise ResdeepError(f"cannot write {path}: {error.strerror or error}") from error
