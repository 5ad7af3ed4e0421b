"""One factory builds every network from keyword arguments, and validates depths."""

from __future__ import annotations

from resdeep.choices import (
    ARCHITECTURES,
    BLOCKS,
    DROPOUT_PLACES,
    INITS,
    NORMS,
    RESIDUAL_INITS,
    SHORTCUT_PADS,
    SHORTCUTS,
)
from resdeep.models.base import ConvNet
from resdeep.models.cifar_resnet import CifarResNet
from resdeep.models.init import init_weights
from resdeep.models.normfree import fixup_initialize
from resdeep.models.preact import PreActResNet

# Weight layers per block: 2 for basic (two 3x3), 3 for bottleneck (1x1, 3x3, 1x1); three stages
# plus the stem conv and the classifier give depth = 3 * layers * n + 2.
LAYERS_PER_BLOCK = {"basic": 2, "bottleneck": 3}


class ModelConfigError(ValueError):
    """A model argument the user can fix (bad depth, unknown option)."""


def blocks_per_stage(depth: int, block: str = "basic") -> int:
    """n for a depth of 6n + 2 (basic) or 9n + 2 (bottleneck); a clear error otherwise."""
    if block not in LAYERS_PER_BLOCK:
        raise ModelConfigError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}")
    step = 3 * LAYERS_PER_BLOCK[block]
    if depth >= step + 2 and (depth - 2) % step == 0:
        return (depth - 2) // step
    smallest = step + 2
    below = max(smallest, depth - (depth - 2) % step)
    above = below + step if depth >= smallest else smallest + step
    rule = f"{step}n+2"
    raise ModelConfigError(
        f"depth {depth} is not valid for {block} blocks (depth = {rule}); "
        f"nearest valid depths: {below} and {above}"
    )


def check_model_args(
    arch: str = "resnet",
    *,
    depth: int = 20,
    block: str = "basic",
    shortcut: str | None = None,
    shortcut_pad: str = "after",
    init: str = "kaiming",
    norm: str = "batch",
    zero_init_residual: bool = False,
    residual_init: str = "none",
    dropout: float = 0.0,
    dropout_at: str = "head",
    in_channels: int = 3,
    num_classes: int = 10,
) -> None:
    """Raise ModelConfigError for arguments that build no network; nothing is built, so a sweep
    can check every job before the first one starts."""
    if shortcut is None:
        shortcut = "B" if block == "bottleneck" else "A"
    if arch not in ARCHITECTURES:
        raise ModelConfigError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if arch != "preact" and block != "basic":
        raise ModelConfigError(f"{arch} uses basic blocks; bottleneck needs arch=preact")
    if shortcut not in SHORTCUTS:
        raise ModelConfigError(
            f"unknown shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}"
        )
    if shortcut_pad not in SHORTCUT_PADS:
        raise ModelConfigError(
            f"unknown shortcut_pad {shortcut_pad!r}; choose one of {', '.join(SHORTCUT_PADS)}"
        )
    if block == "bottleneck" and shortcut != "B":
        raise ModelConfigError(
            "bottleneck units project where the shape changes: use model.shortcut=B "
            "(option A exists for basic blocks only)"
        )
    if norm not in NORMS:
        raise ModelConfigError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    if init not in INITS:
        raise ModelConfigError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if not 0.0 <= dropout < 1.0:
        raise ModelConfigError(f"dropout must lie in [0, 1), got {dropout}")
    if dropout_at not in DROPOUT_PLACES:
        raise ModelConfigError(
            f"unknown dropout_at {dropout_at!r}; choose one of {', '.join(DROPOUT_PLACES)}"
        )
    if zero_init_residual and arch == "plain":
        raise ModelConfigError("zero_init_residual needs a residual branch; plain nets have none")
    check_residual_init(residual_init, arch=arch, norm=norm, zero_init_residual=zero_init_residual)
    if in_channels < 1 or num_classes < 2:
        raise ModelConfigError("need at least 1 input channel and 2 classes")
    blocks_per_stage(depth, block)


def check_residual_init(
    residual_init: str, *, arch: str, norm: str, zero_init_residual: bool
) -> None:
    """Fixup, SkipInit and ReZero make a residual net trainable without batch norm: refuse them
    where that means nothing (resdeep.models.normfree)."""
    if residual_init not in RESIDUAL_INITS:
        raise ModelConfigError(
            f"unknown residual_init {residual_init!r}; choose one of {', '.join(RESIDUAL_INITS)}"
        )
    if residual_init == "none":
        return
    if arch == "plain":
        raise ModelConfigError(
            f"residual_init={residual_init} scales residual branches; plain nets have none"
        )
    if norm == "batch":
        raise ModelConfigError(
            f"residual_init={residual_init} is a replacement for batch norm; "
            "set model.norm=none (or residual_init=none)"
        )
    if zero_init_residual:
        raise ModelConfigError(
            f"residual_init={residual_init} already starts every branch at zero; "
            "drop zero_init_residual"
        )
    if residual_init == "fixup" and arch != "resnet":
        raise ModelConfigError(
            f"residual_init=fixup is built for arch=resnet (the authors' post-activation CIFAR "
            f"blocks), not arch={arch}"
        )


def build_model(
    arch: str = "resnet",
    *,
    depth: int = 20,
    block: str = "basic",
    in_channels: int = 3,
    num_classes: int = 10,
    shortcut: str | None = None,
    shortcut_pad: str = "after",
    init: str = "kaiming",
    norm: str = "batch",
    zero_init_residual: bool = False,
    residual_init: str = "none",
    dropout: float = 0.0,
    dropout_at: str = "head",
) -> ConvNet:
    """Build `arch` at `depth`. Plain and resnet use basic blocks; preact takes either.

    `shortcut=None` picks the papers' choice: A (parameter-free) for basic blocks, B (projection)
    for bottleneck units. `residual_init` (not "none", with `norm="none"`): a residual net that
    trains without batch norm, Fixup, SkipInit or ReZero (resdeep.models.normfree).
    """
    if shortcut is None:
        shortcut = "B" if block == "bottleneck" else "A"
    check_model_args(
        arch=arch, depth=depth, block=block, shortcut=shortcut, shortcut_pad=shortcut_pad,
        init=init, norm=norm, zero_init_residual=zero_init_residual, residual_init=residual_init,
        dropout=dropout, dropout_at=dropout_at, in_channels=in_channels, num_classes=num_classes,
    )  # fmt: skip
    n = blocks_per_stage(depth, block)
    common = dict(
        blocks_per_stage=n,
        in_channels=in_channels,
        num_classes=num_classes,
        shortcut=shortcut,
        norm=norm,
        dropout=dropout,
        dropout_at=dropout_at,
        residual_init=residual_init,
    )
    if arch == "preact":
        model: ConvNet = PreActResNet(block=block, shortcut_pad=shortcut_pad, **common)
    else:
        model = CifarResNet(residual=arch == "resnet", shortcut_pad=shortcut_pad, **common)
    init_weights(model, init, zero_init_residual=zero_init_residual)
    if residual_init == "fixup":
        fixup_initialize(model)  # its branches and classifier, over what init_weights did
    return model
