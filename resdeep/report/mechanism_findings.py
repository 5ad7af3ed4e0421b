"""The report's sentences on what the diagnostics show: per setting, what was measured at
initialisation and at the end, and which mechanism that is (resdeep.report.mechanism), as
ranges over the seeds."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from resdeep.report.analysis import RunGroup, RunSummary
from resdeep.report.mechanism import (
    EXPLODING,
    FORWARD_EXPLODING,
    FROZEN,
    HEALTHY,
    SHORT_LABELS,
    THRESHOLDS,
    VANISHING,
    VANISHING_FROM_START,
    Mechanism,
)
from resdeep.report.numbers import sci, sci_range, times_range
from resdeep.report.reading import Diagnostics
from resdeep.report.spread import format_spread


def mechanism_findings(
    groups: Sequence[RunGroup],
    degraded_against: Callable[[RunGroup], RunGroup | None],
    explain: Callable[[RunGroup], str | None] | None = None,
) -> list[str]:
    """One sentence per setting with diagnostics, shallow to deep, plain before residual; one
    more naming the settings whose runs logged none.

    degraded_against(group): the shallower setting it trains worse than (beyond the seed
    spread), or None; a setting whose signal looks healthy is then said to degrade anyway, and
    explain(group) (the signal study's clause, when there is one) says what else was measured.
    """
    lines = []
    measured = [g for g in groups if all(run.mechanism for run in g.runs)]
    for group in sorted(measured, key=lambda g: (g.depth, g.arch)):
        lines.append(
            _sentence(group, [run.mechanism for run in group.runs], degraded_against, explain)
        )
    if measured:
        lines += _forward_findings(sorted(measured, key=lambda g: (g.arch, g.depth)))
    missing = [g for g in groups if g not in measured]
    if missing:
        lines.append(
            f"{', '.join(g.label for g in missing)}: no diagnostics logged (runs from before "
            "resdeep measured the backward signal, weight norms and relative updates), so no "
            "mechanism is named; their gradient norms are reported as before."
        )
    return lines


def _forward_findings(groups: Sequence[RunGroup]) -> list[str]:
    """The forward signal at initialisation and the layer responses at the end (He et al.
    2015, Fig. 7), per setting, as ranges over the seeds; a setting that ended at another step
    than most (a run that diverged) says at which."""
    end_steps = [run.mechanism.end_step for g in groups for run in g.runs]
    usual_end = max(set(end_steps), key=end_steps.count)
    forward, responses = [], []
    for group in groups:
        runs = [(_diagnostics(run), run.mechanism) for run in group.runs]
        forward.append(
            f"{group.name} {sci_range([d.forward_std.at(m.init_step)[-1] for d, m in runs])}"
        )
        at_end = [d.layer_response.at(m.end_step) for d, m in runs]
        medians = [_finite_stat(np.median, values) for values in at_end]
        largest = [_finite_stat(np.max, values) for values in at_end]
        own_steps = sorted({m.end_step for _, m in runs} - {usual_end})
        elsewhere = f" at step {_and(own_steps)}" if own_steps else ""
        responses.append(
            f"{group.name} {sci_range(medians)} (largest {sci_range(largest)}){elsewhere}"
        )
    return [
        "forward signal, the std of the last block's output at initialisation (step "
        f"{groups[0].first.mechanism.init_step}): " + ", ".join(forward) + ".",
        f"layer responses at step {usual_end} (He et al. 2015, Fig. 7: the std of each conv's "
        "output after its BN, before ReLU or addition), median over the convs: "
        + ", ".join(responses)
        + ".",
    ]


def _diagnostics(run: RunSummary) -> Diagnostics:
    assert run.run.diagnostics is not None  # measured runs only
    return run.run.diagnostics


def _finite_stat(statistic: Callable[[np.ndarray], float], values: np.ndarray) -> float:
    """The statistic of the finite values (a diverged layer's NaN is not a response)."""
    finite = values[np.isfinite(values)]
    return float(statistic(finite)) if finite.size else math.nan


def _and(values: Sequence[int]) -> str:
    """ "40", "1 and 40", "1, 20 and 40"."""
    text = [str(v) for v in values]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " and " + text[-1]


def _steps(mechanisms: Sequence[Mechanism], moment: str) -> str:
    """ "step 40", or "steps 1 and 40" when the seeds stopped at different steps."""
    values = sorted({getattr(m, moment) for m in mechanisms})
    return ("step " if len(values) == 1 else "steps ") + _and(values)


def _sentence(
    group: RunGroup,
    mechanisms: Sequence[Mechanism],
    degraded_against: Callable[[RunGroup], RunGroup | None],
    explain: Callable[[RunGroup], str | None] | None = None,
) -> str:
    labels = [m.labels() for m in mechanisms]
    parts = [
        _initial(mechanisms, labels),
        _weights(mechanisms, labels),
        _final(mechanisms, labels),
    ]
    verdict = _verdict(labels)
    text = f"{group.name}: " + "; ".join(parts) + f" — {verdict}"
    reference = degraded_against(group)
    if all(found == [HEALTHY] for found in labels) and reference is not None:
        text += (
            ", and it degrades anyway: training error "
            f"{format_spread(group.train_error, percent=True)} vs {reference.name}'s "
            f"{format_spread(reference.train_error, percent=True)} with neither an exploding, "
            "frozen nor vanishing signal, the optimisation difficulty He et al. describe"
        )
        clause = explain(group) if explain is not None else None
        if clause:
            text += f"; {clause}"
    return text + "."


def _initial(mechanisms: Sequence[Mechanism], labels: list[list[str]]) -> str:
    growth = [m.init_growth for m in mechanisms]
    gains = [m.init_gain for m in mechanisms]
    opening = f"at initialisation ({_steps(mechanisms, 'init_step')})"
    if all(m.init_signal_max == 0 for m in mechanisms):
        return f"{opening} no backward signal reaches any block (the classifier starts at zero)"
    if not any(math.isfinite(value) for value in growth):
        return f"{opening} the backward signal is not finite"
    if all(value >= 1 for value in growth):
        move = f"grows {times_range(growth)} from the last block to the stem"
    elif all(value < 1 for value in growth):
        move = f"falls to {times_range(growth)} of the last block's at the stem"
    else:
        move = f"at the stem is {times_range(growth)} the last block's"
    text = (
        f"{opening} the backward signal {move} "
        f"({times_range(gains)} per block{_tag(labels, EXPLODING, VANISHING_FROM_START)})"
    )
    if _count(labels, FORWARD_EXPLODING):
        forward = times_range([m.forward_growth for m in mechanisms])
        text += (
            f" and the forward signal grows {forward} from the stem to the last block"
            f"{_tag(labels, FORWARD_EXPLODING, parenthesised=True)}"
        )
    return text


def _weights(mechanisms: Sequence[Mechanism], labels: list[list[str]]) -> str:
    end = _steps(mechanisms, "end_step")
    first_update = [m.first_update_max for m in mechanisms]
    text = (
        f"its first update moves the convs by up to {times_range(first_update)} their weight; "
        if max(first_update) >= 1
        else ""
    )
    if _count(labels, FROZEN):
        frozen = [m.frozen for m in mechanisms]
        return text + (
            f"by {end} the first conv's weights are "
            f"{times_range([m.first_conv_growth for m in mechanisms])} their initial norm "
            f"(largest {times_range([m.max_growth for m in mechanisms])}) and "
            f"{_span(frozen)} of {mechanisms[0].convs} convs are frozen "
            f"(‖∂L/∂W‖/‖W‖ ≤ {sci(THRESHOLDS.frozen)}, the first conv's "
            f"{sci_range([m.first_conv_relative_grad for m in mechanisms])}"
            f"{_seeds_with(labels, FROZEN)})"
        )
    growth = [m.max_growth for m in mechanisms]
    if max(growth) < THRESHOLDS.grown:
        weights = f"its convs' weights stay within {times_range(growth)} of their initial norms"
    else:
        weights = f"its convs' weights grow up to {times_range(growth)} their initial norms"
    stalled = [m.stalled for m in mechanisms]
    stalling = (
        f"no conv's ‖∂L/∂W‖/‖W‖ falls to {sci(THRESHOLDS.frozen)}"
        if max(stalled) == 0
        else f"{_span(stalled)} of {mechanisms[0].convs} convs' ‖∂L/∂W‖/‖W‖ fall to "
        f"{sci(THRESHOLDS.frozen)} or below"
    )
    relative_grads = [m.relative_grad_min for m in mechanisms] + [
        m.relative_grad_max for m in mechanisms
    ]
    updates = [m.update_min for m in mechanisms] + [m.update_max for m in mechanisms]
    return text + (
        f"{weights}, and {stalling} ({sci_range(relative_grads)} at {end}; "
        f"relative updates {sci_range(updates)} at {_steps(mechanisms, 'update_step')})"
    )


def _final(mechanisms: Sequence[Mechanism], labels: list[list[str]]) -> str:
    growth = [m.end_growth for m in mechanisms]
    if not any(math.isfinite(value) for value in growth):  # a run that diverged
        return f"at {_steps(mechanisms, 'end_step')} the backward signal is not finite"
    return (
        f"at {_steps(mechanisms, 'end_step')} the stem's backward signal is {times_range(growth)} "
        f"the last block's{_tag(labels, VANISHING, parenthesised=True)}"
    )


def _verdict(labels: list[list[str]]) -> str:
    """ "exploding at initialisation, then frozen by weight growth, then vanishing", with the
    seeds counted where they disagree."""
    order = [FORWARD_EXPLODING, EXPLODING, VANISHING_FROM_START, FROZEN, VANISHING]
    seen = [label for label in order if _count(labels, label)]
    if not seen:
        return HEALTHY
    words = []
    for label in seen:
        count = _count(labels, label)
        words.append(
            label + (f" (in {count} of {len(labels)} seeds)" if count < len(labels) else "")
        )
    healthy = sum(found == [HEALTHY] for found in labels)
    text = ", then ".join(words)
    return text + (f"; healthy in {healthy} of {len(labels)} seeds" if healthy else "")


def _tag(labels: list[list[str]], *wanted: str, parenthesised: bool = False) -> str:
    """ ": exploding" (or " (vanishing)") when a mechanism applies, in how many seeds if not all."""
    for label in wanted:
        count = _count(labels, label)
        if count:
            seeds = f" in {count} of {len(labels)} seeds" if count < len(labels) else ""
            word = SHORT_LABELS[label] + seeds
            return f" ({word})" if parenthesised else f": {word}"
    return ""


def _count(labels: list[list[str]], label: str) -> int:
    """In how many seeds (each seed's list of labels) `label` applies."""
    return sum(label in found for found in labels)


def _seeds_with(labels: list[list[str]], label: str) -> str:
    count = _count(labels, label)
    return f"; in {count} of {len(labels)} seeds" if count < len(labels) else ""


def _span(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low} to {high}"
