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
REFERENCE_EPOCHS = 3


@pytest.fixture(scope="session")
def reference_run(train_run) -> Path:
    """The uninterrupted REFERENCE run, trained once per session."""
    return train_run(*REFERENCE, epochs=REFERENCE_EPOCHS)


def train_in_process(*args: str) -> tuple[int, str]:
    """The real CLI in this process, as a session fixture can call it (no capsys): exit code and
    output. Global torch settings a run may change are put back, so later tests see none."""
    import contextlib
    import io

    import torch

    from resdeep.cli import main

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            main(list(args))
        code = 0
    except SystemExit as exited:
        code = exited.code or 0
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    return code, output.getvalue()


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
