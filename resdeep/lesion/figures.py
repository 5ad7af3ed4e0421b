"""The lesion study's figures: accuracy after deleting each block, the k-block deletion curve
(and the swap curve), and the gradient by path length. Plain dashed, residual solid, seeds as
bands (± one standard deviation), as in the report."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from resdeep.lesion.groups import LesionGroup
from resdeep.report.figures import ARCH_COLOR, ARCH_LINESTYLE, ARCH_MARKER, panel_grid
from resdeep.report.spread import Spread


def _style(group: LesionGroup) -> dict:
    return {
        "color": ARCH_COLOR.get(group.arch, "tab:gray"),
        "linestyle": ARCH_LINESTYLE.get(group.arch, "-."),
        "label": group.label,
    }


def _band(axis: Axes, x: Sequence[float], spreads: Sequence[Spread], group: LesionGroup) -> None:
    """The mean over seeds as a line, ± one std as a band; missing values left as gaps."""
    mean = np.array([np.nan if s.mean is None else 100 * s.mean for s in spreads])
    std = np.array([0.0 if s.std is None else 100 * s.std for s in spreads])
    style = _style(group)
    axis.plot(x, mean, marker=ARCH_MARKER.get(group.arch, "o"), markersize=3, **style)
    if len(group.runs) > 1:
        axis.fill_between(x, mean - std, mean + std, color=style["color"], alpha=0.18)


def _seeds(groups: Sequence[LesionGroup]) -> str:
    counts = sorted({len(g.runs) for g in groups})
    if counts == [1]:
        return "one seed"
    return f"mean ± std over {'/'.join(map(str, counts))} seeds"


def _by_depth(groups: Sequence[LesionGroup]) -> list[tuple[tuple[str, int], list[LesionGroup]]]:
    ordered = sorted(groups, key=lambda g: (g.data, g.depth, g.arch != "plain", g.label))
    return [(key, list(g)) for key, g in groupby(ordered, key=lambda g: (g.data, g.depth))]


def single_deletion(groups: Sequence[LesionGroup]) -> Figure:
    """Accuracy after deleting each block in turn, one panel per depth; blocks that change
    shape are marked (deleted through their shortcut in a residual net, kept in a plain one),
    and each net's intact accuracy is a dotted line."""
    panels = _by_depth(groups)
    figure, axes = panel_grid(len(panels), (5.2, 3.6), empty="no runs")
    split = groups[0].runs[0].split if groups else "test"
    for ((data, depth), members), axis in zip(panels, axes, strict=True):
        for group in members:
            drops = group.block_drops()
            x = np.arange(1, len(drops) + 1)
            _band(axis, x, [spread for _, _, spread in drops], group)
            if group.intact.mean is not None:
                axis.axhline(100 * group.intact.mean, color=_style(group)["color"], lw=0.8,
                             linestyle=":")  # fmt: skip
        for position, (_, changes_shape, _) in enumerate(members[0].block_drops(), start=1):
            if changes_shape:
                axis.axvline(position, color="0.6", lw=0.8, zorder=0)
        axis.set_title(f"depth {depth} ({data}); grey: block changes shape", fontsize=9)
        axis.set_xlabel("deleted block (input → output)")
        axis.set_ylabel(f"{split} accuracy (%)")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle(f"Deleting one block at test time, {split} split, {_seeds(groups)}")
    return figure


def deletion_curves(groups: Sequence[LesionGroup], *, reorder: bool = False) -> Figure:
    """Accuracy against the number k of blocks deleted together (or of neighbour pairs
    swapped), each seed's mean over its random draws, one panel per depth."""
    panels = _by_depth(groups)
    figure, axes = panel_grid(len(panels), (4.6, 3.4), empty="no runs")
    split = groups[0].runs[0].split if groups else "test"
    draws = groups[0].runs[0].settings.get("draws") if groups else None
    for ((data, depth), members), axis in zip(panels, axes, strict=True):
        for group in members:
            curve = group.reorder_curve() if reorder else group.k_curve()
            if not curve:
                continue
            ks = [0] + [k for k, _ in curve]
            _band(axis, ks, [group.intact] + [spread for _, spread in curve], group)
        axis.set_title(f"depth {depth} ({data})", fontsize=9)
        axis.set_xlabel("neighbour pairs swapped" if reorder else "blocks deleted together (k)")
        axis.set_ylabel(f"{split} accuracy (%)")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize="small")
        else:
            axis.text(0.5, 0.5, "no neighbouring blocks of one shape", ha="center",
                      transform=axis.transAxes)  # fmt: skip
    what = "Swapping k pairs of neighbouring blocks" if reorder else "Deleting k random blocks"
    figure.suptitle(f"{what}, {draws} draws per k, {split} split, {_seeds(groups)}")
    return figure


def path_lengths(groups: Sequence[LesionGroup]) -> Figure:
    """Veit et al.'s Fig. 6 for each residual setting: the share of paths of each length, the
    gradient magnitude of one path of length k, and their product (the whole gradient at each
    length) with its shortest 90 % window shaded."""
    measured = [g for g in groups if g.path_runs()]
    if not measured:
        return panel_grid(0, (4.6, 3.4), empty="no path gradients measured (--paths)")[0]
    figure, axes = panel_grid(3, (4.6, 3.4))
    share_axis, per_path_axis, total_axis = axes
    for group in measured:
        runs = group.path_runs()
        ks = np.arange(runs[0]["blocks"] + 1)
        style = {"label": group.label, "linestyle": ARCH_LINESTYLE.get(group.arch, "-")}
        line = share_axis.plot(ks, runs[0]["distribution"], **style)[0]
        per_path = np.array([run["per_path"] for run in runs])
        per_path_axis.semilogy(ks, per_path.mean(axis=0), color=line.get_color(), **style)
        shares = np.array([run["total_share"] for run in runs])
        total_axis.plot(ks, shares.mean(axis=0), color=line.get_color(), **style)
        first, last = np.mean([run["window"] for run in runs], axis=0)
        total_axis.axvspan(first, last, color=line.get_color(), alpha=0.12)
    share_axis.set_title("distribution of path lengths", fontsize=9)
    share_axis.set_ylabel("share of paths")
    per_path_axis.set_title("gradient magnitude of one path", fontsize=9)
    per_path_axis.set_ylabel("‖∂L/∂x‖ at the first block")
    total_axis.set_title("total gradient magnitude per path length (90 % window)", fontsize=9)
    total_axis.set_ylabel("share of the gradient")
    for axis in axes:
        axis.set_xlabel("path length (residual branches taken)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    figure.suptitle(f"The gradient by path length on training images, {_seeds(measured)}")
    return figure
