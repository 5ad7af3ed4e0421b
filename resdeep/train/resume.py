"""Continuing a run: which checkpoint, with which settings, and for how long.

A resumed run is the run its checkpoint says it is: its settings come from the checkpoint, never
from what a later command line composes. A command may change only how and where the run goes on
(CHANGEABLE_ON_RESUME) and its budget; anything else would train another run under this one's name
and is refused with the first differing key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from resdeep.errors import UsageError
from resdeep.schema import TrainConfig

# What a resumed run may change, each with why that leaves the run what it is.
CHANGEABLE_ON_RESUME: dict[str, str] = {
    "trainer.epochs": "the budget: a larger one extends the run",
    "trainer.max_steps": "the budget: a larger one extends the run",
    "trainer.device": "where it runs: the same weights and data on another device",
    "trainer.devices": "how many devices share the same global batch",
    "trainer.threads": "CPU threads: the same computation, scheduled differently",
    "trainer.log_every": "how often it logs",
    "trainer.dense_first_epoch": "how often it logs",
    "trainer.figures": "what TensorBoard shows",
    "trainer.progress": "what the terminal shows",
    "trainer.eval_batch_size": "how evaluation is batched: the same numbers",
    "trainer.channels_last": "memory layout: the same computation",
    "trainer.compile": "torch.compile: the same computation, faster",
    "trainer.compile_mode": "torch.compile: the same computation, faster",
    "trainer.deterministic": "which kernels compute the same operations",
    "trainer.on_nan": "what a non-finite loss does from now on",
    "trainer.resume": "which checkpoint is continued",
    "data.root": "where the data files are, not which data",
    "data.download": "whether missing files are fetched",
}

# Config groups: an override `data=X` changes every key of the group.
GROUPS = ("model", "data", "optim", "schedule", "trainer")


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """{"model.depth": 56, ...}: the leaves of a plain (container) config."""
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    found: dict[str, Any] = {}
    for key, value in node.items():
        if key == "hydra" and not prefix:
            continue
        found.update(flat(value, f"{prefix}{key}."))
    return found


def typed_keys(overrides: Iterable[str], keys: Iterable[str]) -> list[str]:
    """The config keys a command line sets: `model.depth=56` that key, `data=cifar10` every key
    of the group, `experiment=X` every key (a preset may set any of them)."""
    keys = list(keys)
    found: list[str] = []
    for override in overrides:
        name = override.split("=", 1)[0].lstrip("+~")
        if name.startswith(("hydra.", "hydra/")) or name == "hydra" or "=" not in override:
            continue
        if name == "experiment":
            return keys
        if name in GROUPS:
            found += [key for key in keys if key.startswith(f"{name}.")]
        else:
            found.append(name)
    return list(dict.fromkeys(found))


def resumed_config(
    saved: dict[str, Any], current: DictConfig, overrides: Sequence[str], run: Path
) -> DictConfig:
    """The config a resumed run goes on with: the one it was trained with (`saved`, from its
    checkpoint), with the changeable keys the command line sets taken from `current`. A key the
    run's own version did not know takes the schema's default."""
    base = OmegaConf.merge(OmegaConf.structured(TrainConfig), saved)
    was = flat(OmegaConf.to_container(base, resolve=True))
    now = flat(OmegaConf.to_container(current, resolve=True))
    for key in typed_keys(overrides, now):
        if key not in now or now[key] == was.get(key):
            continue
        if key not in CHANGEABLE_ON_RESUME:
            raise UsageError(
                f"{run} was trained with {key}={_shown(was.get(key))}; resuming it with "
                f"{key}={_shown(now[key])} would train another run (a resumed run may change "
                "only its budget, device, threads and logging): drop the override, or start a "
                "new run"
            )
        OmegaConf.update(base, key, now[key], force_add=True)
    return base


def _shown(value: Any) -> str:
    return (
        "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def resume_target(trainer: DictConfig, run_dir: Path, requeued: bool) -> Path | None:
    """The checkpoint to continue from, if any.

    `trainer.resume=auto` (and a SLURM requeue of a job that already checkpointed) continues
    this run dir when it holds a checkpoint; otherwise a run dir is never overwritten.
    """
    from resdeep.checkpoint import resolve_checkpoint_path
    from resdeep.runs import refuse_existing_run, run_dir_of

    resume = trainer.resume
    existing = run_dir / "checkpoints" / "last.pt"
    if resume == "auto" or (resume is None and requeued):
        return existing if existing.exists() else None
    if resume:
        path = resolve_checkpoint_path(resume, "last.pt")
        if run_dir_of(path).resolve() != run_dir.resolve():
            # Continued into another directory: that one must not hold a run of its own.
            refuse_existing_run(run_dir, resuming=False)
        return path
    refuse_existing_run(run_dir, resuming=False)
    return None


def planned_steps(trainer: DictConfig | dict, steps_per_epoch: int) -> int:
    """The run's step budget: `trainer.epochs` passes and/or `trainer.max_steps`, the smaller."""
    epochs, max_steps = trainer.get("epochs"), trainer.get("max_steps")
    if epochs is None and max_steps is None:
        raise UsageError("set trainer.epochs or trainer.max_steps")
    if epochs is not None and int(epochs) < 1:
        raise UsageError(f"trainer.epochs must be at least 1, got {epochs}")
    if max_steps is not None and int(max_steps) < 1:
        raise UsageError(f"trainer.max_steps must be at least 1, got {max_steps}")
    total = math.inf if epochs is None else int(epochs) * steps_per_epoch
    return int(min(total, math.inf if max_steps is None else int(max_steps)))


def steps_per_epoch_of(checkpoint: dict[str, Any]) -> int | None:
    """Optimizer steps in one pass over the run's training data, as the run recorded it (older
    runs: the step count of its first finished epoch)."""
    state = checkpoint.get("loop_state", {})
    if state.get("steps_per_epoch"):
        return int(state["steps_per_epoch"])
    history = state.get("history") or []
    return int(history[0]["step"]) if history else None


def budget_check(checkpoint: dict[str, Any], trainer: DictConfig, run: Path) -> str:
    """What resuming `checkpoint` with this budget means: "continue" (an interrupted run to its
    budget), "extend" (a larger budget) or "complete" (nothing left to train); a budget smaller
    than what the run has trained is refused."""
    state = checkpoint.get("loop_state", {})
    step, epoch = int(state.get("step", 0)), int(state.get("epoch", 0))
    per_epoch = steps_per_epoch_of(checkpoint)
    if per_epoch is None:  # stopped in its first epoch: any budget still lies ahead
        return "continue"
    budget = planned_steps(trainer, per_epoch)
    saved_budget = planned_steps(checkpoint.get("config", {}).get("trainer", {}), per_epoch)
    if budget < step:
        raise UsageError(
            f"{run} has trained {step} steps ({epoch} epochs) already; a budget of {budget} "
            "steps would end before that: give trainer.epochs or trainer.max_steps beyond it"
        )
    if budget == step and state.get("status") != "interrupted":
        return "complete"
    return "extend" if budget > saved_budget else "continue"


def complete_message(checkpoint: dict[str, Any], run: Path) -> str:
    state = checkpoint.get("loop_state", {})
    epoch, step = int(state.get("epoch", 0)), int(state.get("step", 0))
    return (
        f"{run} is complete ({epoch} epochs, {step} steps); to train on, give a larger "
        f"budget: resdeep train trainer.resume={run} trainer.epochs={epoch * 2 or 1}"
    )
