"""The report's figures, each a function from run summaries to a matplotlib Figure.

Figures are built with `matplotlib.figure.Figure`, not pyplot: no global state, no display, and
nothing to close, so building them in tests or in a loop leaks nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from resdeep.logscale import log10
from resdeep.plots import layer_step_heatmap
from resdeep.report.analysis import RunGroup, RunSummary, residual_init_order

Group = TypeVar("Group")

DPI = 110  # sharp enough to read layer ticks, small enough to keep each PNG well under 250 KB
ARCH_LINESTYLE = {"plain": "--", "resnet": "-", "preact": ":"}  # He et al. Fig. 6: plain dashed
ARCH_COLOR = {"plain": "tab:red", "resnet": "tab:blue", "preact": "tab:green"}
ARCH_MARKER = {"plain": "s", "resnet": "o", "preact": "^"}
PANELS_PER_ROW = 3


def setting_colors(groups: Sequence[Any]) -> dict[str, tuple | str]:
    """Colours of groups with an `about` and a `label` (the tools' seed groups): by arch when
    they differ in nothing else, otherwise one colour per setting."""
    variants = {(g.about["init"], g.about["norm"], g.about["residual_init"]) for g in groups}
    if len(variants) <= 1:
        return {g.label: ARCH_COLOR.get(g.about["arch"], "tab:gray") for g in groups}
    palette = colormaps["tab10"]
    labels = list(dict.fromkeys(g.label for g in groups))
    return {label: palette(i % 10) for i, label in enumerate(labels)}


def by_depth(groups: Sequence[Group]) -> list[tuple[int, list[Group]]]:
    """The groups of each depth, shallowest first: one panel each."""
    keyed: dict[int, list[Group]] = {}
    for group in groups:
        keyed.setdefault(group.about["depth"], []).append(group)
    return sorted(keyed.items())


def save_figure(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=DPI)
    return path


def training_curves(groups: Sequence[RunGroup]) -> Figure:
    """Training loss, training error and validation error against optimizer steps, as in He et
    al.'s Fig. 6: one row per data set, colour for depth, dashed plain and solid residual.

    Lines are the mean over a group's seeds of the logged training numbers (each already a mean
    over the steps since the previous log point), lightly smoothed; the band is ± one standard
    deviation over the seeds; dots mark the epoch means.
    """
    by_data = _by_data(groups)
    figure = Figure(figsize=(15, 4.0 * len(by_data)), layout="constrained")
    axes = figure.subplots(len(by_data), 3, squeeze=False)
    for (data, members), (loss_axis, error_axis, val_axis) in zip(by_data, axes, strict=True):
        colors = _variant_colors(members)
        loss_axis.set_yscale("log")  # residual losses fall by decades; plain ones may not move
        for group in members:
            style = {
                "color": colors[_variant(group)],
                "linestyle": ARCH_LINESTYLE.get(group.arch, "-."),
            }
            label = group.label + (f" ({len(group.runs)} seeds)" if len(group.runs) > 1 else "")
            curves = _step_curves(group)
            if curves is not None:
                steps, losses, errors = curves
                _mean_band(loss_axis, steps, losses, style)
                _mean_band(error_axis, steps, errors, style, label=label)
            epochs = _epoch_points(group)
            if epochs is not None:
                steps, losses, errors, val_errors = epochs
                dots = {"color": style["color"], "s": 9, "zorder": 3}
                loss_axis.scatter(steps, losses.mean(axis=0), **dots)
                error_axis.scatter(steps, errors.mean(axis=0), **dots)
                _mean_band(val_axis, steps, val_errors, {**style, "marker": "o", "markersize": 3})
        loss_axis.set_ylabel("training loss")
        error_axis.set_ylabel("training error (%)")
        val_axis.set_ylabel("validation error (%)")
        for axis, what in (
            (loss_axis, "training loss"),
            (error_axis, "training error"),
            (val_axis, "validation error (epoch ends)"),
        ):
            axis.set_xlabel("optimizer step")
            axis.set_title(f"{data}: {what}")
            axis.grid(alpha=0.3)
        for axis in (error_axis, val_axis):
            axis.set_ylim(bottom=0)
        if error_axis.lines:
            error_axis.legend(fontsize="small", ncols=2 if len(members) > 6 else 1)
    figure.suptitle("plain dashed, residual solid; mean over seeds, band ± 1 std")
    return figure


def smooth(steps: np.ndarray, values: np.ndarray, halfwidth: float) -> np.ndarray:
    """Mean of the values logged within ± `halfwidth` steps of each step: light smoothing that
    treats a dense first epoch and sparser later logging alike. values: (..., len(steps))."""
    near = np.abs(steps[:, None] - steps[None, :]) <= halfwidth  # (S, S)
    return (values @ near.T) / near.sum(axis=1)


def _step_curves(group: RunGroup) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps, smoothed losses (seeds, S), smoothed errors in % (seeds, S)) on the steps every
    seed logged, or None when no run logged training scalars."""
    curves = [run.run.curve for run in group.runs if run.run.curve and run.run.curve.steps]
    if not curves:
        return None
    common = sorted(set.intersection(*(set(curve.steps) for curve in curves)))
    if not common:
        return None
    steps = np.asarray(common, dtype=float)
    losses, errors = [], []
    for curve in curves:
        index = {step: i for i, step in enumerate(curve.steps)}
        rows = [index[step] for step in common]
        losses.append(np.asarray(curve.loss)[rows])
        errors.append(100 * (1 - np.asarray(curve.acc)[rows]))
    halfwidth = max(1.0, steps[-1] / 80)
    return (
        steps,
        smooth(steps, np.array(losses), halfwidth),
        smooth(steps, np.array(errors), halfwidth),
    )


def _epoch_points(group: RunGroup) -> tuple[np.ndarray, ...] | None:
    """(steps, train losses, train errors %, validation errors %) at the epochs every seed
    finished, each (seeds, epochs) but the steps."""
    histories = [run.run.history for run in group.runs if run.run.history]
    if not histories:
        return None
    count = min(len(history) for history in histories)
    steps = np.array([entry.get("step", entry["epoch"]) for entry in histories[0][:count]])

    def column(key: str) -> np.ndarray:
        return np.array([[float(entry[key]) for entry in h[:count]] for h in histories])

    return (
        steps.astype(float),
        column("train_loss"),
        100 * (1 - column("train_acc")),
        100 * (1 - column("val_acc")),
    )


def _mean_band(
    axis: Axes, steps: np.ndarray, values: np.ndarray, style: dict, label: str | None = None
) -> None:
    """The mean over seeds (rows) as a line, ± one standard deviation as a band."""
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(values, axis=0)
    axis.plot(steps, mean, label=label, **style)
    if len(values) > 1:
        spread = np.nanstd(values, axis=0, ddof=1)
        low = mean - spread
        if axis.get_yscale() == "log":
            low = np.maximum(low, mean / 10)  # a band through zero has no place on a log axis
        axis.fill_between(steps, low, mean + spread, color=style["color"], alpha=0.15, lw=0)


def gradient_profile(groups: Sequence[RunGroup]) -> Figure:
    """log10 gradient norm by layer, first logged step and last, one panel per depth.

    A panel holds every architecture at one depth (and init and norm, when those vary), so
    plain and residual nets are compared like for like. Lines are the mean of log10 norms over
    a group's seeds, the band their range.
    """
    panels = [
        (data, variant, list(members))
        for data, runs in _by_data(groups)
        for variant, members in groupby(
            sorted(
                (g for g in runs if all(r.grad_norm_first_step for r in g.runs)),
                key=lambda g: _variant_order(_variant(g)),
            ),
            key=_variant,
        )
    ]
    figure, axes = panel_grid(len(panels), panel_size=(4.6, 3.4))
    mixed_data = len({g.data for g in groups}) > 1
    for axis, (data, variant, members) in zip(axes, panels, strict=True):
        for group in sorted(members, key=lambda g: g.arch):
            color = ARCH_COLOR.get(group.arch, "tab:gray")
            first, last = group.first.first_step, group.first.last_step
            moments = [("first", first, ":")] + ([("last", last, "-")] if last != first else [])
            for moment, step, linestyle in moments:
                profiles = np.array([log10(r.norms_at(moment)) for r in group.runs])
                layers = np.arange(1, profiles.shape[1] + 1)
                axis.plot(
                    layers,
                    profiles.mean(axis=0),
                    color=color,
                    linestyle=linestyle,
                    alpha=0.8 if moment == "first" else 1.0,
                    label=f"{group.arch}, step {step}",
                )
                if len(profiles) > 1:
                    axis.fill_between(
                        layers,
                        profiles.min(axis=0),
                        profiles.max(axis=0),
                        color=color,
                        alpha=0.12,
                        lw=0,
                    )
        seeds = max(len(g.runs) for g in members)
        title = variant_title(variant, groups) + (f" [{data}]" if mixed_data else "")
        axis.set_title(title + (f", {seeds} seeds" if seeds > 1 else ""))
        axis.set_xlabel("layer (input → output)")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("log10 gradient norm")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="x-small")
    return figure


def gradient_heatmap(summary: RunSummary) -> Figure:
    """Layer × logged step, coloured by log10 gradient norm: where and when gradients die."""
    grads = summary.run.grads
    if grads is None:
        figure = Figure(figsize=(8, 4.5), layout="constrained")
        no_data(figure.subplots(), "no gradient norms logged")
        return figure
    return layer_step_heatmap(
        log10(grads.norms),
        grads.steps,
        title=f"{summary.run_label} on {summary.data}: gradient norm by layer and step",
        label="log10 gradient norm",
    )


def accuracy_vs_depth(groups: Sequence[RunGroup]) -> Figure:
    """Final training error, final training loss and test accuracy against depth, one line per
    architecture (and per init and norm, when those vary); error bars are ± one standard
    deviation over the seeds."""
    by_data = _by_data(groups)
    figure = Figure(figsize=(14, 3.8 * len(by_data)), layout="constrained")
    axes = figure.subplots(len(by_data), 3, squeeze=False)
    for (data, members), row in zip(by_data, axes, strict=True):
        error_axis, loss_axis, accuracy_axis = row
        series = [list(g) for _, g in groupby(sorted(members, key=_series), key=_series)]
        # One colour per arch, unless init or norm vary too: then one per line, the arch told by
        # the line style and marker.
        per_series = len(series) > len({g.arch for g in members})
        palette = colormaps["tab20"] if per_series else None
        for index, line in enumerate(series):
            line = sorted(line, key=lambda g: g.depth)
            arch = line[0].arch
            style = {
                "color": palette(index % 20) if palette else ARCH_COLOR.get(arch, "tab:gray"),
                "linestyle": ARCH_LINESTYLE.get(arch, "-."),
                "marker": ARCH_MARKER.get(arch, "o"),
                "capsize": 3,
                "label": line[0].label.replace(f"-{line[0].depth}", "", 1),
            }
            for axis, attribute, scale in (
                (error_axis, "train_error", 100),
                (loss_axis, "train_loss", 1),
                (accuracy_axis, "test_acc", 100),
            ):
                points = [
                    (g.depth, scale * spread.mean, scale * (spread.std or 0.0))
                    for g in line
                    for spread in [getattr(g, attribute)]
                    if spread.mean is not None
                ]
                if points:
                    depths, means, stds = zip(*points, strict=True)
                    axis.errorbar(depths, means, yerr=stds, **style)
        loss_axis.set_yscale("log")
        error_axis.set_ylabel("final training error (%)")
        loss_axis.set_ylabel("final training loss")
        accuracy_axis.set_ylabel("test accuracy (%)")
        seeds = max(len(g.runs) for g in members)
        for axis in row:
            axis.set_xlabel("depth (weight layers)")
            axis.set_xticks(sorted({g.depth for g in members}))
            axis.set_title(data + (f", mean ± std over {seeds} seeds" if seeds > 1 else ""))
            axis.grid(alpha=0.3)
        if any(axis.lines or axis.containers for axis in row):
            error_axis.legend(
                fontsize="x-small" if per_series else "small", ncols=2 if len(series) > 6 else 1
            )
    return figure


# ---- helpers ----------------------------------------------------------------------------------


def _by_data(summaries: Sequence[RunGroup]) -> list[tuple[str, list[RunGroup]]]:
    ordered = sorted(summaries, key=lambda s: s.data)
    return [(data, list(group)) for data, group in groupby(ordered, key=lambda s: s.data)]


# A panel's or a colour's setting: (depth, init, norm, residual_init).
Variant = tuple[int, str, str, str]


def _variant(summary: RunGroup) -> Variant:
    """What a panel or a colour stands for: everything the report varies except the arch."""
    return (summary.depth, summary.init, summary.norm, summary.residual_init)


def _series(summary: RunGroup) -> tuple[str, str, str, str]:
    """What a line across depths stands for: everything but the depth."""
    return (summary.arch, summary.init, summary.norm, summary.residual_init)


def _variant_colors(runs: Sequence[RunGroup]) -> dict[Variant, tuple]:
    """Shallow to deep along one colour map, so colour reads as depth."""
    variants = sorted({_variant(s) for s in runs}, key=_variant_order)
    cmap = colormaps["viridis"]
    spread = np.linspace(0.0, 0.85, len(variants)) if len(variants) > 1 else [0.0]
    return {variant: cmap(x) for variant, x in zip(variants, spread, strict=True)}


def _variant_order(variant: Variant) -> tuple:
    depth, init, norm, residual_init = variant
    return (depth, init, norm, residual_init_order(residual_init))


def variant_title(variant: Variant, everything: Sequence[RunGroup]) -> str:
    depth, init, norm, residual_init = variant
    parts = [f"depth {depth}"]
    if len({s.init for s in everything}) > 1:
        parts.append(f"{init} init")
    if len({s.norm for s in everything}) > 1:
        parts.append("BN" if norm == "batch" else "no BN")
    if len({s.residual_init for s in everything}) > 1:
        parts.append(f"residual_init {residual_init}")
    return ", ".join(parts)


def panel_grid(
    count: int, panel_size: tuple[float, float], empty: str = "no gradient norms logged"
) -> tuple[Figure, list[Axes]]:
    """`count` axes on rows of at most PANELS_PER_ROW; the grid has no empty axes left over, and
    a grid of none says `empty`."""
    columns = max(1, min(PANELS_PER_ROW, count))
    rows = max(1, -(-count // columns))
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in grid[count:]:
        figure.delaxes(extra)
    if count == 0:
        no_data(figure.add_subplot(), empty)
        return figure, []
    return figure, list(grid[:count])


def no_data(axis: Axes, message: str) -> None:
    axis.text(0.5, 0.5, message, ha="center", va="center", transform=axis.transAxes)
    axis.set_axis_off()
