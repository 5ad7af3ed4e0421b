"""Which mechanism a run's diagnostics show: a backward signal that explodes at initialisation,
layers frozen by the growth of their own weights, a signal that vanishes, or none of these.

In deep plain nets with batch norm the stages come in that order (measured on digits, the same on
28x28 MNIST): at initialisation the backward signal ‖∂L/∂x‖ grows toward the input, exponentially
in depth; the first updates blow the early weights up; batch norm makes a conv's output
independent of its weight scale, so its gradient shrinks as 1/‖W‖ and its relative update as
1/‖W‖², and those layers freeze; only then does the signal vanish. Without batch norm, small
initialisations (Xavier, PyTorch's default) make the signal vanish from the first step, the
classical picture of products of small weights. Pure functions of the logged numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from resdeep.report.reading import Diagnostics, GradNorms


@dataclass(frozen=True)
class Thresholds:
    """Where each mechanism starts, with the reason for each number."""

    # Backward signal at the stem over at the last block, at initialisation. Healthy layers take
    # relative updates of ~1e-3, so a signal 1e4x larger at the input makes the early layers'
    # first updates many times their own weights. Measured on digits: plain-56 starts at
    # ~3e3x and its weights grow at most ~7x; plain-110 at ~5e6x, and its early weights grow
    # 1e3-1e4x within the first steps.
    exploding: float = 1e4
    # The forward signal: the std of the last block's output over the stem's, at initialisation.
    # 100x gives logits of order 100 and a first loss whose gradient step overshoots: resnet-56
    # without BN under Kaiming init starts at 500-1,500x and has NaN from its second step. With
    # BN plain nets stay at ~1x and residual ones grow ~√(blocks): 2.4x at depth 20, 6x at 110.
    forward_exploding: float = 100.0
    # The same ratio at or below 1e-2: the stem receives a hundredth of the signal that left the
    # last block (residual nets on digits: 5-60x *more*, at initialisation and at the end).
    vanishing: float = 1e-2
    # A conv whose weight norm grew tenfold: under batch norm its relative gradient is then a
    # hundredth of what it was (∝ 1/‖W‖²). Residual nets' weights stay within ~1.2x.
    grown: float = 10.0
    # Frozen: a relative gradient ‖∂L/∂W‖ / ‖W‖ at or below 1e-6 at the end. At lr 0.02 with
    # momentum 0.9 it moves the weight by ~2e-7 of its size a step: millions of steps to change
    # it, while learning layers sit at 1e-3 to 1e-2. The gradient, not the update, decides:
    # with weight decay an update never falls below lr * wd / (1 - momentum) of the weight
    # (1e-5 at lr 0.01, wd 1e-4), even in a layer the loss no longer moves.
    frozen: float = 1e-6
    # Updates are quoted at the last log point whose learning rate is at least this fraction
    # of the run's peak: late in training, before a decaying schedule shrinks every update.
    judged_lr_fraction: float = 0.5


THRESHOLDS = Thresholds()

FORWARD_EXPLODING = "forward signal exploding at initialisation"
EXPLODING = "exploding at initialisation"
VANISHING_FROM_START = "vanishing from initialisation"
FROZEN = "frozen by weight growth"
VANISHING = "vanishing"
HEALTHY = "healthy"
SHORT_LABELS = {
    FORWARD_EXPLODING: "forward exploding",
    EXPLODING: "exploding",
    VANISHING_FROM_START: "vanishing from the start",
    FROZEN: "frozen",
    VANISHING: "vanishing",
    HEALTHY: "healthy",
}


@dataclass(frozen=True)
class Mechanism:
    """One run's diagnostics reduced to what the verdict rests on. "Convs" are every weight
    layer but the classifier; growth is a weight norm at the end over at initialisation."""

    init_step: int  # the net as initialised (step 0)
    end_step: int  # the last log point
    update_step: int  # where relative updates are quoted
    blocks: int
    convs: int
    forward_growth: float  # std of the last block's output over the stem's, at init_step
    # The largest backward signal at init_step: 0 when none reaches any unit (a classifier that
    # starts at zero, as Fixup's does), and then no ratio of signals is defined.
    init_signal_max: float
    init_growth: float  # backward signal at the stem over at the last block, at init_step
    end_growth: float  # the same at end_step
    first_update_max: float  # the largest relative update of the first step, over the convs
    first_conv_growth: float
    max_growth: float  # over the convs
    first_conv_relative_grad: float  # ‖∂L/∂W‖ / ‖W‖ at end_step
    relative_grad_min: float  # over the convs, at end_step
    relative_grad_max: float
    stalled: int  # convs whose relative gradient is <= THRESHOLDS.frozen, grown or not
    frozen: int  # those of them grown >= THRESHOLDS.grown: frozen by their own weights' growth
    update_min: float  # relative update over the convs at update_step
    update_max: float

    @property
    def init_gain(self) -> float:
        """Geometric mean of the blocks' backward gains at initialisation."""
        return _per_block(self.init_growth, self.blocks)

    def labels(self, thresholds: Thresholds = THRESHOLDS) -> list[str]:
        """The mechanisms these numbers show, in the order they happen; [HEALTHY] if none."""
        found = []
        if self.forward_growth >= thresholds.forward_exploding:
            found.append(FORWARD_EXPLODING)
        if self.init_growth >= thresholds.exploding:
            found.append(EXPLODING)
        if self.init_growth <= thresholds.vanishing:
            found.append(VANISHING_FROM_START)
        if self.frozen:
            found.append(FROZEN)
        if self.end_growth <= thresholds.vanishing and VANISHING_FROM_START not in found:
            found.append(VANISHING)
        return found or [HEALTHY]


def diagnose(
    diagnostics: Diagnostics, grads: GradNorms, thresholds: Thresholds = THRESHOLDS
) -> Mechanism | None:
    """The mechanism numbers of one run, or None when it logged too little (no step after 0,
    no block)."""
    steps = diagnostics.steps
    if len(steps) < 2 or len(diagnostics.backward_signal.names) < 2 or steps[-1] not in grads.steps:
        return None
    init_step, end_step = steps[0], steps[-1]
    signal = diagnostics.backward_signal
    convs = conv_columns(diagnostics.weight_norm.names)
    first_step = next(step for step in steps if step > 0)
    update_step = judged_step(diagnostics, thresholds)
    growth = weight_growth(diagnostics)
    relative_grad = relative_gradient(diagnostics, grads, end_step)
    updates = diagnostics.relative_update.at(update_step)[convs]
    with np.errstate(invalid="ignore"):
        stalled = relative_grad <= thresholds.frozen
        frozen = int(np.sum(stalled & (growth >= thresholds.grown)))
    return Mechanism(
        init_step=init_step,
        end_step=end_step,
        update_step=update_step,
        blocks=len(signal.names) - 1,
        convs=len(growth),
        forward_growth=_ratio(
            diagnostics.forward_std.at(init_step)[-1], diagnostics.forward_std.at(init_step)[0]
        ),
        init_signal_max=_nanmax(signal.at(init_step)),
        init_growth=_ratio(signal.at(init_step)[0], signal.at(init_step)[-1]),
        end_growth=_ratio(signal.at(end_step)[0], signal.at(end_step)[-1]),
        first_update_max=_nanmax(diagnostics.relative_update.at(first_step)[convs]),
        first_conv_growth=float(growth[0]),
        max_growth=_nanmax(growth),
        first_conv_relative_grad=float(relative_grad[0]),
        relative_grad_min=_nanmin(relative_grad),
        relative_grad_max=_nanmax(relative_grad),
        stalled=int(np.sum(stalled)),
        frozen=frozen,
        update_min=_nanmin(updates),
        update_max=_nanmax(updates),
    )


# ---- per conv layer: what the verdict and the figures rest on --------------------------------


def conv_columns(layer_names: list[str]) -> list[int]:
    """The weight layers batch norm acts on: every one but the linear classifier."""
    return [index for index, name in enumerate(layer_names) if name != "classifier"]


def weight_growth(diagnostics: Diagnostics) -> np.ndarray:
    """Each conv's weight norm at the last log point over at initialisation."""
    weights = diagnostics.weight_norm
    first, last = diagnostics.steps[0], diagnostics.steps[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (weights.at(last) / weights.at(first))[conv_columns(weights.names)]


def relative_gradient(diagnostics: Diagnostics, grads: GradNorms, step: int) -> np.ndarray:
    """Each conv's ‖∂L/∂W‖ / ‖W‖ at `step`, the gradient norms matched to the weights by name."""
    weights = diagnostics.weight_norm
    column = {name: index for index, name in enumerate(grads.layer_names)}
    gradient = grads.norms[grads.steps.index(step)]
    matched = np.array(
        [gradient[column[name]] if name in column else math.nan for name in weights.names]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return (matched / weights.at(step))[conv_columns(weights.names)]


def judged_step(diagnostics: Diagnostics, thresholds: Thresholds = THRESHOLDS) -> int:
    """The last log point after step 0 whose learning rate is at least
    `judged_lr_fraction` of the run's peak (the last log point when no rate was logged)."""
    steps = [step for step in diagnostics.steps if step > 0]
    rates = {step: diagnostics.lr[step] for step in steps if step in diagnostics.lr}
    if not rates:
        return steps[-1]
    peak = max(rates.values())
    return max(step for step, rate in rates.items() if rate >= thresholds.judged_lr_fraction * peak)


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else math.nan


def _per_block(growth: float, blocks: int) -> float:
    if growth == 0:  # the signal underflowed to zero on its way to the stem
        return 0.0
    return growth ** (1 / blocks) if growth > 0 and math.isfinite(growth) else math.nan


def _nanmin(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.min()) if finite.size else math.nan


def _nanmax(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size else math.nan
