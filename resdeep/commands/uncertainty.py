"""`resdeep uncertainty [IMAGES...]`: MC-dropout calibration, error and OOD detection."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from resdeep.choices import LAPLACE_PRIORS, SHIFT_KINDS
from resdeep.commands.options import Device
from resdeep.console import console
from resdeep.errors import ResdeepError

if TYPE_CHECKING:
    from resdeep.checkpoint import CheckpointInfo
    from resdeep.models import ConvNet
    from resdeep.uncertainty.evaluate import DatasetEvaluation, ImageEvaluation


def uncertainty(
    images: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Images to score; without any, the run's data set split is scored.",
            metavar="IMAGE",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Checkpoint file or run directory (default: the ensemble's first member, or "
            "the latest trained run's best.pt)."
        ),
    ] = None,
    samples: Annotated[
        int, typer.Option("--samples", "-T", help="Stochastic forward passes T.")
    ] = 32,
    split: Annotated[str, typer.Option(help="In-distribution split: test or val.")] = "test",
    ood_data: Annotated[
        str | None,
        typer.Option(
            help="Out-of-distribution set: noise, heldout (classes the run left out), "
            "svhn, cifar10, cifar100, mnist, fashion_mnist."
        ),
    ] = None,
    calibrate: Annotated[
        str | None,
        typer.Option(
            help="temperature: also temperature scaling (one T fitted on the val split by NLL) "
            "beside the deterministic and MC-dropout columns."
        ),
    ] = None,
    ensemble: Annotated[
        list[Path] | None,
        typer.Option(
            help="A deep-ensemble member: a run dir, or a sweep dir for all its runs; once "
            "per member (--ensemble A --ensemble B), e.g. the runs of "
            "`resdeep train -m seed=0,1,2,3,4`."
        ),
    ] = None,
    bins: Annotated[int, typer.Option(help="Equal-width confidence bins for ECE.")] = 15,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the numbers as JSON here.")
    ] = None,
    save_probs: Annotated[
        Path | None,
        typer.Option(help="Write probs (N,T,C), labels and deterministic_probs to this .npz."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write reliability and entropy PNGs into this folder.")
    ] = None,
    laplace: Annotated[
        bool,
        typer.Option(
            "--laplace",
            help="Also a last-layer Laplace posterior (fitted on the train split; needs no "
            "dropout, so imported checkpoints work).",
        ),
    ] = False,
    laplace_prior: Annotated[
        str | None,
        typer.Option(
            help=f"How --laplace chooses its prior precision: {LAPLACE_PRIORS[0]} (the "
            f"training split's marginal likelihood), {LAPLACE_PRIORS[1]} (validation NLL over "
            f"a grid), or a number (default: {LAPLACE_PRIORS[0]}).",
            show_default=False,
        ),
    ] = None,
    shift: Annotated[
        str | None,
        typer.Option(
            help=f"Score the test split under dataset shift: {', '.join(SHIFT_KINDS)} "
            "(several: rotation,contrast; or all).",
            show_default=False,
        ),
    ] = None,
    severities: Annotated[
        str | None,
        typer.Option(
            help="With --shift: the severities, e.g. 0,2,4 (0 = clean, always included; "
            "default: each kind's all, rotation 0-12 = 0-180°, translation 0-7, the rest 0-5).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="With --shift: folder for shift.json and shift.png (default: the checkpoint's "
            "run dir).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the dropout masks (and noise images).")] = 0,
    device: Device = "auto",
) -> None:
    """MC-dropout uncertainty of a checkpoint.

    MC dropout (Gal & Ghahramani 2016): dropout on at test time, batch norm in eval mode.

    Without images: the run's data set split, deterministic vs MC dropout side by side.

    With --ood-data: how well the uncertainty flags inputs from another distribution.

    With --ensemble: a deep ensemble beside them (alone: its first member is the single net).

    With --laplace: a last-layer Laplace posterior beside them.

    With --shift: every method on the test split corrupted at growing severities (with
    --ensemble, each member's own curves too, drawn as bands over seeds).

    With images: each one's top classes, mean probability ± std over the samples.
    """
    # Imported here, as in each helper below: torch and torchmetrics alone add seconds to every
    # other command's start-up.
    from resdeep.uncertainty.options import check_request

    shifts = check_request(
        images=images or [], checkpoint=checkpoint, ensemble=ensemble or [], samples=samples,
        split=split, ood_data=ood_data, calibrate=calibrate, bins=bins,
        outputs={"--json": json_path, "--save-probs": save_probs, "--plot": plot, "--out": out},
        laplace=laplace, laplace_prior=laplace_prior, shift=shift, severities=severities,
    )  # fmt: skip
    other_methods = laplace or bool(ensemble) or calibrate is not None
    model, info, members, mc_dropout = _load_nets(
        checkpoint, ensemble or [], device, without_dropout=other_methods and not images
    )
    prior = (laplace_prior or LAPLACE_PRIORS[0]) if laplace else None
    if shifts is not None:
        _score_shift(
            model, info, members, shifts, out=out, save_probs=save_probs, samples=samples,
            seed=seed, bins=bins, calibrate=calibrate, laplace=prior, mc_dropout=mc_dropout,
        )  # fmt: skip
        return
    if images:
        result = _score_images(model, info, images, samples=samples, seed=seed)
    else:
        result = _score_dataset(
            model, info, split=split, samples=samples, seed=seed, bins=bins, ood_data=ood_data,
            calibrate=calibrate, members=members, plot=plot, laplace=prior,
            mc_dropout=mc_dropout,
        )  # fmt: skip
    _write_files(result, json_path, save_probs)
    if images and result.failures:
        count = len(result.failures)
        raise ResdeepError(f"{count} input(s) could not be processed; see the lines above")


def _load_nets(
    checkpoint: Path | None, ensemble: list[Path], device: str, *, without_dropout: bool
) -> tuple[ConvNet, CheckpointInfo, list[tuple[ConvNet, CheckpointInfo]], bool]:
    """The net to score (named in a line when picked for the user), the ensemble's members, and
    whether MC dropout is scored: a net without dropout is refused unless `without_dropout`
    (another method was asked for), when MC dropout is left out with a line saying so."""
    from resdeep.checkpoint import load_checkpoint
    from resdeep.device import resolve_device
    from resdeep.runs import DEFAULT_RUNS_ROOT, ensemble_members, latest_checkpoint
    from resdeep.uncertainty.sampling import dropout_modules, require_dropout

    member_dirs = ensemble_members(ensemble)
    picked = ""
    if checkpoint is None and member_dirs:  # an ensemble alone: its nets, no unrelated run
        checkpoint, picked = member_dirs[0], "the ensemble's first member"
    elif checkpoint is None:
        checkpoint = latest_checkpoint(DEFAULT_RUNS_ROOT)
        picked = f"the latest trained run under {DEFAULT_RUNS_ROOT}/"
    model, info = load_checkpoint(checkpoint, device=resolve_device(device))
    if picked:
        console.print(f"checkpoint: {info.path} ({picked}; --checkpoint picks another)")
    members = [load_checkpoint(path, device=resolve_device(device)) for path in member_dirs]
    if dropout_modules(model) or not without_dropout:
        require_dropout(model, str(info.path))
        return model, info, members, True
    console.print(f"note: {info.path} has no dropout, so MC dropout is left out", highlight=False)
    return model, info, members, False


def _score_images(
    model: ConvNet, info: CheckpointInfo, images: list[Path], *, samples: int, seed: int
) -> ImageEvaluation:
    """Each readable image scored and shown; each unreadable one a line of its own, as cam does
    (the rest are still scored, and the command exits 1 at the end)."""
    from resdeep.uncertainty import evaluate, report

    result = evaluate.evaluate_images(model, info, images, samples=samples, seed=seed)
    if result.summary is None and len(result.failures) == 1:
        raise ResdeepError(result.failures[0])
    for message in result.failures:
        sys.stderr.write(f"error: {message}\n")
    for path, warning in result.warnings:
        sys.stderr.write(f"warning: {path}: {warning}\n")
    if result.summary is None:
        raise ResdeepError(f"none of the {len(images)} images could be read")
    console.print(report.images_table(result.summary))
    return result


def _score_dataset(
    model: ConvNet, info: CheckpointInfo, *, plot: Path | None, **options: Any
) -> DatasetEvaluation:
    """Every method on the split: the per-metric, OOD and comparison tables, and the plots."""
    from resdeep.uncertainty import evaluate, plots, report

    result = evaluate.evaluate_dataset(model, info, **options)
    methods = [part.method for part in result.scored]
    console.print(report.dataset_table(result.summary, methods))
    for section in ("temperature", "laplace"):
        warning = result.summary.get(section, {}).get("warning")
        if warning:
            sys.stderr.write(f"warning: {warning}\n")
    if "ood" in result.summary:
        console.print(report.ood_table(result.summary, methods))
    console.print(report.comparison_table(result.summary, methods))
    if plot is not None:
        bins, ood_name = options["bins"], options["ood_data"]
        for path in plots.save_plots(plot, result.scored, result.labels, bins, ood_name):
            console.print(f"wrote {path}")
    return result


def _score_shift(
    model: ConvNet,
    info: CheckpointInfo,
    members: list[tuple[ConvNet, CheckpointInfo]],
    severities: dict[str, list[int]],
    *,
    out: Path | None,
    save_probs: Path | None,
    mc_dropout: bool,
    **options: Any,
) -> None:
    """Every method under every shift: a table per kind, shift.json and shift.png in `out`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from resdeep.output_paths import check_output_path
    from resdeep.uncertainty import report, shift_plots, shift_report
    from resdeep.uncertainty.sampling import dropout_modules
    from resdeep.uncertainty.shift_eval import ShiftSettings, evaluate_shift, shift_runs

    out_dir = out if out is not None else info.run_dir
    check_output_path(out_dir, "--out", folder=True)  # the default too, before minutes of work
    runs = shift_runs((model, info), members)
    if mc_dropout and not all(dropout_modules(net) for net, _ in runs):
        without = next(run_info.path for net, run_info in runs if not dropout_modules(net))
        console.print(
            f"note: {without} has no dropout, so MC dropout is left out for every run (its "
            "curves need every seed)",
            highlight=False,
        )
        mc_dropout = False
    settings = ShiftSettings(
        severities, mc_dropout=mc_dropout, keep_probs=save_probs is not None, **options
    )
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("shifted sets", total=None)  # known once every method is fitted
        result = evaluate_shift(
            runs, members, settings,
            progress=lambda done, total: bar.update(task, advance=done, total=total),
        )  # fmt: skip
    summary = result.summary
    for kind in severities:
        console.print(shift_report.shift_table(summary, kind))
    console.print(shift_report.averages_table(summary))
    for section in ("temperature", "laplace"):
        for fit in summary.get(section, []):
            if fit.get("warning"):
                sys.stderr.write(f"warning: {fit['run']}: {fit['warning']}\n")
    json_path = out_dir / "shift.json"
    report.write_json(summary, json_path)
    console.print(f"wrote {json_path}")
    console.print(f"wrote {shift_plots.shift_figure(summary, out_dir / 'shift.png')}")
    if save_probs is not None:
        report.save_probs(save_probs, result.arrays())
        console.print(f"wrote {save_probs}")


def _write_files(
    result: DatasetEvaluation | ImageEvaluation, json_path: Path | None, probs_path: Path | None
) -> None:
    from resdeep.uncertainty import report

    if json_path is not None:
        assert result.summary is not None  # image mode without a readable image stopped above
        report.write_json(result.summary, json_path)
        console.print(f"wrote {json_path}")
    if probs_path is not None:
        report.save_probs(probs_path, result.arrays())
        console.print(f"wrote {probs_path}")
