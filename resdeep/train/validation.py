"""Config checks beyond types (the schema's, resdeep/schema.py): allowed values, ranges and
combinations; torch-free, run before Hydra starts a job and again in the job."""

from __future__ import annotations

import difflib
import os
import re

from omegaconf import DictConfig, OmegaConf

from resdeep.errors import UsageError, first_line
from resdeep.schema import TrainConfig, choices_by_key
from resdeep.train.resume import planned_steps

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


TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}


def composition_error_line(error: Exception) -> str:
    """Hydra's multi-line composition errors, condensed: what is wrong and what is possible.

    An unknown key gets the nearest known keys, never Hydra's advice to append it with `+`
    (which would train with the typo ignored).
    """
    unknown = re.search(r"Could not override '([\w.]+)'", str(error))
    if unknown and "not in" in f"{error} {error.__cause__}":
        return unknown_key_message(unknown.group(1))
    wrong_type = re.search(
        r"override ([\w.]+)=.*?Value '(.*)' of type '\w+' could not be converted to (\w+)",
        f"{error} {error.__cause__}",
        re.DOTALL,
    )
    if wrong_type:
        key, value, kind = wrong_type.groups()
        wanted = TYPE_WORDS.get(kind, f"of type {kind}")
        return f"{key} must be {wanted}, got {value!r}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    kept = []
    for line in lines:
        if line.startswith(
            (
                "Config search path",
                "provider=",
                "See https://",
                "full_key:",
                "object_type=",
                "Set the environment",
            )
        ):
            break
        kept.append(line)
    if isinstance(error.__cause__, Exception) and str(error.__cause__).strip():
        kept.append(first_line(error.__cause__))
    # "Available options in 'model':" and one option per line become one comma-separated list.
    parts: list[str] = []
    for line in kept:
        if parts and parts[-1].endswith((":", ",")) and " " not in line:
            parts[-1] += (" " if parts[-1].endswith(":") else " ") + line + ","
        else:
            parts.append(line)
    parts = [part.rstrip(",") for part in parts]
    text = "; ".join(parts).replace(":;", ":").replace(".;", ";").replace("In 'train': ", "")
    return text or type(error).__name__


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
    if float(cfg.optim.lr) <= 0:
        raise UsageError(f"optim.lr must be positive, got {cfg.optim.lr}")
    if float(cfg.optim.weight_decay) < 0:
        raise UsageError(f"optim.weight_decay must be >= 0, got {cfg.optim.weight_decay}")
    if int(cfg.data.batch_size) < 1:
        raise UsageError(f"data.batch_size must be at least 1, got {cfg.data.batch_size}")
    if int(cfg.trainer.devices) < 1:
        raise UsageError(f"trainer.devices must be at least 1, got {cfg.trainer.devices}")
    planned_steps(cfg.trainer, steps_per_epoch=1)  # a budget: epochs and/or max_steps, >= 1
    if int(cfg.trainer.log_every) < 1:
        raise UsageError(f"trainer.log_every must be at least 1, got {cfg.trainer.log_every}")
    if cfg.trainer.threads is not None and int(cfg.trainer.threads) < 1:
        raise UsageError(f"trainer.threads must be at least 1, got {cfg.trainer.threads}")
    ranks = max(int(cfg.trainer.devices), int(os.environ.get("WORLD_SIZE", "1")))
    if cfg.trainer.on_nan == "skip" and ranks > 1:
        # A rank that skips backward() leaves the others waiting in DDP's all-reduce forever.
        raise UsageError(
            "trainer.on_nan=skip works on one process only (a rank that skipped a step would "
            "leave the others waiting); use trainer.on_nan=stop with several devices"
        )
    _check_model(cfg)
    if cfg.trainer.compile_mode != "default" and not cfg.trainer.compile:
        raise UsageError(
            f"trainer.compile_mode={cfg.trainer.compile_mode} needs trainer.compile=true"
        )


def _check_model(cfg: DictConfig) -> None:
    """The model group builds a net (a depth its blocks allow, a shortcut its units take), so
    a sweep learns of a bad combination before any job trains."""
    from resdeep.config import MODEL_KEYS
    from resdeep.models.factory import ModelConfigError, check_model_args

    try:
        check_model_args(**{key: cfg.model[key] for key in MODEL_KEYS if key in cfg.model})
    except ModelConfigError as error:
        raise UsageError(str(error)) from error
