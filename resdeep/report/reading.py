"""Reading run directories into plain numbers: config, metrics.json and the TensorBoard events.

Everything here tolerates a run that is still going: a missing metrics.json, an epoch history
that stops early, an event file that ends mid-record. What is there is read; the rest is None.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from resdeep.errors import ResdeepError
from resdeep.runs import (
    BACKWARD_SIGNAL_PREFIX,
    FORWARD_STD_PREFIX,
    GRAD_NORM_PREFIX,
    LAYER_RESPONSE_PREFIX,
    RELATIVE_UPDATE_PREFIX,
    WEIGHT_NORM_PREFIX,
    find_runs,
    is_run_dir,
    name_of_series_tag,
    parse_series_tag,
    read_metrics,
)

log = logging.getLogger("resdeep.report")

EVENTS_GLOB = "events.out.tfevents.*"


@dataclass(frozen=True)
class GradNorms:
    """Per-layer gradient norms of one run: a (logged steps, layers) matrix in network order."""

    steps: list[int]
    layer_names: list[str]
    norms: np.ndarray  # (len(steps), len(layer_names)); NaN where a layer lacks that step


@dataclass(frozen=True)
class Series:
    """One logged quantity per layer, unit or conv of a run: (logged steps, names) in network
    order; NaN where a name lacks that step or the value was not measured."""

    steps: list[int]
    names: list[str]
    values: np.ndarray  # (len(steps), len(names))

    def at(self, step: int) -> np.ndarray:
        return self.values[self.steps.index(step)]


@dataclass(frozen=True)
class Diagnostics:
    """What a run measured at its log points beyond the gradient norms
    (resdeep.train.diagnostics); step 0 is the net as initialised."""

    backward_signal: Series  # ‖∂L/∂x‖ at the output of the stem and each block
    forward_std: Series  # std of those outputs
    layer_response: Series  # std of each conv's response (He et al. 2015, Fig. 7)
    weight_norm: Series  # ‖W‖ per weight layer, before the step
    relative_update: Series  # ‖ΔW‖ / ‖W‖ of the step taken
    lr: dict[int, float]  # the learning rate logged at each log point

    @property
    def steps(self) -> list[int]:
        return self.backward_signal.steps


@dataclass(frozen=True)
class StepCurve:
    """Training loss and accuracy at each logged step (each a mean over the steps since the
    previous log point), from the run's `train/loss` and `train/acc` scalars."""

    steps: list[int]
    loss: list[float]
    acc: list[float]


@dataclass
class RunData:
    """One run as numbers: what the analysis and the figures need, nothing of the files."""

    run_dir: Path
    data: str
    arch: str
    depth: int
    init: str
    norm: str
    status: str
    residual_init: str = "none"  # runs from before the key trained without one
    seed: int | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # one dict per finished epoch
    steps: int = 0  # optimizer steps taken
    skipped_steps: int = 0  # steps dropped for a non-finite loss (trainer.on_nan=skip)
    test_acc: float | None = None
    grads: GradNorms | None = None
    curve: StepCurve | None = None
    diagnostics: Diagnostics | None = None  # None for runs logged before resdeep measured them


def holds_run(path: Path) -> bool:
    """A run dir, including one in its first epoch: config.yaml and events, no metrics.json yet."""
    return is_run_dir(path) or ((path / "config.yaml").is_file() and any(path.glob(EVENTS_GLOB)))


def discover_run_dirs(paths: list[Path]) -> list[Path]:
    """The run directories at or below each path, in the order given, each once."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise ResdeepError(f"no such directory: {path}")
        dirs = [record.path for record in find_runs(path)]
        dirs += [
            config.parent
            for config in path.rglob("config.yaml")
            if config.parent not in dirs and holds_run(config.parent)
        ]
        if not dirs:
            raise ResdeepError(f"no runs under {path}; point at a sweep dir or run dirs")
        found += sorted(dirs)
    return list(dict.fromkeys(found))


def read_run(run_dir: Path) -> RunData:
    config = _read_config(run_dir)
    metrics = read_metrics(run_dir)
    model = config.get("model", {})
    test_acc = metrics.get("test_acc")
    seed = config.get("seed")
    events = _load_events(run_dir)
    return RunData(
        run_dir=run_dir,
        data=str(metrics.get("data") or config.get("data", {}).get("name", "unknown")),
        arch=str(metrics.get("arch") or model.get("arch", "unknown")),
        depth=int(metrics.get("depth") or model.get("depth", 0)),
        init=str(metrics.get("init") or model.get("init", "unknown")),
        norm=str(metrics.get("norm") or model.get("norm", "unknown")),
        residual_init=str(metrics.get("residual_init") or model.get("residual_init", "none")),
        # No metrics.json yet means the first epoch is still running.
        status=str(metrics.get("status", "running")),
        seed=int(seed) if isinstance(seed, int) else None,
        history=list(metrics.get("history", [])),
        steps=int(metrics.get("steps") or 0),
        skipped_steps=int(metrics.get("skipped_steps") or 0),
        test_acc=float(test_acc) if isinstance(test_acc, int | float) else None,
        grads=read_grad_norms(events, model),
        curve=read_step_curve(events),
        diagnostics=read_diagnostics(events),
    )


def read_runs(paths: list[Path]) -> list[RunData]:
    return [read_run(run_dir) for run_dir in discover_run_dirs(paths)]


def _load_events(run_dir: Path) -> Any:
    """Every scalar of the run's TensorBoard event files, read once."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # 0 keeps every scalar event (the default samples 10,000); images are not needed at all.
    accumulator = EventAccumulator(
        str(run_dir), size_guidance={"scalars": 0, "images": 1, "tensors": 1, "histograms": 1}
    )
    accumulator.Reload()
    return accumulator


def read_step_curve(accumulator: Any) -> StepCurve | None:
    """`train/loss` and `train/acc` at every logged step, or None when the run logged none."""
    tags = accumulator.Tags()["scalars"]
    if "train/loss" not in tags or "train/acc" not in tags:
        return None
    # A dict per tag: a resumed run that re-logs a step keeps the later value.
    loss = {event.step: event.value for event in accumulator.Scalars("train/loss")}
    acc = {event.step: event.value for event in accumulator.Scalars("train/acc")}
    steps = sorted(loss.keys() & acc.keys())
    return StepCurve(steps=steps, loss=[loss[s] for s in steps], acc=[acc[s] for s in steps])


def read_grad_norms(accumulator: Any, model_config: dict[str, Any]) -> GradNorms | None:
    """The `grad_norm/<layer>` scalars of a run's event files, or None when it logged none."""
    tags = [t for t in accumulator.Tags()["scalars"] if t.startswith(GRAD_NORM_PREFIX)]
    if not tags:
        return None
    tag_of = dict(_in_index_order(tags))
    names = [name for name in layer_order(model_config, accumulator) if name in tag_of]
    names += [name for name in tag_of if name not in names]  # by tag (index) order: never lost
    series = _series(accumulator, [(name, tag_of[name]) for name in names])
    return GradNorms(steps=series.steps, layer_names=series.names, norms=series.values)


def read_series(accumulator: Any, prefix: str) -> Series | None:
    """The `<prefix><NNN>_<name>` scalars of a run, in index (network) order, or None."""
    tags = [t for t in accumulator.Tags()["scalars"] if t.startswith(prefix)]
    if not tags:
        return None
    return _series(accumulator, _in_index_order(tags))


def _in_index_order(tags: list[str]) -> list[tuple[str, str]]:
    """(name, tag) by the tags' parsed index (as text, 1000_ would sort before 100_); tags
    without an index (older runs) after those with one, by name."""

    def key(tag: str) -> tuple[bool, int, str]:
        index, name = parse_series_tag(tag)
        return (index is None, index or 0, name)

    return [(parse_series_tag(tag)[1], tag) for tag in sorted(tags, key=key)]


def read_diagnostics(accumulator: Any) -> Diagnostics | None:
    """The run's diagnostics, or None when it logged none (or not all of them)."""
    prefixes = {
        "backward_signal": BACKWARD_SIGNAL_PREFIX,
        "forward_std": FORWARD_STD_PREFIX,
        "layer_response": LAYER_RESPONSE_PREFIX,
        "weight_norm": WEIGHT_NORM_PREFIX,
        "relative_update": RELATIVE_UPDATE_PREFIX,
    }
    found = {key: read_series(accumulator, prefix) for key, prefix in prefixes.items()}
    if any(series is None for series in found.values()):
        return None
    lr = (
        {event.step: event.value for event in accumulator.Scalars("lr")}
        if "lr" in accumulator.Tags()["scalars"]
        else {}
    )
    return Diagnostics(**found, lr=lr)


def _series(accumulator: Any, named_tags: list[tuple[str, str]]) -> Series:
    # A dict per name: a resumed run that re-logs a step keeps the later value.
    values = [
        {event.step: event.value for event in accumulator.Scalars(tag)} for _, tag in named_tags
    ]
    steps = sorted(set().union(*(by_step.keys() for by_step in values)))
    matrix = np.full((len(steps), len(named_tags)), np.nan)
    row = {step: index for index, step in enumerate(steps)}
    for column, by_step in enumerate(values):
        for step, value in by_step.items():
            matrix[row[step], column] = value
    return Series(steps=steps, names=[name for name, _ in named_tags], values=matrix)


def layer_order(model_config: dict[str, Any], accumulator: Any) -> list[str]:
    """Layer names from input to output.

    TensorBoard returns tags in no promised order, so the order comes from rebuilding the model
    the config describes (names do not depend on channels or classes). Without a usable config,
    runs logged before the tags carried their index fall back on the per-layer custom-scalars
    chart they wrote in network order; newer runs need neither (read_grad_norms orders their
    `NNN_` tags).
    """
    from resdeep.models import build_model, weight_layers

    accepted = inspect.signature(build_model).parameters
    kwargs = {key: value for key, value in model_config.items() if key in accepted}
    try:
        return [name for name, _ in weight_layers(build_model(**kwargs))]
    except (ValueError, TypeError) as error:
        log.debug("cannot rebuild the model from the config (%s); using the layout", error)
    return _layout_order(accumulator)


def _layout_order(accumulator: Any) -> list[str]:
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.util import tensor_util

    if "custom_scalars__config__" not in accumulator.Tags().get("tensors", []):
        return []
    event = accumulator.Tensors("custom_scalars__config__")[0]
    layout = layout_pb2.Layout()
    layout.ParseFromString(tensor_util.make_ndarray(event.tensor_proto).item())
    return [
        name_of_series_tag(tag)
        for category in layout.category
        for chart in category.chart
        for tag in chart.multiline.tag
        if tag.startswith(GRAD_NORM_PREFIX)
    ]


def _read_config(run_dir: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}
