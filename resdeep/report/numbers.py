"""Numbers as the report's sentences write them: ratios, tiny and huge values, and ranges over
seeds."""

from __future__ import annotations

from collections.abc import Sequence


def times(ratio: float) -> str:
    if 100 <= ratio < 1e4:
        return f"{ratio:,.0f}×"
    return f"{ratio:.2g}×" if 0.01 <= ratio < 100 else f"{sci(ratio)}×"


def sci(value: float) -> str:
    """1.2e-14 for the tiny and huge, 0.0523 for the ordinary."""
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def times_range(ratios: Sequence[float | None]) -> str:
    values = [v for v in ratios if v is not None]
    low, high = min(values), max(values)
    return times(low) if times(low) == times(high) else f"{times(low)} to {times(high)}"


def sci_range(values: Sequence[float]) -> str:
    low, high = sci(min(values)), sci(max(values))
    return low if low == high else f"{low} to {high}"
