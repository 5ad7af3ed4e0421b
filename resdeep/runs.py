"""Finding and summarising run directories (the contract between training and every tool)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resdeep.errors import ResdeepError

DEFAULT_RUNS_ROOT = Path("runs")
# TensorBoard tag of each layer's gradient norm: `grad_norm/<layer name>`, written by training,
# read by `resdeep report`.
GRAD_NORM_PREFIX = "grad_norm/"


@dataclass
class RunRecord:
    path: Path
    metrics: dict[str, Any]

    @property
    def started(self) -> float:
        config = self.path / "config.yaml"
        return (config if config.exists() else self.path).stat().st_mtime


def is_run_dir(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / "checkpoints").is_dir()


def read_metrics(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def find_runs(root: Path) -> list[RunRecord]:
    """Every run directory at or below `root`, oldest first."""
    if not root.exists():
        raise ResdeepError(f"no such directory: {root}")
    candidates = [root] if is_run_dir(root) else []
    candidates += [p.parent for p in root.rglob("metrics.json") if p.parent != root]
    candidates += [
        p.parent for p in root.rglob("checkpoints") if p.is_dir() and p.parent not in candidates
    ]
    records = [RunRecord(path, read_metrics(path)) for path in dict.fromkeys(candidates)]
    return sorted(records, key=lambda record: record.started)


def latest_checkpoint(root: Path = DEFAULT_RUNS_ROOT, name: str = "best.pt") -> Path:
    """`checkpoints/<name>` of the most recently written run under `root`."""
    found = (
        sorted(root.rglob(f"checkpoints/{name}"), key=lambda p: p.stat().st_mtime)
        if root.exists()
        else []
    )
    if not found:
        raise ResdeepError(
            f"no checkpoint found under {root}/; train one with `resdeep train` or pass --checkpoint"
        )
    return found[-1]
