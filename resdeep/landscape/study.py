"""One trained net's landscape study: 1-D slices along random directions, the sharpness at a
fixed distance, optionally a 2-D plane, the straight line to another net, and the curvature
at θ*, all on fixed image subsets, as one record."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

import torch
from torch import nn

from resdeep.batch_norm import BN_STATS, batch_norm_mode
from resdeep.errors import UsageError
from resdeep.landscape.directions import (
    NORMALIZATIONS,
    direction_norm,
    random_directions,
    trained_weights,
)
from resdeep.landscape.hessian import LANCZOS_PRODUCTS, PRODUCT_COST, curvature
from resdeep.landscape.surface import (
    Subset,
    WeightSpace,
    loss_and_accuracy,
)

# Where --between starts or ends besides another run: each run's own initial weights, or the
# run of the next seed of the same setting.
BETWEEN_INIT = "init"
BETWEEN_SEEDS = "seeds"


@dataclass(frozen=True)
class LandscapeSettings:
    directions: int = 2  # random directions, one 1-D slice each
    points: int = 21  # along each slice (odd: θ* is the middle one)
    span: float = 1.0  # slices and the plane run from -span to +span
    normalization: str = "filter"  # of the directions (resdeep.landscape.directions)
    bn_stats: str = "running"  # batch norm's statistics at each point (surface.BN_STATS)
    subset: int = 512  # training images the loss is measured on
    test: bool = False  # the test split too (a subset of the same size)
    radius: float = 0.25  # sharpness: the loss rise at this distance along the directions
    plane: bool = False  # a 2-D plane along the first two directions
    grid: int = 21  # points per side of the plane (odd)
    between: str | None = None  # init, seeds, or a run: the straight line to it
    hessian: bool = False  # λmax, λmin, trace at θ*
    trace_samples: int = 20
    seed: int = 0  # of the directions, the subsets and the estimators

    def check(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise UsageError(
                f"--normalization must be one of {', '.join(NORMALIZATIONS)}, "
                f"got {self.normalization!r}"
            )
        if self.bn_stats not in BN_STATS:
            raise UsageError(
                f"--bn-stats must be one of {', '.join(BN_STATS)}, got {self.bn_stats!r}"
            )
        for name, least in (("directions", 1), ("subset", 1), ("trace_samples", 2)):
            if getattr(self, name) < least:
                option = name.replace("_", "-")
                raise UsageError(f"--{option} must be at least {least}, got {getattr(self, name)}")
        for name in ("points", "grid"):
            value = getattr(self, name)
            if value < 3 or value % 2 == 0:
                raise UsageError(
                    f"--{name} must be odd and at least 3 (the trained weights are the middle "
                    f"point), got {value}"
                )
        if not self.span > 0:
            raise UsageError(f"--range must be positive, got {self.span}")
        if not 0 < self.radius <= self.span:
            raise UsageError(
                f"--radius must be in (0, --range] = (0, {self.span:g}], got {self.radius}"
            )

    def describe(self) -> str:
        """ "512 training images, filter-normalised directions, batch norm's running
        statistics": what a figure's numbers are of."""
        stats = {"running": "batch norm's running statistics",
                 "batch": "batch norm re-estimated at every point"}[self.bn_stats]  # fmt: skip
        return f"{self.subset} training images, {self.normalization}-normalised directions, {stats}"

    @property
    def drawn(self) -> int:
        """Directions drawn: the plane needs two."""
        return max(self.directions, 2 if self.plane else 1)

    def steps(self, count: int) -> list[float]:
        """-span ... +span in count points, the middle one exactly 0."""
        half = (count - 1) // 2
        return [float(self.span * Fraction(k - half, half)) for k in range(count)]

    def interpolation_steps(self) -> list[float]:
        """t from -0.5 to 1.5 (Goodfellow et al.'s window), t = 0 and 1 exact."""
        per_unit = self.points - 1
        return [float(Fraction(k, per_unit) - Fraction(1, 2)) for k in range(2 * per_unit + 1)]

    def evaluations(self) -> int:
        """Points one net is evaluated at (each on every subset; θ* once), and the Hessian's
        products counted as the evaluations they cost."""
        total = 1 + self.directions * (self.points - 1) + 2 * self.directions
        if self.plane:
            total += self.grid**2 - 1
        if self.between:
            total += 2 * self.points - 1
        if self.hessian:  # in units of one evaluation
            total += (LANCZOS_PRODUCTS + self.trace_samples) * PRODUCT_COST
        return total


@dataclass(frozen=True)
class Line:
    """A straight line in weight space: t = 0 at `start`, t = 1 at `end` (state dicts of one
    architecture, running statistics included), each end named ("init", "end", a checkpoint)."""

    start_name: str
    start: dict[str, torch.Tensor]
    end_name: str
    end: dict[str, torch.Tensor]


@dataclass
class RunLandscape:
    """One net's measurements. `about` says which net (resdeep.report.net_settings.describe,
    with its run and checkpoint); every number is per subset ("train", "test")."""

    about: dict[str, Any]
    subsets: dict[str, list[int]]  # split -> indices of its images
    centre: dict[str, dict[str, float]]  # split -> loss, accuracy at θ*
    slices: list[dict[str, Any]]  # per direction: steps, loss and accuracy per split
    sharpness: dict[str, float]  # split -> mean loss rise at ±radius over the directions
    plane: dict[str, Any] | None = None  # steps and loss/accuracy grids [row β][column α]
    interpolation: dict[str, Any] | None = None  # its ends, t, loss and accuracy per split
    curvature: dict[str, Any] | None = None
    seconds: float = 0.0
    direction_norms: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[int], None]  # called with the number of points just evaluated


def evaluate_all(
    model: nn.Module, subsets: Sequence[Subset], stats: str
) -> dict[str, tuple[float, float]]:
    with batch_norm_mode(model, stats):
        return {subset.split: loss_and_accuracy(model, subset) for subset in subsets}


def study_net(
    model: nn.Module,
    subsets: Sequence[Subset],
    settings: LandscapeSettings,
    about: dict[str, Any],
    *,
    line: Line | None = None,
    progress: Progress | None = None,
) -> RunLandscape:
    """Every measurement of one net, and the straight line between two states of it."""
    started = time.perf_counter()
    advance = progress or (lambda n: None)
    splits = [s.split for s in subsets]
    weights = trained_weights(model)
    directions = random_directions(weights, settings.drawn, settings.seed, settings.normalization)
    with WeightSpace(model) as space:
        centre = evaluate_all(model, subsets, settings.bn_stats)
        advance(1)

        def at(steps: Sequence[float], along: Sequence) -> dict[str, tuple[float, float]]:
            if not any(steps):
                return centre
            space.move_along(weights, along, steps)
            values = evaluate_all(model, subsets, settings.bn_stats)
            advance(1)
            return values

        alphas = settings.steps(settings.points)
        slices, rises = [], {split: [] for split in splits}
        for index, direction in enumerate(directions[: settings.directions]):
            values = [at([a], [direction]) for a in alphas]
            slices.append(_curve({"direction": index, "steps": alphas}, values, splits))
            for sign in (-1.0, 1.0):
                ends = at([sign * settings.radius], [direction])
                for split in splits:
                    rises[split].append(ends[split][0] - centre[split][0])
        sharpness = {split: sum(r) / len(r) for split, r in rises.items()}
        plane = None
        if settings.plane:
            betas = settings.steps(settings.grid)
            grid = [[at([a, b], directions[:2]) for a in betas] for b in betas]
            plane = {"steps": betas}
            for what, slot in (("loss", 0), ("accuracy", 1)):
                plane[what] = {s: [[p[s][slot] for p in row] for row in grid] for s in splits}
        interpolation = None
        if line is not None:
            values = []
            for step in settings.interpolation_steps():
                space.move_between(line.start, line.end, step)
                values.append(evaluate_all(model, subsets, settings.bn_stats))
                advance(1)
            ends = {"from": line.start_name, "to": line.end_name}
            interpolation = _curve(ends | {"steps": settings.interpolation_steps()}, values, splits)
    hessian = None
    if settings.hessian:
        train = subsets[0]
        with batch_norm_mode(model, settings.bn_stats):
            hessian = curvature(model, train.inputs, train.labels,
                                trace_samples=settings.trace_samples, seed=settings.seed,
                                on_product=lambda: advance(PRODUCT_COST)).as_json()  # fmt: skip
    return RunLandscape(
        about=about,
        subsets={s.split: s.indices for s in subsets},
        centre={s: {"loss": v[0], "accuracy": v[1]} for s, v in centre.items()},
        slices=slices,
        sharpness=sharpness,
        plane=plane,
        interpolation=interpolation,
        curvature=hessian,
        seconds=time.perf_counter() - started,
        direction_norms=[direction_norm(d) for d in directions],
    )


def _curve(
    head: dict[str, Any], values: list[dict[str, tuple[float, float]]], splits: list[str]
) -> dict[str, Any]:
    return head | {
        "loss": {s: [v[s][0] for v in values] for s in splits},
        "accuracy": {s: [v[s][1] for v in values] for s in splits},
    }


def barrier(curve: dict[str, Any], split: str = "train") -> float | None:
    """The interpolation's highest loss between its ends (0 ≤ t ≤ 1) above the higher end."""
    pairs = [(t, loss) for t, loss in zip(curve["steps"], curve["loss"][split], strict=True)]
    inside = [loss for t, loss in pairs if 0 <= t <= 1]
    ends = [loss for t, loss in pairs if t in (0.0, 1.0)]
    if not inside or len(ends) < 2:
        return None
    return max(inside) - max(ends)
