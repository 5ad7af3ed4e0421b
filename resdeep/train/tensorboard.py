"""Everything resdeep writes to TensorBoard, in one place."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import numpy as np  # noqa: E402
from tensorboard.compat.proto.summary_pb2 import Summary  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torch.utils.tensorboard.summary import hparams  # noqa: E402

from resdeep.logscale import log10  # noqa: E402
from resdeep.plots import layer_profile, layer_step_heatmap  # noqa: E402
from resdeep.runs import (  # noqa: E402
    BACKWARD_GAIN_PREFIX,
    BACKWARD_SIGNAL_PREFIX,
    FORWARD_STD_PREFIX,
    GRAD_NORM_PREFIX,
    LAYER_RESPONSE_PREFIX,
    RELATIVE_UPDATE_PREFIX,
    WEIGHT_NORM_PREFIX,
    series_tag,
)
from resdeep.train.diagnostics import DiagnosticsLayout, LogPoint  # noqa: E402

# Relative depths compared across runs of any depth: the same tag in every run, so one chart
# per position shows plain against residual nets of every depth.
POSITIONS = (("0_input", 0.0), ("1_quarter", 0.25), ("2_half", 0.5), ("3_three_quarters", 0.75),
             ("4_output", 1.0))  # fmt: skip
POSITION_NAMES = {
    "0_input": "input end",
    "1_quarter": "a quarter of the depth",
    "2_half": "half the depth",
    "3_three_quarters": "three quarters of the depth",
    "4_output": "output end",
}
FAMILIES = {False: "plain", True: "residual"}
POSITION_PREFIX = "grad_norm_log10_at/"
SIGNAL_POSITION_PREFIX = "backward_signal_log10_at/"
UPDATE_POSITION_PREFIX = "relative_update_log10_at/"
SUMMARY_PREFIX = "grad_norm_summary/"
DIAGNOSTICS_PREFIX = "diagnostics/"
# One colour scale for every run's heatmap of a quantity, so two runs compare by eye.
HEATMAP_RANGE = (-12.0, 2.0)  # log10 gradient norm: 1e-12 (vanished) to 1e2
SIGNAL_RANGE = (-16.0, 6.0)  # log10 backward signal: vanished (1e-16) to exploded (1e6)
UPDATE_RANGE = (-12.0, 0.0)  # log10 relative update: frozen (1e-12) to the whole weight (1)


HEATMAP_QUANTITIES = ("grad_norm", "backward_signal", "relative_update")
HEATMAP_PREFIXES = (GRAD_NORM_PREFIX, BACKWARD_SIGNAL_PREFIX, RELATIVE_UPDATE_PREFIX)


def position_indices(count: int) -> list[int]:
    """The layer (or unit) at each relative position of a net with `count` of them."""
    return [round(fraction * (count - 1)) for _, fraction in POSITIONS]


def series_tags(layout: DiagnosticsLayout) -> dict[str, list[str]]:
    """Every per-layer, per-unit and per-conv tag of a log point, by quantity, network order."""
    layers, units = layout.layer_names, layout.unit_names
    return {
        "grad_norm": _tags(GRAD_NORM_PREFIX, layers),
        "weight_norm": _tags(WEIGHT_NORM_PREFIX, layers),
        "relative_update": _tags(RELATIVE_UPDATE_PREFIX, layers),
        "backward_signal": _tags(BACKWARD_SIGNAL_PREFIX, units),
        "forward_std": _tags(FORWARD_STD_PREFIX, units),
        "layer_response": _tags(LAYER_RESPONSE_PREFIX, layout.response_names),
        # A block's gain is numbered like the block: unit 1 is the first block.
        "backward_gain": [
            series_tag(BACKWARD_GAIN_PREFIX, index, name)
            for index, name in enumerate(units[1:], start=1)
        ],
    }


def _by_position(prefix: str) -> dict[str, list]:
    """A chart per relative depth and family: plain nets left, residual nets right."""
    return {
        f"{POSITION_NAMES[key]}: {family} nets": ["Multiline", [f"{prefix}{family}/{key}"]]
        for key, _ in POSITIONS
        for family in FAMILIES.values()
    }


def _over_all_layers() -> dict[str, list]:
    charts = {
        "smallest gradient norm, log10": SUMMARY_PREFIX + "min_over_layers",
        "gradient norm, input layer over output layer, log10": SUMMARY_PREFIX + "input_over_output",
        "backward signal, stem over last block, log10": DIAGNOSTICS_PREFIX
        + "backward_signal_input_over_output_log10",
        "backward gain per block, geometric mean": DIAGNOSTICS_PREFIX
        + "backward_gain_geometric_mean",
        "smallest relative update, log10": DIAGNOSTICS_PREFIX + "relative_update_min_log10",
    }
    return {title: ["Multiline", [tag]] for title, tag in charts.items()}


# The same layout in every run (no per-run tag lists), so TensorBoard merges a sweep's layouts
# into one set of charts; the backward signal first, the story's opening chart.
CUSTOM_SCALARS = {
    "backward signal ‖∂L/∂x‖ at block outputs, log10, at the same relative depth in every run": (
        _by_position(SIGNAL_POSITION_PREFIX)
    ),
    "relative update ‖ΔW‖/‖W‖, log10, at the same relative depth in every run": _by_position(
        UPDATE_POSITION_PREFIX
    ),
    "gradient norm ‖∂L/∂W‖, log10, at the same relative depth in every run": _by_position(
        POSITION_PREFIX
    ),
    "over all layers": _over_all_layers(),
    "training": {
        "loss": ["Multiline", ["train/loss", "val/loss"]],
        "accuracy": ["Multiline", ["train/acc", "val/acc"]],
    },
}


class TensorBoardLogger:
    def __init__(
        self,
        log_dir: Path,
        layout: DiagnosticsLayout,
        purge_step: int | None,
        title: str = "",
        residual: bool = True,
    ) -> None:
        # A resumed run's heatmaps go on from its earlier log points, read back before the
        # writer's purge_step makes TensorBoard drop the events the run will write again.
        earlier = _earlier_history(log_dir, layout, purge_step) if purge_step else None
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        self.title = title  # "plain-56, seed 0, digits": on every picture
        self.tags = series_tags(layout)
        # Position charts come in two families, plain and residual nets side by side, so a
        # sweep's 18 runs are two charts of 9 and plain-110 is not told by colour alone.
        self.family = FAMILIES[residual]
        self.positions = position_indices(len(layout.layer_names))
        units = len(layout.unit_names)
        self.unit_positions = position_indices(units) if units else []
        # log10 values per log point, for the heatmaps
        self.history_steps, self.history = earlier or ([], {q: [] for q in HEATMAP_QUANTITIES})
        self.writer.add_custom_scalars(CUSTOM_SCALARS)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def diagnostics(self, point: LogPoint, step: int) -> None:
        """Every series of one log point, and its log10 charts and summaries, in one event.

        One event holding every layer costs ~40x less host time than an add_scalar per value,
        which matters when a GPU step takes milliseconds. Readers still see one tag a value.
        """
        series = {
            "grad_norm": point.grad_norm,
            "weight_norm": point.weight_norm,
            "relative_update": point.relative_update,
            "backward_signal": point.backward_signal,
            "forward_std": point.forward_std,
            "layer_response": point.layer_response,
            "backward_gain": point.backward_gain,
        }
        summary = [
            Summary.Value(tag=tag, simple_value=float(value))
            for quantity, values in series.items()
            for tag, value in zip(self.tags[quantity], values, strict=True)
        ]
        # log10 at fixed relative depths and over all layers: a vanished gradient is a drop of
        # orders of magnitude on a linear axis, not a line indistinguishable from zero.
        grads, signal, update = (
            log10(point.grad_norm),
            log10(point.backward_signal),
            log10(point.relative_update),
        )
        charts = [(POSITION_PREFIX, grads, self.positions)]
        if len(signal):
            charts.append((SIGNAL_POSITION_PREFIX, signal, self.unit_positions))
        if np.isfinite(update).any():  # step 0 has no update yet
            charts.append((UPDATE_POSITION_PREFIX, update, self.positions))
        summary += [
            Summary.Value(tag=f"{prefix}{self.family}/{key}", simple_value=float(values[index]))
            for prefix, values, indices in charts
            for (key, _), index in zip(POSITIONS, indices, strict=True)
        ]
        with np.errstate(invalid="ignore"):  # a diverging run logs inf and nan
            totals = {
                SUMMARY_PREFIX + "min_over_layers": np.min(grads),
                SUMMARY_PREFIX + "input_over_output": grads[0] - grads[-1],
            }
            if len(signal) > 1:
                blocks = len(signal) - 1
                totals[DIAGNOSTICS_PREFIX + "backward_signal_input_over_output_log10"] = (
                    signal[0] - signal[-1]
                )
                totals[DIAGNOSTICS_PREFIX + "backward_gain_geometric_mean"] = 10 ** (
                    (signal[0] - signal[-1]) / blocks
                )
            if np.isfinite(update).any():
                totals[DIAGNOSTICS_PREFIX + "relative_update_min_log10"] = np.nanmin(update)
        summary += [Summary.Value(tag=t, simple_value=float(v)) for t, v in totals.items()]
        self.writer.file_writer.add_summary(Summary(value=summary), step)
        self.history_steps.append(step)
        for quantity, values in zip(HEATMAP_QUANTITIES, (grads, signal, update), strict=True):
            self.history[quantity].append(values)

    def epoch_images(self, step: int, epoch: int, heatmaps: bool = True) -> None:
        """At an epoch's end, at the global step: the "gradient norm by layer" profile of the
        last log point and, with `heatmaps`, the layer x step heatmaps of every log point so
        far: gradient norm, backward signal and relative update."""
        if not self.history_steps:
            return
        label = f"{self.title}, " if self.title else ""
        steps = self.history_steps
        profile = layer_profile(
            self.history["grad_norm"][-1],
            title=f"{label}epoch {epoch}, step {step}",
            label="log10 gradient norm",
            value_range=HEATMAP_RANGE,
        )
        self.writer.add_figure("grad_norm_by_layer", profile, step)
        if not heatmaps:
            return
        for tag, quantity, what, value_range, rows in (
            (
                "grad_norm_heatmap",
                "grad_norm",
                "log10 gradient norm",
                HEATMAP_RANGE,
                "layer (input = 0)",
            ),
            (
                "backward_signal_heatmap",
                "backward_signal",
                "log10 backward signal ‖∂L/∂x‖",
                SIGNAL_RANGE,
                "block output (stem = 0)",
            ),
            (
                "relative_update_heatmap",
                "relative_update",
                "log10 relative update ‖ΔW‖/‖W‖",
                UPDATE_RANGE,
                "layer (input = 0)",
            ),
        ):
            values = self.history[quantity]
            if not len(values[-1]):
                continue
            figure = layer_step_heatmap(
                np.stack(values),
                steps,
                title=f"{label}steps {steps[0]}-{step}",
                label=what,
                value_range=value_range,
                rows=rows,
                size=(6, 3.6),
            )
            self.writer.add_figure(tag, figure, step)

    def hyperparameters(self, params: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        """HParams tab: the run's settings (in `params`' order: the first are the columns shown)
        beside its final numbers, which sit at the run's last step."""
        clean = {
            k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in params.items()
        }
        experiment, start, end = hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()})
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary, step)
        for name, value in metrics.items():
            self.writer.add_scalar(f"hparam/{name}", value, step)

    def close(self) -> None:
        self.writer.close()


def _earlier_history(
    log_dir: Path, layout: DiagnosticsLayout, before: int
) -> tuple[list[int], dict[str, list[np.ndarray]]] | None:
    """The heatmaps' log10 values of the log points a resumed run already wrote (steps below
    `before`), or None when its event files lack any of them (a run from an older version)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 1})
    events.Reload()
    found = set(events.Tags()["scalars"])
    sizes = (len(layout.layer_names), len(layout.unit_names), len(layout.layer_names))
    values: dict[str, dict[int, list[float]]] = {}
    for quantity, prefix, size in zip(HEATMAP_QUANTITIES, HEATMAP_PREFIXES, sizes, strict=True):
        names = layout.unit_names if quantity == "backward_signal" else layout.layer_names
        tags = _tags(prefix, names)
        if size == 0 or not set(tags) <= found:
            return None
        by_step: dict[int, list[float]] = {}
        for column, tag in enumerate(tags):
            for event in events.Scalars(tag):  # a later value of a step replaces an earlier one
                if event.step < before:
                    by_step.setdefault(event.step, [math.nan] * size)[column] = event.value
        values[quantity] = by_step
    steps = sorted(set.intersection(*(set(v) for v in values.values())))
    return steps, {q: [log10(values[q][step]) for step in steps] for q in HEATMAP_QUANTITIES}


def _tags(prefix: str, names: Sequence[str]) -> list[str]:
    return [series_tag(prefix, index, name) for index, name in enumerate(names)]
