"""Config checks that need no torch: run before Hydra starts a job, and again in the job."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from resdeep.errors import UsageError

# Keys whose type a typo would break deep inside training; checked up front instead.
INTEGER_KEYS = (
    "seed",
    "model.depth",
    "data.batch_size",
    "trainer.log_every",
    "trainer.eval_batch_size",
    "trainer.devices",
    "trainer.epochs",
    "trainer.max_steps",
)
NUMBER_KEYS = ("model.dropout", "optim.lr", "optim.weight_decay")
CHOICES = {"trainer.on_nan": ("stop", "skip"), "trainer.progress": ("auto", "bar", "lines")}


def slurm_requeued() -> bool:
    """A SLURM job started again after preemption or a time limit (submitit requeues it)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0


def refuse_existing_run(run_dir: Path, resuming: bool) -> None:
    """A run dir that already holds a checkpoint is never trained into again unless resumed."""
    if (run_dir / "checkpoints" / "last.pt").exists() and not resuming and not slurm_requeued():
        raise UsageError(
            f"{run_dir} already holds a run; continue it with trainer.resume={run_dir} "
            "or pick another hydra.run.dir"
        )


def validate(cfg: DictConfig) -> None:
    """One clear line for a value of the wrong type or out of range."""
    for key in INTEGER_KEYS + NUMBER_KEYS:
        value = OmegaConf.select(cfg, key)
        if value is None and key in ("trainer.epochs", "trainer.max_steps"):
            continue
        kind = int if key in INTEGER_KEYS else float
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and not float(value).is_integer())
        ):
            raise UsageError(
                f"{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}"
            )
    for key, choices in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value is not None and value not in choices:
            raise UsageError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    if int(cfg.trainer.log_every) < 1:
        raise UsageError(f"trainer.log_every must be at least 1, got {cfg.trainer.log_every}")
