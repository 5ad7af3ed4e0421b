"""Config checks that need no torch: run before Hydra starts a job, and again in the job."""

from __future__ import annotations

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
