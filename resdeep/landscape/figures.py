"""The landscape study's figures: 1-D slices (one panel per depth, plain dashed and residual
solid, every seed and direction a thin line), 2-D planes as contours on one log scale with the
chance level marked (plain and residual side by side, Li et al.'s Fig. 5 layout), and the
straight line between two nets."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from resdeep.landscape.groups import LandscapeGroup
from resdeep.landscape.study import RunLandscape
from resdeep.report.figures import ARCH_LINESTYLE, by_depth, no_data, setting_colors

CONTOUR_TOP = 1e4
LINE_TOP = 1e6  # the straight line's plot: beyond, extrapolation hides the stretch between the ends


def chance_loss(group: LandscapeGroup) -> float:
    """ln C: the cross-entropy of a uniform guess over the classes."""
    return math.log(group.runs[0].about["classes"])


def _curve_panels(
    groups: Sequence[LandscapeGroup],
    curves: Callable[[RunLandscape], list[dict]],
    label: Callable[[LandscapeGroup, RunLandscape], str],
    xlabel: str,
) -> Figure:
    """Training loss (log scale) of each run's curves, one panel per depth, plain dashed and
    residual solid, the chance level dotted; `label` names a group's first curve."""
    panels = by_depth(groups)
    colors = setting_colors(groups)
    figure = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(panels), sharey=True))
    for axis, (depth, members) in zip(axes, panels, strict=True):
        for group in members:
            style = ARCH_LINESTYLE.get(group.about["arch"], "-.")
            runs = [run for run in group.runs if curves(run)]
            for i, run in enumerate(runs):
                for j, curve in enumerate(curves(run)):
                    axis.plot(
                        curve["steps"], curve["loss"]["train"], color=colors[group.label],
                        linestyle=style, linewidth=1.0, alpha=0.7,
                        label=label(group, run) if i == j == 0 else None,
                    )  # fmt: skip
        axis.axhline(chance_loss(members[0]), color="black", linewidth=0.8, linestyle=":",
                     label="chance (ln C)")  # fmt: skip
        axis.set_yscale("log")
        axis.set_xlabel(xlabel)
        axis.set_title(f"depth {depth}", fontsize=9)
        axis.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("training loss (cross-entropy)")
    return figure


def slices(groups: Sequence[LandscapeGroup], context: str) -> Figure:
    """Training loss along each direction, log scale, one panel per depth."""
    if not groups:
        return no_data("no slices")
    figure = _curve_panels(
        groups,
        lambda run: run.slices,
        lambda group, run: (
            f"{group.label} ({len(group.runs)} seeds × {len(run.slices)} directions)"
        ),
        "step along a direction",
    )
    for axis in figure.axes:
        axis.legend(fontsize=7)
    _title(figure, f"Loss along random directions through the trained weights ({context}; "
                   f"seeds {_seeds(groups)})")  # fmt: skip
    return figure


def _title(figure: Figure, text: str) -> None:
    """A suptitle wrapped to the figure's width (about 16 characters an inch at size 9)."""
    width = int(figure.get_figwidth() * 16)
    figure.suptitle("\n".join(textwrap.wrap(text, width)), fontsize=9)


def _seeds(groups: Sequence[LandscapeGroup]) -> str:
    seeds = sorted({s for g in groups for s in g.seeds if s is not None})
    return ", ".join(str(s) for s in seeds) or "-"


def planes(groups: Sequence[LandscapeGroup], context: str) -> Figure:
    """Each setting's plane (its lowest seed's), one row per depth with plain and residual side
    by side; every panel on one log colour scale and the same contour levels, the chance-level
    contour drawn bold."""
    shown = [g for g in groups if g.runs[0].plane is not None]
    panels = by_depth(shown)
    if not panels:
        return no_data("no planes (run with --2d)")
    columns = max(len(members) for _, members in panels)
    losses = [np.asarray(g.runs[0].plane["loss"]["train"]) for g in shown]
    low = max(min(float(np.nanmin(v)) for v in losses), 1e-4)
    high = max(float(np.nanmax(v)) for v in losses)
    # Up to 10^4 at most: a plain net's loss far from θ* reaches 10^20, and a scale that wide
    # leaves the region around the minimum one colour (above it: the top colour).
    levels = np.geomspace(low, max(min(high, CONTOUR_TOP), low * 10), 22)
    norm = LogNorm(vmin=levels[0], vmax=levels[-1])
    figure = Figure(figsize=(4.0 * columns + 1.0, 3.7 * len(panels)), layout="constrained")
    axes = np.atleast_2d(figure.subplots(len(panels), columns, squeeze=False))
    image = None
    for row, (_, members) in zip(axes, panels, strict=True):
        for axis, group in zip(row, members, strict=False):
            run = group.runs[0]
            steps = np.asarray(run.plane["steps"])
            loss = np.maximum(np.asarray(run.plane["loss"]["train"]), levels[0])
            image = axis.contourf(steps, steps, loss, levels=levels, norm=norm, cmap="viridis",
                                  extend="max")  # fmt: skip
            axis.contour(steps, steps, loss, levels=levels[::3], colors="white", linewidths=0.4)
            chance = chance_loss(group)
            if levels[0] < chance < levels[-1]:
                axis.contour(steps, steps, loss, levels=[chance], colors="red", linewidths=1.5)
            axis.plot(0, 0, marker="+", color="white")
            axis.set_title(
                f"{group.label}, seed {run.about['seed']}: loss {run.centre['train']['loss']:.3g} at θ*",
                fontsize=8,
            )
            axis.set_xlabel("δ")
            axis.set_ylabel("η")
            axis.set_aspect("equal")
        for axis in row[len(members) :]:
            axis.set_axis_off()
    if image is not None:
        bar = figure.colorbar(image, ax=axes, label="training loss (log scale)")
        decades = range(math.ceil(math.log10(levels[0])), math.floor(math.log10(levels[-1])) + 1)
        bar.set_ticks([10.0**k for k in decades], labels=[f"$10^{{{k}}}$" for k in decades])
        chances = sorted({chance_loss(g) for g in shown})
        for chance in chances:
            if levels[0] < chance < levels[-1]:
                bar.ax.axhline(chance, color="red", linewidth=1.5)
    _title(figure, f"Loss on the plane of the first two directions ({context}); red: the "
                   "chance level ln C")  # fmt: skip
    return figure


def interpolation(groups: Sequence[LandscapeGroup], context: str) -> Figure:
    """Training loss on the straight line from each net (t = 0) to the other end (t = 1)."""
    shown = [g for g in groups if g.has_interpolation]
    if not shown:
        return no_data("no interpolation (run with --between)")
    figure = _curve_panels(
        shown,
        lambda run: [run.interpolation] if run.interpolation else [],
        lambda group, run: group.label,
        "t: (1 − t)·θ₀ + t·θ₁",
    )
    for axis in figure.axes:
        for end in (0, 1):
            axis.axvline(end, color="gray", linewidth=0.6)
        if axis.get_ylim()[1] > LINE_TOP:
            axis.set_ylim(top=LINE_TOP)
        axis.legend(fontsize=7)
    starts = {run.interpolation["from"] for g in shown for run in g.runs if run.interpolation}
    what = (
        "from each net's initial weights (t = 0) to the end of its training (t = 1)"
        if starts == {"init"}
        else "between two trained nets of one setting"
    )
    _title(figure, f"Loss on the straight line {what} ({context})")
    return figure
