"""`resdeep landscape RUN_OR_SWEEP_DIR...`: the loss surface around trained nets (Li et al.
2018): filter-normalised 1-D slices and 2-D planes, the straight line between two nets, and the
Hessian's extreme eigenvalues and trace."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from resdeep.commands.options import Device, Jobs
from resdeep.console import console

if TYPE_CHECKING:
    from resdeep.landscape.study import LandscapeSettings


def landscape(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Run dirs, sweep dirs (every run below them) or checkpoint files; each run's "
            "last.pt (best.pt where it has no other).",
            metavar="RUN_OR_SWEEP_DIR",
            show_default=False,
        ),
    ],
    directions: Annotated[int, typer.Option(help="Random directions, one 1-D slice each.")] = 2,
    points: Annotated[
        int, typer.Option(help="Points along each slice (odd: θ* is the middle one).")
    ] = 21,
    span: Annotated[
        float, typer.Option("--range", help="Slices and planes run from -RANGE to +RANGE.")
    ] = 1.0,
    normalization: Annotated[
        str,
        typer.Option(
            help="Of the directions: filter (Li et al.), layer, model, or none (raw Gaussian)."
        ),
    ] = "filter",
    bn_stats: Annotated[
        str,
        typer.Option(
            help="running: batch norm in eval mode with the checkpoint's statistics; batch: "
            "re-estimated on the subset at every point."
        ),
    ] = "running",
    subset: Annotated[int, typer.Option(help="Training images the loss is measured on.")] = 512,
    test: Annotated[
        bool, typer.Option("--test", help="Also measure a test subset of the same size.")
    ] = False,
    radius: Annotated[
        float, typer.Option(help="Sharpness: the loss rise at this distance along the slices.")
    ] = 0.25,
    plane: Annotated[
        bool, typer.Option("--2d", help="Also a 2-D plane along the first two directions.")
    ] = False,
    grid: Annotated[int, typer.Option(help="Points per side of the --2d plane (odd).")] = 21,
    between: Annotated[
        str | None,
        typer.Option(
            help="Also the straight line to: init (each run's initial weights), seeds (the next "
            "seed of the same setting) or a run dir.",
            show_default=False,
        ),
    ] = None,
    hessian: Annotated[
        bool,
        typer.Option("--hessian", help="Also λmax, λmin (Lanczos) and the trace (Hutchinson)."),
    ] = False,
    trace_samples: Annotated[int, typer.Option(help="Hutchinson probes with --hessian.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the directions, subsets and probes.")] = 0,
    max_minutes: Annotated[
        float,
        typer.Option(help="Refuse a study estimated to take longer than this (say how to shrink)."),
    ] = 15.0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for landscape.json and the PNGs (default: the sweep dir, or the run dir).",
            show_default=False,
        ),
    ] = None,
    jobs: Jobs = None,
    device: Device = "auto",
) -> None:
    """Draw the loss surface around trained nets.

    Along random directions through each run's last checkpoint, every filter rescaled to the
    norm of the same filter of the trained weights (Li et al. 2018), on a fixed, seeded subset
    of the training images; with --2d on a plane, with --between on the straight line to
    another net, with --hessian the curvature at the trained weights.

    Writes landscape.json and PNGs; runs of one setting are grouped over their seeds, and
    `resdeep report` shows them as a section.

    Example: resdeep landscape runs/demo/<time> --2d
    """
    from resdeep.device import resolve_device
    from resdeep.errors import UsageError
    from resdeep.landscape.build import build_landscape
    from resdeep.landscape.pipeline import plan_jobs, seconds_per_point, study_jobs
    from resdeep.landscape.study import LandscapeSettings
    from resdeep.output_paths import check_output_path
    from resdeep.report.net_settings import net_name
    from resdeep.tool_inputs import checkpoints_under, default_tool_dir
    from resdeep.workers import available_cores

    settings = LandscapeSettings(
        directions=directions, points=points, span=span, normalization=normalization,
        bn_stats=bn_stats, subset=subset, test=test, radius=radius, plane=plane, grid=grid,
        between=between, hessian=hessian, trace_samples=trace_samples, seed=seed,
    )  # fmt: skip
    settings.check()
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if max_minutes <= 0:
        raise UsageError(f"--max-minutes must be positive, got {max_minutes}")
    torch_device = resolve_device(device)
    checkpoints = checkpoints_under(paths, ("last.pt", "best.pt"))
    planned = plan_jobs(checkpoints, between)
    out_dir = out if out is not None else default_tool_dir(paths)
    check_output_path(out_dir, "--out", folder=True)
    workers = min(jobs or available_cores(), len(planned)) if torch_device.type == "cpu" else 1
    per_point = seconds_per_point(planned[0], settings, torch_device)
    check_time(settings, per_point, len(planned), max_minutes)

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    total = settings.evaluations() * len(planned)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("points", total=total)
        runs = study_jobs(planned, settings, torch_device, workers,
                          progress=lambda n: bar.advance(task, n))  # fmt: skip
        report = build_landscape(
            runs,
            out_dir,
            settings,
            on_run=lambda run: console.print(
                f"{escape(net_name(run.about))}: train loss {run.centre['train']['loss']:.4g}, "
                f"sharpness {run.sharpness['train']:.4g} ({run.seconds:.1f} s)",
                highlight=False,
            ),
        )
    console.print(summary_table(report.groups, settings))
    for finding in report.findings:
        console.print(f"• {finding}", markup=False, highlight=False)
    console.print(
        f"landscape: [bold]{escape(str(out_dir / 'landscape.json'))}[/bold]", highlight=False
    )


def check_time(
    settings: LandscapeSettings, per_point: float, runs: int, max_minutes: float
) -> None:
    """Refuse, in one line with the estimate and what shrinks it, a study that would take
    longer than `max_minutes`."""
    from resdeep.errors import UsageError

    points = settings.evaluations()
    # One point timed on all the cores: parallel workers share them, each slower by about as
    # much as they are many (measured on the demo's sweep), so the runs simply add up.
    minutes = per_point * points * runs / 60
    if minutes <= max_minutes:
        return
    shrink = []
    if settings.plane and settings.grid > 11:
        shrink.append(f"--grid {max(11, settings.grid // 2 | 1)}")
    if settings.subset > 128:
        shrink.append(f"--subset {settings.subset // 2}")
    if runs > 1:
        shrink.append("fewer runs")
    raise UsageError(
        f"this study would take about {minutes:.0f} min ({runs} runs × {points} points × "
        f"{per_point * 1000:.0f} ms a point), over --max-minutes "
        f"{max_minutes:g}; shrink it ({', '.join(shrink) or 'fewer points'}) or allow it with "
        f"--max-minutes {int(minutes) + 1}"
    )


def summary_table(groups: list, settings: LandscapeSettings) -> Table:
    """One row per setting: the report's columns (resdeep.report.landscape_section)."""
    from dataclasses import asdict

    from resdeep.report.landscape_section import group_row, headers

    plain = asdict(settings)
    table = Table(
        title=f"Loss landscape: {settings.subset} training images, {settings.normalization}-"
        f"normalised directions (mean ± std over seeds)"
    )
    columns = headers(plain)
    for header in columns:
        table.add_column(header, justify="left" if header == "setting" else "right")
    for group in groups:
        table.add_row(*(escape(cell) for cell in group_row(group.as_json(), plain)))
    return table
