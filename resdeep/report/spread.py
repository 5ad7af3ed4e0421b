"""One number over several seeds: mean, spread, and when two such numbers differ.

A study with one seed can "show" anything, so a report only calls one configuration worse than
another when the difference exceeds the seed spread: the two 95 % confidence intervals of the
mean (Student's t, n - 1 degrees of freedom) must not overlap. That is stricter than a t-test at
5 %, on purpose: with three seeds a finding should survive a fourth.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Verdict = Literal["higher", "lower", "unclear"]


@dataclass(frozen=True)
class Spread:
    """Mean and sample standard deviation of the finite values among a group's seeds."""

    mean: float | None
    std: float | None  # None with fewer than two values: one seed has no spread
    n: int

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Spread:
        finite = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not finite:
            return cls(None, None, 0)
        std = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
        return cls(float(np.mean(finite)), std, len(finite))

    @classmethod
    def from_json(cls, entry: dict | None) -> Spread:
        """A {mean, std, n} entry (`vars(spread)`, as the studies' JSON files hold it) back as a
        Spread; a missing entry is one with no values."""
        if not entry:
            return cls(None, None, 0)
        return cls(entry["mean"], entry["std"], entry["n"])

    def interval(self) -> tuple[float, float] | None:
        """The 95 % confidence interval of the mean, or None for fewer than two values."""
        if self.mean is None or self.std is None:
            return None
        from scipy.stats import t

        half = float(t.ppf(0.975, self.n - 1)) * self.std / math.sqrt(self.n)
        return self.mean - half, self.mean + half


def compare(a: Spread, b: Spread) -> Verdict | None:
    """Is `a` higher or lower than `b` beyond the seed spread? None when either is missing.

    With a single seed on either side there is no spread to exceed: the direction of the means
    is returned, and the caller labels it as a single-seed result.
    """
    if a.mean is None or b.mean is None:
        return None
    a_interval, b_interval = a.interval(), b.interval()
    if a_interval is None or b_interval is None:
        if a.mean == b.mean:
            return "unclear"
        return "higher" if a.mean > b.mean else "lower"
    if a_interval[0] > b_interval[1]:
        return "higher"
    if a_interval[1] < b_interval[0]:
        return "lower"
    return "unclear"


def single_seed(*spreads: Spread) -> bool:
    return any(spread.n == 1 for spread in spreads)


def format_points(spread: Spread, *, unit: bool = True) -> str:
    """A loss of accuracy (fractions of 1) in percentage points: "0.4 ± 0.2 points"."""
    if spread.mean is None:
        return "-"
    text = f"{100 * spread.mean:.1f}" + (
        f" ± {100 * spread.std:.1f}" if spread.std is not None else ""
    )
    return text + (" points" if unit else "")


def format_spread(spread: Spread, *, percent: bool = False) -> str:
    """ "76.0 ± 1.2 %" or "1.99 ± 0.021"; a single value without the ±; "-" for none."""
    if spread.mean is None:
        return "-"
    if percent:
        text = f"{100 * spread.mean:.1f}"
        return text + (f" ± {100 * spread.std:.1f} %" if spread.std is not None else " %")
    text = f"{spread.mean:#.3g}"
    return text + (f" ± {spread.std:.2g}" if spread.std is not None else "")
