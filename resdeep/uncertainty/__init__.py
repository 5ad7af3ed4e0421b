"""Uncertainty of saved checkpoints: MC dropout, temperature scaling and deep ensembles as
methods of one shape (resdeep.uncertainty.methods), their metrics, reports and plots."""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: the metrics import torchmetrics (and torchvision, seconds on CPU), which
# `resdeep uncertainty`'s refusals and the tools that only read data or sample never need.
_HOME = {
    "evaluate_dataset": "resdeep.uncertainty.evaluate",
    "evaluate_images": "resdeep.uncertainty.evaluate",
    "summarize_dataset": "resdeep.uncertainty.evaluate",
    "UncertaintyMethod": "resdeep.uncertainty.methods",
    "Predictions": "resdeep.uncertainty.sampling",
    "mc_predict": "resdeep.uncertainty.sampling",
    "require_dropout": "resdeep.uncertainty.sampling",
}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'resdeep.uncertainty' has no attribute {name!r}")
