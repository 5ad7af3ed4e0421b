"""One method's maps for every evaluated image, in batches: what the sanity checks and the
faithfulness scores compare."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from resdeep.cam.api import class_activation_maps
from resdeep.cam.methods import upsample_maps
from resdeep.models import ConvNet


@dataclass(frozen=True)
class ImageMaps:
    """Maps of N images at the input size, on the CPU."""

    shown: torch.Tensor  # (N, H, W) in [0, 1], as the overlays show them (upsample_maps)
    signed: torch.Tensor  # (N, H, W) before the ReLU, bilinearly upsampled, unscaled
    low: tuple[int, int]  # the method's own resolution (h, w), before upsampling


def maps_of(
    model: ConvNet,
    x: torch.Tensor,
    method: str,
    targets: torch.Tensor,
    *,
    layer: str | None,
    batch_size: int,
) -> ImageMaps:
    """`method`'s maps of preprocessed images x (N, C, H, W) for classes `targets` (N,)."""
    size = tuple(x.shape[-2:])
    shown, signed, low = [], [], None
    for start in range(0, len(x), batch_size):
        output = class_activation_maps(
            model, x[start : start + batch_size], method, targets[start : start + batch_size], layer
        )
        low = tuple(output.signed.shape[-2:])
        upsampled = F.interpolate(
            output.signed[:, None], size=size, mode="bilinear", align_corners=False
        )
        signed.append(upsampled[:, 0].cpu())
        shown.append(upsample_maps(output.maps, size).cpu())
    return ImageMaps(torch.cat(shown), torch.cat(signed), low)
