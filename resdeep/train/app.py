"""The Hydra application behind `resdeep train`.

The Typer command hands its raw arguments to this `@hydra.main` function, so everything Hydra
offers keeps working: -m sweeps with the configured launcher, --cfg job, --help,
--config-dir and hydra.searchpath.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from resdeep.checkpoint import resolve_checkpoint_path
from resdeep.config import CONFIG_DIR, compose_train_config
from resdeep.console import console, route_logging_through_rich
from resdeep.errors import PropagatedError, ResdeepError, UsageError
from resdeep.runs import check_run_dir, run_dir_of
from resdeep.train.distributed import World, join_process_group, launched_world
from resdeep.train.sweep import check_sweep, is_sweep, sweep_settings
from resdeep.train.validation import composition_error_line, validate

log = logging.getLogger("resdeep.train")


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    # heavy imports only once Hydra has parsed its args
    from resdeep.train.runner import Diverged, RunStart, run

    world = launched_world()
    if world is None or world.is_main:
        route_logging_through_rich()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    overrides = tuple(hydra_cfg.overrides.task)
    # Hydra writes no .hydra/ itself (hydra.output_subdir is null): the run writes this record
    # once it holds its directory, so a start that loses the directory to another writes nothing.
    record = {
        "config.yaml": OmegaConf.to_yaml(cfg),
        "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})),
        "overrides.yaml": yaml.safe_dump(list(overrides)),
    }
    try:
        metrics = run(cfg, run_dir, RunStart(overrides=overrides, record=record))
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


def into_resumed_run_dir(args: list[str]) -> list[str]:
    """`trainer.resume=RUN` continues in RUN's directory unless hydra.run.dir says otherwise.
    The run's settings come from its checkpoint (resdeep.train.resume), not from here."""
    resume = next((a.split("=", 1)[1] for a in args if a.startswith("trainer.resume=")), None)
    if not resume or resume in ("null", "None", "auto") or "-m" in args or "--multirun" in args:
        return args
    if any(a.startswith("hydra.run.dir=") for a in args):
        return args
    return [*args, f"hydra.run.dir={run_dir_of(Path(resume))}"]


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
        raise UsageError(composition_error_line(error)) from error
    validate(cfg)
    if cfg.trainer.resume not in (None, "auto"):
        # Before Hydra makes the run dir: a mistyped resume path must not be created.
        resolve_checkpoint_path(cfg.trainer.resume, "last.pt")
    check_run_dir(run_dir, resuming=cfg.trainer.resume is not None)


def launch(args: list[str]) -> str | None:
    """Run the Hydra app with `args` as its command line; returns a sweep's directory."""
    args = into_resumed_run_dir(list(args))
    check_overrides(args)
    world = launched_world()
    if world is not None and not {"-m", "--multirun", "--help", "-h", "--cfg", "-c"} & set(args):
        args = agree_on_run_dir(args, world)
    if is_sweep(args):
        check_sweep(args)
    sweep = sweep_settings(args) if is_sweep(args) else None
    sweep_dir = None
    if sweep is not None:
        sweep_dir, extra = sweep
        args = [*args, *extra]
        console.print(f"sweep dir: {sweep_dir}", markup=False, highlight=False)
    sys.argv = ["resdeep train", *args]
    hydra_main()
    return sweep_dir if sweep_dir is not None and Path(sweep_dir).is_dir() else None
