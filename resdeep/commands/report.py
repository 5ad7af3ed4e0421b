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
