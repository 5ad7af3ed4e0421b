"""`resdeep cam IMAGE_OR_DIR...`: class activation map overlays, and a localisation benchmark."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from resdeep.cam.defaults import DEFAULT_COLORMAP, DEFAULT_OUT, DEFAULT_STEPS, DEFAULT_THRESHOLD
from resdeep.cam.results import (
    BadInput,
    Benchmarked,
    CamEvent,
    ExplainedImage,
    FaithfulnessScored,
    LatestCheckpoint,
    SanityChecked,
    Warned,
    Wrote,
)
from resdeep.choices import CAM_METHODS
from resdeep.commands.options import Device
from resdeep.console import console


def cam(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Image files or directories of them (PNG, JPEG, ...).",
            metavar="IMAGE_OR_DIR",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="Checkpoint file or run directory (default: the latest trained run's best.pt)."
        ),
    ] = None,
    method: Annotated[
        str,
        typer.Option(help=f"One of {', '.join(CAM_METHODS)}; several separated by commas, or all."),
    ] = "cam",
    target_class: Annotated[
        str | None,
        typer.Option(help="Explain this class, by name or index (default: the predicted one)."),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option(help="Explain each of the k most probable classes.")
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(
            help="gradcam/gradcam++/scorecam: a conv module, block or stage, e.g. "
            "stage3.block3.conv2 (default: the last feature maps)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the overlays (created).")] = DEFAULT_OUT,
    alpha: Annotated[float, typer.Option(help="Opacity of the map over the image.")] = 0.5,
    colormap: Annotated[str, typer.Option(help="Any matplotlib colormap.")] = DEFAULT_COLORMAP,
    save_raw: Annotated[
        bool, typer.Option(help="Also write each map as .npy, float32 in [0, 1].")
    ] = False,
    crop: Annotated[
        str,
        typer.Option(
            help="How a non-square image becomes the net's square input: center (its centre "
            "square), none (squashed) or pad (black bars)."
        ),
    ] = "center",
    panel: Annotated[
        bool, typer.Option(help="Also write input | map | overlay as one titled PNG per map.")
    ] = False,
    grid: Annotated[
        Path | None,
        typer.Option(help="Also draw every input × method (or × top-k class) into this PNG."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Images per forward pass (default 32; 256 with --evaluate, --sanity or "
            "--faithfulness).",
            show_default=False,
        ),
    ] = None,
    device: Device = "auto",
    evaluate: Annotated[
        bool, typer.Option(help="Benchmark the maps on the checkpoint's test split.")
    ] = False,
    threshold: Annotated[
        float, typer.Option(help="--evaluate: box the map above this fraction of its max.")
    ] = DEFAULT_THRESHOLD,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the results (per image, and --evaluate's) here."),
    ] = None,
    sanity: Annotated[
        bool,
        typer.Option(
            help="Sanity checks (Adebayo et al. 2018): randomise the net's weights and compare "
            "the maps with the trained net's (on the images given, else the test split)."
        ),
    ] = False,
    randomization: Annotated[
        str, typer.Option(help="--sanity: cascading (classifier down), independent or both.")
    ] = "both",
    permuted: Annotated[
        Path | None,
        typer.Option(
            help="--sanity: a run of the same setting trained with data.permute_labels=true; "
            "adds the data-randomisation test."
        ),
    ] = None,
    other_seed: Annotated[
        Path | None,
        typer.Option(
            help="--permuted: a second true-label run of the setting (another seed), the "
            "reference for how alike two trained nets' maps are."
        ),
    ] = None,
    faithfulness: Annotated[
        bool,
        typer.Option(
            help="Deletion and insertion curves (RISE) and ROAD of every method and of random, "
            "blurred random, centred and edge maps."
        ),
    ] = False,
    steps: Annotated[
        int, typer.Option(help="--faithfulness: steps of each curve (steps + 1 points).")
    ] = DEFAULT_STEPS,
    road: Annotated[
        bool, typer.Option(help="--faithfulness: also ROAD (its imputation is the slow part).")
    ] = True,
    seed: Annotated[
        int,
        typer.Option(
            help="--sanity/--faithfulness: seeds the fresh weights, random maps, tie order, "
            "ROAD noise and the bootstrap."
        ),
    ] = 0,
) -> None:
    """Class activation maps of a checkpoint.

    Without --evaluate: an overlay per image (and method and class); with --evaluate: how well
    the maps localise on the checkpoint's test split; --sanity and --faithfulness: whether they
    depend on the model and point at what it uses.

    Example: resdeep cam examples/photos --checkpoint runs/imported/akamaster_resnet56_cifar10
    --method cam,gradcam --grid runs/cams/grid.png
    """
    # The heavy parts (torch, matplotlib) load only when the command runs: help stays quick.
    from resdeep.cam.explain import ExplainSettings
    from resdeep.cam.request import CamRequest, parse_methods, run_cam
    from resdeep.cam.trust_settings import TrustSettings, parse_randomizations

    methods = parse_methods(method)
    checking = sanity or faithfulness
    if batch_size is None:
        batch_size = 256 if evaluate or checking else 32
    # Checked whatever is asked, so a trust option given without its check is refused.
    trust = TrustSettings(
        seed=seed,
        sanity=sanity,
        randomizations=parse_randomizations(randomization),
        permuted=permuted,
        other_seed=other_seed,
        faithfulness=faithfulness,
        steps=steps,
        road=road,
    )
    request = CamRequest(
        inputs=tuple(inputs or ()),
        explain=ExplainSettings(
            methods=methods,
            layer=layer,
            target_class=target_class,
            top_k=top_k,
            out=out,
            alpha=alpha,
            colormap=colormap,
            save_raw=save_raw,
            batch_size=batch_size,
            crop=crop,
            panel=panel,
        ),
        checkpoint=None if checkpoint is None else Path(checkpoint),
        evaluate=evaluate,
        threshold=threshold,
        grid=grid,
        json_path=json_path,
        device=device,
        trust=trust if checking else None,
    )
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), console=console, transient=True,
    ) as bar:  # fmt: skip
        tasks = []

        def progress(description: str, steps: int) -> None:
            if description:
                tasks.append(bar.add_task(description, total=steps))
            else:
                bar.advance(tasks[-1], steps)

        request = replace(request, progress=progress)
        for event in run_cam(request):
            _print(event)


def _print(event: CamEvent) -> None:
    """Errors and warnings to stderr, one line each; tables and files written to stdout."""
    if isinstance(event, LatestCheckpoint):
        console.print(
            f"checkpoint: {event.path} (the latest trained run under {event.root}/; "
            "--checkpoint picks another)"
        )
    elif isinstance(event, BadInput):
        sys.stderr.write(f"error: {event.message}\n")
    elif isinstance(event, ExplainedImage):
        if event.warning:
            sys.stderr.write(f"warning: {event.path}: {event.warning}\n")
        _print_image_table(event)
    elif isinstance(event, Wrote):
        console.print(f"wrote {event.path}")
    elif isinstance(event, Warned):
        sys.stderr.write(f"warning: {event.message}\n")
    elif isinstance(event, SanityChecked):
        from resdeep.cam.trust_tables import sanity_tables

        for table in sanity_tables(event.result, event.evaluated_on):
            console.print(table)
    elif isinstance(event, FaithfulnessScored):
        from resdeep.cam.trust_tables import faithfulness_tables

        for table in faithfulness_tables(event.result, event.evaluated_on):
            console.print(table)
    else:
        _print_benchmark(event)


def _print_image_table(item: ExplainedImage) -> None:
    table = Table(title=f"{item.path} ({item.width}x{item.height})", title_justify="left")
    table.add_column("method")
    table.add_column("predicted")
    table.add_column("probability", justify="right")
    table.add_column("target")
    table.add_column("target prob.", justify="right")
    table.add_column("written", overflow="fold")
    for entry in item.maps:
        table.add_row(
            entry.method,
            entry.predicted,
            f"{entry.predicted_probability:.3f}",
            entry.target,
            f"{entry.target_probability:.3f}",
            ", ".join(str(f) for f in entry.files),
        )
    console.print(table)


def _print_benchmark(event: Benchmarked) -> None:
    result, method = event.result, event.method
    table = Table(
        title=f"{method} on the {event.data_name} test split ({result.images} images, "
        f"top-1 acc {result.top1_acc:.3f})",
        title_justify="left",
    )
    table.add_column("metric")
    table.add_column(method, justify="right")
    table.add_column("centred box", justify="right")
    if result.gt_known_loc_acc is not None:
        width, height = result.baseline_box
        console.print(
            "box: around the largest region above a threshold (fraction of the map's max); "
            f"baseline: a centred {width:.1f}x{height:.1f} box (the mean box size)"
        )
        at = f"threshold {result.threshold:g}"
        gt_baseline, top1_baseline = result.baseline_gt_known_loc_acc, result.baseline_top1_loc_acc
        rows = [
            (f"GT-known loc. acc (IoU ≥ 0.5), {at}", result.gt_known_loc_acc, gt_baseline),
            (f"top-1 loc. acc, {at}", result.top1_loc_acc, top1_baseline),
            (f"mean IoU, {at}", result.mean_iou, result.baseline_mean_iou),
        ]
        if result.val_threshold is not None:
            best = f"threshold {result.val_threshold:g} (best on val)"
            rows += [
                (f"GT-known loc. acc, {best}", result.val_threshold_gt_known_loc_acc, gt_baseline),
                (f"top-1 loc. acc, {best}", result.val_threshold_top1_loc_acc, top1_baseline),
            ]
        for label, value, baseline in rows:
            table.add_row(label, f"{value:.3f}", f"{baseline:.3f}")
    else:
        console.print("the test split has no boxes: localisation is not scored")
    table.add_row("Average Drop % (lower is better)", f"{result.average_drop:.1f}", "-")
    table.add_row(
        "Increase in Confidence % (higher is better)",
        f"{result.increase_in_confidence:.1f}",
        "-",
    )
    console.print(table)
