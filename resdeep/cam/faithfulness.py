"""Does a map point at what the model uses? Perturb the image in the map's order and watch the
explained class's probability.

- Deletion (Petsiuk et al., BMVC 2018, RISE): remove a growing fraction of pixels, most relevant
  first, replacing them by the deletion canvas (0 in normalised units: the data set's mean
  colour, as the RISE code does); the area under the probability curve is lower for a better map.
- Insertion: start from a blurred copy of the image and reveal its pixels in the map's order;
  the area is higher for a better map.
  Both curves have `steps` + 1 points at fractions 0, 1/steps, ..., 1 of the pixels, the area by
  the trapezoid rule over the fractions actually removed. Pixels of equal relevance (a ReLU'd map
  is flat where it is zero) are taken in a seeded random order, not in raster order.
- ROAD (Rong et al., ICML 2022): remove a fraction of the most relevant (MoRF, lower is better)
  or least relevant (LeRF, higher is better) pixels and fill them by noisy linear imputation, so
  the removed region's shape does not leak the class; the scores are the explained class's
  probability after removal. As many pixels are removed as pytorch-grad-cam's
  `ROADMostRelevantFirst` / `ROADLeastRelevantFirst` remove from a map without ties, ties again
  in a seeded random order, and the combined score is its `ROADCombined`: the mean over
  fractions of (LeRF - MoRF) / 2 (its own MoRF and LeRF are changes from the unperturbed
  probability, which cancel in the combination).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torchvision.transforms.v2.functional import gaussian_blur

from resdeep.cam.imputation import DEFAULT_NOISE, noisy_linear_imputation
from resdeep.models import evaluation_mode

ROAD_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # pytorch-grad-cam's percentiles
BLUR_SIGMA = 1 / 8  # the insertion canvas's blur, as a fraction of the image side


@dataclass(frozen=True)
class Canvases:
    """What removed pixels become (deletion) and where revealed pixels are pasted (insertion)."""

    deletion: torch.Tensor  # (N, C, H, W)
    insertion: torch.Tensor  # (N, C, H, W), the blurred images
    blur_sigma: float  # pixels
    blur_kernel: int  # pixels

    def describe(self) -> dict:
        return {
            "deletion": "0 in normalised units (the data set's mean colour), as RISE's code",
            "insertion": f"the image blurred by a Gaussian of sigma {self.blur_sigma:g} px "
            f"({self.blur_kernel} px kernel, reflected border)",
        }


def canvases(x: torch.Tensor) -> Canvases:
    """The two canvases of preprocessed images x (N, C, H, W)."""
    sigma = BLUR_SIGMA * min(x.shape[-2:])
    kernel = min(2 * math.ceil(3 * sigma) + 1, _largest_odd_below(2 * min(x.shape[-2:])))
    blurred = gaussian_blur(x, kernel_size=[kernel, kernel], sigma=[sigma, sigma])
    return Canvases(torch.zeros_like(x), blurred, sigma, kernel)


def _largest_odd_below(limit: int) -> int:
    return limit - 1 if limit % 2 == 0 else limit - 2


def relevance_ranks(maps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N, H, W) maps -> (N, P) each pixel's place in most-relevant-first order (0 = first);
    ties in a random order drawn from `generator`."""
    values = maps.flatten(1).cpu()
    count, pixels = values.shape
    shuffled = torch.argsort(torch.rand(count, pixels, generator=generator), dim=1)
    order = shuffled.gather(
        1, torch.argsort(values.gather(1, shuffled), dim=1, descending=True, stable=True)
    )
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(pixels).expand(count, pixels).contiguous())
    return ranks


def step_counts(pixels: int, steps: int) -> list[int]:
    """Pixels removed (or revealed) at each of the steps + 1 points."""
    return [round(pixels * step / steps) for step in range(steps + 1)]


def target_probabilities(
    model: nn.Module, x: torch.Tensor, targets: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Softmax probability of each image's target class: (N,) on the CPU."""
    probabilities = []
    device = next(model.parameters()).device
    with torch.no_grad(), evaluation_mode(model):
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size].to(device))
            chosen = targets[start : start + batch_size].to(device)[:, None]
            probabilities.append(logits.softmax(dim=1).gather(1, chosen)[:, 0].cpu())
    return torch.cat(probabilities)


def perturbation_curve(
    model: nn.Module,
    x: torch.Tensor,
    start: torch.Tensor,
    ranks: torch.Tensor,
    targets: torch.Tensor,
    counts: list[int],
    batch_size: int,
) -> torch.Tensor:
    """Probability of each target as the first `counts[k]` pixels in rank order are taken from x
    and the rest from `start`: (N, len(counts)).

    Deletion: x the deletion canvas, start the image (the first pixels become the canvas);
    insertion: x the image, start the blurred canvas.
    """
    height, width = x.shape[-2:]
    columns = []
    for count in counts:
        chosen = (ranks < count).view(-1, 1, height, width).to(x.device)  # (N, 1, H, W)
        columns.append(
            target_probabilities(model, torch.where(chosen, x, start), targets, batch_size)
        )
    return torch.stack(columns, dim=1)


def area(curve: torch.Tensor, counts: list[int], pixels: int) -> torch.Tensor:
    """Trapezoid area of (N, K) curves over the fractions counts / pixels -> (N,)."""
    fractions = torch.tensor(counts, dtype=torch.float64) / pixels
    return torch.trapezoid(curve.double(), fractions, dim=1).float()


def road_removed_count(pixels: int, fraction: float) -> int:
    """How many pixels ROAD removes for `fraction`: as many as pytorch-grad-cam's percentile rule
    removes from a map without ties (it keeps the pixels below the (1 - fraction) quantile, i.e.
    ceil((1 - fraction) * (pixels - 1)) of them), so the two agree exactly on such maps."""
    kept = math.ceil(round((1 - fraction) * (pixels - 1), 9))
    return pixels - kept


def road_keep(ranks: torch.Tensor, fraction: float, most_relevant_first: bool) -> torch.Tensor:
    """(N, P) bool: the pixels ROAD keeps when `fraction` of them is removed, the most relevant
    (MoRF) or the least relevant (LeRF) by `ranks`. Counting ranks, not thresholding the map,
    removes the same number of pixels from every map: a ReLU'd map that is 0 over half the image
    would otherwise lose that whole half at once."""
    pixels = ranks.shape[1]
    removed = road_removed_count(pixels, fraction)
    if most_relevant_first:
        return ranks >= removed
    return ranks < pixels - removed


def road_scores(
    model: nn.Module,
    x: torch.Tensor,
    ranks: torch.Tensor,
    targets: torch.Tensor,
    *,
    most_relevant_first: bool,
    fractions: tuple[float, ...],
    generator: torch.Generator,
    noise: float = DEFAULT_NOISE,
    batch_size: int,
) -> torch.Tensor:
    """Target probability after removing each fraction by ROAD, pixels ordered by `ranks` (N, P)
    from relevance_ranks: (N, len(fractions))."""
    height, width = x.shape[-2:]
    columns = []
    for fraction in fractions:
        keep = road_keep(ranks, fraction, most_relevant_first).view(-1, height, width)
        imputed = noisy_linear_imputation(x, keep.to(x.device), generator, noise)
        columns.append(target_probabilities(model, imputed, targets, batch_size))
    return torch.stack(columns, dim=1)


@dataclass
class MapScores:
    """One map set's faithfulness, per image."""

    deletion: torch.Tensor  # (N, steps + 1) probabilities
    insertion: torch.Tensor  # (N, steps + 1)
    deletion_area: torch.Tensor  # (N,)
    insertion_area: torch.Tensor  # (N,)
    road_morf: torch.Tensor | None = None  # (N, fractions)
    road_lerf: torch.Tensor | None = None

    @property
    def road_combined(self) -> torch.Tensor | None:
        """(N,) mean over fractions of (LeRF - MoRF) / 2, pytorch-grad-cam's ROADCombined."""
        if self.road_morf is None or self.road_lerf is None:
            return None
        return ((self.road_lerf - self.road_morf) / 2).mean(dim=1)

    def per_image(self) -> dict[str, np.ndarray]:
        """Every per-image score, higher or lower being better as SCORES says."""
        scores = {
            "deletion_area": self.deletion_area.numpy(),
            "insertion_area": self.insertion_area.numpy(),
        }
        if self.road_morf is not None and self.road_lerf is not None:
            scores["road_morf"] = self.road_morf.mean(dim=1).numpy()
            scores["road_lerf"] = self.road_lerf.mean(dim=1).numpy()
            scores["road_combined"] = self.road_combined.numpy()
        return scores


# Each score and whether a higher value means a more faithful map.
SCORES = {
    "deletion_area": False,
    "insertion_area": True,
    "road_morf": False,
    "road_lerf": True,
    "road_combined": True,
}
SCORE_LABELS = {
    "deletion_area": "deletion area ↓",
    "insertion_area": "insertion area ↑",
    "road_morf": "ROAD MoRF ↓",
    "road_lerf": "ROAD LeRF ↑",
    "road_combined": "ROAD combined ↑",
}


def score_maps(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    targets: torch.Tensor,
    canvas: Canvases,
    *,
    steps: int,
    road: bool,
    order_seed: int,
    noise_seed: int,
    batch_size: int,
    ends: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> MapScores:
    """Deletion, insertion (and ROAD) of one map set (N, H, W) in [0, 1].

    order_seed: the random order of pixels of equal relevance; noise_seed: ROAD's imputation
        noise. Streams of their own, so neither repeats the random baseline maps' draws.
    ends: the target probabilities on the images, the deletion canvas and the insertion canvas,
        which every map set shares (the curves' first and last points), computed once.
    """
    on_image, on_deletion_canvas, on_insertion_canvas = ends
    pixels = maps[0].numel()
    counts = step_counts(pixels, steps)
    ranks = relevance_ranks(maps, torch.Generator().manual_seed(order_seed))
    inner = counts[1:-1]
    deleted = perturbation_curve(model, canvas.deletion, x, ranks, targets, inner, batch_size)
    inserted = perturbation_curve(model, x, canvas.insertion, ranks, targets, inner, batch_size)
    deletion = torch.cat([on_image[:, None], deleted, on_deletion_canvas[:, None]], dim=1)
    insertion = torch.cat([on_insertion_canvas[:, None], inserted, on_image[:, None]], dim=1)
    scores = MapScores(
        deletion, insertion, area(deletion, counts, pixels), area(insertion, counts, pixels)
    )
    if road:
        generator = torch.Generator().manual_seed(noise_seed)
        for most_relevant_first in (True, False):
            values = road_scores(
                model, x, ranks, targets, most_relevant_first=most_relevant_first,
                fractions=ROAD_FRACTIONS, generator=generator, batch_size=batch_size,
            )  # fmt: skip
            if most_relevant_first:
                scores.road_morf = values
            else:
                scores.road_lerf = values
    return scores
