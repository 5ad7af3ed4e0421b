"""`resdeep cam`'s defaults, importable without torch (so `--help` stays quick). Its choices
(methods, crops) live with every other choice in resdeep.choices."""

from __future__ import annotations

from pathlib import Path

DEFAULT_OUT = Path("runs/cams")  # runs/ holds every output and is out of git
DEFAULT_THRESHOLD = 0.2  # of the map's maximum: the CAM paper's value
DEFAULT_COLORMAP = "jet"  # the CAM and Grad-CAM papers' figures, so overlays read the same way
DEFAULT_STEPS = 20  # --faithfulness: points of each deletion/insertion curve, as RISE plots them
