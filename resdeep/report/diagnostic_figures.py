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

from resdeep.logscale import log10
from resdeep.report.analysis import RunGroup, RunSummary, residual_init_order
from resdeep.report.figures import (
    ARCH_COLOR,
    ARCH_LINESTYLE,
    PANELS_PER_ROW,
    Variant,
    no_data,
    variant_title,
)
from resdeep.report.mechanism import THRESHOLDS, conv_columns, relative_gradient, weight_growth
from resdeep.report.reading import Diagnostics

Panel = tuple[str, Variant, list[RunGroup]]  # (data, (depth, init, norm, residual_init), groups)
Row = tuple[str, Callable[[RunSummary], np.ndarray], str, str, str]
# (title with {step}, one run's values, the Mechanism field of that step, y label, x label)


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
    the end (the freeze test; thresholds dotted), and the relative update of the step where
    updates are quoted."""
    convs = "conv layer (input → output)"
    rows: list[Row] = [
        ("weight growth ‖W‖ end / start (step {step})", _weight_growth, "end_step",
         "log10 weight growth", convs),
        ("relative gradient ‖∂L/∂W‖/‖W‖ at step {step}", _relative_gradient, "end_step",
         "log10 ‖∂L/∂W‖/‖W‖", convs),
        ("relative update ‖ΔW‖/‖W‖ at step {step}", _relative_update, "update_step",
         "log10 ‖ΔW‖/‖W‖", convs),
    ]  # fmt: skip
    return _rows_of_panels(
        _panels(groups), rows, first_index=1, thresholds={0: THRESHOLDS.grown, 1: THRESHOLDS.frozen}
    )


def layer_responses(groups: Sequence[RunGroup]) -> Figure:
    """He et al. 2015, Fig. 7: the standard deviation of every conv's response (after BN,
    before ReLU or addition) at the end of training, in network order (top) and sorted by
    magnitude (bottom); one column per data set and setting, colour for depth."""
    measured = [g for g in groups if all(r.mechanism for r in g.runs)]
    by_setting = [
        (key, list(members))
        for key, members in groupby(
            sorted(
                measured,
                key=lambda g: (g.data, g.init, g.norm, residual_init_order(g.residual_init)),
            ),
            key=lambda g: (g.data, g.init, g.norm, g.residual_init),
        )
    ]
    figure, cells = _grid(len(by_setting), rows=2, panel_size=(5.2, 3.4))
    for ((data, init, norm, residual_init), members), (top, bottom) in zip(
        by_setting, cells, strict=True
    ):
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
            top.plot(layers, _nanmean(responses), **style)
            ordered = -np.sort(-responses, axis=1)  # each seed sorted on its own, as in Fig. 7
            bottom.plot(layers, _nanmean(ordered), **style)
        title = ", ".join(
            [data]
            + ([f"{init} init"] if len({g.init for g in groups}) > 1 else [])
            + (
                [("BN" if norm == "batch" else "no BN")]
                if len({g.norm for g in groups}) > 1
                else []
            )
            + (
                [f"residual_init {residual_init}"]
                if len({g.residual_init for g in groups}) > 1
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
    return figure


# ---- what the rows draw: one run's values, input to output ------------------------------------


def _signal_at(moment: str) -> Callable[[RunSummary], np.ndarray]:
    return lambda run: _diagnostics(run).backward_signal.at(getattr(run.mechanism, moment))


def _weight_growth(run: RunSummary) -> np.ndarray:
    return weight_growth(_diagnostics(run))


def _relative_gradient(run: RunSummary) -> np.ndarray:
    assert run.run.grads is not None and run.mechanism is not None  # measured runs only
    return relative_gradient(_diagnostics(run), run.run.grads, run.mechanism.end_step)


def _relative_update(run: RunSummary) -> np.ndarray:
    updates = _diagnostics(run).relative_update
    return updates.at(run.mechanism.update_step)[conv_columns(updates.names)]


def _diagnostics(run: RunSummary) -> Diagnostics:
    assert run.run.diagnostics is not None  # panels hold measured groups only
    return run.run.diagnostics


# ---- the grids ----------------------------------------------------------------------------------


def _panels(groups: Sequence[RunGroup]) -> list[Panel]:
    """One panel per data set and (depth, init, norm, residual_init), of the groups with
    diagnostics."""
    measured = sorted(
        (g for g in groups if all(r.mechanism for r in g.runs)),
        key=lambda g: (g.data, g.depth, g.init, g.norm, residual_init_order(g.residual_init)),
    )
    return [
        (key[0], key[1:], list(members))
        for key, members in groupby(
            measured, key=lambda g: (g.data, g.depth, g.init, g.norm, g.residual_init)
        )
    ]


def _grid(
    count: int, rows: int, panel_size: tuple[float, float]
) -> tuple[Figure, list[list[Axes]]]:
    """`count` panels of `rows` stacked axes each, PANELS_PER_ROW panels across; the axes of
    each panel, top to bottom. No empty axes are left over; with no panel, a note."""
    columns = max(1, min(PANELS_PER_ROW, count))
    blocks = max(1, -(-count // columns))
    width, height = panel_size
    figure = Figure(figsize=(width * columns, height * rows * blocks), layout="constrained")
    axes = figure.subplots(rows * blocks, columns, squeeze=False)
    cells = [
        [axes[rows * (index // columns) + row, index % columns] for row in range(rows)]
        for index in range(count)
    ]
    used = {id(axis) for cell in cells for axis in cell}
    for axis in axes.ravel():
        if id(axis) not in used:
            figure.delaxes(axis)
    if count == 0:
        no_data(figure.add_subplot(), "no diagnostics logged")
    return figure, cells


def _rows_of_panels(
    panels: list[Panel],
    rows: list[Row],
    first_index: int,
    thresholds: dict[int, float] | None = None,
) -> Figure:
    """Row r of each panel draws rows[r] for the panel's groups on a log10 axis, x from
    `first_index`; `thresholds`: a dotted horizontal line on row r at that value."""
    figure, cells = _grid(len(panels), rows=len(rows), panel_size=(4.8, 3.2))
    mixed_data = len({data for data, _, _ in panels}) > 1
    everything = [g for _, _, members in panels for g in members]
    for (data, variant, members), cell in zip(panels, cells, strict=True):
        for row, ((title, values, moment, ylabel, xlabel), axis) in enumerate(
            zip(rows, cell, strict=True)
        ):
            steps = sorted({getattr(run.mechanism, moment) for g in members for run in g.runs})
            for group in sorted(members, key=lambda g: g.arch):
                curves = np.array([log10(values(run)) for run in group.runs])
                _mean_and_range(axis, curves, group, start=first_index)
            heading = variant_title(variant, everything) + (f" [{data}]" if mixed_data else "")
            step = ", ".join(map(str, steps))
            axis.set_title(f"{heading}: {title.format(step=step)}", fontsize=9)
            axis.set_xlabel(xlabel)
            axis.set_ylabel(ylabel)
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
            if thresholds and row in thresholds:
                axis.axhline(np.log10(thresholds[row]), color="black", linestyle=":", lw=1)
            axis.legend(fontsize="x-small")
    return figure


def _mean_and_range(axis: Axes, curves: np.ndarray, group: RunGroup, start: int) -> None:
    color = ARCH_COLOR.get(group.arch, "tab:gray")
    x = np.arange(start, start + curves.shape[1])
    seeds = len(group.runs)
    label = group.name + (f" ({seeds} seeds)" if seeds > 1 else "")
    axis.plot(x, _nanmean(curves), color=color, linestyle=ARCH_LINESTYLE.get(group.arch, "-."),
              label=label)  # fmt: skip
    if seeds > 1:
        with warnings.catch_warnings():  # a diverged seed's NaN columns leave gaps
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
        axis.fill_between(x, low, high, color=color, alpha=0.15, lw=0)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """The mean over seeds (rows) of what is finite; a column no seed measured stays NaN."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.where(np.isfinite(values), values, np.nan), axis=0)
