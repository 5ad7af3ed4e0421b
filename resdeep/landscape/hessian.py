"""Curvature of the loss at the trained weights, from Hessian-vector products alone (the
Hessian of a ResNet-56 would have 7·10^11 entries): the extreme eigenvalues by Lanczos
(SciPy's ARPACK, the method Li et al. use for their convexity maps) and the trace by
Hutchinson's estimator. The Hessian is over every parameter, on one batch of the subset, with
batch norm as the surface evaluates it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resdeep.errors import ResdeepError

# A Hessian-vector product on flat float64 NumPy vectors, as SciPy's operators take them.
Product = Callable[[np.ndarray], np.ndarray]

# A Hessian-vector product costs about this many loss evaluations (double backward, measured on
# ResNet-56 on CPU: 0.83 s against 0.074 s), and a Lanczos run about this many products (the
# demo's nets took 21 to 102): what the time estimate and the progress bar count.
PRODUCT_COST = 11
LANCZOS_PRODUCTS = 40


def hessian_vector_product(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    on_product: Callable[[], None] | None = None,
) -> tuple[Product, int]:
    """H·v of the mean cross-entropy over (inputs, labels) for the model's parameters, by
    differentiating the gradient once more (double backward: on CPU faster than
    forward-over-reverse), and the number of parameters."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    sizes = [p.numel() for p in parameters]
    device, dtype = parameters[0].device, parameters[0].dtype

    def product(vector: np.ndarray) -> np.ndarray:
        flat = torch.as_tensor(np.ascontiguousarray(vector), device=device).to(dtype)
        pieces = [piece.view_as(p) for piece, p in zip(flat.split(sizes), parameters, strict=True)]
        loss = nn.functional.cross_entropy(model(inputs).float(), labels)
        grads = torch.autograd.grad(loss, parameters, create_graph=True)
        columns = torch.autograd.grad(grads, parameters, grad_outputs=pieces)
        if on_product is not None:
            on_product()
        return torch.cat([c.reshape(-1) for c in columns]).double().cpu().numpy()

    return product, sum(sizes)


@dataclass(frozen=True)
class Curvature:
    lambda_max: float
    lambda_min: float
    eigen_products: int  # Hessian-vector products the Lanczos run took
    trace: float
    trace_std: float  # of the single probes: the estimator's spread
    trace_samples: int
    seconds: float

    @property
    def negative_ratio(self) -> float:
        """|λmin| / λmax where λmin < 0 (Li et al.'s measure of non-convexity), else 0."""
        return abs(min(self.lambda_min, 0.0)) / self.lambda_max if self.lambda_max > 0 else math.nan

    @property
    def trace_error(self) -> float:
        """Standard error of the trace estimate."""
        return self.trace_std / math.sqrt(self.trace_samples)

    def as_json(self) -> dict[str, float | int]:
        return {
            **vars(self),
            "negative_ratio": self.negative_ratio,
            "trace_error": self.trace_error,
        }


def extreme_eigenvalues(
    product: Product, size: int, *, tol: float = 1e-3, seed: int = 0, max_restarts: int = 10
) -> tuple[float, float, int]:
    """(λmin, λmax, products): both ends of the spectrum from one Lanczos run (ARPACK's "BE":
    the largest and the smallest algebraic eigenvalue), from a seeded start vector, with at
    most `max_restarts` restarts (about 20 products each; the demo's nets need 1 to 5)."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    count = 0

    def counted(vector: np.ndarray) -> np.ndarray:
        nonlocal count
        count += 1
        return product(vector.ravel())

    operator = LinearOperator((size, size), matvec=counted, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(size)
    try:
        values = eigsh(operator, k=2, which="BE", tol=tol, v0=start, maxiter=max_restarts,
                       return_eigenvectors=False)  # fmt: skip
    except ArpackNoConvergence as error:  # what converged is still an estimate worth giving
        values = error.eigenvalues
        if len(values) < 2:
            raise ResdeepError(
                f"Lanczos found no extreme eigenvalues within {count} Hessian-vector products "
                f"(tolerance {tol:g}); run this net without --hessian"
            ) from error
    return float(min(values)), float(max(values)), count


def hutchinson_trace(
    product: Product, size: int, samples: int, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of vᵀHv over Rademacher vectors v: an unbiased estimate of tr H."""
    rng = np.random.default_rng(seed)
    probes = []
    for _ in range(samples):
        vector = rng.choice([-1.0, 1.0], size)
        probes.append(float(vector @ product(vector)))
    return float(np.mean(probes)), float(np.std(probes, ddof=1)) if samples > 1 else math.nan


def curvature(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    trace_samples: int,
    tol: float = 1e-3,
    seed: int = 0,
    on_product: Callable[[], None] | None = None,
) -> Curvature:
    started = time.perf_counter()
    product, size = hessian_vector_product(model, inputs, labels, on_product)
    lambda_min, lambda_max, products = extreme_eigenvalues(product, size, tol=tol, seed=seed)
    trace, spread = hutchinson_trace(product, size, trace_samples, seed)
    return Curvature(lambda_max, lambda_min, products, trace, spread, trace_samples,
                     time.perf_counter() - started)  # fmt: skip
