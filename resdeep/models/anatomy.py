"""Where in a network a measurement is taken: its weight layers, its units (the stem and every
block, whose outputs carry the forward and backward signal) and its layer responses."""

from __future__ import annotations

import logging
import re

from torch import fx, nn

from resdeep.errors import first_line

log = logging.getLogger("resdeep.models")

# Module names of the units every resdeep network is built from (resdeep.models.base).
UNIT_NAME = re.compile(r"stem|stage\d+\.block\d+")


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every conv and linear layer in network order, shortcut projections included."""
    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]


def depth_layers(model: nn.Module) -> list[str]:
    """The weight layers that count towards a network's depth: not the shortcut projections."""
    return [name for name, _ in weight_layers(model) if ".shortcut." not in name]


def units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The stem and every block, input to output. A unit's output is where the forward signal
    leaves it and the backward signal ‖∂L/∂x‖ enters it; its input is the previous unit's
    output, so the ratio of neighbouring backward signals is one block's backward gain."""
    return [(name, module) for name, module in model.named_modules() if UNIT_NAME.fullmatch(name)]


def layer_responses(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(conv name, the module whose output is that conv's response), for every conv that counts
    towards the depth, input to output.

    He et al. 2015 (Fig. 7) define a layer's response as "the output of each 3x3 layer, after BN
    and before other nonlinearity (ReLU/addition)": the batch norm that takes the conv's output
    directly when there is one (post-activation blocks), the conv itself otherwise
    (pre-activation branches end on a conv; nets without BN). Which is which is read off the
    traced graph once, so every architecture is covered without a per-block list.
    """
    modules = dict(model.named_modules())
    convs = [
        name
        for name in depth_layers(model)
        if isinstance(modules[name], nn.Conv2d)  # the classifier is no conv
    ]
    following: dict[str, str] = {}
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as error:  # noqa: BLE001 - an untraceable custom net: its conv outputs
        log.warning(
            "cannot trace %s (%s): layer responses are its convs' outputs, not after BN",
            type(model).__name__,
            first_line(error),
        )
        graph = None
    if graph is not None:
        for node in graph.nodes:
            if node.op != "call_module" or node.target not in convs or len(node.users) != 1:
                continue
            (user,) = node.users
            if user.op == "call_module" and isinstance(modules[user.target], nn.BatchNorm2d):
                following[node.target] = user.target
    return [(name, modules[following.get(name, name)]) for name in convs]
