"""Resuming a run and continuing a sweep: a run keeps its own settings, a new budget is
honoured exactly, a sweep is checked whole before its first job, and an interrupted sweep
continues to the weights an uninterrupted one reaches."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resdeep.runs import CLAIM_MARKER
from tests.conftest import BASIC_SWEEP, FAST, REPO, run_main


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file below `directory` with its size and modification time."""
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def finished_run(train_run, tmp_path) -> Path:
    """A copy of a finished 2-epoch resnet-8 digits run, to resume without touching the shared one."""
    copy = tmp_path / "run"
    shutil.copytree(train_run(), copy)
    return copy


@pytest.mark.parametrize(
    "override,key,was,now",
    [
        ("data.image_size=16", "data.image_size", "null", "16"),
        ("data=digits_placed", "data.name", "digits", "digits_placed"),
        ("model.depth=20", "model.depth", "8", "20"),
        ("model=plain", "model.arch", "resnet", "plain"),
        ("seed=1", "seed", "0", "1"),
        ("optim.lr=0.1", "optim.lr", "0.02", "0.1"),
        ("trainer.precision=bf16", "trainer.precision", "32", "bf16"),
    ],
)
def test_resume_refuses_what_would_train_another_run(capsys, finished_run, override, key, was, now):
    before = _snapshot(finished_run)
    status, _, stderr = run_main(
        capsys, "train", f"trainer.resume={finished_run}", "trainer.epochs=4", override
    )
    assert status == 2 and stderr.count("\n") == 1
    assert (
        f"was trained with {key}={was}; resuming it with {key}={now} would train another run"
        in stderr
    )
    assert _snapshot(finished_run) == before  # nothing written


def test_resume_into_another_directory_that_holds_a_run_is_refused(
    capsys, finished_run, reference_run
):
    other = reference_run
    before = _snapshot(other)
    status, _, stderr = run_main(
        capsys,
        "train",
        f"trainer.resume={finished_run}",
        "trainer.epochs=4",
        f"hydra.run.dir={other}",
    )
    assert status == 2 and "already holds a run" in stderr
    assert _snapshot(other) == before


def test_a_refused_resume_into_a_new_directory_leaves_nothing(capsys, finished_run, tmp_path):
    status, _, stderr = run_main(
        capsys,
        "train",
        f"trainer.resume={finished_run}",
        "seed=3",
        f"hydra.run.dir={tmp_path / 'elsewhere' / 'fork'}",
    )
    assert status == 2 and "would train another run" in stderr
    assert not (tmp_path / "elsewhere").exists()


def test_a_new_budget_is_honoured_exactly_and_a_smaller_one_refused(capsys, tmp_path, train_run):
    """max_steps=15 stops mid-epoch (10 steps each); resumed with max_steps=30 it trains the
    rest of that epoch's batches and stops at step 30, its cosine re-planned over 30 steps (it
    had decayed to 0 at step 15; over 30 steps it is at half the base rate there)."""
    run = tmp_path / "budget"
    shutil.copytree(
        train_run("trainer.max_steps=15", "schedule=cosine", "schedule.warmup_steps=0", epochs=15),
        run,
    )
    status, _, stderr = run_main(capsys, "train", f"trainer.resume={run}", "trainer.max_steps=10")
    assert status == 2 and "has trained 15 steps (2 epochs) already" in stderr
    status, stdout, stderr = run_main(
        capsys, "train", f"trainer.resume={run}", "trainer.max_steps=30"
    )
    assert status == 0, stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 30 and metrics["status"] == "completed"
    assert [entry["step"] for entry in metrics["history"]] == [10, 15, 20, 30]
    assert (
        "planned over the new budget: lr at step 15 goes from 0 to 0.01"
        in (run / "train.log").read_text()
    )
    assert "max_steps: 30" in (run / "config.yaml").read_text()  # the run's budget is now 30


def test_a_live_run_is_never_resumed_twice_and_a_killed_start_is_taken_over(capsys, tmp_path):
    run = tmp_path / "taken"
    run.mkdir()
    # A start killed before its first checkpoint: its claim, config and events are left.
    (run / CLAIM_MARKER).write_text("pid 1 on elsewhere\n")
    (run / "config.yaml").write_text("seed: 5\n")
    (run / "events.out.tfevents.0.dead.1.0").write_bytes(b"x")
    with (run / CLAIM_MARKER).open() as held:  # while a live process holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        status, _, stderr = run_main(
            capsys,
            "train",
            *FAST,
            "trainer.epochs=1",
            "trainer.resume=auto",
            f"hydra.run.dir={run}",
        )
        assert status == 2 and "is being trained by a running process" in stderr
    status, _, stderr = run_main(
        capsys, "train", *FAST, "trainer.epochs=1", "trainer.resume=auto", f"hydra.run.dir={run}"
    )
    assert status == 0, stderr
    assert not (run / "events.out.tfevents.0.dead.1.0").exists()  # the dead start's, cleared
    assert "seed: 0" in (run / "config.yaml").read_text()
    assert (run / CLAIM_MARKER).read_text().startswith(f"pid {os.getpid()} ")


@pytest.mark.parametrize(
    "overrides,lines",
    [
        (
            ["model.dept=20,56"],
            [
                "unknown config key model.dept; did you mean model.depth or model.dropout? "
                "(`resdeep train --help` lists every key)"
            ],
        ),
        (
            ["model=plain,resnt"],
            ["Could not find 'model/resnt'; Available options in 'model': plain, preact, resnet"],
        ),
        (
            ["model.init=he,kaiming"],
            ["model.init must be one of kaiming, xavier, orthogonal, default; got 'he'"],
        ),
        (
            ["model.depth=8,21,23"],
            [
                "depth 21 is not valid for basic blocks (depth = 6n+2); nearest valid depths: "
                "20 and 26",
                "depth 23 is not valid for basic blocks (depth = 6n+2); nearest valid depths: "
                "20 and 26",
            ],
        ),
        # every job of a preset's own sweep, checked too: six jobs, one problem
        (
            ["experiment=depth_study", "optim.lr=-1", "model.depth=8"],
            ["optim.lr must be positive, got -1.0"],
        ),
        (["trainer.epochs=0,2"], ["trainer.epochs must be at least 1, got 0"]),
    ],
)
def test_a_sweep_is_refused_whole_before_any_job_runs(capsys, tmp_path, overrides, lines):
    sweep = tmp_path / "sweep"
    status, stdout, stderr = run_main(
        capsys, "train", "-m", *FAST, "trainer.epochs=1", *overrides, f"hydra.sweep.dir={sweep}"
    )
    assert status == 2
    assert stderr.splitlines() == [f"error: {line}" for line in lines]
    assert not sweep.exists() and "sweep dir" not in stdout  # no multirun.yaml, no job dir


def test_threads_pin_torch(tmp_path):
    from resdeep.config import compose_train_config
    from resdeep.train.build import build_training

    before = torch.get_num_threads()
    try:
        build_training(compose_train_config([*FAST, "trainer.threads=1"]), tmp_path).loop.close()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


SWEEP = (
    "train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *FAST,
    "model=plain,resnet", "trainer.epochs=2", "trainer.deterministic=true", "trainer.threads=1",
)  # fmt: skip


def _weights(sweep: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {
        path.parent.parent.name: torch.load(path, weights_only=True)["model"]
        for path in sorted(sweep.glob("*/checkpoints/last.pt"))
    }


def test_an_interrupted_joblib_sweep_continues_to_the_weights_of_an_uninterrupted_one(
    capsys, tmp_path, basic_sweep
):
    """SIGKILL the whole sweep (launcher and workers) once a job has checkpointed; the same
    command with trainer.resume=auto resumes what was interrupted and starts what never ran;
    the final weights equal those of an uninterrupted sweep (the basic launcher, in this
    process: the session's basic_sweep) bit for bit. (Run once more, a finished sweep only
    says every job is complete: test_the_same_sweep_command_with_resume_auto_... checks it.)"""
    cut = tmp_path / "cut"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("RESDEEP_DEBUG", None)
    killed = subprocess.Popen(
        [sys.executable, "-m", "resdeep", *SWEEP, f"hydra.sweep.dir={cut}"],
        cwd=REPO, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(cut.glob("*/checkpoints/last.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    assert len(_weights(cut)) >= 1
    # Continued from this process: the joblib workers are processes of their own all the same.
    status, _, stderr = run_main(capsys, *SWEEP, "trainer.resume=auto", f"hydra.sweep.dir={cut}")
    assert status == 0, stderr[-3000:]
    # The same sweep uninterrupted, with the basic launcher in this process (tests/conftest.py).
    full, _ = basic_sweep
    assert tuple(a for a in SWEEP if not a.startswith("hydra")) == BASIC_SWEEP
    expected, got = _weights(full), _weights(cut)
    assert sorted(got) == sorted(expected) == ["plain8_s0", "resnet8_s0"]
    for job, state in expected.items():
        for key, tensor in state.items():
            assert torch.equal(got[job][key], tensor), (job, key)
    for job in got:
        assert json.loads((cut / job / "metrics.json").read_text())["epochs"] == 2


def test_the_same_sweep_command_with_resume_auto_continues_the_latest_sweep_it_started(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)  # the default sweep dirs are runs/sweeps/<time> under here
    sweep = ["train", "-m", *FAST, "trainer.epochs=1", "model=plain"]
    status, first, stderr = run_main(capsys, *sweep)
    assert status == 0, stderr
    (made,) = (tmp_path / "runs" / "sweeps").iterdir()
    # An earlier day's sweep: a new start would make a directory of its own, named by the time.
    started = made.rename(made.parent / "2026-01-01_00-00-00")
    weights = (started / "plain8_s0" / "checkpoints" / "last.pt").read_bytes()
    status, second, stderr = run_main(capsys, *sweep, "trainer.resume=auto")
    assert status == 0, stderr
    assert first.splitlines()[0] == f"sweep dir: runs/sweeps/{made.name}"
    assert second.splitlines()[0] == "sweep dir: runs/sweeps/2026-01-01_00-00-00"
    assert "is complete: nothing to train" in second
    assert (started / "plain8_s0" / "checkpoints" / "last.pt").read_bytes() == weights
    assert list((tmp_path / "runs" / "sweeps").iterdir()) == [started]  # no new sweep dir
