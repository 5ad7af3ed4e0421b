"""resdeep: plain vs residual networks, per-layer gradient norms, and tools for checkpoints."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["CheckpointInfo", "load_checkpoint", "load_image"]


def __getattr__(name: str) -> Any:
    # Heavier helpers load on first use, so `import resdeep` stays quick.
    if name in ("CheckpointInfo", "load_checkpoint"):
        from resdeep import checkpoint

        return getattr(checkpoint, name)
    if name == "load_image":
        from resdeep.images import load_image

        return load_image
    if name in ("cam", "uncertainty", "report", "models", "data"):
        return importlib.import_module(f"resdeep.{name}")
    raise AttributeError(f"module 'resdeep' has no attribute {name!r}")
