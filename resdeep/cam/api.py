"""Class activation maps for a preprocessed batch: the notebook API the CLI is built on.

`compute_cam(model, x)` is all most callers need. It leaves the model as it found it: every
hook is removed and every module's train/eval flag restored, even when it raises, and no
parameter's `.grad` is touched (gradients are taken with respect to the activations only).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from resdeep.cam.methods import (
    gradcam_plus_plus_weights,
    gradcam_weights,
    scorecam_masks,
    signed_maps,
    upsample_maps,
)
from resdeep.choices import CAM_METHODS
from resdeep.errors import UsageError
from resdeep.models import ConvNet, evaluation_mode

# Masked copies per Score-CAM forward pass: B * K copies of the input would not fit at once
# for large batches or wide layers, and a few hundred small images keep the CPU busy.
SCORECAM_CHUNK = 256

Targets = int | Sequence[int] | torch.Tensor | None


@dataclass
class CamOutput:
    signed: torch.Tensor  # (B, h, w) at the layer's resolution, before the ReLU
    logits: torch.Tensor  # (B, classes) of the unmasked input
    targets: torch.Tensor  # (B,) the class each map explains

    @property
    def maps(self) -> torch.Tensor:
        """(B, h, w) after the ReLU (only evidence for the class), not yet scaled."""
        return self.signed.clamp_min(0.0)


def compute_cam(
    model: ConvNet,
    x: torch.Tensor,
    method: str = "cam",
    target: Targets = None,
    layer: str | None = None,
) -> torch.Tensor:
    """(B, H, W) maps in [0, 1] at the size of the preprocessed batch x (B, C, H, W).

    target: None explains each image's predicted class; an int, one class for all; a sequence
        or (B,) tensor, one class per image.
    layer: a conv module name such as "stage3.block3.conv2" (gradcam, gradcam++, scorecam);
        None uses the last feature maps, `model.features(x)`.
    """
    output = class_activation_maps(model, x, method, target, layer)
    return upsample_maps(output.maps, tuple(x.shape[-2:]))


def class_activation_maps(
    model: ConvNet,
    x: torch.Tensor,
    method: str = "cam",
    target: Targets = None,
    layer: str | None = None,
) -> CamOutput:
    """The maps at the layer's own resolution, with the logits and the explained classes."""
    if method not in CAM_METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(CAM_METHODS)}")
    if method == "cam" and layer is not None:
        raise UsageError(
            "cam uses the last feature maps and the classifier weights; "
            "pick --layer only with gradcam, gradcam++ or scorecam"
        )
    module = None if layer is None else find_conv_layer(model, layer)
    x = x.to(next(model.parameters()).device)
    with evaluation_mode(model):
        if method == "cam":
            with torch.no_grad():
                feature_maps = model.features(x)  # (B, K, h, w)
                logits = model.forward_head(feature_maps)
                targets = resolve_targets(target, logits)
                signed = signed_maps(feature_maps, model.classifier.weight[targets])
            return CamOutput(signed, logits, targets)
        if method == "scorecam":
            return _scorecam(model, x, target, module)
        return _gradient_cam(model, x, method, target, module)


def find_conv_layer(model: nn.Module, name: str) -> nn.Module:
    """The module called `name`: a Conv2d, or a block / stage that contains convolutions."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        raise UsageError(
            f"the model has no module {name!r}; conv modules run from {convs[0]} to {convs[-1]}"
        )
    module = modules[name]
    if not any(isinstance(m, nn.Conv2d) for m in module.modules()):
        raise UsageError(
            f"--layer {name} is a {type(module).__name__}, not a conv module of the model"
        )
    return module


def resolve_targets(target: Targets, logits: torch.Tensor) -> torch.Tensor:
    """(B,) class indices on the logits' device; None means the predicted classes."""
    batch, num_classes = logits.shape
    if target is None:
        return logits.argmax(dim=1)
    targets = torch.as_tensor(target, dtype=torch.long, device=logits.device).reshape(-1)
    if targets.numel() == 1:
        targets = targets.expand(batch)
    if targets.numel() != batch:
        raise UsageError(f"got {targets.numel()} targets for a batch of {batch}")
    if ((targets < 0) | (targets >= num_classes)).any():
        raise UsageError(f"target class out of range; the model has classes 0..{num_classes - 1}")
    return targets


@contextmanager
def captured_output(module: nn.Module | None) -> Iterator[dict[str, torch.Tensor]]:
    """Record `module`'s forward output under key "output" as one that takes gradients; the hook
    is removed on exit whatever happens. None records nothing."""
    captured: dict[str, torch.Tensor] = {}
    if module is None:
        yield captured
        return

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise UsageError("--layer must be a module that outputs (B, C, H, W) feature maps")
        if not output.requires_grad and torch.is_grad_enabled():
            # Frozen weights: make this tensor the leaf the gradient is taken against.
            output = output.detach().requires_grad_()
        captured.setdefault("output", output)  # the first pass only (Score-CAM runs more)
        return output

    handle = module.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def _activations_and_logits(
    model: ConvNet, x: torch.Tensor, module: nn.Module | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward x once: (activations of `module` or the last feature maps, logits)."""
    if module is None:
        feature_maps = model.features(x)
        if torch.is_grad_enabled() and not feature_maps.requires_grad:
            feature_maps = feature_maps.detach().requires_grad_()
        return feature_maps, model.forward_head(feature_maps)
    with captured_output(module) as captured:
        logits = model(x)
    return captured["output"], logits


def _gradient_cam(
    model: ConvNet, x: torch.Tensor, method: str, target: Targets, module: nn.Module | None
) -> CamOutput:
    with torch.enable_grad():
        activations, logits = _activations_and_logits(model, x, module)
        targets = resolve_targets(target, logits)
        # Samples do not interact in eval mode, so the gradient of the summed target scores
        # gives each sample its own gradient in one backward pass.
        score = logits.gather(1, targets[:, None]).sum()
        (gradients,) = torch.autograd.grad(score, activations)
    activations, logits = activations.detach(), logits.detach()
    if method == "gradcam":
        weights = gradcam_weights(gradients)
    else:
        weights = gradcam_plus_plus_weights(activations, gradients)
    return CamOutput(signed_maps(activations, weights), logits, targets)


def _scorecam(
    model: ConvNet, x: torch.Tensor, target: Targets, module: nn.Module | None
) -> CamOutput:
    with torch.no_grad():
        activations, logits = _activations_and_logits(model, x, module)
        targets = resolve_targets(target, logits)
        batch, channels = activations.shape[:2]
        masks = scorecam_masks(activations, tuple(x.shape[-2:]))  # (B, K, H, W)
        # One masked copy of its image per channel; row i of the flat view is sample i // K.
        sample_index = torch.arange(batch, device=x.device).repeat_interleave(channels)
        flat_masks = masks.flatten(0, 1)  # (B*K, H, W)
        scores = []
        for rows in torch.arange(batch * channels, device=x.device).split(SCORECAM_CHUNK):
            masked = x[sample_index[rows]] * flat_masks[rows, None]  # (n, C, H, W)
            probabilities = model(masked).softmax(dim=1)
            scores.append(probabilities.gather(1, targets[sample_index[rows], None])[:, 0])
        masked_scores = torch.cat(scores).view(batch, channels)  # (B, K)
    return CamOutput(signed_maps(activations, masked_scores), logits, targets)
