"""Residual nets without batch norm (model.residual_init): each block is the identity where its
method says so, Fixup's scales follow the authors' formula, nonsense is refused in one line, and
each method trains, saves and loads through the real CLI."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace

import pytest
import torch
from torch import fx, nn

from resdeep.cam.api import compute_cam
from resdeep.checkpoint import load_checkpoint, save_checkpoint
from resdeep.lesion.groups import group_lesions, lesion_findings
from resdeep.lesion.study import LesionSettings, RunLesion, study_run
from resdeep.models import ModelConfigError, build_model, layer_responses
from resdeep.models.normfree import FixupBasicBlock
from resdeep.report import figures as draw
from resdeep.report import findings, group_runs, summarize_runs
from tests.conftest import run_main
from tests.test_report import fake_run, with_diagnostics

METHODS = ("fixup", "skipinit", "rezero")
# One thread: these nets are tiny, so their work is dominated by thread hand-offs, and on a busy
# machine two threads take several times longer than one.
TINY_RUN = ("model.norm=none", "trainer.threads=1")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# (arch, block, depth) each method is built for; fixup only for the authors' post-activation net.
NETS = {
    "fixup": [("resnet", "basic", 20)],
    "skipinit": [("resnet", "basic", 20), ("preact", "basic", 20), ("preact", "bottleneck", 11)],
    "rezero": [("resnet", "basic", 20), ("preact", "basic", 20), ("preact", "bottleneck", 11)],
}
CASES = [(method, *net) for method, nets in NETS.items() for net in nets]


def _net(method: str, arch: str = "resnet", block: str = "basic", depth: int = 20) -> nn.Module:
    torch.manual_seed(0)
    return build_model(arch, depth=depth, block=block, norm="none", residual_init=method).eval()


def _block_inputs(model: nn.Module, non_negative: bool) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each block with a random input of the shape it receives in the net."""
    pairs, x = [], model.stem(torch.randn(2, 3, 16, 16))
    for block in model.blocks():
        sample = torch.randn(x.shape)
        pairs.append((block, sample.abs() if non_negative else sample))
        x = block(x)
    return pairs


@pytest.mark.parametrize("method,arch,block,depth", CASES)
def test_every_block_starts_as_its_shortcut(method, arch, block, depth):
    """At initialisation each branch is zero, so a block computes merge(shortcut(x)); where the
    shape is kept that is x itself. A post-activation block ends on ReLU(x + F(x)), the identity
    only on non-negative inputs, which is all it ever receives (the stem and every block before
    it end on a ReLU): those get |noise|. ReZero has no ReLU after the sum and pre-activation
    units none either: any input."""
    post_activation = arch == "resnet" and method != "rezero"
    model = _net(method, arch, block, depth)
    with torch.no_grad():
        for module, x in _block_inputs(model, non_negative=post_activation):
            branch, shortcut = module.paths(x.clone())
            assert branch.abs().max() == 0
            expected = module.merge(shortcut.clone())
            output = module(x.clone())
            assert (output - expected).abs().max() <= 1e-7
            if output.shape == x.shape and not getattr(module, "shares_preactivation", False):
                assert (output - x).abs().max() <= 1e-7


def test_fixup_scales_the_first_conv_by_the_authors_formula_and_zeroes_the_rest():
    """Zhang et al. 2019: He init times L^(-1/(2m-2)) with m = 2, L the residual branches; the
    authors' code takes He's fan from the output side, sqrt(2 / (out_channels * 3 * 3))."""
    model = _net("fixup", depth=20)  # 9 branches
    blocks = model.blocks()
    scale = len(blocks) ** -0.5
    for stage in (model.stage1, model.stage2, model.stage3):
        weights = torch.cat([block.conv1.weight.flatten() for block in stage])
        fan_out = stage[0].conv1.out_channels * 9
        assert weights.std().item() == pytest.approx(math.sqrt(2 / fan_out) * scale, rel=0.04)
        assert weights.mean().abs().item() < 0.1 * weights.std().item()
    # The stride-2 conv tells the fan modes apart: fan_in (16 * 9) would be sqrt(2) larger.
    entry = model.stage2.block1.conv1.weight
    assert entry.std().item() == pytest.approx(math.sqrt(2 / (32 * 9)) * scale, rel=0.05)
    for block in blocks:
        assert isinstance(block, FixupBasicBlock)
        assert block.conv2.weight.abs().max() == 0 and block.conv1.bias is None
        assert block.scale.gain.item() == 1.0
        assert all(b.bias.item() == 0.0 for b in (block.bias1a, block.bias1b, block.bias2a))
    assert model.classifier.weight.abs().max() == 0 and model.classifier.bias.abs().max() == 0
    assert model(torch.randn(2, 3, 16, 16)).abs().max() == 0  # first logits 0: loss log(10)


def test_skipinit_keeps_the_relu_after_the_sum_and_rezero_drops_it():
    x = -torch.rand(1, 16, 4, 4)  # a negative input: only ReZero passes it on
    skipinit, rezero = _net("skipinit").stage1.block2, _net("rezero").stage1.block2
    with torch.no_grad():
        assert skipinit(x.clone()).abs().max() == 0
        torch.testing.assert_close(rezero(x.clone()), x)
    assert skipinit.gate.gain.item() == rezero.gate.gain.item() == 0.0


def test_the_classifier_reads_exactly_the_features_so_cam_adds_up():
    """CAM (Zhou et al. 2016) rests on logit_c = mean_xy sum_k w_ck f_k(x, y) + b_c. Fixup's
    scalar bias before the classifier sits inside `features`, so no term escapes the maps."""
    model = _net("fixup")
    with torch.no_grad():
        model.feature_bias.bias.fill_(0.7)
        nn.init.normal_(model.classifier.weight)
        x = torch.randn(3, 3, 16, 16)
        maps = torch.einsum("ck,bkhw->bchw", model.classifier.weight, model.features(x))
        torch.testing.assert_close(maps.mean(dim=(2, 3)) + model.classifier.bias, model(x))


@pytest.mark.parametrize("method", METHODS)
def test_diagnostics_trace_the_net_and_take_each_conv_response_at_the_conv(method, caplog):
    """Without batch norm a conv's response (He et al. 2015, Fig. 7) is its own output; the
    diagnostics find that on the fx-traced graph, which the scalar gates must not break."""
    model = _net(method, depth=8)
    fx.symbolic_trace(model)
    with caplog.at_level(logging.WARNING, logger="resdeep.models"):
        responses = layer_responses(model)
    assert not caplog.records
    modules = dict(model.named_modules())
    assert len(responses) == 7 and all(module is modules[name] for name, module in responses)


@pytest.mark.parametrize("method", METHODS)
def test_deleting_any_block_of_a_fresh_net_changes_nothing(method):
    """The lesion study deletes a block by keeping merge(shortcut) (Veit et al. 2016): on a net
    whose every branch starts at zero that is the block itself, so no deletion costs anything,
    and the routed path gradients run through the gates."""
    model = _net(method, depth=14)
    nn.init.normal_(model.classifier.weight)  # Fixup's starts at zero: give the logits a say
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, 8, 8, generator=generator)
    y = torch.randint(10, (24,), generator=generator)
    result = study_run(
        model, inputs=x, labels=y, train_inputs=x, train_labels=y, input_shape=(3, 8, 8),
        settings=LesionSettings(k_max=2, draws=1, paths=True, path_samples=1),
        about=dict(run="r", checkpoint="c", arch="resnet", depth=14, seed=0, data="d",
                   init="kaiming", norm="none", shortcut="A", classes=10, residual_init=method),
    )  # fmt: skip
    assert result.single_drops() and all(drop == 0 for drop in result.single_drops())
    assert result.paths is not None and result.residual_init == method


@pytest.mark.parametrize(
    "changes,needle",
    [
        ({"arch": "plain", "residual_init": "fixup"}, "plain nets have none"),
        ({"norm": "batch", "residual_init": "skipinit"}, "set model.norm=none"),
        ({"residual_init": "rezero", "zero_init_residual": True}, "drop zero_init_residual"),
        ({"arch": "preact", "residual_init": "fixup"}, "built for arch=resnet"),
        ({"residual_init": "magic"}, "unknown residual_init"),
    ],
)
def test_refusals_say_what_to_change(changes, needle):
    with pytest.raises(ModelConfigError, match=needle):
        build_model(**{"arch": "resnet", "depth": 8, "norm": "none", **changes})


def test_the_cli_refuses_fixup_on_a_plain_net_in_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, _, stderr = run_main(
        capsys, "train", "model=plain", "model.norm=none", "model.residual_init=fixup",
        "trainer.device=cpu",
    )  # fmt: skip
    lines = stderr.strip().splitlines()
    assert status != 0 and len(lines) == 1 and "Traceback" not in stderr, stderr
    assert "residual_init=fixup" in lines[0] and "plain" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_an_old_checkpoint_without_the_key_loads_as_residual_init_none(tmp_path):
    kwargs = {"arch": "resnet", "depth": 8, "norm": "none", "in_channels": 1}  # before the key
    model = build_model(**kwargs)
    save_checkpoint(
        tmp_path / "old.pt",
        {"model": model.state_dict(), "model_kwargs": kwargs, "classes": list("0123456789"),
         "normalization": {"mean": [0.5], "std": [0.2]}, "input_shape": [1, 8, 8],
         "epoch": 1, "step": 10},
    )  # fmt: skip
    loaded, info = load_checkpoint(tmp_path / "old.pt")
    assert "residual_init" not in info.model_kwargs
    assert all(isinstance(block.gate, nn.Identity) for block in loaded.blocks())
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model.eval()(x))


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_and_its_checkpoint_loads_back(train_run, method):
    run_dir = train_run(*TINY_RUN, f"model.residual_init={method}", epochs=1)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["residual_init"] == method
    assert math.isfinite(metrics["history"][-1]["train_loss"])
    model, info = load_checkpoint(run_dir)
    assert info.model_kwargs["residual_init"] == method
    x = torch.randn(2, *info.input_shape)
    assert torch.isfinite(model(x)).all()
    if method != "fixup":  # the gates moved off zero: the branches learn
        assert any(block.gate.gain.item() != 0 for block in model.blocks())


def test_cam_on_a_fixup_checkpoint_is_grad_cam(train_run):
    """On a GAP + linear net Grad-CAM equals CAM up to a positive factor (Selvaraju et al.):
    it does on Fixup's too, whose scalar bias before the classifier lies inside the features."""
    model, info = load_checkpoint(train_run(*TINY_RUN, "model.residual_init=fixup", epochs=1))
    assert model.feature_bias.bias.item() != 0  # it learned a bias the maps must include
    x = torch.randn(4, *info.input_shape)
    torch.testing.assert_close(compute_cam(model, x, "gradcam"), compute_cam(model, x, "cam"))


def _report_runs(norm: str, methods: tuple[str, ...], seeds: int = 2) -> list:
    return [
        replace(
            fake_run("resnet", 110, [0.5], [1.0, 1.0, 1.0], norm=norm, seed=seed),
            residual_init=method,
        )
        for method in methods
        for seed in range(seeds)
    ]


def test_the_report_groups_and_labels_runs_by_method():
    runs = _report_runs("none", ("rezero", "none", "skipinit", "fixup"))
    groups = group_runs(summarize_runs(runs))
    assert [g.label for g in groups] == [
        "resnet-110", "resnet-110 (fixup)", "resnet-110 (skipinit)", "resnet-110 (rezero)",
    ]  # fmt: skip
    assert [g.name for g in groups] == [g.label for g in groups]  # no prefix names the method
    assert all(g.seeds == [0, 1] for g in groups)
    # With batch norm in the mix too: the label says both, a method only where there is one.
    runs += _report_runs("batch", ("none",))
    labels = [g.label for g in group_runs(summarize_runs(runs))]
    assert labels[:2] == ["resnet-110 (BN)", "resnet-110 (no BN)"]
    assert labels[-1] == "resnet-110 (no BN, rezero)"
    # One gradient-profile panel per method (all at depth 110): none of them drawn over another.
    figure = draw.gradient_profile(groups)
    assert sorted(axis.get_title() for axis in figure.axes) == sorted(
        f"depth 110, residual_init {method}, 2 seeds"
        for method in ("none", "fixup", "skipinit", "rezero")
    )


def _lesion(method: str, arch: str = "resnet", seed: int = 0, drop: float = 0.01):
    blocks = [
        {"name": f"stage1.block{i}", "deleted": True, "changes_shape": False,
         "accuracy": 0.9 - drop, "drop": drop}
        for i in (1, 2, 3)
    ]  # fmt: skip
    return RunLesion(
        run=f"{arch}-{method}-{seed}", checkpoint="c", arch=arch, depth=20, seed=seed,
        data="digits", init="kaiming", norm="none", shortcut="A", classes=10, split="test",
        images=100, intact={"accuracy": 0.9}, blocks=blocks, k_curve={"points": []},
        residual_init=method,
    )  # fmt: skip


def test_lesion_groups_tell_the_methods_apart_and_each_meets_the_plain_net():
    runs = [_lesion("none", "plain", seed, drop=0.5) for seed in (0, 1)]
    runs += [_lesion(method, seed=seed) for method in ("fixup", "none") for seed in (0, 1)]
    groups = group_lesions(runs)
    assert [g.label for g in groups] == ["plain-20", "resnet-20", "resnet-20 (fixup)"]
    lines = lesion_findings(groups)
    for label in ("resnet-20", "resnet-20 (fixup)"):
        assert any(f"costs the plain net more than {label} " in line for line in lines), lines


def _with_signal(run, step_row: int, value: float):
    """`run` (with diagnostics) whose backward signal at the `step_row`-th logged step is
    `value` at every unit."""
    diagnostics = run.diagnostics
    values = diagnostics.backward_signal.values.copy()
    values[step_row] = value
    signal = replace(diagnostics.backward_signal, values=values)
    return replace(run, diagnostics=replace(diagnostics, backward_signal=signal))


def test_the_report_says_what_a_zero_or_a_diverged_signal_is_and_quotes_no_nan_accuracy():
    fixup = with_diagnostics(
        replace(fake_run("resnet", 110, [0.3], [1.0] * 7, norm="none"), residual_init="fixup"),
        init_signal=1.0,
        end_signal=3.0,
    )
    fixup = _with_signal(fixup, 0, 0.0)  # a zero classifier passes no gradient back at step 0
    # Diverged at step 2, before any epoch ended: no checkpoint, so its recorded test accuracy
    # is that of NaN weights.
    diverged = with_diagnostics(
        replace(fake_run("resnet", 110, [2.3], [1.0] * 7, norm="none", status="diverged"),
                history=[]),
        init_signal=1e5, end_signal=1.0, end_step=2,
    )  # fmt: skip
    diverged = _with_signal(diverged, -1, math.nan)
    summaries = summarize_runs([fixup, diverged])
    assert [(s.label, s.test_acc) for s in summaries] == [
        ("resnet-110", None), ("resnet-110 (fixup)", 0.9),
    ]  # fmt: skip
    lines = findings(summaries)
    [fixup_line] = [line for line in lines if line.startswith("resnet-110 (fixup): at init")]
    assert "no backward signal reaches any block (the classifier starts at zero)" in fixup_line
    [none_line] = [line for line in lines if line.startswith("resnet-110: at init")]
    assert "at step 2 the backward signal is not finite" in none_line
