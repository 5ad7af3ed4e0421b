"""The data containers and the split/select/resize steps every data set goes through."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from resdeep.errors import ResdeepError, UsageError

# Fixed seed for carving a test set out of data that ships without one (digits, imagefolder):
# the test set must not change when the run seed does, or test errors are not comparable.
TEST_SEED = 0
TEST_FRACTION = 0.2


class DataError(ResdeepError):
    """A user-facing, one-line problem with the data: what is wrong and how to fix it."""


@dataclass
class Split:
    images: torch.Tensor  # (N, C, H, W) uint8, CPU
    labels: torch.Tensor  # (N,) int64
    boxes: torch.Tensor | None = None  # (N, 4) float32 x0, y0, x1, y1 in pixels, x1/y1 exclusive

    def __len__(self) -> int:
        return self.labels.shape[0]

    def subset(self, index: torch.Tensor) -> Split:
        """The samples at `index` (an index or boolean mask), in that order."""
        boxes = None if self.boxes is None else self.boxes[index]
        return Split(self.images[index], self.labels[index], boxes)


@dataclass
class Source:
    """A data set as read from disk or generated, before the val split and class selection."""

    train: Split  # the training pool; val is carved from it unless `val` is given
    test: Split
    classes: list[str]
    flip: bool
    pad_crop: int
    val: Split | None = None  # only when the data ships its own val set (imagefolder val/)


@dataclass
class DataSplits:
    name: str
    train: Split
    val: Split
    test: Split
    classes: list[str]  # class names, index = label
    mean: tuple[float, ...]  # per-channel mean of the train images, [0, 1] scale
    std: tuple[float, ...]  # per-channel std of the train images, [0, 1] scale
    flip: bool  # horizontal flip keeps the label (False for digits and text-like data)
    pad_crop: int  # zero padding for random-crop augmentation in pixels; 0 disables it
    # Original label id of each class, so held-out classes can be named; None means 0..k-1.
    class_ids: tuple[int, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.class_ids is None:
            self.class_ids = tuple(range(len(self.classes)))

    @property
    def in_channels(self) -> int:
        return self.train.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.train.images.shape[-1]


def holdout_count(size: int | float, total: int, what: str) -> int:
    """How many of `total` samples `size` (a count, or a fraction in (0, 1)) asks for."""
    if isinstance(size, bool) or not isinstance(size, int | float):
        raise DataError(f"{what} must be an int count or a float fraction, got {size!r}")
    if isinstance(size, float):
        if not 0.0 < size < 1.0:
            raise DataError(f"{what} as a fraction must be in (0, 1), got {size}")
        size = round(size * total)
    if not 0 <= size < total:
        raise DataError(f"{what}={size} leaves no training images out of {total}")
    return size


def split_off(
    pool: Split, size: int | float, seed: int, what: str = "val_size"
) -> tuple[Split, Split]:
    """Split `pool` into (rest, held) with a seeded random permutation.

    Both parts keep the pool's order, so a split reads like the data set it came from.
    """
    count = holdout_count(size, len(pool), what)
    perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    held, rest = perm[:count].sort().values, perm[count:].sort().values
    return pool.subset(rest), pool.subset(held)


def carve_test(pool: Split) -> tuple[Split, Split]:
    """(rest, test) for data that has no test set of its own; the same test set for every seed."""
    return split_off(pool, TEST_FRACTION, TEST_SEED, what="test fraction")


def check_class_ids(class_ids: list[int], num_classes: int) -> None:
    """data.classes as typed must name label ids of the data set: a usage error (exit 2)."""
    if not class_ids:
        raise UsageError("data.classes is empty; list the label ids to keep, or leave it unset")
    bad = [c for c in class_ids if isinstance(c, bool) or not isinstance(c, int)]
    bad += [c for c in class_ids if isinstance(c, int) and not 0 <= c < num_classes]
    if bad:
        raise UsageError(f"data.classes {bad} are not label ids in 0..{num_classes - 1}")
    if len(set(class_ids)) != len(class_ids):
        raise UsageError(f"data.classes {class_ids} lists a label twice")


def keep_classes(split: Split, class_ids: list[int]) -> Split:
    """Only the samples of `class_ids`, relabelled by position in that list (0..k-1)."""
    lookup = torch.full((max(class_ids) + 1,), -1, dtype=torch.int64)
    lookup[torch.tensor(class_ids)] = torch.arange(len(class_ids))
    kept = split.subset(torch.isin(split.labels, torch.tensor(class_ids)))
    kept.labels = lookup[kept.labels]
    return kept


def drop_classes(split: Split, class_ids: list[int]) -> Split:
    """The samples NOT of `class_ids`, with their original labels."""
    return split.subset(~torch.isin(split.labels, torch.tensor(class_ids)))


def resize(split: Split, size: int) -> Split:
    """Bilinear (antialiased) resize to size x size, back to uint8; boxes scale along."""
    height, width = split.images.shape[-2:]
    if (height, width) == (size, size):
        return split
    # Chunks bound the float copy: 50k CIFAR images upscaled to 64 px would need 2.4 GB at once.
    images = split.images.new_zeros((0, split.images.shape[1], size, size))
    if len(split):
        images = torch.cat(
            [
                F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True)
                .round_()
                .clamp_(0, 255)
                .to(torch.uint8)
                for chunk in split.images.split(4096)
            ]
        )
    boxes = None
    if split.boxes is not None:
        scale = torch.tensor([size / width, size / height, size / width, size / height])
        boxes = split.boxes * scale
    return Split(images, split.labels, boxes)


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images, on the [0, 1] scale."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    # float64 sums in chunks: exact enough for 50k images without a 1 GB float copy.
    for chunk in images.split(4096):
        values = chunk.to(torch.float64).div_(255.0)
        total += values.sum(dim=(0, 2, 3))
        total_sq += values.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_(min=0.0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
