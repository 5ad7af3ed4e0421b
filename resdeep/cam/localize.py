"""Weakly supervised localisation from a map (Zhou et al. 2016, section 3.1): keep the pixels
above a fraction of the map's maximum, take the largest connected region, and box it.

Boxes are (x0, y0, x1, y1) in pixels with x1, y1 exclusive, as the data sets store them.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from resdeep.cam.defaults import DEFAULT_THRESHOLD

IOU_HIT = 0.5  # a box counts as a correct localisation at this IoU with the true box

# 8-connectivity: pixels touching at a corner belong to the same region, as a traced contour
# (the usual OpenCV implementation of this protocol) would have them.
_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def largest_component_box(
    heatmap: torch.Tensor | np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> tuple[int, int, int, int] | None:
    """Box around the largest connected region of `heatmap` (H, W) at or above threshold * max.

    None when the map has no positive value, so there is nothing to box.
    """
    values = heatmap.detach().cpu().numpy() if isinstance(heatmap, torch.Tensor) else heatmap
    peak = float(values.max()) if values.size else 0.0
    if peak <= 0.0:
        return None
    labels, count = ndimage.label(values >= threshold * peak, structure=_EIGHT_NEIGHBOURS)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]  # label 0 is the background
    largest = int(sizes.argmax()) + 1
    rows, cols = np.nonzero(labels == largest)
    return int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1


def boxes_from_maps(
    heatmaps: torch.Tensor, threshold: float = DEFAULT_THRESHOLD
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes of a (B, H, W) batch: (B, 4) float boxes and a (B,) mask of the maps that had one
    (rows without a box are zeros)."""
    boxes = torch.zeros(len(heatmaps), 4)
    found = torch.zeros(len(heatmaps), dtype=torch.bool)
    for index, heatmap in enumerate(heatmaps.detach().cpu().numpy()):
        box = largest_component_box(heatmap, threshold)
        if box is not None:
            boxes[index] = torch.tensor(box, dtype=torch.float32)
            found[index] = True
    return boxes, found


def box_iou(boxes: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Intersection over union of matching rows of two (N, 4) box tensors -> (N,)."""
    boxes, others = boxes.float(), others.float()
    left = torch.maximum(boxes[:, 0], others[:, 0])
    top = torch.maximum(boxes[:, 1], others[:, 1])
    right = torch.minimum(boxes[:, 2], others[:, 2])
    bottom = torch.minimum(boxes[:, 3], others[:, 3])
    intersection = (right - left).clamp_min(0) * (bottom - top).clamp_min(0)
    union = _area(boxes) + _area(others) - intersection
    return torch.where(union > 0, intersection / union.clamp_min(1e-12), 0.0)


def centred_box(width: float, height: float, image_width: int, image_height: int) -> torch.Tensor:
    """A width x height box in the middle of the image, clipped to it: (4,) float."""
    x0, y0 = (image_width - width) / 2, (image_height - height) / 2
    box = torch.tensor([x0, y0, x0 + width, y0 + height], dtype=torch.float32)
    limits = torch.tensor([image_width, image_height, image_width, image_height])
    return torch.minimum(box.clamp_min(0.0), limits.float())


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0)
