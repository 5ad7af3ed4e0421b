"""What a log point measures besides the loss, to tell a gradient that explodes from one that
vanishes and from a layer that is frozen.

- per weight layer (every conv and linear, network order): the gradient norm ‖∂L/∂W‖, the
  weight norm ‖W‖ the gradient was taken at, and the relative update ‖ΔW‖ / ‖W‖ of the step the
  optimizer then took;
- per unit (the stem and every block): the backward signal ‖∂L/∂x‖ at its output, and the
  standard deviation of that output (the forward signal);
- per conv: the standard deviation of its response, after BN and before ReLU or addition (He
  et al. 2015, Fig. 7).

The hooks that see activations exist only while a log step's forward and backward run
(`recording`); between log points the net runs without them. Every number stays on the device
and comes back in the loop's one host copy of the log point (`LayerDiagnostics.values`). Under
DDP the gradient norms are of the gradients averaged over ranks; the signals and stds are those
of rank 0's own batch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import nn

from resdeep.models import layer_responses, units, weight_layers

# The quantities, in the order of their blocks in `LayerDiagnostics.values`.
LAYER_QUANTITIES = ("grad_norm", "weight_norm", "relative_update")  # per weight layer
UNIT_QUANTITIES = ("backward_signal", "forward_std")  # per unit
RESPONSE_QUANTITIES = ("layer_response",)  # per conv


@dataclass(frozen=True)
class DiagnosticsLayout:
    """Which layer, unit or conv each number of a log point belongs to."""

    layer_names: list[str]
    unit_names: list[str]
    response_names: list[str]

    def sizes(self) -> list[int]:
        return (
            [len(self.layer_names)] * len(LAYER_QUANTITIES)
            + [len(self.unit_names)] * len(UNIT_QUANTITIES)
            + [len(self.response_names)] * len(RESPONSE_QUANTITIES)
        )

    def __len__(self) -> int:
        return sum(self.sizes())

    def split(self, values: Sequence[float]) -> LogPoint:
        """The flat numbers of one log point (host floats) -> one list per quantity."""
        parts, start = {}, 0
        for name, size in zip(
            LAYER_QUANTITIES + UNIT_QUANTITIES + RESPONSE_QUANTITIES, self.sizes(), strict=True
        ):
            parts[name] = [float(v) for v in values[start : start + size]]
            start += size
        return LogPoint(**parts)


@dataclass(frozen=True)
class LogPoint:
    """One log point's measurements, each list in network order: those of step s are taken
    before its update (gradient, weights, signals), and the relative update is that update's.
    NaN marks what was not measured: the update at step 0."""

    grad_norm: list[float]
    weight_norm: list[float]
    relative_update: list[float]
    backward_signal: list[float]
    forward_std: list[float]
    layer_response: list[float]

    def before_update(self) -> LogPoint:
        """This point without the update it went on to take: the state the step started from."""
        return replace(self, relative_update=[math.nan] * len(self.relative_update))

    @property
    def backward_gain(self) -> list[float]:
        """Per block: ‖∂L/∂x‖ at its input over ‖∂L/∂x‖ at its output, the factor by which the
        block multiplies the backward signal (a product of weights w_l in a plain net without
        BN, w_l + 1 with an identity shortcut)."""
        signal = self.backward_signal
        return [
            _ratio(before, after) for before, after in zip(signal[:-1], signal[1:], strict=True)
        ]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


class LayerDiagnostics:
    """Measures one model at log points; see the module docstring for what.

    A log step runs: `with recording(): forward, backward`, then `end_backward(loss_scale)`,
    `grad_norms()` once the gradients are unscaled, `before_step()`, the optimizer step, and
    `values()`: one flat device tensor, `layout` says what each number is.
    """

    def __init__(self, model: nn.Module) -> None:
        self._model = model
        layers = weight_layers(model)
        self._weights: list[torch.Tensor] = [module.weight for _, module in layers]
        # Modules are kept by name and looked up when hooked: SyncBatchNorm replaces a net's
        # batch-norm modules after this is built.
        module_names = {module: name for name, module in model.named_modules()}
        self._unit_modules = [name for name, _ in units(model)]
        self._response_modules = [module_names[module] for _, module in layer_responses(model)]
        self.layout = DiagnosticsLayout(
            layer_names=[name for name, _ in layers],
            unit_names=self._unit_modules,
            response_names=[name for name, _ in layer_responses(model)],
        )
        self._reset()

    def _reset(self) -> None:
        nan = math.nan
        self._signal: list[torch.Tensor | float] = [nan] * len(self._unit_modules)
        self._forward_std: list[torch.Tensor | float] = [nan] * len(self._unit_modules)
        self._response_std: list[torch.Tensor | float] = [nan] * len(self._response_modules)
        self._grad_norms: torch.Tensor | None = None
        self._before: list[torch.Tensor] | None = None

    # ---- activations: hooks for one forward and backward --------------------------------
    @contextmanager
    def recording(self) -> Iterator[None]:
        """Forward hooks on every unit and response module for the duration of the block, and
        through them a tensor hook on every unit output for its gradient. All are gone on exit
        (the tensor hooks with the activations they sit on), whatever happens inside."""
        self._reset()
        modules = dict(self._model.named_modules())
        handles = [
            modules[name].register_forward_hook(partial(self._unit_output, index))
            for index, name in enumerate(self._unit_modules)
        ]
        handles += [
            modules[name].register_forward_hook(partial(self._response_output, index))
            for index, name in enumerate(self._response_modules)
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _unit_output(self, index: int, module: nn.Module, inputs: Any, output: Any) -> None:
        # The std is taken now: an in-place ReLU downstream could change the tensor later.
        self._forward_std[index] = output.detach().float().std()
        if output.requires_grad:
            output.register_hook(partial(self._unit_gradient, index))

    def _unit_gradient(self, index: int, gradient: torch.Tensor) -> None:
        self._signal[index] = gradient.detach().float().norm()

    def _response_output(self, index: int, module: nn.Module, inputs: Any, output: Any) -> None:
        self._response_std[index] = output.detach().float().std()

    def end_backward(self, loss_scale: torch.Tensor | None) -> None:
        """Divide the backward signal by the loss scale of mixed precision (fp16's GradScaler),
        while that scale is still the one the backward pass used."""
        if loss_scale is not None:
            self._signal = [value / loss_scale for value in self._signal]

    # ---- weights: gradients, norms and the step taken ------------------------------------
    def grad_norms(self) -> torch.Tensor:
        """‖∂L/∂W‖ of every weight layer (unscaled gradients) in one grouped (foreach) kernel,
        on the device; zero for a layer without a gradient."""
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in self._weights]
        self._grad_norms = torch.stack(torch._foreach_norm(grads)).float()
        return self._grad_norms

    def before_step(self) -> None:
        """Keep the weights the optimizer is about to change."""
        self._before = [w.detach().clone() for w in self._weights]

    def values(self) -> torch.Tensor:
        """Every number of this log point, flat, on the device, in `layout`'s order.

        The relative update is measured, not modelled: the weights after the optimizer step
        minus those kept by `before_step`. For SGD with momentum that step is
        lr * (momentum buffer + weight decay * W), for Adam lr * m_hat / (sqrt(v_hat) + eps),
        and AdamW adds its decoupled decay lr * wd * W; differencing includes each exactly. A
        step with a non-finite gradient, which fp16's GradScaler skips, has no update: NaN.
        """
        if self._grad_norms is None or self._before is None:
            raise RuntimeError("grad_norms() and before_step() must run before values()")
        weights = [w.detach() for w in self._weights]
        weight_norms = torch.stack(torch._foreach_norm(self._before)).float()
        steps = torch.stack(torch._foreach_norm(torch._foreach_sub(weights, self._before)))
        relative = steps.float() / weight_norms
        skipped = ~torch.isfinite(self._grad_norms).all()  # decided on the device, no sync
        relative = torch.where(skipped, torch.full_like(relative, math.nan), relative)
        # A unit that saw no gradient keeps NaN; made on the device, where a host float would
        # be copied over and wait for the device.
        missing = torch.full((), math.nan, device=weight_norms.device)
        per_unit = [
            torch.stack([v.float() if isinstance(v, torch.Tensor) else missing for v in series])
            for series in (self._signal, self._forward_std, self._response_std)
            if series
        ]
        self._before = None
        return torch.cat([self._grad_norms, weight_norms, relative, *per_unit])
