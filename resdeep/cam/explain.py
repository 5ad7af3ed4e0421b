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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from resdeep.cam.api import class_activation_maps, find_conv_layer
from resdeep.cam.evaluate import CamBenchmark, benchmark, mean_box_size
from resdeep.cam.methods import upsample_maps
from resdeep.cam.render import get_colormap, make_folder, save_overlay, save_panel, writing_to
from resdeep.cam.results import BadInput, ClassMap, ExplainedImage
from resdeep.checkpoint import CheckpointInfo
from resdeep.choices import CROPS
from resdeep.config import checkpoint_data
from resdeep.errors import ResdeepError, UsageError
from resdeep.images import (
    View,
    crop_to_view,
    image_files,
    input_warning,
    preprocess,
    read_image,
)
from resdeep.models import ConvNet, evaluation_mode


@dataclass(frozen=True)
class ExplainSettings:
    """How `explain_images` draws its maps, checked on construction: what cannot work as typed is
    refused with one line before any checkpoint is read; `check_against` does the rest once the
    model is loaded."""

    methods: tuple[str, ...]
    layer: str | None
    target_class: str | None  # a class name or index as typed; None: the predicted class
    top_k: int | None  # maps per image and method: the k most probable classes; None: one
    out: Path
    alpha: float
    colormap: str
    save_raw: bool
    batch_size: int
    crop: str = "center"  # how a non-square image becomes the net's square input (choices.CROPS)
    panel: bool = False  # also input | map | overlay in one titled PNG per map
    model_name: str = ""  # for panel titles

    def __post_init__(self) -> None:
        if self.target_class is not None and self.top_k is not None:
            raise UsageError("--target-class and --top-k exclude each other; pick one")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, got {self.top_k}")
        if "cam" in self.methods and self.layer is not None:
            raise UsageError(
                "--method cam uses the last feature maps; use --layer with gradcam, gradcam++ or "
                "scorecam"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise UsageError(f"--alpha must be in [0, 1], got {self.alpha}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.crop not in CROPS:
            raise UsageError(f"--crop must be one of {', '.join(CROPS)}, got {self.crop!r}")
        get_colormap(self.colormap)

    @property
    def maps_per_method(self) -> int:
        return self.top_k or 1

    def target_index(self, info: CheckpointInfo) -> int | None:
        """The class to explain, by name ("cat") or index ("3"); None: the predicted one."""
        value = self.target_class
        if value is None:
            return None
        if value in info.classes:
            return info.classes.index(value)
        if value.lstrip("-").isdigit():
            index = int(value)
            if 0 <= index < info.num_classes:
                return index
            raise UsageError(
                f"--target-class {index} is out of range; the model has classes "
                f"0..{info.num_classes - 1}"
            )
        shown = ", ".join(info.classes[:12]) + (", ..." if info.num_classes > 12 else "")
        raise UsageError(f"--target-class {value!r} is not a class of this model ({shown})")

    def check_against(self, model: ConvNet, info: CheckpointInfo) -> None:
        """Refuse, with one line, what only the loaded model rules out: its classes, its layers."""
        self.target_index(info)
        if self.top_k is not None and self.top_k > info.num_classes:
            raise UsageError(
                f"--top-k {self.top_k} is more than the model's {info.num_classes} classes"
            )
        if self.layer is not None:
            find_conv_layer(model, self.layer)


@dataclass(frozen=True)
class _Loaded:
    path: Path
    tensor: torch.Tensor  # (1, C, H, W), what the net sees
    image: Image.Image  # the original, upright
    seen: Image.Image  # the square of it the net is shown, at full resolution
    view: View  # where that square lies on the original


def expand_inputs(inputs: list[Path]) -> tuple[list[Path], list[BadInput]]:
    """(image paths in order, each once; a problem per directory without images)."""
    paths, problems = [], []
    for item in inputs:
        if item.is_dir():
            found = image_files(item)
            if not found:
                problems.append(BadInput(_no_images(item)))
            paths += found
        else:
            paths.append(item)  # a missing or broken file gets its own line when it is read
    return list(dict.fromkeys(paths)), problems


def _no_images(directory: Path) -> str:
    """A directory is read one level deep: a tree can mix images meant for different nets
    (examples/ holds photos for CIFAR nets and digits), so its folders are named, not read."""
    holding = [str(sub) for sub in sorted(directory.iterdir()) if sub.is_dir() and image_files(sub)]
    if holding:
        return (
            f"{directory}: no image files directly in this directory; give "
            f"{', '.join(holding[:5])}{', ...' if len(holding) > 5 else ''}"
        )
    return f"{directory}: no image files in this directory"


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
    target = settings.target_index(info)
    device = next(model.parameters()).device
    for start in range(0, len(paths), settings.batch_size):
        loaded = []
        for path in paths[start : start + settings.batch_size]:
            try:
                image = read_image(path)
                seen, view = crop_to_view(image, settings.crop)
                loaded.append(_Loaded(path, preprocess(seen, info), image, seen, view))
            except ResdeepError as error:
                yield BadInput(str(error))
        if loaded:
            # Made only once there is something to write: a failed call leaves no empty folder.
            make_folder(settings.out)
            yield from _explain_batch(model, info, loaded, stems, settings, target, device)


def _explain_batch(
    model: ConvNet,
    info: CheckpointInfo,
    loaded: list[_Loaded],
    stems: dict[Path, str],
    settings: ExplainSettings,
    target_class: int | None,
    device: torch.device,
) -> Iterator[ExplainedImage]:
    x = torch.cat([item.tensor for item in loaded]).to(device)  # (B, C, H, W)
    with torch.no_grad(), evaluation_mode(model):
        probabilities = model(x).softmax(dim=1)  # (B, classes)
    ranked = probabilities.argsort(dim=1, descending=True)
    maps: list[list[ClassMap]] = [[] for _ in loaded]
    for method in settings.methods:
        for place in range(settings.maps_per_method):
            if target_class is not None:
                targets = torch.full((len(loaded),), target_class, device=device)
            else:
                targets = ranked[:, place]
            output = class_activation_maps(model, x, method, targets, settings.layer)
            for index, item in enumerate(loaded):
                view = item.view
                # The map covers the part the net saw, at that part's full resolution.
                on_view = upsample_maps(output.maps[index : index + 1], (view.height, view.width))
                target, predicted = int(targets[index]), int(ranked[index, 0])
                entry = ClassMap(
                    method=method,
                    predicted=info.classes[predicted],
                    predicted_probability=probabilities[index, predicted].item(),
                    target=info.classes[target],
                    target_probability=probabilities[index, target].item(),
                    files=[],
                )
                entry.files.extend(
                    write_map(
                        stems[item.path],
                        on_view[0].cpu().numpy(),
                        item,
                        entry,
                        settings,
                        seen_at=info.input_shape[1:],
                    )  # fmt: skip
                )
                maps[index].append(entry)
    for item, image_maps in zip(loaded, maps, strict=True):
        yield ExplainedImage(
            item.path,
            item.image.width,
            item.image.height,
            image_maps,
            input_warning(item.image, item.seen, info),
        )


def write_map(
    stem: str,
    on_view: np.ndarray,
    item: _Loaded,
    entry: ClassMap,
    settings: ExplainSettings,
    seen_at: tuple[int, int],
) -> list[Path]:
    """The overlay PNG on the whole original image (and the raw map as .npy, float32 in [0, 1]
    at the image's size, 0 where the net did not look, when asked; and the panel)."""
    class_name = re.sub(r"[^\w.-]+", "_", entry.target)
    base = settings.out / f"{stem}_{entry.method}_{class_name}"
    heatmap, region = place_on_image(on_view, item.view, item.image.size)
    files = [
        save_overlay(
            base.with_name(base.name + ".png"),
            item.image,
            heatmap,
            settings.alpha,
            settings.colormap,
            region,
        )
    ]
    if settings.save_raw:
        raw = base.with_name(base.name + ".npy")
        with writing_to(raw):
            np.save(raw, heatmap.astype(np.float32))
        files.append(raw)
    if settings.panel:
        files.append(
            save_panel(
                base.with_name(base.name + "_panel.png"),
                item.seen,
                on_view,
                input_title=f"input ({settings.crop} crop; the net sees it at "
                f"{seen_at[1]}x{seen_at[0]})",
                title=(
                    f"{item.path.name}: {entry.predicted} (p = {entry.predicted_probability:.2f})"
                    f"  ·  {entry.method} of {entry.target}"
                    + (f"  ·  {settings.model_name}" if settings.model_name else "")
                ),
                alpha=settings.alpha,
                colormap=settings.colormap,
            )
        )
    return files


def place_on_image(
    on_view: np.ndarray, view: View, size: tuple[int, int]
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """The view's map pasted at its place on an image of PIL `size` (W, H): (map (H, W), 0
    elsewhere; the rows and columns of the image the net saw)."""
    width, height = size
    heatmap = np.zeros((height, width), dtype=np.float32)
    top, left = max(view.top, 0), max(view.left, 0)
    bottom, right = min(view.top + view.height, height), min(view.left + view.width, width)
    heatmap[top:bottom, left:right] = on_view[
        top - view.top : bottom - view.top, left - view.left : right - view.left
    ]
    return heatmap, (slice(top, bottom), slice(left, right))


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
