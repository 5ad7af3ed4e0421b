"""Images in, class activation map files out: the pipeline behind `resdeep cam`.

`explain_images` reads each image as the checkpoint's training data was read, predicts, computes
the maps of the requested classes in batches and writes an overlay (and optionally the raw map)
per image and class. It yields one result per input, in order, so a caller can report as it
goes; a bad input is a result too, never the end of the run. `benchmark_checkpoint` scores the
maps on the checkpoint's own test split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from resdeep.cam.api import class_activation_maps, evaluation_mode
from resdeep.cam.evaluate import CamBenchmark, benchmark, mean_box_size
from resdeep.cam.methods import upsample_maps
from resdeep.cam.render import save_overlay
from resdeep.checkpoint import CheckpointInfo
from resdeep.errors import ResdeepError
from resdeep.experiment import checkpoint_data
from resdeep.images import image_files, load_image
from resdeep.models import ConvNet


@dataclass(frozen=True)
class ExplainSettings:
    method: str
    layer: str | None
    target_class: int | None  # None: the predicted class (or the top `ranks` classes)
    ranks: int  # maps per image: the top-k classes, or 1
    out: Path
    alpha: float
    colormap: str
    save_raw: bool
    batch_size: int


@dataclass(frozen=True)
class ClassMap:
    """One map of one image: what the model predicted, which class the map explains, files."""

    predicted: str
    predicted_probability: float
    target: str
    target_probability: float
    files: list[Path]


@dataclass(frozen=True)
class ExplainedImage:
    path: Path
    width: int
    height: int
    maps: list[ClassMap] = field(default_factory=list)


@dataclass(frozen=True)
class BadInput:
    """An input that could not be explained, with the one-line reason."""

    message: str


def expand_inputs(inputs: list[Path]) -> tuple[list[Path], list[BadInput]]:
    """(image paths in order, each once; a problem per directory without images)."""
    paths, problems = [], []
    for item in inputs:
        if item.is_dir():
            found = image_files(item)
            if not found:
                problems.append(BadInput(f"{item}: no image files in this directory"))
            paths += found
        else:
            paths.append(item)  # a missing or broken file gets its own line when it is read
    return list(dict.fromkeys(paths)), problems


def output_stems(paths: list[Path]) -> dict[Path, str]:
    """File stem per path; a stem seen before gets -2, -3, ... so no overlay overwrites another."""
    seen: dict[str, int] = {}
    stems = {}
    for path in paths:
        seen[path.stem] = seen.get(path.stem, 0) + 1
        stems[path] = path.stem if seen[path.stem] == 1 else f"{path.stem}-{seen[path.stem]}"
    return stems


def explain_images(
    model: ConvNet, info: CheckpointInfo, inputs: list[Path], settings: ExplainSettings
) -> Iterator[ExplainedImage | BadInput]:
    """Overlays for every readable image; one result per input (problems first)."""
    paths, problems = expand_inputs(inputs)
    yield from problems
    stems = output_stems(paths)
    device = next(model.parameters()).device
    for start in range(0, len(paths), settings.batch_size):
        loaded = []
        for path in paths[start : start + settings.batch_size]:
            try:
                tensor, image = load_image(path, info)
            except ResdeepError as error:
                yield BadInput(str(error))
                continue
            loaded.append((path, tensor, image))
        if loaded:
            # Made only once there is something to write: a failed call leaves no empty folder.
            settings.out.mkdir(parents=True, exist_ok=True)
            yield from _explain_batch(model, info, loaded, stems, settings, device)


def _explain_batch(
    model: ConvNet,
    info: CheckpointInfo,
    loaded: list[tuple[Path, torch.Tensor, Image.Image]],
    stems: dict[Path, str],
    settings: ExplainSettings,
    device: torch.device,
) -> Iterator[ExplainedImage]:
    x = torch.cat([tensor for _, tensor, _ in loaded]).to(device)  # (B, C, H, W)
    with torch.no_grad(), evaluation_mode(model):
        probabilities = model(x).softmax(dim=1)  # (B, classes)
    ranked = probabilities.argsort(dim=1, descending=True)
    maps: list[list[ClassMap]] = [[] for _ in loaded]
    for rank in range(settings.ranks):
        if settings.target_class is not None:
            targets = torch.full((len(loaded),), settings.target_class, device=device)
        else:
            targets = ranked[:, rank]
        output = class_activation_maps(model, x, settings.method, targets, settings.layer)
        for index, (path, _, image) in enumerate(loaded):
            heatmap = upsample_maps(output.maps[index : index + 1], (image.height, image.width))
            target, predicted = int(targets[index]), int(ranked[index, 0])
            files = write_map(stems[path], heatmap[0].cpu().numpy(), image, target, info, settings)
            maps[index].append(
                ClassMap(
                    predicted=info.classes[predicted],
                    predicted_probability=probabilities[index, predicted].item(),
                    target=info.classes[target],
                    target_probability=probabilities[index, target].item(),
                    files=files,
                )
            )
    for (path, _, image), image_maps in zip(loaded, maps, strict=True):
        yield ExplainedImage(path, image.width, image.height, image_maps)


def write_map(
    stem: str,
    heatmap: np.ndarray,
    image: Image.Image,
    target: int,
    info: CheckpointInfo,
    settings: ExplainSettings,
) -> list[Path]:
    """The overlay PNG (and the raw map as .npy, float32 in [0, 1], when asked)."""
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


def benchmark_checkpoint(
    model: ConvNet,
    info: CheckpointInfo,
    *,
    method: str,
    layer: str | None,
    threshold: float,
    batch_size: int,
) -> tuple[CamBenchmark, dict[str, Any]]:
    """The localisation benchmark on the checkpoint's rebuilt test split, and its JSON record."""
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
    record = {
        "checkpoint": str(info.path),
        "data": info.data_name,
        "split": "test",
        "method": method,
        "layer": layer,
        **result.to_dict(),
    }
    return result, record
