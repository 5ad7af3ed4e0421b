"""`resdeep signal [OVERRIDES...]`: how signal and gradient travel through nets at
initialisation, beside mean-field theory, and shattered gradients; `--checkpoint` for trained
runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from resdeep.commands.options import Device
from resdeep.console import console


def signal(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="Overrides of resdeep train's config, swept like train -m (default grid: "
            "model=plain,resnet model.depth=20,56,110 seed=0,1,2); with --checkpoint, run dirs, "
            "sweep dirs or checkpoint files.",
            metavar="OVERRIDES | RUN_OR_SWEEP_DIR",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        bool,
        typer.Option(
            "--checkpoint", help="Measure trained runs (at their initialisation and their end)."
        ),
    ] = False,
    inputs: Annotated[
        str, typer.Option(help="data: the configured data set's images; normal: N(0, 1) noise.")
    ] = "data",
    image_size: Annotated[
        int | None,
        typer.Option(help="Side of the N(0, 1) inputs (default 32).", show_default=False),
    ] = None,
    batch: Annotated[int, typer.Option(help="Images the propagation is measured on.")] = 64,
    points: Annotated[int, typer.Option(help="Points along each line.")] = 256,
    pairs: Annotated[int, typer.Option(help="Lines, each between two test images.")] = 5,
    max_lag: Annotated[int, typer.Option(help="Largest lag of the autocorrelation.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the inputs drawn (not of the nets).")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for signal.json and the PNGs (default: the sweep dir with --checkpoint, "
            "else runs/signal/<time>).",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="With --checkpoint: runs measured at once on the CPU (default: one per core).",
            show_default=False,
        ),
    ] = None,
    device: Device = "auto",
) -> None:
    """Measure signal propagation and shattered gradients at initialisation.

    Per layer, the second moment of each conv's output and of the gradient there, with
    mean-field theory beside plain nets without batch norm; the input gradient along lines
    between two inputs and how alike neighbouring gradients are. No training.

    Writes signal.json and PNGs; nets of one setting are grouped over their seeds.

    Example: resdeep signal model.depth=20,56 seed=0,1
    """
    from resdeep.device import resolve_device
    from resdeep.errors import UsageError
    from resdeep.output_paths import check_output_path
    from resdeep.report.net_settings import net_name
    from resdeep.signal.build import build_signal
    from resdeep.signal.study import SignalSettings
    from resdeep.workers import available_cores as cores

    settings = SignalSettings(
        inputs=inputs, image_size=image_size, batch=batch, points=points, pairs=pairs,
        max_lag=max_lag, seed=seed,
    )  # fmt: skip
    settings.check()
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    if jobs is not None and not checkpoint:
        raise UsageError("--jobs is for --checkpoint (a grid's nets are measured one by one)")
    args = list(args or [])
    torch_device = resolve_device(device)
    if checkpoint:
        from resdeep.signal.grid import measure_checkpoints
        from resdeep.tool_inputs import checkpoints_under, default_tool_dir

        if not args or any("=" in arg for arg in args):
            raise UsageError(
                "--checkpoint takes run dirs, sweep dirs or checkpoint files, not overrides"
            )
        paths = [Path(arg) for arg in args]
        # The end of training (last.pt), not the best epoch: the report's final error is the
        # last weights'; best.pt where a run has no other (an imported one).
        checkpoints = checkpoints_under(paths, ("last.pt", "best.pt"))
        out_dir = out if out is not None else default_tool_dir(paths)
        nets = measure_checkpoints(checkpoints, settings, torch_device, jobs=jobs or cores())
    else:
        from resdeep.signal.grid import grid_configs, measure_grid

        configs = grid_configs(args)
        out_dir = out if out is not None else default_signal_dir()
        nets = measure_grid(configs, settings, torch_device)
    check_output_path(out_dir, "--out", folder=True)
    report = build_signal(
        nets,
        out_dir,
        settings,
        on_net=lambda net: console.print(
            f"{escape(net_name(net.about, with_state=True))}: gradient correlation {net.line.neighbour:.3f} "
            f"({net.seconds:.1f} s)",
            highlight=False,
        ),
    )
    console.print(summary_table(report.groups))
    for finding in report.findings:
        console.print(f"• {finding}", markup=False, highlight=False)
    console.print(f"signal: [bold]{escape(str(out_dir / 'signal.json'))}[/bold]", highlight=False)


def default_signal_dir() -> Path:
    from datetime import datetime

    return Path("runs") / "signal" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def summary_table(groups: list) -> Table:
    """One row per setting and state: the correlation, the slopes in stage 1, and for plain nets
    without batch norm the mean-field prediction's slope and its worst ratio there."""
    from resdeep.report.spread import Spread, format_spread

    theory = any(net.mean_field for group in groups for net in group.nets)
    table = Table(
        title="Signal at initialisation (and, for trained runs, at the end): neighbour-gradient "
        "correlation and the log2 change of the second moment per conv in stage 1 (mean ± std "
        "over seeds)"
    )
    headers = ["setting", "state", "seeds", "gradient corr.", "lag 8", "forward/conv",
               "backward/conv"]  # fmt: skip
    if theory:
        headers += ["theory fwd/conv", "measured/theory", "one conv at a time", "theory bwd/conv"]
    for header in headers:
        table.add_column(header, justify="left" if header in ("setting", "state") else "right")
    for group in groups:
        lags = group.lags()
        lag8 = [row[7] for row in lags if len(row) >= 8]
        row = [
            escape(group.label),
            group.state,
            str(len(group.nets)),
            "zero gradient" if group.zero_gradient() else format_spread(group.neighbour),
            format_spread(Spread.of(lag8)),
            format_spread(group.spread("forward_slope")),
            format_spread(group.spread("backward_slope")),
        ]
        if theory:
            row += [
                format_spread(group.spread("theory_forward_slope")),
                _ratio_range(group, "theory_forward_worst"),
                _ratio_range(group, "theory_one_step_worst"),
                format_spread(group.spread("theory_backward_slope")),
            ]
        table.add_row(*row)
    return table


def _ratio_range(group, fit: str) -> str:
    """ "0.89 to 1.08": the seeds' worst ratio of measured to predicted in stage 1's interior."""
    worst = [net.fits[fit] for net in group.nets if net.fits.get(fit) is not None]
    return f"{min(worst):.2f} to {max(worst):.2f}" if worst else "-"
