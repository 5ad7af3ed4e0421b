"""scripts/gpu_check.py (`make gpu-check`): its plan, its record of each step, its CPU mode."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


gpu_check = _load_script()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_says_so_in_one_line_and_succeeds(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no CUDA GPU" in out
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_the_cuda_plan_covers_every_path_and_says_why_a_step_is_skipped():
    steps = gpu_check.plan("cuda", gpu_check.CUDA_SIZES, gpus=1)
    names = [s.name for s in steps]
    assert len(names) == len(set(names))
    for depth in (20, 110):
        for precision in ("32", "bf16", "16"):
            for kind in ("eager", "compiled"):
                assert f"train_resnet{depth}_{precision}_{kind}" in names
        assert f"train_resnet{depth}_bf16_cudagraphs" in names
    for name in ("cam", "cam_trust", "uncertainty", "uncertainty_shift", "lesion", "signal", "landscape", "checkpoint_devices", "diagnostics",
                 "bench_quick", "bench"):  # fmt: skip
        assert name in names
    assert [s.name for s in steps if s.skip] == ["multi_gpu"]  # one GPU: stated, not silent
    assert "two or more" in next(s.skip for s in steps if s.name == "multi_gpu")
    assert not any(s.skip for s in gpu_check.plan("cuda", gpu_check.CUDA_SIZES, gpus=2))
    # Every path once before the slow compiles: a short budget cuts the least important steps.
    first_compiled = min(i for i, n in enumerate(names) if n.endswith("_compiled"))
    assert names.index("bench") < first_compiled and names.index("cam") < first_compiled


def test_the_cpu_plan_skips_only_what_needs_cuda():
    steps = gpu_check.plan("cpu", gpu_check.CPU_SIZES, gpus=0)
    runnable = {s.name for s in steps if not s.skip}
    assert {
        "train_digits",
        "cam",
        "cam_trust",
        "uncertainty",
        "uncertainty_shift",
        "lesion",
        "signal",
        "landscape",
        "checkpoint_devices",
        "diagnostics",
        "bench_quick",
    } <= runnable
    assert "train_resnet8_bf16_eager" in runnable and "train_resnet14_32_eager" in runnable
    for step in steps:
        if step.skip:
            assert any(word in step.skip for word in ("CUDA", "fp16", "compile")), step


def test_each_step_is_recorded_and_a_failure_does_not_stop_the_rest(capsys, tmp_path, train_run):
    """Two real steps, each in its own process, on a copied run without dropout: the checkpoint
    check passes, MC dropout fails with resdeep's own error line, and both land in the JSON."""
    work, out = tmp_path / "work", tmp_path / "gpu_check.json"
    shutil.copytree(train_run(), work / "train_digits")
    status = gpu_check.main(
        ["--device", "cpu", "--work", str(work), "--out", str(out),
         "--only", "uncertainty,checkpoint_devices"]
    )  # fmt: skip
    stdout = capsys.readouterr().out
    assert status == 1, stdout
    report = json.loads(out.read_text())
    steps = {step["name"]: step for step in report["steps"]}
    assert list(steps) == ["uncertainty", "checkpoint_devices"]
    assert steps["uncertainty"]["status"] == "failed"
    assert "dropout" in steps["uncertainty"]["error"]
    assert steps["checkpoint_devices"]["status"] == "ok"
    assert steps["checkpoint_devices"]["result"]["max_abs_diff_moved_back"] == 0.0
    assert report["environment"]["torch"] == torch.__version__
    assert "1 ok, 1 failed" in stdout


@pytest.mark.slow
def test_make_gpu_check_on_cpu_runs_every_step(tmp_path):
    """`make gpu-check DEVICE=cpu`: every step that does not need CUDA passes (about a minute)."""
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_check.py"), "--device", "cpu",
         "--work", str(tmp_path / "work"), "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    statuses = {step["name"]: step["status"] for step in report["steps"]}
    assert set(statuses.values()) == {"ok", "skipped"}
    assert statuses["resume_on_cpu"] == statuses["cam"] == "ok"
    table = {row["step"]: row for row in report["throughput"]}
    assert table["train_resnet8_bf16_eager"]["images_per_s"] > 0
    assert table["epoch_resnet110_bf16"]["steps"] == 10
