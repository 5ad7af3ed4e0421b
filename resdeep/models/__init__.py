"""Plain, residual and pre-activation residual networks for small images."""

from resdeep.models.anatomy import depth_layers, layer_responses, units, weight_layers
from resdeep.models.base import ConvNet, evaluation_mode, restoring_modes
from resdeep.models.factory import (
    ModelConfigError,
    blocks_per_stage,
    build_model,
)
from resdeep.models.init import init_weights
from resdeep.models.summary import (
    ModelSummary,
    count_macs,
    count_parameters,
    summarize_model,
)

__all__ = [
    "ConvNet",
    "ModelConfigError",
    "ModelSummary",
    "blocks_per_stage",
    "build_model",
    "count_macs",
    "count_parameters",
    "depth_layers",
    "init_weights",
    "layer_responses",
    "evaluation_mode",
    "restoring_modes",
    "summarize_model",
    "units",
    "weight_layers",
]
