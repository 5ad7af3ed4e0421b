"""`resdeep signal`: mean-field theory against measurement, shattered gradients, the nets rebuilt
as training started them, and the report's use of it."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resdeep.models import build_model
from resdeep.signal.mean_field import plain_convs, predict_plain
from resdeep.signal.measure import measure_propagation
from resdeep.signal.shattering import line_gradients
from resdeep.signal.study import interior_of_stage1, layer_fits
from tests.conftest import run_main


def _digits(count: int = 2) -> torch.Tensor:
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images[:count], dtype=torch.float32) / 16.0
    return (images.unsqueeze(1) - 0.3) / 0.4  # (count, 1, 8, 8), roughly standardised


def _one_step_prediction(conv: nn.Conv2d, given: torch.Tensor) -> float:
    """Mean-field E[z^2] of conv(given), computed here from scratch: each output is a sum over
    the input patch (unfold) of independent terms, so its mean is the weighted sum of the patch
    means and its variance the W^2-weighted sum of the patch variances (over the batch)."""
    patches = F.unfold(given.double(), conv.kernel_size, padding=conv.padding, stride=conv.stride)
    mean, var = patches.mean(0), patches.var(0, unbiased=False)  # (C*k*k, positions)
    weight = conv.weight.detach().double().flatten(1)  # (out, C*k*k)
    bias = conv.bias.detach().double()[:, None] if conv.bias is not None else 0.0
    return float(((weight @ mean + bias).square() + weight.square() @ var).mean())


@pytest.mark.parametrize("init", ["kaiming", "xavier", "orthogonal", "default"])
def test_mean_field_predicts_plain_nets_without_batch_norm(init):
    """Plain-20 without BN on N(0, 1) 32 x 32 inputs: every interior stage-1 conv's measured
    second moment within 10 % of the mean-field prediction from its weights and the moments of
    its input, for three seeds; resdeep's own prediction is the same number."""
    for seed in range(3):
        torch.manual_seed(seed)
        model = build_model("plain", depth=20, norm="none", init=init, in_channels=3).eval()
        inputs = torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(10 + seed))
        given: dict[nn.Module, torch.Tensor] = {}
        hooks = [
            conv.register_forward_pre_hook(
                lambda m, args, given=given: given.__setitem__(m, args[0].clone())
            )
            for conv in plain_convs(model)
        ]
        with torch.no_grad():
            model(inputs)
        for hook in hooks:
            hook.remove()
        measured = measure_propagation(model, inputs)
        prediction = predict_plain(model, inputs)
        convs = plain_convs(model)
        for index in interior_of_stage1(measured):
            expected = _one_step_prediction(convs[index], given[convs[index]])
            ratio = measured.layers[index].forward.second / expected
            assert abs(ratio - 1) < 0.10, (init, seed, index, ratio)
            assert prediction.one_step[index] == pytest.approx(expected, rel=1e-6)
        # The chain from the inputs alone stays near the measurement too (its drift comes from
        # the spatial correlations mean-field theory leaves out), and backward the predicted
        # change per conv is the measured one.
        for index in interior_of_stage1(measured):
            ratio = measured.layers[index].forward.second / prediction.forward[index]
            assert abs(ratio - 1) < 0.25, (init, seed, index, ratio)
        fits = layer_fits(measured, prediction)
        assert fits["theory_backward_slope"] == pytest.approx(fits["backward_slope"], abs=0.2)
        assert 0.2 < fits["theory_backward_worst"] < 5  # a wrong pooling factor: 1e3 off


def test_linear_net_gradients_are_one_direction():
    """A linear net's input gradient is the same vector everywhere: correlation exactly 1."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    start, end = _digits()
    line = line_gradients(model, start, end, points=64, max_lag=8)
    assert line.neighbour == pytest.approx(1.0, abs=1e-12)
    assert all(lag == pytest.approx(1.0, abs=1e-12) for lag in line.lags)


def test_depth_two_net_keeps_gradients_correlated():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10)
    )
    start, end = _digits()
    assert line_gradients(model, start, end).neighbour > 0.9


def test_zero_gradient_has_no_direction():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    nn.init.zeros_(model[1].weight)
    start, end = _digits()
    assert math.isnan(line_gradients(model, start, end, points=16).neighbour)


def _shattered_every_seed(capsys, tmp_path, depths: str) -> tuple[dict, str]:
    code, out, err = run_main(
        capsys, "signal", f"model.depth={depths}", "--pairs", "1", "--batch", "16",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    written = json.loads((tmp_path / "signal.json").read_text())
    nets = written["nets"]
    assert len(nets) == 6 * len(depths.split(","))  # plain/resnet x depths x seeds 0, 1, 2
    plain = [n["line"]["neighbour"] for n in nets if n["about"]["arch"] == "plain"]
    residual = [n["line"]["neighbour"] for n in nets if n["about"]["arch"] == "resnet"]
    assert max(plain) < min(residual), (plain, residual)
    assert max(plain) < 0.2 and min(residual) > 0.7
    return written, out


@pytest.mark.slow
def test_plain_110_gradients_are_shattered_at_init_every_seed(capsys, tmp_path):
    """As below, at depth 110 too (every plain-56 and plain-110 below every resnet-56 and
    resnet-110)."""
    _shattered_every_seed(capsys, tmp_path, "56,110")


def test_deep_plain_gradients_are_shattered_at_init_every_seed(capsys, tmp_path):
    """The default protocol at depth 56 (BN statistics from training digits): each plain net's
    neighbour correlation below every residual net's, in every seed."""
    written, out = _shattered_every_seed(capsys, tmp_path, "56")
    assert {"signal_by_block.png", "signal_correlation.png", "signal_shattered.png"} <= set(
        written["figures"]
    )
    for name in written["figures"]:
        assert (tmp_path / name).stat().st_size > 10_000
    assert "below resnet-56" in out


def test_mean_field_figure_and_table_for_plain_nets_without_bn(capsys, tmp_path):
    code, out, err = run_main(
        capsys, "signal", "model=plain", "model.depth=8", "model.norm=none", "seed=0",
        "model.init=kaiming,default", "--inputs", "normal", "--image-size", "16",
        "--pairs", "1", "--points", "32", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    written = json.loads((tmp_path / "signal.json").read_text())
    assert "signal_mean_field.png" in written["figures"]
    fits = [net["fits"] for net in written["nets"]]
    assert all("theory_forward_slope" in fit for fit in fits)
    assert "theory fwd/conv" in out and "one conv at a time" in out


def test_initial_weights_are_the_ones_training_started_from(capsys, train_run, tmp_path):
    """A run keeps its weights before the first step (checkpoints/init.pt): their norms are
    those the run logged at step 0, a run without the file gets the same weights rebuilt from
    its seed, and init.pt cannot be resumed from."""
    import shutil

    from resdeep.checkpoint import load_checkpoint
    from resdeep.config import initial_model
    from resdeep.report.reading import read_run

    run_dir = train_run()
    saved = run_dir / "checkpoints" / "init.pt"
    assert saved.is_file()
    _, info = load_checkpoint(run_dir)
    kept = initial_model(info)
    logged = read_run(run_dir).diagnostics.weight_norm
    at_start = dict(zip(logged.names, logged.at(0), strict=True))
    weights = {
        name.removesuffix(".weight"): float(p.detach().norm())
        for name, p in kept.named_parameters()
        if name.endswith("weight") and p.dim() > 1
    }
    assert len(at_start) == 8 and set(at_start) <= set(weights), (at_start, sorted(weights))
    for name, value in at_start.items():
        assert weights[name] == pytest.approx(value, rel=1e-5), name

    older = tmp_path / "older_run"
    shutil.copytree(run_dir, older)
    (older / "checkpoints" / "init.pt").unlink()
    _, older_info = load_checkpoint(older)
    rebuilt = initial_model(older_info).state_dict()
    for name, tensor in kept.state_dict().items():
        assert torch.equal(rebuilt[name], tensor), name

    # In this process; what the reading above logged (a stale handler of an earlier in-process
    # run may turn tensorboard's INFO line into a logging error) is not the refusal's output.
    capsys.readouterr()
    status, _, stderr = run_main(
        capsys, "train", f"trainer.resume={saved}", f"hydra.run.dir={tmp_path / 'resumed'}"
    )
    assert status == 2, stderr
    assert "cannot be resumed" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "resumed").exists()


def test_checkpoints_at_init_and_end_feed_the_report(capsys, train_run, tmp_path):
    """`resdeep signal --checkpoint` on two runs writes signal.json beside them; the report then
    shows the section and its correlations."""
    import shutil

    sweep = tmp_path / "sweep"
    for name, overrides in (("plain8_s0", ("model=plain",)), ("resnet8_s0", ())):
        shutil.copytree(train_run(*overrides), sweep / name)
    code, out, err = run_main(
        capsys, "signal", "--checkpoint", str(sweep), "--pairs", "1", "--jobs", "1"
    )
    assert code == 0, err
    written = json.loads((sweep / "signal.json").read_text())
    states = {(n["about"]["arch"], n["about"]["state"]) for n in written["nets"]}
    assert states == {(a, s) for a in ("plain", "resnet") for s in ("init", "trained")}
    from resdeep.report.signal_section import read_signal_section

    clause = read_signal_section(sweep).clause("digits", "plain", 8, "kaiming", "batch")
    plain, resnet = (
        next(g for g in written["groups"] if g["arch"] == arch and g["state"] == "init")
        for arch in ("plain", "resnet")
    )
    assert f"{plain['neighbour_correlation']['mean']:.3g}" in clause
    assert f"vs resnet-8's {resnet['neighbour_correlation']['mean']:.3g}" in clause
    assert "after training" in clause
    code, out, err = run_main(capsys, "report", str(sweep))
    assert code == 0, err
    report = (sweep / "report.md").read_text()
    assert "## Signal at initialisation" in report
    assert (
        "![Neighbour-gradient correlation against depth and lag](signal_correlation.png)" in report
    )


def test_gated_and_zero_classifier_nets_at_init(capsys, tmp_path):
    """Fixup's zero classifier gives a zero input gradient: said as such, written as null (JSON
    has no NaN), and left out of the comparisons; ReZero starts as its shortcuts, one direction."""
    code, out, err = run_main(
        capsys, "signal", "model=resnet", "model.depth=8", "model.norm=none", "seed=0",
        "model.residual_init=fixup,rezero", "--pairs", "1", "--points", "32", "--out",
        str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    text = (tmp_path / "signal.json").read_text()
    assert "NaN" not in text
    nets = {n["about"]["residual_init"]: n for n in json.loads(text)["nets"]}
    assert nets["fixup"]["line"]["neighbour"] is None
    assert nets["rezero"]["line"]["neighbour"] > 0.95
    assert "zero gradient" in out and "Fixup starts its classifier at zero" in out


def test_empty_grid_and_empty_folder_are_one_line(capsys, tmp_path):
    code, _, err = run_main(capsys, "signal", "seed=range(0,0)")
    assert code == 2 and "holds no nets" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(capsys, "signal", "--checkpoint", str(tmp_path))
    assert code != 0 and "no checkpoint" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--inputs", "noise"], "--inputs must be one of data, normal"),
        (["--image-size", "16"], "--image-size sets the size of N(0, 1) inputs"),
        (["model.depth=57"], "depth 57 is not valid"),
        (["model.dept=56"], "model.dept"),
        (["--checkpoint"], "--checkpoint takes run dirs"),
        (["--pairs", "0"], "--pairs must be at least 1"),
        (["--jobs", "2"], "--jobs is for --checkpoint"),
    ],
)
def test_bad_input_is_one_line(capsys, args, message):
    code, out, err = run_main(capsys, "signal", *args)
    assert code != 0
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
