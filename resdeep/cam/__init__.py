"""Class activation maps from saved checkpoints, and how well they localise.

`compute_cam` is the notebook API; `resdeep.cam.evaluate` (the benchmark), `resdeep.cam.render`
(overlays) and `resdeep.cam.localize` (boxes) are imported where they are used.
"""

from __future__ import annotations

from typing import Any

from resdeep.choices import CAM_METHODS as METHODS  # the notebook API's name

__all__ = ["METHODS", "CamOutput", "class_activation_maps", "compute_cam"]


def __getattr__(name: str) -> Any:
    # torch loads on first use, so the command line's help needs none of it.
    if name in ("CamOutput", "class_activation_maps", "compute_cam"):
        from resdeep.cam import api

        return getattr(api, name)
    raise AttributeError(f"module 'resdeep.cam' has no attribute {name!r}")
