"""Build a data set by name: read it, split train/val, select classes, resize, measure stats.

The val split is drawn from the full training pool before classes are selected, so an image's
side of the train/val line depends only on the seed, never on which classes a run keeps; the
images of the other classes (`resdeep uncertainty --ood-data heldout`) are then exactly the
ones build_data(classes=...) left out.
"""

from __future__ import annotations

from pathlib import Path

import torch

from resdeep.data.digits import digits_placed_source, digits_source
from resdeep.data.imagefolder import imagefolder_source
from resdeep.data.splits import (
    DataError,
    DataSplits,
    Source,
    Split,
    channel_stats,
    check_class_ids,
    keep_classes,
    resize,
    split_off,
)
from resdeep.data.synthetic import synthetic_source
from resdeep.data.torchvision_sets import (
    cifar10_source,
    cifar100_source,
    mnist_source,
    svhn_source,
)

DATASET_NAMES = (
    "digits",
    "digits_placed",
    "synthetic",
    "cifar10",
    "cifar100",
    "svhn",
    "mnist",
    "fashion_mnist",
    "imagefolder",
)
SPLIT_NAMES = ("train", "val", "test")


def _read_source(
    name: str,
    *,
    root: str,
    download: bool,
    image_size: int | None,
    seed: int,
    canvas_size: int,
    num_samples: int,
    num_classes: int,
    channels: int,
) -> Source:
    folder = Path(root).expanduser().resolve()
    if name == "digits":
        return digits_source()
    if name == "digits_placed":
        return digits_placed_source(canvas_size, seed)
    if name == "synthetic":
        return synthetic_source(
            num_samples=num_samples,
            num_classes=num_classes,
            channels=channels,
            image_size=image_size or canvas_size,
            seed=seed,
        )
    if name == "cifar10":
        return cifar10_source(folder, download)
    if name == "cifar100":
        return cifar100_source(folder, download)
    if name == "svhn":
        return svhn_source(folder, download)
    if name in ("mnist", "fashion_mnist"):
        return mnist_source(name, folder, download)
    if name == "imagefolder":
        return imagefolder_source(folder, image_size or 32)
    raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def _select_classes(
    source: Source, splits: tuple[Split, Split, Split], classes: list[int] | None
) -> tuple[tuple[Split, Split, Split], list[str], list[int]]:
    """The splits keeping only `classes` (relabelled 0..k-1 in the order given), with the kept
    classes' names and original ids; all of them when `classes` is None."""
    if classes is None:
        return splits, source.classes, list(range(len(source.classes)))
    classes = list(classes)  # a Hydra ListConfig would not index tensors
    check_class_ids(classes, len(source.classes))
    kept = tuple(keep_classes(split, classes) for split in splits)
    return kept, [source.classes[index] for index in classes], classes


def permuted_labels(split: Split, seed: int) -> Split:
    """The split with its labels shuffled among its images: the class counts stay, the link
    between an image and its class goes. Its own generator, so nothing else's draws move."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split), generator=generator)
    return Split(split.images, split.labels[order], split.boxes)


def build_data(
    name: str,
    *,
    root: str = "data",
    download: bool = False,
    val_size: int | float = 0.1,
    image_size: int | None = None,
    classes: list[int] | None = None,
    seed: int = 0,
    canvas_size: int = 32,
    num_samples: int = 512,
    num_classes: int = 10,
    channels: int = 3,
    permute_labels: bool = False,
) -> DataSplits:
    """The train/val/test splits of data set `name`, with the facts a trainer needs about them.

    val_size: images held out of the training pool for validation, as a count or a fraction in
        (0, 1); counted on the full pool, before `classes` selects. Unused when the data ships
        its own val set (imagefolder with val/).
    image_size: resize every split to this size (bilinear, antialiased) when it differs.
    classes: original label ids to keep, relabelled 0..k-1 in the order given.
    seed: the train/val split and any generated data; test sets never depend on it.
    canvas_size: digits_placed canvas, and the synthetic image size when image_size is unset.
    num_samples, num_classes, channels: synthetic only.
    permute_labels: shuffle the training labels among the training images (seeded by `seed`),
        the data-randomisation test of Adebayo et al. 2018; val and test keep their true labels,
        so they show that nothing was learned that generalises.
    """
    source = _read_source(
        name,
        root=root,
        download=download,
        image_size=image_size,
        seed=seed,
        canvas_size=canvas_size,
        num_samples=num_samples,
        num_classes=num_classes,
        channels=channels,
    )
    train, val = source.train, source.val
    if val is None:
        train, val = split_off(train, val_size, seed)
    (train, val, test), class_names, class_ids = _select_classes(
        source, (train, val, source.test), classes
    )
    if image_size is not None:
        train, val, test = (resize(split, image_size) for split in (train, val, test))
    if len(train) == 0:
        raise DataError(f"{name}: no training images left for classes {classes}")
    if permute_labels:
        train = permuted_labels(train, seed)
    mean, std = channel_stats(train.images)
    return DataSplits(
        name=name,
        train=train,
        val=val,
        test=test,
        classes=class_names,
        mean=mean,
        std=std,
        flip=source.flip,
        pad_crop=source.pad_crop,
        class_ids=tuple(class_ids),
    )
