"""The diagnostics of a log point, each checked against an independent computation: autograd for
the backward signal, real optimizer steps for the relative update, the initial weights for step 0,
and the modules' hook tables for hooks that must not outlive a log step."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resdeep.config import compose_train_config
from resdeep.models import build_model, layer_responses, units, weight_layers
from resdeep.train.build import build_training
from resdeep.train.diagnostics import LayerDiagnostics
from resdeep.train.loop import heatmaps_due
from resdeep.train.progress import TrainingProgress
from resdeep.train.tensorboard import TensorBoardLogger
from tests.conftest import FAST

NETS = [
    ("plain", 8, "basic"),
    ("resnet", 8, "basic"),
    ("preact", 8, "basic"),
    ("preact", 11, "bottleneck"),
]


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(16, 3, 8, 8, generator=generator), torch.randint(
        10, (16,), generator=generator
    )


def _measure(model: torch.nn.Module, images, labels, loss_scale: float = 1.0):
    """One log point's diagnostics of a forward and backward, without an optimizer step."""
    diagnostics = LayerDiagnostics(model)
    with diagnostics.recording():
        loss = F.cross_entropy(model(images), labels)
        (loss * loss_scale).backward()
    diagnostics.end_backward(torch.tensor(loss_scale) if loss_scale != 1.0 else None)
    for parameter in model.parameters():  # what GradScaler.unscale_ does before the norms
        parameter.grad /= loss_scale
    diagnostics.grad_norms()
    diagnostics.before_step()
    return diagnostics.layout.split(diagnostics.values().tolist())


@pytest.mark.parametrize("arch,depth,block", NETS)
def test_the_backward_signal_is_autograds_gradient_at_each_unit_output(arch, depth, block):
    torch.manual_seed(0)
    model = build_model(arch, depth=depth, block=block).train()
    images, labels = _batch()
    point = _measure(model, images, labels)

    # Independently: keep every unit's output and ask autograd for the loss's gradient there.
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        module.register_forward_hook(lambda m, i, out, name=name: outputs.__setitem__(name, out))
        for name, module in units(model)
    ]
    loss = F.cross_entropy(model(images), labels)
    for handle in handles:
        handle.remove()
    names = [name for name, _ in units(model)]
    gradients = torch.autograd.grad(loss, [outputs[name] for name in names])
    expected = [gradient.norm().item() for gradient in gradients]
    assert names[0] == "stem" and len(names) == 1 + 3 * (
        (depth - 2) // (6 if block == "basic" else 9)
    )
    np.testing.assert_allclose(point.backward_signal, expected, rtol=1e-5)
    np.testing.assert_allclose(
        point.forward_std, [outputs[name].std().item() for name in names], rtol=1e-5
    )
    # A block's gain: the signal at its input (the previous unit's output) over at its output.
    np.testing.assert_allclose(
        point.backward_gain, np.array(expected[:-1]) / np.array(expected[1:]), rtol=1e-5
    )
    # The gradient norms are those of the weights' own gradients.
    np.testing.assert_allclose(
        point.grad_norm,
        [module.weight.grad.norm().item() for _, module in weight_layers(model)],
        rtol=1e-5,
    )
    assert point.relative_update == [0.0] * len(point.grad_norm)  # no step was taken


def test_layer_responses_are_taken_after_batch_norm_and_before_relu_or_addition():
    """He et al. 2015, Fig. 7: a post-activation block's conv2 response is its bn2 output (before
    the addition); a pre-activation branch ends on conv2, so that conv's own output."""
    torch.manual_seed(0)
    images, labels = _batch()
    for arch, conv, module_name in (
        ("resnet", "stage2.block1.conv2", "stage2.block1.bn2"),
        ("plain", "stage1.block1.conv1", "stage1.block1.bn1"),
        ("preact", "stage2.block1.conv2", "stage2.block1.conv2"),
        ("preact", "stage2.block1.conv1", "stage2.block1.bn2"),
    ):
        model = build_model(arch, depth=8).train()
        modules = dict(model.named_modules())
        seen: list[float] = []

        def keep_std(module, inputs, output, seen=seen) -> None:
            seen.append(output.detach().std().item())

        handle = modules[module_name].register_forward_hook(keep_std)
        point = _measure(model, images, labels)
        handle.remove()
        names = [name for name, _ in layer_responses(model)]
        assert point.layer_response[names.index(conv)] == pytest.approx(seen[0], rel=1e-5)


def test_a_scaled_loss_gives_the_same_diagnostics():
    """fp16 scales the loss before backward; the signal is divided by that scale again."""
    images, labels = _batch()
    points = []
    for scale in (1.0, 1024.0):
        torch.manual_seed(0)
        points.append(_measure(build_model("resnet", depth=8).train(), images, labels, scale))
    np.testing.assert_allclose(points[1].backward_signal, points[0].backward_signal, rtol=1e-5)
    np.testing.assert_allclose(points[1].grad_norm, points[0].grad_norm, rtol=1e-5)


def test_no_hook_exists_between_log_points_or_after_one(tmp_path):
    cfg = compose_train_config([*FAST, "trainer.epochs=1", "trainer.log_every=3"])
    loop = build_training(cfg, tmp_path).loop
    model = loop.model
    hooks_per_step: list[int] = []

    def count_hooks(module, inputs):
        hooks_per_step.append(sum(len(m._forward_hooks) for m in model.modules() if m is not model))

    observer = model.register_forward_pre_hook(count_hooks)
    with TrainingProgress(loop.settings.total_steps, 0, "lines") as progress:
        loop.train_epoch(1, progress)
    observer.remove()
    loop.close()
    log_steps = [step for step in range(1, 11) if loop.should_log(1, step)]
    assert log_steps == [1, 3, 6, 9]
    hooked = [step for step, count in enumerate(hooks_per_step, start=1) if count]
    assert hooked == log_steps  # hooks while a log step runs, at no other step
    assert len(hooks_per_step) == 10
    assert all(not m._forward_hooks for m in model.modules() if m is not model)
    assert all(not m._backward_hooks for m in model.modules())


@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_relative_update_is_the_step_the_optimizer_took(optim, tmp_path):
    """Three real steps (momentum and Adam's moments have history from the second on): the
    logged relative update of each equals ‖W_after − W_before‖ / ‖W_before‖ recorded around
    the optimizer's own step, and step 0 holds the weights as initialised."""
    cfg = compose_train_config([*FAST, f"optim={optim}", "trainer.epochs=1", "trainer.log_every=1"])
    loop = build_training(cfg, tmp_path).loop
    weights = [module.weight for _, module in weight_layers(loop.model)]
    initial = [w.detach().norm().item() for w in weights]
    before: list[torch.Tensor] = []
    expected: list[list[float]] = []
    loop.optimizer.register_step_pre_hook(
        lambda *_: before.__setitem__(slice(None), [w.detach().clone() for w in weights])
    )
    loop.optimizer.register_step_post_hook(
        lambda *_: expected.append(
            [
                ((w.detach() - b).norm() / b.norm()).item()
                for w, b in zip(weights, before, strict=True)
            ]
        )
    )
    with TrainingProgress(3, 0, "lines") as progress:
        loop.train_epoch(1, progress, replace(loop.settings, log_every=1, total_steps=3))
    loop.close()
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    names = loop.diagnostics.layout.layer_names
    logged = {
        step: [
            events.Scalars(f"relative_update/{i:03d}_{name}")[step].value
            for i, name in enumerate(names)
        ]
        for step in (1, 2, 3)
    }
    for step in (1, 2, 3):
        np.testing.assert_allclose(logged[step], expected[step - 1], rtol=1e-4)
        assert all(value > 0 for value in logged[step])
    # Step 0: before any update. Its weight norms are the initial weights', no update yet.
    weight_norms_at_0 = [
        events.Scalars(f"weight_norm/{i:03d}_{name}")[0] for i, name in enumerate(names)
    ]
    assert {event.step for event in weight_norms_at_0} == {0}
    np.testing.assert_allclose([e.value for e in weight_norms_at_0], initial, rtol=1e-6)
    first_update = events.Scalars(f"relative_update/000_{names[0]}")[0]
    assert first_update.step == 0 and math.isnan(first_update.value)


def test_modules_replaced_after_construction_are_still_measured():
    """SyncBatchNorm (trainer.sync_bn) swaps a net's BN modules after the loop is built: the
    diagnostics find modules by name when they hook them, so the new ones are measured."""
    torch.manual_seed(0)
    model = build_model("resnet", depth=8).train()
    diagnostics = LayerDiagnostics(model)
    model.stage1.block1.bn2 = torch.nn.BatchNorm2d(16)  # as convert_sync_batchnorm would
    images, labels = _batch()
    with diagnostics.recording():
        F.cross_entropy(model(images), labels).backward()
    diagnostics.end_backward(None)
    diagnostics.grad_norms()
    diagnostics.before_step()
    point = diagnostics.layout.split(diagnostics.values().tolist())
    assert all(math.isfinite(v) and v > 0 for v in point.layer_response)
    assert not model.stage1.block1.bn2._forward_hooks


def test_a_non_finite_gradient_has_no_update():
    """What fp16's GradScaler skips: a step whose gradients are not finite logs NaN as its
    relative update, not a zero that would read as a frozen layer."""
    model = build_model("plain", depth=8).train()
    diagnostics = LayerDiagnostics(model)
    images, labels = _batch()
    F.cross_entropy(model(images), labels).backward()
    model.stem.conv.weight.grad[0, 0, 0, 0] = float("inf")
    diagnostics.grad_norms()
    diagnostics.before_step()
    point = diagnostics.layout.split(diagnostics.values().tolist())
    assert all(math.isnan(v) for v in point.relative_update)


def test_log_steps_run_the_eager_module_and_the_others_the_compiled_one(tmp_path):
    """torch.compile wraps the net in a module whose `_orig_mod` is the net itself: a log step
    runs that (the hooks see every activation), every other step the compiled wrapper."""

    class Compiled(torch.nn.Module):  # what torch.compile returns, minus the compiling
        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self._orig_mod = net
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return self._orig_mod(x)

    cfg = compose_train_config([*FAST, "trainer.epochs=1", "trainer.log_every=4"])
    loop = build_training(cfg, tmp_path).loop
    loop.train_model = Compiled(loop.model)
    with TrainingProgress(loop.settings.total_steps, 0, "lines") as progress:
        loop.train_epoch(1, progress)
    loop.close()
    log_steps = [step for step in range(1, 11) if loop.should_log(1, step)]
    assert log_steps == [1, 4, 8]
    assert loop.train_model.calls == 10 - len(log_steps)
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    events.Reload()
    signal = events.Scalars("backward_signal/000_stem")
    assert [e.step for e in signal] == [0, 1, 4, 8] and all(e.value > 0 for e in signal)


def test_a_scaled_loss_in_the_loop_gives_the_unscaled_diagnostics(tmp_path):
    """The loop's own order with a GradScaler (as fp16 uses): the backward signal divided by
    the loss scale that backward used, norms of unscaled gradients, the same update."""
    points = {}
    for name, scale in (("plain", None), ("scaled", 2.0**10)):
        cfg = compose_train_config(
            [*FAST, "trainer.epochs=1", "trainer.log_every=1", "trainer.deterministic=true"]
        )
        loop = build_training(cfg, tmp_path / name).loop
        if scale is not None:
            loop.scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        with TrainingProgress(2, 0, "lines") as progress:
            loop.train_epoch(1, progress, replace(loop.settings, log_every=1, total_steps=2))
        loop.close()
        events = EventAccumulator(str(tmp_path / name), size_guidance={"scalars": 0})
        events.Reload()
        points[name] = {
            tag: [e.value for e in events.Scalars(tag)]
            for tag in events.Tags()["scalars"]
            if tag.startswith(("backward_signal/", "grad_norm/", "relative_update/"))
        }
    assert points["plain"].keys() == points["scaled"].keys()
    for tag, values in points["plain"].items():
        np.testing.assert_allclose(points["scaled"][tag], values, rtol=1e-4, err_msg=tag)


def test_heatmaps_are_drawn_at_epochs_1_2_4_8_and_the_last():
    assert [epoch for epoch in range(1, 13) if heatmaps_due(epoch, final=False)] == [1, 2, 4, 8]
    assert heatmaps_due(5, final=True)


def test_a_resumed_logger_continues_the_heatmaps_from_the_earlier_log_points(tmp_path):
    layout = LayerDiagnostics(build_model("plain", depth=8)).layout
    first = TensorBoardLogger(tmp_path, layout, None)
    for step in (0, 1, 10, 20):
        first.diagnostics(layout.split([float(step + 1)] * len(layout)), step)
    first.close()
    resumed = TensorBoardLogger(tmp_path, layout, purge_step=11)  # resumed from step 10
    resumed.close()
    assert resumed.history_steps == [0, 1, 10]  # step 20 will be written again
    np.testing.assert_allclose(resumed.history["backward_signal"][-1], np.log10(11.0))
