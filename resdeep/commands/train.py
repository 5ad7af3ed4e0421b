"""`resdeep train [OVERRIDES...]`: the Hydra app, with every Hydra flag passed through."""

from __future__ import annotations

import typer


def train(ctx: typer.Context) -> None:
    """Train plain and residual networks.

    Arguments are Hydra overrides; -m sweeps; resdeep train --help lists every key.

    Examples: resdeep train model=plain model.depth=56;
    resdeep train -m model=plain,resnet model.depth=20,56,110
    """
    if {"--help", "-h"} & set(ctx.args):
        # resdeep's own help, from the schema and the config groups (no torch, no Hydra run);
        # Hydra's is `--hydra-help`.
        from resdeep.train.help import train_help

        typer.echo(train_help())
        return
    from pathlib import Path

    from resdeep.commands.runs import runs
    from resdeep.console import console
    from resdeep.train.app import launch

    sweep_dir = launch(ctx.args)
    if sweep_dir is not None:  # a sweep ends with its runs side by side, and what to do next
        runs(Path(sweep_dir))
        console.print(
            f"sweep done; its report: resdeep report {sweep_dir}", markup=False, highlight=False
        )
