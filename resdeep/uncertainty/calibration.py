"""Temperature scaling (Guo et al. 2017): one scalar T, fitted on the validation split by
minimising NLL, that divides the logits; the cheapest calibration there is, and the baseline MC
dropout has to beat.

resdeep keeps probabilities, not logits. softmax(z / T) equals p^(1/T) renormalised, because
log p and z differ by a per-input constant that the softmax cancels, so scaling works on the
saved probabilities exactly (probabilities that underflowed to 0 in float32 are floored at
1e-30, the only approximation; they carry no mass either way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from scipy.optimize import minimize_scalar

from resdeep.uncertainty.sampling import Predictions

LOG_FLOOR = math.log(1e-30)
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
    log_probs = probs.double().clamp_min(1e-30).log().clamp_min(LOG_FLOOR)
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


@dataclass
class Calibration:
    """Temperature scaling fitted on the validation split, applied to the scored split."""

    temperatures: tuple[float, float]  # (deterministic, MC dropout)
    val: Predictions
    val_labels: torch.Tensor
    scaled_deterministic: torch.Tensor  # (N, C) float64
    scaled_samples: torch.Tensor  # (N, T, C) float64


def calibrate_temperature(
    val: Predictions, val_labels: torch.Tensor, scored: Predictions
) -> Calibration:
    """One T for the deterministic pass and one for the MC average, each fitted on `val` only;
    the scored split chooses nothing."""
    deterministic, samples = val.deterministic.double().unsqueeze(1), val.samples.double()
    t_det = fit_temperature(deterministic, val_labels)
    t_mc = fit_temperature(samples, val_labels)
    return Calibration(
        temperatures=(t_det, t_mc),
        val=val,
        val_labels=val_labels,
        scaled_deterministic=scale(scored.deterministic, t_det),
        scaled_samples=scale(scored.samples, t_mc),
    )
