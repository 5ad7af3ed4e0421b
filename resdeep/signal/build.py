"""Nets in, signal files out: measure each net, group over seeds, draw, and write `signal.json`
and the PNGs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from resdeep.io import save_json_atomic
from resdeep.report.signal_section import SIGNAL_JSON
from resdeep.signal import figures as draw
from resdeep.signal.groups import SignalGroup, group_signals, signal_findings
from resdeep.signal.study import NetSignal, SignalSettings

# (drawing function of the groups, file name); the mean-field figure only where it applies.
FIGURES = (
    (draw.signal_by_block, "signal_by_block.png"),
    (draw.correlation, "signal_correlation.png"),
    (draw.shattered, "signal_shattered.png"),
)
MEAN_FIELD_FIGURE = (draw.mean_field, "signal_mean_field.png")


@dataclass(frozen=True)
class SignalReport:
    out_dir: Path
    nets: list[NetSignal]
    groups: list[SignalGroup]
    findings: list[str]
    files: list[Path]


def build_signal(
    nets: Iterable[NetSignal],
    out_dir: Path,
    settings: SignalSettings,
    *,
    on_net: Callable[[NetSignal], None] | None = None,
) -> SignalReport:
    """Measure every net (`nets` yields them as they are measured), then write the files."""
    from resdeep.report.figures import save_figure

    measured = []
    for net in nets:
        measured.append(net)
        if on_net is not None:
            on_net(net)
    groups = group_signals(measured)
    findings = signal_findings(groups)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = list(FIGURES)
    if any(net.mean_field for net in measured):
        figures.insert(1, MEAN_FIELD_FIGURE)
    files = [save_figure(drawing(groups), out_dir / name) for drawing, name in figures]
    save_json_atomic(
        signal_json(measured, groups, findings, files, settings), out_dir / SIGNAL_JSON
    )
    files.append(out_dir / SIGNAL_JSON)
    return SignalReport(out_dir, measured, groups, findings, files)


def signal_json(
    nets: list[NetSignal],
    groups: list[SignalGroup],
    findings: list[str],
    files: list[Path],
    settings: SignalSettings,
) -> dict[str, Any]:
    return {
        "settings": asdict(settings),
        "findings": findings,
        "figures": [path.name for path in files],
        "groups": [group.as_json() for group in groups],
        "nets": [net.as_json() for net in nets],
    }
