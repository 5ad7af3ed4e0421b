"""The report's lesion section, read from the `lesion.json` that `resdeep lesion` wrote next to
the report (plain JSON: the report needs no model to show it)."""

from __future__ import annotations

from pathlib import Path

from resdeep.report.sections import ToolSection, figures_in, read_tool_json
from resdeep.report.spread import Spread, format_points, format_spread

LESION_JSON = "lesion.json"
TITLE = "Lesion study: deleting blocks at test time (Veit et al. 2016)"
HEADERS = ("setting", "seeds", "intact", "median drop (points)", "worst drop (points)",
           "acc k=1", "acc k=5", "acc k=10", "90 % gradient window")  # fmt: skip
CAPTIONS = {
    "lesion_blocks.png": "Accuracy after deleting each block in turn",
    "lesion_k_curve.png": "Accuracy after deleting k random blocks together",
    "lesion_reorder.png": "Accuracy after swapping k pairs of neighbouring blocks",
    "lesion_paths.png": "The gradient by path length",
}
INTRO = (
    "Each block of every trained net deleted in turn at test time (a residual block then passes "
    "only its shortcut, a plain block its input; blocks that change shape are deleted through "
    "their shortcut in residual nets and kept in plain ones), then k random blocks together "
    "(acc k: accuracy after k deletions). Drops are points of accuracy lost; all numbers are "
    "mean ± std over the seeds."
)


def read_lesion_section(folder: Path) -> ToolSection | None:
    """The section from `folder/lesion.json`, or None when there is none."""
    lesion = read_tool_json(folder / LESION_JSON)
    if lesion is None:
        return None
    try:
        rows = [_row(group) for group in lesion.get("groups", [])]
    except (KeyError, TypeError, AttributeError):
        return None  # from another version
    return ToolSection(
        TITLE, INTRO, HEADERS, list(lesion.get("findings", [])), rows,
        figures_in(folder, lesion, CAPTIONS),
    )  # fmt: skip


def _row(group: dict) -> list[str]:
    curve = {point["k"]: point for point in group.get("k_curve", [])}
    windows = group.get("path_windows") or []
    window = ", ".join(f"{first}-{last}" for first, last in windows) if windows else "-"
    return [
        group["label"],
        str(len(group["seeds"])),
        format_spread(Spread.from_json(group["intact_accuracy"]), percent=True),
        format_points(Spread.from_json(group["median_single_drop"]), unit=False),
        format_points(Spread.from_json(group["worst_single_drop"]), unit=False),
        *(format_spread(Spread.from_json(curve.get(k)), percent=True) for k in (1, 5, 10)),
        window,
    ]
