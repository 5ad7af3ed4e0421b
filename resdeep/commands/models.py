"""`resdeep models`: a table of the architectures, their size and cost."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from resdeep.console import console
from resdeep.errors import UsageError

STANDARD_DEPTHS = (20, 32, 44, 56, 110, 200)
STANDARD_PREACT_DEPTHS = (164, 200)


def models(
    arch: Annotated[
        list[str] | None, typer.Option(help="Architecture: plain, resnet or preact (repeatable).")
    ] = None,
    depth: Annotated[list[int] | None, typer.Option(help="Depth (repeatable).")] = None,
    block: Annotated[
        str | None, typer.Option(help="basic or bottleneck (default: basic; preact: bottleneck).")
    ] = None,
    in_channels: Annotated[int, typer.Option(help="Input channels.")] = 3,
    num_classes: Annotated[int, typer.Option(help="Number of classes.")] = 10,
    image_size: Annotated[int, typer.Option(help="Square input size for the MAC count.")] = 32,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead.")] = False,
) -> None:
    """List architectures: depth, parameters, MACs.

    Each net with its depth, weight layers, parameters and multiply-accumulates per image.
    """
    import torch

    from resdeep.models import ModelConfigError, build_model, summarize_model

    rows = []
    for arch_name, depth_value, block_name in _requested(arch, depth, block):
        try:
            # On the meta device: shapes only, so counting ResNet-1202's MACs takes no compute.
            with torch.device("meta"):
                model = build_model(
                    arch_name,
                    depth=depth_value,
                    block=block_name,
                    in_channels=in_channels,
                    num_classes=num_classes,
                )
        except ModelConfigError as error:
            raise UsageError(str(error)) from error
        rows.append(
            summarize_model(
                model,
                arch=arch_name,
                block=block_name,
                depth=depth_value,
                input_shape=(in_channels, image_size, image_size),
            )
        )
    if as_json:
        print(json.dumps([row.__dict__ for row in rows], indent=2))
        return
    table = Table(title=f"resdeep architectures ({in_channels}×{image_size}×{image_size} input)")
    for column in ("arch", "block", "depth", "weight layers", "params", "MACs / image"):
        table.add_column(column, justify="left" if column in ("arch", "block") else "right")
    for row in rows:
        table.add_row(
            row.arch,
            row.block,
            str(row.depth),
            str(row.weight_layers),
            f"{row.params:,}",
            f"{row.macs / 1e6:,.1f} M",
        )
    console.print(table)


def _requested(
    archs: list[str] | None, depths: list[int] | None, block: str | None
) -> list[tuple[str, int, str]]:
    """The (arch, depth, block) triples to show; the standard zoo when nothing is asked."""
    if not archs and not depths and block is None:
        zoo = [(a, d, "basic") for a in ("plain", "resnet") for d in STANDARD_DEPTHS]
        return zoo + [("preact", d, "bottleneck") for d in STANDARD_PREACT_DEPTHS]
    requested = []
    for arch_name in archs or ["plain", "resnet"]:
        block_name = block or ("bottleneck" if arch_name == "preact" else "basic")
        default_depths = STANDARD_PREACT_DEPTHS if block_name == "bottleneck" else STANDARD_DEPTHS
        requested += [(arch_name, d, block_name) for d in depths or default_depths]
    return requested
