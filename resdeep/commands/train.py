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
    from resdeep.train.app import launch

    launch(ctx.args)
