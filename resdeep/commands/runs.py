"""`resdeep runs [DIR]`: a table of the runs under a directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from resdeep.console import console
from resdeep.runs import DEFAULT_RUNS_ROOT, find_runs


def _fmt(value: object, spec: str = ".3f") -> str:
    return format(value, spec) if isinstance(value, int | float) else "-"


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path != root and path.is_relative_to(root) else str(path)


def runs(
    directory: Annotated[
        Path,
        typer.Argument(
            help="A runs folder, sweep folder or run directory (relative paths: from here).",
            metavar="DIR",
        ),
    ] = DEFAULT_RUNS_ROOT,
) -> None:
    """List runs with their accuracy and status.

    Start time, arch, depth, data, epochs, best val acc, test acc, status and run dir.
    """
    records = find_runs(directory)
    table = Table(title=f"runs under {directory}")
    for column in (
        "started",
        "arch",
        "depth",
        "data",
        "epochs",
        "best val acc",
        "test acc",
        "status",
        "run dir",
    ):
        table.add_column(column, justify="right" if column in ("depth", "epochs") else "left")
    for record in records:
        m = record.metrics
        table.add_row(
            time.strftime("%m-%d %H:%M", time.localtime(record.started)),
            str(m.get("arch", "?")),
            str(m.get("depth", "?")),
            str(m.get("data", "?")),
            str(m.get("epochs", "-")),
            _fmt(m.get("best_val_acc")),
            _fmt(m.get("test_acc")),
            str(m.get("status", "?")),
            _relative(record.path, directory),
        )
    console.print(table)
    if records:
        console.print(f"TensorBoard: [bold]tensorboard --logdir {directory}[/bold]")
