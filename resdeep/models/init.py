"""Weight initialisation schemes compared by the init study.

- kaiming: He et al. 2015, normal with std = sqrt(2 / fan_in), the paper's choice for ReLU nets.
- xavier: Glorot & Bengio 2010, normal with std = sqrt(2 / (fan_in + fan_out)).
- orthogonal: Saxe et al. 2014, orthogonal matrices scaled by the ReLU gain sqrt(2).
- default: whatever PyTorch's layer constructors did (kaiming_uniform with a = sqrt(5), i.e.
  Var = 1 / (3 fan_in): much smaller than He's).
"""

from __future__ import annotations

from torch import nn

from resdeep.choices import INITS


def init_weights(model: nn.Module, scheme: str, zero_init_residual: bool = False) -> None:
    """Initialise every conv and linear weight of `model` with `scheme`; biases start at zero."""
    if scheme not in INITS:
        raise ValueError(f"unknown init {scheme!r}; choose one of {', '.join(INITS)}")
    for module in model.modules():
        if scheme != "default" and isinstance(module, nn.Conv2d | nn.Linear):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_normal_(module.weight)
            else:
                nn.init.orthogonal_(module.weight, gain=nn.init.calculate_gain("relu"))
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    if zero_init_residual:
        for module in model.modules():
            if hasattr(module, "zero_init_last"):
                module.zero_init_last()
