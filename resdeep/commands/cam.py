"""`resdeep cam IMAGE_OR_DIR...`: class activation map overlays, and a localisation benchmark."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from PIL import Image
from rich.table import Table

from resdeep.cam.api import class_activation_maps, evaluation_mode, find_conv_layer
from resdeep.cam.evaluate import CamBenchmark, benchmark, mean_box_size
from resdeep.cam.localize import DEFAULT_THRESHOLD
from resdeep.cam.methods import METHODS, upsample_maps
from resdeep.cam.render import DEFAULT_COLORMAP, get_colormap, save_overlay
from resdeep.checkpoint import CheckpointInfo, load_checkpoint
from resdeep.console import console
from resdeep.errors import ResdeepError, UsageError
from resdeep.experiment import checkpoint_data
from resdeep.images import image_files, load_image
from resdeep.models import ConvNet
from resdeep.runs import DEFAULT_RUNS_ROOT, latest_checkpoint
from resdeep.train.device import resolve_device


@dataclass
class Settings:
    method: str
    layer: str | None
    target_class: int | None
    ranks: int  # maps per image: the top-k classes, or 1
    out: Path
    alpha: float
    colormap: str
    save_raw: bool


def cam(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Image files or directories of them (PNG, JPEG, ...).",
            metavar="IMAGE_OR_DIR...",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(help="Checkpoint file or run directory (default: the latest run's best.pt)."),
    ] = None,
    method: Annotated[str, typer.Option(help=f"One of {', '.join(METHODS)}.")] = "cam",
    target_class: Annotated[
        int | None, typer.Option(help="Explain this class (default: the predicted one).")
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
    out: Annotated[Path, typer.Option(help="Folder for the overlays (created).")] = Path("cams"),
    alpha: Annotated[float, typer.Option(help="Opacity of the map over the image.")] = 0.5,
    colormap: Annotated[str, typer.Option(help="Any matplotlib colormap.")] = DEFAULT_COLORMAP,
    save_raw: Annotated[
        bool, typer.Option(help="Also write each map as .npy, float32 in [0, 1].")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    evaluate: Annotated[
        bool, typer.Option(help="Benchmark the maps on the checkpoint's test split.")
    ] = False,
    threshold: Annotated[
        float, typer.Option(help="--evaluate: box the map above this fraction of its max.")
    ] = DEFAULT_THRESHOLD,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="--evaluate: also write the results here.")
    ] = None,
) -> None:
    """Class activation maps of a checkpoint on images: overlays, and with --evaluate, how well
    the maps localise on the test split."""
    _check_options(method, target_class, top_k, layer, alpha, colormap, batch_size)
    if not inputs and not evaluate:
        raise UsageError("give image files or directories, or --evaluate for the benchmark")
    if json_path is not None and not evaluate:
        raise UsageError("--json writes the --evaluate results; add --evaluate")
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold is a fraction of the map's max in [0, 1], got {threshold}")

    if checkpoint is None:
        path = latest_checkpoint(DEFAULT_RUNS_ROOT)
        console.print(f"checkpoint: {path} (the latest run under {DEFAULT_RUNS_ROOT}/)")
    else:
        path = Path(checkpoint)
    model, info = load_checkpoint(path, device=resolve_device(device))
    _check_against_model(model, info, target_class, top_k, layer)

    failures = 0
    if inputs:
        settings = Settings(
            method=method,
            layer=layer,
            target_class=target_class,
            ranks=top_k or 1,
            out=out,
            alpha=alpha,
            colormap=colormap,
            save_raw=save_raw,
        )
        failures = _explain_images(model, info, inputs, settings, batch_size)
    if evaluate:
        _evaluate(model, info, method, layer, threshold, batch_size, json_path)
    if failures:
        raise ResdeepError(f"{failures} input(s) could not be processed; see the lines above")


def _check_options(
    method: str,
    target_class: int | None,
    top_k: int | None,
    layer: str | None,
    alpha: float,
    colormap: str,
    batch_size: int,
) -> None:
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if target_class is not None and top_k is not None:
        raise UsageError("--target-class and --top-k exclude each other; pick one")
    if top_k is not None and top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {top_k}")
    if method == "cam" and layer is not None:
        raise UsageError(
            "--method cam uses the last feature maps; use --layer with gradcam, gradcam++ or "
            "scorecam"
        )
    if not 0.0 <= alpha <= 1.0:
        raise UsageError(f"--alpha must be in [0, 1], got {alpha}")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    get_colormap(colormap)


def _check_against_model(
    model: ConvNet,
    info: CheckpointInfo,
    target_class: int | None,
    top_k: int | None,
    layer: str | None,
) -> None:
    classes = info.num_classes
    if target_class is not None and not 0 <= target_class < classes:
        raise UsageError(
            f"--target-class {target_class} is out of range; the model has classes 0..{classes - 1}"
        )
    if top_k is not None and top_k > classes:
        raise UsageError(f"--top-k {top_k} is more than the model's {classes} classes")
    if layer is not None:
        find_conv_layer(model, layer)


def _expand(inputs: list[Path]) -> tuple[list[Path], list[str]]:
    """(image paths in order, error lines for directories without images)."""
    paths, problems = [], []
    for item in inputs:
        if item.is_dir():
            found = image_files(item)
            if not found:
                problems.append(f"{item}: no image files in this directory")
            paths += found
        else:
            paths.append(item)  # a missing or broken file gets its own line when it is read
    return list(dict.fromkeys(paths)), problems


def _output_stems(paths: list[Path]) -> dict[Path, str]:
    """File stem per path; a stem seen before gets -2, -3, ... so no overlay overwrites another."""
    seen: dict[str, int] = {}
    stems = {}
    for path in paths:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        stems[path] = path.stem if seen[path.stem] == 1 else f"{path.stem}-{seen[path.stem]}"
    return stems


def _report_bad(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def _explain_images(
    model: ConvNet,
    info: CheckpointInfo,
    inputs: list[Path],
    settings: Settings,
    batch_size: int,
) -> int:
    """Write overlays for every readable image, a table each; returns the number of failures."""
    paths, problems = _expand(inputs)
    for problem in problems:
        _report_bad(problem)
    failures = len(problems)
    stems = _output_stems(paths)
    settings.out.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    for start in range(0, len(paths), batch_size):
        loaded = []
        for path in paths[start : start + batch_size]:
            try:
                tensor, image = load_image(path, info)
            except ResdeepError as error:
                _report_bad(str(error))
                failures += 1
                continue
            loaded.append((path, tensor, image))
        if not loaded:
            continue
        x = torch.cat([tensor for _, tensor, _ in loaded]).to(device)  # (B, C, H, W)
        with torch.no_grad(), evaluation_mode(model):
            probabilities = model(x).softmax(dim=1)  # (B, classes)
        ranked = probabilities.argsort(dim=1, descending=True)
        rows: list[list[list[str]]] = [[] for _ in loaded]
        for rank in range(settings.ranks):
            if settings.target_class is not None:
                targets = torch.full((len(loaded),), settings.target_class, device=device)
            else:
                targets = ranked[:, rank]
            output = class_activation_maps(model, x, settings.method, targets, settings.layer)
            for index, (path, _, image) in enumerate(loaded):
                heatmap = upsample_maps(output.maps[index : index + 1], (image.height, image.width))
                target = int(targets[index])
                files = _write_map(
                    stems[path], heatmap[0].cpu().numpy(), image, target, info, settings
                )
                predicted = int(ranked[index, 0])
                rows[index].append(
                    [
                        info.classes[predicted],
                        f"{probabilities[index, predicted].item():.3f}",
                        info.classes[target],
                        f"{probabilities[index, target].item():.3f}",
                        ", ".join(str(f) for f in files),
                    ]
                )
        for (path, _, image), image_rows in zip(loaded, rows, strict=True):
            _print_image_table(path, image, image_rows, settings.method)
    return failures


def _write_map(
    stem: str,
    heatmap: np.ndarray,
    image: Image.Image,
    target: int,
    info: CheckpointInfo,
    settings: Settings,
) -> list[Path]:
    class_name = re.sub(r"[^\w.-]+", "_", info.classes[target])
    base = settings.out / f"{stem}_{settings.method}_{class_name}"
    files = [
        save_overlay(
            base.with_name(base.name + ".png"), image, heatmap, settings.alpha, settings.colormap
        )
    ]
    if settings.save_raw:
        raw = base.with_name(base.name + ".npy")
        np.save(raw, heatmap.astype(np.float32))
        files.append(raw)
    return files


def _print_image_table(path: Path, image: Image.Image, rows: list[list[str]], method: str) -> None:
    table = Table(title=f"{path} ({image.width}x{image.height}, {method})", title_justify="left")
    table.add_column("predicted")
    table.add_column("probability", justify="right")
    table.add_column("target")
    table.add_column("target prob.", justify="right")
    table.add_column("written", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _evaluate(
    model: ConvNet,
    info: CheckpointInfo,
    method: str,
    layer: str | None,
    threshold: float,
    batch_size: int,
    json_path: Path | None,
) -> None:
    data = checkpoint_data(info)
    baseline = None if data.train.boxes is None else mean_box_size(data.train.boxes)
    result = benchmark(
        model,
        data.test,
        mean=info.mean,
        std=info.std,
        method=method,
        layer=layer,
        threshold=threshold,
        batch_size=batch_size,
        baseline_box=baseline,
        val=data.val,
    )
    _print_benchmark(result, info, method)
    if json_path is not None:
        record = {
            "checkpoint": str(info.path),
            "data": info.data_name,
            "split": "test",
            "method": method,
            "layer": layer,
            **result.to_dict(),
        }
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(record, indent=2) + "\n")
        console.print(f"wrote {json_path}")


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
