"""Lesion studies of several runs grouped by setting over seeds, with the report's rules: mean ±
std over seeds, and a difference called one only beyond both 95 % intervals."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from resdeep.lesion.study import RunLesion
from resdeep.report.analysis import residual_init_order, run_label, varying_keys
from resdeep.report.spread import Spread, compare, format_points, format_spread, single_seed


@dataclass(frozen=True)
class LesionGroup:
    """Runs that differ only in their seed."""

    label: str
    data: str
    arch: str
    depth: int
    runs: list[RunLesion]  # in seed order

    @property
    def residual_init(self) -> str:
        return self.runs[0].residual_init

    @property
    def seeds(self) -> list[int | None]:
        return [run.seed for run in self.runs]

    @property
    def intact(self) -> Spread:
        return Spread.of(run.intact["accuracy"] for run in self.runs)

    @property
    def median_drop(self) -> Spread:
        """The median accuracy lost per single deleted block, one median per seed."""
        return Spread.of(_median(run.single_drops()) for run in self.runs)

    @property
    def worst_drop(self) -> Spread:
        return Spread.of(max(run.single_drops(), default=None) for run in self.runs)

    def block_drops(self) -> list[tuple[str, bool, Spread]]:
        """Per block, input to output: its name, whether it changes shape, and the accuracy
        after deleting it over the seeds (None-valued where it cannot be deleted)."""
        first = self.runs[0].blocks
        return [
            (
                block["name"],
                block["changes_shape"],
                Spread.of(run.blocks[index]["accuracy"] for run in self.runs),
            )
            for index, block in enumerate(first)
        ]

    def k_curve(self) -> list[tuple[int, Spread]]:
        """Accuracy after deleting k blocks: each seed's mean over draws, then over seeds."""
        points: dict[int, list[float]] = {}
        for run in self.runs:
            for point in run.k_curve["points"]:
                points.setdefault(point["k"], []).append(point["mean"])
        return [(k, Spread.of(values)) for k, values in sorted(points.items())]

    def reorder_curve(self) -> list[tuple[int, Spread]]:
        points: dict[int, list[float]] = {}
        for run in self.runs:
            for point in (run.reorder or {}).get("points", []):
                points.setdefault(point["k"], []).append(point["mean"])
        return [(k, Spread.of(values)) for k, values in sorted(points.items())]

    def path_runs(self) -> list[dict[str, Any]]:
        return [run.paths for run in self.runs if run.paths]

    def largest_k_step(self) -> float | None:
        """The largest change of the mean k-curve between neighbouring k (intact to k = 1
        included): a smooth curve has no step."""
        means = [self.intact.mean] + [spread.mean for _, spread in self.k_curve()]
        finite = [m for m in means if m is not None]
        return max((abs(b - a) for a, b in zip(finite, finite[1:], strict=False)), default=None)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "data": self.data,
            "arch": self.arch,
            "depth": self.depth,
            "residual_init": self.residual_init,
            "seeds": self.seeds,
            "intact_accuracy": vars(self.intact),
            "median_single_drop": vars(self.median_drop),
            "worst_single_drop": vars(self.worst_drop),
            "k_curve": [{"k": k, **vars(spread)} for k, spread in self.k_curve()],
            "largest_k_step": self.largest_k_step(),
            "reorder_curve": [{"k": k, **vars(spread)} for k, spread in self.reorder_curve()],
            "path_windows": [list(paths["window"]) for paths in self.path_runs()],
        }


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def group_lesions(runs: Sequence[RunLesion]) -> list[LesionGroup]:
    """Groups in a stable order (data, init, norm, arch, depth, residual_init); labels as the
    report's."""
    varying = varying_keys(runs)

    def key(run: RunLesion) -> tuple:
        return (
            run.data, run.init, run.norm, run.shortcut, run.arch, run.depth,
            residual_init_order(run.residual_init), run.residual_init,
        )  # fmt: skip

    ordered = sorted(runs, key=lambda r: (*key(r), r.seed is None, r.seed or 0))
    groups = []
    for _, members in groupby(ordered, key=key):
        seeds = list(members)
        first = seeds[0]
        label = run_label(
            first.arch, first.depth, first.init, first.norm, varying, first.residual_init
        )
        groups.append(LesionGroup(label, first.data, first.arch, first.depth, seeds))
    return groups


def lesion_findings(groups: Sequence[LesionGroup]) -> list[str]:
    """Sentences on what deleting blocks does, plain against residual at each depth."""
    findings = []
    for group in groups:
        sentence = (
            f"Deleting one block costs {group.label} a median {format_points(group.median_drop)} of "
            f"its {format_spread(group.intact, percent=True)} {group.runs[0].split} accuracy "
            f"(worst block {format_points(group.worst_drop)})"
        )
        sentence += _seeds(group)
        if near_chance(group):
            sentence += "; it is near chance before any deletion, with little left to lose"
        findings.append(sentence + ".")
    # A plain net has no residual_init: each residual group at its depth is set against it.
    by_depth = {(g.data, g.depth, g.arch, g.residual_init): g for g in groups}
    for (data, depth, arch, _), residual in by_depth.items():
        plain = by_depth.get((data, depth, "plain", "none"))
        if arch == "plain" or plain is None:
            continue
        if near_chance(plain):
            findings.append(
                f"At depth {depth} the plain net is near chance before any deletion, so its "
                f"drops say nothing; {residual.label} keeps "
                f"{format_spread(residual.intact, percent=True)} and loses a median "
                f"{format_points(residual.median_drop)} per deleted block."
            )
            continue
        verdict = compare(plain.median_drop, residual.median_drop)
        beyond = (
            "single seed, no spread to exceed"
            if single_seed(plain.median_drop, residual.median_drop)
            else "beyond the seed spread"
        )
        if verdict == "higher":
            findings.append(
                f"At depth {depth}, a deleted block costs the plain net more than {residual.label} "
                f"({beyond}): the residual net does not depend on any one path through it."
            )
        elif verdict == "lower":
            findings.append(
                f"At depth {depth}, a deleted block costs {residual.label} more than the plain "
                f"net ({beyond})."
            )
        elif verdict == "unclear":
            findings.append(
                f"At depth {depth}, plain and {residual.label} lose alike when a block is "
                "deleted (within the seed spread)."
            )
    return findings


def near_chance(group: LesionGroup) -> bool:
    """Intact accuracy under twice chance level: such a net has nothing a lesion can show."""
    mean = group.intact.mean
    return mean is not None and mean < 2 / group.runs[0].classes


def _seeds(group: LesionGroup) -> str:
    count = len(group.runs)
    return f", mean ± std over {count} seeds" if count > 1 else ", one seed"
