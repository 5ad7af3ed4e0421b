"""What `resdeep cam` makes of explained images besides the overlays: the grid figure, the JSON
record and the model's name for titles."""

from __future__ import annotations

from pathlib import Path

from resdeep.cam.explain import ExplainSettings
from resdeep.cam.render import GridCell, save_grid
from resdeep.cam.results import ExplainedImage
from resdeep.checkpoint import CheckpointInfo
from resdeep.runs import read_metrics


def model_name(info: CheckpointInfo) -> str:
    """'resnet-56 (akamaster), cifar10' for titles."""
    kwargs = info.model_kwargs
    source = read_metrics(info.run_dir).get("source")
    origin = f" ({source})" if source else ""
    return f"{kwargs.get('arch', '?')}-{kwargs.get('depth', '?')}{origin}, {info.data_name}"


def image_record(item: ExplainedImage) -> dict:
    return {
        "path": str(item.path),
        "width": item.width,
        "height": item.height,
        "warning": item.warning,
        "maps": [
            {
                "method": entry.method,
                "predicted": entry.predicted,
                "predicted_probability": entry.predicted_probability,
                "target": entry.target,
                "target_probability": entry.target_probability,
                "files": [str(f) for f in entry.files],
            }
            for entry in item.maps
        ],
    }


def draw_grid(path: Path, explained: list[ExplainedImage], settings: ExplainSettings) -> None:
    """Rows: the inputs; columns: each method (times each top-k class)."""
    columns = []
    for method in settings.methods:
        for place in range(settings.maps_per_method):
            label = f"{method}, top-{place + 1}" if settings.maps_per_method > 1 else method
            columns.append(label)
    rows = []
    for item in explained:
        first = item.maps[0]
        label = f"{item.path.name}\n{first.predicted} {first.predicted_probability:.2f}"
        cells = [
            GridCell(entry.overlay, f"{entry.target} {entry.target_probability:.2f}")
            for entry in item.maps
        ]
        rows.append((label, cells))
    save_grid(path, rows, columns, title=settings.model_name)
