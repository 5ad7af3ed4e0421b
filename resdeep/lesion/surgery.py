"""Deleting and reordering blocks of a trained net at test time (Veit et al. 2016, section 4).

A deleted residual block passes only its shortcut: its output is `merge(shortcut(x))`, what the
block computes with its residual branch zeroed. A deleted plain block passes its input on
unchanged, which only exists where the block keeps the shape of its input; a block that changes
shape (the first of stages 2 and 3) is deleted through its shortcut (option A's zero padding or
option B's projection) and flagged, and in a plain net, which has no shortcut, it cannot be
deleted at all.

Evaluation is batch-outer, plans-inner, and walks the plans as a tree: plans that agree up to a
position (the intact net and a deletion of block p agree up to p; two draws that delete the
same first block, up to their second) compute what lies before it once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from resdeep.models import ConvNet, evaluation_mode

# A plan says, position by position, which block runs there and whether it is deleted:
# ((block index, deleted), ...). The intact net is ((0, False), (1, False), ...).
Step = tuple[int, bool]
Plan = tuple[Step, ...]


@dataclass(frozen=True)
class BlockInfo:
    """One block as a lesion sees it."""

    index: int
    name: str  # stage1.block1, as in the gradient-norm tags
    residual: bool
    changes_shape: bool  # its output has another shape than its input
    deletable: bool
    why_not: str | None = None  # the reason it cannot be deleted


def describe_blocks(model: ConvNet, input_shape: Sequence[int]) -> list[BlockInfo]:
    """Every block of `model` with its kind, whether it changes shape (found by running one
    zero image through the net) and whether it can be deleted."""
    blocks = model.blocks()
    names = {id(module): name for name, module in model.named_modules()}
    parameter = next(model.parameters())
    x = torch.zeros(1, *input_shape, device=parameter.device, dtype=parameter.dtype)
    infos = []
    with torch.no_grad(), evaluation_mode(model):
        x = model.stem(x)
        for index, block in enumerate(blocks):
            output = block(x)
            residual = block.paths(x)[1] is not None
            changes_shape = output.shape != x.shape
            deletable = residual or not changes_shape
            infos.append(
                BlockInfo(
                    index=index,
                    name=names[id(block)],
                    residual=residual,
                    changes_shape=changes_shape,
                    deletable=deletable,
                    why_not=None
                    if deletable
                    else "changes shape and a plain block has no shortcut to pass instead",
                )
            )
            x = output
    return infos


def intact_plan(count: int) -> Plan:
    return tuple((index, False) for index in range(count))


def deletion_plan(count: int, deleted: Sequence[int]) -> Plan:
    """The blocks in `deleted` removed, the others in place."""
    removed = set(deleted)
    return tuple((index, index in removed) for index in range(count))


def swap_plan(count: int, positions: Sequence[int]) -> Plan:
    """Each position p in `positions` swapped with p + 1 (the pairs must not overlap)."""
    order = list(range(count))
    for position in positions:
        order[position], order[position + 1] = order[position + 1], order[position]
    return tuple((index, False) for index in order)


def run_step(block: torch.nn.Module, x: torch.Tensor, deleted: bool) -> torch.Tensor:
    """One block, or what is left of it when deleted: its shortcut, or the input (plain)."""
    if not deleted:
        return block(x)
    _, shortcut = block.paths(x)
    if shortcut is None:
        return x
    # An identity shortcut is `x` itself, and a post-activation merge is an in-place ReLU: a
    # copy keeps the stored block inputs that other plans start from intact.
    return block.merge(shortcut.clone())


@dataclass(frozen=True)
class PlanScore:
    """Accuracy and mean negative log-likelihood of one plan on the evaluated images."""

    accuracy: float
    nll: float


def evaluate_plans(
    model: ConvNet,
    images: torch.Tensor,
    labels: torch.Tensor,
    plans: Sequence[Plan],
    *,
    batch_size: int = 512,
) -> list[PlanScore]:
    """Every plan's accuracy and NLL on (images, labels), batch norm and dropout in eval mode.

    `images` are normalised model inputs (N, C, H, W); they are moved to the model's device a
    batch at a time."""
    count = len(model.blocks())
    for plan in plans:
        if len(plan) != count:
            raise ValueError(f"a plan for {len(plan)} blocks on a net of {count}")
    if not plans:
        return []
    device = next(model.parameters()).device
    correct = torch.zeros(len(plans), dtype=torch.float64)
    nll = torch.zeros(len(plans), dtype=torch.float64)
    with torch.inference_mode(), evaluation_mode(model):
        for start in range(0, len(images), batch_size):
            x = images[start : start + batch_size].to(device)
            y = labels[start : start + batch_size].to(device)
            for index, logits in plan_logits(model, model.stem(x), plans):
                correct[index] += (logits.argmax(dim=1) == y).sum().item()
                nll[index] += F.cross_entropy(logits.double(), y, reduction="sum").item()
    total = max(len(images), 1)
    return [
        PlanScore(accuracy=float(c) / total, nll=float(n) / total)
        for c, n in zip(correct, nll, strict=True)
    ]


def plan_logits(
    model: ConvNet, x: torch.Tensor, plans: Sequence[Plan]
) -> list[tuple[int, torch.Tensor]]:
    """(plan index, logits) for every plan, walking the plans as a tree: plans that agree up to
    a position share everything computed before it, so each distinct prefix runs once. Depth
    first, so only the states at the branch points of the current path are held; the intact
    net's own prefix is shared by every plan until its first change."""
    blocks = model.blocks()
    results: list[tuple[int, torch.Tensor]] = []
    pending = [(list(range(len(plans))), x, 0)]
    while pending:
        members, h, position = pending.pop()
        while position < len(blocks):
            steps = {plans[i][position] for i in members}
            if len(steps) > 1:
                break
            (step,) = steps
            h = run_step(blocks[step[0]], h, step[1])
            position += 1
        if position == len(blocks):
            logits = model.forward_head(model.after_blocks(h))
            results += [(i, logits) for i in members]
            continue
        by_step: dict[Step, list[int]] = {}
        for i in members:
            by_step.setdefault(plans[i][position], []).append(i)
        # Each group agrees at `position` now; it runs from the shared state when popped.
        pending += [(group, h, position) for group in by_step.values()]
    return results
