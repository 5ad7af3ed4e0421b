"""A section another command wrote beside the report (lesion, signal), as Markdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def section_markdown(
    title: str,
    intro: str,
    headers: Sequence[str],
    findings: Sequence[str],
    rows: Sequence[Sequence[str]],
    figures: Sequence[tuple[str, Path]],
) -> list[str]:
    """Heading, what was measured, the findings, the table and the figures (caption, PNG)."""
    lines = [f"## {title}", "", intro, ""]
    lines += [f"- {finding}" for finding in findings]
    lines += ["", "| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    for caption, path in figures:
        lines += [f"### {caption}", "", f"![{caption}]({path.name})", ""]
    return lines
