"""Plain and residual CIFAR networks of He et al. 2015, section 4.2.

Stem 3x3 conv (16) -> three stages of n basic blocks at widths 16/32/64 -> GAP -> linear, so the
depth is 6n + 2. Stride 2 at the first block of stages 2 and 3. A plain net is the same net
without the identity addition; with the parameter-free option A shortcut the two have identical
parameter counts, so any difference in how they train is the shortcut's doing.

`residual_init` builds the residual net that trains without batch norm (resdeep.models.normfree):
Fixup's blocks, stem and head, or the basic block with SkipInit's or ReZero's gate.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from resdeep.models.base import STAGE_WIDTHS, ConvNet, build_stages
from resdeep.models.layers import (
    conv3x3,
    dropout_layer,
    make_shortcut,
    norm_layer,
)
from resdeep.models.normfree import FixupBasicBlock, ScalarBias, fixup_stem, residual_gate


class BasicBlock(nn.Module):
    """conv-BN-ReLU-(dropout)-conv-BN (+ shortcut) - ReLU.

    `gated`: the branch ends on a learnable scalar α = 0 (SkipInit, ReZero); `activate_sum=False`
    drops the ReLU after the addition (ReZero's x + α F(x)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        residual: bool = True,
        shortcut: str = "A",
        shortcut_pad: str = "after",
        norm: str = "batch",
        dropout: float = 0.0,
        gated: bool = False,
        activate_sum: bool = True,
    ) -> None:
        super().__init__()
        bias = norm == "none"  # without BN there is no beta, so the conv carries the bias
        self.conv1 = conv3x3(in_channels, out_channels, stride, bias=bias)
        self.bn1 = norm_layer(norm, out_channels)
        self.dropout = dropout_layer(dropout)
        self.conv2 = conv3x3(out_channels, out_channels, bias=bias)
        self.bn2 = norm_layer(norm, out_channels)
        self.gate = residual_gate(gated)
        self.relu = nn.ReLU(inplace=True)
        self.activate_sum = activate_sum
        self.residual = residual
        if residual:
            self.shortcut = make_shortcut(
                shortcut, in_channels, out_channels, stride, norm, shortcut_pad
            )

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(residual branch, shortcut) outputs before they are added; a plain block has no
        shortcut (None)."""
        branch = self.relu(self.bn1(self.conv1(x)))
        branch = self.gate(self.bn2(self.conv2(self.dropout(branch))))
        return branch, self.shortcut(x) if self.residual else None

    def merge(self, total: torch.Tensor) -> torch.Tensor:
        """What follows the addition: the post-activation ReLU (none for ReZero)."""
        return self.relu(total) if self.activate_sum else total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch, shortcut = self.paths(x)
        return self.merge(branch if shortcut is None else branch + shortcut)

    def zero_init_last(self) -> None:
        """Goyal et al. 2017: start each residual branch at zero so the block is the identity."""
        if isinstance(self.bn2, nn.BatchNorm2d):
            nn.init.zeros_(self.bn2.weight)


class CifarResNet(ConvNet):
    """`residual=False` gives the plain net of the same depth and width; `residual_init` one of
    resdeep.choices.RESIDUAL_INITS (not "none": a residual net with norm "none")."""

    def __init__(
        self,
        *,
        blocks_per_stage: int,
        residual: bool = True,
        in_channels: int = 3,
        num_classes: int = 10,
        shortcut: str = "A",
        shortcut_pad: str = "after",
        norm: str = "batch",
        dropout: float = 0.0,
        dropout_at: str = "head",
        residual_init: str = "none",
    ) -> None:
        super().__init__()
        block_dropout = dropout if dropout_at == "blocks" else 0.0
        fixup = residual_init == "fixup"
        if fixup:
            self.stem = nn.Sequential(OrderedDict(fixup_stem(in_channels, STAGE_WIDTHS[0])))
        else:
            self.stem = nn.Sequential(
                OrderedDict(
                    conv=conv3x3(in_channels, STAGE_WIDTHS[0], bias=norm == "none"),
                    bn=norm_layer(norm, STAGE_WIDTHS[0]),
                    relu=nn.ReLU(inplace=True),
                )
            )

        def make_block(in_channels: int, width: int, stride: int, first: bool) -> nn.Module:
            if fixup:
                return FixupBasicBlock(
                    in_channels, width, stride=stride, shortcut=shortcut,
                    shortcut_pad=shortcut_pad, dropout=block_dropout,
                )  # fmt: skip
            return BasicBlock(
                in_channels, width, stride=stride, residual=residual, shortcut=shortcut,
                shortcut_pad=shortcut_pad, norm=norm, dropout=block_dropout,
                gated=residual_init in ("skipinit", "rezero"),
                activate_sum=residual_init != "rezero",
            )  # fmt: skip

        channels = build_stages(self, make_block, blocks_per_stage)
        # Fixup's scalar bias before the classifier, moved in front of the pooling (the mean of
        # f + b is mean(f) + b): the features are then exactly what the classifier reads, so
        # CAM's sum_k w_k f_k still adds up to the logit less the classifier's bias.
        self.feature_bias = ScalarBias() if fixup else nn.Identity()
        self.head_dropout = dropout_layer(dropout if dropout_at == "head" else 0.0)
        self.classifier = nn.Linear(channels, num_classes)
        self.num_features = channels

    def after_blocks(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_bias(x)
