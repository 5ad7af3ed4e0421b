"""The Hydra application behind `resdeep train`.

The Typer command hands its raw arguments to this `@hydra.main` function, so everything Hydra
offers keeps working: -m sweeps with the configured launcher, --cfg job, --help,
--config-dir and hydra.searchpath.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from resdeep.console import route_logging_through_rich
from resdeep.errors import ResdeepError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "conf"


class PropagatedError(BaseException):
    """Carries a user-facing error past Hydra's reporter (which handles only `Exception`)."""

    def __init__(self, error: ResdeepError) -> None:
        super().__init__(str(error))
        self.error = error


def _at_least(value: float, threshold: float, then: object, otherwise: object) -> object:
    return then if value >= threshold else otherwise


# `${resdeep.at_least:${model.depth},110,400,0}`: the paper warms up only nets of depth >= 110.
OmegaConf.register_new_resolver("resdeep.at_least", _at_least, replace=True)


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
def hydra_main(cfg: DictConfig) -> float | None:
    from resdeep.train.runner import run  # heavy imports only once Hydra has parsed its args

    route_logging_through_rich()
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = run(cfg, run_dir)
    except ResdeepError as error:
        raise PropagatedError(error) from error
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
    target = Path(resume)
    run_dir = (
        target.parent.parent if target.is_file() and target.parent.name == "checkpoints" else target
    )
    if target.is_file() and target.parent.name != "checkpoints":
        run_dir = target.parent
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


def launch(args: list[str]) -> None:
    """Run the Hydra app with `args` as its command line."""
    sys.argv = ["resdeep train", *with_resume_overrides(list(args))]
    hydra_main()
