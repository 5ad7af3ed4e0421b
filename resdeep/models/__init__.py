"""Plain, residual and pre-activation residual networks for small images."""

from resdeep.models.base import ConvNet, restoring_modes
from resdeep.models.factory import (
    ARCHITECTURES,
    BLOCKS,
    ModelConfigError,
    blocks_per_stage,
    build_model,
)
from resdeep.models.init import INIT_SCHEMES, init_weights
from resdeep.models.summary import (
    ModelSummary,
    count_macs,
    count_parameters,
    depth_layers,
    summarize,
    weight_layers,
)

__all__ = [
    "ARCHITECTURES",
    "BLOCKS",
    "INIT_SCHEMES",
    "ConvNet",
    "ModelConfigError",
    "ModelSummary",
    "blocks_per_stage",
    "build_model",
    "count_macs",
    "count_parameters",
    "depth_layers",
    "init_weights",
    "restoring_modes",
    "summarize",
    "weight_layers",
]
