"""Noisy linear imputation (Rong et al., ICML 2022, "A consistent and efficient evaluation
strategy for attribution methods"): removed pixels are filled from their neighbours so the
shape of the removed region does not tell the classifier the class.

Each removed pixel becomes the weighted mean of its eight neighbours (1/6 for the four sharing
an edge, 1/12 for the corners, the weights of the authors' code, which pytorch-grad-cam ships),
neighbours that are removed too being unknowns of the same linear system; then Gaussian noise of
std `noise` is added to the filled pixels. The authors solve one sparse system per image; here
one block-diagonal system per batch of images goes to SuperLU at once, which gives the same
solution without the per-image set-up.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

# ((row offset, column offset), weight): the authors' neighbour weights, summing to 1.
NEIGHBOUR_WEIGHTS = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)
DEFAULT_NOISE = 0.01  # the authors' default, in the units of the images given (normalised)

# Images per solved system: larger systems cost more in fill-in than they save in set-up.
IMAGES_PER_SYSTEM = 64


def linear_imputation(images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The removed pixels (keep False) of images (B, C, H, W) filled by the linear system;
    keep: (B, H, W) bool. Returns float32 on the images' device.

    An image with no pixel kept has nothing to fill from: it becomes 0 everywhere (the data
    set's mean colour, for normalised images).
    """
    nothing_kept = ~keep.flatten(1).any(dim=1)
    if nothing_kept.any():
        images = images.clone()
        images[nothing_kept] = 0.0
        keep = keep.clone()
        keep[nothing_kept] = True
    filled = [
        _solve(images[start : start + IMAGES_PER_SYSTEM], keep[start : start + IMAGES_PER_SYSTEM])
        for start in range(0, len(images), IMAGES_PER_SYSTEM)
    ]
    return torch.cat(filled).to(images.device)


def noisy_linear_imputation(
    images: torch.Tensor, keep: torch.Tensor, generator: torch.Generator, noise: float
) -> torch.Tensor:
    """linear_imputation, then N(0, noise^2) added to every filled pixel (drawn on the CPU from
    `generator`, so a seed gives the same images on every device)."""
    filled = linear_imputation(images, keep)
    shape = filled.shape
    jitter = noise * torch.randn(shape, generator=generator).to(filled.device)
    removed = ~keep[:, None].expand(shape).to(filled.device)
    return torch.where(removed, filled + jitter, filled)


def _solve(images: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    batch, channels, height, width = images.shape
    pixels = images.detach().permute(0, 2, 3, 1).reshape(-1, channels).cpu().double().numpy()
    known = keep.detach().reshape(-1).cpu().numpy()
    missing = np.flatnonzero(~known)
    result = pixels.copy()
    if len(missing) == 0:
        return images.detach().float().cpu()
    unknown = np.full(known.shape, -1)
    unknown[missing] = np.arange(len(missing))
    image, row, col = np.unravel_index(missing, (batch, height, width))
    diagonal = np.zeros(len(missing))
    rhs = np.zeros((len(missing), channels))
    rows, cols, values = [], [], []
    for (row_step, col_step), weight in NEIGHBOUR_WEIGHTS:
        near_row, near_col = row + row_step, col + col_step
        inside = np.flatnonzero(
            (near_row >= 0) & (near_row < height) & (near_col >= 0) & (near_col < width)
        )
        neighbour = np.ravel_multi_index(
            (image[inside], near_row[inside], near_col[inside]), (batch, height, width)
        )
        # Equation of pixel i: sum_j w_j x_j - (sum_j w_j) x_i = 0 over its neighbours j inside
        # the image; known neighbours move to the right-hand side.
        diagonal[inside] -= weight
        is_known = known[neighbour]
        rhs[inside[is_known]] -= weight * pixels[neighbour[is_known]]
        rows.append(inside[~is_known])
        cols.append(unknown[neighbour[~is_known]])
        values.append(np.full(int((~is_known).sum()), weight))
    index = np.arange(len(missing))
    system = coo_matrix(
        (
            np.concatenate([*values, diagonal]),
            (np.concatenate([*rows, index]), np.concatenate([*cols, index])),
        ),
        shape=(len(missing), len(missing)),
    ).tocsc()
    # Raster order is already the grid's band (a pixel couples to pixels at most a row away), so
    # SuperLU needs no reordering: half the time of its default COLAMD on 32x32 images.
    solution = spsolve(system, rhs, permc_spec="NATURAL")
    result[missing] = solution.reshape(len(missing), channels)
    return (
        torch.from_numpy(result).float().reshape(batch, height, width, channels).permute(0, 3, 1, 2)
    )
