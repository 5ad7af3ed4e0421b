"""Config checks beyond types (the schema's, resdeep/schema.py): allowed values, ranges and
combinations; torch-free, run before Hydra starts a job and again in the job."""

from __future__ import annotations

import difflib
import os

from omegaconf import DictConfig, OmegaConf

from resdeep.errors import UsageError
from resdeep.schema import TrainConfig, choices_by_key

CHOICES = choices_by_key()


def schema_keys() -> list[str]:
    """Every dotted key of the schema, e.g. "model.depth"."""
    schema = OmegaConf.to_container(OmegaConf.structured(TrainConfig))
    return list(_dotted(schema))


def _dotted(node: dict, prefix: str = ""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _dotted(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def unknown_key_message(key: str) -> str:
    """ "unknown key model.dept; did you mean model.depth?" (the nearest schema keys)."""
    near = difflib.get_close_matches(key, schema_keys(), n=2, cutoff=0.6)
    if not near:
        # "depth=56": the right leaf under another group.
        leaf = key.rsplit(".", 1)[-1]
        near = [k for k in schema_keys() if k.rsplit(".", 1)[-1] == leaf][:2]
    hint = f"; did you mean {' or '.join(near)}?" if near else ""
    return f"unknown config key {key}{hint} (`resdeep train --help` lists every key)"


def validate(cfg: DictConfig) -> None:
    """One clear line for a key the schema does not know (added with `+`), a value out of its
    choices, or out of range. Types are the schema's: Hydra checks them while composing."""
    known = set(schema_keys())
    schema_only = {k: v for k, v in OmegaConf.to_container(cfg).items() if k != "hydra"}
    for key in _dotted(schema_only):
        if key not in known:
            raise UsageError(unknown_key_message(key))
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
    if cfg.trainer.compile_mode != "default" and not cfg.trainer.compile:
        raise UsageError(
            f"trainer.compile_mode={cfg.trainer.compile_mode} needs trainer.compile=true"
        )
