"""Run dirs in, report files out: read, summarise, find, draw, write."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from resdeep.io import save_json_atomic
from resdeep.report import diagnostic_figures
from resdeep.report import figures as draw
from resdeep.report.analysis import RunGroup, RunSummary, group_runs, summarize_runs
from resdeep.report.document import FigureFile, html_page, markdown, report_json
from resdeep.report.findings import comparisons, findings
from resdeep.report.landscape_section import read_landscape_section
from resdeep.report.lesion_section import read_lesion_section
from resdeep.report.reading import holds_run, read_runs
from resdeep.report.signal_section import read_signal_section

TITLE = "Plain vs residual networks: depth and gradient flow"


@dataclass(frozen=True)
class Report:
    out_dir: Path
    summaries: list[RunSummary]
    groups: list[RunGroup]
    findings: list[str]
    files: list[Path]


def default_out_dir(paths: Sequence[Path]) -> Path:
    """The sweep dir given first; for run dirs given one by one, the folder that holds them all."""
    first = paths[0]
    if not holds_run(first):
        return first
    return Path(os.path.commonpath([p.resolve().parent for p in paths]))


# (caption, drawing function of the groups, file name): the figures every report has, then the
# ones only runs that logged the diagnostics can draw.
CORE_FIGURES = (
    ("Training curves over steps (He et al. 2015, Fig. 6 layout)", draw.training_curves,
     "training_curves.png"),
    ("Gradient norm by layer, first and last logged step", draw.gradient_profile,
     "gradient_profile.png"),
    ("Final training error, training loss and test accuracy against depth",
     draw.accuracy_vs_depth, "accuracy_vs_depth.png"),
)  # fmt: skip
MECHANISM_FIGURES = (
    ("Backward signal ‖∂L/∂x‖ by block, at initialisation and at the end",
     diagnostic_figures.backward_signal, "backward_signal.png"),
    ("Weight growth, relative gradient and relative update by layer",
     diagnostic_figures.weights_and_updates, "weights_and_updates.png"),
    ("Layer responses (He et al. 2015, Fig. 7)", diagnostic_figures.layer_responses,
     "layer_responses.png"),
)  # fmt: skip


def build_report(paths: Sequence[Path], out_dir: Path, html: bool = False) -> Report:
    summaries = summarize_runs(read_runs(list(paths)))
    groups = group_runs(summaries)
    # Written by `resdeep lesion`, `resdeep signal --checkpoint` and `resdeep landscape` into
    # the same folder.
    lesion = read_lesion_section(out_dir)
    signal = read_signal_section(out_dir)
    lines = findings(summaries, signal)
    landscape = read_landscape_section(out_dir)
    sections = [s for s in (lesion, signal.section if signal else None, landscape) if s]
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_files = _group_figures(summaries, groups, out_dir)
    figure_files += _heatmaps(summaries, groups, out_dir)
    written = [figure.path for figure in figure_files]
    save_json_atomic(
        report_json(summaries, groups, comparisons(groups), lines, figure_files),
        out_dir / "report.json",
    )
    (out_dir / "report.md").write_text(markdown(TITLE, groups, lines, figure_files, sections))
    written += [out_dir / "report.json", out_dir / "report.md"]
    if html:
        page = html_page(TITLE, groups, lines, figure_files, sections)
        (out_dir / "report.html").write_text(page)
        written.append(out_dir / "report.html")
    return Report(
        out_dir=out_dir, summaries=summaries, groups=groups, findings=lines, files=written
    )


def _group_figures(
    summaries: list[RunSummary], groups: list[RunGroup], out_dir: Path
) -> list[FigureFile]:
    specs = CORE_FIGURES
    if any(s.mechanism for s in summaries):  # runs that logged the diagnostics
        specs += MECHANISM_FIGURES
    return [
        FigureFile(caption, draw.save_figure(drawing(groups), out_dir / name))
        for caption, drawing, name in specs
    ]


def _heatmaps(
    summaries: list[RunSummary], groups: list[RunGroup], out_dir: Path
) -> list[FigureFile]:
    """One heatmap per group, of its lowest seed: the seeds' maps look alike, and a sweep of
    18 runs should not bury its figures under 18 heatmaps."""
    mixed_data = len({s.data for s in summaries}) > 1
    figures = []
    for group in groups:
        summary = group.first
        if summary.run.grads is None:
            continue
        name = f"{summary.label} {summary.data}" if mixed_data else summary.label
        path = out_dir / f"gradient_heatmap_{_slug(name)}.png"
        figures.append(
            FigureFile(
                f"Gradient heatmap: {summary.run_label}",
                draw.save_figure(draw.gradient_heatmap(summary), path),
            )
        )
    return figures


def _slug(label: str) -> str:
    """ "plain-56 (xavier, no BN)" -> "plain-56_xavier_no_BN": safe in any file system."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", label).strip("_")
