"""Checkpoints: tensors and plain data only, so they load with `torch.load(weights_only=True)`.

A checkpoint never holds pickled objects, which means opening one that somebody sent you
cannot run their code: PyTorch's weights-only unpickler refuses anything else.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from resdeep.errors import ResdeepError
from resdeep.io import save_torch_atomic
from resdeep.models import ConvNet, ModelConfigError, build_model
from resdeep.models.pretrained import convert, published_source
from resdeep.runs import imported_run_dir, run_dir_of

FORMAT = "resdeep-checkpoint"
FORMAT_VERSION = 1
# A run's weights before its first step, beside best.pt and last.pt (model and metadata only).
INITIAL_CHECKPOINT = "init.pt"


@dataclass
class CheckpointInfo:
    """What a tool needs besides the weights: how the model was trained and fed."""

    path: Path
    run_dir: Path
    config: dict[str, Any]
    model_kwargs: dict[str, Any]
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_shape: tuple[int, int, int]
    epoch: int
    step: int
    metrics: dict[str, Any] = field(default_factory=dict)
    imported: dict[str, Any] | None = None  # a published net's provenance (resdeep import)

    @property
    def data_name(self) -> str:
        return str(self.config.get("data", {}).get("name", "unknown"))

    @property
    def num_classes(self) -> int:
        return len(self.classes)


# What must agree for one checkpoint's weights to mean the same network as another's.
# A checkpoint from before residual_init existed has none: it was "none", and build_model's
# default rebuilds it.
ARCHITECTURE_KEYS = (
    "arch", "depth", "block", "shortcut", "shortcut_pad", "norm", "residual_init", "in_channels",
)  # fmt: skip


def first_architecture_difference(theirs: dict[str, Any], ours: dict[str, Any]) -> str | None:
    """The first model argument (of ARCHITECTURE_KEYS) in which two nets differ, or None when
    one's weights fit the other (the class count may differ: a fresh classifier)."""
    return next(
        (key for key in ARCHITECTURE_KEYS if key in theirs and theirs[key] != ours.get(key)),
        None,
    )


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically (temp file + rename): a kill never leaves half a file."""
    save_torch_atomic({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, path)


def resolve_checkpoint_path(path_or_run_dir: str | Path, name: str = "best.pt") -> Path:
    """A checkpoint file, or a run directory whose `checkpoints/<name>` is meant."""
    path = Path(path_or_run_dir)
    if path.is_dir():
        candidate = path / "checkpoints" / name
        if not candidate.is_file():
            raise ResdeepError(
                f"{path} holds no checkpoints/{name}; is it a resdeep run directory?"
            )
        return candidate
    if not path.exists():
        raise ResdeepError(f"checkpoint not found: {path}")
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a raw checkpoint dict, refusing anything that is not a resdeep checkpoint."""
    payload = load_plain_tensors(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        hint = _import_hint(Path(path), payload)
        raise ResdeepError(
            f"{path} is a published checkpoint, not a resdeep one; {hint}"
            if hint
            else f"{path} is not a resdeep checkpoint"
        )
    return payload


def _import_hint(path: Path, payload: object) -> str | None:
    """What to type when a published file is given where a resdeep checkpoint is needed: the
    import command, and the run directory it makes."""
    source = published_source(payload)
    if source is None:
        return None
    try:
        converted = convert(source, payload)
    except ResdeepError:
        return f"import it first: resdeep import {source.name} {path}"
    run_dir = imported_run_dir(source.name, converted.model_kwargs["depth"], converted.data)
    return f"import it first: resdeep import {source.name} {path} (then --checkpoint {run_dir})"


def load_plain_tensors(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """A PyTorch file through the weights-only unpickler: tensors and plain containers, never
    objects, so opening a file somebody sent cannot run their code."""
    path = Path(path)
    if not path.is_file():
        raise ResdeepError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise ResdeepError(f"{path} is empty (0 bytes); not a checkpoint")
    kind = foreign_kind(path)
    if kind is not None:
        raise ResdeepError(f"{path} is not a PyTorch checkpoint ({kind})")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # The weights-only unpickler refuses globals it does not know: the file wants to build
        # objects (or run code) and is never opened further. PyTorch's own message suggests
        # turning the safety off; resdeep never passes that on.
        wanted = re.search(r"GLOBAL ([\w.]+)", str(error))
        asks = f"; it asks for {wanted.group(1)}" if wanted else ""
        raise ResdeepError(
            f"refusing to load {path}: it holds pickled objects, not only tensors, and opening "
            f"those could run code{asks}"
        ) from error
    except Exception as error:  # truncated zips, foreign pickles: KeyError, EOFError, ...
        raise ResdeepError(f"cannot read {path}: truncated or not a PyTorch checkpoint") from error
    return payload


# First bytes of files people pass by mistake; PyTorch's own formats are a zip or a pickle.
_MAGIC = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"\x89HDF", "an HDF5 file (Keras?)"),
)


def foreign_kind(path: Path) -> str | None:
    """What a file evidently is when it is not a PyTorch file (None: it may be one)."""
    with path.open("rb") as stream:
        head = stream.read(512)
    if head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip, or its legacy pickle
        return None
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[8:9] == b"{" and b'"' in head[8:32]:
        return "a safetensors file"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(c.isprintable() or c in "\n\r\t" for c in text):
        return "a text file"
    return None


def load_checkpoint(
    path_or_run_dir: str | Path, device: str | torch.device = "cpu", name: str = "best.pt"
) -> tuple[ConvNet, CheckpointInfo]:
    """The model (eval mode, on `device`) and its metadata from a checkpoint or run directory."""
    path = resolve_checkpoint_path(path_or_run_dir, name)
    payload = read_checkpoint(path)
    try:
        model = build_model(**payload["model_kwargs"])
        model.load_state_dict(payload["model"])
    except (ModelConfigError, KeyError, RuntimeError, TypeError) as error:
        raise ResdeepError(f"{path}: the stored model does not load ({error})") from error
    model.to(device).eval()
    run_dir = run_dir_of(path)
    info = CheckpointInfo(
        path=path,
        run_dir=run_dir,
        config=payload.get("config", {}),
        model_kwargs=payload["model_kwargs"],
        classes=list(payload["classes"]),
        mean=tuple(payload["normalization"]["mean"]),
        std=tuple(payload["normalization"]["std"]),
        input_shape=tuple(payload["input_shape"]),
        epoch=int(payload["epoch"]),
        step=int(payload["step"]),
        metrics=dict(payload.get("metrics", {})),
        imported=payload.get("imported"),
    )
    return model, info


def network_difference(info: CheckpointInfo, other: CheckpointInfo) -> str | None:
    """How `other` differs from `info` as a network on its data (architecture, classes, data
    set), or None when it is the same net: what two checkpoints compared weight for weight or
    map for map must share."""
    difference = first_architecture_difference(other.model_kwargs, info.model_kwargs)
    if difference is None and len(other.classes) != len(info.classes):
        difference = f"{len(other.classes)} classes, not {len(info.classes)}"
    if difference is None and other.data_name != info.data_name:
        difference = f"trained on {other.data_name}, not {info.data_name}"
    return difference
