"""The report's signal section, read from the `signal.json` that `resdeep signal --checkpoint`
wrote next to the report (plain JSON: the report needs no model to show it), and the clause the
findings add to a setting that degrades with a healthy-looking gradient."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resdeep.report.sections import ToolSection, figures_in, read_tool_json
from resdeep.report.spread import Spread, format_spread

SIGNAL_JSON = "signal.json"
TITLE = "Signal at initialisation: shattered gradients (Balduzzi et al. 2017)"
HEADERS = ("setting", "seeds", "gradient correlation at init", "after training",
           "forward log2/conv", "backward log2/conv")  # fmt: skip
CAPTIONS = {
    "signal_by_block.png": "Signal and gradient by block (second moments)",
    "signal_mean_field.png": "Mean-field theory beside the measurement",
    "signal_correlation.png": "Neighbour-gradient correlation against depth and lag",
    "signal_shattered.png": "The gradient along a line between two inputs, and the cosine "
    "between its points",
}
SHATTERED_BELOW = 0.2  # a correlation this close to 0 is noise, not a direction


@dataclass(frozen=True)
class SignalSection:
    findings: list[str]
    rows: list[list[str]]
    figures: list[tuple[str, Path]]  # (caption, PNG)
    # setting key (data, arch, depth, init, norm, residual_init) -> its label and its
    # correlation by state ("init", "trained")
    correlation: dict[tuple, dict[str, Spread]]
    labels: dict[tuple, str]
    intro: str

    @property
    def section(self) -> ToolSection:
        return ToolSection(TITLE, self.intro, HEADERS, self.findings, self.rows, self.figures)

    def clause(self, data: str, arch: str, depth: int, init: str, norm: str,
               residual_init: str = "none") -> str | None:  # fmt: skip
        """What the correlation says of a setting: "its input gradients at initialisation are
        shattered: ...", against the residual net of its depth for a plain one (the one without
        a residual init first); None when it was not measured."""
        key = (data, arch, depth, init, norm, residual_init)
        own = self.correlation.get(key, {}).get("init")
        if own is None or own.mean is None:
            return None
        word = "shattered" if own.mean < SHATTERED_BELOW else "correlated"
        text = (
            f"its input gradients at initialisation are {word}: neighbour-gradient correlation "
            f"{format_spread(own)}"
        )
        twins = sorted(
            (
                (other[5] != "none", other)
                for other, states in self.correlation.items()
                if arch == "plain" and other[1] != "plain"
                and (other[0], other[2], other[3], other[4]) == (data, depth, init, norm)
                and states.get("init") is not None and states["init"].mean is not None
            ),
            key=lambda item: (item[0], str(item[1])),
        )  # fmt: skip
        if twins:
            twin = twins[0][1]
            text += f" vs {self.labels[twin]}'s {format_spread(self.correlation[twin]['init'])}"
        trained = self.correlation[key].get("trained")
        if trained is not None and trained.mean is not None:
            text += f", {format_spread(trained)} after training"
        return text + " (Balduzzi et al. 2017)"


def read_signal_section(folder: Path) -> SignalSection | None:
    """The section from `folder/signal.json`, or None when there is none (or it is from
    another version)."""
    signal = read_tool_json(folder / SIGNAL_JSON)
    if signal is None:
        return None
    try:
        return _section(signal, folder)
    except (KeyError, TypeError, AttributeError):
        return None


def _section(signal: dict[str, Any], folder: Path) -> SignalSection:
    figures = figures_in(folder, signal, CAPTIONS)
    correlation: dict[tuple, dict[str, Spread]] = {}
    labels: dict[tuple, str] = {}
    by_label: dict[str, dict[str, dict[str, Any]]] = {}
    for group in signal.get("groups", []):
        key = tuple(group[k] for k in ("data", "arch", "depth", "init", "norm", "residual_init"))
        correlation.setdefault(key, {})[group["state"]] = Spread.from_json(
            group["neighbour_correlation"]
        )
        labels[key] = group["label"]
        by_label.setdefault(group["label"], {})[group["state"]] = group
    return SignalSection(
        findings=list(signal.get("findings", [])),
        rows=[_row(label, states) for label, states in by_label.items()],
        figures=figures,
        correlation=correlation,
        labels=labels,
        intro=intro(signal.get("settings", {})),
    )


def intro(settings: dict[str, Any]) -> str:
    """What was measured, with the settings the study ran with."""
    points, pairs = settings.get("points", 256), settings.get("pairs", 5)
    images = settings.get("bn_images", 512)
    return (
        f"Each net as `resdeep train` initialised it (batch-norm statistics from {images} "
        "training images, then eval mode) and as it ended: the input gradient of logit 0 at "
        f"{points} points on {pairs} straight lines between test images, and the mean cosine "
        "between the gradients at neighbouring points (1: one direction along the whole line; "
        "0: white noise, nothing for gradient descent to follow). Slopes: log2 change of the "
        "second moment per conv in stage 1, at initialisation. Mean ± std over the seeds."
    )


def _row(label: str, states: dict[str, dict[str, Any]]) -> list[str]:
    init, trained = states.get("init"), states.get("trained")
    fits = (init or trained or {}).get("fits", {})
    return [
        label,
        str(len((init or trained)["seeds"])),
        format_spread(Spread.from_json(init["neighbour_correlation"])) if init else "-",
        format_spread(Spread.from_json(trained["neighbour_correlation"])) if trained else "-",
        format_spread(Spread.from_json(fits.get("forward_slope"))),
        format_spread(Spread.from_json(fits.get("backward_slope"))),
    ]
