"""Atomic file writes: a crash or kill at any moment leaves either the old file or the new one;
and JSON without NaN."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from resdeep.errors import ResdeepError


def _atomic_write(path: Path, write: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The temp file sits beside the target so the final rename never crosses file systems.
        handle, temp_name = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as error:
        raise ResdeepError(f"cannot write {path}: {error.strerror or error}") from error
    try:
        os.chmod(temp_name, 0o644)  # mkstemp's 0600 would hide results from collaborators
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp_name, path)
    except OSError as error:
        Path(temp_name).unlink(missing_ok=True)
        # Disk full, quota, read-only: the previous file (if any) is untouched.
        raise ResdeepError(f"cannot write {path}: {error.strerror or error}") from error
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def save_torch_atomic(obj: Any, path: str | Path) -> None:
    # Serialise in memory first: a serialisation bug and a full disk then fail apart, and the
    # latter always surfaces as an OSError that names the file.
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    _atomic_write(Path(path), lambda stream: stream.write(data))


def save_json_atomic(obj: Any, path: str | Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    _atomic_write(Path(path), lambda stream: stream.write(text.encode()))


def finite_or_none(value: Any) -> Any:
    """NaN and infinities as None (JSON has no NaN), through lists and dicts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value
