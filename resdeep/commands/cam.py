"""`resdeep cam IMAGE_OR_DIR...`: class activation map overlays, and a localisation benchmark."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from resdeep.cam.defaults import DEFAULT_COLORMAP, DEFAULT_OUT, DEFAULT_THRESHOLD
from resdeep.choices import CAM_METHODS as METHODS
from resdeep.choices import CROPS
from resdeep.console import console
from resdeep.errors import ResdeepError, UsageError
from resdeep.output_paths import check_output_path
from resdeep.runs import DEFAULT_RUNS_ROOT

if TYPE_CHECKING:
    from resdeep.cam.evaluate import CamBenchmark
    from resdeep.cam.explain import ExplainedImage
    from resdeep.checkpoint import CheckpointInfo
    from resdeep.models import ConvNet


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
        typer.Option(
            help=f"One of {', '.join(METHODS)}; several separated by commas, or all "
            "(--evaluate: one)."
        ),
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
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
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
) -> None:
    """Class activation maps of a checkpoint.

    Without --evaluate: an overlay per image (and method and class); with --evaluate: how well
    the maps localise on the checkpoint's test split.

    Example: resdeep cam examples/photos --checkpoint runs/imported/akamaster_resnet56_cifar10
    --method cam,gradcam --grid runs/cams/grid.png
    """
    # The heavy parts (torch, matplotlib) load only when the command runs: help stays quick.
    from resdeep.cam.explain import (
        BadInput,
        ExplainSettings,
        benchmark_checkpoint,
        explain_images,
    )
    from resdeep.cam.outputs import draw_grid, image_record, model_name, target_index
    from resdeep.checkpoint import load_checkpoint
    from resdeep.device import resolve_device
    from resdeep.io import save_json_atomic
    from resdeep.runs import latest_checkpoint

    methods = _methods(method, evaluate)
    _check_options(methods, target_class, top_k, layer, alpha, colormap, batch_size, crop)
    if grid is not None and grid.suffix.lower() != ".png":
        raise UsageError(f"--grid writes a PNG; give a file ending in .png, not {grid.name}")
    if not inputs and not evaluate:
        raise UsageError("give image files or directories, or --evaluate for the benchmark")
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold is a fraction of the map's max in [0, 1], got {threshold}")
    if inputs:
        check_output_path(out, "--out", folder=True)
    for written, option in ((grid, "--grid"), (json_path, "--json")):
        if written is not None:
            check_output_path(written, option)

    if checkpoint is None:
        path = latest_checkpoint(DEFAULT_RUNS_ROOT)
        console.print(
            f"checkpoint: {path} (the latest trained run under {DEFAULT_RUNS_ROOT}/; "
            "--checkpoint picks another)"
        )
    else:
        path = Path(checkpoint)
    model, info = load_checkpoint(path, device=resolve_device(device))
    target = target_index(target_class, info)
    _check_against_model(model, info, top_k, layer)

    failures = 0
    if inputs:
        settings = ExplainSettings(
            methods=methods,
            layer=layer,
            target_class=target,
            top_k=top_k or 1,
            out=out,
            alpha=alpha,
            colormap=colormap,
            save_raw=save_raw,
            batch_size=batch_size,
            crop=crop,
            panel=panel,
            model_name=model_name(info),
        )
        explained = []
        for item in explain_images(model, info, inputs, settings):
            if isinstance(item, BadInput):
                sys.stderr.write(f"error: {item.message}\n")
                failures += 1
                continue
            if item.warning:
                sys.stderr.write(f"warning: {item.path}: {item.warning}\n")
            _print_image_table(item)
            explained.append(item)
        if grid is not None and explained:
            draw_grid(grid, explained, settings)
            console.print(f"wrote {grid}")
        record = {
            "checkpoint": str(info.path),
            "model": settings.model_name,
            "crop": crop,
            "images": [image_record(item) for item in explained],
        }
    if evaluate:
        result, benchmark = benchmark_checkpoint(
            model, info, method=methods[0], layer=layer, threshold=threshold, batch_size=batch_size
        )
        _print_benchmark(result, info, methods[0])
        record = {**record, "evaluate": benchmark} if inputs else benchmark
    if json_path is not None:
        save_json_atomic(record, json_path)
        console.print(f"wrote {json_path}")
    if failures:
        raise ResdeepError(f"{failures} input(s) could not be processed; see the lines above")


def _methods(value: str, evaluate: bool) -> tuple[str, ...]:
    methods = METHODS if value == "all" else tuple(dict.fromkeys(value.split(",")))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} or all")
    if evaluate and len(methods) > 1:
        raise UsageError("--evaluate benchmarks one method at a time; give one --method")
    return methods


def _check_options(
    methods: tuple[str, ...],
    target_class: str | None,
    top_k: int | None,
    layer: str | None,
    alpha: float,
    colormap: str,
    batch_size: int,
    crop: str,
) -> None:
    if target_class is not None and top_k is not None:
        raise UsageError("--target-class and --top-k exclude each other; pick one")
    if top_k is not None and top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    if methods == ("cam",) and layer is not None:
        raise UsageError(
            "--method cam uses the last feature maps; use --layer with gradcam, gradcam++ or "
            "scorecam"
        )
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"--alpha must be in [0, 1], got {alpha}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    if crop not in CROPS:
        raise UsageError(f"--crop must be one of {', '.join(CROPS)}, got {crop!r}")
    from resdeep.cam.render import get_colormap

    get_colormap(colormap)


def _check_against_model(
    model: ConvNet, info: CheckpointInfo, top_k: int | None, layer: str | None
) -> None:
    if top_k is not None and top_k > info.num_classes:
        raise UsageError(f"--top-k {top_k} is more than the model's {info.num_classes} classes")
    if layer is not None:
        from resdeep.cam.api import find_conv_layer

        find_conv_layer(model, layer)


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


def _print_benchmark(result: CamBenchmark, info: CheckpointInfo, method: str) -> None:
    table = Table(
        title=f"{method} on the {info.data_name} test split ({result.images} images, "
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
