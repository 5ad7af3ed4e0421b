"""Runs reduced to the numbers a report states: one summary per run, one group per setting
(runs that differ only in their seed, with mean and spread). Pure functions, no files, no
figures; resdeep.report.findings turns these into sentences.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from itertools import groupby
from typing import Any

import numpy as np

from resdeep.choices import RESIDUAL_INITS
from resdeep.report.mechanism import Mechanism, diagnose
from resdeep.report.reading import RunData
from resdeep.report.spread import Spread

# A layer whose gradient norm is below this has stopped learning: with lr ~0.1 the step is
# ~1e-9, under float32's resolution (eps 1.2e-7) of weights of magnitude ~0.01 and above.
VANISHED = 1e-8


# What tells runs apart besides data, arch and depth, shown in a label only where it varies.
LABEL_KEYS = ("init", "norm", "residual_init")


@dataclass(frozen=True)
class Setting:
    """What a run is, seeds apart: `label` is unique within its data set ("plain-56 (xavier,
    no BN)", "resnet-110 (no BN, fixup)"); `name` drops what the findings already say in their
    prefix ("plain-56", "resnet-110 (fixup)")."""

    label: str
    name: str
    data: str
    arch: str
    depth: int
    init: str
    norm: str
    residual_init: str

    @property
    def setting(self) -> tuple[str, str, str]:
        """What must match for two runs to be compared on depth or architecture alone, bar
        residual_init (compared within a setting; `name` carries it)."""
        return (self.data, self.init, self.norm)


@dataclass(frozen=True)
class RunSummary(Setting):
    """One run reduced to what the report shows."""

    seed: int | None
    status: str
    epochs: int
    skipped_steps: int  # non-finite steps the run skipped instead of stopping
    final_train_loss: float | None
    final_train_error: float | None
    test_acc: float | None
    layer_names: list[str]
    first_step: int | None
    last_step: int | None
    grad_norm_first_step: list[float]  # per layer, input to output
    grad_norm_last_step: list[float]
    mechanism: Mechanism | None  # None when the run logged no diagnostics (older runs)
    run: RunData = field(repr=False, compare=False)  # the full history and gradient matrix

    def norms_at(self, moment: str) -> list[float]:
        """Per-layer gradient norms at the "first" or the "last" logged step."""
        return self.grad_norm_first_step if moment == "first" else self.grad_norm_last_step

    def step_at(self, moment: str) -> int | None:
        return self.first_step if moment == "first" else self.last_step

    @property
    def run_label(self) -> str:
        """The label with the seed: unique per run."""
        return self.label + (f", seed {self.seed}" if self.seed is not None else "")


@dataclass(frozen=True)
class RunGroup(Setting):
    """Runs that differ only in their seed, and their numbers as mean and spread."""

    runs: list[RunSummary]  # in seed order
    train_loss: Spread
    train_error: Spread
    test_acc: Spread

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs]

    @property
    def first(self) -> RunSummary:
        """The run a single-run figure (the heatmap) shows: the lowest seed."""
        return self.runs[0]


def summarize_runs(runs: Sequence[RunData]) -> list[RunSummary]:
    """Summaries in a stable order: data set, init, norm, arch, depth, residual_init (in the
    order of its choices: none first), seed."""
    varying = varying_keys(runs)
    ordered = sorted(
        runs,
        key=lambda r: (
            r.data, r.init, r.norm, r.arch, r.depth, residual_init_order(r.residual_init),
            r.seed is None, r.seed or 0,
        ),
    )  # fmt: skip
    return [_summary(run, varying) for run in ordered]


def varying_keys(runs: Iterable[Any]) -> set[str]:
    """Those of LABEL_KEYS whose value differs between `runs` (anything with those attributes)."""
    runs = list(runs)
    return {key for key in LABEL_KEYS if len({getattr(r, key) for r in runs}) > 1}


def residual_init_order(value: str) -> int:
    """Where a residual_init sorts: as resdeep.choices lists them, unknown ones last."""
    return RESIDUAL_INITS.index(value) if value in RESIDUAL_INITS else len(RESIDUAL_INITS)


def group_runs(summaries: Sequence[RunSummary]) -> list[RunGroup]:
    """Runs with the same data, arch, depth, init, norm and residual_init become one group
    (seeds apart)."""
    groups = []
    for _, members in groupby(
        summaries, key=lambda s: (*s.setting, s.arch, s.depth, s.residual_init)
    ):
        runs = list(members)
        setting = {item.name: getattr(runs[0], item.name) for item in fields(Setting)}
        groups.append(
            RunGroup(
                **setting,
                runs=runs,
                train_loss=Spread.of(s.final_train_loss for s in runs),
                train_error=Spread.of(s.final_train_error for s in runs),
                test_acc=Spread.of(s.test_acc for s in runs),
            )
        )
    return groups


def run_label(
    arch: str,
    depth: int,
    init: str,
    norm: str,
    varying: Iterable[str],
    residual_init: str = "none",
) -> str:
    """ "plain-56", with init, norm and residual_init added only when they differ between the
    runs shown ("resnet-110 (no BN, fixup)"); residual_init "none" adds nothing."""
    extras = [init] if "init" in varying else []
    if "norm" in varying:
        extras.append("BN" if norm == "batch" else "no BN")
    if "residual_init" in varying and residual_init != "none":
        extras.append(residual_init)
    return f"{arch}-{depth}" + (f" ({', '.join(extras)})" if extras else "")


def _summary(run: RunData, varying: set[str]) -> RunSummary:
    last = run.history[-1] if run.history else {}
    grads = run.grads
    # A diverged run's last finished epoch is not where it ended, and a run that skipped more
    # steps than it took (non-finite losses) did not train: neither has a final loss to compare.
    failed = run.status == "diverged" or run.skipped_steps > run.steps
    if failed:
        last = {}
    # A run that diverged before its first epoch ended saved no checkpoint: the test accuracy it
    # recorded is that of its non-finite weights (one class for every image), not a result.
    untested = run.status == "diverged" and not run.history
    return RunSummary(
        label=run_label(run.arch, run.depth, run.init, run.norm, varying, run.residual_init),
        # The findings' prefix names data, init and norm, never residual_init: the name keeps it.
        name=run_label(
            run.arch, run.depth, run.init, run.norm, varying & {"residual_init"}, run.residual_init
        ),
        data=run.data,
        arch=run.arch,
        depth=run.depth,
        init=run.init,
        norm=run.norm,
        residual_init=run.residual_init,
        seed=run.seed,
        status=run.status,
        epochs=len(run.history),
        skipped_steps=run.skipped_steps,
        final_train_loss=_finite(last.get("train_loss")),
        final_train_error=_error(last.get("train_acc")),
        test_acc=None if untested else _finite(run.test_acc),
        layer_names=list(grads.layer_names) if grads else [],
        first_step=grads.steps[0] if grads else None,
        last_step=grads.steps[-1] if grads else None,
        grad_norm_first_step=grads.norms[0].tolist() if grads else [],
        grad_norm_last_step=grads.norms[-1].tolist() if grads else [],
        mechanism=diagnose(run.diagnostics, grads) if run.diagnostics and grads else None,
        run=run,
    )


def grad_ratio(norms: Sequence[float]) -> float | None:
    """First-layer over last-layer gradient norm: >> 1 or << 1 means gradients do not flow evenly."""
    if len(norms) < 2 or not (norms[-1] > 0) or not math.isfinite(norms[0]):
        return None
    return float(norms[0] / norms[-1])


def vanished_layers(norms: Sequence[float]) -> int:
    return int(np.sum(np.asarray(norms, dtype=float) < VANISHED))


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _error(accuracy: Any) -> float | None:
    value = _finite(accuracy)
    return None if value is None else 1.0 - value
