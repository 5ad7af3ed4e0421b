"""The report as documents: report.json, report.md and a self-contained report.html.

All three are rendered from the same pieces (findings, one results table, the figure files), so
they never disagree.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resdeep.report.analysis import RunGroup, RunSummary, grad_ratio
from resdeep.report.findings import Comparison
from resdeep.report.mechanism import SHORT_LABELS, Mechanism
from resdeep.report.sections import ToolSection
from resdeep.report.spread import format_spread

TABLE_HEADERS = (
    "run",
    "data",
    "seeds",
    "status",
    "epochs",
    "final train loss",
    "train error",
    "test acc",
    "grad first/last (first step)",
    "grad first/last (last step)",
    "mechanism",
)


@dataclass(frozen=True)
class FigureFile:
    title: str
    path: Path


def run_entry(summary: RunSummary) -> dict[str, Any]:
    """One run of report.json; non-finite numbers become null so the file stays valid JSON."""
    return {
        "label": summary.label,
        "seed": summary.seed,
        "run_dir": str(summary.run.run_dir),
        "data": summary.data,
        "arch": summary.arch,
        "depth": summary.depth,
        "init": summary.init,
        "norm": summary.norm,
        "status": summary.status,
        "epochs": summary.epochs,
        "steps": summary.run.steps,
        "skipped_steps": summary.skipped_steps,
        "final_train_loss": summary.final_train_loss,
        "final_train_error": summary.final_train_error,
        "test_acc": summary.test_acc,
        "first_step": summary.first_step,
        "last_step": summary.last_step,
        "grad_ratio_first_step": grad_ratio(summary.grad_norm_first_step),
        "grad_ratio_last_step": grad_ratio(summary.grad_norm_last_step),
        "layer_names": summary.layer_names,
        "grad_norm_first_step": [_json_number(v) for v in summary.grad_norm_first_step],
        "grad_norm_last_step": [_json_number(v) for v in summary.grad_norm_last_step],
        "mechanism": _mechanism_entry(summary.mechanism),
    }


def _mechanism_entry(mechanism: Mechanism | None) -> dict[str, Any] | None:
    """The numbers a run's mechanism rests on, and its labels; None for a run without
    diagnostics."""
    if mechanism is None:
        return None
    numbers = {
        key: _json_number(value) if isinstance(value, float) else value
        for key, value in asdict(mechanism).items()
    }
    return {**numbers, "init_gain": _json_number(mechanism.init_gain), "labels": mechanism.labels()}


def group_entry(group: RunGroup) -> dict[str, Any]:
    """One group of report.json: the mean, standard deviation and count over its seeds."""
    return {
        "label": group.label,
        "data": group.data,
        "arch": group.arch,
        "depth": group.depth,
        "init": group.init,
        "norm": group.norm,
        "seeds": group.seeds,
        **{
            name: {"mean": spread.mean, "std": spread.std, "n": spread.n}
            for name, spread in (
                ("final_train_loss", group.train_loss),
                ("final_train_error", group.train_error),
                ("test_acc", group.test_acc),
            )
        },
    }


def report_json(
    summaries: Sequence[RunSummary],
    groups: Sequence[RunGroup],
    comparisons: Sequence[Comparison],
    findings: Sequence[str],
    figures: Sequence[FigureFile],
) -> dict[str, Any]:
    return {
        "runs": [run_entry(s) for s in summaries],
        "groups": [group_entry(g) for g in groups],
        "comparisons": [c.as_dict() for c in comparisons],
        "findings": list(findings),
        "figures": [figure.path.name for figure in figures],
    }


def table_rows(groups: Sequence[RunGroup]) -> list[list[str]]:
    """The results table as text cells, one row per group (mean ± std over its seeds), shared
    by report.md, report.html and the terminal."""
    return [
        [
            g.label,
            g.data,
            ", ".join("?" if seed is None else str(seed) for seed in g.seeds),
            _statuses(g.runs),
            _span(str(s.epochs) for s in g.runs),
            format_spread(g.train_loss),
            format_spread(g.train_error, percent=True),
            format_spread(g.test_acc, percent=True),
            _ratios([grad_ratio(s.grad_norm_first_step) for s in g.runs], g.first.first_step),
            _ratios([grad_ratio(s.grad_norm_last_step) for s in g.runs], g.first.last_step),
            _mechanisms(g.runs),
        ]
        for g in groups
    ]


def markdown(
    title: str,
    groups: Sequence[RunGroup],
    findings: Sequence[str],
    figures: Sequence[FigureFile],
    sections: Sequence[ToolSection] = (),
) -> str:
    lines = [f"# {title}", "", _overview(groups), "", "## Findings", ""]
    lines += [f"- {finding}" for finding in findings] or ["- (no comparable runs yet)"]
    lines += ["", "## Results", ""]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "|".join("---" for _ in TABLE_HEADERS) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(groups)]
    lines += ["", "## Figures", ""]
    for figure in figures:
        lines += [f"### {figure.title}", "", f"![{figure.title}]({figure.path.name})", ""]
    for section in sections:
        lines += section.markdown()
    return "\n".join(lines)


def html_page(
    title: str,
    groups: Sequence[RunGroup],
    findings: Sequence[str],
    figures: Sequence[FigureFile],
    sections: Sequence[ToolSection] = (),
) -> str:
    """One file with every image inlined as base64: it can be mailed or attached as it is."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADERS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>"
        for row in table_rows(groups)
    )
    items = "".join(f"<li>{esc(f)}</li>" for f in findings) or "<li>(no comparable runs yet)</li>"
    images = "".join(_html_image(figure.title, figure.path) for figure in figures)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>{esc(_overview(groups))}</p>"
        f"<h2>Findings</h2><ul>{items}</ul>"
        f"<h2>Results</h2><table><tr>{head}</tr>{rows}</table>"
        f"<h2>Figures</h2>{images}"
        + "".join(_html_section(section) for section in sections)
        + "</body></html>\n"
    )


def _html_image(title: str, path: Path) -> str:
    esc = html.escape
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<h3>{esc(title)}</h3><img alt='{esc(title)}' src='data:image/png;base64,{data}'>"


def _html_section(section: ToolSection) -> str:
    """A section another command wrote next to the report: its findings, table and figures."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in section.headers)
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in section.rows
    )
    items = "".join(f"<li>{esc(f)}</li>" for f in section.findings)
    images = "".join(_html_image(caption, path) for caption, path in section.figures)
    return (
        f"<h2>{esc(section.title)}</h2><p>{esc(section.intro)}</p><ul>{items}</ul>"
        f"<table><tr>{head}</tr>{rows}</table>{images}"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em}"
    "td{text-align:right}td:first-child{text-align:left}img{max-width:100%}"
)


def _overview(groups: Sequence[RunGroup]) -> str:
    runs = [run for group in groups for run in group.runs]
    data = sorted({g.data for g in groups})
    finished = sum(run.status == "completed" for run in runs)
    seeds = sorted({len(g.runs) for g in groups})
    per_group = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"
    return (
        f"{len(runs)} runs on {', '.join(data)} ({finished} completed), {len(groups)} settings "
        f"with {per_group} seed{'s' if seeds[-1] > 1 else ''} each: numbers are mean ± standard "
        "deviation over the seeds, and a finding calls one setting worse than another only when "
        "their 95 % confidence intervals do not overlap. Gradient ratios are the first layer's "
        "gradient norm over the last layer's, at the first and last logged step (range over "
        "the seeds); the mechanism is what the backward signal, weight norms and updates show "
        "(see the findings for its numbers)."
    )


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _statuses(runs: Sequence[RunSummary]) -> str:
    """ "completed", or "2 completed, 1 diverged", with skipped steps added up."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    text = (
        next(iter(counts))
        if len(counts) == 1
        else ", ".join(f"{count} {status}" for status, count in counts.items())
    )
    skipped = sum(run.skipped_steps for run in runs)
    return text + (f", {skipped} steps skipped" if skipped else "")


def _mechanisms(runs: Sequence[RunSummary]) -> str:
    """ "exploding → frozen → vanishing", per distinct verdict over the seeds; "-" without
    diagnostics."""
    verdicts = [
        " → ".join(SHORT_LABELS[label] for label in run.mechanism.labels())
        for run in runs
        if run.mechanism
    ]
    if not verdicts:
        return "-"
    counts = {verdict: verdicts.count(verdict) for verdict in dict.fromkeys(verdicts)}
    if len(counts) == 1:
        return verdicts[0]
    return "; ".join(f"{verdict} ({count} seeds)" for verdict, count in counts.items())


def _span(values: Iterable[str]) -> str:
    distinct = list(dict.fromkeys(values))
    return distinct[0] if len(distinct) == 1 else f"{distinct[0]} to {distinct[-1]}"


def _ratios(values: Sequence[float | None], step: int | None) -> str:
    finite = [v for v in values if v is not None]
    if not finite:
        return "-"
    shown = _span(_ratio_text(v) for v in sorted(finite))
    return f"{shown} (step {step})"


def _ratio_text(value: float) -> str:
    return f"{value:.3g}" if value < 1e4 else f"{value:.2e}"
