"""Temperature scaling (Guo et al. 2017): one scalar T, fitted on the validation split by
minimising NLL, that divides the logits; the cheapest calibration there is, and the baseline MC
dropout has to beat.

resdeep keeps probabilities, not logits. softmax(z / T) equals p^(1/T) renormalised, because
log p and z differ by a per-input constant that the softmax cancels, so scaling works on the
saved probabilities exactly (probabilities that underflowed to 0 in float32 are floored at
ZERO_AT, 1e-30, the only approximation; they carry no mass either way).

`TemperatureScaled` wraps any method: its probabilities, tempered by the T fitted on its own
validation probabilities, in the same (N, T, C) shape.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from scipy.optimize import minimize_scalar

from resdeep.logscale import ZERO_AT
from resdeep.uncertainty.methods import UncertaintyMethod

LOG_FLOOR = math.log(ZERO_AT)
# T between 1/20 and 20: a wider search only finds degenerate optima on tiny splits.
LOG_T_BOUNDS = (-math.log(20.0), math.log(20.0))
# With fewer mistakes than this on the validation split, NLL is lowered by sharpening without
# end: the fitted T says more about the split than about the model (seen on digits 0-4).
FEW_MISTAKES = 5


def fit_warning(
    val_deterministic: torch.Tensor, val_labels: torch.Tensor, temperature: float
) -> str | None:
    """One sentence when a fitted T should not be trusted: too few validation mistakes to fit
    on, or T at the search's bound."""
    mistakes = int((val_deterministic.argmax(dim=1) != val_labels).sum())
    at_bound = min(abs(math.log(temperature) - b) for b in LOG_T_BOUNDS) < 1e-3
    if mistakes >= FEW_MISTAKES and not at_bound:
        return None
    reasons = []
    if mistakes < FEW_MISTAKES:
        reasons.append(f"the {len(val_labels)} validation images hold {mistakes} mistake(s)")
    if at_bound:
        reasons.append(f"T = {temperature:.3g} is at the search's bound")
    return (
        f"temperature scaling is unreliable here: {' and '.join(reasons)}; "
        "a larger data.val_size gives it more to fit"
    )


def scale(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log(probs) / T) over the last dimension: (..., C) -> (..., C), float64."""
    log_probs = probs.double().clamp_min(ZERO_AT).log().clamp_min(LOG_FLOOR)
    return torch.softmax(log_probs / temperature, dim=-1)


def nll_of_mean(samples: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    """NLL of the mean over T samples (N, T, C) of the tempered probabilities."""
    mean = scale(samples, temperature).mean(dim=1)
    true = mean.gather(1, labels.view(-1, 1)).clamp_min(1e-12)
    return -true.log().mean().item()


def fit_temperature(samples: torch.Tensor, labels: torch.Tensor) -> float:
    """T minimising the NLL of the mean tempered prediction on (N, T, C) samples (T = 1 for
    one deterministic pass per input): a bounded 1-D search over log T."""
    result = minimize_scalar(
        lambda log_t: nll_of_mean(samples, labels, math.exp(log_t)),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-4},
    )
    return math.exp(float(result.x))


# Names of the tempered version of a method, by the method's name: (name, label, column).
TEMPERED_NAMES = {
    "deterministic": ("temperature_scaled", "temperature scaled", "temp. scaled"),
    "mc_dropout": ("mc_dropout_temperature_scaled", "MC dropout + temperature", "MC + temp."),
}


class TemperatureScaled(UncertaintyMethod):
    """A method's probabilities tempered by one T, fitted on the validation split only, so the
    scored split chooses nothing; it costs what the method costs."""

    def __init__(
        self,
        base: UncertaintyMethod,
        temperature: float,
        val_probs: torch.Tensor,
        val_labels: torch.Tensor,
    ) -> None:
        self.base, self.temperature = base, temperature
        self.val_probs, self.val_labels = val_probs, val_labels  # what T was fitted on
        fallback = (f"{base.name}_temperature_scaled", f"{base.label} + temperature", base.label)
        self.name, self.label, short = TEMPERED_NAMES.get(base.name, fallback)
        self.column = f"{short} (τ={temperature:.2f})"
        self.single_pass = base.single_pass

    @classmethod
    def fit(
        cls, base: UncertaintyMethod, val_images: torch.Tensor, val_labels: torch.Tensor, seed: int
    ) -> TemperatureScaled:
        """The T minimising the NLL of `base`'s mean prediction on the val images."""
        val_probs = base(val_images, seed)
        return cls(base, fit_temperature(val_probs.double(), val_labels), val_probs, val_labels)

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        return scale(self.base(images, seed), self.temperature)

    def cost(self) -> dict[str, int]:
        return self.base.cost()

    def warning(self) -> str | None:
        return fit_warning(self.val_probs.mean(dim=1), self.val_labels, self.temperature)


def temperature_summary(tempered: list[TemperatureScaled]) -> dict[str, Any]:
    """The JSON's `temperature`: each fitted T by the name of the method it tempers, and the
    warning about the first one's fit (the single pass's, whose mistakes T was fitted on)."""
    first = tempered[0]
    return {
        "fitted_on": "val",
        "n": len(first.val_labels),
        **{method.base.name: method.temperature for method in tempered},
        "warning": first.warning(),
    }
