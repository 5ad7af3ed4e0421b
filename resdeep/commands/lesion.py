"""`resdeep lesion RUN_OR_SWEEP_DIR...`: delete blocks of trained nets at test time (Veit et al.
2016), deletion curves, and the gradient by path length."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from resdeep.commands.options import Device, Jobs
from resdeep.console import console


def lesion(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Run dirs, sweep dirs (every run below them) or checkpoint files.",
            metavar="RUN_OR_SWEEP_DIR",
            show_default=False,
        ),
    ],
    split: Annotated[str, typer.Option(help="Split to score on: test or val.")] = "test",
    k: Annotated[
        int | None,
        typer.Option(
            "--k",
            help="Delete up to k random blocks together (default: 10, or as many as a net "
            "has that keep their shape).",
            show_default=False,
        ),
    ] = None,
    draws: Annotated[int, typer.Option(help="Random draws of k blocks per k.")] = 10,
    reorder: Annotated[
        bool, typer.Option("--reorder", help="Also swap k random pairs of neighbouring blocks.")
    ] = False,
    paths_gradient: Annotated[
        bool,
        typer.Option(
            "--paths", help="Also measure the gradient by path length (residual nets only)."
        ),
    ] = False,
    path_samples: Annotated[
        int, typer.Option(help="Paths measured per path length with --paths.")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the random draws and path samples.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for lesion.json and the PNGs (default: the sweep dir, or the run dir)."
        ),
    ] = None,
    jobs: Jobs = None,
    device: Device = "auto",
) -> None:
    """Delete blocks of trained nets at test time.

    Every block is deleted in turn (a residual block then passes only its shortcut, a plain one
    its input), then k random blocks together; --paths routes the backward pass through paths
    of each length.

    Writes lesion.json and PNGs; runs of one setting are grouped over their seeds.

    Example: resdeep lesion runs/demo/SWEEP_DIR --paths
    """
    from resdeep.device import resolve_device
    from resdeep.errors import UsageError
    from resdeep.lesion.build import build_lesion
    from resdeep.lesion.study import LesionSettings
    from resdeep.output_paths import check_output_path
    from resdeep.tool_inputs import default_tool_dir
    from resdeep.workers import available_cores

    settings = LesionSettings(
        split=split,
        k_max=k,
        draws=draws,
        seed=seed,
        reorder=reorder,
        paths=paths_gradient,
        path_samples=path_samples,
    )
    settings.check()
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    out_dir = out if out is not None else default_tool_dir(paths)
    check_output_path(out_dir, "--out", folder=True)
    report = build_lesion(
        paths,
        out_dir,
        settings,
        resolve_device(device),
        jobs=available_cores() if jobs is None else jobs,
        on_run=lambda run: console.print(
            f"{escape(run.run)}: intact {100 * run.intact['accuracy']:.1f} %", highlight=False
        ),
    )
    console.print(summary_table(report.groups))
    for note in report.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    for finding in report.findings:
        console.print(f"• {finding}", markup=False, highlight=False)
    console.print(f"lesion: [bold]{escape(str(out_dir / 'lesion.json'))}[/bold]", highlight=False)


def summary_table(groups: list) -> Table:
    """One row per setting: intact accuracy, median and worst single deletion, the k-curve."""
    from resdeep.report.spread import format_points, format_spread

    ks = sorted({k for group in groups for k, _ in group.k_curve()})
    shown = [k for k in ks if k in (1, 2, 3, 5, 10) or k == ks[-1]]
    table = Table(
        title="Deleting blocks at test time: accuracy intact and after k deletions, drops per "
        "single deletion in points (mean ± std over seeds)"
    )
    for header in ("setting", "seeds", "intact", "median drop", "worst drop"):
        table.add_column(header, justify="left" if header == "setting" else "right")
    for k in shown:
        table.add_column(f"acc k={k}", justify="right")
    for group in groups:
        curve = dict(group.k_curve())
        table.add_row(
            escape(group.label),
            str(len(group.runs)),
            format_spread(group.intact, percent=True),
            format_points(group.median_drop, unit=False),
            format_points(group.worst_drop, unit=False),
            *(format_spread(curve[k], percent=True) if k in curve else "-" for k in shown),
        )
    return table
