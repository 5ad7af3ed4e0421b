"""`resdeep train --help`: the config groups and their options, every key with its default,
allowed values and meaning, examples and flags — from the typed schema and the YAML groups, the
same sources the run composes from, and without importing torch."""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

import yaml

from resdeep import schema
from resdeep.config import CONFIG_DIR

GROUPS = ("model", "data", "optim", "schedule", "experiment")

USAGE = """\
Usage: resdeep train [GROUP=OPTION ...] [KEY=VALUE ...] [-m] [--cfg job] [--debug]

Train plain and residual networks. Every argument is a Hydra override: pick a config group's
option with GROUP=OPTION, set any key with KEY=VALUE. A run writes runs/<time>_<net>_<data>/
(relative to where you start it): checkpoints, metrics.json, TensorBoard events.

Examples:
  resdeep train model=plain model.depth=56 trainer.epochs=10
  resdeep train -m model=plain,resnet model.depth=20,56,110    a sweep: one run per combination
  resdeep train -m experiment=depth_study                      the demo's depth study
  resdeep train data=cifar10 data.download=true trainer.device=cuda trainer.precision=bf16
  resdeep train trainer.resume=runs/<run> trainer.epochs=30    continue a run, with a new budget
"""

FLAGS = """\
Flags:
  -m, --multirun      sweep: comma-separated values run one job each (hydra/launcher=joblib,
                      submitit_local or slurm_gpu to run them in parallel or on a cluster)
  --cfg job           print the composed config and exit (--cfg all: Hydra's part too)
  --debug             show tracebacks instead of one-line errors
  --hydra-help        Hydra's own help (its flags, launchers, sweepers, tab completion)
"""


def _default(item) -> str:
    if item.default is not MISSING:
        value = item.default
    elif item.default_factory is not MISSING:
        value = item.default_factory()
    else:
        return "-"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def key_rows(cls: type = schema.TrainConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, meaning) for every leaf of the schema; choices join the meaning."""
    rows = []
    for item in fields(cls):
        key = f"{prefix}{item.name}"
        default = item.default_factory() if item.default_factory is not MISSING else None
        if is_dataclass(default):
            rows += key_rows(type(default), key + ".")
            continue
        meaning = item.metadata.get("help", "")
        choices = item.metadata.get("choices")
        if choices:
            allowed = " | ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
            meaning = f"{allowed}" + (f"; {meaning}" if meaning else "")
        rows.append((key, _default(item), meaning))
    return rows


def _describe(path: Path, limit: int = 88) -> str:
    """The opening comment of a YAML option (what it is), cut at `limit` characters."""
    words = []
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#"):
            if words or text:
                break
            continue
        if "@package" not in text:
            words.append(text.lstrip("# ").strip())
            if words[-1].endswith("."):  # the first sentence says what it is
                break
    about = " ".join(words)
    if len(about) <= limit:
        return about
    return about[: about.rfind(" ", 0, limit)].rstrip(",;:") + " …"


def group_lines() -> list[str]:
    defaults = {}
    for entry in yaml.safe_load((CONFIG_DIR / "train.yaml").read_text())["defaults"]:
        if isinstance(entry, dict):
            defaults.update({k: v for k, v in entry.items() if k in GROUPS})
    lines = ["Config groups (GROUP=OPTION; * = the default):"]
    for group in GROUPS:
        options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        lines.append(f"  {group}")
        for option in options:
            mark = "*" if defaults.get(group) == option else " "
            about = _describe(CONFIG_DIR / group / f"{option}.yaml")
            lines.append(f"    {mark} {option:<15} {about}".rstrip())
    return lines


def train_help() -> str:
    rows = key_rows()
    width = max(len(key) for key, _, _ in rows)
    keys = ["Keys (KEY=VALUE), default, meaning:"]
    for key, default, meaning in rows:
        keys.append(f"  {key:<{width}}  {default:<12} {meaning}".rstrip())
    return "\n".join([USAGE, *group_lines(), "", *keys, "", FLAGS])
