"""Small typed building blocks shared by every architecture."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from resdeep.choices import NORMS, SHORTCUT_PADS, SHORTCUTS

# Option A's two channel orders are the same family of functions: a checkpoint loads only with
# its own (resdeep.choices.SHORTCUT_PADS).


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution with padding 1, the only spatial kernel of the CIFAR designs."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias)


def norm_layer(norm: str, channels: int) -> nn.Module:
    """Batch norm, or nothing: a plain net without BN is where gradients vanish."""
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    return nn.BatchNorm2d(channels) if norm == "batch" else nn.Identity()


def dropout_layer(p: float) -> nn.Module:
    """An nn.Dropout only when asked, so MC dropout finds exactly the modules that sample."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class ShortcutA(nn.Module):
    """He et al. 2015 option A: parameter-free shortcut for a change of shape.

    Subsample by 2 and zero-pad the new channels, so plain and residual nets have identical
    parameter counts. `pad` says where the zeros go (see ShortcutPad).
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, pad: str = "after"
    ) -> None:
        super().__init__()
        if pad not in SHORTCUT_PADS:
            raise ValueError(
                f"unknown shortcut_pad {pad!r}; choose one of {', '.join(SHORTCUT_PADS)}"
            )
        self.stride = stride
        extra = out_channels - in_channels
        self.channel_padding = (0, extra) if pad == "after" else (extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, *self.channel_padding))  # pads the channel dimension


class ShortcutB(nn.Module):
    """He et al. 2015 option B: 1x1 projection (+ BN) for a change of shape.

    A pre-activation unit's projection is a bare conv (`normalized=False`): its input is already
    normalised and activated, and the next unit normalises the sum.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, norm: str, normalized: bool = True
    ) -> None:
        super().__init__()
        norm = norm if normalized else "none"
        # Without BN after it the post-activation projection carries a bias; the bare
        # pre-activation projection has none (He et al. 2016; the parameter counts depend on it).
        self.conv = conv1x1(in_channels, out_channels, stride, bias=normalized and norm == "none")
        self.bn = norm_layer(norm, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def make_shortcut(
    shortcut: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    norm: str,
    pad: str = "after",
    normalized_projection: bool = True,
) -> nn.Module:
    """Identity when shapes match; option A or B otherwise (see ShortcutB for the BN)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if shortcut == "A":
        return ShortcutA(in_channels, out_channels, stride, pad)
    if shortcut == "B":
        return ShortcutB(in_channels, out_channels, stride, norm, normalized_projection)
    raise ValueError(f"unknown shortcut {shortcut!r}; choose one of {', '.join(SHORTCUTS)}")
