"""The report as documents: report.json, report.md and a self-contained report.html.

All three are rendered from the same pieces (findings, one results table, the figure files), so
they never disagree.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resdeep.report.analysis import RunSummary, grad_ratio

TABLE_HEADERS = (
    "run",
    "data",
    "status",
    "epochs",
    "final train loss",
    "train error",
    "test acc",
    "grad first/last (first step)",
    "grad first/last (last step)",
)


@dataclass(frozen=True)
class FigureFile:
    title: str
    path: Path


def run_entry(summary: RunSummary) -> dict[str, Any]:
    """One run of report.json; non-finite numbers become null so the file stays valid JSON."""
    return {
        "label": summary.label,
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
    }


def report_json(
    summaries: Sequence[RunSummary], findings: Sequence[str], figures: Sequence[FigureFile]
) -> dict[str, Any]:
    return {
        "runs": [run_entry(s) for s in summaries],
        "findings": list(findings),
        "figures": [figure.path.name for figure in figures],
    }


def table_rows(summaries: Sequence[RunSummary]) -> list[list[str]]:
    """The results table as text cells, shared by report.md, report.html and the terminal."""
    return [
        [
            s.label,
            s.data,
            s.status + (f", {s.skipped_steps} steps skipped" if s.skipped_steps else ""),
            str(s.epochs),
            _fixed(s.final_train_loss, ".4f"),
            _fixed(s.final_train_error, ".1%"),
            _fixed(s.test_acc, ".1%"),
            _ratio(grad_ratio(s.grad_norm_first_step), s.first_step),
            _ratio(grad_ratio(s.grad_norm_last_step), s.last_step),
        ]
        for s in summaries
    ]


def markdown(
    title: str,
    summaries: Sequence[RunSummary],
    findings: Sequence[str],
    figures: Sequence[FigureFile],
) -> str:
    lines = [f"# {title}", "", _overview(summaries), "", "## Findings", ""]
    lines += [f"- {finding}" for finding in findings] or ["- (no comparable runs yet)"]
    lines += ["", "## Results", ""]
    lines.append("| " + " | ".join(TABLE_HEADERS) + " |")
    lines.append("|" + "|".join("---" for _ in TABLE_HEADERS) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(summaries)]
    lines += ["", "## Figures", ""]
    for figure in figures:
        lines += [f"### {figure.title}", "", f"![{figure.title}]({figure.path.name})", ""]
    return "\n".join(lines)


def html_page(
    title: str,
    summaries: Sequence[RunSummary],
    findings: Sequence[str],
    figures: Sequence[FigureFile],
) -> str:
    """One file with every image inlined as base64: it can be mailed or attached as it is."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in TABLE_HEADERS)
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>"
        for row in table_rows(summaries)
    )
    items = "".join(f"<li>{esc(f)}</li>" for f in findings) or "<li>(no comparable runs yet)</li>"
    images = "".join(
        f"<h3>{esc(figure.title)}</h3><img alt='{esc(figure.title)}' "
        f"src='data:image/png;base64,{base64.b64encode(figure.path.read_bytes()).decode()}'>"
        for figure in figures
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1><p>{esc(_overview(summaries))}</p>"
        f"<h2>Findings</h2><ul>{items}</ul>"
        f"<h2>Results</h2><table><tr>{head}</tr>{rows}</table>"
        f"<h2>Figures</h2>{images}</body></html>\n"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25em .6em}"
    "td{text-align:right}td:first-child{text-align:left}img{max-width:100%}"
)


def _overview(summaries: Sequence[RunSummary]) -> str:
    data = sorted({s.data for s in summaries})
    finished = sum(s.status == "completed" for s in summaries)
    return (
        f"{len(summaries)} runs on {', '.join(data)} ({finished} completed). Gradient ratios are "
        "the first layer's gradient norm over the last layer's, at the first and last logged step."
    )


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _fixed(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: float | None, step: int | None) -> str:
    if value is None:
        return "-"
    shown = f"{value:.3g}" if value < 1e4 else f"{value:.2e}"
    return f"{shown} (step {step})"
