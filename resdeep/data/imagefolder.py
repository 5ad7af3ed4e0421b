"""A folder of class sub-folders of images, read with PIL into one uint8 tensor per split.

Two layouts: `root/train/<class>/*` with optional `root/val/` and `root/test/` trees of the
same classes, or `root/<class>/*` alone. A missing test set is carved out with the fixed test
seed; a missing val set is carved from train by `val_size` like any other data set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from resdeep.data.splits import DataError, Source, Split, carve_test

# Every file type resdeep reads as an image, for training data and for `resdeep cam` alike.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GRAY_MODES = {"1", "L", "LA"}
LAYOUT_HINT = "expected train/<class>/*.png|jpg or <class>/*.png|jpg"


def imagefolder_source(root: Path, image_size: int) -> Source:
    """Images resized to image_size x image_size (aspect ratio not kept) so they stack."""
    if not root.is_dir():
        raise DataError(
            f"imagefolder: {root} is not a folder ({LAYOUT_HINT}); point data.root at one"
        )
    split_trees = (root / "train").is_dir()
    train_tree = root / "train" if split_trees else root
    classes = sorted(path.name for path in train_tree.iterdir() if path.is_dir())
    if not classes:
        raise DataError(f"imagefolder: no class folders in {train_tree} ({LAYOUT_HINT})")
    files = {"train": _list_images(train_tree, classes)}
    for part in ("val", "test"):
        if split_trees and (root / part).is_dir():
            files[part] = _list_images(root / part, classes)
    # Gray only when every image is: one RGB image makes the whole set RGB.
    mode = (
        "L"
        if all(_mode(path) in GRAY_MODES for tree in files.values() for path, _ in tree)
        else "RGB"
    )
    splits = {part: _load(tree, mode, image_size) for part, tree in files.items()}
    train = splits["train"]
    test = splits.get("test")
    if test is None:
        train, test = carve_test(train)
    # Photos keep their class when mirrored; crop padding scales like CIFAR's 4 px of 32.
    return Source(train, test, classes, flip=True, pad_crop=image_size // 8, val=splits.get("val"))


def _list_images(tree: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """(path, label) of every image under tree/<class>/, in a stable order."""
    found = []
    for folder in sorted(path for path in tree.iterdir() if path.is_dir()):
        if folder.name not in classes:
            raise DataError(
                f"imagefolder: class folder {folder} is not among the train classes {classes}"
            )
        label = classes.index(folder.name)
        images = sorted(
            path
            for path in folder.rglob("*")
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
        )
        found += [(path, label) for path in images]
    if not found:
        raise DataError(f"imagefolder: no images under {tree} ({LAYOUT_HINT})")
    return found


def _unreadable(path: Path, error: Exception) -> DataError:
    return DataError(f"imagefolder: cannot read {path} ({error}); remove or replace it")


def _mode(path: Path) -> str:
    try:
        with Image.open(path) as image:  # reads the header only
            return image.mode
    except (OSError, UnidentifiedImageError) as error:
        raise _unreadable(path, error) from error


def _pixels(path: Path, mode: str, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            # PIL's bilinear filter widens when shrinking, so downscaling is antialiased.
            return np.asarray(image.convert(mode).resize((size, size), Image.Resampling.BILINEAR))
    except (OSError, UnidentifiedImageError) as error:
        raise _unreadable(path, error) from error


def _load(tree: list[tuple[Path, int]], mode: str, size: int) -> Split:
    images = torch.from_numpy(np.stack([_pixels(path, mode, size) for path, _ in tree]))
    # (N, H, W) for L, (N, H, W, 3) for RGB -> (N, C, H, W)
    images = images.unsqueeze(1) if mode == "L" else images.permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([label for _, label in tree], dtype=torch.int64)
    return Split(images, labels)
