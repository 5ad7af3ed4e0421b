"""Landscape studies of several nets grouped by setting over seeds, with the report's rules
(mean ± std over seeds; a difference called one only beyond both 95 % intervals), and the
findings: plain against residual nets of the same depth."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from resdeep.landscape.study import RunLandscape, barrier
from resdeep.report.analysis import residual_init_order
from resdeep.report.net_settings import SETTING_KEYS, setting_label, varying_settings
from resdeep.report.spread import Spread, compare, format_spread, single_seed

# A rise on the line smaller than this is noise of a flat stretch, not a barrier; a training
# loss above this is a net that did not fit its data (chance on 10 classes is 2.3).
BARRIER_AT = 0.01
NOT_FITTED = 0.5


@dataclass(frozen=True)
class LandscapeGroup:
    """Nets that differ only in their seed."""

    label: str
    about: dict[str, Any]  # the setting's keys
    runs: list[RunLandscape]  # in seed order

    @property
    def seeds(self) -> list[int | None]:
        return [run.about["seed"] for run in self.runs]

    @property
    def residual(self) -> bool:
        return self.about["arch"] != "plain"

    def centre(self, what: str = "loss", split: str = "train") -> Spread:
        return Spread.of(run.centre.get(split, {}).get(what) for run in self.runs)

    def sharpness(self, split: str = "train") -> Spread:
        return Spread.of(run.sharpness.get(split) for run in self.runs)

    def curvature(self, key: str) -> Spread:
        return Spread.of((run.curvature or {}).get(key) for run in self.runs)

    def barrier(self, split: str = "train") -> Spread:
        return Spread.of(
            barrier(run.interpolation, split) if run.interpolation else None for run in self.runs
        )

    @property
    def has_curvature(self) -> bool:
        return any(run.curvature for run in self.runs)

    @property
    def has_interpolation(self) -> bool:
        return any(run.interpolation for run in self.runs)

    def as_json(self) -> dict[str, Any]:
        splits = sorted({split for run in self.runs for split in run.centre})
        entry: dict[str, Any] = {
            "label": self.label,
            **self.about,
            "seeds": self.seeds,
            "centre_loss": {s: vars(self.centre("loss", s)) for s in splits},
            "centre_accuracy": {s: vars(self.centre("accuracy", s)) for s in splits},
            "sharpness": {s: vars(self.sharpness(s)) for s in splits},
        }
        if self.has_interpolation:
            entry["barrier"] = {s: vars(self.barrier(s)) for s in splits}
        if self.has_curvature:
            entry["curvature"] = {
                key: vars(self.curvature(key))
                for key in ("lambda_max", "lambda_min", "negative_ratio", "trace")
            }
        return entry


def group_landscapes(runs: Sequence[RunLandscape]) -> list[LandscapeGroup]:
    """One group per setting, ordered by data, init, norm, residual init, arch (plain first),
    depth; runs in seed order."""
    varying = varying_settings(run.about for run in runs)
    keyed: dict[tuple, list[RunLandscape]] = {}
    for run in runs:
        keyed.setdefault(tuple(run.about[k] for k in SETTING_KEYS), []).append(run)

    def order(key: tuple) -> tuple:
        about = dict(zip(SETTING_KEYS, key, strict=True))
        rest = tuple(str(about[k]) for k in SETTING_KEYS[6:])
        return (about["data"], about["init"], about["norm"],
                residual_init_order(about["residual_init"]), rest, about["arch"] != "plain",
                about["arch"], about["depth"])  # fmt: skip

    groups = []
    for key in sorted(keyed, key=order):
        about = dict(zip(SETTING_KEYS, key, strict=True))
        members = sorted(keyed[key], key=lambda run: (run.about["seed"] is None, run.about["seed"]))
        groups.append(LandscapeGroup(setting_label(about, varying), about, members))
    return groups


def twins(groups: Sequence[LandscapeGroup]) -> list[tuple[LandscapeGroup, LandscapeGroup]]:
    """(plain, residual) pairs of the same depth, data, init and norm."""
    return [
        (plain, other)
        for plain in groups
        if not plain.residual
        for other in groups
        if other.residual
        and all(other.about[k] == plain.about[k] for k in ("data", "depth", "init", "norm"))
    ]


def _versus(
    plain: LandscapeGroup, residual: LandscapeGroup, get: Callable[[RunLandscape], Any]
) -> str:
    """ "plain-56 0.68 to 9.6 above resnet-56 0.16 to 0.34 (geometric means 2.0 vs 0.22)":
    these quantities are positive and heavy-tailed over seeds (one seed's loss rise can be ten
    times another's), so seeds are compared on a log scale, by the report's rule, and shown as
    their range."""
    a, b = _values(plain, get), _values(residual, get)
    if not a or not b:
        return f"{plain.label} vs {residual.label}: not measured"
    verdict = compare(_log_spread(a), _log_spread(b))
    word = {"lower": "below", "higher": "above"}.get(verdict or "", "not clearly apart from")
    if verdict in ("lower", "higher") and single_seed(_log_spread(a), _log_spread(b)):
        word += " (one seed: no spread to exceed)"
    means = f"geometric means {_number(_geometric(a))} vs {_number(_geometric(b))}"
    return f"{plain.label} {_range(a)} {word} {residual.label} {_range(b)} ({means})"


def _values(group: LandscapeGroup, get: Callable[[RunLandscape], Any]) -> list[float]:
    values = [get(run) for run in group.runs]
    return [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]


def _log_spread(values: Sequence[float]) -> Spread:
    return Spread.of(math.log10(v) for v in values)


def _geometric(values: Sequence[float]) -> float:
    return 10 ** (sum(math.log10(v) for v in values) / len(values))


def _number(value: float) -> str:
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e5 else f"{value:.2e}"


def _range(values: Sequence[float]) -> str:
    low, high = min(values), max(values)
    return _number(low) if len(values) == 1 or low == high else f"{_number(low)} to {_number(high)}"


def landscape_findings(groups: Sequence[LandscapeGroup], radius: float) -> list[str]:
    """What the measurements say, in words with their numbers."""
    pairs = twins(groups)
    lines = []
    if pairs:
        lines.append(
            f"Sharpness (mean training-loss rise at ±{radius:g} along the normalised directions; "
            "the plain net first): "
            + "; ".join(_versus(p, r, lambda run: run.sharpness.get("train")) for p, r in pairs)
            + "."
        )
        lines.append(
            "Training loss at the trained weights: "
            + "; ".join(_versus(p, r, lambda run: run.centre["train"]["loss"]) for p, r in pairs)
            + "."
        )
        curved = [(p, r) for p, r in pairs if p.has_curvature and r.has_curvature]
        if curved:
            lines.append(
                "Top Hessian eigenvalue λmax: "
                + "; ".join(
                    _versus(p, r, lambda run: (run.curvature or {}).get("lambda_max"))
                    for p, r in curved
                )
                + "; |λmin|/λmax (non-convexity, Li et al.): "
                + "; ".join(
                    f"{g.label} {format_spread(g.curvature('negative_ratio'))}"
                    for g in _each_once(g for pair in curved for g in pair)
                )
                + "."
            )
        lined = [(p, r) for p, r in pairs if p.has_interpolation and r.has_interpolation]
        if lined:
            lines.append(
                "On the straight line between the two ends, a barrier (the training loss rising "
                f"more than {BARRIER_AT:g} above the higher end): "
                + "; ".join(
                    _barriers(group) for group in _each_once(g for pair in lined for g in pair)
                )
                + "."
            )
    unconverged = [g for g in groups if (g.centre().mean or 0) > NOT_FITTED]
    if unconverged:
        lines.append(
            "Not at a minimum: "
            + ", ".join(
                f"{g.label} (training loss {format_spread(g.centre())})" for g in unconverged
            )
            + (
                " — its surface is that of a net still far from fitting the data, so its sharpness "
                "is measured at another kind of point than a converged net's."
                if len(unconverged) == 1
                else " — their surfaces are those of nets still far from fitting the data, so "
                "their sharpness is measured at another kind of point than a converged net's."
            )
        )
    return lines


def _barriers(group: LandscapeGroup) -> str:
    """ "plain-56 on 2 of 3 seeds (up to 0.78)", "resnet-56 on none (0 of 3)"."""
    heights = [barrier(run.interpolation) for run in group.runs if run.interpolation]
    heights = [h for h in heights if h is not None]
    risen = [h for h in heights if h > BARRIER_AT]
    if not risen:
        return f"{group.label} on none (0 of {len(heights)})"
    return f"{group.label} on {len(risen)} of {len(heights)} (up to {max(risen):.3g})"


def _each_once(groups: Iterable[LandscapeGroup]) -> list[LandscapeGroup]:
    """In order, each group once (groups hold lists: compared by identity, not hashed)."""
    seen: list[LandscapeGroup] = []
    for group in groups:
        if not any(group is other for other in seen):
            seen.append(group)
    return seen
