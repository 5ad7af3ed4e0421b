"""What `resdeep cam` offers, importable without torch (so `--help` stays quick): the methods,
the default box threshold and colormap, and how a non-square image becomes a square input."""

from __future__ import annotations

METHODS: tuple[str, ...] = ("cam", "gradcam", "gradcam++", "scorecam")
DEFAULT_THRESHOLD = 0.2  # of the map's maximum: the CAM paper's value
DEFAULT_COLORMAP = "jet"  # the CAM and Grad-CAM papers' figures, so overlays read the same way
# The net's square input from an image: its centre square (default: a landscape photo is not
# squashed), the whole image squashed, or the whole image padded with black.
CROPS: tuple[str, ...] = ("center", "none", "pad")
