"""The signal study's figures: the signal and the gradient by block (with the scaling laws as
reference lines), the mean-field prediction beside the measurement, the neighbour-gradient
correlation against depth and lag, and the gradient along a line between two inputs (Balduzzi et
al. 2017, Fig. 1's layout). Plain dashed, residual solid; seeds as bands (their range)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from resdeep.report.figures import (
    ARCH_COLOR,
    ARCH_LINESTYLE,
    ARCH_MARKER,
    by_depth,
    no_data,
    setting_colors,
)
from resdeep.signal.groups import SignalGroup


def _line(
    axis: Axes, x: np.ndarray, rows: np.ndarray, group: SignalGroup, color, label: str
) -> None:
    """Mean over seeds (geometric, for these positive quantities) with the seeds' range; a
    trained net's line is paler than the same setting's at initialisation."""
    with np.errstate(invalid="ignore", divide="ignore"):
        logs = np.log10(rows)
    mean = 10 ** np.nanmean(logs, axis=0)
    alpha = 1.0 if group.state == "init" else 0.45
    axis.plot(
        x, mean, color=color, linestyle=ARCH_LINESTYLE.get(group.about["arch"], "-."),
        marker=ARCH_MARKER.get(group.about["arch"], "o"), markersize=2.5, alpha=alpha,
        label=label if group.state == "init" else f"{label}, trained",
    )  # fmt: skip
    if len(rows) > 1:
        axis.fill_between(
            x, np.nanmin(rows, 0), np.nanmax(rows, 0), color=color, alpha=0.15 * alpha
        )


def _title_state(group: SignalGroup) -> str:
    return "at initialisation" if group.state == "init" else "trained"


def _has_positive(axis: Axes) -> bool:
    return any(np.nanmax(np.asarray(line.get_ydata(), dtype=float), initial=0) > 0
               for line in axis.get_lines())  # fmt: skip


def _reference(axis: Axes, group: SignalGroup, stream: np.ndarray) -> None:
    """The scaling law of nets without an exact prediction, anchored at the first block: a
    residual net without batch norm under a variance-preserving init (kaiming, orthogonal)
    doubles its stream's second moment per block (each branch adds a copy of the stream's
    variance: exponential); a pre-activation net with batch norm adds one normalised branch per
    block (linear within a stage, De & Smith 2020)."""
    first = float(np.nanmean(stream[:, 0]))
    blocks = np.arange(stream.shape[1])
    about = group.about
    variance_preserving = about["init"] in ("kaiming", "orthogonal")  # the branch keeps its input's
    if (
        about["arch"] != "plain"
        and about["norm"] == "none"
        and about["residual_init"] == "none"
        and variance_preserving
    ):
        axis.plot(blocks + 1, first * 2.0**blocks, color="0.5", linewidth=0.8, linestyle=":",
                  label="2^block (exponential law)")  # fmt: skip
    elif about["arch"] == "preact" and about["norm"] == "batch":
        axis.plot(blocks + 1, first * (1 + blocks), color="0.5", linewidth=0.8, linestyle=":",
                  label="linear law")  # fmt: skip


def signal_by_block(groups: Sequence[SignalGroup]) -> Figure:
    """Top: the second moment of each block's stream (branch + shortcut); middle: the variance of
    the residual branch (Brock, De & Smith 2021's residual average channel variance); bottom: the
    second moment of the loss gradient at the stream. One column per depth; trained nets
    paler."""
    panels = by_depth(groups)
    colors = setting_colors(groups)
    figure = Figure(figsize=(4.6 * max(1, len(panels)), 9.2), layout="constrained")
    if not panels:
        no_data(figure.add_subplot(), "no nets")
        return figure
    axes = figure.subplots(3, len(panels), squeeze=False)
    for column, (depth, members) in enumerate(panels):
        top, middle, bottom = axes[0, column], axes[1, column], axes[2, column]
        for group in members:
            stream = group.per_block("stream")
            x = np.arange(1, stream.shape[1] + 1)
            color = colors[group.label]
            _line(top, x, stream, group, color, group.label)
            if group.residual:
                _line(middle, x, group.per_block("branch"), group, color, group.label)
            _line(bottom, x, group.per_block("backward"), group, color, group.label)
            if group.state == "init":
                _reference(top, group, stream)
        states = {group.state for group in members}
        top.set_title(f"depth {depth}" + (", at initialisation" if states == {"init"} else ""))
        if not any(group.residual for group in members):
            no_data(middle, "plain nets: no residual branch")
        for axis in (top, middle, bottom):
            if axis.axison and _has_positive(axis):  # a gated branch is exactly 0 at first
                axis.set_yscale("log")
            axis.grid(alpha=0.3)
        bottom.set_xlabel("block (input to output)")
        top.legend(fontsize=7)
    axes[0, 0].set_ylabel("forward: E[stream²]")
    axes[1, 0].set_ylabel("residual branch: channel variance")
    axes[2, 0].set_ylabel("backward: E[(∂L/∂stream)²]")
    return figure


def mean_field(groups: Sequence[SignalGroup]) -> Figure:
    """Per conv of the plain nets without batch norm: the measured second moment (markers, the
    seeds' range as bars) beside the mean-field prediction from the weights (lines), forward
    and backward."""
    shown = [g for g in groups if any(net.mean_field for net in g.nets)]
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    if not shown:
        no_data(figure.add_subplot(), "no plain net without batch norm: no exact prediction")
        return figure
    colors = setting_colors(shown)
    axes = figure.subplots(1, 2)
    for axis, measured, predicted, title in (
        (axes[0], "forward", "mf_forward", "forward: E[z²] of each conv's output"),
        (axes[1], "backward", "mf_backward", "backward: E[(∂L/∂z)²]"),
    ):
        for group in shown:
            rows = group.per_layer(measured)
            x = np.arange(rows.shape[1])
            mean = 10 ** np.nanmean(np.log10(rows), axis=0)
            low = np.clip(mean - np.nanmin(rows, 0), 0, None)  # rounding: never below 0
            high = np.clip(np.nanmax(rows, 0) - mean, 0, None)
            color = colors[group.label]
            axis.errorbar(x, mean, yerr=[low, high], fmt="o", markersize=3, color=color,
                          label=f"{group.label} measured")  # fmt: skip
            theory = 10 ** np.nanmean(np.log10(group.per_layer(predicted)), axis=0)
            axis.plot(x, theory, color=color, linewidth=1, label=f"{group.label} mean field")
        stages = [layer.stage for layer in shown[0].nets[0].propagation.layers]
        for index in range(1, len(stages)):
            if stages[index] != stages[index - 1]:
                axis.axvline(index - 0.5, color="0.7", linewidth=0.8)
        axis.set_yscale("log")
        axis.set_xlabel("conv (stem = 0; grey lines: stage boundaries)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return figure


def correlation(groups: Sequence[SignalGroup]) -> Figure:
    """Left: the neighbour-gradient correlation against depth (the seeds' range as bars); right:
    the correlation against the lag along the line, at initialisation."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    usable = [g for g in groups if not g.zero_gradient()]
    if not usable:
        no_data(figure.add_subplot(), "no input gradient to correlate")
        return figure
    left, right = figure.subplots(1, 2)
    series: dict[tuple, list[SignalGroup]] = {}
    for group in usable:
        key = (group.about["arch"], group.about["init"], group.about["norm"],
               group.about["residual_init"], group.about["data"], group.state)  # fmt: skip
        series.setdefault(key, []).append(group)
    palette = colormaps["tab10"]
    for index, (key, members) in enumerate(series.items()):
        members.sort(key=lambda g: g.about["depth"])
        depths = [g.about["depth"] for g in members]
        values = [np.array([n.line.neighbour for n in g.nets]) for g in members]
        mean = np.array([np.nanmean(v) for v in values])
        low = np.clip(mean - np.array([np.nanmin(v) for v in values]), 0, None)
        high = np.clip(np.array([np.nanmax(v) for v in values]) - mean, 0, None)
        name = members[0].label.split(" ", 1)
        label = (
            key[0]
            + (f" {name[1]}" if len(name) > 1 else "")
            + ("" if key[-1] == "init" else " (trained)")
        )
        variants = {k[1:5] for k in series}
        color = ARCH_COLOR.get(key[0], "tab:gray") if len(variants) == 1 else palette(index % 10)
        left.errorbar(depths, mean, yerr=[low, high], color=color, capsize=3,
                      alpha=1.0 if key[-1] == "init" else 0.45,
                      linestyle=ARCH_LINESTYLE.get(key[0], "-."),
                      marker=ARCH_MARKER.get(key[0], "o"), label=label)  # fmt: skip
    left.set_xscale("log")
    depths = sorted({g.about["depth"] for g in usable})
    left.set_xticks(depths, [str(d) for d in depths])
    left.xaxis.set_minor_formatter(NullFormatter())
    left.set_xlabel("depth")
    left.set_ylabel("mean cosine of neighbouring input gradients")
    left.axhline(0, color="0.6", linewidth=0.8)
    left.set_ylim(-0.1, 1.05)
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    cmap = colormaps["viridis"]
    at_init = [g for g in usable if g.state == "init"] or usable
    span = sorted({g.about["depth"] for g in at_init})
    for group in at_init:
        lags = group.lags()
        shade = span.index(group.about["depth"]) / max(1, len(span) - 1) * 0.85
        right.plot(np.arange(1, lags.shape[1] + 1), np.nanmean(lags, 0), color=cmap(shade),
                   linestyle=ARCH_LINESTYLE.get(group.about["arch"], "-."), label=group.label)  # fmt: skip
    right.set_xscale("log")
    right.set_xlabel("lag (points along the line)")
    right.set_ylabel("mean cosine")
    right.axhline(0, color="0.6", linewidth=0.8)
    right.set_title(f"autocorrelation along the line, {_title_state(at_init[0])}")
    right.grid(alpha=0.3)
    right.legend(fontsize=6, ncol=2)
    return figure


def shattered(groups: Sequence[SignalGroup]) -> Figure:
    """The derivative of logit 0 along the line (the input gradient projected on the line's
    direction), for the shallowest net, the deepest plain net and the deepest residual net at
    initialisation (lowest seed), each scaled to its largest value."""
    at_init = [g for g in groups if g.state == "init" and not g.zero_gradient()] or [
        g for g in groups if not g.zero_gradient()
    ]
    chosen: list[SignalGroup] = []
    if at_init:
        chosen.append(min(at_init, key=lambda g: (g.about["depth"], g.residual)))
        for residual in (False, True):
            family = [g for g in at_init if g.residual == residual]
            if family:
                deepest = max(family, key=lambda g: g.about["depth"])
                if deepest not in chosen:
                    chosen.append(deepest)
    figure = Figure(figsize=(4.2 * max(1, len(chosen)), 6.6), layout="constrained")
    if not chosen:
        no_data(figure.add_subplot(), "no input gradient to show")
        return figure
    axes = figure.subplots(2, len(chosen), squeeze=False)
    for column, group in enumerate(chosen):
        net = group.nets[0]
        top, bottom = axes[0, column], axes[1, column]
        values = np.array(net.line.along)
        scale = np.abs(values).max() or 1.0
        top.plot(np.linspace(0, 1, len(values)), values / scale,
                 color=ARCH_COLOR.get(group.about["arch"], "tab:gray"), linewidth=0.9)  # fmt: skip
        top.set_title(f"{group.label}, seed {net.about['seed']}: "
                      f"correlation {net.line.neighbour:.2f}", fontsize=9)  # fmt: skip
        top.set_xlabel("position along the line")
        top.set_yticks([])
        if net.line.similarity is not None:
            # Every k-th point, at most 64 (exact values, not averages): a PNG of 256 x 256
            # cells of noise would weigh most of a megabyte.
            step = -(-len(net.line.similarity) // 64)
            image = bottom.imshow(net.line.similarity[::step, ::step].numpy(), vmin=-1, vmax=1,
                                  cmap="RdBu_r", extent=(0, 1, 1, 0),
                                  interpolation="nearest")  # fmt: skip
            bottom.set_xlabel("position along the line")
            bottom.set_title("cosine between the gradients at two points", fontsize=9)
        else:
            no_data(bottom, "not measured")
    axes[0, 0].set_ylabel("d logit / dt along the line, scaled")
    if any(group.nets[0].line.similarity is not None for group in chosen):
        figure.colorbar(image, ax=axes[1, :].tolist(), shrink=0.8)
    return figure
