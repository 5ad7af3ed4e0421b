"""What `resdeep cam` offers, importable without torch (so `--help` stays quick): its methods
and crops (resdeep.choices), the default box threshold and colormap."""

from __future__ import annotations

from resdeep.choices import CAM_METHODS as METHODS
from resdeep.choices import CROPS

__all__ = ["CROPS", "DEFAULT_COLORMAP", "DEFAULT_THRESHOLD", "METHODS"]

DEFAULT_THRESHOLD = 0.2  # of the map's maximum: the CAM paper's value
DEFAULT_COLORMAP = "jet"  # the CAM and Grad-CAM papers' figures, so overlays read the same way
