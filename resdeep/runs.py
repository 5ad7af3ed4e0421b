"""Run directories: the contract between training and every tool.

Where a run writes (and that no two runs share a directory), how a tool finds runs, their
metrics and checkpoints (the latest one, the members of an ensemble).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from resdeep.errors import ResdeepError, UsageError

DEFAULT_RUNS_ROOT = Path("runs")
CLAIM_MARKER = ".resdeep-run"  # created atomically by the run that owns the directory
# TensorBoard tags of the per-layer and per-unit series: `<quantity>/<NNN>_<name>`, NNN the
# layer's or unit's place from the input (000), so TensorBoard's alphabetical cards follow the
# network. Written by training (resdeep.train.tensorboard), read by `resdeep report`.
GRAD_NORM_PREFIX = "grad_norm/"  # ‖∂L/∂W‖ per weight layer (older runs: `grad_norm/<layer>`)
WEIGHT_NORM_PREFIX = "weight_norm/"  # ‖W‖ per weight layer, before the step
RELATIVE_UPDATE_PREFIX = "relative_update/"  # ‖ΔW‖ / ‖W‖ of the step taken, per weight layer
BACKWARD_SIGNAL_PREFIX = "backward_signal/"  # ‖∂L/∂x‖ at the output of the stem and each block
BACKWARD_GAIN_PREFIX = "backward_gain/"  # ‖∂L/∂x‖ at a block's input over at its output
FORWARD_STD_PREFIX = "forward_std/"  # std of the output of the stem and each block
LAYER_RESPONSE_PREFIX = "layer_response/"  # std of each conv's response (He et al. 2015, Fig. 7)


def series_tag(prefix: str, index: int, name: str) -> str:
    return f"{prefix}{index:03d}_{name}"


def parse_series_tag(tag: str) -> tuple[int | None, str]:
    """`grad_norm/003_stage1.block1.conv2` -> (3, `stage1.block1.conv2`); past 999 layers the
    index has more digits (`1000_...`); the older `grad_norm/stage1.block1.conv2` -> (None, ...)."""
    name = tag.partition("/")[2]
    index, _, rest = name.partition("_")
    if len(index) >= 3 and index.isdigit() and rest:
        return int(index), rest
    return None, name


def name_of_series_tag(tag: str) -> str:
    return parse_series_tag(tag)[1]


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
        where = (
            ""
            if root.is_absolute()
            else f" (looked in {root.resolve()}; run dirs are relative to where `resdeep train` ran)"
        )
        raise ResdeepError(f"no such directory: {root}{where}")
    candidates = [root] if is_run_dir(root) else []
    candidates += [p.parent for p in root.rglob("metrics.json") if p.parent != root]
    candidates += [
        p.parent for p in root.rglob("checkpoints") if p.is_dir() and p.parent not in candidates
    ]
    records = [RunRecord(path, read_metrics(path)) for path in dict.fromkeys(candidates)]
    return sorted(records, key=lambda record: record.started)


def holds_runs(directory: Path) -> bool:
    """A folder with a trained run one level down: a sweep dir, say."""
    return next(directory.glob("*/checkpoints/best.pt"), None) is not None


def ensemble_members(paths: list[Path]) -> list[Path]:
    """The run dirs (with a best.pt) of `--ensemble` run or sweep dirs, each once, in order."""
    found: list[Path] = []
    for path in paths:
        runs = [r.path for r in find_runs(path) if (r.path / "checkpoints" / "best.pt").is_file()]
        if not runs:  # a missing file, as --checkpoint of a dir without one: exit 1
            raise ResdeepError(f"--ensemble {path}: no run with checkpoints/best.pt there")
        found += runs
    members = list(dict.fromkeys(found))
    if len(members) == 1:
        raise UsageError("--ensemble needs at least two members")
    return members


def latest_checkpoint(root: Path = DEFAULT_RUNS_ROOT, name: str = "best.pt") -> Path:
    """`checkpoints/<name>` of the most recently trained run under `root`.

    Imported runs (status `imported`) are never picked: a published CIFAR net imported after
    training would otherwise answer for the digits just trained. They are used when named."""
    found = sorted(
        root.rglob(f"checkpoints/{name}") if root.exists() else [],
        key=lambda p: p.stat().st_mtime,
    )
    trained = [p for p in found if read_metrics(run_dir_of(p)).get("status") != "imported"]
    if trained:
        return trained[-1]
    if found:
        raise ResdeepError(
            f"no trained run under {root}/, only imported ones; name one with "
            f"--checkpoint {run_dir_of(found[-1])}"
        )
    raise ResdeepError(
        f"no checkpoint found under {root}/; train one with `resdeep train` or pass --checkpoint"
    )


# ---- the run-dir contract: which directory a run writes, and that no two runs share one ------


def imported_run_dir(source: str, depth: int, data: str) -> Path:
    """Where `resdeep import` writes a source's ResNet-`depth` for `data` unless told another."""
    return DEFAULT_RUNS_ROOT / "imported" / f"{source}_resnet{depth}_{data}"


def run_dir_of(path: Path) -> Path:
    """The run directory of a run dir, of RUN/checkpoints/last.pt, or of a checkpoint file
    lying in its run dir."""
    run_dir = path.parent if path.is_file() else path
    return run_dir.parent if run_dir.name == "checkpoints" else run_dir


def slurm_requeued() -> bool:
    """A SLURM job started again after preemption or a time limit (submitit requeues it)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0


def refuse_existing_run(run_dir: Path, resuming: bool) -> None:
    """A run dir that already holds a checkpoint is never trained into again unless resumed."""
    if (run_dir / "checkpoints" / "last.pt").exists() and not resuming and not slurm_requeued():
        raise UsageError(
            f"{run_dir} already holds a run; continue it with trainer.resume={run_dir} "
            "or pick another hydra.run.dir"
        )


# For each run dir checked before Hydra made it: its nearest folder that existed then. A start
# that fails takes back the folders above the run dir up to there, and no further.
_EXISTED_BEFORE: dict[Path, Path] = {}


def check_run_dir(run_dir: Path, resuming: bool) -> None:
    """Refuse early, before Hydra writes anything there, a run dir that would lose data."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        raise UsageError(f"cannot write to {existing}: pick a writable hydra.run.dir")
    _EXISTED_BEFORE[run_dir.resolve()] = existing.resolve()
    refuse_existing_run(run_dir, resuming)


@contextmanager
def claim_run_dir(run_dir: Path, resuming: bool) -> Iterator[None]:
    """Hold `run_dir` for this process while the block runs: two runs never write into one
    directory, and nothing of this run is written there before the claim.

    A fresh start creates the claim marker atomically (a directory another start already claimed
    is refused, even after that run died: continue it with trainer.resume=auto); a resumed run
    opens it. Either then takes an exclusive lock on it, which the kernel releases when the
    process ends however it ends, so a live run is never resumed twice and a killed one can be.
    """
    marker = run_dir / CLAIM_MARKER
    run_dir.mkdir(parents=True, exist_ok=True)
    flags = os.O_RDWR | os.O_CREAT | (0 if resuming else os.O_EXCL)
    try:
        descriptor = os.open(marker, flags, 0o644)
    except FileExistsError:
        raise UsageError(
            f"{run_dir} is already used by another run; pick another hydra.run.dir "
            f"(or continue that run with trainer.resume=auto hydra.run.dir={run_dir})"
        ) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        holder = marker.read_text().strip() or "another process"
        raise UsageError(
            f"{run_dir} is being trained by a running process ({holder}); wait for it to end "
            "or stop it, then resume"
        ) from None
    try:
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        yield
    finally:
        os.close(descriptor)  # releases the lock


# What a run writes before its first step: Hydra's record and log, the config, the claim and an
# empty TensorBoard file. A start that fails takes exactly these back.
STARTUP_FILES = (
    ".hydra/config.yaml",
    ".hydra/hydra.yaml",
    ".hydra/overrides.yaml",
    "train.log",
    "config.yaml",
    CLAIM_MARKER,
)


def _remove_startup_files(run_dir: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (run_dir / name).unlink(missing_ok=True)
    for events in run_dir.glob("events.out.tfevents.*"):
        events.unlink(missing_ok=True)


def clear_dead_start(run_dir: Path) -> None:
    """What a start that was killed before its first checkpoint left (its config, log and
    events), so the run that takes the directory over starts clean. The claim stays: the caller
    holds it."""
    if (run_dir / "checkpoints" / "last.pt").exists():
        return
    _remove_startup_files(run_dir, tuple(n for n in STARTUP_FILES if n != CLAIM_MARKER))


def undo_failed_start(run_dir: Path, stop_at: Path | None = None) -> None:
    """Remove what a run that failed to start wrote into `run_dir` it had claimed, then the
    directory and its parents while they are empty (up to `stop_at`, the working directory by
    default): the file system is left as it was. Nothing else is ever deleted, and a directory
    that holds a checkpoint or metrics is left alone."""
    if (run_dir / "checkpoints").exists() or (run_dir / "metrics.json").exists():
        return
    _remove_startup_files(run_dir, STARTUP_FILES)
    remove_empty_dirs(run_dir, stop_at)


def remove_empty_dirs(run_dir: Path, stop_at: Path | None = None) -> None:
    """`run_dir` (and its `.hydra/`) and then its parents, each while it is empty, up to
    `stop_at` (by default the nearest folder that existed before the start, when it was checked
    in this process, else the working directory): only ever an empty directory goes."""
    stop_at = (stop_at or _EXISTED_BEFORE.get(run_dir.resolve()) or Path.cwd()).resolve()
    for folder in [run_dir / ".hydra", run_dir.resolve(), *run_dir.resolve().parents]:
        if folder == stop_at or stop_at.is_relative_to(folder):
            break
        if not folder.exists():
            continue
        try:
            folder.rmdir()  # only ever removes an empty directory
        except OSError:
            break
