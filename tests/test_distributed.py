"""Scale-out on CPU: DDP over spawned Gloo workers, torchrun, and Hydra launchers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import FAST, run_main

TORCHRUN = Path(sys.executable).parent / "torchrun"


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_two_spawned_ranks_share_one_run_dir_and_stay_in_sync(capsys, tmp_path, train_run):
    # Started in this process, like the Hydra launchers below: the two ranks are spawned
    # processes of their own all the same.
    run_dir = tmp_path / "D"
    status, _, stderr = run_main(
        capsys, "train", *FAST, "trainer.epochs=2", "trainer.devices=2", f"hydra.run.dir={run_dir}"
    )
    assert status == 0, stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["D"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "best.pt",
        "init.pt",
        "last.pt",
    ]
    metrics = _metrics(run_dir)
    assert metrics["world_size"] == 2 and metrics["per_device_batch"] == 64
    checksums = metrics["rank_weight_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    # Same global batch on one rank (the session's shared FAST run, 2 epochs too): the loss
    # goes down the same way.
    two_ranks = [h["train_loss"] for h in metrics["history"]]
    one_rank = [h["train_loss"] for h in _metrics(train_run())["history"]]
    assert len(two_ranks) == len(one_rank) == 2
    assert two_ranks[-1] < two_ranks[0] and one_rank[-1] < one_rank[0]
    assert abs(two_ranks[-1] - one_rank[-1]) < 0.35
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert saved["step"] == 20


@pytest.mark.parametrize(
    "setting,needle",
    [
        ("data.batch_size=65", "split evenly"),  # a global batch that two ranks cannot share
        ("trainer.sync_bn=true", "CUDA"),  # SyncBatchNorm is GPU-only
    ],
)
def test_multi_device_settings_that_cannot_work_are_usage_errors(capsys, tmp_path, setting, needle):
    status, _, stderr = run_main(
        capsys, "train", *FAST, "trainer.devices=2", setting, f"hydra.run.dir={tmp_path / 'x'}"
    )
    assert status == 2 and needle in stderr


def test_torchrun_leaves_exactly_one_run_dir(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    result = subprocess.run(
        [
            str(TORCHRUN),
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "resdeep",
            "train",
            "data=digits",
            "model.depth=8",
            "trainer.epochs=1",
            "trainer.device=cpu",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1
    metrics = _metrics(run_dirs[0])
    assert metrics["status"] == "completed" and metrics["world_size"] == 2


# The joblib launcher is tried by tests/test_resume.py (a sweep killed and continued).
@pytest.mark.parametrize("launcher", ["submitit_local"])
def test_hydra_launchers_run_sweeps(capsys, tmp_path, launcher):
    # The launcher runs in this process; its jobs run in processes of their own all the same.
    sweep = tmp_path / "S"
    status, _, stderr = run_main(
        capsys,
        "train",
        "-m",
        f"hydra/launcher={launcher}",
        "data=digits",
        "model=plain,resnet",
        "model.depth=8",
        "data.batch_size=128",
        "trainer.epochs=1",
        "trainer.threads=1",  # one each: the two jobs run at once
        "trainer.device=cpu",
        f"hydra.sweep.dir={sweep}",
    )
    assert status == 0, stderr[-3000:]
    run_dirs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        assert _metrics(run_dir)["status"] == "completed"
        assert (run_dir / "checkpoints" / "best.pt").is_file()


def test_slurm_preset_composes_with_one_task_per_device(capsys):
    status, text, stderr = run_main(
        capsys,
        "train",
        "hydra/launcher=slurm_gpu",
        "trainer.devices=4",
        "hydra.launcher.partition=gpu",
        "--cfg",
        "all",
        "--resolve",
    )
    assert status == 0, stderr
    assert "tasks_per_node: 4" in text and "gpus_per_node: 4" in text and "partition: gpu" in text
    assert "SlurmLauncher" in text


def test_requeued_slurm_job_resumes_its_run(capsys, monkeypatch, tmp_path):
    """A requeued job (SLURM_RESTART_COUNT > 0) continues from the run dir's last.pt."""
    run_dir = tmp_path / "R"
    status, _, stderr = run_main(
        capsys, "train", *FAST, "trainer.epochs=1", f"hydra.run.dir={run_dir}"
    )
    assert status == 0, stderr
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    status, _, stderr = run_main(
        capsys, "train", *FAST, "trainer.epochs=2", f"hydra.run.dir={run_dir}"
    )
    assert status == 0, stderr
    metrics = _metrics(run_dir)
    assert metrics["epochs"] == 2 and [h["epoch"] for h in metrics["history"]] == [1, 2]


def test_a_torchrun_rank_joins_one_group_with_resdeep_s_timeout(monkeypatch, tmp_path):
    """The group agree_on_run_dir creates under torchrun is the job's only one: it must carry
    resdeep's backend and timeout (it used to be created bare, so later settings never applied)."""
    import torch.distributed as dist

    from resdeep.train.app import agree_on_run_dir
    from resdeep.train.distributed import PROCESS_GROUP_TIMEOUT, World, free_port

    for key, value in dict(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()), RANK="0", WORLD_SIZE="1"
    ).items():
        monkeypatch.setenv(key, value)
    created = []
    real_init = dist.init_process_group

    def recording_init(*args, **kwargs):  # the real call, with its arguments noted
        created.append((args, kwargs))
        return real_init(*args, **kwargs)

    monkeypatch.setattr(dist, "init_process_group", recording_init)
    try:
        args = agree_on_run_dir([f"hydra.run.dir={tmp_path}"], World())
        assert args == [f"hydra.run.dir={tmp_path}"]
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        assert created == [((backend,), {"timeout": PROCESS_GROUP_TIMEOUT})]
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
