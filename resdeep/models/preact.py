"""Pre-activation residual networks of He et al. 2016 ("Identity Mappings in Deep Residual
Networks"), CIFAR design.

Each unit is BN-ReLU-conv, so the shortcut path stays a pure identity from input to output.
Basic units (two 3x3) give depth 6n + 2; bottleneck units [1x1, 3x3, 1x1 x4] give depth 9n + 2
(164: n = 18; 200: n = 22). The net ends with BN-ReLU before pooling, since the last unit's
output is not activated.

Two details follow the authors' CIFAR code (resnet-1k-layers `resnet-pre-act.lua`,
fb.resnet.torch `preresnet.lua`), which the paper's appendix describes: the unit that opens a
stage applies its BN-ReLU *before* splitting into the two paths, so its shortcut (identity,
option A or a projection) sees the activated input ("right after conv1 and before splitting
into two paths" for the first unit); and a bottleneck unit puts the stage's stride on its first
1x1 conv (and on the projection), not on the 3x3.

`residual_init` skipinit or rezero ends every branch on a learnable scalar α = 0
(resdeep.models.normfree); nothing follows a pre-activation unit's sum, so the two build the same
net here. Fixup is defined by its authors for post-activation blocks only.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from resdeep.models.base import STAGE_WIDTHS, ConvNet, build_stages
from resdeep.models.layers import (
    conv1x1,
    conv3x3,
    dropout_layer,
    make_shortcut,
    norm_layer,
)
from resdeep.models.normfree import residual_gate

BOTTLENECK_EXPANSION = 4


class _PreActUnit(nn.Module):
    """What every pre-activation unit shares: BN-ReLU before the split, nothing after the sum."""

    bn1: nn.Module
    relu: nn.Module
    shortcut: nn.Module
    shares_preactivation: bool

    def preactivate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(BN-ReLU of x, the shortcut's output); the shortcut reads the activated input where
        the unit shares it, the raw input otherwise."""
        preact = self.relu(self.bn1(x))
        return preact, self.shortcut(preact if self.shares_preactivation else x)

    def merge(self, total: torch.Tensor) -> torch.Tensor:
        """Nothing follows the addition in a pre-activation unit: the identity path stays clean."""
        return total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch, shortcut = self.paths(x)
        return self.merge(branch + shortcut)


class PreActBasicBlock(_PreActUnit):
    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        *,
        stride: int = 1,
        first: bool = False,
        shortcut: str = "A",
        shortcut_pad: str = "after",
        norm: str = "batch",
        dropout: float = 0.0,
        gated: bool = False,
    ) -> None:
        super().__init__()
        bias = norm == "none"
        self.bn1 = norm_layer(norm, in_channels)
        self.conv1 = conv3x3(in_channels, width, stride, bias=bias)
        self.bn2 = norm_layer(norm, width)
        self.dropout = dropout_layer(dropout)
        self.conv2 = conv3x3(width, width, bias=bias)
        self.gate = residual_gate(gated)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut = make_shortcut(
            shortcut, in_channels, width, stride, norm, shortcut_pad, normalized_projection=False
        )
        # The unit opening a stage, and any unit whose shape changes, shares its BN-ReLU with the
        # shortcut (the authors' 'both_preact'); the others keep the raw input on the identity.
        self.shares_preactivation = first or not isinstance(self.shortcut, nn.Identity)

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual branch, shortcut) outputs before they are added."""
        preact, shortcut = self.preactivate(x)
        branch = self.conv1(preact)
        branch = self.gate(self.conv2(self.dropout(self.relu(self.bn2(branch)))))
        return branch, shortcut

    def zero_init_last(self) -> None:
        # The last BN of a pre-activation branch sits before conv2, so zeroing the branch means
        # zeroing conv2 itself.
        nn.init.zeros_(self.conv2.weight)


class PreActBottleneck(_PreActUnit):
    expansion = BOTTLENECK_EXPANSION

    def __init__(
        self,
        in_channels: int,
        width: int,
        *,
        stride: int = 1,
        first: bool = False,
        shortcut: str = "B",
        norm: str = "batch",
        dropout: float = 0.0,
        gated: bool = False,
    ) -> None:
        super().__init__()
        if shortcut != "B":
            # The paper and the authors' code project wherever a bottleneck unit changes shape;
            # a zero-padded shortcut for 16 -> 64 channels is not a network anyone published.
            raise ValueError("bottleneck units need shortcut B (a 1x1 projection); got A")
        bias = norm == "none"
        out_channels = width * self.expansion
        self.bn1 = norm_layer(norm, in_channels)
        # The stage's stride sits on the first 1x1 conv, as in the authors' CIFAR code.
        self.conv1 = conv1x1(in_channels, width, stride, bias=bias)
        self.bn2 = norm_layer(norm, width)
        self.conv2 = conv3x3(width, width, bias=bias)
        self.bn3 = norm_layer(norm, width)
        self.dropout = dropout_layer(dropout)
        self.conv3 = conv1x1(width, out_channels, bias=bias)
        self.gate = residual_gate(gated)
        self.relu = nn.ReLU(inplace=False)
        # The paper projects wherever the shape changes (channels x4 at every stage entry).
        self.shortcut = make_shortcut(
            "B", in_channels, out_channels, stride, norm, normalized_projection=False
        )
        self.shares_preactivation = first or not isinstance(self.shortcut, nn.Identity)

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual branch, shortcut) outputs before they are added."""
        preact, shortcut = self.preactivate(x)
        branch = self.conv1(preact)
        branch = self.conv2(self.relu(self.bn2(branch)))
        branch = self.gate(self.conv3(self.dropout(self.relu(self.bn3(branch)))))
        return branch, shortcut

    def zero_init_last(self) -> None:
        nn.init.zeros_(self.conv3.weight)


class PreActResNet(ConvNet):
    def __init__(
        self,
        *,
        blocks_per_stage: int,
        block: str = "bottleneck",
        in_channels: int = 3,
        num_classes: int = 10,
        shortcut: str = "B",
        shortcut_pad: str = "after",
        norm: str = "batch",
        dropout: float = 0.0,
        dropout_at: str = "head",
        residual_init: str = "none",
    ) -> None:
        super().__init__()
        block_type = PreActBottleneck if block == "bottleneck" else PreActBasicBlock
        # Option A's channel order only exists for basic units (bottlenecks always project).
        pad_option = {"shortcut_pad": shortcut_pad} if block_type is PreActBasicBlock else {}
        block_dropout = dropout if dropout_at == "blocks" else 0.0
        self.stem = nn.Sequential(
            OrderedDict(conv=conv3x3(in_channels, STAGE_WIDTHS[0], bias=norm == "none"))
        )
        channels = build_stages(
            self,
            lambda in_channels, width, stride, first: block_type(
                in_channels,
                width,
                stride=stride,
                first=first,
                shortcut=shortcut,
                **pad_option,
                norm=norm,
                dropout=block_dropout,
                gated=residual_init in ("skipinit", "rezero"),
            ),
            blocks_per_stage,
            expansion=block_type.expansion,
        )
        self.final_bn = norm_layer(norm, channels)
        self.final_relu = nn.ReLU(inplace=True)
        self.head_dropout = dropout_layer(dropout if dropout_at == "head" else 0.0)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels

    def after_blocks(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_relu(self.final_bn(x))
