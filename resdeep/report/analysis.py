"""The numbers a report states, computed from runs: pure functions, no files, no figures.

Every finding is a sentence built from the runs' own numbers, so the same code describes a
digits sweep where plain-56 fails to train and a CIFAR sweep where it merely trails.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import numpy as np

from resdeep.report.reading import RunData

# A layer whose gradient norm is below this has stopped learning: with lr ~0.1 the step is
# ~1e-9, under float32's resolution (eps 1.2e-7) of weights of magnitude ~0.01 and above.
VANISHED = 1e-8


@dataclass(frozen=True)
class RunSummary:
    """One run reduced to what the report shows.

    `label` is unique within its data set ("plain-56 (xavier, no BN)"); `name` drops what the
    findings already say in their prefix ("plain-56").
    """

    label: str
    name: str
    data: str
    arch: str
    depth: int
    init: str
    norm: str
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
    run: RunData = field(repr=False, compare=False)  # the full history and gradient matrix

    @property
    def setting(self) -> tuple[str, str, str]:
        """What must match for two runs to be compared on depth or architecture alone."""
        return (self.data, self.init, self.norm)


def summarize(runs: Sequence[RunData]) -> list[RunSummary]:
    """Summaries in a stable order: data set, init, norm, arch, depth."""
    varying = {key for key in ("init", "norm") if len({getattr(r, key) for r in runs}) > 1}
    summaries: list[RunSummary] = []
    seen: dict[tuple[str, str], int] = {}
    for run in sorted(runs, key=lambda r: (r.data, r.init, r.norm, r.arch, r.depth)):
        label = run_label(run.arch, run.depth, run.init, run.norm, varying)
        # Labels are unique per data set (the table and the findings name the data set apart).
        count = seen[run.data, label] = seen.get((run.data, label), 0) + 1
        # The same settings twice (another seed, say): keep both, told apart.
        suffix = f" #{count}" if count > 1 else ""
        summaries.append(_summary(run, label + suffix, f"{run.arch}-{run.depth}{suffix}"))
    return summaries


def run_label(arch: str, depth: int, init: str, norm: str, varying: Iterable[str]) -> str:
    """ "plain-56", with init and norm added only when they differ between the runs shown."""
    extras = [init] if "init" in varying else []
    if "norm" in varying:
        extras.append("BN" if norm == "batch" else "no BN")
    return f"{arch}-{depth}" + (f" ({', '.join(extras)})" if extras else "")


def _summary(run: RunData, label: str, name: str) -> RunSummary:
    last = run.history[-1] if run.history else {}
    grads = run.grads
    # A diverged run's last finished epoch is not where it ended, and a run that skipped more
    # steps than it took (non-finite losses) did not train: neither has a final loss to compare.
    failed = run.status == "diverged" or run.skipped_steps > run.steps
    if failed:
        last = {}
    return RunSummary(
        label=label,
        name=name,
        data=run.data,
        arch=run.arch,
        depth=run.depth,
        init=run.init,
        norm=run.norm,
        status=run.status,
        epochs=len(run.history),
        skipped_steps=run.skipped_steps,
        final_train_loss=_finite(last.get("train_loss")),
        final_train_error=_error(last.get("train_acc")),
        test_acc=_finite(run.test_acc),
        layer_names=list(grads.layer_names) if grads else [],
        first_step=grads.steps[0] if grads else None,
        last_step=grads.steps[-1] if grads else None,
        grad_norm_first_step=grads.norms[0].tolist() if grads else [],
        grad_norm_last_step=grads.norms[-1].tolist() if grads else [],
        run=run,
    )


def grad_ratio(norms: Sequence[float]) -> float | None:
    """First-layer over last-layer gradient norm: >> 1 or << 1 means gradients do not flow evenly."""
    if len(norms) < 2 or not (norms[-1] > 0) or not math.isfinite(norms[0]):
        return None
    return float(norms[0] / norms[-1])


def vanished_layers(norms: Sequence[float]) -> int:
    return int(np.sum(np.asarray(norms, dtype=float) < VANISHED))


def loss_ratio(deeper: RunSummary, shallower: RunSummary) -> float | None:
    if deeper.final_train_loss is None or not shallower.final_train_loss:
        return None
    return deeper.final_train_loss / shallower.final_train_loss


# ---- findings ---------------------------------------------------------------------------------


def findings(summaries: Sequence[RunSummary]) -> list[str]:
    """One-line findings, each computed from the summaries' numbers."""
    lines = _status_findings(summaries)
    by_setting = sorted(summaries, key=lambda s: s.setting)
    for setting, group in groupby(by_setting, key=lambda s: s.setting):
        runs = list(group)
        prefix = _setting_prefix(setting, summaries)
        lines += [prefix + line for line in _depth_findings(runs)]
        lines += [prefix + line for line in _architecture_findings(runs)]
        lines += [prefix + line for line in _gradient_findings(runs)]
    return [_capitalize(line) for line in lines]


def _setting_prefix(setting: tuple[str, str, str], everything: Sequence[RunSummary]) -> str:
    """ "digits, xavier init, without batch norm: " when the report mixes such settings."""
    data, init, norm = setting
    parts = []
    if len({s.data for s in everything}) > 1:
        parts.append(data)
    if len({s.init for s in everything}) > 1:
        parts.append(f"{init} init")
    if len({s.norm for s in everything}) > 1:
        parts.append("with batch norm" if norm == "batch" else "without batch norm")
    return (", ".join(parts) + ": ") if parts else ""


def _status_findings(summaries: Sequence[RunSummary]) -> list[str]:
    lines = []
    for summary in summaries:
        if summary.status == "diverged":
            lines.append(
                f"{summary.label} diverged (its loss became non-finite) after {summary.epochs} "
                "finished epochs."
            )
        if summary.skipped_steps:
            taken = summary.run.steps
            lines.append(
                f"{summary.label} had a non-finite loss at {summary.skipped_steps} of "
                f"{summary.skipped_steps + taken} steps and skipped them"
                + (": it did not train." if summary.final_train_loss is None else ".")
            )
    running = [s.label for s in summaries if s.status in ("running", "interrupted")]
    if running:
        lines.append(
            f"{len(running)} of {len(summaries)} runs have not finished "
            f"({', '.join(running)}); their numbers are from what they logged so far."
        )
    return lines


def _depth_findings(runs: list[RunSummary]) -> list[str]:
    """Per deeper depth: how each architecture's final training loss compares with its shallowest."""
    by_arch = {arch: sorted(g, key=lambda s: s.depth) for arch, g in _group(runs, "arch")}
    depths = sorted({s.depth for s in runs})
    lines = []
    for depth in depths[1:]:
        parts, worse, better = [], [], []
        for arch, ladder in by_arch.items():
            deeper = next((s for s in ladder if s.depth == depth), None)
            shallowest = ladder[0]
            ratio = loss_ratio(deeper, shallowest) if deeper and shallowest is not deeper else None
            if ratio is None:
                continue
            parts.append(
                f"{deeper.name} ends at {_times(ratio)} the training loss of {shallowest.name} "
                f"({_num(deeper.final_train_loss)} vs {_num(shallowest.final_train_loss)})"
            )
            (worse if ratio > 1 else better).append(arch)
        if not parts:
            continue
        verdict = [
            f"{label} for {' and '.join(archs)}"
            for label, archs in (("deeper is worse", worse), ("deeper is no worse", better))
            if archs
        ]
        lines.append("; ".join(parts) + f": {', '.join(verdict)}.")
    return lines


def _architecture_findings(runs: list[RunSummary]) -> list[str]:
    """At each depth with a plain and a residual run: their training losses and test accuracies."""
    lines = []
    for depth, group in _group(runs, "depth"):
        by_arch = {s.arch: s for s in group}
        plain = by_arch.get("plain")
        for arch in ("resnet", "preact"):
            residual = by_arch.get(arch)
            if plain is None or residual is None:
                continue
            ratio = loss_ratio(plain, residual)
            if ratio is None:
                continue
            line = (
                f"at depth {depth}, {plain.name}'s final training loss is {_times(ratio)} "
                f"{residual.name}'s ({_num(plain.final_train_loss)} vs "
                f"{_num(residual.final_train_loss)})"
            )
            if plain.test_acc is not None and residual.test_acc is not None:
                line += f"; test accuracy {plain.test_acc:.1%} vs {residual.test_acc:.1%}"
            lines.append(line + ".")
    return lines


def _gradient_findings(runs: list[RunSummary]) -> list[str]:
    """Per depth: vanished gradients (at the first or the last logged step) set against the
    other architectures at that step, then each run's first/last-layer ratio."""
    lines = []
    for depth, group in _group([s for s in runs if s.grad_norm_first_step], "depth"):
        for moment in ("first", "last"):
            lines += _vanished_findings(group, moment)
        ratios = []
        for summary in sorted(group, key=lambda s: s.arch):
            first = grad_ratio(summary.grad_norm_first_step)
            last = grad_ratio(summary.grad_norm_last_step)
            if first is None:
                continue
            text = f"{summary.name} {_times(first)} at step {summary.first_step}"
            if last is not None and summary.last_step != summary.first_step:
                text += f", {_times(last)} at step {summary.last_step}"
            ratios.append(text)
        if ratios:
            lines.append(
                f"depth {depth}, first-layer / last-layer gradient norm: " + "; ".join(ratios) + "."
            )
    return lines


def _vanished_findings(group: list[RunSummary], moment: str) -> list[str]:
    """Runs with layers below VANISHED at their `moment` ("first" or "last") logged step.

    At the last step only runs whose gradients were fine at the first step are named: that their
    gradients died during training is news, that dead ones stayed dead is not.
    """
    judged = [
        s
        for s in group
        if moment == "first"
        or (s.last_step != s.first_step and not vanished_layers(s.grad_norm_first_step))
    ]
    vanished = [s for s in judged if vanished_layers(_norms_at(s, moment)[1])]
    flowing = [s for s in judged if s not in vanished]
    lines = []
    for summary in vanished:
        step, norms = _norms_at(summary, moment)
        count = vanished_layers(norms)
        scope = f"all {count}" if count == len(norms) else f"{count} of {len(norms)}"
        contrast = "".join(
            f"; {other.name}'s span {_sci(float(np.nanmin(other_norms)))} to "
            f"{_sci(float(np.nanmax(other_norms)))} at step {other_step}"
            for other in flowing
            for other_step, other_norms in [_norms_at(other, moment)]
        )
        lines.append(
            f"{summary.name}'s gradients vanished by step {step}: {scope} layers below "
            f"{_sci(VANISHED)} (first layer {_sci(norms[0])}, largest "
            f"{_sci(float(np.nanmax(norms)))}){contrast}."
        )
    return lines


def _norms_at(summary: RunSummary, moment: str) -> tuple[int | None, list[float]]:
    if moment == "first":
        return summary.first_step, summary.grad_norm_first_step
    return summary.last_step, summary.grad_norm_last_step


# ---- small helpers ----------------------------------------------------------------------------


def _group(runs: list[RunSummary], key: str) -> list[tuple[Any, list[RunSummary]]]:
    ordered = sorted(runs, key=lambda s: getattr(s, key))
    return [(k, list(g)) for k, g in groupby(ordered, key=lambda s: getattr(s, key))]


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _error(accuracy: Any) -> float | None:
    value = _finite(accuracy)
    return None if value is None else 1.0 - value


def _times(ratio: float) -> str:
    if 100 <= ratio < 1e4:
        return f"{ratio:,.0f}×"
    return f"{ratio:.2g}×" if 0.01 <= ratio < 100 else f"{_sci(ratio)}×"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:#.3g}"


def _sci(value: float) -> str:
    """1.2e-14 for the tiny and huge, 0.0523 for the ordinary."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _capitalize(text: str) -> str:
    """Sentence case, except that a sentence opening with a run name keeps it as written."""
    if text.startswith(("plain", "resnet", "preact")):
        return text
    return text[:1].upper() + text[1:]
