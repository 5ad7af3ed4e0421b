"""`resdeep bench`: the performance suite, as a table and a JSON list."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from resdeep.commands.options import Device
from resdeep.console import console
from resdeep.errors import UsageError

if TYPE_CHECKING:
    import torch

    from resdeep.bench import BenchReport

# Above this share of a window spent waiting for a CPU held by other processes, say so.
NOISY_CPU_WAIT = 0.1


def bench(
    quick: Annotated[
        bool,
        typer.Option("--quick", help="Smoke test: toy sizes, one window each (not performance)."),
    ] = False,
    device: Device = "auto",
    json_path: Annotated[
        Path, typer.Option("--json", help="Write the results here as a JSON list.")
    ] = Path("bench.json"),
    repeats: Annotated[
        int | None,
        typer.Option(help="Timed windows per variant (default: 7; 1 with --quick)."),
    ] = None,
) -> None:
    """Time resdeep's loop against bare PyTorch.

    resdeep's training loop and analysis tools against bare PyTorch, side by side.

    Variants run interleaved (A, B, A, B, ...) after warm-up, in one process on one device.
    Each number is the median over rounds of a ratio (or a time) taken within one round.
    """
    # Imported here: torch and Hydra would slow every other command's start-up.
    from resdeep.bench import FULL, QUICK, run_suite
    from resdeep.device import resolve_device
    from resdeep.io import save_json_atomic
    from resdeep.output_paths import check_output_path

    if repeats is not None and repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {repeats}")
    check_output_path(json_path, "--json")  # before minutes of timing, not after
    target = resolve_device(device)
    report = run_suite(
        target,
        QUICK if quick else FULL,
        repeats=repeats,
        on_stage=lambda message: console.print(f"[dim]· {message}[/dim]"),
    )
    save_json_atomic(report.records(), json_path)

    console.print(_results_table(report, target))
    _print_conditions(report.context, len(report.results), quick=quick, json_path=json_path)


def _results_table(report: BenchReport, target: torch.device) -> Table:
    """One row a benchmark: its value against its goal, and what it measures."""
    table = Table(title=f"resdeep bench — {report.context['device_name']} ({target})")
    for column in ("benchmark", "value", "unit", "goal", "met", "what"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for r in report.results:
        value = "not measured" if r.value is None else f"{r.value:.3g}"
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[r.met]
        if r.goal and r.value is not None and not r.judged:
            met = "not judged (quick)"
        what = r.what if r.value is not None else f"{r.what} ({r.detail.get('error', '')})"
        table.add_row(r.name, value, r.unit, r.goal or "-", met, what)
    return table


def _print_conditions(context: dict[str, Any], count: int, *, quick: bool, json_path: Path) -> None:
    """What the numbers were measured under: a warning on a busy CPU, then one summary line."""
    if not quick and (context["cpu_wait_worst"] or 0.0) > NOISY_CPU_WAIT:
        console.print(
            f"[yellow]other processes held the CPU for up to {context['cpu_wait_worst']:.0%} "
            "of a variant's timed windows: rerun on a quieter machine for firm numbers[/yellow]"
        )
    console.print(
        f"{count} benchmarks in {context['wall_time_s']:.0f} s, "
        f"{context['repeats']} timed windows each, {context['threads']} threads, load average "
        f"{context['load_average_1m']} → {context['load_average_1m_end']}; written to {json_path}"
    )
