"""The report's figures, each a function from run summaries to a matplotlib Figure.

Figures are built with `matplotlib.figure.Figure`, not pyplot: no global state, no display, and
nothing to close, so building them in tests or in a loop leaks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from resdeep.report.analysis import RunSummary

DPI = 110  # sharp enough to read layer ticks, small enough to keep each PNG well under 250 KB
ARCH_LINESTYLE = {"plain": "--", "resnet": "-", "preact": ":"}  # He et al. Fig. 6: plain dashed
ARCH_COLOR = {"plain": "tab:red", "resnet": "tab:blue", "preact": "tab:green"}
ARCH_MARKER = {"plain": "s", "resnet": "o", "preact": "^"}
PANELS_PER_ROW = 3


def save_figure(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    return path


def training_curves(summaries: Sequence[RunSummary]) -> Figure:
    """Training loss and error against epoch: one row per data set, one colour per depth."""
    by_data = _by_data(summaries)
    figure = Figure(figsize=(11, 3.8 * len(by_data)), layout="constrained")
    axes = figure.subplots(len(by_data), 2, squeeze=False)
    for (data, runs), (loss_axis, error_axis) in zip(by_data, axes, strict=True):
        colors = _variant_colors(runs)
        for summary in runs:
            history = summary.run.history
            epochs = [entry["epoch"] for entry in history]
            style = {
                "color": colors[_variant(summary)],
                "linestyle": ARCH_LINESTYLE.get(summary.arch, "-."),
                "label": summary.label,
            }
            loss_axis.plot(epochs, [entry["train_loss"] for entry in history], **style)
            error_axis.plot(epochs, [100 * (1 - entry["train_acc"]) for entry in history], **style)
        loss_axis.set_yscale("log")  # residual losses fall by decades; plain ones may not move
        loss_axis.set_ylabel("training loss")
        error_axis.set_ylabel("training error (%)")
        for axis, what in ((loss_axis, "loss"), (error_axis, "error")):
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.set_title(f"{data}: training {what} (plain dashed, residual solid)")
            axis.grid(alpha=0.3)
        error_axis.legend(fontsize="small", ncols=2 if len(runs) > 6 else 1)
    return figure


def gradient_profile(summaries: Sequence[RunSummary]) -> Figure:
    """log10 gradient norm by layer, first logged step and last, one panel per depth.

    A panel holds every architecture at one depth (and init and norm, when those vary), so
    plain and residual nets are compared like for like.
    """
    panels = [
        (data, variant, list(group))
        for data, runs in _by_data(summaries)
        for variant, group in groupby(
            sorted((s for s in runs if s.grad_norm_first_step), key=_variant), key=_variant
        )
    ]
    figure, axes = _panel_grid(len(panels), panel_size=(4.6, 3.4))
    mixed_data = len({s.data for s in summaries}) > 1
    for axis, (data, variant, runs) in zip(axes, panels, strict=True):
        for summary in sorted(runs, key=lambda s: s.arch):
            color = ARCH_COLOR.get(summary.arch, "tab:gray")
            layers = np.arange(1, len(summary.grad_norm_first_step) + 1)
            axis.plot(
                layers,
                _log10(summary.grad_norm_first_step),
                color=color,
                linestyle=":",
                alpha=0.8,
                label=f"{summary.arch}, step {summary.first_step}",
            )
            if summary.last_step != summary.first_step:
                axis.plot(
                    layers,
                    _log10(summary.grad_norm_last_step),
                    color=color,
                    label=f"{summary.arch}, step {summary.last_step}",
                )
        axis.set_title(_variant_title(variant, summaries) + (f" [{data}]" if mixed_data else ""))
        axis.set_xlabel("layer (input → output)")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("log10 gradient norm")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="x-small")
    return figure


def gradient_heatmap(summary: RunSummary) -> Figure:
    """Layer × logged step, coloured by log10 gradient norm: where and when gradients die."""
    grads = summary.run.grads
    figure = Figure(figsize=(8, 4.5), layout="constrained")
    axis = figure.subplots()
    if grads is None:
        _no_data(axis, "no gradient norms logged")
        return figure
    steps = np.asarray(grads.steps, dtype=float)
    layers = np.arange(len(grads.layer_names) + 1) + 0.5
    # Cell edges halfway between logged steps: the dense first epoch and the sparser rest both
    # keep their true place on the step axis.
    edges = np.concatenate([[steps[0] - 0.5], (steps[1:] + steps[:-1]) / 2, [steps[-1] + 0.5]])
    image = axis.pcolormesh(
        edges, layers, np.ma.masked_invalid(_log10(grads.norms.T)), cmap="viridis"
    )
    figure.colorbar(image, ax=axis, label="log10 gradient norm")
    axis.set_xlabel("step")
    axis.set_ylabel("layer (input at the bottom)")
    axis.set_title(f"{summary.label} on {summary.data}: gradient norm by layer and step")
    return figure


def accuracy_vs_depth(summaries: Sequence[RunSummary]) -> Figure:
    """Final training loss and test accuracy against depth, one line per architecture (and per
    init and norm, when those vary)."""
    by_data = _by_data(summaries)
    figure = Figure(figsize=(10, 3.6 * len(by_data)), layout="constrained")
    axes = figure.subplots(len(by_data), 2, squeeze=False)
    for (data, runs), (loss_axis, accuracy_axis) in zip(by_data, axes, strict=True):
        series = [list(g) for _, g in groupby(sorted(runs, key=_series), key=_series)]
        # One colour per arch, unless init or norm vary too: then one per line, the arch told by
        # the line style and marker.
        per_series = len(series) > len({s.arch for s in runs})
        palette = colormaps["tab20"] if per_series else None
        for index, group in enumerate(series):
            line = sorted(group, key=lambda s: s.depth)
            arch = line[0].arch
            style = {
                "color": palette(index % 20) if palette else ARCH_COLOR.get(arch, "tab:gray"),
                "linestyle": ARCH_LINESTYLE.get(arch, "-."),
                "marker": ARCH_MARKER.get(arch, "o"),
                "label": line[0].label.replace(f"-{line[0].depth}", "", 1),
            }
            losses = [(s.depth, s.final_train_loss) for s in line if s.final_train_loss is not None]
            accuracies = [(s.depth, 100 * s.test_acc) for s in line if s.test_acc is not None]
            for axis, points in ((loss_axis, losses), (accuracy_axis, accuracies)):
                if points:
                    axis.plot(*zip(*points, strict=True), **style)
        loss_axis.set_yscale("log")
        loss_axis.set_ylabel("final training loss")
        accuracy_axis.set_ylabel("test accuracy (%)")
        for axis in (loss_axis, accuracy_axis):
            axis.set_xlabel("depth (weight layers)")
            axis.set_xticks(sorted({s.depth for s in runs}))
            axis.set_title(data)
            axis.grid(alpha=0.3)
        if accuracy_axis.lines or loss_axis.lines:
            (accuracy_axis if accuracy_axis.lines else loss_axis).legend(
                fontsize="x-small" if per_series else "small", ncols=2 if len(series) > 6 else 1
            )
    return figure


# ---- helpers ----------------------------------------------------------------------------------


def _by_data(summaries: Sequence[RunSummary]) -> list[tuple[str, list[RunSummary]]]:
    ordered = sorted(summaries, key=lambda s: s.data)
    return [(data, list(group)) for data, group in groupby(ordered, key=lambda s: s.data)]


def _variant(summary: RunSummary) -> tuple[int, str, str]:
    """What a panel or a colour stands for: everything the report varies except the arch."""
    return (summary.depth, summary.init, summary.norm)


def _series(summary: RunSummary) -> tuple[str, str, str]:
    """What a line across depths stands for: everything but the depth."""
    return (summary.arch, summary.init, summary.norm)


def _variant_colors(runs: Sequence[RunSummary]) -> dict[tuple[int, str, str], tuple]:
    """Shallow to deep along one colour map, so colour reads as depth."""
    variants = sorted({_variant(s) for s in runs})
    cmap = colormaps["viridis"]
    spread = np.linspace(0.0, 0.85, len(variants)) if len(variants) > 1 else [0.0]
    return {variant: cmap(x) for variant, x in zip(variants, spread, strict=True)}


def _variant_title(variant: tuple[int, str, str], everything: Sequence[RunSummary]) -> str:
    depth, init, norm = variant
    parts = [f"depth {depth}"]
    if len({s.init for s in everything}) > 1:
        parts.append(f"{init} init")
    if len({s.norm for s in everything}) > 1:
        parts.append("BN" if norm == "batch" else "no BN")
    return ", ".join(parts)


def _panel_grid(count: int, panel_size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    """`count` axes on rows of at most PANELS_PER_ROW; the grid has no empty axes left over."""
    columns = max(1, min(PANELS_PER_ROW, count))
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in grid[count:]:
        figure.delaxes(extra)
    if count == 0:
        _no_data(figure.add_subplot(), "no gradient norms logged")
        return figure, []
    return figure, list(grid[:count])


def _log10(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """log10 with zero norms drawn at 1e-30 (far below anything a live layer has)."""
    array = np.asarray(values, dtype=float)
    return np.log10(np.maximum(array, 1e-30))


def _no_data(axis: Axes, message: str) -> None:
    axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes)
    axis.set_axis_off()
