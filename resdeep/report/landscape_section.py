"""The report's landscape section, read from the `landscape.json` that `resdeep landscape` wrote
next to the report (plain JSON: the report needs no model to show it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from resdeep.report.sections import ToolSection, figures_in, read_tool_json
from resdeep.report.spread import Spread, format_spread

LANDSCAPE_JSON = "landscape.json"
TITLE = "Loss landscape around the trained weights (Li et al. 2018)"
# How each normalisation of the directions reads in the section's text.
NORMALIZED = {
    "filter": "each filter rescaled to the norm of the same filter of θ* (filter normalisation)",
    "layer": "each tensor rescaled to the norm of θ*'s (layer normalisation)",
    "model": "rescaled as a whole to the norm of θ* (model normalisation)",
    "none": "as drawn (no normalisation)",
}
CAPTIONS = {
    "landscape_1d.png": "Training loss along random directions",
    "landscape_2d.png": "Training loss on a plane of two directions",
    "landscape_interpolation.png": "Training loss on the straight line between two nets",
}


def headers(settings: dict[str, Any]) -> tuple[str, ...]:
    radius = settings.get("radius", 0.25)
    columns = ["setting", "seeds", "train loss at θ*", "train acc", f"sharpness at ±{radius:g}"]
    if settings.get("test"):
        columns += ["test loss at θ*", "test sharpness"]
    if settings.get("between"):
        columns.append("barrier")
    if settings.get("hessian"):
        columns += ["λmax", "|λmin|/λmax", "trace"]
    return tuple(columns)


def intro(settings: dict[str, Any]) -> str:
    """What was measured, with the settings the study ran with."""
    subset, seed = settings.get("subset", 512), settings.get("seed", 0)
    normalization = settings.get("normalization", "filter")
    stats = settings.get("bn_stats", "running")
    bn = ("batch norm in eval mode with each checkpoint's running statistics" if stats == "running"
          else "batch norm re-estimated on the subset at every point")  # fmt: skip
    return (
        f"Each run's checkpoint θ* (last.pt; best.pt where a run has no other), moved along "
        f"{settings.get('directions', 2)} random Gaussian directions (seed {seed}), "
        f"{NORMALIZED.get(normalization, normalization)} (biases and batch norm's parameters not "
        f"moved), from −{settings.get('span', 1.0):g} to "
        f"+{settings.get('span', 1.0):g}; the loss on {subset} training images drawn with seed "
        f"{seed} (their indices are in landscape.json), {bn}. Sharpness: the mean rise of the "
        "training loss at ± the radius along the directions."
        + (
            " Barrier: the highest loss on the straight line between the two ends above the "
            "higher end."
            if settings.get("between")
            else ""
        )
        + (
            " λmax, λmin: Lanczos on Hessian-vector products; trace: Hutchinson's estimator."
            if settings.get("hessian")
            else ""
        )
        + " Mean ± std over the seeds."
    )


def read_landscape_section(folder: Path) -> ToolSection | None:
    """The section from `folder/landscape.json`, or None when there is none."""
    landscape = read_tool_json(folder / LANDSCAPE_JSON)
    if landscape is None:
        return None
    settings = landscape.get("settings", {})
    try:
        rows = [group_row(group, settings) for group in landscape.get("groups", [])]
    except (KeyError, TypeError, AttributeError):
        return None  # from another version
    return ToolSection(TITLE, intro(settings), headers(settings),
                       list(landscape.get("findings", [])), rows,
                       figures_in(folder, landscape, CAPTIONS))  # fmt: skip


def group_row(group: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    def spread(entry: dict | None, *, percent: bool = False) -> str:
        return format_spread(Spread.from_json(entry), percent=percent)

    row = [
        group["label"],
        str(len(group["seeds"])),
        spread(group["centre_loss"].get("train")),
        spread(group["centre_accuracy"].get("train"), percent=True),
        spread(group["sharpness"].get("train")),
    ]
    if settings.get("test"):
        row += [spread(group["centre_loss"].get("test")), spread(group["sharpness"].get("test"))]
    if settings.get("between"):
        row.append(spread((group.get("barrier") or {}).get("train")))
    if settings.get("hessian"):
        curvature = group.get("curvature") or {}
        row += [spread(curvature.get(k)) for k in ("lambda_max", "negative_ratio", "trace")]
    return row
