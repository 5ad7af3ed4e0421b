"""Residual nets that train without batch norm: each method makes every residual block the
identity at initialisation, which is what batch norm does for deep residual nets on average
(De & Smith 2020: it downscales each branch by about √depth).

- fixup (Zhang, Dauphin & Ma, ICLR 2019, "Fixup Initialization"): no normalisation; each
  branch's first conv He-initialised and scaled by L^(-1/(2m-2)) (L residual branches, m = 2
  layers per basic branch: L^(-1/2)), its last conv and the classifier zero; scalar biases
  (init 0) before each conv, before the activation and at the end of the branch, a scalar
  multiplier (init 1) after the last conv, and the net-level biases of the authors' code (after
  the stem conv, before the classifier). Built as the authors' CIFAR code builds it
  (github.com/hongyi-zhang/Fixup, `cifar/models/fixup_resnet_cifar.py`).
- skipinit (De & Smith, NeurIPS 2020): a learnable scalar α per branch, multiplying it, α = 0 at
  initialisation; the block otherwise as it was, so the post-activation ReLU after the sum stays.
- rezero (Bachlechner et al. 2020, "ReZero is All You Need"): x_{i+1} = x_i + α_i F(x_i), α_i = 0
  at initialisation. Nothing follows the sum, so in a post-activation resnet the ReLU after the
  addition goes; that, and only that, tells it from skipinit here. A pre-activation unit has no
  ReLU after its sum, so there the two build the same network.

model.init still initialises every other layer: for skipinit and rezero all of them (their convs
keep the biases of resdeep's norm=none blocks, which stand in for BN's beta), for fixup the stem
conv and any shortcut projection.

Every gate and scale sits inside the block's residual branch (`paths`), so a lesion that zeroes
the branch still leaves merge(shortcut) (resdeep.lesion.surgery).
"""

from __future__ import annotations

import torch
from torch import nn

from resdeep.models.base import ConvNet
from resdeep.models.layers import conv3x3, dropout_layer, make_shortcut

# Weight layers in a basic block's residual branch: Fixup's m.
BASIC_BRANCH_LAYERS = 2


class ScalarBias(nn.Module):
    """x + b with one learnable scalar b, initialised at 0 (Fixup's biases)."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class ScalarGain(nn.Module):
    """x · g with one learnable scalar g: Fixup's multiplier (init 1), SkipInit's and ReZero's α
    (init 0)."""

    def __init__(self, init: float) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.full((1,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


def residual_gate(gated: bool) -> nn.Module:
    """SkipInit's and ReZero's α (a branch that starts at zero), or nothing."""
    return ScalarGain(0.0) if gated else nn.Identity()


class FixupBasicBlock(nn.Module):
    """Fixup's basic block: (+b) conv (+b) ReLU (+b) conv (·s +b), + shortcut, ReLU.

    No normalisation and no conv biases: the scalar biases take their place. As in the authors'
    code, a shortcut that changes shape reads the shifted input x + bias1a, the identity reads x.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        shortcut: str = "A",
        shortcut_pad: str = "after",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.bias1a = ScalarBias()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.bias1b = ScalarBias()
        self.relu = nn.ReLU(inplace=True)
        self.dropout = dropout_layer(dropout)
        self.bias2a = ScalarBias()
        self.conv2 = conv3x3(out_channels, out_channels)
        self.scale = ScalarGain(1.0)
        self.bias2b = ScalarBias()
        self.shortcut = make_shortcut(
            shortcut, in_channels, out_channels, stride, "none", shortcut_pad
        )

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(residual branch, shortcut) outputs before they are added."""
        shifted = self.bias1a(x)
        branch = self.relu(self.bias1b(self.conv1(shifted)))
        branch = self.conv2(self.bias2a(self.dropout(branch)))
        branch = self.bias2b(self.scale(branch))
        shortcut = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(shifted)
        return branch, shortcut

    def merge(self, total: torch.Tensor) -> torch.Tensor:
        """The post-activation ReLU, as in He et al.'s block."""
        return self.relu(total)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch, shortcut = self.paths(x)
        return self.merge(branch + shortcut)

    def fixup_init(self, branches: int) -> None:
        """The first conv He-initialised, then scaled by branches^(-1/(2m-2)); the last conv 0.

        He's init with fan_out, as the authors' code computes it: std = sqrt(2 / (out_channels ·
        k²)) from `weight.shape[0] * prod(weight.shape[2:])`, i.e. kaiming_normal_ in mode
        fan_out. For a stride-2 conv that doubles the channels this is 1/√2 of fan_in's.
        """
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        with torch.no_grad():
            self.conv1.weight.mul_(branches ** (-1.0 / (2 * BASIC_BRANCH_LAYERS - 2)))
        nn.init.zeros_(self.conv2.weight)


def fixup_stem(in_channels: int, out_channels: int) -> list[tuple[str, nn.Module]]:
    """The stem of the authors' code: conv without bias, a scalar bias, ReLU."""
    return [
        ("conv", conv3x3(in_channels, out_channels)),
        ("bias", ScalarBias()),
        ("relu", nn.ReLU(inplace=True)),
    ]


def fixup_initialize(model: ConvNet) -> None:
    """Fixup's rule on a net whose other layers are already initialised by model.init.

    Those are the stem conv and any shortcut projection: "every other layer using a standard
    method" in the paper's words (the authors' code leaves its stem at PyTorch's default). The
    classifier starts at zero, so the first logits are 0 and the first loss is log(classes).
    """
    blocks = model.blocks()
    for block in blocks:
        block.fixup_init(branches=len(blocks))
    nn.init.zeros_(model.classifier.weight)
    nn.init.zeros_(model.classifier.bias)
