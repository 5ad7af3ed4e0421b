"""What the command shows and writes: rich tables, the JSON document, the probabilities file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.table import Table

from resdeep.errors import ResdeepError
from resdeep.io import save_json_atomic

if TYPE_CHECKING:
    from resdeep.uncertainty.methods import UncertaintyMethod

SCORE_LABELS = {"max_prob": "max prob", "entropy": "entropy", "mutual_information": "MI"}
METRIC_ROWS = (
    ("accuracy", "accuracy"),
    ("NLL", "nll"),
    ("Brier", "brier"),
    ("ECE ({bins} bins)", "ece"),
    ("mean predictive entropy", "mean_predictive_entropy"),
    ("mean expected entropy", "mean_expected_entropy"),
    ("mean mutual information", "mean_mutual_information"),
)


def _number(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def dataset_table(summary: dict[str, Any], methods: list[UncertaintyMethod]) -> Table:
    """Every method side by side, one metric a row."""
    table = Table(
        title=f"{summary['data']} {summary['split']}: {summary['n']} images, "
        f"T = {summary['samples']} samples"
    )
    table.add_column("metric")
    for method in methods:
        table.add_column(method.column, justify="right")
    sections = [summary[method.name] for method in methods]
    for label, key in METRIC_ROWS:
        table.add_row(label.format(bins=summary["bins"]), *(_number(s[key]) for s in sections))
    for section, title in (("auroc_misclassification", "AUROC error"), ("aurc", "AURC")):
        for score, label in SCORE_LABELS.items():
            table.add_row(f"{title} ({label})", *(_number(s[section][score]) for s in sections))
    return table


def ood_table(summary: dict[str, Any], methods: list[UncertaintyMethod]) -> Table:
    """In-distribution vs the OOD set: AUROC, AUPR and FPR at 95 % TPR per method and score."""
    ood = summary["ood"]
    table = Table(
        title=f"OOD detection: {summary['data']} {summary['split']} ({summary['n']}) "
        f"vs {ood['data']} ({ood['n']})"
    )
    for column in ("passes", "score", "AUROC", "AUPR", "FPR@95%TPR"):
        table.add_column(column, justify="left" if column in ("passes", "score") else "right")
    for method in methods:
        for score, values in ood[method.name].items():
            table.add_row(
                method.label,
                SCORE_LABELS[score],
                _number(values["auroc"]),
                _number(values["aupr"]),
                _number(values["fpr_at_95_tpr"]),
            )
    return table


def comparison_table(summary: dict[str, Any], methods: list[UncertaintyMethod]) -> Table:
    """Every method side by side on the numbers that decide between them, with its cost."""
    table = Table(title="methods compared (the test split; OOD: the chosen set)")
    columns = ["method", "acc.", "NLL", "Brier", "ECE", "AURC", "AUROC err."]
    ood = summary.get("ood")
    if ood:
        columns += [f"OOD AUROC ({ood['data']})", "FPR@95"]
    columns += ["passes / image", "ms / image"]
    for column in columns:
        table.add_column(column, justify="left" if column == "method" else "right")
    for method in methods:
        table.add_row(method.label, *_comparison_row(summary, method.name))
    return table


def _comparison_row(summary: dict[str, Any], section: str) -> list[str]:
    numbers = summary[section]
    row = [
        _number(numbers["accuracy"]),
        _number(numbers["nll"]),
        _number(numbers["brier"]),
        _number(numbers["ece"]),
        _number(numbers["aurc"]["max_prob"]),
        _number(numbers["auroc_misclassification"]["max_prob"]),
    ]
    if summary.get("ood"):
        entropy = summary["ood"][section]["entropy"]
        row += [_number(entropy["auroc"]), _number(entropy["fpr_at_95_tpr"])]
    cost = summary["cost"][section]
    passes, heads = cost["forward_passes"], cost.get("head_samples")
    return [
        *row,
        f"{passes}" + (f" + {heads} heads" if heads else ""),
        _number(cost["ms_per_image"], ".3f"),
    ]


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


def save_probs(path: Path, arrays: dict[str, torch.Tensor]) -> None:
    """`.npz` of the arrays, in the dtypes they were computed in (float32 probabilities from the
    net, float64 after temperature scaling, int64 labels)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as stream:  # a stream, so numpy does not append ".npz" to the name
            np.savez(stream, **{name: array.numpy() for name, array in arrays.items()})
    except OSError as error:
        raise ResdeepError(f"cannot write {path}: {error.strerror or error}") from error
