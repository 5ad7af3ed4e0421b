"""What `resdeep uncertainty --shift` prints: one table per kind, severity by method."""

from __future__ import annotations

from typing import Any

from rich.table import Table

# (column, curve name, format): what decides between methods as the shift grows.
COLUMNS = (
    ("acc.", "accuracy", ".4f"),
    ("NLL", "nll", ".4f"),
    ("Brier", "brier", ".4f"),
    ("ECE", "ece", ".4f"),
    ("AURC", "aurc", ".4f"),
    ("entropy", "mean_predictive_entropy", ".4f"),
    ("MI", "mean_mutual_information", ".4f"),
    ("AUROC shift", "shift_auroc", ".4f"),
)


def shift_table(summary: dict[str, Any], kind: str) -> Table:
    """Rows severity x method, a section per severity; with several runs, their mean."""
    curves, shown = summary["curves"][kind], summary["kinds"][kind]["shown"]
    runs = len(summary["runs"])
    spread = f", mean of {runs} runs (seeds); the JSON has each and the spread" if runs > 1 else ""
    table = Table(
        title=f"{kind}: {summary['data']} test, {summary['n']} images, T = {summary['samples']}"
        f"{spread}",
        caption="AURC by max probability; AUROC shift: predictive entropy telling these images "
        "from the clean ones (0.5: no better than chance)",
    )
    table.add_column("severity")
    table.add_column("method")
    for column, _, _ in COLUMNS:
        table.add_column(column, justify="right")
    for index, severity in enumerate(shown):
        for name, label in summary["methods"].items():
            values = curves[name]
            cells = [_cell(values[key]["mean"][index], spec) for _, key, spec in COLUMNS]
            table.add_row(severity, label, *cells)
        if index < len(shown) - 1:
            table.add_section()
    return table


def _cell(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def averages_table(summary: dict[str, Any]) -> Table:
    """One row per method: its clean ECE, then its ECE averaged over each kind's shifted
    severities."""
    kinds = list(summary["averages"])
    table = Table(title="ECE: clean, and averaged over each kind's shifted severities")
    table.add_column("method")
    table.add_column("clean", justify="right")
    for kind in kinds:
        table.add_column(kind.replace("_", " "), justify="right")
    first = kinds[0]
    for name, label in summary["methods"].items():
        clean = summary["curves"][first][name]["ece"]["mean"][0]
        shifted = [summary["averages"][kind][name]["ece"] for kind in kinds]
        table.add_row(label, _cell(clean, ".3f"), *(_cell(value, ".3f") for value in shifted))
    return table
