"""Overlays: the original image with a map blended on top in a matplotlib colormap."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.colors import Colormap
from PIL import Image

from resdeep.cam.defaults import DEFAULT_COLORMAP
from resdeep.errors import ResdeepError, UsageError


@contextmanager
def writing_to(path: Path) -> Iterator[None]:
    """A failed write (full disk, read-only mount) as one line naming the file."""
    try:
        yield
    except OSError as error:
        raise ResdeepError(f"cannot write {path}: {error.strerror or error}") from error


def make_folder(folder: Path) -> None:
    with writing_to(folder):
        folder.mkdir(parents=True, exist_ok=True)


def get_colormap(name: str) -> Colormap:
    try:
        return matplotlib.colormaps[name]
    except KeyError as error:
        raise UsageError(
            f"unknown colormap {name!r}; any matplotlib colormap works, e.g. jet, viridis, inferno"
        ) from error


def overlay(
    image: Image.Image,
    heatmap: np.ndarray,
    alpha: float = 0.5,
    colormap: str = DEFAULT_COLORMAP,
    region: tuple[slice, slice] | None = None,
) -> Image.Image:
    """RGB image: (1 - alpha) * image + alpha * colormap(heatmap) inside `region` (the part the
    net saw; default all of it); outside, the image dimmed to half, without colour.

    heatmap: (H, W) values in [0, 1] at the image's size (PIL's size is (W, H)).
    """
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"alpha must be in [0, 1], got {alpha}")
    if heatmap.shape != (image.height, image.width):
        raise ValueError(f"heatmap {heatmap.shape} does not match image {image.size[::-1]}")
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
    colours = get_colormap(colormap)(np.clip(heatmap, 0.0, 1.0))[..., :3]  # (H, W, 3), RGBA -> RGB
    blended = (1.0 - alpha) * base + alpha * colours
    if region is not None:
        outside = 0.5 * base
        outside[region] = blended[region]
        blended = outside
    return Image.fromarray(np.round(blended * 255.0).astype(np.uint8))


def save_overlay(
    path: Path,
    image: Image.Image,
    heatmap: np.ndarray,
    alpha: float = 0.5,
    colormap: str = DEFAULT_COLORMAP,
    region: tuple[slice, slice] | None = None,
) -> Path:
    picture = overlay(image, heatmap, alpha, colormap, region)
    with writing_to(path):
        picture.save(path, format="PNG")
    return path


def save_panel(
    path: Path,
    seen: Image.Image,
    heatmap: np.ndarray,
    *,
    title: str,
    input_title: str = "input",
    alpha: float = 0.5,
    colormap: str = DEFAULT_COLORMAP,
) -> Path:
    """input | map (with its colour bar) | overlay, side by side, of the part the net saw."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(10.5, 3.8), layout="constrained")
    try:
        axes[0].imshow(seen.convert("RGB"))
        axes[0].set_title(input_title, fontsize=9)
        shown = axes[1].imshow(heatmap, cmap=get_colormap(colormap), vmin=0.0, vmax=1.0)
        axes[1].set_title("map")
        figure.colorbar(shown, ax=axes[1], fraction=0.046, pad=0.04)
        axes[2].imshow(overlay(seen, heatmap, alpha, colormap))
        axes[2].set_title("overlay")
        for axis in axes:
            axis.set_axis_off()
        figure.suptitle(title, fontsize=10)
        with writing_to(path):
            figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)
    return path


@dataclass(frozen=True)
class GridCell:
    overlay: Path
    caption: str


def save_grid(
    path: Path, rows: list[tuple[str, list[GridCell]]], columns: list[str], title: str
) -> Path:
    """Every input (a row) by every method or class (a column), each cell an overlay."""
    import matplotlib.pyplot as plt

    cell = 2.4
    figure, axes = plt.subplots(
        len(rows),
        len(columns),
        figsize=(cell * len(columns) + 0.4, cell * len(rows) + 0.6),
        squeeze=False,
        layout="constrained",
    )
    try:
        for row, (label, cells) in enumerate(rows):
            for column, grid_cell in enumerate(cells):
                axis = axes[row][column]
                with Image.open(grid_cell.overlay) as picture:
                    axis.imshow(picture.convert("RGB"))
                axis.set_xticks([])
                axis.set_yticks([])
                axis.set_xlabel(grid_cell.caption, fontsize=8)
                if row == 0:
                    axis.set_title(columns[column], fontsize=10)
                if column == 0:
                    axis.set_ylabel(label, fontsize=8)
        figure.suptitle(title, fontsize=11)
        make_folder(path.parent)  # as --out and --json make theirs
        with writing_to(path):
            figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)
    return path
