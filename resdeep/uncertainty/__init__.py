"""MC-dropout uncertainty for saved checkpoints: sampling, metrics, reports and plots."""

from resdeep.uncertainty.evaluate import evaluate_dataset, evaluate_images, summarize_dataset
from resdeep.uncertainty.sampling import Predictions, mc_predict, require_dropout

__all__ = [
    "Predictions",
    "evaluate_dataset",
    "evaluate_images",
    "mc_predict",
    "require_dropout",
    "summarize_dataset",
]
