"""`resdeep report` end to end on two tiny real runs, its presets, and its analysis on hand-made
numbers."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.collections import PolyCollection
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resdeep.config import compose_train_config
from resdeep.models import build_model, weight_layers
from resdeep.report import build_report, default_out_dir, findings, group_runs, summarize_runs
from resdeep.report import figures as draw
from resdeep.report.document import report_json, table_rows
from resdeep.report.findings import comparisons
from resdeep.report.mechanism import (
    EXPLODING,
    FROZEN,
    HEALTHY,
    VANISHING,
    VANISHING_FROM_START,
)
from resdeep.report.reading import Diagnostics, GradNorms, RunData, Series, StepCurve, read_run
from resdeep.report.spread import Spread, compare
from resdeep.train.optim import lr_multiplier
from tests.conftest import run_main

FIGURES = (
    "training_curves.png",
    "gradient_profile.png",
    "accuracy_vs_depth.png",
    "backward_signal.png",
    "weights_and_updates.png",
    "layer_responses.png",
)


@pytest.fixture(scope="module")
def two_runs(train_run) -> tuple[Path, Path]:
    """plain-8 (1 epoch, gradient norms at every step) and resnet-8 (2 epochs) on digits."""
    plain = train_run("model=plain", "trainer.dense_first_epoch=true", epochs=1)
    resnet = train_run()
    return plain, resnet


def test_report_on_real_runs(capsys, two_runs, tmp_path):
    out = tmp_path / "report"
    status, stdout, stderr = run_main(
        capsys, "report", *map(str, two_runs), "--out", str(out), "--html"
    )
    assert status == 0, stderr
    assert "plain-8" in stdout and "resnet-8" in stdout  # the terminal table

    heatmaps = ["gradient_heatmap_plain-8.png", "gradient_heatmap_resnet-8.png"]
    for name in (*FIGURES, *heatmaps):
        with Image.open(out / name) as image:
            image.verify()  # a complete, valid PNG
            assert image.format == "PNG" and image.width > 400 and image.height > 200
        assert (out / name).stat().st_size < 250_000

    report = json.loads((out / "report.json").read_text())
    runs = {entry["arch"]: entry for entry in report["runs"]}
    assert set(runs) == {"plain", "resnet"}
    expected_layers = [name for name, _ in weight_layers(build_model("plain", depth=8))]
    for arch, run_dir in zip(("plain", "resnet"), two_runs, strict=True):
        entry, metrics = runs[arch], json.loads((run_dir / "metrics.json").read_text())
        assert (entry["depth"], entry["init"], entry["norm"], entry["data"]) == (
            8,
            "kaiming",
            "batch",
            "digits",
        )
        assert entry["final_train_loss"] == pytest.approx(metrics["history"][-1]["train_loss"])
        assert entry["test_acc"] == pytest.approx(metrics["test_acc"])
        assert entry["layer_names"] == expected_layers  # network order, input to output
        for key in ("grad_norm_first_step", "grad_norm_last_step"):
            assert len(entry[key]) == len(expected_layers) and all(v > 0 for v in entry[key])
    # Step 0 is the net as initialised; then dense first epoch: plain logged every step,
    # resnet at step 1 and every 10.
    assert (runs["plain"]["first_step"], runs["plain"]["last_step"]) == (0, 10)
    assert (runs["resnet"]["first_step"], runs["resnet"]["last_step"]) == (0, 20)

    # The findings quote the runs' own numbers, and say that one seed has no spread.
    plain_loss, resnet_loss = runs["plain"]["final_train_loss"], runs["resnet"]["final_train_loss"]
    comparison = next(f for f in report["findings"] if f.startswith("At depth 8"))
    assert f"training loss {plain_loss:#.3g} vs {resnet_loss:#.3g}" in comparison
    assert f"({plain_loss / resnet_loss:.2g}×)" in comparison
    assert comparison.endswith("single seed: no spread.")
    assert [group["seeds"] for group in report["groups"]] == [[0], [0]]
    ratio = runs["plain"]["grad_norm_first_step"][0] / runs["plain"]["grad_norm_first_step"][-1]
    assert any(f"plain-8 {ratio:.2g}× at step 0" in f for f in report["findings"])

    markdown = (out / "report.md").read_text()
    assert all(f"]({name})" in markdown for name in (*FIGURES, *heatmaps))
    page = (out / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == len(FIGURES) + len(heatmaps)


def test_sweep_dir_is_the_default_output_and_running_runs_are_read(two_runs, tmp_path):
    sweep = tmp_path / "sweep"
    for index, run_dir in enumerate(two_runs):
        shutil.copytree(run_dir, sweep / f"{index}_run")
    # A run in its first epoch: config and events, no metrics.json or checkpoints yet.
    (sweep / "0_run" / "metrics.json").unlink()
    shutil.rmtree(sweep / "0_run" / "checkpoints")
    assert default_out_dir([sweep]) == sweep
    assert default_out_dir([sweep / "0_run", sweep / "1_run"]) == sweep.resolve()

    report = build_report([sweep], default_out_dir([sweep]))
    assert all((sweep / name).is_file() for name in (*FIGURES, "report.json", "report.md"))
    running = next(s for s in report.summaries if s.arch == "plain")
    assert running.status == "running" and running.final_train_loss is None
    assert running.grad_norm_last_step  # its gradient norms are read all the same
    assert any("have not finished" in line for line in report.findings)


def test_report_refuses_a_dir_without_runs(capsys, tmp_path):
    status, _, stderr = run_main(capsys, "report", str(tmp_path))
    assert status == 1
    assert stderr.strip() == f"error: no runs under {tmp_path}; point at a sweep dir or run dirs"
    assert list(tmp_path.iterdir()) == []


def test_layer_order_follows_the_network_not_the_tags(two_runs):
    run = read_run(two_runs[1])
    assert run.grads is not None
    assert run.grads.layer_names[0] == "stem.conv" and run.grads.layer_names[-1] == "classifier"
    assert run.grads.norms.shape == (len(run.grads.steps), len(run.grads.layer_names))


# ---- the presets -----------------------------------------------------------------------------


def compose_preset(name: str, *overrides: str):
    return compose_train_config([f"experiment={name}", *overrides], hydra=True)


def test_depth_study_preset_sweeps_depth_arch_and_seed_on_one_recipe():
    cfg = compose_preset("depth_study")
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")  # jobs in parallel processes
    axes = {key: str(value).split(",") for key, value in cfg.hydra.sweeper.params.items()}
    assert set(axes["model"]) == {"plain", "resnet"}
    assert {"20", "56", "110"} <= set(axes["model.depth"]) and len(axes["seed"]) >= 2
    # Depth and the shortcut are the only variables: every job trains on the same recipe.
    recipes = set()
    for arch in axes["model"]:
        for depth in axes["model.depth"]:
            job = compose_preset("depth_study", f"model={arch}", f"model.depth={depth}")
            assert (job.model.arch, job.model.depth) == (arch, int(depth))
            recipe = {
                key: OmegaConf.to_container(job[key], resolve=True)
                for key in ("data", "optim", "schedule", "trainer")
            }
            recipes.add(yaml.safe_dump(recipe))
    assert len(recipes) == 1
    # The paper's warm-up: a small constant rate first, then the base rate.
    schedule = cfg.schedule
    multiplier = lr_multiplier(
        schedule.name,
        total_steps=400,
        base_lr=cfg.optim.lr,
        warmup_steps=schedule.warmup_steps,
        warmup_lr=schedule.warmup_lr,
        warmup=schedule.warmup,
    )
    assert schedule.warmup_steps > 0
    assert multiplier(0) == multiplier(schedule.warmup_steps - 1) < 0.5
    assert multiplier(schedule.warmup_steps) == pytest.approx(1.0)
    assert compose_preset("depth_study", "data=cifar10").data.name == "cifar10"


def test_init_study_preset_crosses_init_and_norm_at_depth_56():
    cfg = compose_preset("init_study", "model=plain")
    assert cfg.model.depth == 56 and cfg.model.arch == "plain" and cfg.trainer.on_nan == "skip"
    assert dict(cfg.hydra.sweeper.params) == {
        "model": "plain,resnet",
        "model.init": "xavier,kaiming,default",
        "model.norm": "batch,none",
        "seed": "0,1,2",
    }


# ---- analysis and figures on hand-made runs ---------------------------------------------------


def fake_run(
    arch: str,
    depth: int,
    losses: list[float],
    grads: list[float],
    *,
    norm: str = "batch",
    data: str = "digits",
    test_acc: float | None = 0.9,
    status: str = "completed",
    skipped_steps: int = 0,
    seed: int | None = 0,
    train_error: float = 0.5,
) -> RunData:
    history = [
        {
            "epoch": i + 1,
            "step": 25 * (i + 1),
            "train_loss": loss,
            "train_acc": 1 - train_error,
            "val_loss": 1.0,
            "val_acc": 0.5,
        }
        for i, loss in enumerate(losses)
    ]
    norms = np.array([grads, [g * 2 for g in grads]])
    names = [f"layer{i}" for i in range(len(grads))]
    return RunData(
        run_dir=Path(f"/runs/{arch}{depth}_{seed}"),
        data=data,
        arch=arch,
        depth=depth,
        init="xavier",
        norm=norm,
        status=status,
        seed=seed,
        history=history,
        steps=50,
        skipped_steps=skipped_steps,
        test_acc=test_acc,
        grads=GradNorms(steps=[1, 50], layer_names=names, norms=norms),
        curve=StepCurve(
            steps=[1, 2, 3, 25, 50],
            loss=[2.3, 2.2, 2.0, *losses[-1:] * 2],
            acc=[0.1, 0.2, 0.3, *[1 - train_error] * 2],
        ),
    )


def depth_sweep() -> list[RunData]:
    return [
        fake_run("plain", 20, [2.0, 0.5], [4.0, 2.0, 1.0]),
        fake_run("plain", 56, [2.3, 2.0], [400.0, 3.0, 1.0]),
        fake_run("resnet", 20, [2.0, 0.4], [1.0, 1.0, 2.0]),
        fake_run("resnet", 56, [2.0, 0.12], [1.0, 1.5, 2.0]),
    ]


def seeded(arch: str, depth: int, errors: list[float], **kwargs) -> list[RunData]:
    """One run per seed, the n-th with training error errors[n] and loss 4x that."""
    return [
        fake_run(arch, depth, [4 * error], [1.0, 1.0, 1.0], seed=seed, train_error=error, **kwargs)
        for seed, error in enumerate(errors)
    ]


def seeded_sweep() -> list[RunData]:
    return [
        *seeded("plain", 20, [0.010, 0.020, 0.015]),
        *seeded("plain", 56, [0.60, 0.62, 0.58]),
        *seeded("resnet", 20, [0.005, 0.003, 0.007]),
        *seeded("resnet", 56, [0.006, 0.004, 0.012]),
    ]


def test_runs_that_differ_only_in_seed_are_one_group_with_mean_and_std():
    groups = group_runs(summarize_runs(seeded_sweep()))
    assert [(g.label, g.seeds) for g in groups] == [
        ("plain-20", [0, 1, 2]),
        ("plain-56", [0, 1, 2]),
        ("resnet-20", [0, 1, 2]),
        ("resnet-56", [0, 1, 2]),
    ]
    plain56 = groups[1]
    assert plain56.train_error.mean == pytest.approx(0.60)
    assert plain56.train_error.std == pytest.approx(0.02)  # sample std (n - 1)
    assert plain56.train_loss.mean == pytest.approx(2.40) and plain56.train_error.n == 3
    row = table_rows(groups)[1]
    assert row[:3] == ["plain-56", "digits", "0, 1, 2"]
    assert row[6] == "60.0 ± 2.0 %"


def test_a_difference_is_called_only_when_it_exceeds_the_seed_spread():
    lines = findings(summarize_runs(seeded_sweep()))
    assert (
        "plain-56 vs plain-20: deeper is worse; training error 60.0 ± 2.0 % vs 1.5 ± 0.5 %, "
        "training loss 2.40 ± 0.08 vs 0.0600 ± 0.02 (40×); test accuracy 90.0 ± 0.0 % vs "
        "90.0 ± 0.0 %; mean ± std over 3 seeds." in lines
    )
    # resnet-56's mean error is higher (0.73 vs 0.50 %), but inside the seeds' spread.
    assert (
        "resnet-56 vs resnet-20: no clear difference; training error 0.7 ± 0.4 % vs 0.5 ± 0.2 %, "
        "training loss 0.0293 ± 0.017 vs 0.0200 ± 0.008 (1.5×); test accuracy 90.0 ± 0.0 % vs "
        "90.0 ± 0.0 %; mean ± std over 3 seeds." in lines
    )
    assert any(
        line.startswith("At depth 56, plain-56 vs resnet-56: plain is worse;") for line in lines
    )
    assert any(
        # 1.5 ± 0.5 % vs 0.5 ± 0.2 %: three seeds leave the two intervals overlapping.
        line.startswith("At depth 20, plain-20 vs resnet-20: no clear difference;")
        for line in lines
    )
    verdicts = {
        (c.kind, c.subject, c.reference): c.verdict
        for c in comparisons(group_runs(summarize_runs(seeded_sweep())))
    }
    assert verdicts == {
        ("depth", "plain-56", "plain-20"): "higher",
        ("depth", "resnet-56", "resnet-20"): "unclear",
        ("architecture", "plain-20", "resnet-20"): "unclear",
        ("architecture", "plain-56", "resnet-56"): "higher",
    }


def test_overlapping_intervals_are_no_clear_difference_whatever_the_means():
    a, b = Spread.of([0.01, 0.05, 0.03]), Spread.of([0.02, 0.04, 0.06])
    assert a.mean < b.mean and compare(a, b) == compare(b, a) == "unclear"
    low, high = Spread.of([1.0, 2.0, 3.0]).interval()
    half = 4.302653 / 3**0.5  # Student t, 2 degrees of freedom, 97.5 %
    assert (low, high) == (pytest.approx(2 - half), pytest.approx(2 + half))
    assert compare(Spread.of([10.0, 11.0, 12.0]), Spread.of([1.0, 2.0, 3.0])) == "higher"
    assert compare(Spread.of([]), a) is None and Spread.of([float("nan")]).n == 0


def test_single_seed_comparisons_are_labelled_as_such():
    runs = [*seeded("plain", 20, [0.01]), *seeded("plain", 56, [0.6])]
    lines = findings(summarize_runs(runs))
    assert (
        "plain-56 vs plain-20: no verdict; training error 60.0 % vs 1.0 %, training loss "
        "2.40 vs 0.0400 (60×); test accuracy 90.0 % vs 90.0 %; single seed: no spread." in lines
    )
    groups = group_runs(summarize_runs(runs))
    assert [(c.single_seed, c.verdict) for c in comparisons(groups)] == [(True, None)]


def test_findings_give_gradient_ranges_over_the_seeds():
    runs = [
        fake_run("plain", 56, [2.3], [1e-14, 3e-14, 2e-13], norm="none", seed=0),
        fake_run("plain", 56, [2.3], [1e-15, 3e-14, 5e-13], norm="none", seed=1),
        fake_run("resnet", 56, [0.5], [0.05, 0.4, 1.3], norm="none", seed=0),
        fake_run("resnet", 56, [0.5], [0.02, 0.4, 2.0], norm="none", seed=1),
    ]
    lines = findings(summarize_runs(runs))
    assert (
        "plain-56's gradients vanished by step 1 in 2 of 2 seeds: all 3 layers below 1e-8 "
        "(first layer 1e-15 to 1e-14, largest 2e-13 to 5e-13); resnet-56's span 0.02 to 2 at "
        "step 1." in lines
    )


def test_figures_draw_seed_bands_and_error_bars():
    groups = group_runs(summarize_runs(seeded_sweep()))
    curves = draw.training_curves(groups)
    loss_axis, error_axis, val_axis = curves.axes
    assert loss_axis.get_yscale() == "log" and "step" in error_axis.get_xlabel()
    assert len(error_axis.lines) == 4  # one mean line per group
    bands = [c for c in error_axis.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 4  # a ± 1 std band per group (the epoch dots are not polygons)
    assert len(val_axis.lines) == 4
    bars = draw.accuracy_vs_depth(groups)
    assert len(bars.axes) == 3
    assert all(len(axis.containers) == 2 for axis in bars.axes)  # plain and resnet error bars
    errors = bars.axes[0].containers[0]
    assert errors.has_yerr


def test_smoothing_averages_neighbours_within_the_half_width():
    steps = np.array([1.0, 2.0, 3.0, 10.0])
    smoothed = draw.smooth(steps, np.array([[1.0, 2.0, 3.0, 10.0]]), halfwidth=1)
    assert smoothed.tolist() == [[1.5, 2.0, 2.5, 10.0]]


def test_findings_compare_depths_and_architectures_with_the_numbers():
    lines = findings(summarize_runs(depth_sweep()))
    assert (
        "plain-56 vs plain-20: no verdict; training error 50.0 % vs 50.0 %, "
        "training loss 2.00 vs 0.500 (4×); test accuracy 90.0 % vs 90.0 %; single seed: no spread."
        in lines
    )
    assert any(line.startswith("At depth 56, plain-56 vs resnet-56:") for line in lines)
    assert any("plain-56 400× at step 1, 400× at step 50" in line for line in lines)


def test_findings_call_vanished_gradients_by_their_size():
    runs = [
        fake_run("plain", 56, [2.3], [1e-14, 3e-14, 2e-13], norm="none"),
        fake_run("resnet", 56, [0.5], [0.05, 0.4, 1.3], norm="none"),
        fake_run("resnet", 56, [0.4], [0.5, 0.4, 1.3]),
    ]
    lines = findings(summarize_runs(runs))
    assert (
        "Without batch norm: plain-56's gradients vanished by step 1: all 3 layers below "
        "1e-8 (first layer 1e-14, largest 2e-13); resnet-56's span 0.05 to 1.3 at step 1." in lines
    )
    assert not any("resnet-56's gradients vanished" in line for line in lines)


def test_gradient_profile_has_one_panel_per_depth():
    figure = draw.gradient_profile(group_runs(summarize_runs(depth_sweep())))
    assert [axis.get_title() for axis in figure.axes] == ["depth 20", "depth 56"]
    assert all(len(axis.lines) == 4 for axis in figure.axes)  # plain and resnet, first and last


def test_mixed_data_sets_are_grouped():
    runs = [*depth_sweep(), fake_run("plain", 20, [1.0], [1.0, 1.0, 1.0], data="synthetic")]
    summaries = summarize_runs(runs)
    groups = group_runs(summaries)
    assert len(draw.training_curves(groups).axes) == 6  # a row of three panels per data set
    assert len(draw.accuracy_vs_depth(groups).axes) == 6
    assert len(draw.gradient_profile(groups).axes) == 3
    assert any(line.startswith("Digits: plain-56 vs plain-20:") for line in findings(summaries))


def test_report_json_stays_valid_with_non_finite_numbers():
    run = fake_run("plain", 20, [float("nan")], [float("nan"), 1.0, float("inf")], test_acc=None)
    summaries = summarize_runs([run])
    document = report_json(summaries, group_runs(summaries), [], [], [])
    text = json.dumps(document, allow_nan=False)  # raises on NaN or inf
    entry = json.loads(text)["runs"][0]
    assert entry["final_train_loss"] is None and entry["grad_norm_first_step"] == [None, 1.0, None]


def test_a_diverged_run_has_no_final_loss_and_is_named():
    runs = [
        fake_run("resnet", 56, [2.0, 1.5], [1.0, 1.0, 1.0], norm="none", status="diverged"),
        fake_run("plain", 56, [2.3, 2.3], [1.0, 1.0, 1.0], norm="none"),
    ]
    summaries = summarize_runs(runs)
    diverged = next(s for s in summaries if s.arch == "resnet")
    assert diverged.final_train_loss is None  # not the last good epoch's 1.5
    assert "resnet-56 diverged (its loss became non-finite) after 2 finished epochs." in findings(
        summaries
    )


def test_a_run_that_skipped_most_steps_did_not_train():
    runs = [
        fake_run("resnet", 56, [900.0], [1e6, 1e5, 1e3], skipped_steps=79),
        fake_run("resnet", 20, [0.5], [1.0, 1.0, 1.0], skipped_steps=2),
    ]
    summaries = summarize_runs(runs)
    assert [s.final_train_loss for s in summaries] == [0.5, None]
    lines = findings(summaries)
    assert (
        "resnet-56 had a non-finite loss at 79 of 129 steps and skipped them: it did not train."
        in lines
    )
    assert "resnet-20 had a non-finite loss at 2 of 52 steps and skipped them." in lines


def test_failures_are_counted_over_the_seeds_of_a_setting():
    runs = [
        fake_run("resnet", 56, [2.0], [1.0, 1.0, 1.0], status="diverged", skipped_steps=39, seed=s)
        for s in (0, 1, 2)
    ]
    lines = findings(summarize_runs(runs))
    assert lines[:2] == [
        "resnet-56 diverged (its loss became non-finite) in 3 of 3 seeds after 1 finished epochs.",
        "resnet-56 had a non-finite loss at 39 of 89 steps in 3 of 3 seeds and skipped them: "
        "it did not train.",
    ]


def test_runs_logged_with_the_older_tags_are_still_read(tmp_path):
    """Before the tags carried their index (`grad_norm/<layer>`): same layers, same order."""
    from torch.utils.tensorboard import SummaryWriter

    run_dir = tmp_path / "old"
    layers = [name for name, _ in weight_layers(build_model("plain", depth=8))]
    writer = SummaryWriter(str(run_dir))
    for step in (1, 10):
        for index, name in enumerate(reversed(layers)):  # written out of order on purpose
            writer.add_scalar(f"grad_norm/{name}", float(index + step), step)
    writer.close()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": {"arch": "plain", "depth": 8}}))
    grads = read_run(run_dir).grads
    assert grads.layer_names == layers and grads.steps == [1, 10]
    # Its report has what it logged, and says what it lacks.
    report = build_report([run_dir], tmp_path / "report")
    assert report.summaries[0].mechanism is None
    assert any(line.startswith("plain-8: no diagnostics logged") for line in report.findings)
    assert (tmp_path / "report" / "gradient_profile.png").is_file()
    assert not (tmp_path / "report" / "backward_signal.png").exists()


def test_the_gradient_layouts_of_different_depths_merge_into_one(tmp_path):
    """TensorBoard merges the runs' custom-scalars layouts by title, dropping identical charts:
    runs of any depth write the same layout, so a sweep shows each chart once."""
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.util import tensor_util

    from resdeep.train.diagnostics import LayerDiagnostics
    from resdeep.train.tensorboard import TensorBoardLogger

    layouts = []
    for depth in (8, 20):
        layout = LayerDiagnostics(build_model("resnet", depth=depth)).layout
        logger = TensorBoardLogger(tmp_path / str(depth), layout, None, title=f"resnet-{depth}")
        logger.diagnostics(layout.split([1.0] * len(layout)), 1)
        logger.close()
        events = EventAccumulator(str(tmp_path / str(depth)))
        events.Reload()
        layout = layout_pb2.Layout()
        event = events.Tensors("custom_scalars__config__")[0]
        layout.ParseFromString(tensor_util.make_ndarray(event.tensor_proto).item())
        layouts.append(layout)
        assert "grad_norm_log10_at/residual/4_output" in events.Tags()["scalars"]
    assert layouts[0] == layouts[1]


# ---- the mechanism, on hand-made diagnostics -------------------------------------------------


def with_diagnostics(
    run: RunData,
    *,
    init_signal: float,
    end_signal: float,
    growth: float = 1.1,
    relative_grad: float = 1e-3,
    update: float = 1e-3,
    blocks: int = 4,
    convs: int = 6,
    forward_growth: float = 1.0,
    end_step: int = 50,
) -> RunData:
    """`run` with diagnostics at steps 0, 1 and 50: the backward signal at the stem over at the
    last block (geometric across the blocks), the first two convs' weight growth by step 50 and
    their relative gradient there (the other convs stay at 1x and 1e-3)."""
    steps = [0, 1, end_step]
    units = [f"unit{i}" for i in range(blocks + 1)]
    layers = [f"conv{i}" for i in range(convs)] + ["classifier"]

    def signal(ratio: float) -> list[float]:
        return list(np.geomspace(ratio, 1.0, blocks + 1))

    def series(names: list[str], rows: list[list[float]]) -> Series:
        return Series(steps=steps, names=names, values=np.array(rows, dtype=float))

    end_weights = [growth, growth] + [1.0] * (convs - 1)
    grads_end = [relative_grad * w for w in end_weights[:2]] + [1e-3] * (convs - 1)
    diagnostics = Diagnostics(
        backward_signal=series(units, [signal(init_signal)] * 2 + [signal(end_signal)]),
        forward_std=series(units, [list(np.geomspace(1.0, forward_growth, len(units)))] * 3),
        layer_response=series(layers[:-1], [[1.0] * convs] * 3),
        weight_norm=series(layers, [[1.0] * len(layers)] * 2 + [end_weights]),
        relative_update=series(layers, [[np.nan] * len(layers)] + [[update] * len(layers)] * 2),
        lr={1: 0.02, end_step: 0.02},
    )
    grads = GradNorms(steps=steps, layer_names=layers, norms=np.array([grads_end] * 3))
    return replace(run, grads=grads, diagnostics=diagnostics)


def test_the_report_names_each_mechanism_from_its_numbers():
    runs = [
        # the classical no-BN picture: the signal reaches the stem a millionth as strong
        *(
            with_diagnostics(
                fake_run("plain", 20, [2.3], [1.0] * 7, train_error=error, seed=seed),
                init_signal=1e-6,
                end_signal=1e-6,
            )
            for seed, error in ((0, 0.5), (1, 0.5), (2, 0.51))
        ),
        # below the exploding threshold: healthy, yet it degrades (beyond the seed spread)
        *(
            with_diagnostics(
                fake_run("plain", 56, [0.1], [1.0] * 7, train_error=error, seed=seed),
                init_signal=3e3,
                end_signal=3.0,
            )
            for seed, error in ((0, 0.6), (1, 0.6), (2, 0.61))
        ),
        with_diagnostics(
            fake_run("plain", 110, [2.3], [1.0] * 7, train_error=0.88),
            init_signal=5e6,
            end_signal=1e-9,
            growth=5e3,
            relative_grad=1e-12,
            update=1e-5,
        ),
        with_diagnostics(
            fake_run("resnet", 20, [0.1], [1.0] * 7, train_error=0.01),
            init_signal=8.0,
            end_signal=7.0,
        ),
        # weights that grew but still learn are not frozen
        with_diagnostics(
            fake_run("resnet", 56, [0.1], [1.0] * 7, train_error=0.01),
            init_signal=20.0,
            end_signal=6.0,
            growth=50.0,
            relative_grad=1e-4,
        ),
    ]
    summaries = summarize_runs(runs)
    labels = {s.label: s.mechanism.labels() for s in summaries}
    assert labels == {
        "plain-20": [VANISHING_FROM_START],
        "plain-56": [HEALTHY],
        "plain-110": [EXPLODING, FROZEN, VANISHING],
        "resnet-20": [HEALTHY],
        "resnet-56": [HEALTHY],
    }
    lines = findings(summaries)
    [plain110] = [line for line in lines if line.startswith("plain-110: at initialisation")]
    assert "grows 5e6× from the last block to the stem" in plain110
    assert "(47× per block: exploding)" in plain110  # 5e6 over 4 blocks
    assert "2 of 6 convs are frozen" in plain110 and "the first conv's 1e-12" in plain110
    assert "(vanishing)" in plain110
    assert plain110.endswith(
        "— exploding at initialisation, then frozen by weight growth, then vanishing."
    )
    [plain56] = [line for line in lines if line.startswith("plain-56: at initialisation")]
    assert (
        "grows 3,000× from the last block to the stem" in plain56 and ": exploding" not in plain56
    )
    assert (
        "— healthy, and it degrades anyway: training error 60.3 ± 0.6 % vs plain-20's 50.3 ± 0.6 %"
        in plain56
    )
    # With the signal study beside the report, the degrading setting says what it measured.
    from resdeep.report.signal_section import SignalSection
    from resdeep.report.spread import Spread

    plain = next(s for s in summaries if s.label == "plain-56")
    key = (plain.data, "plain", 56, plain.init, plain.norm, "none")
    twin = (plain.data, "resnet", 56, plain.init, plain.norm, "none")
    signal = SignalSection(
        findings=[], rows=[], figures=[], intro="",
        correlation={key: {"init": Spread(0.003, 0.004, 3), "trained": Spread(0.956, 0.014, 3)},
                     twin: {"init": Spread(0.903, 0.014, 3)}},
        labels={key: "plain-56", twin: "resnet-56"},
    )  # fmt: skip
    [explained] = [
        line for line in findings(summaries, signal) if line.startswith("plain-56: at init")
    ]
    assert explained.startswith(plain56.removesuffix("."))
    assert explained.endswith(
        "; its input gradients at initialisation are shattered: neighbour-gradient correlation "
        "0.00300 ± 0.004 vs resnet-56's 0.903 ± 0.014, 0.956 ± 0.014 after training (Balduzzi "
        "et al. 2017)."
    )
    [plain20] = [line for line in lines if line.startswith("plain-20: at initialisation")]
    assert "falls to 1e-6× of the last block's at the stem" in plain20
    assert plain20.endswith("— vanishing from initialisation.")
    [resnet56] = [line for line in lines if line.startswith("resnet-56: at initialisation")]
    assert "grow up to 50× their initial norms, and no conv's ‖∂L/∂W‖/‖W‖ falls to 1e-6" in resnet56
    assert resnet56.endswith("— healthy.")
    # The table's column and report.json carry the same verdicts.
    groups = group_runs(summaries)
    rows = {row[0]: row for row in table_rows(groups)}
    assert rows["plain-110"][-1] == "exploding → frozen → vanishing"
    entry = next(
        e
        for e in report_json(summaries, groups, [], lines, [])["runs"]
        if e["label"] == "plain-110"
    )
    assert entry["mechanism"]["labels"] == [EXPLODING, FROZEN, VANISHING]
    assert entry["mechanism"]["frozen"] == 2 and entry["mechanism"]["init_growth"] == pytest.approx(
        5e6
    )


def test_seeds_that_disagree_are_counted_and_runs_without_diagnostics_say_so():
    runs = [
        with_diagnostics(
            fake_run("plain", 110, [2.3], [1.0] * 7, seed=seed),
            init_signal=5e6 if seed else 5e3,
            end_signal=1e-9,
        )
        for seed in (0, 1, 2)
    ] + [fake_run("resnet", 110, [0.1], [1.0] * 7)]
    runs.append(
        with_diagnostics(  # exploding forward: NaN from its second step, it stopped at step 1
            fake_run("resnet", 56, [2.3], [1.0] * 7, status="diverged"),
            init_signal=300.0,
            end_signal=300.0,
            forward_growth=1e3,
            end_step=1,
        )
    )
    lines = findings(summarize_runs(runs))
    [plain] = [line for line in lines if line.startswith("plain-110: at initialisation")]
    assert "grows 5,000× to 5e6×" in plain and ": exploding in 2 of 3 seeds" in plain
    assert plain.endswith("— exploding at initialisation (in 2 of 3 seeds), then vanishing.")
    assert any(
        line.startswith("resnet-110: no diagnostics logged (runs from before resdeep measured")
        for line in lines
    )
    [resnet56] = [line for line in lines if line.startswith("resnet-56: at initialisation")]
    assert (
        "the forward signal grows 1,000× from the stem to the last block (forward exploding)"
        in resnet56
    )
    assert "at step 1 the stem's backward signal" in resnet56
    assert resnet56.endswith("— forward signal exploding at initialisation.")
    [responses] = [line for line in lines if line.startswith("Layer responses at step 50")]
    assert "resnet-56 1 (largest 1) at step 1" in responses  # its own step, not the others


def test_report_refuses_an_out_path_it_cannot_write_before_reading_anything(capsys, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    status, _, stderr = run_main(capsys, "report", str(tmp_path), "--out", str(blocker))
    assert (
        status == 2 and stderr == f"error: --out {blocker} is a file, not a folder; give a folder\n"
    )
