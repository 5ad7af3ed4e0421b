"""The shift figure (Ovadia et al. 2019's layout): accuracy, ECE and NLL against severity, a
column per kind of shift, a line per method; the spread over runs (seeds) as a band."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from resdeep.uncertainty.plots import save_figure

ROWS = (("accuracy", "accuracy"), ("ece", "ECE"), ("nll", "NLL"))


def shift_figure(summary: dict[str, Any], path: Path) -> Path:
    kinds = list(summary["kinds"])
    figure = Figure(figsize=(3.6 * len(kinds) + 1.6, 8.2), layout="constrained")
    axes = figure.subplots(len(ROWS), len(kinds), squeeze=False, sharex="col")
    runs = len(summary["runs"])
    for column, kind in enumerate(kinds):
        shown = summary["kinds"][kind]["shown"]
        x = list(range(len(shown)))
        for row, (key, label) in enumerate(ROWS):
            axis = axes[row][column]
            for colour, (name, method_label) in enumerate(summary["methods"].items()):
                values = summary["curves"][kind][name][key]
                line = axis.plot(
                    x, values["mean"], marker="o", markersize=3, color=f"C{colour}",
                    label=method_label,
                )  # fmt: skip
                if summary["curves"][kind][name]["runs"] > 1:
                    axis.fill_between(
                        x, values["min"], values["max"], color=line[0].get_color(), alpha=0.2,
                        linewidth=0,
                    )  # fmt: skip
            if key == "nll":
                axis.set_yscale("log")
            if row == 0:
                axis.set_title(kind.replace("_", " "))
            if column == 0:
                axis.set_ylabel(label)
            axis.grid(True, alpha=0.3)
        bottom = axes[-1][column]
        step = -(-len(shown) // 7)  # at most 7 tick labels, readable side by side
        bottom.set_xticks(x[::step], [_short(s) for s in shown[::step]], rotation=45)
        bottom.set_xlabel("severity")
    bands = f"; bands: min-max over {runs} runs (seeds)" if runs > 1 else ""
    figure.suptitle(
        f"{summary['data']} test under shift ({summary['n']} images, T = {summary['samples']}"
        f"{bands})"
    )
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside right center")
    return save_figure(figure, path)


def _short(shown: str) -> str:
    return shown.replace(" of width", "").replace(" px", "")
