"""resdeep's networks against small independent re-implementations of the published code.

Each reference is written from the authors' Torch code as plain tensor functions (F.conv2d,
F.batch_norm), reading the weights by name from the model under test, so a mismatch in where a
stride, a BN-ReLU or a zero channel sits shows up as different outputs.
- pre-activation basic net: fb.resnet.torch `models/preresnet.lua`, CIFAR branch;
- pre-activation bottleneck net: KaimingHe/resnet-1k-layers `resnet-pre-act.lua`;
- option A shortcut: fb.resnet.torch (zeros after the identity) and
  akamaster/pytorch_resnet_cifar10 (`F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4,
  planes // 4))`).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from resdeep.models import ModelConfigError, build_model, count_parameters


def randomize_batch_norm(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters: a misplaced BN changes the output."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(shape, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(shape, generator=generator) * 0.2)


def bn_relu(x: torch.Tensor, weights: dict, name: str) -> torch.Tensor:
    return F.relu(
        F.batch_norm(
            x,
            weights[f"{name}.running_mean"],
            weights[f"{name}.running_var"],
            weights[f"{name}.weight"],
            weights[f"{name}.bias"],
            training=False,
        )
    )


def conv(x: torch.Tensor, weights: dict, name: str, stride: int = 1) -> torch.Tensor:
    kernel = weights[f"{name}.weight"]
    return F.conv2d(x, kernel, stride=stride, padding=kernel.shape[-1] // 2)


def fb_shortcut_a(x: torch.Tensor, out_channels: int, stride: int) -> torch.Tensor:
    """fb.resnet.torch type A: SpatialAveragePooling(1, 1, stride) then concat zeros after."""
    x = x[:, :, ::stride, ::stride]
    zeros = torch.zeros_like(x[:, : out_channels - x.shape[1]])
    return torch.cat([x, zeros], dim=1)


def fb_preresnet_cifar(x: torch.Tensor, weights: dict, n: int) -> torch.Tensor:
    """preresnet.lua, CIFAR: conv, three `layer(basicblock, w, n, s)`, BN-ReLU, pool, linear.

    `layer` builds its first block as 'both_preact' (BN-ReLU before the split, so the shortcut
    sees the activated input) and the rest with the BN-ReLU on the residual path only.
    """
    out = conv(x, weights, "stem.conv")
    channels = 16
    for stage, width in enumerate((16, 32, 64), start=1):
        for index in range(1, n + 1):
            name = f"stage{stage}.block{index}"
            stride = 2 if stage > 1 and index == 1 else 1
            activated = bn_relu(out, weights, f"{name}.bn1")
            shortcut_input = activated if index == 1 else out
            residual = conv(activated, weights, f"{name}.conv1", stride)
            residual = conv(bn_relu(residual, weights, f"{name}.bn2"), weights, f"{name}.conv2")
            if channels != width or stride != 1:
                shortcut = fb_shortcut_a(shortcut_input, width, stride)
            else:
                shortcut = shortcut_input
            out, channels = residual + shortcut, width
    pooled = bn_relu(out, weights, "final_bn").mean(dim=(2, 3))
    return F.linear(pooled, weights["classifier.weight"], weights["classifier.bias"])


def resnet_1k_preact_bottleneck(x: torch.Tensor, weights: dict, n: int) -> torch.Tensor:
    """resnet-pre-act.lua: stages of `bottleneck(nIn, nOut, stride)` with nStages 16/64/128/256.

    Same shape: BN-ReLU-conv1x1(stride), BN-ReLU-conv3x3, BN-ReLU-conv1x1, identity. Changing
    shape: a common BN-ReLU, then convs as above and a 1x1 projection with the stride.
    """
    out = conv(x, weights, "stem.conv")
    channels = 16
    for stage, out_channels in enumerate((64, 128, 256), start=1):
        for index in range(1, n + 1):
            name = f"stage{stage}.block{index}"
            stride = 2 if stage > 1 and index == 1 else 1
            activated = bn_relu(out, weights, f"{name}.bn1")
            residual = conv(activated, weights, f"{name}.conv1", stride)
            residual = conv(bn_relu(residual, weights, f"{name}.bn2"), weights, f"{name}.conv2")
            residual = conv(bn_relu(residual, weights, f"{name}.bn3"), weights, f"{name}.conv3")
            if channels == out_channels:
                shortcut = out
            else:
                shortcut = conv(activated, weights, f"{name}.shortcut.conv", stride)
            out, channels = residual + shortcut, out_channels
    pooled = bn_relu(out, weights, "final_bn").mean(dim=(2, 3))
    return F.linear(pooled, weights["classifier.weight"], weights["classifier.bias"])


@pytest.mark.parametrize("depth", [8, 20])
def test_preact_basic_net_matches_the_authors_cifar_code(depth):
    torch.manual_seed(0)
    model = build_model("preact", depth=depth, block="basic", shortcut="A").double().eval()
    randomize_batch_norm(model)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    weights = model.state_dict()
    expected = fb_preresnet_cifar(x, weights, n=(depth - 2) // 6)
    torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("depth", [11, 29])
def test_preact_bottleneck_net_matches_the_authors_cifar_code(depth):
    torch.manual_seed(0)
    model = build_model("preact", depth=depth, block="bottleneck").double().eval()
    randomize_batch_norm(model)
    x = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    expected = resnet_1k_preact_bottleneck(x, model.state_dict(), n=(depth - 2) // 9)
    torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=1e-6)


def test_option_a_pads_after_the_identity_or_on_both_sides():
    x = torch.randn(2, 16, 8, 8)
    after = build_model("resnet", depth=8).stage2.block1.shortcut
    both = build_model("resnet", depth=8, shortcut_pad="both").stage2.block1.shortcut
    torch.testing.assert_close(after(x), fb_shortcut_a(x, 32, 2), atol=0, rtol=0)
    planes = 32  # akamaster's LambdaLayer for a 16 -> 32 block
    akamaster = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))
    torch.testing.assert_close(both(x), akamaster, atol=0, rtol=0)
    # The two orders are different functions of the same parameters.
    a, b = build_model("resnet", depth=20), build_model("resnet", depth=20, shortcut_pad="both")
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    image = torch.randn(2, 3, 32, 32)
    assert not torch.allclose(a(image), b(image), atol=1e-3)
    assert count_parameters(a) == count_parameters(b) == 269_722


def test_bottleneck_units_refuse_option_a_instead_of_building_a_projection():
    with pytest.raises(ModelConfigError, match="use model.shortcut=B"):
        build_model("preact", depth=164, block="bottleneck", shortcut="A")
    with pytest.raises(ModelConfigError, match="unknown shortcut_pad"):
        build_model("resnet", depth=20, shortcut_pad="before")


def test_preact_parameter_counts_of_the_paper():
    assert count_parameters(build_model("preact", depth=164, block="bottleneck")) == 1_703_258
    assert count_parameters(build_model("preact", depth=1001, block="bottleneck")) == 10_327_706
