"""Per-layer gradient norms, the quantity that shows gradients vanishing in deep plain nets."""

from __future__ import annotations

import torch
from torch import nn

from resdeep.models import weight_layers


class GradNormTracker:
    """L2 norm of the weight gradient of every conv and linear layer, in network order.

    All norms come from one grouped (foreach) kernel launch and one device-to-host copy, so
    logging them costs one sync per log point rather than one `.item()` per layer.
    """

    def __init__(self, model: nn.Module) -> None:
        layers = weight_layers(model)
        self.layer_names: list[str] = [name for name, _ in layers]
        self._weights: list[torch.Tensor] = [module.weight for _, module in layers]

    def compute(self) -> torch.Tensor:
        """Norms on the model's device, shape (layers,); zero for a layer without a gradient."""
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self._weights]
        return torch.stack(torch._foreach_norm(grads)).float()
