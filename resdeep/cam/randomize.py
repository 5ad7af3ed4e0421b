"""Model-parameter randomisation (Adebayo et al. 2018): replace a network's trained weights with
freshly initialised ones, from the classifier down (cascading) or one part at a time
(independent), so a map can be compared with the map of a net that learned nothing there.

The parts are the net's top-level modules, grouped as the network runs: the classifier; each
stage with whatever follows it before the next part (a pre-activation net's final BN-ReLU joins
stage 3); the stem with anything before stage 1. The fresh weights come from building the same
net again (resdeep's own initialisation for it) with another seed, parameters and buffers alike,
so a randomised batch norm has the running statistics of a net that never saw data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from resdeep.choices import CAM_RANDOMIZATIONS

# The parts, output to input: the cascade's order.
PART_ORDER = ("classifier", "stage3", "stage2", "stage1", "stem")


@dataclass(frozen=True)
class Randomization:
    """One randomised net: its label and the top-level modules whose weights are fresh."""

    label: str  # "classifier", "+ stage3" (cascading), "stage2 only" (independent)
    modules: tuple[str, ...]


def model_parts(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """PART_ORDER's parts, each with the top-level modules (holding weights or buffers) it
    covers, in network order."""
    parts: dict[str, list[str]] = {name: [] for name in PART_ORDER}
    current = "stem"
    for name, child in model.named_children():
        if name in parts:
            current = name
        if next(child.parameters(), None) is None and next(child.buffers(), None) is None:
            continue
        parts["classifier" if name == "classifier" else current].append(name)
    return {name: tuple(modules) for name, modules in parts.items() if modules}


def cascading(model: nn.Module) -> list[Randomization]:
    """The classifier, then the classifier and stage 3, ..., down to everything."""
    steps, done = [], ()
    for number, (part, modules) in enumerate(model_parts(model).items()):
        done = done + modules
        steps.append(Randomization(part if number == 0 else f"+ {part}", done))
    return steps


def independent(model: nn.Module) -> list[Randomization]:
    """Each part alone, the rest trained."""
    return [Randomization(f"{part} only", modules) for part, modules in model_parts(model).items()]


@contextmanager
def randomized(model: nn.Module, fresh: nn.Module, modules: tuple[str, ...]) -> Iterator[None]:
    """`model` with the weights and buffers of `modules` taken from `fresh` (the same net,
    initialised and never trained), put back exactly on exit, whatever happens."""
    own = dict(model.named_children())
    other = dict(fresh.named_children())
    saved = {name: {k: v.clone() for k, v in own[name].state_dict().items()} for name in modules}
    try:
        with torch.no_grad():
            for name in modules:
                own[name].load_state_dict(other[name].state_dict())
        yield
    finally:
        with torch.no_grad():
            for name, state in saved.items():
                own[name].load_state_dict(state)


# Each kind of randomisation, by the name --randomization takes (resdeep.choices).
RANDOMIZATIONS = dict(zip(CAM_RANDOMIZATIONS, (cascading, independent), strict=True))
