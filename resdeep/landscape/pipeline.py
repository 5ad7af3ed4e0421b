"""Checkpoints in, landscape studies out: each run's data rebuilt from its config (resdeep's
config module, as every tool does), its subsets drawn, the other end of its line found, and the
study run, `jobs` runs at once on the CPU."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resdeep.batch_norm import calibrate_batch_norm
from resdeep.errors import UsageError
from resdeep.landscape.study import (
    BETWEEN_INIT,
    BETWEEN_SEEDS,
    LandscapeSettings,
    Line,
    Progress,
    RunLandscape,
    evaluate_all,
    study_net,
)
from resdeep.landscape.surface import Subset, fixed_subset, snapshot
from resdeep.report.net_settings import SETTING_KEYS, describe


@dataclass(frozen=True)
class LandscapeJob:
    checkpoint: Path
    partner: Path | None = None  # the checkpoint at the line's other end (--between a run)


def subsets_for(info: Any, settings: LandscapeSettings) -> list[Subset]:
    """The run's fixed training subset (and test subset), normalised as it was trained."""
    from resdeep.config import checkpoint_data
    from resdeep.data import normalize

    data = checkpoint_data(info)
    splits = [("train", data.train)] + ([("test", data.test)] if settings.test else [])
    subsets = []
    for name, split in splits:
        if len(split.images) == 0:
            raise UsageError(f"{info.path}: its {name} split holds no images")
        chosen = fixed_subset(name, split.images, split.labels, settings.subset, settings.seed)
        subsets.append(
            Subset(
                name, normalize(chosen.inputs, info.mean, info.std), chosen.labels, chosen.indices
            )  # fmt: skip
        )
    return subsets


def about_checkpoint(info: Any) -> dict[str, Any]:
    seed = info.config.get("seed")
    about = describe(info.model_kwargs, None if seed is None else int(seed), info.data_name,
                     "trained")  # fmt: skip
    return about | {"run": str(info.run_dir), "checkpoint": str(info.path),
                    "classes": info.num_classes}  # fmt: skip


def check_partner(info: Any, other: Any) -> None:
    """The two ends of a line must be the same network on the same data."""
    from resdeep.checkpoint import network_difference

    difference = network_difference(info, other)
    if difference is not None:
        raise UsageError(
            f"--between {other.path}: not the same network as {info.path} ({difference}); "
            "a straight line in weight space joins two nets of one architecture"
        )


def study_job(
    job: LandscapeJob,
    settings: LandscapeSettings,
    device: torch.device,
    progress: Progress | None = None,
) -> RunLandscape:
    """One checkpoint's study on its own data (the end of its line, if any, on the same)."""
    from resdeep.checkpoint import load_checkpoint
    from resdeep.config import initial_model

    model, info = load_checkpoint(job.checkpoint, device)
    subsets = [s.to(device) for s in subsets_for(info, settings)]
    line = None
    if settings.between == BETWEEN_INIT:
        # Goodfellow et al.'s direction: from the start of training to its end. The initial
        # net's batch-norm statistics were never estimated (a fresh net's are 0 and 1): they
        # are, on the training subset, as training's first evaluation would have them.
        initial = initial_model(info, device)
        calibrate_batch_norm(initial, subsets[0].inputs)
        start = snapshot(initial)
        line = Line("init", start, "end", snapshot(model))
    elif job.partner is not None:
        partner, partner_info = load_checkpoint(job.partner, device)
        check_partner(info, partner_info)
        line = Line(str(info.path), snapshot(model), str(partner_info.path), snapshot(partner))
    return study_net(model, subsets, settings, about_checkpoint(info), line=line,
                     progress=progress)  # fmt: skip


def study_jobs(
    jobs: Sequence[LandscapeJob],
    settings: LandscapeSettings,
    device: torch.device,
    workers: int,
    progress: Progress | None = None,
) -> Iterator[RunLandscape]:
    """Each job's study, in order: in this process (every point reported to `progress`), or
    `workers` processes at once on the CPU (each run reported when it is done)."""
    from resdeep.workers import map_on_cores

    if workers <= 1 or device.type != "cpu" or len(jobs) == 1:
        for job in jobs:
            yield study_job(job, settings, device, progress)
        return
    for study in map_on_cores(study_job, jobs, settings, device, device=device, jobs=workers):
        if progress is not None:
            progress(settings.evaluations())
        yield study


def pair_seeds(checkpoints: Sequence[Path]) -> list[LandscapeJob]:
    """--between seeds: each run with the next seed of its setting (the last with the first),
    so every pair of neighbouring seeds is measured once (two seeds: one line, not the same line
    twice; the run at its other end is studied without one)."""
    from resdeep.checkpoint import read_checkpoint

    settings: dict[tuple, list[tuple[int, Path]]] = {}
    for path in checkpoints:
        payload = read_checkpoint(path)
        config = payload.get("config", {})
        about = describe(payload["model_kwargs"], int(config.get("seed", 0)),
                         str(config.get("data", {}).get("name")), "trained")  # fmt: skip
        key = (*(about[k] for k in SETTING_KEYS), len(payload["classes"]))
        runs = settings.setdefault(key, [])
        twin = next((other for seed, other in runs if seed == about["seed"]), None)
        if twin is not None:
            raise UsageError(
                f"--between seeds: {twin} and {path} are the same setting with the same seed "
                f"({about['seed']}); give runs that differ only in their seed"
            )
        runs.append((about["seed"], path))
    lonely = [runs[0][1] for runs in settings.values() if len(runs) < 2]
    if lonely:
        raise UsageError(
            f"--between seeds needs two runs of each setting that differ only in their seed; "
            f"{lonely[0]} has none"
        )
    jobs = []
    for runs in settings.values():
        runs.sort()
        count = len(runs)
        jobs += [
            LandscapeJob(path, runs[(i + 1) % count][1] if count > 2 or i == 0 else None)
            for i, (_, path) in enumerate(runs)
        ]
    order = {path: i for i, path in enumerate(checkpoints)}
    return sorted(jobs, key=lambda job: order[job.checkpoint])


def plan_jobs(checkpoints: Sequence[Path], between: str | None) -> list[LandscapeJob]:
    if between == BETWEEN_SEEDS:
        return pair_seeds(checkpoints)
    if between in (None, BETWEEN_INIT):
        return [LandscapeJob(path) for path in checkpoints]
    from resdeep.tool_inputs import checkpoints_under

    if len(checkpoints) != 1:
        raise UsageError(
            f"--between {between} draws the line from one run; {len(checkpoints)} were given "
            "(use --between seeds or --between init for a sweep)"
        )
    if not Path(between).exists():
        raise UsageError(
            f"--between {between}: no such run; give init, seeds or a run dir (or checkpoint)"
        )
    partners = checkpoints_under([Path(between)], ("last.pt", "best.pt"))
    if len(partners) != 1:
        raise UsageError(f"--between {between} holds {len(partners)} runs; give one run")
    return [LandscapeJob(checkpoints[0], partners[0])]


def seconds_per_point(
    job: LandscapeJob, settings: LandscapeSettings, device: torch.device
) -> float:
    """How long one point of the first net takes (the best of three), for the estimate."""
    from resdeep.checkpoint import load_checkpoint

    model, info = load_checkpoint(job.checkpoint, device)
    subsets = [s.to(device) for s in subsets_for(info, settings)]
    times = []
    for _ in range(3):
        started = time.perf_counter()
        evaluate_all(model, subsets, settings.bn_stats)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return min(times)
