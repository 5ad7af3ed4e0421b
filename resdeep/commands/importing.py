"""`resdeep import`: a published CIFAR ResNet checkpoint becomes a resdeep run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from resdeep.console import console
from resdeep.errors import UsageError

SOURCE_NAMES = ("akamaster", "chenyaofo")


def import_checkpoint(
    source: Annotated[
        str,
        typer.Argument(
            help=f"Who published it: {', '.join(SOURCE_NAMES)}.",
            metavar="SOURCE",
            show_default=False,
        ),
    ],
    file: Annotated[
        Path,
        typer.Argument(help="The published checkpoint file.", metavar="FILE", show_default=False),
    ],
    name: Annotated[
        str | None,
        typer.Option(help="Run directory under runs/imported/ (default: SOURCE_resnetN_DATA)."),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(help="cifar10 or cifar100 (default: from the number of classes)."),
    ] = None,
) -> None:
    """Import a published CIFAR ResNet as a run.

    akamaster's and chenyaofo's checkpoints become resdeep run directories.

    cam, uncertainty, runs, load_checkpoint and trainer.init_from read it like a trained run.

    Example: resdeep import akamaster resnet20-12fca82f.th
    """
    if source not in SOURCE_NAMES:
        raise UsageError(f"unknown source {source!r}; choose one of {', '.join(SOURCE_NAMES)}")
    if data is not None and data not in ("cifar10", "cifar100"):
        raise UsageError(f"--data must be cifar10 or cifar100, got {data!r}")
    if name is not None:
        _check_name(name)
    from resdeep.importing import import_published
    from resdeep.runs import DEFAULT_RUNS_ROOT

    run_dir = DEFAULT_RUNS_ROOT / "imported" / name if name is not None else None
    run_dir, metrics = import_published(source, file, run_dir, data)
    accuracy = metrics.get("best_prec1")
    reported = f", reported top-1 {accuracy:.2f} %" if accuracy is not None else ""
    console.print(
        f"imported {source}'s ResNet-{metrics['depth']} for {metrics['data']} "
        f"({metrics['params']:,} parameters{reported}) into [bold]{run_dir}[/bold]"
    )
    console.print(
        f"try: resdeep cam examples/photos --checkpoint {run_dir} --grid runs/cams/grid.png"
    )


def _check_name(name: str) -> None:
    """A folder directly in runs/imported/: a separator or `..` would put the run elsewhere, and
    a leading dot would hide it (the importer's own staging folders start with one)."""
    if not name or name.startswith(".") or "/" in name or "\\" in name:
        raise UsageError(
            f"--name {name!r} must be a plain folder name (no /, \\ or leading dot): "
            "the run goes into runs/imported/NAME"
        )
