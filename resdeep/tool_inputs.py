"""What the analysis tools that read runs (lesion, signal, landscape) take in and where they
write: every run's checkpoint below the paths given, and the default output folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from resdeep.errors import UsageError
from resdeep.runs import find_runs, is_run_dir


def checkpoints_under(paths: Sequence[Path], names: Sequence[str] = ("best.pt",)) -> list[Path]:
    """Every run's checkpoint at or below `paths` (the first of `names` it has; a checkpoint
    file counts as itself), oldest run first; a path that holds none is refused."""
    found: list[Path] = []
    for path in paths:
        if path.is_file():
            found.append(path)
            continue
        present = []
        for run in find_runs(path):
            candidates = [run.path / "checkpoints" / name for name in names]
            present += [c for c in candidates if c.is_file()][:1]
        if not present:
            wanted = " or ".join(f"checkpoints/{name}" for name in names)
            raise UsageError(
                f"no checkpoint ({wanted}) at or below {path}; "
                "train one with `resdeep train` or import one with `resdeep import`"
            )
        found += present
    return list(dict.fromkeys(found))


def default_tool_dir(paths: Sequence[Path]) -> Path:
    """A single run's own dir (a checkpoint file's run dir); otherwise the report's choice (the
    sweep dir given first)."""
    from resdeep.report import default_out_dir
    from resdeep.runs import run_dir_of

    if len(paths) == 1 and paths[0].is_file():
        return run_dir_of(paths[0])
    if len(paths) == 1 and paths[0].is_dir() and is_run_dir(paths[0]):
        return paths[0]
    return default_out_dir(paths)
