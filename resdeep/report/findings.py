"""The report's findings: one-line sentences computed from the runs' own numbers, so the same
code describes a digits sweep where plain-56 fails to train and a CIFAR sweep where it merely
trails.

Every comparison is between settings, on the mean over their seeds, and only says "worse" or
"better" when the difference exceeds the seed spread (resdeep.report.spread); otherwise "no
clear difference". Gradient numbers are ranges over the seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import numpy as np

from resdeep.report.analysis import (
    VANISHED,
    RunGroup,
    RunSummary,
    grad_ratio,
    group_runs,
    vanished_layers,
)
from resdeep.report.mechanism_findings import mechanism_findings
from resdeep.report.numbers import sci, sci_range, times, times_range
from resdeep.report.signal_section import SignalSection
from resdeep.report.spread import Spread, compare, format_spread, single_seed


def seeds_note(*spreads: Spread) -> str:
    """ "mean ± std over 3 seeds", or "single seed: no spread", for what a comparison rests on."""
    if single_seed(*spreads):
        return "single seed: no spread"
    counts = sorted({spread.n for spread in spreads})
    text = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"mean ± std over {text} seeds"


VERDICT_WORDS = {
    "depth": {"higher": "deeper is worse", "lower": "deeper is better"},
    "architecture": {"higher": "plain is worse", "lower": "plain is better"},
}


@dataclass(frozen=True)
class Comparison:
    """One comparison of two groups on training error, as report.json records it."""

    kind: str  # "depth" (deeper vs shallowest of one arch) or "architecture" (plain vs residual)
    subject: str
    reference: str
    verdict: str | None  # higher | lower | unclear: subject's training error vs reference's
    single_seed: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def comparisons(groups: Sequence[RunGroup]) -> list[Comparison]:
    """Every depth and architecture comparison the findings state, with its verdict."""
    found = []
    for _, members in _by_setting(groups):
        for deeper, shallowest in _depth_pairs(members):
            found.append(_comparison("depth", deeper, shallowest))
        for plain, residual in _architecture_pairs(members):
            found.append(_comparison("architecture", plain, residual))
    return found


def findings(summaries: Sequence[RunSummary], signal: SignalSection | None = None) -> list[str]:
    """One-line findings, each computed from the runs' numbers (means over seeds); with the
    signal study of the same runs, a setting that degrades with a healthy-looking gradient
    also says what its neighbour-gradient correlation shows."""
    groups = group_runs(summaries)
    lines = _status_findings(summaries, groups)
    for setting, members in _by_setting(groups):
        prefix = _setting_prefix(setting, groups)
        lines += [prefix + line for line in _depth_findings(members)]
        lines += [prefix + line for line in _architecture_findings(members)]
        explain = None if signal is None else _signal_clause(signal)
        lines += [
            prefix + line
            for line in mechanism_findings(members, _degraded_against(members), explain)
        ]
        lines += [prefix + line for line in _gradient_findings(members)]
    return [_capitalize(line) for line in lines]


def _signal_clause(signal: SignalSection) -> Callable[[RunGroup], str | None]:
    return lambda group: signal.clause(
        group.data, group.arch, group.depth, group.init, group.norm, group.residual_init
    )


def _by_setting(groups: Sequence[RunGroup]) -> list[tuple[tuple[str, str, str], list[RunGroup]]]:
    ordered = sorted(groups, key=lambda g: g.setting)
    return [(key, list(members)) for key, members in groupby(ordered, key=lambda g: g.setting)]


def _setting_prefix(setting: tuple[str, str, str], everything: Sequence[RunGroup]) -> str:
    """ "digits, xavier init, without batch norm: " when the report mixes such settings."""
    data, init, norm = setting
    parts = []
    if len({g.data for g in everything}) > 1:
        parts.append(data)
    if len({g.init for g in everything}) > 1:
        parts.append(f"{init} init")
    if len({g.norm for g in everything}) > 1:
        parts.append("with batch norm" if norm == "batch" else "without batch norm")
    return (", ".join(parts) + ": ") if parts else ""


def _status_findings(summaries: Sequence[RunSummary], groups: Sequence[RunGroup]) -> list[str]:
    """Diverged runs, runs that skipped steps, and runs still going: one line per setting."""
    lines = []
    for group in groups:
        runs = group.runs
        diverged = [run for run in runs if run.status == "diverged"]
        if diverged:
            lines.append(
                f"{group.label} diverged (its loss became non-finite){_in_seeds(diverged, runs)} "
                f"after {_span_text(run.epochs for run in diverged)} finished epochs."
            )
        skipping = [run for run in runs if run.skipped_steps]
        if skipping:
            untrained = all(run.final_train_loss is None for run in skipping)
            lines.append(
                f"{group.label} had a non-finite loss at "
                f"{_span_text(run.skipped_steps for run in skipping)} of "
                f"{_span_text(run.skipped_steps + run.run.steps for run in skipping)} steps"
                f"{_in_seeds(skipping, runs)} and skipped them"
                + (": it did not train." if untrained else ".")
            )
    running = [
        s.run_label if len(g.runs) > 1 else s.label
        for g in groups
        for s in g.runs
        if s.status in ("running", "interrupted")
    ]
    if running:
        lines.append(
            f"{len(running)} of {len(summaries)} runs have not finished "
            f"({', '.join(running)}); their numbers are from what they logged so far."
        )
    return lines


def _in_seeds(subset: Sequence[RunSummary], runs: Sequence[RunSummary] | None = None) -> str:
    """ " in 2 of 3 seeds" for a setting with several seeds; nothing for a single run."""
    runs = subset if runs is None else runs
    return f" in {len(subset)} of {len(runs)} seeds" if len(runs) > 1 else ""


def _span_text(values: Iterable[int]) -> str:
    ordered = sorted(set(values))
    return str(ordered[0]) if len(ordered) == 1 else f"{ordered[0]} to {ordered[-1]}"


def _depth_pairs(groups: list[RunGroup]) -> list[tuple[RunGroup, RunGroup]]:
    """(deeper, shallowest) of each architecture (and residual init), for every deeper depth
    with a training error."""
    pairs = []
    for _, ladder in _group(groups, "family"):
        ladder = [g for g in sorted(ladder, key=lambda g: g.depth) if g.train_error.n]
        pairs += [(deeper, ladder[0]) for deeper in ladder[1:]]
    return sorted(pairs, key=lambda pair: (pair[0].depth, pair[0].arch))


def _degraded_against(groups: list[RunGroup]) -> Callable[[RunGroup], RunGroup | None]:
    """group -> the shallowest setting of its arch that trains better beyond the seed spread."""
    worse = {
        deeper.label: shallowest
        for deeper, shallowest in _depth_pairs(groups)
        if _comparison("depth", deeper, shallowest).verdict == "higher"
    }
    return lambda group: worse.get(group.label)


def _architecture_pairs(groups: list[RunGroup]) -> list[tuple[RunGroup, RunGroup]]:
    pairs = []
    for _, at_depth in _group(groups, "depth"):
        plains = [g for g in at_depth if g.arch == "plain" and g.train_error.n]
        residuals = [g for g in at_depth if g.arch != "plain" and g.train_error.n]
        # Every residual variant (arch, residual init) against the plain net of its depth.
        pairs += [(plain, residual) for plain in plains[:1] for residual in residuals]
    return pairs


def _comparison(kind: str, subject: RunGroup, reference: RunGroup) -> Comparison:
    """A single seed has no spread to exceed: its comparison states the numbers, no verdict."""
    alone = single_seed(subject.train_error, reference.train_error)
    return Comparison(
        kind=kind,
        subject=subject.label,
        reference=reference.label,
        verdict=None if alone else compare(subject.train_error, reference.train_error),
        single_seed=alone,
    )


def _verdict_text(kind: str, comparison: Comparison) -> str:
    if comparison.single_seed:
        return "no verdict"  # its closing note says why: a single seed, no spread
    if comparison.verdict in (None, "unclear"):
        return "no clear difference"
    return VERDICT_WORDS[kind][comparison.verdict]


def _numbers(a: RunGroup, b: RunGroup) -> str:
    """Training error and loss of two groups, side by side, with the loss ratio."""
    text = (
        f"training error {format_spread(a.train_error, percent=True)} vs "
        f"{format_spread(b.train_error, percent=True)}"
    )
    if a.train_loss.mean is not None and b.train_loss.mean:
        text += (
            f", training loss {format_spread(a.train_loss)} vs {format_spread(b.train_loss)} "
            f"({times(a.train_loss.mean / b.train_loss.mean)})"
        )
    return text


def _depth_findings(groups: list[RunGroup]) -> list[str]:
    """Per architecture and deeper depth: its final training error against the shallowest's."""
    return [
        _comparison_sentence("depth", deeper, shallowest, "")
        for deeper, shallowest in _depth_pairs(groups)
    ]


def _architecture_findings(groups: list[RunGroup]) -> list[str]:
    """At each depth with a plain and a residual group: the plain one against the residual."""
    return [
        _comparison_sentence("architecture", plain, residual, f"at depth {plain.depth}, ")
        for plain, residual in _architecture_pairs(groups)
    ]


def _comparison_sentence(kind: str, subject: RunGroup, reference: RunGroup, opening: str) -> str:
    """ "plain-56 vs plain-20: deeper is worse; training error ..., training loss ...; test
    accuracy ...; mean ± std over 3 seeds." """
    comparison = _comparison(kind, subject, reference)
    line = (
        f"{opening}{subject.name} vs {reference.name}: {_verdict_text(kind, comparison)}; "
        f"{_numbers(subject, reference)}"
    )
    if subject.test_acc.n and reference.test_acc.n:
        line += (
            f"; test accuracy {format_spread(subject.test_acc, percent=True)} vs "
            f"{format_spread(reference.test_acc, percent=True)}"
        )
    return line + f"; {seeds_note(subject.train_error, reference.train_error)}."


def _gradient_findings(groups: list[RunGroup]) -> list[str]:
    """Per depth: vanished gradients (at the first or the last logged step) set against the
    other architectures at that step, then each group's first/last-layer ratio. Numbers are
    ranges over the seeds."""
    lines = []
    with_grads = [g for g in groups if all(run.grad_norm_first_step for run in g.runs)]
    for depth, at_depth in _group(with_grads, "depth"):
        for moment in ("first", "last"):
            lines += _vanished_findings(at_depth, moment)
        ratios = []
        for group in sorted(at_depth, key=lambda g: g.arch):
            first = [grad_ratio(run.grad_norm_first_step) for run in group.runs]
            last = [grad_ratio(run.grad_norm_last_step) for run in group.runs]
            if any(value is None for value in first) or group.residual_init != "none":
                continue  # a gated or zero-initialised net's step-0 gradients are 0 by design
            text = f"{group.name} {times_range(first)} at step {group.first.first_step}"
            if all(value is not None for value in last) and (
                group.first.last_step != group.first.first_step
            ):
                text += f", {times_range(last)} at step {group.first.last_step}"
            ratios.append(text)
        if ratios:
            lines.append(
                f"depth {depth}, first-layer / last-layer gradient norm"
                f"{_over_seeds(at_depth)}: " + "; ".join(ratios) + "."
            )
    return lines


def _vanished_findings(groups: list[RunGroup], moment: str) -> list[str]:
    """Groups with layers below VANISHED at their `moment` ("first" or "last") logged step, in
    any seed.

    At the last step only groups whose gradients were fine at the first step are named: that
    their gradients died during training is news, that dead ones stayed dead is not.
    """
    judged = [
        g
        for g in groups
        if (moment == "first" and g.residual_init == "none")
        or (
            g.first.last_step != g.first.first_step
            and not any(vanished_layers(run.grad_norm_first_step) for run in g.runs)
        )
    ]
    vanished = [g for g in judged if any(vanished_layers(r.norms_at(moment)) for r in g.runs)]
    flowing = [g for g in judged if g not in vanished]
    lines = []
    for group in vanished:
        norms = [run.norms_at(moment) for run in group.runs]
        counts = [vanished_layers(n) for n in norms]
        hit = sum(count > 0 for count in counts)
        layers = len(norms[0])
        low, high = min(counts), max(counts)
        if low == high == layers:
            scope = f"all {layers}"
        else:
            scope = f"{low if low == high else f'{low} to {high}'} of {layers}"
        seeds = f" in {hit} of {len(counts)} seeds" if len(counts) > 1 else ""
        contrast = "".join(
            f"; {other.name}'s span "
            f"{sci(min(float(np.nanmin(r.norms_at(moment))) for r in other.runs))} to "
            f"{sci(max(float(np.nanmax(r.norms_at(moment))) for r in other.runs))} "
            f"at step {other.first.step_at(moment)}"
            for other in flowing
        )
        lines.append(
            f"{group.name}'s gradients vanished by step {group.first.step_at(moment)}{seeds}: "
            f"{scope} layers below {sci(VANISHED)} (first layer "
            f"{sci_range([n[0] for n in norms])}, largest "
            f"{sci_range([float(np.nanmax(n)) for n in norms])}){contrast}."
        )
    return lines


def _over_seeds(groups: Sequence[RunGroup]) -> str:
    most = max(len(g.runs) for g in groups)
    return f" (range over {most} seeds)" if most > 1 else ""


# ---- small helpers ----------------------------------------------------------------------------


def _group(runs: list[RunSummary], key: str) -> list[tuple[Any, list[RunSummary]]]:
    """Runs grouped by an attribute; "family" is (arch, residual init)."""
    get = (lambda s: (s.arch, s.residual_init)) if key == "family" else (lambda s: getattr(s, key))
    ordered = sorted(runs, key=get)
    return [(k, list(g)) for k, g in groupby(ordered, key=get)]


def _capitalize(text: str) -> str:
    """Sentence case, except that a sentence opening with a run name keeps it as written."""
    if text.startswith(("plain", "resnet", "preact")):
        return text
    return text[:1].upper() + text[1:]
