"""Class activation map methods as pure tensor functions.

Every method ends the same way: one weight per channel, a weighted sum of the activation
maps, and a ReLU (only evidence *for* the class is kept). They differ in where the weights
come from:

- CAM (Zhou et al. 2016): the classifier row of the class. Needs GAP + linear, no backward.
- Grad-CAM (Selvaraju et al. 2017): the spatial mean of the class score's gradient. On the last
  maps of a GAP + linear net that mean is exactly w_k^c / (h * w), so Grad-CAM is CAM scaled
  by a positive constant (Grad-CAM paper, section 3.1).
- Grad-CAM++ (Chattopadhay et al. 2018): a pixel-weighted mean of the positive gradients.
- Score-CAM (Wang et al. 2020): the class probability of the input masked by each channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def signed_maps(activations: torch.Tensor, channel_weights: torch.Tensor) -> torch.Tensor:
    """sum_k weight_k * A_k before the ReLU, evidence against the class included (the signed map
    the sanity checks compare): activations (B, K, h, w), weights (B, K) -> (B, h, w)."""
    return torch.einsum("bkhw,bk->bhw", activations, channel_weights)


def weighted_maps(activations: torch.Tensor, channel_weights: torch.Tensor) -> torch.Tensor:
    """ReLU(sum_k weight_k * A_k): activations (B, K, h, w), weights (B, K) -> (B, h, w)."""
    return signed_maps(activations, channel_weights).clamp_min(0.0)


def cam(
    feature_maps: torch.Tensor, classifier_weight: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """CAM: M_c = ReLU(sum_k w_k^c f_k). feature_maps (B, K, h, w), classifier_weight
    (classes, K), targets (B,) class indices -> (B, h, w)."""
    return weighted_maps(feature_maps, classifier_weight[targets])


def gradcam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: channel weights are the spatially averaged gradients of the class score.

    activations, gradients: (B, K, h, w), the gradient of each sample's target score with
    respect to its own activations -> (B, h, w).
    """
    return weighted_maps(activations, gradcam_weights(gradients))


def gradcam_weights(gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM's channel weights, the spatial mean of the gradients: (B, K, h, w) -> (B, K)."""
    return gradients.mean(dim=(2, 3))


def gradcam_plus_plus(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19) with the exponential-score shortcut, so only
    first-order gradients are needed: alpha = g^2 / (2 g^2 + sum_ab A_ab g^3).

    activations, gradients: (B, K, h, w) -> (B, h, w).
    """
    return weighted_maps(activations, gradcam_plus_plus_weights(activations, gradients))


def gradcam_plus_plus_weights(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++'s channel weights: (B, K, h, w) twice -> (B, K)."""
    squared, cubed = gradients.pow(2), gradients.pow(3)
    activation_sums = activations.sum(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)
    denominator = 2 * squared + activation_sums * cubed
    # Where the gradient is zero alpha is 0/0; it multiplies ReLU(g) = 0 there anyway.
    alpha = torch.where(
        denominator != 0, squared / denominator.where(denominator != 0, 1.0), 0.0
    )  # (B, K, h, w)
    return (alpha * gradients.clamp_min(0.0)).sum(dim=(2, 3))  # (B, K)


def scorecam_masks(activations: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Each channel upsampled to the input size and min-max scaled to [0, 1]: (B, K, h, w) ->
    (B, K, H, W) soft masks. A constant channel gives an all-zero mask."""
    upsampled = F.interpolate(activations, size=size, mode="bilinear", align_corners=False)
    low = upsampled.amin(dim=(2, 3), keepdim=True)
    span = upsampled.amax(dim=(2, 3), keepdim=True) - low
    return torch.where(span > 0, (upsampled - low) / span.clamp_min(1e-12), 0.0)


def scorecam(activations: torch.Tensor, masked_scores: torch.Tensor) -> torch.Tensor:
    """Score-CAM: channel weights are the target-class probabilities of the input masked by each
    channel (Wang et al. 2020). activations (B, K, h, w), masked_scores (B, K) -> (B, h, w)."""
    return weighted_maps(activations, masked_scores)


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max scale each (h, w) map of a (B, h, w) batch to [0, 1]; a flat map becomes zeros."""
    low = maps.amin(dim=(1, 2), keepdim=True)
    span = maps.amax(dim=(1, 2), keepdim=True) - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(1e-12), 0.0)


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of (B, h, w) maps to (B, H, W), then scaling to [0, 1]."""
    upsampled = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)
    return normalize_maps(upsampled[:, 0])
