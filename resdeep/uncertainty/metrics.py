"""Uncertainty metrics: pure functions on probability tensors, no models, no files.

Shapes: `probs` (N, C) is one distribution per input (the deterministic softmax or the MC mean
p̄), `samples` (N, T, C) the T stochastic softmaxes per input, `labels` (N,) int64. Scores are
oriented as uncertainties: higher means "more likely wrong" or "more likely out of
distribution", so max-probability enters as 1 - max p.

Callers pass float64 tensors made from the float32 probabilities they save, so every number can
be recomputed from the saved file to ~1e-12. torchmetrics computes what it has (calibration
error, AUROC, average precision, the ROC curve); the rest is a few lines each.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_roc,
    multiclass_calibration_error,
)

# log p̄_y of a float32 softmax can underflow to log 0; clamping keeps NLL finite (and JSON valid).
NLL_FLOOR = 1e-12
TPR_SLACK = 1e-6


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy in nats over the last dimension, with 0 log 0 = 0."""
    return -torch.special.xlogy(probs, probs).sum(dim=-1)


def mean_probs(samples: torch.Tensor) -> torch.Tensor:
    """p̄: the MC-dropout predictive distribution, (N, T, C) -> (N, C)."""
    return samples.mean(dim=1)


def predictive_entropy(samples: torch.Tensor) -> torch.Tensor:
    """H[p̄] per input, (N,): total uncertainty."""
    return entropy(mean_probs(samples))


def expected_entropy(samples: torch.Tensor) -> torch.Tensor:
    """mean_t H[p_t] per input, (N,): the aleatoric part."""
    return entropy(samples).mean(dim=1)


def mutual_information(samples: torch.Tensor) -> torch.Tensor:
    """BALD, H[p̄] - mean_t H[p_t] per input, (N,): the epistemic part, >= 0.

    The difference of two nearly equal sums leaves float error of either sign, so tiny negatives
    are clamped to 0; inputs whose T samples agree exactly get exactly 0 (a mean of identical
    values is not always bit-identical to them, so the subtraction alone would not promise it).
    """
    information = (predictive_entropy(samples) - expected_entropy(samples)).clamp_(min=0.0)
    agree = (samples == samples[:, :1]).flatten(1).all(dim=1)
    return information.masked_fill_(agree, 0.0)


def variation_ratio(samples: torch.Tensor) -> torch.Tensor:
    """1 - (votes for the modal class) / T per input, (N,): how often the samples disagree."""
    votes = samples.argmax(dim=-1)  # (N, T)
    counts = torch.zeros(
        samples.shape[0], samples.shape[2], dtype=torch.int64, device=samples.device
    ).scatter_add_(1, votes, torch.ones_like(votes))  # (N, C) votes per class
    return 1.0 - counts.max(dim=1).values.to(samples.dtype) / samples.shape[1]


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> float:
    return (probs.argmax(dim=1) == labels).double().mean().item()


def nll(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """-mean log p_y, with p_y floored at NLL_FLOOR."""
    true_class = probs.gather(1, labels[:, None]).squeeze(1)
    return -true_class.clamp(min=NLL_FLOOR).log().mean().item()


def brier(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """mean_n Σ_c (p_c - y_c)^2 with y one-hot: 0 is perfect, 2 is confidently wrong."""
    one_hot = torch.nn.functional.one_hot(labels, probs.shape[1]).to(probs.dtype)
    return (probs - one_hot).square().sum(dim=1).mean().item()


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """ECE: Σ_b (n_b / N) |accuracy_b - confidence_b| over `bins` equal-width confidence bins.

    torchmetrics' binning: bin b holds confidences in [b/bins, (b+1)/bins), and a confidence of
    exactly 1.0 (common for float32 softmaxes) falls in a bin of its own.
    """
    return multiclass_calibration_error(
        probs, labels, num_classes=probs.shape[1], n_bins=bins, norm="l1"
    ).item()


def reliability_bins(
    probs: torch.Tensor, labels: torch.Tensor, bins: int = 15
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean confidence, accuracy, count) per equal-width bin, for a reliability diagram.

    Confidence 1.0 is drawn in the top bin; empty bins have confidence and accuracy 0.
    """
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).to(probs.dtype)
    index = (confidence * bins).long().clamp_(0, bins - 1)
    count = torch.zeros(bins, dtype=probs.dtype).index_add_(0, index, torch.ones_like(confidence))
    total_confidence = torch.zeros(bins, dtype=probs.dtype).index_add_(0, index, confidence)
    total_correct = torch.zeros(bins, dtype=probs.dtype).index_add_(0, index, correct)
    filled = count.clamp(min=1)
    return total_confidence / filled, total_correct / filled, count


def _ranks(scores: torch.Tensor) -> torch.Tensor:
    """Scores mapped to [0, 1] by dense rank: same order, same ties.

    torchmetrics applies a sigmoid to any score outside [0, 1] (entropy reaches log C), and a
    float32 sigmoid merges near-equal small scores (mutual information ~1e-9) into ties, which
    would change the curves. Every curve below depends only on order and ties.
    """
    distinct, rank = torch.unique(scores, return_inverse=True)
    return rank.double() / max(len(distinct) - 1, 1)


def _both_classes(positives: torch.Tensor) -> bool:
    return bool(positives.any()) and not bool(positives.all())


def auroc(scores: torch.Tensor, positives: torch.Tensor) -> float | None:
    """Area under the ROC curve for `scores` flagging `positives`; None if a class is empty."""
    if not _both_classes(positives):
        return None
    return binary_auroc(_ranks(scores), positives.long()).item()


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float | None:
    """AUPR as average precision, Σ_k (R_k - R_{k-1}) P_k over score thresholds."""
    if not _both_classes(positives):
        return None
    return binary_average_precision(_ranks(scores), positives.long()).item()


def fpr_at_tpr(scores: torch.Tensor, positives: torch.Tensor, tpr: float = 0.95) -> float | None:
    """The lowest false-positive rate among thresholds whose true-positive rate reaches `tpr`."""
    if not _both_classes(positives):
        return None
    false_rates, true_rates, _ = binary_roc(_ranks(scores), positives.long())
    # torchmetrics returns float32 rates: 19/20 becomes 0.94999999, which must still count.
    return false_rates[true_rates >= tpr - TPR_SLACK].min().item()


def aurc(scores: torch.Tensor, wrong: torch.Tensor) -> float:
    """Area under the risk-coverage curve (Geifman et al. 2018); lower is better.

    Inputs are accepted most-certain first (lowest score); at each coverage the risk is the
    error rate among the accepted. Tied scores are accepted together, so the result does not
    depend on how a sort orders them: AURC = Σ_groups (group size / N) * risk after the group,
    which without ties is the usual (1/N) Σ_k errors_k / k.
    """
    distinct, group = torch.unique(scores, return_inverse=True)
    size = torch.zeros(len(distinct), dtype=torch.float64).index_add_(
        0, group, torch.ones_like(scores, dtype=torch.float64)
    )
    errors = torch.zeros(len(distinct), dtype=torch.float64).index_add_(
        0, group, wrong.to(torch.float64)
    )
    risk = errors.cumsum(0) / size.cumsum(0)
    return (size / len(scores) * risk).sum().item()
