"""The report's figures of the diagnostics: the backward signal by block, weight growth and
updates by layer, and the layer responses of He et al. 2015 (Fig. 7).

As in the other figures, plain nets are dashed and residual ones solid; a line is the mean over a
setting's seeds (of log10 values where the axis is logarithmic) and the band their range.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from itertools import groupby

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from resdeep.report.analysis import RunGroup, RunSummary
from resdeep.report.figures import (
    ARCH_COLOR,
    ARCH_LINESTYLE,
    PANELS_PER_ROW,
    no_data,
    variant_title,
)
from resdeep.report.mechanism import THRESHOLDS
from resdeep.report.reading import Diagnostics

Panel = tuple[str, tuple[int, str, str], list[RunGroup]]  # (data, (depth, init, norm), groups)


def backward_signal(groups: Sequence[RunGroup]) -> Figure:
    """log10 ‖∂L/∂x‖ at the output of the stem (0) and of every block, at initialisation (top
    row) and at the last logged step (bottom row), one column per depth."""
    units = ("log10 ‖∂L/∂x‖ at block output", "block (stem = 0)")
    return _rows_of_panels(
        _panels(groups),
        [
            ("at initialisation (step {step})", _signal_at("init_step"), "init_step", *units),
            ("at the end (step {step})", _signal_at("end_step"), "end_step", *units),
        ],
        first_index=0,
    )


def weights_and_updates(groups: Sequence[RunGroup]) -> Figure:
    """By conv layer: weight growth from initialisation to the end, the relative gradient at
    the end (with the freeze threshold dotted), and the relative update of the step where
    updates are quoted."""
    convs = "conv layer (input → output)"
    return _rows_of_panels(
        _panels(groups),
        [
            (
                "weight growth ‖W‖ end / start (step {step})",
                _weight_growth,
                "end_step",
                "log10 weight growth",
                convs,
            ),
            (
                "relative gradient ‖∂L/∂W‖/‖W‖ at step {step}",
                _relative_gradient,
                "end_step",
                "log10 ‖∂L/∂W‖/‖W‖",
                convs,
            ),
            (
                "relative update ‖ΔW‖/‖W‖ at step {step}",
                _relative_update,
                "update_step",
                "log10 ‖ΔW‖/‖W‖",
                convs,
            ),
        ],  # fmt: skip
        first_index=1,
        thresholds={0: THRESHOLDS.grown, 1: THRESHOLDS.frozen},
    )


# ---- what the rows draw: one run's values, input to output ------------------------------------


def _signal_at(moment: str) -> Callable[[RunSummary], np.ndarray]:
    return lambda run: _diagnostics(run).backward_signal.at(getattr(run.mechanism, moment))


def _weight_growth(run: RunSummary) -> np.ndarray:
    weights, mechanism = _diagnostics(run).weight_norm, run.mechanism
    return (weights.at(mechanism.end_step) / weights.at(mechanism.init_step))[:-1]  # convs


def _relative_gradient(run: RunSummary) -> np.ndarray:
    grads, step = run.run.grads, run.mechanism.end_step
    return (grads.norms[grads.steps.index(step)] / _diagnostics(run).weight_norm.at(step))[:-1]


def _relative_update(run: RunSummary) -> np.ndarray:
    return _diagnostics(run).relative_update.at(run.mechanism.update_step)[:-1]


def layer_responses(groups: Sequence[RunGroup]) -> Figure:
    """He et al. 2015, Fig. 7: the standard deviation of every conv's response (after BN,
    before ReLU or addition) at the end of training, in network order (top) and sorted by
    magnitude (bottom); one column per data set and setting, colour for depth."""
    settings = [
        (key, [g for g in members if all(r.mechanism for r in g.runs)])
        for key, members in groupby(
            sorted(groups, key=lambda g: (g.data, g.init, g.norm)),
            key=lambda g: (g.data, g.init, g.norm),
        )
    ]
    settings = [(key, members) for key, members in settings if members]
    columns = max(1, min(PANELS_PER_ROW, len(settings)))
    blocks = max(1, -(-len(settings) // columns))
    figure = Figure(figsize=(5.2 * columns, 3.4 * 2 * blocks), layout="constrained")
    axes = figure.subplots(2 * blocks, columns, squeeze=False)
    used = set()
    for index, ((data, init, norm), members) in enumerate(settings):
        top = axes[2 * (index // columns), index % columns]
        bottom = axes[2 * (index // columns) + 1, index % columns]
        used |= {id(top), id(bottom)}
        depths = sorted({g.depth for g in members})
        palette = colormaps["viridis"](np.linspace(0.0, 0.85, len(depths)))
        color_of = dict(zip(depths, palette, strict=True))
        for group in sorted(members, key=lambda g: (g.depth, g.arch)):
            responses = np.array(
                [_diagnostics(r).layer_response.at(r.mechanism.end_step) for r in group.runs]
            )
            style = {
                "color": color_of[group.depth],
                "linestyle": ARCH_LINESTYLE.get(group.arch, "-."),
                "label": group.name,
            }
            layers = np.arange(1, responses.shape[1] + 1)
            top.plot(layers, responses.mean(axis=0), **style)
            ordered = -np.sort(-responses, axis=1)  # each seed sorted on its own, as in Fig. 7
            bottom.plot(layers, ordered.mean(axis=0), **style)
        title = ", ".join(
            [data]
            + ([f"{init} init"] if len({g.init for g in groups}) > 1 else [])
            + (
                [("BN" if norm == "batch" else "no BN")]
                if len({g.norm for g in groups}) > 1
                else []
            )
        )
        seeds = max(len(g.runs) for g in members)
        mean = f", mean over {seeds} seeds" if seeds > 1 else ""
        top.set_title(f"{title}: layer responses in network order{mean}", fontsize=9)
        bottom.set_title(f"{title}: sorted by magnitude", fontsize=9)
        top.set_xlabel("layer index (input → output)")
        bottom.set_xlabel("layer index (sorted by magnitude)")
        for axis in (top, bottom):
            # log: a plain net's early responses can be thousands of times the others
            axis.set_yscale("log")
            axis.set_ylabel("std of response")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
        top.legend(fontsize="x-small", ncols=2)
    for axis in axes.ravel():
        if id(axis) not in used:
            figure.delaxes(axis)
    if not settings:
        no_data(figure.add_subplot(), "no diagnostics logged")
    return figure


# ---- the grid shared by the per-depth figures -------------------------------------------------


def _panels(groups: Sequence[RunGroup]) -> list[Panel]:
    """One panel per data set and (depth, init, norm), of the groups with diagnostics."""
    measured = sorted(
        (g for g in groups if all(r.mechanism for r in g.runs)),
        key=lambda g: (g.data, g.depth, g.init, g.norm),
    )
    return [
        (key[0], key[1:], list(members))
        for key, members in groupby(measured, key=lambda g: (g.data, g.depth, g.init, g.norm))
    ]


def _rows_of_panels(
    panels: list[Panel],
    rows: list[tuple[str, Callable[[RunSummary], np.ndarray], str, str, str]],
    first_index: int,
    thresholds: dict[int, float] | None = None,
) -> Figure:
    """A block of len(rows) rows for every PANELS_PER_ROW panels: row r of a block draws
    rows[r] = (title, values(run), moment of the title's step, y label, x label) for each
    panel's groups, on a log10 axis, x from `first_index`. `thresholds`: a dotted horizontal
    line on row r at that value."""
    columns = max(1, min(PANELS_PER_ROW, len(panels)))
    blocks = max(1, -(-len(panels) // columns))
    figure = Figure(figsize=(4.8 * columns, 3.2 * len(rows) * blocks), layout="constrained")
    axes = figure.subplots(len(rows) * blocks, columns, squeeze=False)
    mixed_data = len({data for data, _, _ in panels}) > 1
    everything = [g for _, _, members in panels for g in members]
    used = set()
    for index, (data, variant, members) in enumerate(panels):
        for row, (title, values, moment, ylabel, xlabel) in enumerate(rows):
            axis = axes[len(rows) * (index // columns) + row, index % columns]
            used.add(id(axis))
            steps = sorted({getattr(run.mechanism, moment) for g in members for run in g.runs})
            step = ", ".join(map(str, steps))
            for group in sorted(members, key=lambda g: g.arch):
                curves = np.array([_log10(values(run)) for run in group.runs])
                _mean_and_range(axis, curves, group, start=first_index)
            heading = variant_title(variant, everything) + (f" [{data}]" if mixed_data else "")
            axis.set_title(f"{heading}: {title.format(step=step)}", fontsize=9)
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
            if thresholds and row in thresholds:
                axis.axhline(np.log10(thresholds[row]), color="black", linestyle=":", lw=1)
            axis.legend(fontsize="x-small")
    for axis in axes.ravel():
        if id(axis) not in used:
            figure.delaxes(axis)
    if not panels:
        no_data(figure.add_subplot(), "no diagnostics logged")
    return figure


def _diagnostics(run: RunSummary) -> Diagnostics:
    assert run.run.diagnostics is not None  # panels hold measured groups only
    return run.run.diagnostics


def _mean_and_range(axis: Axes, curves: np.ndarray, group: RunGroup, start: int) -> None:
    color = ARCH_COLOR.get(group.arch, "tab:gray")
    x = np.arange(start, start + curves.shape[1])
    with warnings.catch_warnings():  # a diverged seed's NaN columns are drawn as gaps
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(curves, axis=0)
        low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
    seeds = len(group.runs)
    label = group.name + (f" ({seeds} seeds)" if seeds > 1 else "")
    axis.plot(x, mean, color=color, linestyle=ARCH_LINESTYLE.get(group.arch, "-."), label=label)
    if seeds > 1:
        axis.fill_between(x, low, high, color=color, alpha=0.15, lw=0)


def _log10(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        array = np.asarray(values, dtype=float)
        return np.log10(np.where(array > 0, array, np.nan))
