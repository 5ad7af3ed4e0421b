"""End-to-end training through the real CLI, plus the pieces of the loop."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.overrides import TorchFunctionMode

from resdeep.checkpoint import load_checkpoint
from resdeep.config import compose_train_config
from resdeep.models import build_model, layer_responses, units, weight_layers
from resdeep.train.build import build_training
from resdeep.train.diagnostics import LayerDiagnostics
from resdeep.train.optim import lr_multiplier
from resdeep.train.progress import TrainingProgress
from tests.conftest import FAST, REFERENCE, REFERENCE_EPOCHS, REPO, run_main

METRIC_KEYS = {
    "train_loss",
    "train_acc",
    "val_acc",
    "best_val_acc",
    "test_acc",
    "test_loss",
    "epochs",
    "steps",
    "wall_time_s",
    "params",
    "status",
}


def event_tags(run_dir: Path) -> dict[str, list]:
    accumulator = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


def test_plain20_run_dir_is_complete(capsys, monkeypatch, tmp_path):
    # Started outside the repository: the configs are found all the same, the run dir is made
    # under ./runs with a name that says what ran.
    monkeypatch.chdir(tmp_path)
    status, stdout, stderr = run_main(
        capsys,
        "train",
        "data=digits",
        "model=plain",
        "model.depth=20",
        "data.batch_size=128",
        "trainer.epochs=1",
        "trainer.device=cpu",
        "trainer.progress=lines",
    )
    assert status == 0, stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    assert "plain20_digits" in run_dir.name
    # Output to a file, not a terminal: where the run went, and its test accuracy at the end.
    lines = stdout.strip().splitlines()
    assert f"run dir: {run_dir}" in stdout
    test_acc = json.loads((run_dir / "metrics.json").read_text())["test_acc"]
    assert lines[-1].startswith(f"test acc {test_acc:.4f}") and str(run_dir) in lines[-1]
    assert "best val acc" in lines[-1]
    events = event_tags(run_dir)
    scalars = events.Tags()["scalars"]
    grad_tags = [t for t in scalars if t.startswith("grad_norm/")]
    # Tags sort in network order (TensorBoard lists cards alphabetically): input 000 first.
    layers = [name for name, _ in weight_layers(build_model("plain", depth=20, in_channels=1))]
    assert sorted(grad_tags) == [f"grad_norm/{i:03d}_{name}" for i, name in enumerate(layers)]
    assert sorted(grad_tags)[0] == "grad_norm/000_stem.conv"
    assert sorted(grad_tags)[-1] == "grad_norm/019_classifier"
    for tag in ("train/loss", "train/acc", "val/loss", "val/acc", "lr", "throughput/img_per_s"):
        assert tag in scalars
    # Pictures at the global step; log10 norms at the same relative depths in every run.
    for tag in ("grad_norm_by_layer", "grad_norm_heatmap"):
        [picture] = events.Images(tag)
        assert picture.step == 10 and picture.width > 400
    assert all(v.value > 0 for v in events.Scalars("grad_norm/000_stem.conv"))
    first = events.Scalars("grad_norm/000_stem.conv")[0].value
    at_input = events.Scalars("grad_norm_log10_at/plain/0_input")[0].value
    assert at_input == pytest.approx(np.log10(first), rel=1e-5)
    for tag in ("grad_norm_summary/min_over_layers", "grad_norm_summary/input_over_output"):
        assert [e.step for e in events.Scalars(tag)] == [0, 1, 10]
    # The diagnostics: a tag per layer, unit or conv, in network order, from step 0 (the net as
    # initialised, before any update: no relative update yet) to every log point.
    model = build_model("plain", depth=20, in_channels=1)
    expected = {
        "weight_norm/": layers,
        "relative_update/": layers,
        "backward_signal/": [name for name, _ in units(model)],
        "forward_std/": [name for name, _ in units(model)],
        "layer_response/": [name for name, _ in layer_responses(model)],
    }
    for prefix, names in expected.items():
        tags = sorted(t for t in scalars if t.startswith(prefix))
        assert tags == [f"{prefix}{i:03d}_{name}" for i, name in enumerate(names)], prefix
    assert len(expected["backward_signal/"]) == 10  # the stem and 9 blocks
    for prefix in ("backward_signal/", "forward_std/", "layer_response/", "weight_norm/"):
        for tag in (t for t in scalars if t.startswith(prefix)):
            assert all(e.value > 0 and np.isfinite(e.value) for e in events.Scalars(tag)), tag
    gains = sorted(t for t in scalars if t.startswith("backward_gain/"))
    assert gains[0] == "backward_gain/001_stage1.block1" and len(gains) == 9
    assert [e.step for e in events.Scalars("backward_signal/000_stem")] == [0, 1, 10]
    update = events.Scalars("relative_update/000_stem.conv")
    assert [e.step for e in update] == [0, 1, 10] and np.isnan(update[0].value)
    assert 0 < update[1].value < 1
    for tag in ("backward_signal_heatmap", "relative_update_heatmap"):
        [picture] = events.Images(tag)
        assert picture.step == 10
    # HParams: what a sweep varies first, the final metrics at the last step (not step 0).
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = events.PluginTagToContent("hparams")["_hparams_/experiment"]
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    names = [info.name for info in experiment.hparam_infos]
    what_the_net_is = ["arch", "depth", "init", "norm", "residual_init", "shortcut"]
    assert names == [*what_the_net_is, "lr", "seed", "data"]
    assert {m.name.tag for m in experiment.metric_infos} >= {"hparam/test_acc"}
    assert [e.step for e in events.Scalars("hparam/test_acc")] == [10]
    # Logged at step 1 too (the bar has numbers at once; curves start at the first step).
    assert [e.step for e in events.Scalars("train/loss")] == [1, 10]
    for name in ("best.pt", "last.pt"):
        payload = torch.load(run_dir / "checkpoints" / name, weights_only=True)
        assert payload["model_kwargs"]["arch"] == "plain" and payload["input_shape"] == [1, 8, 8]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics) >= METRIC_KEYS
    assert metrics["status"] == "completed" and metrics["epochs"] == 1 and metrics["steps"] == 10
    assert (run_dir / "config.yaml").read_text().count("depth: 20") == 1


def test_multirun_leaves_complete_run_dirs(capsys, basic_sweep):
    # The session's basic sweep (tests/conftest.py): -m over model=plain,resnet, in this process.
    sweep, stdout = basic_sweep
    run_dirs = sorted(p for p in sweep.iterdir() if p.is_dir())
    # Short names that say what the sweep varies (the fixed overrides stay in config.yaml).
    assert [p.name for p in run_dirs] == ["plain8_s0", "resnet8_s0"]
    lines = stdout.strip().splitlines()
    assert lines[0] == f"sweep dir: {sweep}"
    assert lines[-1] == f"sweep done; its report: resdeep report {sweep}"
    assert any(line.strip().startswith("runs under") for line in lines)  # its runs table
    archs = set()
    for run_dir in run_dirs:
        assert (run_dir / "checkpoints" / "best.pt").is_file()
        assert (run_dir / "checkpoints" / "last.pt").is_file()
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["status"] == "completed"
        archs.add(metrics["arch"])
    assert archs == {"plain", "resnet"}
    status, listing, _ = run_main(capsys, "runs", str(sweep))
    assert status == 0 and "plain" in listing and "resnet" in listing


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (("model.depth=21",), 2, "20 and 26"),
        (("data=cifar10", "data.root=/nonexistent", "data.download=false"), 1, "/nonexistent"),
        (("data.batch_size=100000",), 2, "batch"),
        (("optim.lr=-1",), 2, "lr"),
        (("trainer.epochs=0",), 2, "epochs"),
        (("model.dropout=1.5",), 2, "dropout"),
        (("trainer.device=cuda",), 2, "GPU"),
        (("trainer.precision=16",), 2, "CUDA"),
        (("trainer.devices=2", "trainer.on_nan=skip"), 2, "on_nan=skip works on one process"),
        (("trainer.channels_last=maybe",), 2, "trainer.channels_last must be one of"),
        (("trainer.compile_mode=reduce-overhead",), 2, "needs trainer.compile=true"),
        (("trainer.resume=runs/does_not_exist",), 1, "not found"),
        (("model.dept=56",), 2, "did you mean model.depth"),
    ],
)
def test_bad_config_gives_one_clear_line_and_leaves_nothing_behind(
    capsys, tmp_path, monkeypatch, args, code, needle
):
    # In-process through the real entry point: the Hydra app runs here, its job included, in
    # an empty folder with the default run dir (runs/<time>_<net>_<data>).
    monkeypatch.chdir(tmp_path)
    status, _, stderr = run_main(capsys, "train", "trainer.device=cpu", *args)
    assert status == code, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert list(tmp_path.iterdir()) == []  # no run dir, no runs/, no claim, no log


def test_checkpoint_round_trip(train_run):
    run_dir = train_run()
    model, info = load_checkpoint(run_dir)
    assert not model.training
    assert info.classes == [str(d) for d in range(10)] and info.input_shape == (1, 8, 8)
    assert len(info.mean) == len(info.std) == 1
    raw = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    fresh = build_model(**raw["model_kwargs"]).eval()
    fresh.load_state_dict(raw["model"])
    x = torch.randn(4, 1, 8, 8)
    torch.testing.assert_close(model(x), fresh(x))
    assert (
        info.metrics["test_acc"] == json.loads((run_dir / "metrics.json").read_text())["test_acc"]
    )


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_resume_matches_an_uninterrupted_run(capsys, tmp_path, reference_run):
    # In-process: nothing here needs a process of its own (the SIGKILL test resumes a killed one).
    resumed = tmp_path / "resumed"
    status, _, stderr = run_main(
        capsys, "train", *FAST, *REFERENCE, "trainer.epochs=1", f"hydra.run.dir={resumed}"
    )
    assert status == 0, stderr
    # Continue in the same run dir: the run's own overrides are reused, the new budget wins.
    status, _, stderr = run_main(
        capsys, "train", f"trainer.resume={resumed}", f"trainer.epochs={REFERENCE_EPOCHS}"
    )
    assert status == 0, stderr
    a, b = _final_weights(reference_run), _final_weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    metrics = json.loads((resumed / "metrics.json").read_text())
    assert metrics["epochs"] == REFERENCE_EPOCHS and len(metrics["history"]) == REFERENCE_EPOCHS


def test_resuming_a_finished_run_says_how_to_extend_it(capsys, reference_run):
    before = sorted(
        (p.relative_to(reference_run), p.stat().st_mtime) for p in reference_run.rglob("*")
    )
    status, _, stderr = run_main(capsys, "train", f"trainer.resume={reference_run}")
    assert status == 2 and stderr.count("\n") == 1
    assert "is complete (2 epochs" in stderr and "trainer.epochs=4" in stderr
    after = sorted(
        (p.relative_to(reference_run), p.stat().st_mtime) for p in reference_run.rglob("*")
    )
    assert [name for name, _ in after] == [name for name, _ in before]  # nothing added


def test_existing_run_dir_is_never_overwritten(capsys, train_run):
    run_dir = train_run()
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    status, _, stderr = run_main(
        capsys, "train", *FAST, "trainer.epochs=1", f"hydra.run.dir={run_dir}"
    )
    assert status == 2 and "trainer.resume" in stderr
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before


class HostSyncCounter(TorchFunctionMode):
    """Counts the calls that copy a tensor's value to the host."""

    SYNCS = {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.SYNCS:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("depth", [8, 56])
def test_grad_norms_need_no_per_layer_host_sync(depth):
    model = build_model("plain", depth=depth, in_channels=1)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    diagnostics = LayerDiagnostics(model)
    with HostSyncCounter() as counter:
        norms = diagnostics.grad_norms()
    assert counter.count == 0
    assert norms.shape == (depth,)
    expected = torch.stack([m.weight.grad.norm() for _, m in weight_layers(model)])
    torch.testing.assert_close(norms, expected)


def _host_syncs_of_a_logged_epoch(depth: int, run_dir: Path) -> int:
    """Host syncs of one real training epoch (cut to its first 3 steps by the budget) that
    logs gradient norms at every step."""
    overrides = [o for o in FAST if not o.startswith("model.depth")]
    cfg = compose_train_config(
        [
            *overrides,
            f"model.depth={depth}",
            "model=plain",
            "trainer.epochs=1",
            "trainer.max_steps=3",
            "trainer.log_every=1",
        ]
    )
    loop = build_training(cfg, run_dir).loop
    with (
        TrainingProgress(loop.settings.total_steps, 0, "lines") as progress,
        HostSyncCounter() as counter,
    ):
        loop.train_epoch(1, progress)
    loop.close()
    assert len(event_tags(run_dir).Tags()["scalars"]) > depth  # every layer was logged
    return counter.count


def test_logging_grad_norms_costs_the_same_host_syncs_at_any_depth(tmp_path):
    shallow = _host_syncs_of_a_logged_epoch(8, tmp_path / "shallow")
    deep = _host_syncs_of_a_logged_epoch(56, tmp_path / "deep")
    assert shallow == deep  # per log point, not per layer
    assert deep == 3 + 1  # one copy at each of the three log points, one at the epoch's end


def test_lr_schedules():
    multistep = lr_multiplier("multistep", total_steps=64000, base_lr=0.1)
    assert [multistep(s) for s in (0, 31999, 32000, 48000)] == pytest.approx([1, 1, 0.1, 0.01])
    warm = lr_multiplier(
        "multistep", total_steps=64000, base_lr=0.1, warmup_steps=400, warmup_lr=0.01
    )
    assert warm(0) == pytest.approx(0.1) and warm(399) == pytest.approx(0.1) and warm(400) == 1
    cosine = lr_multiplier("cosine", total_steps=100, base_lr=0.1)
    assert (
        cosine(0) == pytest.approx(1)
        and cosine(50) == pytest.approx(0.5)
        and cosine(100) == pytest.approx(0)
    )


@pytest.mark.parametrize("depth,warmup", [(56, 0), (110, 400)])
def test_he2016_experiment_reproduces_the_paper_recipe(depth, warmup):
    cfg = compose_train_config(["experiment=he2016_cifar10", f"model.depth={depth}"])
    assert cfg.data.name == "cifar10" and cfg.data.val_size == 5000 and cfg.data.batch_size == 128
    assert cfg.trainer.max_steps == 64000 and cfg.trainer.epochs is None
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (
        "sgd",
        0.1,
        0.9,
        1e-4,
    )
    assert list(cfg.schedule.milestones) == [0.5, 0.75] and cfg.schedule.gamma == 0.1
    assert cfg.schedule.warmup_steps == warmup and cfg.schedule.warmup_lr == 0.01


def test_hydra_flags_pass_through(capsys):
    status, stdout, _ = run_main(capsys, "train", "model=plain", "model.depth=56", "--cfg", "job")
    assert status == 0 and "arch: plain" in stdout and "depth: 56" in stdout
    status, stdout, _ = run_main(capsys, "train", "--hydra-help")
    assert status == 0 and "Hydra" in stdout


def test_user_config_dir_adds_an_experiment(capsys, tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\nmodel:\n  depth: 14\ntrainer:\n  epochs: 3\n"
    )
    status, stdout, stderr = run_main(
        capsys, "train", "--config-dir", str(tmp_path), "experiment=mine", "--cfg", "job"
    )
    assert status == 0, stderr
    assert "depth: 14" in stdout and "epochs: 3" in stdout


def test_wheel_ships_the_configs(tmp_path):
    import subprocess
    import sys

    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("resdeep-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for path in (
        "resdeep/conf/train.yaml",
        "resdeep/conf/model/plain.yaml",
        "resdeep/conf/experiment/he2016_cifar10.yaml",
        "resdeep/conf/data/digits.yaml",
    ):
        assert path in names


@pytest.mark.slow
@pytest.mark.parametrize("depth", [56, 110])
def test_the_default_recipe_trains_deep_residual_nets_without_stalling(cli, tmp_path, depth):
    """`resdeep train model=resnet model.depth=56` with no experiment: deep residual nets must
    learn on digits, not sit at chance (they did at the paper's lr 0.1 without a warm-up)."""
    run_dir = tmp_path / "run"
    result = cli(
        "train", "model=resnet", f"model.depth={depth}", "trainer.device=cpu",
        "trainer.progress=lines", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    history = json.loads((run_dir / "metrics.json").read_text())["history"]
    errors = [1 - epoch["train_acc"] for epoch in history]
    assert errors[-1] < 0.15  # measured: 3.3 % (depth 56), 5.2 % (depth 110)
    assert max(errors[len(errors) // 2 :]) < 0.3  # no blow-up after the warm-up


def test_short_run_names_show_what_varies():
    from resdeep.config import short_run_name

    assert short_run_name("plain", 56, 0, ["model.depth=56", "model=plain", "seed=0"], []) == (
        "plain56_s0"
    )
    assert (
        short_run_name(
            "resnet", 20, 2, ["data=cifar10", "model.init=xavier", "optim.lr=0.1", "seed=2"], []
        )
        == "resnet20_s2_cifar10_init-xavier_lr-0.1"
    )
    # Hydra's list of overrides: a value with commas is one override; held-fixed keys left out.
    assert (
        short_run_name(
            "plain", 8, 0, ["data.classes=[0,1]", "trainer.epochs=3"], ["trainer.epochs"]
        )
        == "plain8_s0_classes-[0+1]"
    )
