"""Studies in, landscape files out: group over seeds, draw, and write `landscape.json` and the
PNGs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resdeep.io import finite_or_none, save_json_atomic
from resdeep.landscape import figures as draw
from resdeep.landscape.groups import LandscapeGroup, group_landscapes, landscape_findings
from resdeep.landscape.study import LandscapeSettings, RunLandscape
from resdeep.report.landscape_section import LANDSCAPE_JSON


@dataclass(frozen=True)
class LandscapeReport:
    out_dir: Path
    runs: list[RunLandscape]
    groups: list[LandscapeGroup]
    findings: list[str]
    files: list[Path]


def build_landscape(
    runs: Iterable[RunLandscape],
    out_dir: Path,
    settings: LandscapeSettings,
    *,
    on_run: Callable[[RunLandscape], None] | None = None,
) -> LandscapeReport:
    """Study every run (`runs` yields them as they are done), then write the files."""
    from resdeep.report.figures import save_figure

    studied = []
    json_path = out_dir / LANDSCAPE_JSON
    for run in runs:
        studied.append(run)
        if on_run is not None:
            on_run(run)
        # Each run's numbers kept as they come: a long study loses nothing to a late failure.
        save_json_atomic(finite_or_none({"settings": asdict(settings),
                                         "runs": [r.as_json() for r in studied]}), json_path)  # fmt: skip
    groups = group_landscapes(studied)
    findings = landscape_findings(groups, settings.radius)
    drawings = [(draw.slices, "landscape_1d.png")]
    if settings.plane:
        drawings.append((draw.planes, "landscape_2d.png"))
    if settings.between:
        drawings.append((draw.interpolation, "landscape_interpolation.png"))
    # The numbers first: a study of many minutes is kept even if a figure fails.
    files = [out_dir / name for _, name in drawings]
    save_json_atomic(landscape_json(studied, groups, findings, files, settings), json_path)
    context = settings.describe()
    for (drawing, _), path in zip(drawings, files, strict=True):
        save_figure(drawing(groups, context), path)
    files.append(json_path)
    return LandscapeReport(out_dir, studied, groups, findings, files)


def landscape_json(
    runs: list[RunLandscape],
    groups: list[LandscapeGroup],
    findings: list[str],
    files: list[Path],
    settings: LandscapeSettings,
) -> dict[str, Any]:
    return finite_or_none(
        {
            "settings": asdict(settings),
            "findings": findings,
            "figures": [path.name for path in files],
            "groups": [group.as_json() for group in groups],
            "runs": [run.as_json() for run in runs],
        }
    )
