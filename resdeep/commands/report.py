"""`resdeep report SWEEP_DIR_OR_RUN_DIRS...`: figures, a results table and findings from runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from resdeep.console import console


def report(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Sweep dirs (every run below them) or run dirs.",
            metavar="RUN_OR_SWEEP_DIR",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the report (default: the first sweep dir given)."),
    ] = None,
    html: Annotated[
        bool, typer.Option("--html", help="Also write report.html with the figures inlined.")
    ] = False,
    lesion: Annotated[
        bool,
        typer.Option(
            "--lesion",
            help="First run `resdeep lesion` on the runs (with --paths where a net has "
            "shortcuts); without it, a lesion.json already in the folder is shown.",
        ),
    ] = False,
    landscape: Annotated[
        bool,
        typer.Option(
            "--landscape",
            help="First run `resdeep landscape` on the runs (1-D slices, its defaults); without "
            "it, a landscape.json already in the folder is shown.",
        ),
    ] = False,
) -> None:
    """Figures, tables and findings from runs.

    Training curves, gradient profiles and heatmaps, accuracy against depth, and findings.

    Writes report.md, report.json and the PNGs (and report.html with --html).

    Runs still training are read as far as they got; runs on different data sets are grouped.
    """
    from resdeep.output_paths import check_output_path
    from resdeep.report import build_report, default_out_dir
    from resdeep.report.document import TABLE_HEADERS, table_rows

    out_dir = out if out is not None else default_out_dir(paths)
    check_output_path(out_dir, "--out", folder=True)
    if lesion:
        _run_lesion(paths, out_dir)
    if landscape:
        from resdeep.commands.landscape import landscape as run_landscape

        run_landscape(paths, out=out_dir)
    result = build_report(paths, out_dir, html=html)
    table = Table(title=f"{len(result.summaries)} runs in {len(result.groups)} settings")
    for header in TABLE_HEADERS:
        table.add_column(
            header, justify="left" if header in ("run", "data", "seeds", "status") else "right"
        )
    for row in table_rows(result.groups):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    for finding in result.findings:
        console.print(f"• {finding}", markup=False, highlight=False)
    console.print(f"report: [bold]{escape(str(out_dir / 'report.md'))}[/bold]", highlight=False)
    if html:
        console.print(f"html: [bold]{escape(str(out_dir / 'report.html'))}[/bold]", highlight=False)


def _run_lesion(paths: list[Path], out_dir: Path) -> None:
    """`resdeep lesion PATHS --out OUT_DIR` with its defaults, --paths where it applies."""
    from resdeep.commands.lesion import summary_table
    from resdeep.device import resolve_device
    from resdeep.lesion.build import build_lesion, has_shortcuts
    from resdeep.lesion.study import LesionSettings
    from resdeep.tool_inputs import checkpoints_under
    from resdeep.workers import available_cores

    residual = any(has_shortcuts(checkpoint) for checkpoint in checkpoints_under(paths))
    result = build_lesion(
        paths, out_dir, LesionSettings(paths=residual), resolve_device("auto"),
        jobs=available_cores(),
    )  # fmt: skip
    console.print(summary_table(result.groups))
