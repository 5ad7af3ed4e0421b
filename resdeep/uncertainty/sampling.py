"""MC dropout (Gal & Ghahramani 2016): T stochastic forward passes with only dropout sampling.

Batch norm stays in eval mode, normalising with its running statistics: in train mode it would
normalise each batch by its own statistics, so a prediction would depend on the other images in
the batch (and on how many copies of each there are), and the running averages would drift.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from resdeep.errors import UsageError
from resdeep.models import ConvNet, evaluation_mode, restoring_modes

# Rows (images x samples) per forward pass: the memory budget of the batched path (and images
# per feature pass on the head path). A resnet-20 activation on 32x32 inputs is 16x32x32 floats,
# 64 KB per row, and inference keeps only a few alive at once: 1024 rows stay within ~300 MB.
DEFAULT_BATCH_ROWS = 1024


@dataclass
class Predictions:
    deterministic: torch.Tensor  # (N, C) float32 softmax with dropout off
    samples: torch.Tensor  # (N, T, C) float32 softmaxes with dropout sampling


def check_samples(samples: int) -> None:
    if samples < 1:
        raise UsageError(f"--samples must be at least 1, got {samples}")


def dropout_modules(model: nn.Module) -> list[nn.Dropout]:
    """The dropout layers that actually drop something (p > 0)."""
    return [m for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0]


def require_dropout(model: nn.Module, where: str = "this checkpoint") -> None:
    if not dropout_modules(model):
        # A sound checkpoint that cannot serve this request, like a layer it lacks: exit 2.
        raise UsageError(
            f"{where} has no dropout (p = 0 everywhere), so MC dropout has nothing to sample; "
            "train with model.dropout>0 (e.g. model.dropout=0.2)"
        )


def is_head_only(model: ConvNet) -> bool:
    """True when every sampling dropout sits before the classifier (dropout_at=head)."""
    modules = dropout_modules(model)
    return bool(modules) and all(m is model.head_dropout for m in modules)


@contextmanager
def dropout_sampling(model: nn.Module, sample: bool = True) -> Iterator[None]:
    """Eval mode everywhere except the nn.Dropout modules (when `sample`); every module's mode
    is restored afterwards, whatever happens inside."""
    with restoring_modes(model):
        model.eval()
        if sample:
            for module in model.modules():
                if isinstance(module, nn.Dropout):
                    module.train()
        yield


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Row softmax, (rows, classes) -> float32 probabilities.

    Written out because torch's CPU kernel is slow along a short last dimension: for the 11k
    rows of 10 classes that T = 32 gives the digits test split it takes 2 ms against 0.3 ms,
    and a whole resnet-20 feature pass over those images takes 13 ms.
    """
    exp = (logits - logits.amax(dim=1, keepdim=True)).exp_()
    return exp.div_(exp.sum(dim=1, keepdim=True)).float()


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Draw dropout masks from `seed` without disturbing the caller's random state."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def mc_predict(
    model: ConvNet,
    inputs: torch.Tensor,
    *,
    samples: int,
    seed: int = 0,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    head_only: bool | None = None,
) -> Predictions:
    """Deterministic and T-sample MC-dropout softmaxes for normalised `inputs` (N, C, H, W).

    head_only (default: detected) computes the convolutional features once and samples only the
    head, so T samples cost little more than one pass. Otherwise the batch is repeated T times
    and run as batched forwards of at most `batch_rows` rows. The same seed, inputs and
    batch_rows give the same samples.
    """
    check_samples(samples)
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    if head_only is None:
        head_only = is_head_only(model)
    elif head_only and any(m is not model.head_dropout for m in dropout_modules(model)):
        raise ValueError("head_only sampling needs every dropout module in model.head_dropout")
    device = _device_of(model)
    # The head path draws its own masks (below), so there every module, dropout too, is in eval.
    with _seeded(seed, device), dropout_sampling(model, sample=not head_only):
        if head_only:
            return _sample_head(model, inputs, samples, batch_rows, device)
        return _sample_batched(model, inputs, samples, batch_rows, device)


def _sample_head(
    model: ConvNet, inputs: torch.Tensor, samples: int, batch_rows: int, device: torch.device
) -> Predictions:
    head_dropout = model.head_dropout
    keep = 1.0 - head_dropout.p if isinstance(head_dropout, nn.Dropout) else 1.0
    deterministic, sampled = [], []
    # Chunks of batch_rows images, not rows: the T copies are of F pooled floats each, so the
    # head's B*T rows stay small next to the feature maps of the B images.
    for chunk in inputs.split(batch_rows):
        maps = model.features(chunk.to(device))  # (B, F, h, w): no dropout inside, computed once
        deterministic.append(softmax(model.forward_head(maps)).cpu())  # dropout off
        # forward_head is classifier(head_dropout(global average pool)). Pool once, then draw
        # the dropout for T copies of the pooled vectors ourselves, as nn.Dropout computes it,
        # x * Bernoulli(1-p) / (1-p), with one fresh mask per copy: `rand < 1-p` draws the
        # Bernoulli at half of bernoulli_'s CPU cost, and scaling the B vectors before copying
        # saves a pass over B*T. The T samples then add about 2 ms per 10k copies (CPU) to
        # the feature pass, which matters for 8x8 digits, whose convolutions are cheap.
        pooled = maps.mean(dim=(2, 3))  # (B, F)
        scaled = (pooled / keep).repeat_interleave(samples, dim=0)  # (B*T, F), image-major
        dropped = torch.rand_like(scaled).lt_(keep).mul_(scaled)  # zeros or x / (1-p)
        logits = model.classifier(dropped)  # (B*T, classes)
        sampled.append(softmax(logits).view(len(chunk), samples, -1).cpu())
    return Predictions(torch.cat(deterministic), torch.cat(sampled))


def _sample_batched(
    model: ConvNet, inputs: torch.Tensor, samples: int, batch_rows: int, device: torch.device
) -> Predictions:
    sampled = []
    # Work rows are (image, sample) pairs, image-major, cut into forwards of batch_rows rows: one
    # batched pass covers many images when T is small, and T > batch_rows still fits the budget.
    total_rows = len(inputs) * samples
    for start in range(0, total_rows, batch_rows):
        rows = torch.arange(start, min(start + batch_rows, total_rows))
        batch = inputs[rows // samples].to(device)  # (rows, C, H, W): repeated images
        sampled.append(softmax(model(batch)).cpu())
    probs = torch.cat(sampled).view(len(inputs), samples, -1)  # (N, T, classes)
    return Predictions(deterministic_predict(model, inputs, batch_rows), probs)


@torch.no_grad()
def deterministic_predict(
    model: ConvNet, inputs: torch.Tensor, batch_rows: int = DEFAULT_BATCH_ROWS
) -> torch.Tensor:
    """One pass with dropout off over normalised `inputs`: (N, classes) float32, the very
    numbers `mc_predict` returns as its deterministic pass (same chunks, same softmax)."""
    device = _device_of(model)
    with evaluation_mode(model):
        return torch.cat(
            [softmax(model(chunk.to(device))).cpu() for chunk in inputs.split(batch_rows)]
        )
