"""One checkpoint's lesion study: single-block deletion, k-block deletion curves, neighbour swaps
and the gradient by path length, as plain data ready for `lesion.json`."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from resdeep.choices import EVAL_SPLITS
from resdeep.errors import UsageError
from resdeep.lesion.paths import path_gradients
from resdeep.lesion.surgery import (
    BlockInfo,
    PlanScore,
    deletion_plan,
    describe_blocks,
    evaluate_plans,
    intact_plan,
    swap_plan,
)

DEFAULT_K_MAX = 10


@dataclass(frozen=True)
class LesionSettings:
    """What to measure; `check` refuses what cannot be measured before any work starts."""

    split: str = "test"
    # The k-block deletion curve goes up to this many blocks deleted together; None: up to
    # DEFAULT_K_MAX, or as many as a net has (resnet-20 has 7 that keep their shape).
    k_max: int | None = None
    draws: int = 10  # random draws of k blocks (and of k swaps) per k
    seed: int = 0
    reorder: bool = False
    paths: bool = False
    path_samples: int = 20  # paths measured per path length
    batch_size: int = 512

    def check(self) -> None:
        if self.split not in EVAL_SPLITS:
            raise UsageError(
                f"unknown --split {self.split!r}; choose one of {', '.join(EVAL_SPLITS)}"
            )
        for name, value in (
            ("--k", DEFAULT_K_MAX if self.k_max is None else self.k_max),
            ("--draws", self.draws),
            ("--path-samples", self.path_samples),
            ("--batch-size", self.batch_size),
        ):
            if value < 1:
                raise UsageError(f"{name} must be at least 1, got {value}")


@dataclass
class RunLesion:
    """Every number of one run's lesion study; `as_json` is what lesion.json stores for it."""

    run: str
    checkpoint: str
    arch: str
    depth: int
    seed: int | None
    data: str
    init: str
    norm: str
    shortcut: str
    classes: int
    split: str
    images: int
    intact: dict[str, float]
    blocks: list[dict[str, Any]]  # per block: name, kind, flags, accuracy/NLL after deletion
    k_curve: dict[str, Any]
    reorder: dict[str, Any] | None = None
    paths: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    residual_init: str = "none"  # model.residual_init (resdeep.models.normfree)

    def single_drops(self, *, same_shape_only: bool = False) -> list[float]:
        """Accuracy lost (points of 1.0) by each deleted block, input to output."""
        return [
            block["drop"]
            for block in self.blocks
            if block["deleted"] and not (same_shape_only and block["changes_shape"])
        ]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def k_candidates(blocks: list[BlockInfo]) -> list[int]:
    """The blocks a k-block deletion draws from: those that keep their shape (the same ones
    in a plain and a residual net of one depth)."""
    return [block.index for block in blocks if block.deletable and not block.changes_shape]


def k_limit(blocks: list[BlockInfo], settings: LesionSettings) -> int:
    """How far the k-curve goes on this net."""
    if settings.k_max is None:
        return min(DEFAULT_K_MAX, len(k_candidates(blocks)))
    return settings.k_max


def check_net(blocks: list[BlockInfo], settings: LesionSettings, where: str) -> None:
    """Refuse a study the net cannot support, with the reason."""
    candidates = k_candidates(blocks)
    if settings.k_max is not None and settings.k_max > len(candidates):
        raise UsageError(
            f"--k {settings.k_max}: {where} has only {len(candidates)} blocks that keep their "
            f"shape to delete together"
        )


def study_run(
    model: torch.nn.Module,
    *,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    train_inputs: torch.Tensor | None,
    train_labels: torch.Tensor | None,
    input_shape: tuple[int, ...],
    settings: LesionSettings,
    about: dict[str, Any],
) -> RunLesion:
    """The whole study of one model on normalised `inputs`; `about` names the run (run,
    checkpoint, arch, depth, seed, data, init, norm, shortcut, and residual_init if any)."""
    blocks = describe_blocks(model, input_shape)
    check_net(blocks, settings, str(about["run"]))
    n = len(blocks)
    deletable = [block.index for block in blocks if block.deletable]
    # Draw everything first, then evaluate every distinct plan once, in one walk: a k = 1 draw
    # is a single deletion, and all plans share the intact net's prefix.
    generator = torch.Generator().manual_seed(settings.seed)
    k_sets = _k_sets(blocks, settings, generator)
    swap_sets = _swap_sets(blocks, settings, generator) if settings.reorder else []
    plans = [intact_plan(n)] + [deletion_plan(n, [index]) for index in deletable]
    plans += [deletion_plan(n, chosen) for draws in k_sets for chosen in draws]
    plans += [swap_plan(n, chosen) for draws in swap_sets for chosen in draws]
    unique = list(dict.fromkeys(plans))
    scores = dict(
        zip(
            unique,
            evaluate_plans(model, inputs, labels, unique, batch_size=settings.batch_size),
            strict=True,
        )
    )
    intact = scores[plans[0]]
    singles = {index: scores[deletion_plan(n, [index])] for index in deletable}
    names = [block.name for block in blocks]
    result = RunLesion(
        **about,
        split=settings.split,
        images=len(labels),
        intact=asdict(intact),
        blocks=_block_rows(blocks, singles, intact),
        k_curve={
            "candidates": [names[i] for i in k_candidates(blocks)],
            "points": [
                _curve_point(
                    k,
                    [[names[i] for i in chosen] for chosen in draws],
                    [scores[deletion_plan(n, chosen)] for chosen in draws],
                )
                for k, draws in enumerate(k_sets, start=1)
            ],
        },
        settings=asdict(settings),
    )
    if settings.reorder:
        result.reorder = {
            "points": [
                _curve_point(
                    k,
                    [[f"{names[p]}<->{names[p + 1]}" for p in chosen] for chosen in draws],
                    [scores[swap_plan(n, chosen)] for chosen in draws],
                )
                for k, draws in enumerate(swap_sets, start=1)
            ]
        }
    # Paths need shortcuts: a plain net has one path through every block (the command says so).
    residual = all(block.residual for block in blocks)
    if settings.paths and residual and train_inputs is not None and train_labels is not None:
        result.paths = _path_study(model, train_inputs, train_labels, settings)
    return result


def _path_study(
    model: torch.nn.Module,
    train_inputs: torch.Tensor,
    train_labels: torch.Tensor,
    settings: LesionSettings,
) -> dict[str, Any]:
    gradients = path_gradients(
        model,
        train_inputs,
        train_labels,
        samples_per_length=settings.path_samples,
        seed=settings.seed,
    )
    return {
        **asdict(gradients),
        "distribution": gradients.length_distribution,
        "total_share": gradients.total_share,
    }


def _block_rows(
    blocks: list[BlockInfo], deleted: dict[int, PlanScore], intact: PlanScore
) -> list[dict[str, Any]]:
    rows = []
    for block in blocks:
        after = deleted.get(block.index)
        rows.append(
            {
                "name": block.name,
                "index": block.index,
                "kind": "residual" if block.residual else "plain",
                "changes_shape": block.changes_shape,
                "deleted": after is not None,
                "skipped": block.why_not,
                "accuracy": None if after is None else after.accuracy,
                "nll": None if after is None else after.nll,
                "drop": None if after is None else intact.accuracy - after.accuracy,
            }
        )
    return rows


def _k_sets(
    blocks: list[BlockInfo], settings: LesionSettings, generator: torch.Generator
) -> list[list[list[int]]]:
    """Per k = 1..k_limit, `draws` random sets of k blocks (sorted) among k_candidates.

    Draw d deletes the first k blocks of its own random order of the candidates: each k-set is
    uniform, and a draw's sets are nested, so its curve shows what one more deletion does
    (not the luck of a fresh draw) and its plans share their prefixes."""
    candidates = k_candidates(blocks)
    orders = [
        [candidates[i] for i in torch.randperm(len(candidates), generator=generator).tolist()]
        for _ in range(settings.draws)
    ]
    return [
        [sorted(order[:k]) for order in orders] for k in range(1, k_limit(blocks, settings) + 1)
    ]


def _swap_sets(
    blocks: list[BlockInfo], settings: LesionSettings, generator: torch.Generator
) -> list[list[list[int]]]:
    """Per k = 1.. (up to k_limit, and while every draw has k), `draws` sets of k disjoint pairs
    of neighbouring blocks to swap, each pair by its first position; both blocks of a pair keep
    their shape, so either order runs. Nested like the deletion draws: draw d swaps the first k
    pairs of its own random sequence of disjoint pairs."""
    same = [not block.changes_shape for block in blocks]
    pairs = [p for p in range(len(blocks) - 1) if same[p] and same[p + 1]]
    sequences = [_disjoint_pairs(pairs, generator) for _ in range(settings.draws)]
    most = min((len(sequence) for sequence in sequences), default=0)
    return [
        [sorted(sequence[:k]) for sequence in sequences]
        for k in range(1, min(k_limit(blocks, settings), most) + 1)
    ]


def _disjoint_pairs(pairs: list[int], generator: torch.Generator) -> list[int]:
    """Neighbour pairs in a random order, each kept unless it overlaps one kept before it."""
    chosen: list[int] = []
    for index in torch.randperm(len(pairs), generator=generator).tolist():
        position = pairs[index]
        if all(abs(position - other) > 1 for other in chosen):
            chosen.append(position)
    return chosen


def _curve_point(k: int, what: list[list[str]], after: list[PlanScore]) -> dict[str, Any]:
    accuracies = [score.accuracy for score in after]
    return {
        "k": k,
        "draws": what,
        "accuracy": accuracies,
        "nll": [score.nll for score in after],
        "mean": statistics.fmean(accuracies),
        "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
    }
