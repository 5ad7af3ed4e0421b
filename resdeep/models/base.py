"""The interface every resdeep network shares: features -> global average pool -> linear."""

from __future__ import annotations

import torch
from torch import nn


class ConvNet(nn.Module):
    """Base class: subclasses build `features`; the head is the same for all of them.

    `features(x)` returns the last convolutional maps (B, C, H, W) and `classifier` is the final
    `nn.Linear`, so class activation maps need no hooks (Zhou et al. 2016).
    """

    classifier: nn.Linear
    head_dropout: nn.Module

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, feature_maps: torch.Tensor) -> torch.Tensor:
        pooled = feature_maps.mean(dim=(2, 3))  # (B, C): global average pool
        return self.classifier(self.head_dropout(pooled))  # (B, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.features(x))
