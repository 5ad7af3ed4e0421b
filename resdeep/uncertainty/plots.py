"""PNG figures: reliability diagrams and entropy histograms.

matplotlib's object API (Figure, not pyplot) renders with Agg and keeps no global state, so it
works without a display and leaks no figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from matplotlib.figure import Figure

from resdeep.errors import ResdeepError
from resdeep.uncertainty import metrics

if TYPE_CHECKING:
    from resdeep.uncertainty.evaluate import Scored


def save_figure(figure: Figure, path: Path) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    except OSError as error:
        raise ResdeepError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def reliability_diagram(
    panels: list[tuple[str, torch.Tensor]], labels: torch.Tensor, bins: int, path: Path
) -> Path:
    """Accuracy against confidence per bin, one panel per (title, (N, C) probabilities)."""
    figure = Figure(figsize=(4.5 * len(panels), 4.2), layout="constrained")
    axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    width = 1.0 / bins
    centres = (torch.arange(bins, dtype=torch.float64) + 0.5) * width
    for axis, (title, probs) in zip(axes, panels, strict=True):
        confidence, accuracy, count = metrics.reliability_bins(probs, labels, bins)
        filled = count > 0
        ece = metrics.expected_calibration_error(probs, labels, bins)
        # numpy for matplotlib: torch tensors go through a wrapping NumPy 2 deprecates.
        at, height = centres[filled].numpy(), accuracy[filled].numpy()
        axis.bar(at, height, width=width, edgecolor="black", label="accuracy")
        # The gap as a hatched outline from accuracy to mean confidence: readable both ways.
        axis.bar(
            at,
            (confidence - accuracy).abs()[filled].numpy(),
            bottom=torch.minimum(confidence, accuracy)[filled].numpy(),
            width=width,
            fill=False,
            hatch="//",
            edgecolor="tab:red",
            label="gap to mean confidence",
        )
        axis.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
        axis.set(
            title=f"{title}: ECE {ece:.4f}",
            xlabel="confidence (max probability)",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        axis.set_aspect("equal")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left")
    return save_figure(figure, path)


def _histograms(
    groups: list[tuple[str, torch.Tensor]], xlabel: str, title: str, path: Path
) -> Path:
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    top = max(float(values.max()) for _, values in groups if len(values)) or 1.0
    edges = torch.linspace(0, top, 31).tolist()
    for label, values in groups:
        if len(values):
            axis.hist(values.numpy(), bins=edges, alpha=0.55, density=True, label=label)
    axis.set(xlabel=xlabel, ylabel="density", title=title)
    axis.legend()
    return save_figure(figure, path)


def entropy_correct_vs_wrong(
    samples: torch.Tensor, labels: torch.Tensor, path: Path, label: str = "MC dropout"
) -> Path:
    """Predictive entropy of (N, T, C) samples of method `label`, correct answers against
    wrong."""
    entropy = metrics.predictive_entropy(samples)
    correct = metrics.mean_probs(samples).argmax(dim=1) == labels
    return _histograms(
        [
            (f"correct ({int(correct.sum())})", entropy[correct]),
            (f"wrong ({int((~correct).sum())})", entropy[~correct]),
        ],
        "predictive entropy H[p̄] (nats)",
        f"{label} (T={samples.shape[1]}): correct vs wrong",
        path,
    )


def entropy_in_vs_ood(
    samples: torch.Tensor, ood: torch.Tensor, ood_name: str, path: Path, label: str = "MC dropout"
) -> Path:
    """Predictive entropy of samples of method `label`, in distribution against the OOD set."""
    inside = metrics.predictive_entropy(samples)
    outside = metrics.predictive_entropy(ood)
    return _histograms(
        [(f"in distribution ({len(inside)})", inside), (f"{ood_name} ({len(outside)})", outside)],
        "predictive entropy H[p̄] (nats)",
        f"{label} (T={samples.shape[1]}): in vs out of distribution",
        path,
    )


def reliability_curves(
    methods: dict[str, torch.Tensor], labels: torch.Tensor, bins: int, path: Path
) -> Path:
    """One reliability curve per method (accuracy against mean confidence in each filled bin)
    on one set of axes, each labelled with its ECE."""
    figure = Figure(figsize=(5.6, 5.0), layout="constrained")
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for name, probs in methods.items():
        confidence, accuracy, count = metrics.reliability_bins(probs.double(), labels, bins)
        filled = count > 0
        ece = metrics.expected_calibration_error(probs.double(), labels, bins)
        axis.plot(
            confidence[filled].numpy(), accuracy[filled].numpy(), marker="o", markersize=3,
            label=f"{name} (ECE {ece:.3f})",
        )  # fmt: skip
    axis.set(
        xlabel="confidence (mean max probability in the bin)",
        ylabel="accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"reliability, {bins} bins",
    )
    axis.legend(loc="upper left", fontsize=8)
    return save_figure(figure, path)


def save_plots(
    directory: Path, scored: list[Scored], labels: torch.Tensor, bins: int, ood_name: str | None
) -> list[Path]:
    """Every figure of data-set mode into `directory`; returns the files written. The single
    net's deterministic pass against MC dropout, and with more methods than those two, one
    reliability figure with a curve per method. A net without dropout: its Laplace posterior
    takes MC dropout's place (or, with neither, the entropy figures are left out)."""
    by_name = {part.method.name: part for part in scored}
    single = by_name["deterministic"]
    sampled = by_name.get("mc_dropout") or by_name.get("laplace")
    shown = [single] if sampled is None else [single, sampled]
    panels = [(part.method.column, metrics.mean_probs(part.probs.double())) for part in shown]
    written = [reliability_diagram(panels, labels, bins, directory / "reliability.png")]
    if sampled is not None:
        samples = sampled.probs.double()  # (N, T, C)
        path = directory / "entropy_correct_vs_wrong.png"
        written.append(entropy_correct_vs_wrong(samples, labels, path, sampled.method.label))
    if len(scored) > 2:
        methods = {part.method.label: metrics.mean_probs(part.probs.double()) for part in scored}
        written.append(
            reliability_curves(methods, labels, bins, directory / "reliability_methods.png")
        )
    if sampled is not None and sampled.ood is not None:
        path = directory / "entropy_in_vs_ood.png"
        name, label = ood_name or "OOD", sampled.method.label
        written.append(entropy_in_vs_ood(samples, sampled.ood.double(), name, path, label))
    return written
