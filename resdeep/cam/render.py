"""Overlays: the original image with a map blended on top in a matplotlib colormap."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import Colormap
from PIL import Image

from resdeep.errors import UsageError

DEFAULT_COLORMAP = "jet"  # the CAM and Grad-CAM papers' figures, so overlays read the same way


def get_colormap(name: str) -> Colormap:
    try:
        return matplotlib.colormaps[name]
    except KeyError as error:
        raise UsageError(
            f"unknown colormap {name!r}; any matplotlib colormap works, e.g. jet, viridis, inferno"
        ) from error


def overlay(
    image: Image.Image, heatmap: np.ndarray, alpha: float = 0.5, colormap: str = DEFAULT_COLORMAP
) -> Image.Image:
    """RGB image: (1 - alpha) * image + alpha * colormap(heatmap).

    heatmap: (H, W) values in [0, 1] at the image's size (PIL's size is (W, H)).
    """
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha must be in [0, 1], got {alpha}")
    if heatmap.shape != (image.height, image.width):
        raise ValueError(f"heatmap {heatmap.shape} does not match image {image.size[::-1]}")
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    colours = get_colormap(colormap)(np.clip(heatmap, 0.0, 1.0))[..., :3]  # (H, W, 3), RGBA -> RGB
    blended = (1.0 - alpha) * base + alpha * colours
    return Image.fromarray(np.round(blended * 255.0).astype(np.uint8))


def save_overlay(
    path: Path,
    image: Image.Image,
    heatmap: np.ndarray,
    alpha: float = 0.5,
    colormap: str = DEFAULT_COLORMAP,
) -> Path:
    overlay(image, heatmap, alpha, colormap).save(path, format="PNG")
    return path
