"""The two pictures that training (TensorBoard) and `resdeep report` both draw, one
implementation each: a layer (or block) x step heatmap and a by-layer profile. matplotlib's
Figure without pyplot: no global state, nothing to close."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def layer_step_heatmap(
    log_values: np.ndarray,
    steps: Sequence[int],
    *,
    title: str,
    label: str,
    rows: str = "layer (input at the bottom)",
    value_range: tuple[float, float] | None = None,
    size: tuple[float, float] = (8, 4.5),
) -> Figure:
    """log_values: (len(steps), rows), log10 of a quantity at each logged step. Cells span halfway
    to the neighbouring steps, so a dense first epoch and sparser later logging both keep their
    true place on the step axis; NaN (not measured) is left blank. A fixed `value_range` gives
    every run the same colour scale, so two runs compare by eye."""
    figure = Figure(figsize=size, layout="constrained")
    axis = figure.subplots()
    at = np.asarray(steps, dtype=float)
    edges = np.concatenate([[at[0] - 0.5], (at[1:] + at[:-1]) / 2, [at[-1] + 0.5]])
    low, high = value_range if value_range else (None, None)
    image = axis.pcolormesh(
        edges,
        np.arange(log_values.shape[1] + 1) - 0.5,
        np.ma.masked_invalid(np.asarray(log_values, dtype=float).T),
        cmap="viridis",
        vmin=low,
        vmax=high,
    )
    figure.colorbar(image, ax=axis, label=label)
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("step")
    axis.set_ylabel(rows)
    axis.set_title(title, fontsize=9)
    return figure


def layer_profile(
    log_values: np.ndarray,
    *,
    title: str,
    label: str,
    value_range: tuple[float, float] | None = None,
    size: tuple[float, float] = (6, 3.2),
) -> Figure:
    """One log point's log10 values by layer, input to output."""
    figure = Figure(figsize=size, layout="constrained")
    axis = figure.subplots()
    values = np.asarray(log_values, dtype=float)
    axis.plot(np.arange(1, len(values) + 1), values, marker="o", markersize=2.5)
    axis.set_xlabel("layer (input → output)")
    axis.set_ylabel(label)
    if value_range:
        axis.set_ylim(*value_range)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    return figure
