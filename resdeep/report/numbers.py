"""Numbers as the report's sentences write them: ratios, tiny and huge values, and ranges over
seeds."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence


def times(ratio: float) -> str:
    if not math.isfinite(ratio):
        return f"{ratio}"
    if 100 <= ratio < 1e4:
        return f"{ratio:,.0f}×"
    return f"{ratio:.2g}×" if 0.01 <= ratio < 100 else f"{sci(ratio)}×"


def sci(value: float) -> str:
    """1.2e-14 for the tiny and huge, 0.0523 for the ordinary, 2,196 for the hundreds and
    thousands."""
    if not math.isfinite(value):
        return f"{value}"
    if 100 <= abs(value) < 1e4:
        return f"{value:,.0f}"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def times_range(ratios: Sequence[float | None]) -> str:
    return _range([v for v in ratios if v is not None], times)


def sci_range(values: Sequence[float]) -> str:
    return _range(values, sci)


def _range(values: Sequence[float], text: Callable[[float], str]) -> str:
    """ "low to high" over the finite values, with the others counted: a diverged seed's NaN
    is said, not hidden."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "not finite"
    low, high = text(min(finite)), text(max(finite))
    shown = low if low == high else f"{low} to {high}"
    others = len(values) - len(finite)
    return shown + (f" ({others} not finite)" if others else "")
