"""The images uncertainty is measured on: the run's own split, and out-of-distribution sets.

Everything is rebuilt from the run's resolved config through the training code's own
config -> data mapping, so the test split here is the one the run was tested on.
"""

from __future__ import annotations

import torch

from resdeep.checkpoint import CheckpointInfo
from resdeep.choices import EVAL_SPLITS
from resdeep.config import checkpoint_data, data_from_config, run_config
from resdeep.data import DataError, Split, build_data
from resdeep.data.splits import check_class_ids, drop_classes, resize
from resdeep.errors import ResdeepError, UsageError

SPLITS = EVAL_SPLITS  # the splits of a run the analysis tools score
TORCHVISION_OOD_SETS = ("svhn", "cifar10", "cifar100", "mnist", "fashion_mnist")
OOD_SETS = ("noise", "heldout", *TORCHVISION_OOD_SETS)


def check_ood_name(name: str) -> None:
    if name not in OOD_SETS:
        raise UsageError(f"unknown --ood-data {name!r}; choose one of {', '.join(OOD_SETS)}")


def in_distribution(info: CheckpointInfo, split: str) -> Split:
    """The run's `split` (test or val), as the run saw it: same classes, size and val seed."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    return getattr(checkpoint_data(info), split)


def ood_images(
    name: str, info: CheckpointInfo, *, split: str, count: int, seed: int
) -> torch.Tensor:
    """uint8 images (M, C, H, W) of the run's input shape from out-of-distribution set `name`.

    noise: `count` uniform-noise images, drawn from `seed`.
    heldout: the run's `split` images of the classes it did not train on (data.classes).
    svhn, cifar10, ...: the set's test split from the run's data.root, resized, channels matched.
    """
    check_ood_name(name)
    if name == "noise":
        generator = torch.Generator().manual_seed(seed)
        return torch.randint(0, 256, (count, *info.input_shape), generator=generator).to(
            torch.uint8
        )
    if name == "heldout":
        return _heldout(info, split).images
    return _torchvision_set(name, info)


def _heldout(info: CheckpointInfo, split: str) -> Split:
    cfg = run_config(info)
    kept = cfg.data.classes
    if kept is None:
        raise UsageError(
            f"--ood-data heldout needs a run trained on a subset of classes, but {info.run_dir} "
            "used them all; train with e.g. data.classes=[0,1,2,3,4]"
        )
    kept = [int(c) for c in kept]
    cfg.data.classes = None  # the full data set, built exactly as the run built it
    full = data_from_config(cfg)
    try:
        check_class_ids(kept, len(full.classes))
    except DataError as error:
        raise ResdeepError(str(error)) from error
    heldout = drop_classes(getattr(full, split), kept)
    if len(heldout) == 0:
        raise ResdeepError(f"{info.data_name} {split} has no images outside classes {kept}")
    return heldout


def _torchvision_set(name: str, info: CheckpointInfo) -> torch.Tensor:
    root = str(info.config.get("data", {}).get("root") or "data")
    try:
        test = build_data(name, root=root).test
    except DataError as error:
        raise ResdeepError(f"--ood-data {name} (read from the run's data.root): {error}") from error
    channels, height, width = info.input_shape
    if height != width:
        raise UsageError(f"--ood-data {name} needs square inputs, the model takes {height}x{width}")
    images = resize(test, height).images
    if images.shape[1] != channels:
        # Colour to grey by averaging, then grey to as many channels as the model takes.
        if images.shape[1] != 1:
            images = images.float().mean(dim=1, keepdim=True).round().to(torch.uint8)
        images = images.expand(-1, channels, -1, -1).contiguous()
    return images
