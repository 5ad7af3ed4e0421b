"""`resdeep train [OVERRIDES...]`: the Hydra app, with every Hydra flag passed through."""

from __future__ import annotations

import typer


def train(ctx: typer.Context) -> None:
    """Train plain / residual networks. Arguments are Hydra overrides, e.g.

    resdeep train model=plain model.depth=56 data=digits trainer.epochs=10

    resdeep train -m model=plain,resnet model.depth=20,56   (a sweep)

    resdeep train --help   (Hydra's help: config groups and the composed config)
    """
    from resdeep.train.app import launch

    launch(ctx.args)
