"""The diagnostics of a log point, each checked against an independent computation: autograd for
the backward signal, real optimizer steps for the relative update, the initial weights for step 0,
and the modules' hook tables for hooks that must not outlive a log step."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from resdeep.experiment import compose_train_config
from resdeep.models import build_model, layer_responses, units, weight_layers
from resdeep.train.build import build_training
from resdeep.train.diagnostics import LayerDiagnostics
from resdeep.train.progress import TrainingProgress
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
        loop.train_steps(3, 1, progress)
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
