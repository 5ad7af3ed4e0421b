"""How alike two maps of the same image are, and how sure a mean over images is.

- Spearman rank correlation (Adebayo et al. 2018) of the flattened maps, per image, ties at
  their mean rank: with the signed maps (evidence against the class counts) and with their
  absolute values (only how much a pixel matters). A flat map has no ranks: two flat maps count
  as the same (1), a flat one against another as unrelated (0).
- SSIM (Wang et al. 2004) of the maps as shown, scaled to [0, 1], with a Gaussian window of
  sigma 1.5 (11 px) or smaller on images under 11 px.
- Means over images come with bootstrap 95 % intervals (percentile method over images drawn
  with replacement, seeded); a difference of two maps' scores on the same images is bootstrapped
  as pairs, so the images' own spread does not hide it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy import stats
from torchmetrics.functional.image import structural_similarity_index_measure
from torchmetrics.functional.regression import spearman_corrcoef

CONFIDENCE = 0.95
RESAMPLES = 2000


def rank_correlation(maps: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of matching (N, H, W) maps -> (N,)."""
    a, b = maps.flatten(1).double(), others.flatten(1).double()  # (N, P)
    flat_a = (a == a[:, :1]).all(dim=1)
    flat_b = (b == b[:, :1]).all(dim=1)
    correlation = torch.zeros(len(a), dtype=torch.float64)
    ranked = ~(flat_a | flat_b)
    if ranked.any():
        # torchmetrics correlates columns: (P, n) in, (n,) out.
        values = spearman_corrcoef(a[ranked].T.contiguous(), b[ranked].T.contiguous())
        correlation[ranked] = values.reshape(-1).cpu().double()
    correlation[flat_a & flat_b] = 1.0
    return correlation.float()


def ssim_window(size: tuple[int, int]) -> tuple[int, float]:
    """(kernel size, sigma): the usual 11 px / 1.5 window, shrunk to fit small images."""
    side = min(size)
    kernel = 11 if side >= 11 else (side if side % 2 else side - 1)
    return kernel, 1.5 * kernel / 11


def structural_similarity(maps: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """SSIM of matching (N, H, W) maps in [0, 1] -> (N,)."""
    kernel, sigma = ssim_window(tuple(maps.shape[-2:]))
    values = structural_similarity_index_measure(
        maps[:, None].float().cpu(),
        others[:, None].float().cpu(),
        data_range=1.0,
        kernel_size=kernel,
        sigma=sigma,
        reduction="none",
    )
    return values.reshape(-1)


@dataclass(frozen=True)
class Estimate:
    """A mean over images with its bootstrap interval."""

    mean: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def bootstrap_means(values: torch.Tensor | np.ndarray, seed: int) -> list[Estimate]:
    """Mean and interval of each row of (S, N) values, N images; one row may be given as (N,)."""
    array = np.atleast_2d(np.asarray(values, dtype=np.float64))
    means = array.mean(axis=1)
    if array.shape[1] < 2 or np.all(array == array[:, :1]):
        return [Estimate(float(m), float(m), float(m)) for m in means]
    result = stats.bootstrap(
        (array,),
        np.mean,
        axis=-1,
        vectorized=True,
        n_resamples=RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = (
        np.atleast_1d(result.confidence_interval.low),
        np.atleast_1d(result.confidence_interval.high),
    )
    return [
        Estimate(float(m), float(lo), float(hi)) for m, lo, hi in zip(means, low, high, strict=True)
    ]


def paired_difference(
    values: torch.Tensor | np.ndarray, others: torch.Tensor | np.ndarray, seed: int
) -> Estimate:
    """Mean of values - others over the same images, with its bootstrap interval."""
    difference = np.asarray(values, dtype=np.float64) - np.asarray(others, dtype=np.float64)
    return bootstrap_means(difference, seed)[0]
