"""`resdeep import`: a published CIFAR ResNet file written as a resdeep run directory.

The sources, their tensor names and the conversion into resdeep's nets are
resdeep.models.pretrained's; this module writes what a run of the converted net would have left
(checkpoints/best.pt, config.yaml, metrics.json with status `imported`), atomically.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from resdeep.checkpoint import load_plain_tensors, save_checkpoint
from resdeep.config import compose_train_config
from resdeep.errors import ResdeepError, UsageError
from resdeep.io import save_json_atomic
from resdeep.models import count_parameters
from resdeep.models.pretrained import SOURCES, Converted, Source, convert
from resdeep.runs import imported_run_dir


def import_published(
    source_name: str, file: Path, run_dir: Path | None = None, data: str | None = None
) -> tuple[Path, dict]:
    """Convert `file` of `source_name` into a run directory (checkpoints/best.pt, config.yaml,
    metrics.json with status `imported`); returns (run dir, metrics). Everything is written in
    a temporary folder next to it and renamed into place, so a failure leaves nothing behind."""
    if source_name not in SOURCES:
        raise ResdeepError(f"unknown source {source_name!r}; choose one of {', '.join(SOURCES)}")
    source = SOURCES[source_name]
    if file.is_dir():
        raise ResdeepError(_directory_given(file))
    payload = load_plain_tensors(file)
    try:
        converted = convert(source, payload, data)
    except ResdeepError as error:
        raise ResdeepError(f"{file} is not one of {source.name}'s CIFAR ResNets: {error}") from None
    run_dir = run_dir or imported_run_dir(
        source.name, converted.model_kwargs["depth"], converted.data
    )
    if run_dir.exists():
        raise UsageError(f"{run_dir} already exists; pick another --name")
    provenance = {
        "source": source.name,
        "source_url": source.url,
        "source_license": source.license,
        "source_file": str(file),
        "source_sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        **converted.extra,
    }
    metrics = {
        "status": "imported",
        "arch": "resnet",
        "depth": converted.model_kwargs["depth"],
        "data": converted.data,
        "params": count_parameters(converted.model),
        "epochs": 0,
        "steps": 0,
        **provenance,
    }
    _write_run(run_dir, source, converted, provenance, metrics)
    return run_dir, metrics


def _imported_config(converted: Converted) -> DictConfig:
    """The training config a run of the converted architecture would have had."""
    kwargs = converted.model_kwargs
    return compose_train_config(
        [
            f"data={converted.data}",
            "model=resnet",
            f"model.depth={kwargs['depth']}",
            f"model.shortcut={kwargs['shortcut']}",
            f"model.shortcut_pad={kwargs['shortcut_pad']}",
        ]
    )


def _write_run(
    run_dir: Path, source: Source, converted: Converted, provenance: dict, metrics: dict
) -> None:
    """Write the run in a staging folder beside `run_dir` and rename it into place."""
    config = _imported_config(converted)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}-", dir=run_dir.parent))
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the run from collaborators
        save_checkpoint(
            staging / "checkpoints" / "best.pt",
            {
                "config": OmegaConf.to_container(config, resolve=True),
                "model_kwargs": converted.model_kwargs,
                "classes": list(converted.classes),
                "normalization": {"mean": list(source.mean), "std": list(source.std)},
                "input_shape": [3, 32, 32],
                "epoch": 0,
                "step": 0,
                "metrics": {},
                "model": converted.model.state_dict(),
                "imported": provenance,
            },
        )
        (staging / "config.yaml").write_text(OmegaConf.to_yaml(config))
        save_json_atomic(metrics, staging / "metrics.json")
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


CHECKPOINT_SUFFIXES = (".th", ".pt", ".pth", ".tar")


def _directory_given(folder: Path) -> str:
    found = sorted(p for p in folder.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
    example = f", e.g. {found[0]}" if found else " (a .th or .pt file)"
    return f"{folder} is a directory; give the published checkpoint file itself{example}"
