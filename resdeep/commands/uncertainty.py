"""`resdeep uncertainty [IMAGES...]`: MC-dropout calibration, error and OOD detection."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from resdeep.console import console
from resdeep.errors import ResdeepError, UsageError
from resdeep.output_paths import check_output_path


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
    seed: Annotated[int, typer.Option(help="Seed of the dropout masks (and noise images).")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """MC-dropout uncertainty of a checkpoint.

    MC dropout (Gal & Ghahramani 2016): dropout on at test time, batch norm in eval mode.

    Without images: the run's data set split, deterministic vs MC dropout side by side.

    With --ood-data: how well the uncertainty flags inputs from another distribution.

    With --ensemble: a deep ensemble beside them (alone: its first member is the single net).

    With images: each one's top classes, mean probability ± std over the samples.
    """
    # Imported here: torchmetrics alone adds seconds to every other command's start-up.
    import torch

    from resdeep.checkpoint import load_checkpoint
    from resdeep.device import resolve_device
    from resdeep.runs import DEFAULT_RUNS_ROOT, latest_checkpoint
    from resdeep.uncertainty import evaluate, plots, report
    from resdeep.uncertainty.data import SPLITS, check_ood_name
    from resdeep.uncertainty.sampling import require_dropout

    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")
    if bins < 1:
        raise UsageError(f"--bins must be at least 1, got {bins}")
    if split not in SPLITS:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if ood_data is not None:
        check_ood_name(ood_data)
    if images:
        _refuse_runs_as_images(images, ensemble or [], checkpoint)
    if images and (ood_data is not None or plot is not None):
        raise UsageError("--ood-data and --plot score a data set; drop them when giving images")
    if ensemble and images:
        raise UsageError("--ensemble scores a data set; drop it when giving images")
    if calibrate is not None:
        if calibrate != "temperature":
            raise UsageError(f"--calibrate knows temperature, got {calibrate!r}")
        if images or split == "val":
            raise UsageError(
                "--calibrate fits its temperature on the val split: score the test split "
                "(no images, --split test)"
            )

    for written, option in ((json_path, "--json"), (save_probs, "--save-probs")):
        if written is not None:
            check_output_path(written, option)
    if plot is not None:
        check_output_path(plot, "--plot", folder=True)

    member_dirs = ensemble_members(ensemble or [])
    if checkpoint is None and member_dirs:  # an ensemble alone: its nets, no unrelated run
        checkpoint = member_dirs[0]
        picked = "the ensemble's first member"
    elif checkpoint is None:
        checkpoint = latest_checkpoint(DEFAULT_RUNS_ROOT)
        picked = f"the latest trained run under {DEFAULT_RUNS_ROOT}/"
    else:
        picked = ""
    model, info = load_checkpoint(checkpoint, device=resolve_device(device))
    if picked:
        console.print(f"checkpoint: {info.path} ({picked}; --checkpoint picks another)")
    require_dropout(model, str(info.path))
    members = [load_checkpoint(path, device=resolve_device(device)) for path in member_dirs]

    failures: list[str] = []
    if images:
        result = evaluate.evaluate_images(model, info, images, samples=samples, seed=seed)
        failures = result.failures
        if result.summary is None and len(failures) == 1:
            raise ResdeepError(failures[0])
        for message in failures:  # as cam does: report each, score the rest, exit 1 at the end
            sys.stderr.write(f"error: {message}\n")
        for path, warning in result.warnings:
            sys.stderr.write(f"warning: {path}: {warning}\n")
        if result.summary is None:
            raise ResdeepError(f"none of the {len(images)} images could be read")
        console.print(report.images_table(result.summary))
        labels = torch.full((len(result.originals),), -1, dtype=torch.int64)  # unknown
        ood = None
    else:
        result = evaluate.evaluate_dataset(
            model, info, split=split, samples=samples, seed=seed, bins=bins, ood_data=ood_data,
            calibrate=calibrate, members=members,
        )  # fmt: skip
        console.print(report.dataset_table(result.summary))
        warning = result.summary.get("temperature", {}).get("warning")
        if warning:
            sys.stderr.write(f"warning: {warning}\n")
        if result.ood is not None:
            console.print(report.ood_table(result.summary))
        console.print(report.comparison_table(result.summary))
        labels, ood = result.labels, result.ood
        if plot is not None:
            for path in plots.save_plots(
                plot, result.predictions, labels, bins, ood=ood, ood_name=ood_data,
                methods=evaluate.method_probs(result),
            ):  # fmt: skip
                console.print(f"wrote {path}")
    if json_path is not None:
        report.write_json(result.summary, json_path)
        console.print(f"wrote {json_path}")
    if save_probs is not None:
        fitted = getattr(result, "calibration", None)
        report.save_probs(
            save_probs, result.predictions, labels, ood, fitted, getattr(result, "ensemble", None)
        )
        console.print(f"wrote {save_probs}")
    if failures:
        raise ResdeepError(f"{len(failures)} input(s) could not be processed; see the lines above")


def _refuse_runs_as_images(
    images: list[Path], ensemble: list[Path], checkpoint: Path | None
) -> None:
    """A run or sweep dir among the images is a net meant as --checkpoint or --ensemble (the
    option takes one value each time: `--ensemble A B` leaves B here): say what to type."""
    from resdeep.runs import is_run_dir

    runs = [p for p in images if p.is_dir() and (is_run_dir(p) or _holds_runs(p))]
    if not runs:
        return
    what = f"{', '.join(str(p) for p in runs)}: " + (
        "a run directory, not an image" if len(runs) == 1 else "run directories, not images"
    )
    if ensemble or len(runs) > 1:
        spelled = " ".join(f"--ensemble {p}" for p in dict.fromkeys([*ensemble, *runs]))
        raise UsageError(f"{what}; --ensemble takes one run or sweep dir each time: {spelled}")
    if checkpoint is None:
        raise UsageError(f"{what}; score it with --checkpoint {runs[0]}")
    raise UsageError(f"{what}; for an ensemble: --ensemble {checkpoint} --ensemble {runs[0]}")


def _holds_runs(directory: Path) -> bool:
    return next(directory.glob("*/checkpoints/best.pt"), None) is not None


def ensemble_members(paths: list[Path]) -> list[Path]:
    """Run dirs (with a best.pt) from run or sweep dirs, each once, in order."""
    from resdeep.runs import find_runs

    found: list[Path] = []
    for path in paths:
        runs = [r.path for r in find_runs(path) if (r.path / "checkpoints" / "best.pt").is_file()]
        if not runs:  # a missing file, as --checkpoint of a dir without one: exit 1
            raise ResdeepError(f"--ensemble {path}: no run with checkpoints/best.pt there")
        found += runs
    members = list(dict.fromkeys(found))
    if len(members) == 1:
        raise UsageError("--ensemble needs at least two members")
    return members
