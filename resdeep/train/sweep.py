"""A `-m` sweep before Hydra launches it: its directory and job names, every job checked before
the first starts, and the directory of an earlier start of the same sweep to continue."""

from __future__ import annotations

from pathlib import Path

import yaml
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from resdeep.config import CONFIG_DIR, compose_train_config
from resdeep.errors import Problems, UsageError

NOT_A_SWEEP = {"--help", "-h", "--cfg", "-c"}


def is_sweep(args: list[str]) -> bool:
    return bool({"-m", "--multirun"} & set(args)) and not NOT_A_SWEEP & set(args)


def _overrides(args: list[str]) -> list[str]:
    return [a for a in args if "=" in a and not a.startswith("-")]


def _fixed(args: list[str]) -> list[str]:
    """The overrides every job shares: what Hydra's own parser reads as no sweep (`a=1,2`,
    `range(...)`, `glob(...)` are sweeps; `data.classes=[0,1]` is one value)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    fixed = []
    for line in _overrides(args):
        try:
            (override,) = parser.parse_overrides([line])
        except (HydraException, OmegaConfBaseException):
            fixed.append(line)  # malformed: composing it reports the problem
            continue
        if not override.is_sweep_override():
            fixed.append(line)
    return fixed


def sweep_jobs(args: list[str]) -> list[list[str]]:
    """Each job's task overrides, in Hydra's order: its basic sweeper's own expansion of the
    config's `hydra.sweeper.params` and the command line (which wins for a key in both)."""
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = compose_train_config(_fixed(args), hydra=True).hydra.sweeper.params or {}
    lines = [f"{key}={value}" for key, value in params.items()] + _overrides(args)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        parsed = OverridesParser.create(config_loader=loader).parse_overrides(lines)
        task = [o for o in parsed if not o.is_hydra_override()]
        for override in task:
            override.config_loader = loader  # glob() lists a group's options through it
        (jobs,) = BasicSweeper.split_arguments(task, max_batch_size=None)
    return jobs


def check_sweep(args: list[str]) -> None:
    """Compose and validate every job of the sweep before the first one starts: one line per
    distinct problem (a key typo with the nearest keys, an unknown option with the available
    ones, a value out of its range or a depth that builds no net), exit 2, nothing written."""
    from resdeep.train.validation import composition_error_line

    try:
        jobs = sweep_jobs(args)
    except (HydraException, OmegaConfBaseException) as error:
        raise Problems([composition_error_line(error)]) from error
    checked_configs(jobs)


def checked_configs(jobs: list[list[str]]) -> list[DictConfig]:
    """Each job's composed config, validated; every distinct problem of all jobs at once (one
    line each, Problems), so nothing starts when any job cannot."""
    from resdeep.train.validation import composition_error_line, validate

    configs, problems = [], {}
    for job in jobs:
        try:
            cfg = compose_train_config(job)
            validate(cfg)
            configs.append(cfg)
        except (HydraException, OmegaConfBaseException) as error:
            problems[composition_error_line(error)] = None
        except UsageError as error:
            problems.update(dict.fromkeys(getattr(error, "lines", [str(error)])))
    if problems:
        raise Problems(list(problems))
    return configs


def sweep_settings(args: list[str]) -> tuple[str, list[str]] | None:
    """A sweep's directory, fixed before Hydra runs so it can be named at start and end, and
    job names (plain56_s0_init-xavier) that show what the sweep varies: the overrides it holds
    fixed join the override_dirname exclusions of conf/train.yaml.

    `trainer.resume=auto` without `hydra.sweep.dir` continues the latest earlier start of the
    same sweep (the same task overrides) when there is one.
    """
    fixed = _fixed(args)
    try:
        hydra_cfg = compose_train_config(fixed, hydra=True).hydra
    except (HydraException, OmegaConfBaseException):
        return None
    given = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.sweep.dir=")), None)
    sweep_dir = given or (
        "trainer.resume=auto" in args and earlier_sweep(args, Path(str(hydra_cfg.sweep.dir)))
    )
    sweep_dir = str(sweep_dir or hydra_cfg.sweep.dir)
    excluded = list(hydra_cfg.job.config.override_dirname.exclude_keys)
    excluded += [
        key
        for key in (a.split("=", 1)[0].lstrip("+~") for a in fixed)
        if not key.startswith("hydra.") and key not in excluded
    ]
    return sweep_dir, [
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.job.config.override_dirname.exclude_keys=[{','.join(excluded)}]",
    ]


def earlier_sweep(args: list[str], new_dir: Path) -> Path | None:
    """The most recent sweep dir beside `new_dir` (the default runs/sweeps/<time>) that an
    earlier start of this command made: its multirun.yaml holds the same task overrides."""
    wanted = _task_key(args)
    root = new_dir.parent
    if not root.is_dir():
        return None
    found = []
    for record in root.glob("*/multirun.yaml"):
        try:
            overrides = yaml.safe_load(record.read_text())["hydra"]["overrides"]["task"]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            continue
        if _task_key(overrides) == wanted:
            found.append(record.parent)
    return max(found, key=lambda d: d.stat().st_mtime, default=None)


def _task_key(overrides: list[str]) -> frozenset[str]:
    return frozenset(
        o
        for o in _overrides(list(overrides))
        if not o.startswith(("trainer.resume=", "hydra.", "hydra/"))
    )
