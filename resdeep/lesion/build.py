"""Run dirs in, lesion files out: find the checkpoints, study each, group over seeds, draw, and
write `lesion.json` and the PNGs."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from resdeep.errors import UsageError
from resdeep.io import save_json_atomic
from resdeep.lesion import figures as draw
from resdeep.lesion.groups import LesionGroup, group_lesions, lesion_findings
from resdeep.lesion.study import LesionSettings, RunLesion, study_run
from resdeep.report.lesion_section import LESION_JSON
from resdeep.tool_inputs import checkpoints_under
from resdeep.workers import map_on_cores

# (drawing function of the groups, file name); the report's captions are lesion_section's.
FIGURES = (
    (draw.single_deletion, "lesion_blocks.png"),
    (draw.deletion_curves, "lesion_k_curve.png"),
)


@dataclass(frozen=True)
class LesionReport:
    out_dir: Path
    runs: list[RunLesion]
    groups: list[LesionGroup]
    findings: list[str]
    files: list[Path]
    notes: list[str]  # what was left out and why (plain nets under --paths)


def has_shortcuts(checkpoint: Path) -> bool:
    """Whether a checkpoint's net is residual (read from its stored model arguments)."""
    from resdeep.checkpoint import read_checkpoint

    return read_checkpoint(checkpoint)["model_kwargs"].get("arch") != "plain"


def lesion_checkpoint(
    checkpoint: Path, settings: LesionSettings, device: torch.device
) -> RunLesion:
    """One checkpoint's study on its own data set, rebuilt from its config."""
    from resdeep.checkpoint import load_checkpoint
    from resdeep.config import checkpoint_data
    from resdeep.data import normalize

    model, info = load_checkpoint(checkpoint, device)
    data = checkpoint_data(info)
    split = getattr(data, settings.split)
    kwargs = info.model_kwargs
    seed = info.config.get("seed")
    about = {
        "run": str(info.run_dir),
        "checkpoint": str(info.path),
        "arch": str(kwargs["arch"]),
        "depth": int(kwargs["depth"]),
        "seed": None if seed is None else int(seed),
        "data": info.data_name,
        "init": str(kwargs.get("init", "kaiming")),
        "norm": str(kwargs.get("norm", "batch")),
        "shortcut": str(kwargs.get("shortcut", "A")),
        "residual_init": str(kwargs.get("residual_init", "none")),
        "classes": info.num_classes,
    }
    return study_run(
        model,
        inputs=normalize(split.images, info.mean, info.std),
        labels=split.labels,
        train_inputs=normalize(data.train.images, info.mean, info.std),
        train_labels=data.train.labels,
        input_shape=info.input_shape,
        settings=settings,
        about=about,
    )


def study_checkpoints(
    checkpoints: Sequence[Path],
    settings: LesionSettings,
    device: torch.device,
    jobs: int,
) -> Iterator[RunLesion]:
    """Each checkpoint's study, in order, `jobs` at once on the CPU (resdeep.workers)."""
    return map_on_cores(lesion_checkpoint, checkpoints, settings, device, device=device, jobs=jobs)


def build_lesion(
    paths: Sequence[Path],
    out_dir: Path,
    settings: LesionSettings,
    device: torch.device,
    *,
    jobs: int = 1,
    on_run: Callable[[RunLesion], None] | None = None,
) -> LesionReport:
    """Study every checkpoint under `paths`, then write lesion.json and the figures."""
    settings.check()
    checkpoints = checkpoints_under(paths)
    if settings.paths and not any(has_shortcuts(checkpoint) for checkpoint in checkpoints):
        raise UsageError(
            "--paths: every net given is a plain net; without shortcuts a net has one path "
            "through every block, so there is no distribution of path lengths to measure"
        )
    runs = []
    for run in study_checkpoints(checkpoints, settings, device, jobs):
        runs.append(run)
        if on_run is not None:
            on_run(run)
    notes = _path_notes(runs, settings)
    groups = group_lesions(runs)
    findings = lesion_findings(groups)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = write_figures(groups, out_dir, settings)
    save_json_atomic(lesion_json(runs, groups, findings, files, settings), out_dir / LESION_JSON)
    files.append(out_dir / LESION_JSON)
    return LesionReport(out_dir, runs, groups, findings, files, notes)


def _path_notes(runs: Sequence[RunLesion], settings: LesionSettings) -> list[str]:
    if not settings.paths:
        return []
    plain = [run for run in runs if run.paths is None]
    if not plain:
        return []
    return [
        f"--paths: {len(plain)} plain net(s) left out (no shortcuts, so one path through every "
        f"block): {', '.join(Path(run.run).name for run in plain)}"
    ]


def write_figures(
    groups: Sequence[LesionGroup], out_dir: Path, settings: LesionSettings
) -> list[Path]:
    from resdeep.report.figures import save_figure

    figures = list(FIGURES)
    if settings.reorder:
        figures.append((lambda g: draw.deletion_curves(g, reorder=True), "lesion_reorder.png"))
    if settings.paths:
        figures.append((draw.path_lengths, "lesion_paths.png"))
    return [save_figure(drawing(groups), out_dir / name) for drawing, name in figures]


def lesion_json(
    runs: Sequence[RunLesion],
    groups: Sequence[LesionGroup],
    findings: Sequence[str],
    files: Sequence[Path],
    settings: LesionSettings,
) -> dict[str, Any]:
    from dataclasses import asdict

    return {
        "settings": asdict(settings),
        "findings": list(findings),
        "figures": [path.name for path in files],
        "groups": [group.as_json() for group in groups],
        "runs": [run.as_json() for run in runs],
    }
