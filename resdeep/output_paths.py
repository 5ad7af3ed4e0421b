"""Output paths checked as typed, before any work: a command that would fail to write its result
after minutes of scoring or training says so at once. Torch-free, so every command can use it."""

from __future__ import annotations

import os
from pathlib import Path

from resdeep.errors import UsageError


def check_output_path(path: Path, option: str, *, folder: bool = False) -> None:
    """Refuse an output path that cannot work as typed (exit 2), before minutes of scoring: a
    folder where a file goes or the reverse, a file where a folder would have to be made, or a
    folder nobody may write into. Missing folders are fine: the writers make them."""
    if path.exists():
        if folder and not path.is_dir():
            raise UsageError(f"{option} {path} is a file, not a folder; give a folder")
        if not folder and path.is_dir():
            raise UsageError(f"{option} {path} is a folder; give a file path")
        # A file is replaced by renaming a new one into its folder: the folder must be writable.
        writes_into = path if folder else path.parent
    else:
        writes_into = path.parent
        while not writes_into.exists():
            writes_into = writes_into.parent
        if not writes_into.is_dir():
            raise UsageError(f"{option} {path}: {writes_into} is a file, not a folder")
    if not os.access(writes_into, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: cannot write into {writes_into} (permission denied)")
