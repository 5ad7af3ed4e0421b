"""How well do the maps localise, and do they point at what the classifier uses?

- Localisation (Zhou et al. 2016): box the map of the true class; "GT-known" accuracy counts
  boxes with IoU >= 0.5 against the true box, "top-1" also needs the right prediction. A box of
  the data set's mean size in the image centre, scored the same way, is the baseline that gives
  those numbers meaning: a map that beats it found the object, not the middle of the image.
- The box threshold matters as much as the map (Choe et al., CVPR 2020): the paper's 20 % of
  the max suits 14x14 ImageNet maps, and a smaller net's blurrier maps want another. So the
  threshold that localises best on the validation split is also reported, with its test score;
  the test split never chooses anything.
- Average Drop and Increase in Confidence (Chattopadhay et al. 2018): the predicted class's
  probability on the image multiplied pixel-wise by its map, against the full image. A good map
  keeps what the classifier needs, so the drop is small; no boxes needed, so any data set works.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from resdeep.cam.api import class_activation_maps
from resdeep.cam.localize import (
    DEFAULT_THRESHOLD,
    IOU_HIT,
    box_iou,
    boxes_from_maps,
    centred_box,
)
from resdeep.cam.methods import upsample_maps
from resdeep.data import Split, normalize
from resdeep.errors import ResdeepError
from resdeep.models import ConvNet, evaluation_mode

# Thresholds the validation split chooses from: 0.05, 0.10, ..., 0.95.
THRESHOLD_GRID = tuple(round(0.05 * step, 2) for step in range(1, 20))


@dataclass
class CamBenchmark:
    images: int
    top1_acc: float  # classification accuracy, for reading the top-1 localisation number
    average_drop: float  # percent, lower is better
    increase_in_confidence: float  # percent of images, higher is better
    threshold: float  # box threshold, a fraction of the map's max
    # Localisation: None when the split has no boxes.
    gt_known_loc_acc: float | None = None
    top1_loc_acc: float | None = None
    mean_iou: float | None = None
    baseline_gt_known_loc_acc: float | None = None
    baseline_top1_loc_acc: float | None = None
    baseline_mean_iou: float | None = None
    baseline_box: tuple[float, float] | None = None  # (width, height) of the centred box
    # The threshold chosen on the validation split's boxes, and the test scores at it.
    val_threshold: float | None = None
    val_threshold_gt_known_loc_acc: float | None = None
    val_threshold_top1_loc_acc: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SplitScores:
    """Per-image results of one split; `ious` only when the split has boxes."""

    correct: torch.Tensor  # (N,) bool, the prediction is right
    full_scores: torch.Tensor  # (N,) predicted-class probability on the image
    explained_scores: torch.Tensor  # (N,) the same on image * map
    ious: torch.Tensor | None  # (N, T) IoU of the box at each threshold with the true box


def average_drop(full_scores: torch.Tensor, explained_scores: torch.Tensor) -> float:
    """100 * mean(max(0, Y - O) / Y): Y the class probability on the image, O on image * map."""
    drop = (full_scores - explained_scores).clamp_min(0.0) / full_scores.clamp_min(1e-12)
    return 100.0 * drop.mean().item()


def increase_in_confidence(full_scores: torch.Tensor, explained_scores: torch.Tensor) -> float:
    """100 * fraction of images whose class probability rises when only the map is shown."""
    return 100.0 * (explained_scores > full_scores).float().mean().item()


def mean_box_size(boxes: torch.Tensor) -> tuple[float, float]:
    """(mean width, mean height) of (N, 4) boxes."""
    return (
        (boxes[:, 2] - boxes[:, 0]).mean().item(),
        (boxes[:, 3] - boxes[:, 1]).mean().item(),
    )


def score_split(
    model: ConvNet,
    split: Split,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    method: str,
    layer: str | None,
    thresholds: tuple[float, ...],
    batch_size: int,
) -> SplitScores:
    """Maps for every image of a split of uint8 images, scored at each box threshold."""
    if len(split) == 0:
        raise ResdeepError("the split holds no images to evaluate on")
    device = next(model.parameters()).device
    size = tuple(split.images.shape[-2:])
    correct, full_scores, explained_scores, ious = [], [], [], []
    for start in range(0, len(split), batch_size):
        images = split.images[start : start + batch_size].to(device)  # (B, C, H, W) uint8
        labels = split.labels[start : start + batch_size].to(device)
        x = normalize(images, mean, std)
        # Maps of the true class: GT-known localisation; where the prediction is right they are
        # also the predicted class's maps, which top-1 localisation and the drop metrics use.
        output = class_activation_maps(model, x, method, labels, layer)
        maps = upsample_maps(output.maps, size)  # (B, H, W) in [0, 1]
        predicted = output.logits.argmax(dim=1)
        wrong = predicted != labels
        predicted_maps = maps.clone()
        if wrong.any():
            redo = class_activation_maps(model, x[wrong], method, predicted[wrong], layer)
            predicted_maps[wrong] = upsample_maps(redo.maps, size)
        explained = normalize(images.float() * predicted_maps[:, None], mean, std)
        with torch.no_grad(), evaluation_mode(model):
            explained_probs = model(explained).softmax(dim=1)
        full_probs = output.logits.softmax(dim=1)
        full_scores.append(full_probs.gather(1, predicted[:, None])[:, 0].cpu())
        explained_scores.append(explained_probs.gather(1, predicted[:, None])[:, 0].cpu())
        correct.append((~wrong).cpu())
        if split.boxes is not None:
            true_boxes = split.boxes[start : start + batch_size]
            per_threshold = []
            for threshold in thresholds:
                boxes, found = boxes_from_maps(maps, threshold)
                per_threshold.append(torch.where(found, box_iou(boxes, true_boxes), 0.0))
            ious.append(torch.stack(per_threshold, dim=1))  # (B, T)
    return SplitScores(
        correct=torch.cat(correct),
        full_scores=torch.cat(full_scores),
        explained_scores=torch.cat(explained_scores),
        ious=torch.cat(ious) if ious else None,
    )


def benchmark(
    model: ConvNet,
    test: Split,
    *,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    method: str = "cam",
    layer: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    batch_size: int = 128,
    baseline_box: tuple[float, float] | None = None,
    val: Split | None = None,
) -> CamBenchmark:
    """Score `method`'s maps on a test split (with boxes, for localisation).

    baseline_box: (width, height) of the centred baseline box; defaults to the test split's mean
        box size (pass the training split's to keep the baseline free of test information).
    val: a split with boxes to choose the best threshold on; its test score is reported too.
    """
    thresholds = tuple(sorted({*THRESHOLD_GRID, threshold}))
    settings = dict(
        mean=mean, std=std, method=method, layer=layer, thresholds=thresholds, batch_size=batch_size
    )
    scores = score_split(model, test, **settings)
    result = CamBenchmark(
        images=len(test),
        top1_acc=scores.correct.float().mean().item(),
        average_drop=average_drop(scores.full_scores, scores.explained_scores),
        increase_in_confidence=increase_in_confidence(scores.full_scores, scores.explained_scores),
        threshold=threshold,
    )
    if scores.ious is None:
        return result
    hits = scores.ious >= IOU_HIT  # (N, T)
    at = thresholds.index(threshold)
    result.gt_known_loc_acc = hits[:, at].float().mean().item()
    result.top1_loc_acc = (hits[:, at] & scores.correct).float().mean().item()
    result.mean_iou = scores.ious[:, at].mean().item()

    height, width = test.images.shape[-2:]
    size = baseline_box or mean_box_size(test.boxes)
    centred = centred_box(*size, image_width=width, image_height=height).expand(len(test), 4)
    baseline_iou = box_iou(centred, test.boxes)
    baseline_hits = baseline_iou >= IOU_HIT
    result.baseline_gt_known_loc_acc = baseline_hits.float().mean().item()
    result.baseline_top1_loc_acc = (baseline_hits & scores.correct).float().mean().item()
    result.baseline_mean_iou = baseline_iou.mean().item()
    result.baseline_box = (round(size[0], 2), round(size[1], 2))

    if val is not None and val.boxes is not None and len(val) > 0:
        val_ious = score_split(model, val, **settings).ious
        best = int((val_ious >= IOU_HIT).float().mean(dim=0).argmax())  # first of any tie
        result.val_threshold = thresholds[best]
        result.val_threshold_gt_known_loc_acc = hits[:, best].float().mean().item()
        result.val_threshold_top1_loc_acc = (hits[:, best] & scores.correct).float().mean().item()
    return result
