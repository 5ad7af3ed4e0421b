"""Last-layer Laplace approximation (MacKay 1992; Daxberger et al., NeurIPS 2021, "Laplace Redux").

A Gaussian posterior over the classifier's weights and bias θ = [W b] (C x (F+1), flattened row
by row), centred on the trained values, with precision H + δI:

- H is the generalised Gauss-Newton matrix of the summed cross-entropy on the run's training
  split (for softmax cross-entropy it equals the Fisher): Σ_n Λ_n ⊗ φ_n φ_nᵀ with φ_n the
  classifier's input [features, 1] and Λ_n = diag(p_n) - p_n p_nᵀ. It is kept whole (P x P, P the
  classifier's parameters), which is small for a CIFAR ResNet's last layer (650 for 10 classes);
  its eigendecomposition H = V diag(λ) Vᵀ serves every δ below;
- the prior N(0, δ⁻¹ I) has its precision δ chosen (`--laplace-prior`) by the Laplace estimate of
  the training split's marginal likelihood, maximised over δ (MacKay's evidence; laplace-torch's
  "marglik", which Immer et al. 2021 recommend), or by the validation split's NLL over a log
  grid (laplace-torch's "gridsearch"; the same weight samples at every δ, so the choice is not
  sampling noise), or given as a number;
- the predictive is sampled: T weight draws θ_t = θ* + V diag(λ + δ)^(-1/2) Vᵀ ε_t, ε_t ~ N(0, I),
  softmax(θ_t φ) per image. The logits are linear in θ, so this is
  the exact Gaussian predictive of the logits, not a linearisation, and T samples give mutual
  information as MC dropout's do.

It needs no dropout and no retraining: any checkpoint whose classifier is one nn.Linear.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from scipy.optimize import minimize_scalar
from torch import nn

from resdeep.checkpoint import CheckpointInfo
from resdeep.data import normalize
from resdeep.errors import UsageError
from resdeep.models import ConvNet, evaluation_mode
from resdeep.uncertainty.methods import UncertaintyMethod
from resdeep.uncertainty.sampling import DEFAULT_BATCH_ROWS, check_samples, softmax

# Prior precisions searched by val-nll: laplace-torch's grid span, 10^-4 ... 10^4, at 4 points a
# decade; the evidence is maximised over the same span.
PRIOR_GRID = tuple(10.0 ** (exponent / 4) for exponent in range(-16, 17))
CHOSEN_BY = {
    "marglik": "the training split's marginal likelihood (Laplace evidence), maximised",
    "val-nll": "validation NLL over a log grid",
    "given": "given",
}
# The whole H is P x P doubles and its eigendecomposition O(P^3): 8192 parameters are 512 MB and
# tens of seconds, a 100-class ResNet-20 head (6,500) fits, a WRN's 640 x 100 would not.
MAX_PARAMETERS = 8192


def require_linear_classifier(model: nn.Module, where: str) -> nn.Linear:
    classifier = getattr(model, "classifier", None)
    if not isinstance(classifier, nn.Linear) or classifier.bias is None:
        kind = "none" if classifier is None else type(classifier).__name__
        if isinstance(classifier, nn.Linear):
            kind = "a linear layer without a bias"
        raise UsageError(
            f"--laplace needs a net whose classifier is one linear layer; {where} has {kind}"
        )
    parameters = classifier.out_features * (classifier.in_features + 1)
    if parameters > MAX_PARAMETERS:
        raise UsageError(
            f"--laplace keeps the last layer's whole Hessian, at most {MAX_PARAMETERS} "
            f"parameters; {where}'s classifier has {parameters}"
        )
    return classifier


@torch.no_grad()
def classifier_inputs(
    model: ConvNet, inputs: torch.Tensor, batch_rows: int = DEFAULT_BATCH_ROWS
) -> torch.Tensor:
    """What the classifier reads for normalised `inputs`, dropout off: (N, F) float64, taken by
    a hook, so whatever a net does between its last block and the classifier is honoured."""
    device = next(model.parameters()).device
    captured: list[torch.Tensor] = []
    hook = model.classifier.register_forward_pre_hook(
        lambda module, args: captured.append(args[0].detach().double().cpu())
    )
    try:
        with evaluation_mode(model):
            for chunk in inputs.split(batch_rows):
                model(chunk.to(device))
    finally:
        hook.remove()
    return torch.cat(captured)


def with_bias_input(features: torch.Tensor) -> torch.Tensor:
    """[φ, 1]: the bias as one more weight on a constant input, (N, F) -> (N, F+1)."""
    return torch.cat([features, features.new_ones(len(features), 1)], dim=1)


def gauss_newton(features: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Σ_n Λ_n ⊗ φ_n φ_nᵀ for φ (N, F+1) and probabilities p (N, C): (P, P), P = C(F+1), in the
    order of θ flattened row by row (class-major).

    Λ_n = diag(p_n) - p_n p_nᵀ splits the sum in two, each without an (N, C, C, F+1) product
    (21 GB for a chunk of 4,096 images of a 100-class head): the diagonal blocks Σ_n p_nc φ φᵀ,
    and minus UᵀU with U_n = p_n ⊗ φ_n.
    """
    classes, width = probs.shape[1], features.shape[1]
    hessian = torch.zeros(classes, width, classes, width, dtype=torch.float64)
    diagonal = hessian.diagonal(dim1=0, dim2=2)  # (F+1, F+1, C): the blocks of class c with c
    for phi, p in zip(features.split(4096), probs.split(4096), strict=True):
        diagonal += torch.einsum("nc,nf,ng->fgc", p, phi, phi)
        outer = (p[:, :, None] * phi[:, None, :]).reshape(len(p), classes * width)
        hessian -= (outer.T @ outer).view(classes, width, classes, width)
    return hessian.reshape(classes * width, classes * width)


class LastLayerLaplace(UncertaintyMethod):
    """T softmaxes per image from weight samples of the last layer's Laplace posterior."""

    name = "laplace"
    label = "last-layer Laplace"

    def __init__(
        self,
        model: ConvNet,
        info: CheckpointInfo,
        *,
        eigenvalues: torch.Tensor,
        eigenvectors: torch.Tensor,
        prior_precision: float,
        samples: int,
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> None:
        check_samples(samples)
        self.model, self.info, self.samples, self.batch_rows = model, info, samples, batch_rows
        self.eigenvalues, self.eigenvectors = eigenvalues, eigenvectors
        self.prior_precision = prior_precision
        self.fit_record: dict[str, Any] = {}  # how `fit` chose the posterior
        self.column = f"Laplace (T={samples})"
        classifier = model.classifier
        weights = torch.cat([classifier.weight, classifier.bias[:, None]], dim=1)
        self.mean = weights.detach().double().cpu()  # (C, F+1): θ*

    @classmethod
    def fit(
        cls,
        model: ConvNet,
        info: CheckpointInfo,
        *,
        train_images: torch.Tensor,
        val_images: torch.Tensor,
        val_labels: torch.Tensor,
        samples: int,
        seed: int,
        prior: str = "marglik",
        batch_rows: int = DEFAULT_BATCH_ROWS,
    ) -> LastLayerLaplace:
        """H on the training images, then δ by `prior`: "marglik", "val-nll" or a number."""
        require_linear_classifier(model, str(info.path))
        method = cls(
            model, info, eigenvalues=torch.zeros(0), eigenvectors=torch.zeros(0, 0),
            prior_precision=math.inf, samples=samples, batch_rows=batch_rows,
        )  # fmt: skip
        train = method.features(train_images)
        train_probs = torch.softmax(train @ method.mean.T, dim=1)  # the trained net's
        eigenvalues, eigenvectors = torch.linalg.eigh(gauss_newton(train, train_probs))
        # H is positive semi-definite; eigh leaves round-off of either sign on its null space.
        method.eigenvalues, method.eigenvectors = eigenvalues.clamp_(min=0.0), eigenvectors
        if prior == "val-nll" and len(val_labels) == 0:
            raise UsageError(
                f"--laplace-prior val-nll needs validation images; {info.path} was trained with "
                "data.val_size=0: use --laplace-prior marglik"
            )
        val = method.features(val_images) if len(val_labels) else None
        record: dict[str, Any] = {}
        if prior == "marglik":
            precision = method.max_evidence_precision()
        elif prior == "val-nll":
            assert val is not None  # refused above without validation images
            nlls = [method.nll(val, val_labels, delta, seed) for delta in PRIOR_GRID]
            best = min(range(len(PRIOR_GRID)), key=nlls.__getitem__)
            precision = PRIOR_GRID[best]
            record = {"grid": list(PRIOR_GRID), "grid_val_nll": nlls}
        else:
            precision = float(prior)
        method.prior_precision = precision
        chosen = prior if prior in CHOSEN_BY else "given"
        edges = (PRIOR_GRID[0], PRIOR_GRID[-1])
        at_edge = (
            chosen != "given" and min(abs(math.log10(precision / edge)) for edge in edges) < 1e-3
        )
        method.fit_record = {
            "hessian": "generalised Gauss-Newton of the summed cross-entropy, full",
            "fitted_on": "train",
            "train_n": len(train_images),
            "parameters": int(eigenvalues.numel()),
            "prior": chosen,
            "chosen_by": CHOSEN_BY[chosen],
            "prior_precision": precision,
            "log_evidence_minus_log_likelihood": method.log_evidence(precision),
            "val_n": len(val_labels),
            "val_nll": None if val is None else method.nll(val, val_labels, precision, seed),
            "at_search_edge": at_edge,
            "predictive": "sampling",
            **record,
        }
        return method

    def warning(self) -> str | None:
        """One sentence when δ ran to the end of its search: at 10^4 the posterior has shrunk
        onto the trained weights (the deterministic net again), at 10^-4 onto the prior."""
        if not self.fit_record.get("at_search_edge"):
            return None
        return (
            f"the Laplace prior precision ran to its search's edge (δ = "
            f"{self.prior_precision:.3g}) by {self.fit_record['chosen_by']}; "
            + (
                "the posterior has shrunk onto the trained weights, the deterministic net again"
                if self.prior_precision >= PRIOR_GRID[-1]
                else "the posterior is little more than the prior"
            )
        )

    def log_evidence(self, precision: float) -> float:
        """log p(D | δ) - log p(D | θ*) by Laplace: -δ/2 |θ*|² + P/2 log δ - 1/2 log det(H + δI)."""
        squared = self.mean.square().sum().item()
        count = self.eigenvalues.numel()
        log_det = torch.log(self.eigenvalues + precision).sum().item()
        return -0.5 * precision * squared + 0.5 * count * math.log(precision) - 0.5 * log_det

    def max_evidence_precision(self) -> float:
        """The δ of PRIOR_GRID's span with the highest evidence: a bounded search over log δ (the
        evidence has one maximum, at MacKay's δ = γ / |θ*|², γ = Σ λ / (λ + δ))."""
        low, high = math.log(PRIOR_GRID[0]), math.log(PRIOR_GRID[-1])
        result = minimize_scalar(
            lambda log_delta: -self.log_evidence(math.exp(log_delta)),
            bounds=(low, high), method="bounded", options={"xatol": 1e-6},
        )  # fmt: skip
        return math.exp(float(result.x))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[φ, 1] (N, F+1) float64 for uint8 `images`."""
        inputs = normalize(images, self.info.mean, self.info.std)
        return with_bias_input(classifier_inputs(self.model, inputs, self.batch_rows))

    def weight_samples(self, precision: float, seed: int) -> torch.Tensor:
        """T draws of θ (T, C, F+1) from N(θ*, (H + δI)^-1); θ* itself T times when δ = ∞."""
        if math.isinf(precision):
            return self.mean.expand(self.samples, *self.mean.shape)
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(self.samples, self.eigenvalues.numel(), generator=generator)
        scales = (self.eigenvalues + precision).rsqrt()  # (P,)
        # (H + δI)^(-1/2) ε with the symmetric root V diag(λ + δ)^(-1/2) Vᵀ, unique whatever
        # basis eigh picks inside a repeated eigenvalue (H has a large null space), so the draws
        # move continuously with H rather than with round-off in its eigenvectors.
        rotated = noise.double() @ self.eigenvectors  # (T, P): Vᵀ ε per draw
        offsets = (rotated * scales) @ self.eigenvectors.T
        return self.mean + offsets.view(self.samples, *self.mean.shape)

    def predict(self, features: torch.Tensor, precision: float, seed: int) -> torch.Tensor:
        """(N, T, C) float32 softmaxes of T weight samples on [φ, 1] `features`."""
        weights = self.weight_samples(precision, seed)  # (T, C, F+1)
        logits = torch.einsum("nf,tcf->ntc", features, weights)
        return softmax(logits.reshape(-1, logits.shape[-1])).view(logits.shape)

    def nll(
        self, features: torch.Tensor, labels: torch.Tensor, precision: float, seed: int
    ) -> float:
        mean = self.predict(features, precision, seed).double().mean(dim=1)
        return -mean.gather(1, labels[:, None]).clamp_min(1e-12).log().mean().item()

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        return self.predict(self.features(images), self.prior_precision, seed)

    def cost(self) -> dict[str, int]:
        return {"forward_passes": 1, "head_samples": self.samples}

    def describe(self) -> dict[str, Any]:
        """How the posterior was fitted, and the warning when its prior ran to an edge."""
        return {**self.fit_record, "warning": self.warning()}
