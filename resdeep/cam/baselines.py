"""Maps that explain nothing, scored like the methods' maps so their scores have a floor.

Deletion, insertion and ROAD reward blurry maps whatever they contain (Song et al. 2023), and
resdeep's maps are upsampled from 8x8 (2x2 on 8x8 digits), so a method's score means something
only against maps of the same smoothness that know nothing about the model:

- random: uniform noise per pixel, at the input's resolution;
- blurred random: uniform noise at the method's own map resolution, upsampled bilinearly as the
  method's maps are, so it is exactly as smooth;
- centred Gaussian: the prior that objects sit in the middle;
- Sobel edges: a map computed from the image alone. It cannot change when the model is
  randomised, so in the sanity checks it shows what failing looks like.

Every function returns (N, H, W) maps in [0, 1], as `upsample_maps` gives the methods'.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from resdeep.cam.methods import normalize_maps, upsample_maps

BASELINES = ("random", "blurred random", "centred Gaussian", "Sobel edges")

# The centred Gaussian's standard deviation, as a fraction of the image side: about the size of
# a digit on the digits_placed canvas (12-20 px on 32).
CENTRED_SIGMA = 0.25


def random_maps(count: int, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """Uniform noise per pixel: (count, H, W)."""
    return normalize_maps(torch.rand(count, *size, generator=generator))


def blurred_random_maps(
    count: int, low: tuple[int, int], size: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """Uniform noise at the methods' map resolution `low`, upsampled to `size` as their maps are."""
    return upsample_maps(torch.rand(count, *low, generator=generator), size)


def centred_gaussian_maps(count: int, size: tuple[int, int]) -> torch.Tensor:
    """One Gaussian bump in the image centre, std CENTRED_SIGMA of each side: (count, H, W)."""
    height, width = size
    rows = (torch.arange(height) + 0.5 - height / 2) / (CENTRED_SIGMA * height)
    cols = (torch.arange(width) + 0.5 - width / 2) / (CENTRED_SIGMA * width)
    bump = torch.exp(-0.5 * (rows[:, None] ** 2 + cols[None, :] ** 2))
    return normalize_maps(bump.expand(count, height, width).clone())


def sobel_maps(images: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of the channel-mean image, by the 3x3 Sobel filters (replicated
    border): images (N, C, H, W), any scale -> (N, H, W)."""
    grey = images.float().mean(dim=1, keepdim=True)  # (N, 1, H, W)
    dx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    kernels = torch.stack([dx, dx.T])[:, None].to(grey.device)  # (2, 1, 3, 3)
    gradients = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)  # (N, 2, H, W)
    return normalize_maps(gradients.pow(2).sum(dim=1).sqrt())


def baseline_maps(
    images: torch.Tensor, low: tuple[int, int], generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Every baseline for a batch of images (N, C, H, W), keyed by its name in BASELINES; the
    random ones drawn from `generator` (on the CPU, so a seed gives the same maps everywhere)."""
    count, size = len(images), tuple(images.shape[-2:])
    return {
        "random": random_maps(count, size, generator),
        "blurred random": blurred_random_maps(count, low, size, generator),
        "centred Gaussian": centred_gaussian_maps(count, size),
        "Sobel edges": sobel_maps(images.cpu()),
    }
