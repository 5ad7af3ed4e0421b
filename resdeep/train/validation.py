"""Config checks that need no torch: run before Hydra starts a job, and again in the job."""

from __future__ import annotations

import os

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
CHOICES = {
    "trainer.on_nan": ("stop", "skip"),
    "trainer.progress": ("auto", "bar", "lines"),
    "trainer.channels_last": ("auto", True, False),
}


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
        # `is`/type-exact match: 1 == True in Python, and "true" is not a boolean.
        if value is not None and not any(
            value == choice and type(value) is type(choice) for choice in choices
        ):
            allowed = ", ".join(str(c).lower() if isinstance(c, bool) else c for c in choices)
            raise UsageError(f"{key} must be one of {allowed}; got {value!r}")
    if int(cfg.trainer.log_every) < 1:
        raise UsageError(f"trainer.log_every must be at least 1, got {cfg.trainer.log_every}")
    ranks = max(int(cfg.trainer.devices), int(os.environ.get("WORLD_SIZE", "1")))
    if cfg.trainer.on_nan == "skip" and ranks > 1:
        # A rank that skips backward() leaves the others waiting in DDP's all-reduce forever.
        raise UsageError(
            "trainer.on_nan=skip works on one process only (a rank that skipped a step would "
            "leave the others waiting); use trainer.on_nan=stop with several devices"
        )
