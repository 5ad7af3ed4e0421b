"""A section another command wrote beside the report (lesion, signal, landscape): one shape, so
the report shows each the same way, as Markdown and as HTML."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ToolSection:
    title: str
    intro: str  # what was measured, with the settings it ran with
    headers: tuple[str, ...]
    findings: list[str]
    rows: list[list[str]]
    figures: list[tuple[str, Path]]  # (caption, PNG)

    def markdown(self) -> list[str]:
        """Heading, what was measured, the findings, the table and the figures."""
        lines = [f"## {self.title}", "", self.intro, ""]
        lines += [f"- {finding}" for finding in self.findings]
        headers = self.headers
        lines += [
            "",
            "| " + " | ".join(headers) + " |",
            "|" + "|".join("---" for _ in headers) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        lines.append("")
        for caption, path in self.figures:
            lines += [f"### {caption}", "", f"![{caption}]({path.name})", ""]
        return lines


def read_tool_json(path: Path) -> dict[str, Any] | None:
    """A tool's JSON beside the report, or None when there is none or it is unreadable (the
    report is still worth writing)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def figures_in(
    folder: Path, written: dict[str, Any], captions: dict[str, str]
) -> list[tuple[str, Path]]:
    """The PNGs a tool's JSON lists that are still in `folder`, with their captions."""
    return [
        (captions.get(name, name), folder / name)
        for name in written.get("figures", [])
        if name.endswith(".png") and (folder / name).is_file()
    ]
