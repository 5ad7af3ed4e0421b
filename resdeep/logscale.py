"""log10 of norms and signals that can be exactly zero, the same way in every picture: zeros at
1e-30 (far below anything a live layer has), NaN (not measured) and inf (diverged) as they are."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ZERO_AT = 1e-30


def log10(values: Sequence[float] | np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        array = np.asarray(values, dtype=float)
        return np.log10(np.where(array == 0, ZERO_AT, array))
