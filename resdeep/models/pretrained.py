"""Published (pretrained) CIFAR ResNet weights, read into resdeep's own networks.

Two PyTorch reproductions of He et al. 2015's CIFAR ResNets publish pretrained weights that
people start from. Both nets are resdeep's `resnet` (3x3 stem of 16, three stages of basic blocks
at 16/32/64, global average pool, linear); they differ in the shortcut and in what the input was
normalised with, so each source says how its tensors are named, how it shortcuts and normalises.

- akamaster/pytorch_resnet_cifar10 (BSD-2-Clause): `.th` files holding {"state_dict": ...,
  "best_prec1": ...} with DataParallel's `module.` prefix; option A shortcuts whose zero channels
  sit half before and half after the identity (`shortcut_pad=both`); ImageNet mean and std.
- chenyaofo/pytorch-cifar-models (BSD-3-Clause): plain state dicts with torchvision's names
  (`conv1, bn1, layer1.0.conv1, ..., layer2.0.downsample.0/1, fc`); option B projections;
  CIFAR's mean and std.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from resdeep.errors import ResdeepError
from resdeep.models.base import ConvNet
from resdeep.models.factory import build_model

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
CLASSES = {"cifar10": CIFAR10_CLASSES, "cifar100": CIFAR100_CLASSES}


@dataclass(frozen=True)
class Source:
    """How one project stores its CIFAR ResNets."""

    name: str
    url: str
    license: str
    shortcut: str
    shortcut_pad: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    state_dict: Callable[[object], dict[str, torch.Tensor]]  # the file's payload -> its tensors
    rename: Callable[[str], str]  # the source's tensor name -> resdeep's
    stage_prefix: str  # the source's name of stage 1's blocks, e.g. "layer1."
    classifier: str  # the source's name of the final linear layer's weight


def _akamaster_tensors(payload: object) -> dict[str, torch.Tensor]:
    if not isinstance(payload, dict) or not isinstance(payload.get("state_dict"), dict):
        raise ResdeepError('it holds no "state_dict" (akamaster .th files do)')
    return payload["state_dict"]


def _plain_tensors(payload: object) -> dict[str, torch.Tensor]:
    if not isinstance(payload, dict):
        raise ResdeepError("it holds no state dict")
    for key in ("state_dict", "model"):  # a training checkpoint around the weights
        if isinstance(payload.get(key), dict):
            return payload[key]
    return payload


def _blocks(key: str) -> str:
    """layerS.B.rest -> stageS.block(B+1).rest: resdeep counts blocks from 1."""
    return re.sub(r"^layer(\d+)\.(\d+)\.", lambda m: f"stage{m[1]}.block{int(m[2]) + 1}.", key)


def _akamaster_name(key: str) -> str:
    key = _blocks(key.removeprefix("module."))
    for old, new in (("conv1.", "stem.conv."), ("bn1.", "stem.bn."), ("linear.", "classifier.")):
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _chenyaofo_name(key: str) -> str:
    key = _blocks(key)
    key = key.replace(".downsample.0.", ".shortcut.conv.").replace(
        ".downsample.1.", ".shortcut.bn."
    )
    for old, new in (("conv1.", "stem.conv."), ("bn1.", "stem.bn."), ("fc.", "classifier.")):
        if key.startswith(old):
            return new + key[len(old) :]
    return key


SOURCES = {
    "akamaster": Source(
        name="akamaster",
        url="https://github.com/akamaster/pytorch_resnet_cifar10",
        license="BSD-2-Clause",
        shortcut="A",
        shortcut_pad="both",
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        state_dict=_akamaster_tensors,
        rename=_akamaster_name,
        stage_prefix="module.layer1.",
        classifier="module.linear.weight",
    ),
    "chenyaofo": Source(
        name="chenyaofo",
        url="https://github.com/chenyaofo/pytorch-cifar-models",
        license="BSD-3-Clause",
        shortcut="B",
        shortcut_pad="after",
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
        state_dict=_plain_tensors,
        rename=_chenyaofo_name,
        stage_prefix="layer1.",
        classifier="fc.weight",
    ),
}


@dataclass
class Converted:
    model: ConvNet
    model_kwargs: dict
    classes: tuple[str, ...]
    data: str
    extra: dict  # what the source file says besides the weights (akamaster: best_prec1)


def convert(source: Source, payload: object, data: str | None = None) -> Converted:
    """resdeep's network holding the source's weights; ResdeepError names the first mismatch."""
    tensors = source.state_dict(payload)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise ResdeepError("its state dict holds something other than tensors")
    depth = _depth(source, tensors)
    classifier = tensors.get(source.classifier)
    if classifier is None or classifier.dim() != 2:
        raise ResdeepError(f"missing tensor {source.classifier}")
    num_classes = int(classifier.shape[0])
    guessed = {10: "cifar10", 100: "cifar100"}.get(num_classes)
    data = data or guessed
    if data not in CLASSES:
        raise ResdeepError(f"{num_classes} classes: neither CIFAR-10 nor CIFAR-100")
    if len(CLASSES[data]) != num_classes:
        raise ResdeepError(f"{data} has {len(CLASSES[data])} classes, the file {num_classes}")
    kwargs = dict(
        arch="resnet",
        depth=depth,
        in_channels=3,
        num_classes=num_classes,
        shortcut=source.shortcut,
        shortcut_pad=source.shortcut_pad,
    )
    model = build_model(**kwargs)
    expected = model.state_dict()
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        name = source.rename(key)
        if name not in expected:
            raise ResdeepError(f"unexpected tensor {key} for {source.name}'s ResNet-{depth}")
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ResdeepError(
                f"{key} has shape {tuple(tensor.shape)}; {source.name}'s ResNet-{depth} "
                f"needs {tuple(expected[name].shape)}"
            )
        renamed[name] = tensor
    # Files saved by PyTorch < 0.4.1 have no BN step counters; they change nothing in eval.
    missing = [n for n in expected if n not in renamed and not n.endswith("num_batches_tracked")]
    if missing:
        raise ResdeepError(f"missing tensor for {missing[0]} of {source.name}'s ResNet-{depth}")
    model.load_state_dict(renamed, strict=False)
    model.eval()
    extra = {}
    if isinstance(payload, dict) and isinstance(payload.get("best_prec1"), int | float):
        extra["best_prec1"] = float(payload["best_prec1"])
    return Converted(model, kwargs, CLASSES[data], data, extra)


def _depth(source: Source, tensors: dict[str, torch.Tensor]) -> int:
    """6n + 2 from the number of blocks in stage 1."""
    pattern = re.compile(re.escape(source.stage_prefix) + r"(\d+)\.")
    indices = {int(m[1]) for key in tensors if (m := pattern.match(key))}
    if not indices:
        raise ResdeepError(f"missing tensors {source.stage_prefix}0.* (the first stage)")
    return 6 * (max(indices) + 1) + 2


def published_source(payload: object) -> Source | None:
    """The source whose file `payload` (a loaded checkpoint) looks like: its stage 1 and its
    classifier under that source's names (None: neither's)."""
    for source in SOURCES.values():
        try:
            tensors = source.state_dict(payload)
        except ResdeepError:
            continue
        if source.classifier in tensors and any(
            isinstance(key, str) and key.startswith(source.stage_prefix) for key in tensors
        ):
            return source
    return None
