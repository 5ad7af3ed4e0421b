"""What `resdeep cam` makes of explained images besides the overlays: the grid figure, the JSON
record, the model's name for titles, and a class given by name or index."""

from __future__ import annotations

from pathlib import Path

from resdeep.cam.explain import ExplainedImage, ExplainSettings
from resdeep.cam.render import GridCell, save_grid
from resdeep.checkpoint import CheckpointInfo
from resdeep.errors import UsageError
from resdeep.runs import read_metrics


def target_index(value: str | None, info: CheckpointInfo) -> int | None:
    """A class by name ("cat") or index ("3")."""
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
        for place in range(settings.top_k):
            columns.append(method if settings.top_k == 1 else f"{method}, top-{place + 1}")
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
