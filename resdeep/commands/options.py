"""Options several commands share, written once: the same flag means the same thing, with the
same help, in every command that has it."""

from __future__ import annotations

from typing import Annotated

import typer

Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
Jobs = Annotated[
    int | None,
    typer.Option(
        help="Runs studied at once on the CPU (default: one per core).", show_default=False
    ),
]
