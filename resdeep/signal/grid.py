"""The nets `resdeep signal` measures: a grid of `resdeep train` configurations (Hydra's own
override parser and sweeper expand it), each net built as that training run would start, or
the nets of trained runs, each at its initialisation and its end."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from resdeep.config import fresh_model, seed_run
from resdeep.errors import UsageError
from resdeep.report.net_settings import describe
from resdeep.signal.study import (
    NORMAL_SIZE,
    NetSignal,
    Probe,
    SignalSettings,
    data_probe,
    measure_net,
    normal_probe,
)

# What is swept unless the command line sets the key: the depth study's nets.
DEFAULT_GRID = {"model": "plain,resnet", "model.depth": "20,56,110", "seed": "0,1,2"}


def grid_jobs(overrides: Sequence[str]) -> list[list[str]]:
    """Each net's overrides: DEFAULT_GRID for keys not given (model.arch counts as model), then
    the command line's, expanded like `resdeep train -m` expands them (a,b lists, range())."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    bad = [line for line in overrides if "=" not in line]
    if bad:
        raise UsageError(f"{bad[0]!r} is not an override; write KEY=VALUE (e.g. model.depth=56)")
    given = {line.split("=", 1)[0].lstrip("+~") for line in overrides}
    if "model.arch" in given:
        given.add("model")
    lines = [f"{k}={v}" for k, v in DEFAULT_GRID.items() if k not in given] + list(overrides)
    try:
        parsed = OverridesParser.create().parse_overrides(lines)
        (jobs,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    except HydraException as error:
        raise UsageError(str(error).splitlines()[0]) from error
    return jobs


def grid_configs(overrides: Sequence[str]) -> list[DictConfig]:
    """Every net's composed and checked config; every problem at once, one line each."""
    from resdeep.train.sweep import checked_configs

    jobs = grid_jobs(overrides)
    if not jobs:
        raise UsageError("the grid holds no nets (an empty sweep such as range(0,0)?)")
    return checked_configs(jobs)


def probe_for(data: Any, mean: Any, std: Any, settings: SignalSettings) -> Probe:
    from resdeep.data import normalize

    if settings.inputs == "normal":
        size = settings.image_size or NORMAL_SIZE
        return normal_probe((data.in_channels, size, size), settings)
    return data_probe(
        data.train.images, data.test.images, settings, lambda x: normalize(x, mean, std)
    )


def measure_grid(
    configs: Sequence[DictConfig], settings: SignalSettings, device: torch.device
) -> Iterator[NetSignal]:
    """Each config's net at initialisation, as `resdeep train` would build it."""
    from resdeep.config import data_from_config, model_kwargs_from_config

    for cfg in configs:
        seed = int(cfg.seed)
        seed_run(seed)  # training seeds before it builds the data
        data = data_from_config(cfg)
        kwargs = model_kwargs_from_config(cfg, data)
        model = fresh_model(kwargs, seed, device)
        probe = probe_for(data, data.mean, data.std, settings).to(device)
        yield measure_net(model, probe, settings, describe(kwargs, seed, data.name, "init"))


def measure_checkpoints(
    checkpoints: Sequence[Path], settings: SignalSettings, device: torch.device, jobs: int = 1
) -> Iterator[NetSignal]:
    """Each trained run's net at its initialisation and at its end (the checkpoint), on the same
    inputs; `jobs` runs at once on the CPU."""
    from resdeep.workers import map_on_cores

    for pair in map_on_cores(
        measure_checkpoint, checkpoints, settings, device, device=device, jobs=jobs
    ):
        yield from pair


def measure_checkpoint(
    checkpoint: Path, settings: SignalSettings, device: torch.device
) -> list[NetSignal]:
    """One trained run at its initialisation (its init.pt, or rebuilt) and at its end."""
    from resdeep.checkpoint import load_checkpoint
    from resdeep.config import checkpoint_data, initial_model

    trained, info = load_checkpoint(checkpoint, device)
    seed = int(info.config.get("seed", 0))
    data = checkpoint_data(info)
    probe = probe_for(data, info.mean, info.std, settings).to(device)
    kwargs = dict(info.model_kwargs)
    measured = []
    for state, model in (("init", initial_model(info, device)), ("trained", trained)):
        about = describe(kwargs, seed, info.data_name, state) | {"run": str(info.run_dir)}
        measured.append(measure_net(model, probe, settings, about))
    return measured
