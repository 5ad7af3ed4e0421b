"""Mean-field theory of a plain net without normalisation, from its actual weights.

Each pre-activation is a sum of many weighted inputs, so mean-field theory treats it as Gaussian
with inputs independent of one another (Poole et al. 2016; Schoenholz et al. 2017). Rather than
reducing a layer to one number (q' = v * fan_in * Var(W) * E[relu(z)^2] + Var(b), v the fraction
of kernel taps inside the zero-padded image), the prediction carries a map of means and variances
per channel and position through the layers' own weights: a convolution of the mean map with W
(plus the bias) gives the output's means, one of the variance map with W^2 its variances, zero
padding and strides included. The scalar law holds in expectation over weight draws; with 16
channels one draw's channel sums of W differ from their expectation by tens of per cent, and the
nonzero mean of ReLU outputs makes that matter, so only the map form predicts a given net within
a few per cent. The ReLU of a Gaussian N(m, s^2) has closed-form moments.

Backward, the same independence gives E[(dL/da)^2] = conv_transpose(E[(dL/dz')^2], W^2), and the
ReLU passes a gradient with probability P(z > 0) = Phi(m / s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from resdeep.models.base import ConvNet


@dataclass(frozen=True)
class MomentMap:
    """Mean and variance of a feature map per channel and position: (1, C, H, W) each."""

    mean: torch.Tensor
    var: torch.Tensor

    def second_moment(self) -> float:
        return float((self.mean.square() + self.var).mean())


def relu_moments(z: MomentMap) -> MomentMap:
    """Mean and variance of relu(z) for z ~ N(mean, var), elementwise."""
    std = z.var.clamp_min(1e-30).sqrt()
    ratio = z.mean / std
    positive = 0.5 * (1 + torch.erf(ratio / math.sqrt(2)))  # Phi(m / s) = P(z > 0)
    density = torch.exp(-0.5 * ratio.square()) / math.sqrt(2 * math.pi)
    first = z.mean * positive + std * density
    second = (z.mean.square() + z.var) * positive + z.mean * std * density
    return MomentMap(first, (second - first.square()).clamp_min(0))


def relu_pass_probability(z: MomentMap) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(z.mean / z.var.clamp_min(1e-30).sqrt() / math.sqrt(2)))


def conv_moments(conv: nn.Conv2d, x: MomentMap) -> MomentMap:
    """The output moments of `conv` for independent inputs with moments `x`."""
    weight = conv.weight.detach().double()
    bias = None if conv.bias is None else conv.bias.detach().double()
    mean = F.conv2d(x.mean, weight, bias, conv.stride, conv.padding)
    var = F.conv2d(x.var, weight.square(), None, conv.stride, conv.padding)
    return MomentMap(mean, var)


def conv_backward_moments(
    conv: nn.Conv2d, grad: torch.Tensor, input_shape: torch.Size
) -> torch.Tensor:
    """E[(dL/dx)^2] at the conv's input from E[(dL/dy)^2] at its output: the transposed
    convolution with W^2 (a vector-Jacobian product of the linear map, so strides and padding
    are exactly the forward's)."""
    probe = torch.zeros(input_shape, dtype=torch.float64, device=grad.device, requires_grad=True)
    weight = conv.weight.detach().double().square()
    out = F.conv2d(probe, weight, None, conv.stride, conv.padding)
    (result,) = torch.autograd.grad(out, probe, grad_outputs=grad)
    return result


def is_plain_unnormalized(model: nn.Module) -> bool:
    """Whether the prediction applies: a plain ConvNet (a chain of conv and ReLU) without batch
    norm. A residual net's branch and shortcut are correlated, which this chain does not model."""
    if not isinstance(model, ConvNet):
        return False
    has_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    residual = any(getattr(block, "residual", True) for block in model.blocks())
    return not has_norm and not residual


@dataclass(frozen=True)
class MeanFieldPrediction:
    """Per conv, input to output, the predicted second moment of its output (the
    pre-activation): `forward` chained from the inputs' moments alone, `one_step` from the
    moments of each conv's actual input (what theory says one layer does to the signal it is
    given), and `backward` that of the loss gradient there, chained down from the logits."""

    forward: list[float]
    one_step: list[float]
    backward: list[float]


def predict_plain(
    model: ConvNet, inputs: torch.Tensor, output_grad_var: float = 1.0
) -> MeanFieldPrediction:
    """Mean-field prediction for a plain net without normalisation (is_plain_unnormalized).

    The forward chain starts from the inputs' mean and variance per channel and position (over
    the batch), so it needs no measurement of the net itself. The backward chain starts at the
    logits, each with gradient variance `output_grad_var` (a loss sum_k g_k * logit_k with
    g ~ N(0, 1)), through the linear classifier and the global average pool.
    """
    x = inputs.detach()
    convs = plain_convs(model)
    state = _moments_over_batch(x)
    actual = x  # the net's own signal (in its own precision), for the one-step predictions
    pre: list[MomentMap] = []
    one_step: list[float] = []
    shapes: list[torch.Size] = []
    for index, conv in enumerate(convs):
        shapes.append(state.mean.shape)
        z = conv_moments(conv, state if index == 0 else relu_moments(state))
        pre.append(z)
        state = z
        given = actual if index == 0 else actual.clamp_min(0)
        one_step.append(conv_moments(conv, _moments_over_batch(given)).second_moment())
        with torch.no_grad():
            actual = conv(given)
    forward = [z.second_moment() for z in pre]
    # Backward: logits -> linear -> mean over H*W positions -> ReLU of the last conv.
    last = pre[-1]
    weight = model.classifier.weight.detach().double()  # (K, C)
    per_channel = output_grad_var * weight.square().sum(0) / last.mean[0, 0].numel() ** 2
    grad = per_channel.view(1, -1, 1, 1).expand_as(last.mean).clone()
    backward = [0.0] * len(convs)
    for index in range(len(convs) - 1, -1, -1):
        grad = grad * relu_pass_probability(pre[index])  # dL/dz from dL/drelu(z)
        backward[index] = float(grad.mean())
        if index > 0:
            grad = conv_backward_moments(convs[index], grad, shapes[index])
    return MeanFieldPrediction(forward, one_step, backward)


def _moments_over_batch(x: torch.Tensor) -> MomentMap:
    x = x.double()
    return MomentMap(x.mean(0, keepdim=True), x.var(0, keepdim=True, unbiased=False))


def plain_convs(model: ConvNet) -> list[nn.Conv2d]:
    """The convs of a plain net in the order the signal meets them (stem, then each block's)."""
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and "shortcut" not in name
    ]
