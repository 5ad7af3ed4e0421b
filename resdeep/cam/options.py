"""What `resdeep cam` offers, importable without torch (so `--help` stays quick): the methods,
the default box threshold and colormap, how a non-square image becomes a square input, and the
check of an output path that cam and uncertainty run before any work."""

from __future__ import annotations

import os
from pathlib import Path

from resdeep.errors import UsageError

METHODS: tuple[str, ...] = ("cam", "gradcam", "gradcam++", "scorecam")
DEFAULT_THRESHOLD = 0.2  # of the map's maximum: the CAM paper's value
DEFAULT_COLORMAP = "jet"  # the CAM and Grad-CAM papers' figures, so overlays read the same way
# The net's square input from an image: its centre square (default: a landscape photo is not
# squashed), the whole image squashed, or the whole image padded with black.
CROPS: tuple[str, ...] = ("center", "none", "pad")


def check_output_path(path: Path, option: str, *, folder: bool = False) -> None:
    """Refuse an output path that cannot work as typed (exit 2), before minutes of scoring: a
    folder where a file goes or the reverse, a file where a folder would have to be made, or a
    folder nobody may write into. Missing folders are fine: the writers make them."""
    if path.exists():
        if folder and not path.is_dir():
            raise UsageError(f"{option} {path} is a file, not a folder; give a folder")
        if not folder and path.is_dir():
            raise UsageError(f"{option} {path} is a folder; give a file path")
        # A file is replaced by renaming a new one into its folder: the folder must be writable.
        writes_into = path if folder else path.parent
    else:
        writes_into = path.parent
        while not writes_into.exists():
            writes_into = writes_into.parent
        if not writes_into.is_dir():
            raise UsageError(f"{option} {path}: {writes_into} is a file, not a folder")
    if not os.access(writes_into, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write into {writes_into} (permission denied)")
