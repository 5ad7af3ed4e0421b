"""The Hydra application behind `resdeep train`.

The Typer command hands its raw arguments to this `@hydra.main` function, so everything Hydra
offers keeps working: -m sweeps with the configured launcher, --cfg job, --help,
--config-dir and hydra.searchpath.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from resdeep.checkpoint import resolve_checkpoint_path
from resdeep.console import console, route_logging_through_rich
from resdeep.errors import PropagatedError, ResdeepError, UsageError, first_line
from resdeep.experiment import CONFIG_DIR, compose_train_config
from resdeep.runs import check_run_dir, run_dir_of
from resdeep.train.distributed import World, join_process_group, launched_world
from resdeep.train.validation import unknown_key_message, validate

log = logging.getLogger("resdeep.train")


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    # heavy imports only once Hydra has parsed its args
    from resdeep.train.runner import Diverged, run

    world = launched_world()
    if world is None or world.is_main:
        route_logging_through_rich()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = run(cfg, run_dir)
    except Diverged as error:
        # In a sweep a diverged run is a result (status "diverged" in its metrics.json): report
        # it and go on with the other jobs. A single run fails with the message.
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            logging.getLogger("resdeep.train").error("%s", error)
            return None
        raise PropagatedError(error) from error
    except ResdeepError as error:
        raise PropagatedError(error) from error
    except Exception as error:
        # Hydra would print a traceback; resdeep promises one line (--debug shows the rest).
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        message = f"{type(error).__name__}: {error} (run with --debug for the traceback)"
        raise PropagatedError(ResdeepError(message)) from error
    # Returning the objective lets Hydra sweepers (e.g. Optuna) optimise it.
    return metrics.get("best_val_acc")


def with_resume_overrides(args: list[str]) -> list[str]:
    """`trainer.resume=RUN` continues in RUN's directory with RUN's own overrides.

    The run's recorded overrides come first, so anything typed now still wins; Hydra then
    writes into the same run directory instead of a new one.
    """
    resume = next((a.split("=", 1)[1] for a in args if a.startswith("trainer.resume=")), None)
    if not resume or resume in ("null", "None") or "-m" in args or "--multirun" in args:
        return args
    run_dir = run_dir_of(Path(resume))
    saved = run_dir / ".hydra" / "overrides.yaml"
    recorded: list[str] = []
    if saved.is_file():
        recorded = [
            o
            for o in (yaml.safe_load(saved.read_text()) or [])
            if not o.startswith(("trainer.resume=", "hydra.", "hydra/"))
        ]
    extra = (
        [] if any(a.startswith("hydra.run.dir=") for a in args) else [f"hydra.run.dir={run_dir}"]
    )
    return [*recorded, *args, *extra]


def agree_on_run_dir(args: list[str], world: World) -> list[str]:
    """Under torchrun every rank runs Hydra; make them all use rank 0's run directory.

    Each process would otherwise resolve `${now:...}` itself and could land in a directory of
    its own. Only rank 0 writes Hydra's files and logs.
    """
    join_process_group(world)
    run_dir = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.run.dir=")), None)
    if run_dir is None and world.is_main:
        overrides = [a for a in args if not a.startswith("-")]
        run_dir = str(compose_train_config(overrides, hydra=True).hydra.run.dir)
    run_dir = world.broadcast_object(run_dir)
    extra = [f"hydra.run.dir={run_dir}"]
    if not world.is_main:
        extra += ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
    return [a for a in args if not a.startswith("hydra.run.dir=")] + extra


TYPE_WORDS = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}


def _one_line(error: Exception) -> str:
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
    text = "; ".join(kept).replace(":;", ":").replace(".;", ";").replace("In 'train': ", "")
    return text or type(error).__name__


def check_overrides(args: list[str]) -> None:
    """Compose the config once before Hydra runs, to turn its errors into one clear line.

    Skipped for sweeps (their values are lists) and when Hydra flags change where configs
    come from; Hydra then reports problems itself.
    """
    if any(a.startswith("-") for a in args):
        return
    try:
        cfg = compose_train_config(args, hydra=True)
        run_dir = Path(str(cfg.hydra.run.dir))
    except (HydraException, OmegaConfBaseException) as error:
        raise UsageError(_one_line(error)) from error
    validate(cfg)
    if cfg.trainer.resume not in (None, "auto"):
        # Before Hydra makes the run dir: a mistyped resume path must not be created.
        resolve_checkpoint_path(cfg.trainer.resume, "last.pt")
    check_run_dir(run_dir, resuming=cfg.trainer.resume is not None)


def launch(args: list[str]) -> str | None:
    """Run the Hydra app with `args` as its command line; returns a sweep's directory."""
    args = with_resume_overrides(list(args))
    check_overrides(args)
    world = launched_world()
    if world is not None and not {"-m", "--multirun", "--help", "-h", "--cfg", "-c"} & set(args):
        args = agree_on_run_dir(args, world)
    sweep = _sweep_settings(args)
    sweep_dir = None
    if sweep is not None:
        sweep_dir, extra = sweep
        args = [*args, *extra]
        console.print(f"sweep dir: {sweep_dir}", markup=False, highlight=False)
    sys.argv = ["resdeep train", *args]
    hydra_main()
    return sweep_dir if sweep_dir is not None and Path(sweep_dir).is_dir() else None


SWEEP_SYNTAX = (",", "range(", "choice(", "glob(", "interval(")


def _sweep_settings(args: list[str]) -> tuple[str, list[str]] | None:
    """A sweep's directory, fixed before Hydra runs so it can be named at start and end, and
    job names (plain56_s0_init-xavier) that show what the sweep varies: the overrides it holds
    fixed join the override_dirname exclusions of conf/train.yaml."""
    if not {"-m", "--multirun"} & set(args) or {"--help", "-h", "--cfg", "-c"} & set(args):
        return None
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    fixed = [a for a in overrides if not any(t in a.split("=", 1)[1] for t in SWEEP_SYNTAX)]
    try:
        hydra_cfg = compose_train_config(fixed, hydra=True).hydra
    except (HydraException, OmegaConfBaseException):
        return None
    given = next((a.split("=", 1)[1] for a in args if a.startswith("hydra.sweep.dir=")), None)
    sweep_dir = given or str(hydra_cfg.sweep.dir)
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
