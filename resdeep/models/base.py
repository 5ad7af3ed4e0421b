"""The interface every resdeep network shares: features -> global average pool -> linear."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

# Channels of the three stages in the CIFAR designs (on 32/16/8 maps for a 32x32 input).
STAGE_WIDTHS = (16, 32, 64)


class ConvNet(nn.Module):
    """Base class: subclasses build `features`; the head is the same for all of them.

    `features(x)` returns the last convolutional maps (B, C, H, W) and `classifier` is the final
    `nn.Linear`, so class activation maps need no hooks (Zhou et al. 2016).
    """

    stem: nn.Module
    stage1: nn.Sequential
    stage2: nn.Sequential
    stage3: nn.Sequential
    classifier: nn.Linear
    head_dropout: nn.Module

    def blocks(self) -> list[nn.Module]:
        """Every block, input to output: stage1.block1 ... stage3.blockN. Each has
        `paths(x) -> (branch, shortcut or None)` and `merge(total)`, its forward being
        merge(branch + shortcut), so a lesion or a routed backward pass can take them apart."""
        return [block for stage in (self.stage1, self.stage2, self.stage3) for block in stage]

    def after_blocks(self, x: torch.Tensor) -> torch.Tensor:
        """What lies between the last block and the pooling: nothing here (post-activation
        blocks end on a ReLU); a pre-activation net's final BN-ReLU."""
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)  # (B, 16, H, W)
        x = self.stage1(x)  # (B, 16*e, H, W), e the block's expansion
        x = self.stage2(x)  # (B, 32*e, H/2, W/2)
        x = self.stage3(x)  # (B, 64*e, H/4, W/4)
        return self.after_blocks(x)

    def forward_head(self, feature_maps: torch.Tensor) -> torch.Tensor:
        pooled = feature_maps.mean(dim=(2, 3))  # (B, C): global average pool
        return self.classifier(self.head_dropout(pooled))  # (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.features(x))


def build_stages(
    net: nn.Module,
    make_block: Callable[[int, int, int, bool], nn.Module],
    blocks_per_stage: int,
    expansion: int = 1,
) -> int:
    """Add `stage1..3` of `blocks_per_stage` blocks each to `net`; returns the output channels.

    `make_block(in_channels, width, stride, first)` builds one block; `first` marks the block
    that opens its stage. Stride 2 opens stages 2 and 3.
    Modules are named `stageS.blockB` so gradient-norm tags stay readable and stable.
    """
    channels = STAGE_WIDTHS[0]
    for stage_index, width in enumerate(STAGE_WIDTHS, start=1):
        blocks = OrderedDict()
        for block_index in range(1, blocks_per_stage + 1):
            stride = 2 if stage_index > 1 and block_index == 1 else 1
            blocks[f"block{block_index}"] = make_block(channels, width, stride, block_index == 1)
            channels = width * expansion
        net.add_module(f"stage{stage_index}", nn.Sequential(blocks))
    return channels


@contextmanager
def restoring_modes(model: nn.Module) -> Iterator[None]:
    """Change train/eval flags freely inside; every module's own flag comes back on exit,
    whatever happens, so a caller's mixed state (MC dropout, say) survives."""
    flags = [(module, module.training) for module in model.modules()]
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode (batch norm uses its running statistics, dropout is off) for the duration; each
    module's own flag comes back afterwards, so a mixed state such as MC dropout survives."""
    with restoring_modes(model):
        model.eval()
        yield
