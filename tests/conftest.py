"""Shared test helpers: the real CLI, run in-process or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m resdeep ARGS` in a subprocess: the real entry point, real exit codes."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env.pop("RESDEEP_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "resdeep", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


@pytest.fixture
def cli():
    return run_cli


# Small, fast training settings for tests: depth-8 nets on 8x8 digits train in seconds on CPU,
# ten steps an epoch.
FAST = (
    "data=digits",
    "model.depth=8",
    "data.batch_size=128",
    "trainer.device=cpu",
    "trainer.progress=lines",
    "trainer.figures=false",
)


@pytest.fixture(scope="session")
def train_run(tmp_path_factory):
    """Factory: `train_run(*overrides)` -> a run dir trained through the real CLI.

    Runs are cached per distinct overrides for the whole session, so tests share them.
    """
    cache: dict[tuple[str, ...], Path] = {}

    def train(*overrides: str, epochs: int = 2) -> Path:
        key = (*overrides, f"trainer.epochs={epochs}")
        if key not in cache:
            run_dir = tmp_path_factory.mktemp("run") / "run"
            status, output = train_in_process("train", *FAST, *key, f"hydra.run.dir={run_dir}")
            assert status == 0, output[-3000:]
            cache[key] = run_dir
        return cache[key]

    return train


# One deterministic run that resuming must reproduce bit for bit: a plain resume and a resume
# after SIGKILL both compare their weights with it. Batch 32 gives an epoch long enough to kill.
REFERENCE = (
    "data.batch_size=32",
    "model.dropout=0.2",
    "schedule=constant",
    "trainer.deterministic=true",
)
REFERENCE_EPOCHS = 2


@pytest.fixture(scope="session")
def reference_run(train_run) -> Path:
    """The uninterrupted REFERENCE run, trained once per session."""
    return train_run(*REFERENCE, epochs=REFERENCE_EPOCHS)


# One basic sweep (plain-8 and resnet-8 on the FAST settings, 2 epochs, deterministic, one
# thread each), run once in this process: the uninterrupted reference that an interrupted joblib
# sweep must reach (tests/test_resume.py) and the sweep whose run dirs tests/test_train.py reads.
BASIC_SWEEP = (
    "train", "-m", *FAST, "model=plain,resnet", "trainer.epochs=2",
    "trainer.deterministic=true", "trainer.threads=1",
)  # fmt: skip


@pytest.fixture(scope="session")
def basic_sweep(tmp_path_factory) -> tuple[Path, str]:
    """(sweep dir, its stdout) of BASIC_SWEEP; tests read it and never write into it."""
    sweep = tmp_path_factory.mktemp("basic") / "sweep"
    status, stdout, stderr = _in_process(*BASIC_SWEEP, f"hydra.sweep.dir={sweep}")
    assert status == 0, stderr[-3000:]
    return sweep, stdout


def _in_process(*args: str) -> tuple[int, str, str]:
    """The real CLI in this process without capsys: exit code, stdout and stderr apart. Global
    torch settings a run may change are put back, so later tests see none."""
    import contextlib
    import io

    import torch

    from resdeep.cli import main

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main(list(args))
        code = 0
    except SystemExit as exited:
        code = exited.code or 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return code, out.getvalue(), err.getvalue()


def train_in_process(*args: str) -> tuple[int, str]:
    """The real CLI in this process, as a session fixture can call it (no capsys): exit code and
    output (stdout, then stderr). Global torch settings a run may change are put back, so later
    tests see none."""
    code, out, err = _in_process(*args)
    return code, out + err


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """The real CLI entry point in this process: (exit code, stdout, stderr). Global torch
    settings a run may change (trainer.threads, trainer.deterministic) are put back after."""
    import torch

    from resdeep.cli import main

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        with pytest.raises(SystemExit) as exited:
            main(list(args))
            raise SystemExit(0)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    captured = capsys.readouterr()
    return exited.value.code or 0, captured.out, captured.err
