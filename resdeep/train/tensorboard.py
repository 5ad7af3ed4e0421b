"""Everything resdeep writes to TensorBoard, in one place."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from tensorboard.compat.proto.summary_pb2 import Summary  # noqa: E402
from torch.utils.tensorboard import SummaryWriter  # noqa: E402
from torch.utils.tensorboard.summary import hparams  # noqa: E402

from resdeep.runs import grad_norm_tag  # noqa: E402

# Relative depths compared across runs of any depth: the same tag in every run, so one chart
# per position shows plain against residual nets of every depth.
POSITIONS = (("0_input", 0.0), ("1_quarter", 0.25), ("2_half", 0.5), ("3_three_quarters", 0.75),
             ("4_output", 1.0))  # fmt: skip
POSITION_PREFIX = "grad_norm_log10_at/"
SUMMARY_PREFIX = "grad_norm_summary/"
# One colour scale for every run's heatmap, so two runs compare by eye: 1e-12 (vanished) to 1e2.
HEATMAP_RANGE = (-12.0, 2.0)


def position_indices(layers: int) -> list[int]:
    """The layer at each relative position of a net with `layers` weight layers."""
    return [round(fraction * (layers - 1)) for _, fraction in POSITIONS]


class TensorBoardLogger:
    def __init__(
        self,
        log_dir: Path,
        layer_names: Sequence[str],
        purge_step: int | None,
        title: str = "",
    ) -> None:
        # purge_step makes TensorBoard drop events a resumed run will write again.
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        self.layer_names = list(layer_names)
        self.title = title  # "plain-56, seed 0, digits": on every picture
        self.tags = [grad_norm_tag(i, name) for i, name in enumerate(self.layer_names)]
        self.positions = position_indices(len(self.layer_names))
        self.history_steps: list[int] = []
        self.history: list[np.ndarray] = []  # log10 norms per log point, for the heatmap
        # The same layout in every run (no per-run tag lists), so TensorBoard merges a sweep's
        # layouts into one set of charts.
        where = {
            "0_input": "input layer (first conv)",
            "1_quarter": "a quarter of the depth",
            "2_half": "half the depth",
            "3_three_quarters": "three quarters of the depth",
            "4_output": "output layer (classifier)",
        }
        self.writer.add_custom_scalars(
            {
                "gradient norm, log10, at the same relative depth in every run": {
                    f"{where[key]}": ["Multiline", [POSITION_PREFIX + key]] for key, _ in POSITIONS
                },
                "gradient norm, log10, over all layers": {
                    "smallest layer": ["Multiline", [SUMMARY_PREFIX + "min_over_layers"]],
                    "input layer over output layer": [
                        "Multiline",
                        [SUMMARY_PREFIX + "input_over_output"],
                    ],
                },
                "training": {
                    "loss": ["Multiline", ["train/loss", "val/loss"]],
                    "accuracy": ["Multiline", ["train/acc", "val/acc"]],
                },
            }
        )

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def grad_norms(self, norms: Sequence[float], step: int) -> None:
        # One event holding every layer: ~40x less host time than an add_scalar per layer,
        # which matters when a GPU step takes milliseconds. Readers still see one tag a layer.
        values = np.asarray(norms, dtype=float)
        with np.errstate(invalid="ignore", over="ignore"):  # a diverging run logs inf and nan
            logs = np.log10(np.maximum(values, 1e-30))
            min_log, input_over_output = float(np.min(logs)), float(logs[0] - logs[-1])
        summary = [
            Summary.Value(tag=tag, simple_value=float(norm))
            for tag, norm in zip(self.tags, values, strict=True)
        ]
        # log10 at fixed relative depths and over all layers: a vanished gradient is a drop of
        # orders of magnitude on a linear axis, not a line indistinguishable from zero.
        summary += [
            Summary.Value(tag=POSITION_PREFIX + key, simple_value=float(logs[index]))
            for (key, _), index in zip(POSITIONS, self.positions, strict=True)
        ]
        summary += [
            Summary.Value(tag=SUMMARY_PREFIX + "min_over_layers", simple_value=min_log),
            Summary.Value(tag=SUMMARY_PREFIX + "input_over_output", simple_value=input_over_output),
        ]
        self.writer.file_writer.add_summary(Summary(value=summary), step)
        self.history_steps.append(step)
        self.history.append(logs)

    def epoch_images(self, step: int, epoch: int) -> None:
        """At an epoch's end, at the global step: the "gradient norm by layer" profile of the
        last log point, and the layer x step heatmap of every log point so far."""
        if not self.history:
            return
        label = f"{self.title}, " if self.title else ""
        profile = grad_norm_profile_figure(
            10.0 ** self.history[-1], title=f"{label}epoch {epoch}, step {step}"
        )
        self.writer.add_figure("grad_norm_by_layer", profile, step)
        heatmap = grad_norm_heatmap_figure(
            np.stack(self.history), self.history_steps, title=f"{label}steps 1-{step}"
        )
        self.writer.add_figure("grad_norm_heatmap", heatmap, step)

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


def grad_norm_profile_figure(norms: Sequence[float], title: str = "") -> plt.Figure:
    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=100)
    values = np.log10(np.maximum(np.asarray(norms, dtype=float), 1e-30))
    layers = np.arange(1, len(values) + 1)
    axis.plot(layers, values, marker="o", markersize=2.5)
    axis.set_xlabel("layer (input → output)")
    axis.set_ylabel("log10 gradient norm")
    axis.set_ylim(*HEATMAP_RANGE)  # the same for every run: two runs compare by eye
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def grad_norm_heatmap_figure(
    log_norms: np.ndarray, steps: Sequence[int], title: str = ""
) -> plt.Figure:
    """Layers (input at the bottom) by log points, coloured by log10 gradient norm."""
    figure, axis = plt.subplots(figsize=(6, 3.6), dpi=100)
    image = axis.imshow(
        log_norms.T,
        aspect="auto",
        origin="lower",
        cmap="viridis",
        vmin=HEATMAP_RANGE[0],
        vmax=HEATMAP_RANGE[1],
        interpolation="nearest",
    )
    ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 6)).round().astype(int))
    axis.set_xticks(ticks, [str(steps[i]) for i in ticks])
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("step")
    axis.set_ylabel("layer (input = 0)")
    axis.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axis, label="log10 gradient norm")
    figure.tight_layout()
    return figure
