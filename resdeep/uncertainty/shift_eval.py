"""Every method at every severity of every shift (Ovadia et al. 2019's protocol), in one loop.

The runs are the checkpoint and, when an ensemble is given, its other members: nets of one
setting that differ by seed. Each run's single-net methods (deterministic, MC dropout, the
temperature-scaled ones — their τ fitted on that run's clean validation split — and the Laplace
posterior) score every corrupted set, so each curve has a spread over seeds; the ensemble, one
net of all of them, scores each set once. Severity 0 is the clean test split, scored exactly as
`resdeep uncertainty` scores it (same methods, same seed), so those numbers are today's.

A record per (run, kind, severity, method) holds prediction_summary's numbers (from the float32
probabilities `--save-probs` keeps, cast to float64) and how well each uncertainty score tells the
shifted images from the clean ones (ood_summary: AUROC, AUPR, FPR at 95 %).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from resdeep.checkpoint import CheckpointInfo
from resdeep.models import ConvNet
from resdeep.uncertainty.calibration import TemperatureScaled, temperature_summary
from resdeep.uncertainty.data import in_distribution
from resdeep.uncertainty.ensemble import DeepEnsemble, check_members
from resdeep.uncertainty.evaluate import (
    build_methods,
    ood_summary,
    prediction_summary,
    saved_layout,
)
from resdeep.uncertainty.laplace import LastLayerLaplace
from resdeep.uncertainty.methods import UncertaintyMethod
from resdeep.uncertainty.sampling import DEFAULT_BATCH_ROWS
from resdeep.uncertainty.shift import KINDS, corrupt

# The numbers each curve is drawn from, as (record path, name in the summary): AURC and the
# shift AUROC by the scores the comparison tables use (max probability, predictive entropy).
CURVE_METRICS = {
    "accuracy": ("accuracy",),
    "nll": ("nll",),
    "brier": ("brier",),
    "ece": ("ece",),
    "aurc": ("aurc", "max_prob"),
    "mean_predictive_entropy": ("mean_predictive_entropy",),
    "mean_mutual_information": ("mean_mutual_information",),
    "shift_auroc": ("shift_detection", "entropy", "auroc"),
}

Progress = Callable[[int, int], None]  # (sets just scored, sets in all)


@dataclass(frozen=True)
class ShiftSettings:
    severities: dict[str, list[int]]  # per kind, 0 first
    samples: int = 32
    seed: int = 0
    bins: int = 15
    calibrate: str | None = None
    laplace: str | None = None  # how its prior precision is chosen; None: no Laplace
    mc_dropout: bool = True
    keep_probs: bool = False  # keep every set's probabilities, for --save-probs

    def sets(self) -> list[tuple[str, int]]:
        """(kind, severity) of every corrupted set, clean (kind "clean", 0) first."""
        shifted = [(k, s) for k, levels in self.severities.items() for s in levels if s > 0]
        return [("clean", 0), *shifted]


@dataclass
class ShiftEvaluation:
    summary: dict[str, Any]  # the shift.json document
    labels: torch.Tensor
    probs: dict[str, torch.Tensor] = field(default_factory=dict)  # "run0/rotation/6/laplace"

    def arrays(self) -> dict[str, torch.Tensor]:
        """What --save-probs writes: the labels and each set's probabilities, keyed
        run<r>/<kind>/<severity>/<method> (the ensemble's run is "ensemble"; the clean split
        is kind "clean", severity 0)."""
        return {"labels": self.labels, **self.probs}


def shift_runs(
    net: tuple[ConvNet, CheckpointInfo], members: list[tuple[ConvNet, CheckpointInfo]]
) -> list[tuple[ConvNet, CheckpointInfo]]:
    """The checkpoint's net, then every ensemble member that is not that checkpoint: the runs
    whose single-net curves give the spread over seeds."""
    seen = {net[1].path.resolve()}
    runs = [net]
    for member in members:
        if member[1].path.resolve() not in seen:
            seen.add(member[1].path.resolve())
            runs.append(member)
    return runs


def shifted_images(images: torch.Tensor, kind: str, severity: int, seed: int) -> torch.Tensor:
    return images if kind == "clean" else corrupt(images, kind, severity, seed)


@dataclass
class _Scorer:
    """One method of one run (or the ensemble), its clean probabilities kept as the reference
    the shifted sets are told apart from."""

    run: str
    method: UncertaintyMethod
    clean: torch.Tensor | None = None

    def record(
        self, kind: str, severity: int, images: torch.Tensor, labels: torch.Tensor,
        settings: ShiftSettings, kept: dict[str, torch.Tensor],
    ) -> dict[str, Any]:  # fmt: skip
        probs = self.method(images, settings.seed)  # one seed: severities differ in images only
        as_float = probs.double()
        if kind == "clean":
            self.clean = as_float
        assert self.clean is not None  # sets() puts the clean split first
        if settings.keep_probs:
            kept[f"{self.run}/{kind}/{severity}/{self.method.name}"] = saved_layout(
                self.method, probs
            )
        return {
            "run": self.run,
            "kind": kind,
            "severity": severity,
            "method": self.method.name,
            **prediction_summary(as_float, labels, settings.bins),
            "shift_detection": None if kind == "clean" else ood_summary(self.clean, as_float),
        }


def evaluate_shift(
    runs: list[tuple[ConvNet, CheckpointInfo]],
    members: list[tuple[ConvNet, CheckpointInfo]],
    settings: ShiftSettings,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
) -> ShiftEvaluation:
    """Every method of every run (and the ensemble of `members`) on every set of `settings`.

    Every method is fitted first (temperatures, Laplace posteriors), so a run that cannot be
    scored stops the command before any set is; then each set is corrupted once and scored by
    every method."""
    started = time.perf_counter()
    first_info = runs[0][1]
    check_members(first_info, [info for _, info in runs[1:]] + [info for _, info in members])
    test = in_distribution(first_info, "test")
    fits: dict[str, list[dict[str, Any]]] = {"temperature": [], "laplace": []}
    scorers: list[_Scorer] = []
    for index, (model, info) in enumerate(runs):
        methods = build_methods(
            model, info, samples=settings.samples, seed=settings.seed,
            calibrate=settings.calibrate, members=[], batch_rows=batch_rows,
            mc_dropout=settings.mc_dropout, laplace=settings.laplace,
        )  # fmt: skip
        tempered = [m for m in methods if isinstance(m, TemperatureScaled)]
        if tempered:
            fits["temperature"].append({"run": str(info.path), **temperature_summary(tempered)})
        for method in methods:
            if isinstance(method, LastLayerLaplace):
                fits["laplace"].append({"run": str(info.path), **method.describe()})
        scorers += [_Scorer(f"run{index}", method) for method in methods]
    if members:
        scorers.append(_Scorer("ensemble", DeepEnsemble(members)))
    method_names = {scorer.method.name: scorer.method.label for scorer in scorers}
    records: list[dict[str, Any]] = []
    probs_kept: dict[str, torch.Tensor] = {}
    sets = settings.sets()
    for kind, severity in sets:
        images = shifted_images(test.images, kind, severity, settings.seed)
        for scorer in scorers:
            records.append(scorer.record(kind, severity, images, test.labels, settings, probs_kept))
            if progress is not None:
                progress(1, len(scorers) * len(sets))
    summary = {
        "checkpoint": str(first_info.path),
        "data": first_info.data_name,
        "split": "test",
        "n": len(test.labels),
        "seed": settings.seed,
        "samples": settings.samples,
        "bins": settings.bins,
        "runs": [str(info.path) for _, info in runs],
        "ensemble": [str(info.path) for _, info in members],
        "methods": method_names,
        "kinds": {
            kind: {
                "severities": levels,
                "parameters": [KINDS[kind].parameter(level) for level in levels],
                "shown": [KINDS[kind].shown(level) for level in levels],
            }
            for kind, levels in settings.severities.items()
        },
        **{name: fit for name, fit in fits.items() if fit},
        "curves": (shape := curves(records, settings.severities, list(method_names))),
        "averages": averages(shape),
        "records": records,
        "seconds": time.perf_counter() - started,
    }
    return ShiftEvaluation(summary, test.labels, probs_kept)


def averages(shape: dict[str, Any]) -> dict[str, Any]:
    """Per kind and method, accuracy, ECE and NLL of the run mean averaged over the kind's
    shifted severities (its 0 left out): one number per shift, to compare methods at a glance."""
    result: dict[str, Any] = {}
    for kind, methods in shape.items():
        result[kind] = {
            method: {
                key: statistics.fmean(values[key]["mean"][1:])
                if len(values[key]["mean"]) > 1
                else None
                for key in ("accuracy", "ece", "nll")
            }
            for method, values in methods.items()
        }
    return result


def _value(record: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = record
    for key in path:
        if value is None:
            return None
        value = value[key]
    return value


def curves(
    records: list[dict[str, Any]], severities: dict[str, list[int]], methods: list[str]
) -> dict[str, Any]:
    """Per kind, method and CURVE_METRICS name: mean, sample std (0 for one run), min and max
    over the runs at each severity, in `severities` order (None where a number does not exist,
    as the shift AUROC of the clean split)."""
    by_set: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for record in records:
        by_set.setdefault((record["kind"], record["severity"], record["method"]), []).append(record)
    result: dict[str, Any] = {}
    for kind, levels in severities.items():
        result[kind] = {}
        for method in methods:
            rows = [by_set[("clean" if s == 0 else kind, s, method)] for s in levels]
            result[kind][method] = {
                name: _spread([[_value(r, path) for r in row] for row in rows])
                for name, path in CURVE_METRICS.items()
            }
            result[kind][method]["runs"] = len(rows[0])
    return result


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _spread(values: list[list[float | None]]) -> dict[str, list[float | None]]:
    def over_runs(reduce: Callable[[list[float]], float], row: list[float | None]) -> float | None:
        known = [v for v in row if v is not None]
        return reduce(known) if known else None

    return {
        "mean": [over_runs(statistics.fmean, row) for row in values],
        "std": [over_runs(_std, row) for row in values],
        "min": [over_runs(min, row) for row in values],
        "max": [over_runs(max, row) for row in values],
    }
