"""Uncertainty of saved checkpoints: MC dropout, temperature scaling and deep ensembles as
methods of one shape (resdeep.uncertainty.methods), their metrics, reports and plots."""

from resdeep.uncertainty.evaluate import evaluate_dataset, evaluate_images, summarize_dataset
from resdeep.uncertainty.methods import UncertaintyMethod
from resdeep.uncertainty.sampling import Predictions, mc_predict, require_dropout

__all__ = [
    "Predictions",
    "UncertaintyMethod",
    "evaluate_dataset",
    "evaluate_images",
    "mc_predict",
    "require_dropout",
    "summarize_dataset",
]
